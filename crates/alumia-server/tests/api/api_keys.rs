//! `/api/v1/api-keys`: the key lifecycle as a user sees it.

use alumia_core::model::Role;
use chrono::Duration;
use serde_json::json;

use crate::{add_user, app_with_owner, assert_error, read};

#[tokio::test]
async fn a_minted_key_is_shown_once_and_stored_only_as_a_hash() {
    let (app, browser, _) = app_with_owner().await;
    let (key, data) = browser
        .mint_key("ci", Some(vec!["models:read", "mcp:read"]))
        .await;
    assert!(key.starts_with("alm_test_") && key.len() == 57, "{key}");
    assert_eq!(data["prefix"], &key[..12]);
    assert_eq!(data["scopes"], json!(["mcp:read", "models:read"]));

    let (status, list) = read(app.get_with_key("/api/v1/api-keys", &key).await).await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(
        !text.contains(&key[12..]),
        "the list must never show the secret part"
    );
    let item = list["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap()
        .clone();
    assert_eq!(item["createdVia"], "dashboard");
    assert!(
        item.get("key").is_none() && item.get("keyHash").is_none(),
        "{item}"
    );
    let id: uuid::Uuid = item["id"].as_str().unwrap().parse().unwrap();
    let org = app.store.get_org_by_slug("acme").await.unwrap().unwrap();
    let grant = app
        .store
        .find_key_grant_by_hash(&alumia_core::crypto::sha256_hex(key.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.key.id, id);
    assert_eq!(grant.key.org_id, org.id);
}

#[tokio::test]
async fn revocation_is_effective_on_the_very_next_request() {
    let (app, browser, key) = app_with_owner().await;
    assert_eq!(app.get_with_key("/api/v1/models", &key).await.status(), 200);
    let (_, list) = read(app.get_with_key("/api/v1/api-keys", &key).await).await;
    let id = list["data"]["items"][0]["id"].as_str().unwrap().to_string();
    // A key may revoke itself (any principal of the same user).
    let res = app
        .http
        .delete(app.at(&format!("/api/v1/api-keys/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], id.as_str());
    assert!(body["data"]["revokedAt"].is_string());
    let (status, body) = read(app.get_with_key("/api/v1/models", &key).await).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_api_key");
    let (status, body) = read(browser.delete(&format!("/api/v1/api-keys/{id}")).await).await;
    assert_error(status, &body, 409, "CONFLICT", "already_revoked");
    let (_, list) = read(browser.get("/api/v1/api-keys").await).await;
    assert!(
        list["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != id.as_str()),
        "revoked keys are not listed"
    );
}

#[tokio::test]
async fn another_users_key_is_not_found_and_survives() {
    let (app, owner, owner_key) = app_with_owner().await;
    let member = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    let (_, list) = read(owner.get("/api/v1/api-keys").await).await;
    let owner_key_id = list["data"]["items"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = read(
        member
            .delete(&format!("/api/v1/api-keys/{owner_key_id}"))
            .await,
    )
    .await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    assert_eq!(
        app.get_with_key("/api/v1/models", &owner_key)
            .await
            .status(),
        200
    );
    let (status, _) = read(member.delete("/api/v1/api-keys/not-a-uuid").await).await;
    assert_eq!(status, 404);
    let (_, mine) = read(member.get("/api/v1/api-keys").await).await;
    assert_eq!(
        mine["data"]["items"],
        json!([]),
        "a user lists only their own keys"
    );
}

#[tokio::test]
async fn an_expired_key_says_so_and_a_past_expiry_is_refused() {
    let (app, browser, _) = app_with_owner().await;
    use alumia_core::Clock;
    let soon = app.clock.now() + Duration::minutes(5);
    let res = browser
        .post(
            "/api/v1/api-keys",
            json!({"name": "short", "expiresAt": soon.to_rfc3339()}),
        )
        .await;
    let (status, body) = read(res).await;
    assert_eq!(status, 201, "{body}");
    let key = body["data"]["key"].as_str().unwrap().to_string();
    assert!(body["data"]["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.get_with_key("/api/v1/models", &key).await.status(), 200);
    app.clock.advance(Duration::minutes(6));
    let (status, body) = read(app.get_with_key("/api/v1/models", &key).await).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "expired_api_key");

    browser.step_up(alumia_testkit::TEST_PASSWORD).await;
    let past = (app.clock.now() - Duration::minutes(1)).to_rfc3339();
    let (status, body) = read(
        browser
            .post(
                "/api/v1/api-keys",
                json!({"name": "past", "expiresAt": past}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["details"]["fields"]["expiresAt"].is_string());
    let (status, body) = read(
        browser
            .post(
                "/api/v1/api-keys",
                json!({"name": "bad", "expiresAt": "tomorrow"}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn scope_and_name_rules_are_enforced_at_minting() {
    let (app, owner, _) = app_with_owner().await;
    for (body, field) in [
        (json!({"name": "t", "scopes": ["terminal"]}), "scopes.0"),
        (
            json!({"name": "t", "scopes": ["models:read", "admin:*"]}),
            "scopes.1",
        ),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(121)}), "name"),
    ] {
        let (status, res) = read(owner.post("/api/v1/api-keys", body.clone()).await).await;
        assert_eq!(status, 422, "{body} → {res}");
        assert!(
            res["error"]["details"]["fields"][field].is_string(),
            "{body} → {res}"
        );
    }
    let (_, key) = owner
        .mint_key("charger", Some(vec!["billing:machine:charge"]))
        .await;
    assert_eq!(key["scopes"], json!(["billing:machine:charge"]));

    let member = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    let (status, body) = read(
        member
            .post(
                "/api/v1/api-keys",
                json!({"name": "m", "scopes": ["billing:machine:charge"]}),
            )
            .await,
    )
    .await;
    assert_error(status, &body, 403, "FORBIDDEN", "insufficient_role");
    assert_eq!(body["error"]["details"]["requiredRole"], "admin");
    let (_, default_key) = member.mint_key("m", None).await;
    assert_eq!(
        default_key["scopes"],
        json!(["models:read"]),
        "default scope"
    );
}

#[tokio::test]
async fn malformed_keys_are_refused_with_the_same_401() {
    let (app, _, key) = app_with_owner().await;
    let live = key.replacen("alm_test_", "alm_live_", 1);
    let cases = [
        "garbage".to_string(),
        live,
        key[..key.len() - 1].to_string(),
        format!("{key}0"),
        key.to_uppercase(),
        format!("alm_test_{}", "0".repeat(48)),
        "x".repeat(10 * 1024),
    ];
    for token in cases {
        let (status, body) = read(app.get_with_key("/api/v1/models", &token).await).await;
        assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_api_key");
        assert!(!body.to_string().contains(&key[12..]));
    }
    let res = app
        .http
        .get(app.at("/api/v1/models"))
        .header("authorization", format!("Basic {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_removed_members_keys_stop_working_at_once() {
    let (app, owner, _) = app_with_owner().await;
    let member = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    let (member_key, _) = member.mint_key("bob", None).await;
    assert_eq!(
        app.get_with_key("/api/v1/models", &member_key)
            .await
            .status(),
        200
    );
    let (_, me) = read(app.get_with_key("/api/v1/me", &member_key).await).await;
    let bob_id = me["data"]["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(me["data"]["role"], "member");

    // A member cannot remove others.
    let (_, owner_me) = read(owner.get("/api/v1/me").await).await;
    let owner_id = owner_me["data"]["user"]["id"].as_str().unwrap();
    let (status, body) = read(
        member
            .delete(&format!("/api/v1/org/members/{owner_id}"))
            .await,
    )
    .await;
    assert_error(status, &body, 403, "FORBIDDEN", "insufficient_role");
    // The last owner cannot leave.
    let (status, body) = read(
        owner
            .delete(&format!("/api/v1/org/members/{owner_id}"))
            .await,
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "last_owner");

    let (status, body) = read(owner.delete(&format!("/api/v1/org/members/{bob_id}")).await).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = read(app.get_with_key("/api/v1/models", &member_key).await).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_api_key");
    let (status, body) = read(member.get("/api/v1/me").await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "org_mismatch");
}

#[tokio::test]
async fn keys_list_newest_first_with_cursor_pagination() {
    let (app, browser, key) = app_with_owner().await;
    for i in 0..4 {
        app.clock.advance(Duration::seconds(1));
        browser.mint_key(&format!("k{i}"), None).await;
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/api-keys?limit=2&cursor={c}"),
            None => "/api/v1/api-keys?limit=2".into(),
        };
        let (status, page) = read(app.get_with_key(&path, &key).await).await;
        assert_eq!(status, 200, "{page}");
        for item in page["data"]["items"].as_array().unwrap() {
            names.push(item["name"].as_str().unwrap().to_string());
        }
        assert_eq!(
            page["data"]["hasMore"],
            page["data"]["nextCursor"].is_string()
        );
        match page["data"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["k3", "k2", "k1", "k0", "first"]);

    let (status, body) = read(app.get_with_key("/api/v1/api-keys?limit=0", &key).await).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = read(app.get_with_key("/api/v1/api-keys?limit=101", &key).await).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = read(
        app.get_with_key("/api/v1/api-keys?cursor=bogus", &key)
            .await,
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_cursor");
    // A cursor from another list (the audit log) is refused here.
    let (_, audit) = read(app.get_with_key("/api/v1/audit-events?limit=1", &key).await).await;
    let foreign = audit["data"]["nextCursor"]
        .as_str()
        .expect("audit has more than one event")
        .to_string();
    let (status, body) = read(
        app.get_with_key(&format!("/api/v1/api-keys?cursor={foreign}"), &key)
            .await,
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_cursor");
}

#[tokio::test]
async fn last_used_at_is_recorded_off_the_request_path() {
    let (app, _, key) = app_with_owner().await;
    let (_, before) = read(app.get_with_key("/api/v1/api-keys", &key).await).await;
    let _ = before;
    let used = alumia_testkit::eventually(std::time::Duration::from_secs(5), || async {
        let (_, list) = read(app.get_with_key("/api/v1/api-keys", &key).await).await;
        let v = list["data"]["items"][0]["lastUsedAt"].clone();
        if v.is_string() {
            Ok(v)
        } else {
            Err(list.to_string())
        }
    })
    .await;
    assert!(used.as_str().unwrap().ends_with('Z'));
}
