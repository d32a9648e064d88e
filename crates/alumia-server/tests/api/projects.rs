//! `/api/v1/projects` (spec 06 §1): create, list, read, update, soft delete,
//! visibility through workspaces, and `projectId` in sessions and chat.

use std::time::Duration;

use alumia_core::model::Role;
use alumia_core::projects::FOLDER_SYSTEM_KIND;
use alumia_testkit::TestApp;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::chat::{chat, get, post};
use crate::{add_user, app_with_owner, assert_error, read};

async fn patch(app: &TestApp, key: &str, path: &str, body: Value) -> (u16, Value) {
    read(
        app.http
            .patch(app.at(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn delete(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    read(
        app.http
            .delete(app.at(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Creates a project; panics unless 201.
async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, body) = post(app, key, "/api/v1/projects", body).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

fn slugs(body: &Value) -> Vec<String> {
    body["data"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {body}"))
        .iter()
        .map(|p| p["slug"].as_str().unwrap().to_string())
        .collect()
}

async fn org_id(app: &TestApp, slug: &str) -> Uuid {
    app.store.get_org_by_slug(slug).await.unwrap().unwrap().id
}

async fn user_id(app: &TestApp, email: &str) -> Uuid {
    app.store
        .find_user_by_email(email)
        .await
        .unwrap()
        .unwrap()
        .user
        .id
}

#[tokio::test]
async fn projects_create_read_update_and_soft_delete() {
    let (app, _, key) = app_with_owner().await;
    let (_, ws) = get(&app, &key, "/api/v1/workspaces").await;
    let default_ws = ws["data"]["items"][0]["id"].as_str().unwrap().to_string();

    let p = create(
        &app,
        &key,
        json!({"name": "  Q3   Roadmap ", "emoji": "🗺", "tags": ["plan"], "prompt": "Be brief."}),
    )
    .await;
    assert_eq!(p["name"], "Q3 Roadmap", "names are normalised");
    assert_eq!(p["slug"], "q3-roadmap", "slugs derive from names");
    assert_eq!(p["visibility"], "team", "visibility defaults to team");
    assert_eq!(p["status"], "active");
    assert_eq!(
        p["workspaceId"], default_ws,
        "linked to the active workspace"
    );
    assert_eq!(p["sharedWorkspaceIds"], json!([]));
    assert_eq!(p["shareEnabled"], false);
    assert_eq!(p["tags"], json!(["plan"]));
    assert_eq!(p["metadata"], json!({}));
    assert!(p.get("shareTokenHash").is_none() && p.get("spend").is_none());
    let id = p["id"].as_str().unwrap().to_string();

    // The protected project folder comes with it.
    let pid: Uuid = id.parse().unwrap();
    assert_eq!(
        app.project_folders(pid).await,
        [(Some(FOLDER_SYSTEM_KIND.to_string()), true, false)],
        "one protected project folder"
    );

    for path in [
        format!("/api/v1/projects/{id}"),
        "/api/v1/projects/q3-roadmap".into(),
    ] {
        let (status, body) = get(&app, &key, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["data"]["id"], id.as_str());
        assert_eq!(
            body["data"]["workspaces"],
            json!([{"id": default_ws, "name": ws["data"]["items"][0]["name"], "isPrimary": true}])
        );
        assert_eq!(
            body["data"]["spend"],
            json!({"creditsMicrocredits": 0, "inputTokens": 0, "outputTokens": 0})
        );
    }

    let (status, body) = patch(
        &app,
        &key,
        "/api/v1/projects/q3-roadmap",
        json!({"name": "Q4 Roadmap", "slug": "q4", "status": "archived", "tags": ["a", "b"],
               "metadata": {"x": 1}, "description": "later", "visibility": "private"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let d = &body["data"];
    assert_eq!(
        (&d["name"], &d["slug"], &d["status"], &d["visibility"]),
        (
            &json!("Q4 Roadmap"),
            &json!("q4"),
            &json!("archived"),
            &json!("private")
        )
    );
    assert_eq!(
        (&d["tags"], &d["metadata"]),
        (&json!(["a", "b"]), &json!({"x": 1}))
    );
    assert_eq!(d["emoji"], "🗺", "absent fields stay");
    let (_, list) = get(&app, &key, "/api/v1/projects").await;
    assert_eq!(slugs(&list), ["q4"]);

    let (status, body) = delete(&app, &key, "/api/v1/projects/q4").await;
    assert_eq!(
        (status, body["data"]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    assert!(body["data"]["deletedAt"].is_string());
    let (status, body) = get(&app, &key, &format!("/api/v1/projects/{id}")).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    let (_, list) = get(&app, &key, "/api/v1/projects").await;
    assert_eq!(
        slugs(&list),
        Vec::<String>::new(),
        "deleted projects are not listed"
    );
    let (status, _) = delete(&app, &key, &format!("/api/v1/projects/{id}")).await;
    assert_eq!(status, 404, "deleting twice");
    assert_eq!(
        app.project_folders(pid).await,
        [(Some(FOLDER_SYSTEM_KIND.to_string()), true, true)],
        "the folder is soft-deleted with the project"
    );
}

#[tokio::test]
async fn derived_slugs_are_deduplicated_and_explicit_taken_slugs_are_409() {
    let (app, _, key) = app_with_owner().await;
    let a = create(&app, &key, json!({"name": "Roadmap"})).await;
    let b = create(&app, &key, json!({"name": "roadmap!"})).await;
    let c = create(&app, &key, json!({"name": "Roadmap"})).await;
    assert_eq!(
        [&a["slug"], &b["slug"], &c["slug"]],
        [&json!("roadmap"), &json!("roadmap-2"), &json!("roadmap-3")]
    );
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/projects",
        json!({"name": "Other", "slug": "roadmap"}),
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "slug_taken");
    let (status, body) = patch(
        &app,
        &key,
        "/api/v1/projects/roadmap-2",
        json!({"slug": "roadmap"}),
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "slug_taken");
    // A deleted project frees its slug.
    delete(&app, &key, "/api/v1/projects/roadmap").await;
    let d = create(&app, &key, json!({"name": "x", "slug": "roadmap"})).await;
    assert_eq!(d["slug"], "roadmap");
}

#[tokio::test]
async fn create_needs_a_name_or_description_and_checks_every_field() {
    let (app, _, key) = app_with_owner().await;
    let p = create(
        &app,
        &key,
        json!({"description": "Plan the spring launch of our new product line"}),
    )
    .await;
    assert_eq!(
        p["name"], "Plan the spring launch of our",
        "dev/echo: the first six words of the description"
    );
    assert_eq!(p["slug"], "plan-the-spring-launch-of-our");

    let cases = [
        (json!({}), "name", "neither name nor description"),
        (json!({"description": "   "}), "name", "a blank description"),
        (json!({"name": ""}), "name", "empty name"),
        (json!({"name": "x".repeat(256)}), "name", "name over 255"),
        (
            json!({"name": "x", "description": "d".repeat(5001)}),
            "description",
            "description over 5,000",
        ),
        (
            json!({"name": "x", "prompt": "p".repeat(12_001)}),
            "prompt",
            "prompt over 12,000",
        ),
        (
            json!({"name": "x", "emoji": "e".repeat(17)}),
            "emoji",
            "emoji over 16",
        ),
        (
            json!({"name": "x", "visibility": "public"}),
            "visibility",
            "unknown visibility",
        ),
        (
            json!({"name": "x", "status": "deleted"}),
            "status",
            "unknown status",
        ),
        (
            json!({"name": "x", "tags": vec!["t"; 21]}),
            "tags",
            "over 20 tags",
        ),
        (
            json!({"name": "x", "tags": ["t".repeat(65)]}),
            "tags",
            "tag over 64",
        ),
        (
            json!({"name": "x", "metadata": [1]}),
            "metadata",
            "metadata not an object",
        ),
        (
            json!({"name": "x", "metadata": {"b": "x".repeat(17 * 1024)}}),
            "metadata",
            "metadata over 16 KB",
        ),
        (
            json!({"name": "x", "slug": "Not A Slug"}),
            "slug",
            "bad slug",
        ),
    ];
    for (body, field, what) in cases {
        let (status, res) = post(&app, &key, "/api/v1/projects", body).await;
        assert_eq!(status, 422, "{what}: {res}");
        assert!(
            res["error"]["details"]["fields"].get(field).is_some()
                || res["error"].to_string().contains(field),
            "{what}: names {field}: {res}"
        );
    }
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/projects",
        json!({"name": "x", "workspaceId": Uuid::now_v7()}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    let (_, list) = get(&app, &key, "/api/v1/projects").await;
    assert_eq!(slugs(&list).len(), 1, "refused creates store nothing");
}

#[tokio::test]
async fn lists_filter_by_workspace_status_q_and_tag_in_cursor_pages() {
    let (app, _, key) = app_with_owner().await;
    let owner = user_id(&app, "owner@example.com").await;
    let side = app
        .add_workspace(org_id(&app, "acme").await, "Side", &[owner])
        .await;
    create(
        &app,
        &key,
        json!({"name": "Alpha", "tags": ["red", "green"]}),
    )
    .await;
    create(
        &app,
        &key,
        json!({"name": "Beta", "description": "launch plan", "status": "archived"}),
    )
    .await;
    create(
        &app,
        &key,
        json!({"name": "Gamma", "tags": ["reddish"], "workspaceId": side}),
    )
    .await;
    create(&app, &key, json!({"name": "Delta"})).await;

    let (_, all) = get(&app, &key, "/api/v1/projects").await;
    assert_eq!(
        slugs(&all),
        ["delta", "gamma", "beta", "alpha"],
        "updatedAt desc"
    );
    let cases = [
        (format!("workspaceId={side}"), vec!["gamma"], "workspaceId"),
        ("status=archived".to_string(), vec!["beta"], "status"),
        (
            "status=active".to_string(),
            vec!["delta", "gamma", "alpha"],
            "status active",
        ),
        ("q=LAUNCH".to_string(), vec!["beta"], "q in the description"),
        ("q=alp".to_string(), vec!["alpha"], "q in the name"),
        (
            "tag=red".to_string(),
            vec!["alpha"],
            "tag matches whole tags",
        ),
    ];
    for (query, want, what) in cases {
        let (status, body) = get(&app, &key, &format!("/api/v1/projects?{query}")).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(slugs(&body), want, "{what}");
    }

    let (_, first) = get(&app, &key, "/api/v1/projects?limit=3").await;
    assert_eq!(slugs(&first), ["delta", "gamma", "beta"]);
    assert_eq!(first["data"]["hasMore"], true);
    let cursor = first["data"]["nextCursor"].as_str().unwrap().to_string();
    let (_, second) = get(
        &app,
        &key,
        &format!("/api/v1/projects?limit=3&cursor={cursor}"),
    )
    .await;
    assert_eq!(slugs(&second), ["alpha"]);
    assert_eq!(second["data"]["hasMore"], false);
    let (status, body) = get(
        &app,
        &key,
        &format!("/api/v1/projects?limit=3&status=active&cursor={cursor}"),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_cursor");
    let (status, _) = get(&app, &key, "/api/v1/projects?status=gone").await;
    assert_eq!(status, 422);
    let (status, _) = get(&app, &key, "/api/v1/projects?limit=0").await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn private_projects_and_workspaces_limit_who_sees_them() {
    let (app, _, key) = app_with_owner().await;
    let org = org_id(&app, "acme").await;
    let bob = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    let (bob_key, _) = bob.mint_key("bob", None).await;
    let carol = add_user(&app, "carol@example.com", "acme", Some(Role::Member)).await;
    let (carol_key, _) = carol.mint_key("carol", None).await;
    let carol_id = user_id(&app, "carol@example.com").await;
    let secret_ws = app.add_workspace(org, "Secret", &[carol_id]).await;

    create(&app, &key, json!({"name": "Team"})).await;
    let private = create(&app, &key, json!({"name": "Mine", "visibility": "private"})).await;
    let secret = create(
        &app,
        &key,
        json!({"name": "Secret plan", "workspaceId": secret_ws}),
    )
    .await;

    let (_, owner_list) = get(&app, &key, "/api/v1/projects").await;
    assert_eq!(
        slugs(&owner_list),
        ["secret-plan", "mine", "team"],
        "the owner sees all of them"
    );
    let (_, bob_list) = get(&app, &bob_key, "/api/v1/projects").await;
    assert_eq!(
        slugs(&bob_list),
        ["team"],
        "neither another's private project nor another workspace's"
    );
    let (_, carol_list) = get(&app, &carol_key, "/api/v1/projects").await;
    assert_eq!(
        slugs(&carol_list),
        ["secret-plan", "team"],
        "a member of the workspace sees it"
    );
    for p in [&private, &secret] {
        for r in [&p["id"], &p["slug"]] {
            let path = format!("/api/v1/projects/{}", r.as_str().unwrap());
            let (status, body) = get(&app, &bob_key, &path).await;
            assert_error(status, &body, 404, "NOT_FOUND", "not_found");
            let (status, _) = patch(&app, &bob_key, &path, json!({"name": "x"})).await;
            assert_eq!(status, 404, "{path}: invisible is 404 for PATCH");
            let (status, _) = delete(&app, &bob_key, &path).await;
            assert_eq!(status, 404, "{path}: invisible is 404 for DELETE");
        }
    }

    // Sharing the project with the default workspace makes it visible to Bob.
    let (status, body) = patch(
        &app,
        &key,
        "/api/v1/projects/secret-plan",
        json!({"sharedWorkspaceIds": [owner_list["data"]["items"][2]["workspaceId"]]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&app, &bob_key, "/api/v1/projects/secret-plan").await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<_> = body["data"]["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].clone(), w["isPrimary"].clone()))
        .collect();
    assert_eq!(names[0], (json!("Secret"), json!(true)));
    assert_eq!(names.len(), 2, "{body}");

    // Visibility and workspaces: the creator or an admin only.
    for change in [
        json!({"visibility": "private"}),
        json!({"workspaceId": secret_ws}),
        json!({"sharedWorkspaceIds": []}),
    ] {
        let (status, body) = patch(&app, &bob_key, "/api/v1/projects/team", change).await;
        assert_error(status, &body, 403, "FORBIDDEN", "not_project_creator");
    }
    let (status, _) = patch(
        &app,
        &bob_key,
        "/api/v1/projects/team",
        json!({"name": "Team 2"}),
    )
    .await;
    assert_eq!(status, 200, "other fields are open to members who see it");
    let bobs = create(&app, &bob_key, json!({"name": "Bobs"})).await;
    let (status, _) = patch(
        &app,
        &bob_key,
        "/api/v1/projects/bobs",
        json!({"visibility": "private"}),
    )
    .await;
    assert_eq!(status, 200, "the creator may");
    let (status, _) = get(&app, &key, "/api/v1/projects/bobs").await;
    assert_eq!(status, 404, "a private project is its creator's only");
    let (status, body) = patch(
        &app,
        &bob_key,
        "/api/v1/projects/bobs",
        json!({"visibility": "team"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = patch(
        &app,
        &key,
        &format!("/api/v1/projects/{}", bobs["id"].as_str().unwrap()),
        json!({"visibility": "private"}),
    )
    .await;
    assert_eq!(status, 200, "an org admin may: {body}");
}

#[tokio::test]
async fn another_orgs_project_is_404_by_id_and_by_slug() {
    let (app, _, key) = app_with_owner().await;
    let p = create(&app, &key, json!({"name": "Website"})).await;
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    for r in [&p["id"], &p["slug"]] {
        let path = format!("/api/v1/projects/{}", r.as_str().unwrap());
        let (status, body) = get(&app, &eve_key, &path).await;
        assert_error(status, &body, 404, "NOT_FOUND", "not_found");
        let (status, _) = patch(&app, &eve_key, &path, json!({"name": "pwned"})).await;
        assert_eq!(status, 404);
        let (status, _) = delete(&app, &eve_key, &path).await;
        assert_eq!(status, 404);
    }
    let (_, list) = get(&app, &eve_key, "/api/v1/projects").await;
    assert_eq!(slugs(&list), Vec::<String>::new());
    // Slugs are unique per org: Eve's org may use the same one.
    let theirs = create(&app, &eve_key, json!({"name": "Website"})).await;
    assert_eq!(theirs["slug"], "website");
    // Eve cannot attach a session to Acme's project.
    for r in [&p["id"], &p["slug"]] {
        let (status, body) =
            post(&app, &eve_key, "/api/v1/sessions", json!({"projectId": r})).await;
        if r == &p["slug"] {
            assert_eq!(status, 201, "the slug names Eve's own project: {body}");
            assert_eq!(body["data"]["projectId"], theirs["id"]);
        } else {
            assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
        }
    }
    let (_, acme) = get(&app, &key, "/api/v1/projects/website").await;
    assert_eq!(acme["data"]["name"], "Website", "untouched");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_create() {
    let (app, _, key) = app_with_owner().await;
    let send = |body: Value, idem: &'static str| {
        app.http
            .post(app.at("/api/v1/projects"))
            .bearer_auth(&key)
            .header("Idempotency-Key", idem)
            .json(&body)
            .send()
    };
    let (s1, first) = read(send(json!({"name": "Once"}), "proj-1").await.unwrap()).await;
    let (s2, again) = read(send(json!({"name": "Once"}), "proj-1").await.unwrap()).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, again, "the replay returns the first answer");
    let (_, list) = get(&app, &key, "/api/v1/projects").await;
    assert_eq!(slugs(&list), ["once"], "one project");
    let (status, body) = read(send(json!({"name": "Twice"}), "proj-1").await.unwrap()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["reason"], "idempotency_key_reused");
}

#[tokio::test]
async fn sessions_and_chat_resolve_project_ids_and_deleting_hides_them() {
    let (app, _, key) = app_with_owner().await;
    let p = create(&app, &key, json!({"name": "Website"})).await;
    let other = create(&app, &key, json!({"name": "Other"})).await;
    let pid = p["id"].as_str().unwrap().to_string();

    let (status, body) = post(
        &app,
        &key,
        "/api/v1/sessions",
        json!({"projectId": "website", "label": "in"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"]["projectId"],
        pid.as_str(),
        "a slug resolves to the project id"
    );
    assert_eq!(body["data"]["workspaceId"], p["workspaceId"]);
    let in_project = body["data"]["id"].as_str().unwrap().to_string();
    let (_, body) = post(&app, &key, "/api/v1/sessions", json!({"label": "out"})).await;
    let outside = body["data"]["id"].as_str().unwrap().to_string();
    let (status, body) = post(&app, &key, "/api/v1/sessions", json!({"projectId": "nope"})).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");

    // Chat: a new session in the project; usage counts toward its spend.
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "hello project"}], "projectId": pid}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let chat_session = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    res.text().await.unwrap();
    let (_, s) = get(&app, &key, &format!("/api/v1/sessions/{chat_session}")).await;
    assert_eq!(s["data"]["projectId"], pid.as_str());
    let spend = alumia_testkit::eventually(Duration::from_secs(5), || async {
        let (_, body) = get(&app, &key, "/api/v1/projects/website").await;
        let spend = body["data"]["spend"].clone();
        if spend["inputTokens"].as_i64().unwrap_or(0) > 0 {
            Ok(spend)
        } else {
            Err(body.to_string())
        }
    })
    .await;
    assert!(spend["outputTokens"].as_i64().unwrap() > 0, "{spend}");
    let (_, body) = get(&app, &key, "/api/v1/projects/other").await;
    assert_eq!(
        body["data"]["spend"]["inputTokens"], 0,
        "spend is per project"
    );

    for (body, what) in [
        (
            json!({"messages": [{"role": "user", "content": "x"}], "projectId": "ghost"}),
            "unknown project",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "projectId": other["id"], "sessionId": chat_session}),
            "a session of another project",
        ),
    ] {
        let (status, body) = read(chat(&app, &key, body).await).await;
        assert!(status == 400 || status == 422, "{what}: {status} {body}");
        assert_eq!(body["success"], false, "{what}");
    }

    let (status, body) = get(&app, &key, "/api/v1/sessions?projectId=website").await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<_> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want = vec![in_project.clone(), chat_session.clone()];
    want.sort();
    assert_eq!(ids, want, "projectId filters the session list");
    let (status, _) = get(&app, &key, "/api/v1/sessions?projectId=ghost").await;
    assert_eq!(status, 404);

    let (status, _) = delete(&app, &key, "/api/v1/projects/website").await;
    assert_eq!(status, 200);
    for s in [&in_project, &chat_session] {
        let (status, _) = get(&app, &key, &format!("/api/v1/sessions/{s}")).await;
        assert_eq!(status, 404, "a deleted project's sessions are gone");
    }
    let (status, _) = get(&app, &key, &format!("/api/v1/sessions/{outside}")).await;
    assert_eq!(status, 200, "other sessions stay");
    let (_, body) = get(&app, &key, "/api/v1/sessions").await;
    let listed: Vec<_> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, [outside], "and are not listed");
}

#[tokio::test]
async fn the_project_prompt_reaches_every_turn_in_its_sessions() {
    let (app, _, key) = app_with_owner().await;
    create(&app, &key, json!({"name": "Plain"})).await;
    create(
        &app,
        &key,
        json!({"name": "Prompted", "prompt": "one two three four five six seven"}),
    )
    .await;
    for project in ["plain", "prompted"] {
        let res = chat(
            &app,
            &key,
            json!({"messages": [{"role": "user", "content": "same words here"}], "projectId": project}),
        )
        .await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap();
    }
    // dev/echo counts the words of the system prompt as input tokens.
    let input = |slug: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            alumia_testkit::eventually(Duration::from_secs(5), || async {
                let (_, body) = get(app, key, &format!("/api/v1/projects/{slug}")).await;
                match body["data"]["spend"]["inputTokens"].as_i64() {
                    Some(n) if n > 0 => Ok(n),
                    _ => Err(body.to_string()),
                }
            })
            .await
        }
    };
    let (plain, prompted) = (input("plain").await, input("prompted").await);
    assert_eq!(prompted - plain, 7, "the seven words of the project prompt");
}

#[tokio::test]
async fn listing_projects_creates_missing_project_folders_once() {
    let (app, _, key) = app_with_owner().await;
    let p = create(&app, &key, json!({"name": "Legacy"})).await;
    let pid: Uuid = p["id"].as_str().unwrap().parse().unwrap();
    // A project from before folders: its folder row is gone.
    let removed = app
        .execute_sql(&format!("DELETE FROM files WHERE project_id = '{pid}'"))
        .await;
    assert_eq!(removed, 1);
    assert!(app.project_folders(pid).await.is_empty());

    let (status, body) = get(&app, &key, "/api/v1/projects").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.project_folders(pid).await,
        vec![(Some(FOLDER_SYSTEM_KIND.to_string()), true, false)],
        "the list made the protected folder"
    );
    // Concurrent lists still leave exactly one.
    app.execute_sql(&format!("DELETE FROM files WHERE project_id = '{pid}'"))
        .await;
    let lists = (0..6).map(|_| get(&app, &key, "/api/v1/projects"));
    for (status, _) in futures::future::join_all(lists).await {
        assert_eq!(status, 200);
    }
    assert_eq!(app.project_folders(pid).await.len(), 1);
}

mod pg {
    use alumia_testkit::{TestApp, TestDb, fresh_pg_database};

    use super::*;

    /// Concurrent lists on PostgreSQL make one folder (the unique index).
    #[tokio::test]
    async fn concurrent_lists_backfill_one_folder_on_postgres() {
        let db = fresh_pg_database().await;
        let app = TestApp::builder()
            .db(TestDb::Url(db.url.clone()))
            .spawn()
            .await;
        let mut browser = app.browser();
        browser.setup("owner@example.com", "acme").await;
        let (key, _) = browser.mint_key("k", None).await;
        let p = create(&app, &key, json!({"name": "Legacy"})).await;
        let pid: Uuid = p["id"].as_str().unwrap().parse().unwrap();
        for _ in 0..3 {
            app.execute_sql(&format!("DELETE FROM files WHERE project_id = '{pid}'"))
                .await;
            let lists = (0..8).map(|_| get(&app, &key, "/api/v1/projects"));
            for (status, body) in futures::future::join_all(lists).await {
                assert_eq!(status, 200, "{body}");
            }
            assert_eq!(app.project_folders(pid).await.len(), 1);
        }
        app.stop().await;
        db.drop_db().await;
    }
}
