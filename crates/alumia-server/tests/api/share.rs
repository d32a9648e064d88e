//! Sharing a project (spec 06 §5): share links, invites, the public payload
//! and page, revocation, and the `public-share` bucket.

use alumia_core::limits::{Bucket, Limits, Quota};
use alumia_core::model::Role;
use alumia_testkit::{Browser, TestApp};
use serde_json::{Value, json};

use crate::chat::{chat, get, post};
use crate::{add_user, app_with_owner, assert_error, read};

async fn bpost(b: &Browser, path: &str, body: Value) -> (u16, Value) {
    read(b.post(path, body).await).await
}

async fn bdelete(b: &Browser, path: &str) -> (u16, Value) {
    read(b.delete(path).await).await
}

/// The public payload, with no credential at all.
async fn public(app: &TestApp, token: &str) -> (u16, Value) {
    read(
        app.http
            .get(app.at(&format!("/api/v1/share/project/{token}")))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn project(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, body) = post(app, key, "/api/v1/projects", body).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

fn share_path(p: &Value) -> String {
    format!("/api/v1/projects/{}/share", p["id"].as_str().unwrap())
}

/// The token at the end of an invite answer's `inviteUrl`.
pub fn invite_token(body: &Value) -> String {
    let url = body["data"]["inviteUrl"].as_str().expect("an inviteUrl");
    url.rsplit('/').next().unwrap().to_string()
}

/// A token that is well formed and belongs to nothing.
fn stranger_token() -> String {
    alumia_core::sharing::new_token()
}

#[tokio::test]
async fn managing_links_needs_a_stepped_up_browser_and_the_creator_or_an_admin() {
    let (app, owner, key) = app_with_owner().await;
    let p = project(&app, &key, json!({"name": "Launch"})).await;
    let path = share_path(&p);
    let invite = format!("{path}/invite");

    // Keys never manage links, not even the owner's.
    let (status, body) = post(&app, &key, &path, json!({})).await;
    assert_error(status, &body, 403, "FORBIDDEN", "browser_session_required");
    let (status, body) = post(&app, &key, &invite, json!({})).await;
    assert_error(status, &body, 403, "FORBIDDEN", "browser_session_required");
    let res = app
        .http
        .delete(app.at(&path))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "browser_session_required");

    // A member who sees the project is neither its creator nor an admin.
    let bob = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    assert_eq!(
        bob.step_up(alumia_testkit::TEST_PASSWORD).await.status(),
        200
    );
    let (status, body) = bpost(&bob, &path, json!({})).await;
    assert_error(status, &body, 403, "FORBIDDEN", "not_project_creator");
    let (status, body) = bpost(&bob, &invite, json!({})).await;
    assert_error(status, &body, 403, "FORBIDDEN", "not_project_creator");

    // Another org's browser does not learn the project exists.
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    assert_eq!(
        eve.step_up(alumia_testkit::TEST_PASSWORD).await.status(),
        200
    );
    let (status, body) = bpost(&eve, &path, json!({})).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");

    // A stale step-up is refused; nothing was enabled by any of the above.
    app.clock.advance(chrono::Duration::hours(1));
    let (status, body) = bpost(&owner, &path, json!({})).await;
    assert_error(status, &body, 403, "FORBIDDEN", "step_up_required");
    let (_, got) = get(
        &app,
        &key,
        &format!("/api/v1/projects/{}", p["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(got["data"]["shareEnabled"], false, "{got}");

    assert_eq!(
        owner.step_up(alumia_testkit::TEST_PASSWORD).await.status(),
        200
    );
    let (status, body) = bpost(&owner, &path, json!({"rotate": "yes"})).await;
    assert_eq!(status, 400, "a wrong type is refused: {body}");
    let (status, body) = bpost(&owner, &path, json!({"extra": 1})).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let (status, body) = bpost(&owner, &path, json!({})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_share_link_shows_a_read_only_view_until_it_is_revoked() {
    let (app, owner, key) = app_with_owner().await;
    let p = project(
        &app,
        &key,
        json!({"name": "Launch", "emoji": "🚀", "description": "Spring", "prompt": "SECRET-PROMPT"}),
    )
    .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/reason PRIVATE-THOUGHT\nhello world"}], "projectId": pid}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let session = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    res.text().await.unwrap();
    // A session outside the project is never part of the share.
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "elsewhere"}]}),
    )
    .await;
    res.text().await.unwrap();

    let (status, block) = post(
        &app,
        &key,
        &format!("/api/v1/projects/{pid}/blocks"),
        json!({"type": "data", "title": "Plan", "data": {"type": "markdown", "markdown": "# Go"}}),
    )
    .await;
    assert_eq!(status, 201, "{block}");

    assert_eq!(
        owner.step_up(alumia_testkit::TEST_PASSWORD).await.status(),
        200
    );
    let path = share_path(&p);
    let (status, body) = bpost(&owner, &path, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 72);
    assert_eq!(body["data"]["enabled"], true);
    assert_eq!(
        body["data"]["shareUrl"],
        format!("{}/share/project/{token}", app.url)
    );

    // The token never comes back through the project.
    let (_, got) = get(&app, &key, &format!("/api/v1/projects/{pid}")).await;
    assert_eq!(got["data"]["shareEnabled"], true);
    assert!(!got.to_string().contains(&token), "{got}");

    // Without `rotate` the same link; with it a new one, and the old is dead.
    let (_, again) = bpost(&owner, &path, json!({})).await;
    assert_eq!(again["data"]["token"], token.as_str());
    assert_eq!(again["data"]["createdAt"], body["data"]["createdAt"]);

    let (status, view) = public(&app, &token).await;
    assert_eq!(status, 200, "{view}");
    let data = &view["data"];
    assert_eq!(
        data["project"],
        json!({"name": "Launch", "description": "Spring", "emoji": "🚀"})
    );
    let sessions = data["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "only the project's sessions: {data}");
    assert_eq!(sessions[0]["id"], session.as_str());
    assert_eq!(sessions[0]["agentName"], "Ala");
    let texts: Vec<String> = sessions[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["parts"].as_array().unwrap().clone())
        .map(|part| {
            assert!(
                part["type"] == "text"
                    || part["type"].as_str().unwrap().starts_with("tool-")
                    || part["type"] == "dynamic-tool",
                "only text and tool parts are shared: {part}"
            );
            part["text"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("echo: hello world")),
        "{texts:?}"
    );
    assert_eq!(data["agentNodes"][0]["sessionId"], session.as_str());
    assert_eq!(data["blocks"][0]["id"], block["data"]["id"]);
    assert_eq!(data["blocks"][0]["data"]["markdown"], "# Go");
    assert!(data["blocks"][0]["createdBy"].is_null(), "{data}");
    assert!(data["edges"].is_array());
    let text = view.to_string();
    // The stored reply has a reasoning part; the share leaves it out.
    let (_, stored) = get(&app, &key, &format!("/api/v1/sessions/{session}/messages")).await;
    assert!(
        stored.to_string().contains(r#""type":"reasoning""#),
        "the fixture has reasoning: {stored}"
    );
    assert!(!text.contains(r#""type":"reasoning""#), "{text}");
    for private in [
        "SECRET-PROMPT",
        "owner@example.com",
        p["orgId"].as_str().unwrap(),
        token.as_str(),
    ] {
        assert!(!text.contains(private), "{private} leaked: {text}");
    }

    let (_, rotated) = bpost(&owner, &path, json!({"rotate": true})).await;
    let new_token = rotated["data"]["token"].as_str().unwrap().to_string();
    assert_ne!(new_token, token);
    let (status, body) = public(&app, &token).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    assert_eq!(public(&app, &new_token).await.0, 200);

    // Revocation is immediate; re-enabling never revives an old token.
    let (status, body) = bdelete(&owner, &path).await;
    assert_eq!((status, &body["data"]), (200, &json!({"enabled": false})));
    assert_eq!(public(&app, &new_token).await.0, 404);
    let (_, got) = get(&app, &key, &format!("/api/v1/projects/{pid}")).await;
    assert_eq!(got["data"]["shareEnabled"], false);
    let (_, back) = bpost(&owner, &path, json!({})).await;
    let third = back["data"]["token"].as_str().unwrap().to_string();
    assert!(third != token && third != new_token);
    assert_eq!(public(&app, &third).await.0, 200);

    // Deleting the project takes the link with it.
    let res = app
        .http
        .delete(app.at(&format!("/api/v1/projects/{pid}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(public(&app, &third).await.0, 404);
}

#[tokio::test]
async fn guessed_tokens_are_404_and_the_public_bucket_limits_guessing() {
    let mut limits = Limits::default();
    limits.set(Bucket::PublicShare, Quota::per_secs(5, 3600));
    let app = TestApp::builder().limits(limits).spawn().await;
    let mut owner = app.browser();
    owner.setup("owner@example.com", "acme").await;
    let (key, _) = owner.mint_key("k", None).await;
    let p = project(&app, &key, json!({"name": "Launch"})).await;
    let (_, shared) = bpost(&owner, &share_path(&p), json!({})).await;
    let token = shared["data"]["token"].as_str().unwrap().to_string();

    assert_eq!(public(&app, &token).await.0, 200);
    for guess in [
        stranger_token(),
        "short".to_string(),
        format!("{}*", &token[..71]),
    ] {
        let (status, body) = public(&app, &guess).await;
        assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    }
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.at(&format!("/api/v1/share/lab/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308, "the lab route redirects");
    assert_eq!(
        res.headers()["location"],
        format!("/api/v1/share/project/{token}").as_str()
    );
    // Five tokens spent; the sixth request is refused, the real token too.
    let (status, body) = public(&app, &token).await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "public-share");
}

#[tokio::test]
async fn the_share_page_renders_for_good_tokens_and_redirects_the_short_form() {
    let (app, owner, key) = app_with_owner().await;
    let p = project(&app, &key, json!({"name": "Launch"})).await;
    let (_, shared) = bpost(&owner, &share_path(&p), json!({})).await;
    let token = shared["data"]["token"].as_str().unwrap().to_string();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let res = no_redirects
        .get(app.at(&format!("/share/project/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert!(res.text().await.unwrap().contains(r#"data-page="share""#));
    let res = no_redirects
        .get(app.at(&format!("/share/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("/share/project/{token}").as_str()
    );
    for bad in ["/share/project/nope", "/share/nope", "/invite/project/nope"] {
        let res = no_redirects.get(app.at(bad)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{bad}");
    }
}

#[tokio::test]
async fn invites_make_members_of_the_same_org_project_members_with_a_role() {
    let (app, owner, key) = app_with_owner().await;
    let private = project(
        &app,
        &key,
        json!({"name": "Secret", "visibility": "private"}),
    )
    .await;
    let ppath = format!("/api/v1/projects/{}", private["id"].as_str().unwrap());
    let invite_path = format!("{}/invite", share_path(&private));
    let bob = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    let (bob_key, _) = bob.mint_key("bob", None).await;
    assert_eq!(get(&app, &bob_key, &ppath).await.0, 404, "private: hidden");

    for (body, field) in [
        (json!({"role": "owner"}), "role"),
        (json!({"expiresInDays": 0}), "expiresInDays"),
        (json!({"expiresInDays": 31}), "expiresInDays"),
    ] {
        let (status, err) = bpost(&owner, &invite_path, body).await;
        assert_eq!(status, 422, "{err}");
        assert!(
            err["error"]["details"]["fields"][field].is_string(),
            "{err}"
        );
    }

    let (status, body) = bpost(&owner, &invite_path, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let url = body["data"]["inviteUrl"].as_str().unwrap().to_string();
    let first = invite_token(&body);
    assert_eq!(first.len(), 72);
    assert!(url.starts_with(&format!("{}/invite/project/", app.url)));
    assert_eq!(body["data"]["role"], "viewer");

    // A new invite replaces the old one.
    let (_, body) = bpost(&owner, &invite_path, json!({"expiresInDays": 1})).await;
    let token = invite_token(&body);
    let accept = |t: &str| format!("/api/v1/share/invite/{t}/accept");
    let (status, _) = bpost(&bob, &accept(&first), json!({})).await;
    assert_eq!(status, 404, "the replaced invite is dead");

    // Keys cannot accept; another org's user gets a 404.
    let (status, body) = post(&app, &bob_key, &accept(&token), json!({})).await;
    assert_error(status, &body, 403, "FORBIDDEN", "browser_session_required");
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (status, _) = bpost(&eve, &accept(&token), json!({})).await;
    assert_eq!(status, 404);

    let (status, body) = bpost(&bob, &accept(&token), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"], "viewer");
    let (status, body) = get(&app, &bob_key, &ppath).await;
    assert_eq!(status, 200, "a member sees the private project: {body}");
    let (_, list) = get(&app, &bob_key, "/api/v1/projects").await;
    assert_eq!(list["data"]["items"][0]["id"], private["id"], "{list}");
    // A viewer reads only.
    let res = app
        .http
        .patch(app.at(&ppath))
        .bearer_auth(&bob_key)
        .json(&json!({"name": "Mine now"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "project_read_only");
    let blocks_path = format!("{ppath}/blocks");
    let (status, body) = post(
        &app,
        &bob_key,
        &blocks_path,
        json!({"type": "document", "data": {"content": "x"}}),
    )
    .await;
    assert_error(status, &body, 403, "FORBIDDEN", "project_read_only");
    assert_eq!(get(&app, &bob_key, &format!("{ppath}/canvas")).await.0, 200);

    // An editor invite upgrades the membership; it expires after its days.
    let (_, body) = bpost(&owner, &invite_path, json!({"role": "editor"})).await;
    let editor = invite_token(&body);
    let (_, body) = bpost(&bob, &accept(&editor), json!({})).await;
    assert_eq!(body["data"]["role"], "editor");
    let res = app
        .http
        .patch(app.at(&ppath))
        .bearer_auth(&bob_key)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let (_, body) = bpost(&owner, &invite_path, json!({"expiresInDays": 1})).await;
    let short = invite_token(&body);
    app.clock.advance(chrono::Duration::days(2));
    let carol = add_user(&app, "carol@example.com", "acme", Some(Role::Member)).await;
    let (status, _) = bpost(&carol, &accept(&short), json!({})).await;
    assert_eq!(status, 404, "expired");
}

mod pg {
    use alumia_testkit::{TestApp, TestDb, fresh_pg_database};

    use super::*;

    /// Links, revocation and invites on PostgreSQL.
    #[tokio::test]
    async fn sharing_and_invites_work_on_postgres() {
        let db = fresh_pg_database().await;
        let app = TestApp::builder()
            .db(TestDb::Url(db.url.clone()))
            .spawn()
            .await;
        let mut owner = app.browser();
        owner.setup("owner@example.com", "acme").await;
        let (key, _) = owner.mint_key("k", None).await;
        let p = project(
            &app,
            &key,
            json!({"name": "Launch", "visibility": "private"}),
        )
        .await;
        let path = share_path(&p);

        let (status, body) = bpost(&owner, &path, json!({})).await;
        assert_eq!(status, 200, "{body}");
        let token = body["data"]["token"].as_str().unwrap().to_string();
        let (status, view) = public(&app, &token).await;
        assert_eq!(
            (status, &view["data"]["project"]["name"]),
            (200, &json!("Launch"))
        );
        assert_eq!(public(&app, &stranger_token()).await.0, 404);
        let (_, again) = bpost(&owner, &path, json!({})).await;
        assert_eq!(
            again["data"]["token"],
            token.as_str(),
            "the sealed token opens"
        );
        assert_eq!(bdelete(&owner, &path).await.0, 200);
        assert_eq!(public(&app, &token).await.0, 404);

        let bob = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
        let (bob_key, _) = bob.mint_key("bob", None).await;
        let ppath = format!("/api/v1/projects/{}", p["id"].as_str().unwrap());
        assert_eq!(get(&app, &bob_key, &ppath).await.0, 404);
        let (_, invite) = bpost(&owner, &format!("{path}/invite"), json!({"role": "editor"})).await;
        let t = invite_token(&invite);
        let (status, body) =
            bpost(&bob, &format!("/api/v1/share/invite/{t}/accept"), json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(get(&app, &bob_key, &ppath).await.0, 200);
        app.stop().await;
        db.drop_db().await;
    }
}
