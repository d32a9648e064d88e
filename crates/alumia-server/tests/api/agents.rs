//! `/api/v1/agents`: the agent rules of spec 03 §1, and Ala.

use alumia_core::model::Role;
use chrono::Duration;
use serde_json::json;

use crate::{add_user, app_with_owner, assert_error, read};

#[tokio::test]
async fn ala_exists_in_every_org_and_is_protected() {
    let (app, owner, key) = app_with_owner().await;
    let (status, body) = read(app.get_with_key("/api/v1/agents", &key).await).await;
    assert_eq!(status, 200, "{body}");
    let items = body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let ala = &items[0];
    assert_eq!(
        (ala["slug"].as_str(), ala["isDefault"].as_bool()),
        (Some("ala"), Some(true))
    );
    assert!(ala["workspaceId"].is_null());
    assert_eq!(
        ala["model"], "dev/echo",
        "Ala reports the org default model"
    );

    for (patch, what) in [
        (json!({"slug": "bob"}), "slug"),
        (json!({"model": "dev/echo"}), "model"),
        (json!({"isActive": false}), "deactivation"),
    ] {
        let res = app
            .http
            .patch(app.at("/api/v1/agents/ala"))
            .bearer_auth(&key)
            .json(&patch)
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_error(status, &body, 403, "FORBIDDEN", "default_agent_protected");
        let _ = what;
    }
    let res = app
        .http
        .delete(app.at("/api/v1/agents/ala"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "default_agent_protected");
    // Name and prompt are editable.
    let res = app
        .http
        .patch(app.at("/api/v1/agents/ala"))
        .bearer_auth(&key)
        .json(&json!({"name": "Ala  the   Helper", "systemPrompt": "Be kind."}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "Ala the Helper");
    assert_eq!(body["data"]["slug"], "ala");

    // A second org gets its own Ala.
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (_, theirs) = read(eve.get("/api/v1/agents").await).await;
    assert_eq!(theirs["data"]["items"][0]["slug"], "ala");
    assert_ne!(theirs["data"]["items"][0]["id"], ala["id"]);
    drop(owner);
}

#[tokio::test]
async fn agents_are_created_with_derived_slugs_and_validated() {
    let (app, _owner, key) = app_with_owner().await;
    let post = |body: serde_json::Value| {
        app.http
            .post(app.at("/api/v1/agents"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let (status, first) = read(
        post(json!({"name": "  Research   Bot ", "description": "finds things"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["data"]["name"], "Research Bot");
    assert_eq!(first["data"]["slug"], "research-bot");
    assert_eq!(first["data"]["model"], "dev/echo");
    assert_eq!(first["data"]["allowedPeers"], json!(["*"]));
    assert!(
        first["data"]["allowedTools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "echo")
    );
    let (_, ws) = read(app.get_with_key("/api/v1/workspaces", &key).await).await;
    assert_eq!(first["data"]["workspaceId"], ws["data"]["items"][0]["id"]);
    let (_, second) = read(post(json!({"name": "Research Bot"})).await.unwrap()).await;
    assert_eq!(second["data"]["slug"], "research-bot-2");

    let (status, body) = read(
        post(json!({"name": "x", "slug": "research-bot"}))
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "slug_taken");
    for name in ["Ala", "ala", "ALA"] {
        let (status, body) = read(post(json!({"name": name})).await.unwrap()).await;
        assert_error(status, &body, 422, "VALIDATION_ERROR", "reserved_name");
    }
    let (status, body) = read(
        post(json!({"name": "m", "model": "gpt-nope"}))
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "unknown_model");
    let (status, body) = read(post(json!({"name": "x".repeat(256)})).await.unwrap()).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = read(post(json!({"description": "no name"})).await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["details"]["fields"]["name"].is_string());
    let (status, body) = read(
        post(json!({"name": "w", "workspaceId": "00000000-0000-0000-0000-000000000000"}))
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");

    // By uuid or slug; list newest-updated first with Ala included.
    let id = first["data"]["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/agents/{id}"),
        "/api/v1/agents/research-bot".to_string(),
    ] {
        let (status, body) = read(app.get_with_key(&path, &key).await).await;
        assert_eq!(
            (status, body["data"]["id"].as_str()),
            (200, Some(id)),
            "{path}"
        );
    }
    let (_, list) = read(app.get_with_key("/api/v1/agents?limit=2", &key).await).await;
    assert_eq!(list["data"]["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"]["hasMore"], true);
}

#[tokio::test]
async fn restrictions_need_a_fresh_browser_step_up() {
    let (app, owner, key) = app_with_owner().await;
    let body = json!({"name": "locked", "allowedTools": ["echo"], "allowedPeers": []});
    let res = app
        .http
        .post(app.at("/api/v1/agents"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, res) = read(res).await;
    assert_error(status, &res, 403, "FORBIDDEN", "browser_session_required");
    let (status, created) = read(owner.post("/api/v1/agents", body.clone()).await).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["allowedTools"], json!(["echo"]));
    assert_eq!(created["data"]["allowedPeers"], json!([]));
    app.clock.advance(Duration::seconds(601));
    let res = owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/agents/locked",
            Some(json!({"allowedPeers": ["*"]})),
        )
        .await;
    let (status, res) = read(res).await;
    assert_error(status, &res, 403, "FORBIDDEN", "step_up_required");
    // Other fields need no step-up.
    let res = owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/agents/locked",
            Some(json!({"description": "d"})),
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn deleted_and_foreign_agents_are_not_found() {
    let (app, _owner, key) = app_with_owner().await;
    let res = app
        .http
        .post(app.at("/api/v1/agents"))
        .bearer_auth(&key)
        .json(&json!({"name": "temp"}))
        .send()
        .await
        .unwrap();
    let (_, created) = read(res).await;
    let id = created["data"]["id"].as_str().unwrap().to_string();

    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    for path in [format!("/api/v1/agents/{id}"), "/api/v1/agents/temp".into()] {
        let (status, body) = read(app.get_with_key(&path, &eve_key).await).await;
        assert_error(status, &body, 404, "NOT_FOUND", "not_found");
        let res = app
            .http
            .delete(app.at(&path))
            .bearer_auth(&eve_key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    let member = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    let (status, _) = read(member.get(&format!("/api/v1/agents/{id}")).await).await;
    assert_eq!(status, 200, "members reach the default workspace");

    let res = app
        .http
        .delete(app.at(&format!("/api/v1/agents/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(
        (status, body["data"]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    assert!(body["data"]["deletedAt"].is_string());
    let (status, _) = read(
        app.get_with_key(&format!("/api/v1/agents/{id}"), &key)
            .await,
    )
    .await;
    assert_eq!(status, 404);
    let res = app
        .http
        .delete(app.at(&format!("/api/v1/agents/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let (_, list) = read(app.get_with_key("/api/v1/agents", &key).await).await;
    assert!(
        list["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != id.as_str())
    );
}
