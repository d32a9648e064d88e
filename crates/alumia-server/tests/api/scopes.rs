//! Scopes narrow a key; `X-Alumia-Org` must name the key's org.

use alumia_core::model::Role;

use crate::{add_user, app_with_owner, assert_error, read};

#[tokio::test]
async fn models_need_the_models_read_scope() {
    let (app, browser, key) = app_with_owner().await;
    let (status, body) = read(app.get_with_key("/api/v1/models", &key).await).await;
    assert_eq!(status, 200);
    assert!(
        body["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "dev/echo")
    );
    assert_eq!(body["data"]["hasMore"], false);

    let (mcp_only, _) = browser.mint_key("mcp", Some(vec!["mcp:read"])).await;
    let (status, body) = read(app.get_with_key("/api/v1/models", &mcp_only).await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "insufficient_scope");
    assert_eq!(body["error"]["details"]["requiredScope"], "models:read");
    // Other routes follow the role, not scopes.
    assert_eq!(
        app.get_with_key("/api/v1/workspaces", &mcp_only)
            .await
            .status(),
        200
    );
    // A browser session holds every scope its role permits.
    assert_eq!(browser.get("/api/v1/models").await.status(), 200);
}

#[tokio::test]
async fn x_alumia_org_must_name_the_keys_org() {
    let (app, _, key) = app_with_owner().await;
    let org = app.store.get_org_by_slug("acme").await.unwrap().unwrap();
    for good in ["acme".to_string(), org.id.to_string()] {
        let res = app
            .http
            .get(app.at("/api/v1/me"))
            .bearer_auth(&key)
            .header("x-alumia-org", &good)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{good}");
    }
    add_user(&app, "eve@example.com", "evil", None).await;
    let res = app
        .http
        .get(app.at("/api/v1/me"))
        .bearer_auth(&key)
        .header("x-alumia-org", "evil")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "org_mismatch");
}

#[tokio::test]
async fn a_session_picks_its_org_with_the_header_and_only_among_its_own() {
    let (app, _, _) = app_with_owner().await;
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (_, me) = read(eve.get("/api/v1/me").await).await;
    assert_eq!(me["data"]["org"]["slug"], "evil");
    let res = eve
        .client
        .get(eve.at("/api/v1/me"))
        .header("x-alumia-org", "acme")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "org_mismatch");
}

#[tokio::test]
async fn audit_events_are_for_admins_and_record_key_mints() {
    let (app, owner, key) = app_with_owner().await;
    let (status, body) = read(app.get_with_key("/api/v1/audit-events", &key).await).await;
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<&str> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"api_key.created") && kinds.contains(&"org.setup"),
        "{kinds:?}"
    );
    assert!(
        !body.to_string().contains(&key[12..]),
        "audit data never holds the key"
    );
    let member = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    let (status, body) = read(member.get("/api/v1/audit-events").await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "insufficient_role");
    drop(owner);
}

#[tokio::test]
async fn a_user_can_create_another_org_but_not_take_a_slug() {
    let (app, owner, key) = app_with_owner().await;
    let (status, body) = read(owner.post("/api/v1/orgs", serde_json::json!({"slug": "acme-labs", "name": "Labs", "id": "00000000-0000-0000-0000-000000000000"})).await).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["slug"], "acme-labs");
    assert_ne!(
        body["data"]["id"], "00000000-0000-0000-0000-000000000000",
        "server-owned fields are ignored"
    );
    let (status, body) = read(
        owner
            .post(
                "/api/v1/orgs",
                serde_json::json!({"slug": "acme-labs", "name": "Again"}),
            )
            .await,
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "slug_taken");
    let (status, body) = read(
        owner
            .post(
                "/api/v1/orgs",
                serde_json::json!({"slug": "No Slug", "name": ""}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["details"]["fields"]["slug"].is_string()
            && body["error"]["details"]["fields"]["name"].is_string()
    );
    let (_, orgs) = read(owner.get("/api/v1/orgs").await).await;
    let slugs: Vec<&str> = orgs["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "acme-labs"]);
    // The new org has its own default workspace; a key stays in its own org.
    let res = app
        .http
        .get(app.at("/api/v1/me"))
        .bearer_auth(&key)
        .header("x-alumia-org", "acme-labs")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = owner
        .client
        .get(owner.at("/api/v1/workspaces"))
        .header("x-alumia-org", "acme-labs")
        .send()
        .await
        .unwrap();
    let (_, ws) = read(res).await;
    assert_eq!(ws["data"]["items"][0]["name"], "General");
    // Keys cannot create orgs.
    let res = app
        .http
        .post(app.at("/api/v1/orgs"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"slug": "k-org", "name": "K"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "browser_session_required");
}
