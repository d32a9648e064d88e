//! Tenancy is absolute: another org's objects are 404, lists never mix.

use serde_json::json;

use crate::{add_user, app_with_owner, assert_error, read};

#[tokio::test]
async fn another_orgs_workspaces_and_keys_are_not_found() {
    let (app, acme, acme_key) = app_with_owner().await;
    let evil = add_user(&app, "eve@example.com", "evil", None).await;
    let (evil_key, _) = evil.mint_key("evil", None).await;

    let (_, acme_ws) = read(app.get_with_key("/api/v1/workspaces", &acme_key).await).await;
    let acme_ws_id = acme_ws["data"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, acme_keys) = read(acme.get("/api/v1/api-keys").await).await;
    let acme_key_id = acme_keys["data"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, body) = read(
        app.get_with_key(&format!("/api/v1/workspaces/{acme_ws_id}"), &evil_key)
            .await,
    )
    .await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    assert_eq!(
        app.get_with_key(&format!("/api/v1/workspaces/{acme_ws_id}"), &acme_key)
            .await
            .status(),
        200
    );

    let res = app
        .http
        .delete(app.at(&format!("/api/v1/api-keys/{acme_key_id}")))
        .bearer_auth(&evil_key)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    assert_eq!(
        app.get_with_key("/api/v1/models", &acme_key).await.status(),
        200,
        "no side effect"
    );

    // Switching to a foreign workspace is an invalid reference, and changes nothing.
    let res = app
        .http
        .post(app.at("/api/v1/workspaces/switch"))
        .bearer_auth(&evil_key)
        .json(&json!({"workspaceId": acme_ws_id}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");

    for (key, want_org) in [(&acme_key, "acme"), (&evil_key, "evil")] {
        let (_, ws) = read(app.get_with_key("/api/v1/workspaces", key).await).await;
        let org_id = app
            .store
            .get_org_by_slug(want_org)
            .await
            .unwrap()
            .unwrap()
            .id
            .to_string();
        assert!(
            ws["data"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|w| w["orgId"] == org_id.as_str())
        );
        let (_, members) = read(app.get_with_key("/api/v1/org/members", key).await).await;
        assert_eq!(
            members["data"]["items"].as_array().unwrap().len(),
            1,
            "{members}"
        );
        let (_, audit) = read(app.get_with_key("/api/v1/audit-events", key).await).await;
        assert!(
            !audit
                .to_string()
                .contains(if want_org == "acme" { "eve@" } else { "owner@" })
        );
    }
}

#[tokio::test]
async fn a_key_can_switch_its_active_workspace_within_its_org() {
    let (app, _, key) = app_with_owner().await;
    let (_, ws) = read(app.get_with_key("/api/v1/workspaces", &key).await).await;
    let id = ws["data"]["items"][0]["id"].as_str().unwrap().to_string();
    let res = app
        .http
        .post(app.at("/api/v1/workspaces/switch"))
        .bearer_auth(&key)
        .json(&json!({"workspaceId": id}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(
        (status, &body["data"]["activeWorkspaceId"]),
        (200, &json!(id))
    );
    let (_, me) = read(app.get_with_key("/api/v1/me", &key).await).await;
    assert_eq!(me["data"]["activeWorkspaceId"], json!(id));
}
