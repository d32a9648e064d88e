//! `/api/v1/sessions`: creation with participants, listing, status rules.

use serde_json::json;

use crate::{add_user, app_with_owner, assert_error, read};

#[tokio::test]
async fn sessions_are_created_listed_updated_and_soft_deleted() {
    let (app, _owner, key) = app_with_owner().await;
    let post = |path: &str, body: serde_json::Value| {
        app.http
            .post(app.at(path))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let (_, agent) = read(
        post("/api/v1/agents", json!({"name": "Writer"}))
            .await
            .unwrap(),
    )
    .await;
    let agent_id = agent["data"]["id"].as_str().unwrap().to_string();

    let (status, s1) = read(
        post(
            "/api/v1/sessions",
            json!({"agentId": "writer", "metadata": {"source": "ci"}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{s1}");
    assert_eq!(s1["data"]["label"], "New chat");
    assert_eq!(s1["data"]["status"], "active");
    assert_eq!(s1["data"]["relationship"], "direct");
    assert_eq!(s1["data"]["agentId"], agent_id.as_str());
    assert_eq!(s1["data"]["workspaceId"], agent["data"]["workspaceId"]);
    assert_eq!(s1["data"]["messageCount"], 0);
    assert!(s1["data"]["runningTurn"].is_null());
    let kinds: Vec<&str> = s1["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"user") && kinds.contains(&"agent"));

    let (status, s2) = read(
        post("/api/v1/sessions", json!({"label": "Plain"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{s2}");
    assert!(s2["data"]["agentId"].is_null());

    let (_, list) = read(app.get_with_key("/api/v1/sessions", &key).await).await;
    let labels: Vec<&str> = list["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Plain", "New chat"]);
    assert_eq!(list["data"]["items"][1]["agentName"], "Writer");
    let (_, by_agent) = read(
        app.get_with_key("/api/v1/agents/writer/sessions", &key)
            .await,
    )
    .await;
    assert_eq!(by_agent["data"]["items"].as_array().unwrap().len(), 1);
    let (_, filtered) = read(
        app.get_with_key(&format!("/api/v1/sessions?agentId={agent_id}"), &key)
            .await,
    )
    .await;
    assert_eq!(filtered["data"]["items"].as_array().unwrap().len(), 1);

    let id = s2["data"]["id"].as_str().unwrap();
    let patch = |body: serde_json::Value| {
        app.http
            .patch(app.at(&format!("/api/v1/sessions/{id}")))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let (status, body) = read(patch(json!({"status": "paused"})).await.unwrap()).await;
    assert_eq!(status, 422, "server-owned status: {body}");
    let (status, body) = read(
        patch(json!({"label": "Renamed", "status": "archived"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("archived")),
        "{body}"
    );
    let (_, list) = read(app.get_with_key("/api/v1/sessions", &key).await).await;
    assert_eq!(
        list["data"]["items"].as_array().unwrap().len(),
        1,
        "archived are hidden by default"
    );
    let (_, archived) = read(
        app.get_with_key("/api/v1/sessions?status=archived", &key)
            .await,
    )
    .await;
    assert_eq!(archived["data"]["items"][0]["label"], "Renamed");

    let res = app
        .http
        .delete(app.at(&format!("/api/v1/sessions/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!((status, body["data"]["id"].as_str()), (200, Some(id)));
    let (status, _) = read(
        app.get_with_key(&format!("/api/v1/sessions/{id}"), &key)
            .await,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_session_input_gets_clean_errors_and_other_orgs_get_404() {
    let (app, _owner, key) = app_with_owner().await;
    let post = |body: serde_json::Value| {
        app.http
            .post(app.at("/api/v1/sessions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let (status, body) = read(post(json!({"agentId": "nobody"})).await.unwrap()).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    let (status, body) = read(post(json!({"projectId": "website"})).await.unwrap()).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    let (status, body) = read(post(json!({"label": ""})).await.unwrap()).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = read(
        post(json!({"metadata": {"blob": "x".repeat(17 * 1024)}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = read(post(json!({"metadata": [1, 2]})).await.unwrap()).await;
    assert_eq!(status, 422, "{body}");

    let (_, mine) = read(post(json!({"label": "mine"})).await.unwrap()).await;
    let id = mine["data"]["id"].as_str().unwrap();
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let (status, body) = read(
        app.get_with_key(&format!("/api/v1/sessions/{id}"), &eve_key)
            .await,
    )
    .await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    let res = app
        .http
        .delete(app.at(&format!("/api/v1/sessions/{id}")))
        .bearer_auth(&eve_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let (_, theirs) = read(app.get_with_key("/api/v1/sessions", &eve_key).await).await;
    assert_eq!(theirs["data"]["items"], json!([]));
    // Eve's agent cannot be used in Acme's sessions.
    let (_, evil_agent) = read(eve.post("/api/v1/agents", json!({"name": "Spy"})).await).await;
    let spy = evil_agent["data"]["id"].as_str().unwrap();
    let (status, body) = read(post(json!({"agentId": spy})).await.unwrap()).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    assert_eq!(
        app.get_with_key(&format!("/api/v1/sessions/{id}"), &key)
            .await
            .status(),
        200
    );
}
