//! First run: `/api/v1/setup` creates the first owner and org, once.

use alumia_testkit::{TEST_PASSWORD, TestApp};
use serde_json::json;

use crate::{assert_error, read};

#[tokio::test]
async fn setup_creates_the_owner_org_and_default_workspace_once() {
    let app = TestApp::spawn().await;
    let (status, body) = read(app.http.get(app.at("/api/v1/setup")).send().await.unwrap()).await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"required": true, "tokenRequired": false}))
    );

    let mut browser = app.browser();
    let res = browser
        .post("/api/v1/setup", json!({"email": "Ada@Example.com", "password": TEST_PASSWORD, "orgSlug": "acme", "orgName": "Acme"}))
        .await;
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("alumia_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http public URL: no Secure flag"
    );
    let (status, body) = read(res).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["user"]["email"], "ada@example.com");
    assert_eq!(body["data"]["orgs"][0]["slug"], "acme");
    assert_eq!(body["data"]["orgs"][0]["role"], "owner");
    browser.csrf = body["data"]["csrfToken"].as_str().map(str::to_string);

    let (_, ws) = read(browser.get("/api/v1/workspaces").await).await;
    let items = ws["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "General");
    assert_eq!(items[0]["isDefault"], true);

    // A second setup, even with other details, is refused and changes nothing.
    let (status, body) = read(
        app.browser()
            .post("/api/v1/setup", json!({"email": "eve@example.com", "password": TEST_PASSWORD, "orgSlug": "evil", "orgName": "Evil"}))
            .await,
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "already_set_up");
    assert_eq!(app.store.count_users().await.unwrap(), 1);
    assert!(app.store.get_org_by_slug("evil").await.unwrap().is_none());
    let (_, meta) = read(app.http.get(app.at("/api/v1/meta")).send().await.unwrap()).await;
    assert_eq!(meta["data"]["setupRequired"], false);
}

#[tokio::test]
async fn setup_validates_every_field_and_reports_them_together() {
    let app = TestApp::spawn().await;
    let (status, body) = read(
        app.browser()
            .post(
                "/api/v1/setup",
                json!({"email": "nope", "password": "short", "orgSlug": "A!", "orgName": ""}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    let fields = &body["error"]["details"]["fields"];
    for f in ["email", "password", "orgSlug", "orgName"] {
        assert!(fields[f].is_string(), "no message for {f}: {body}");
    }
    assert_eq!(
        app.store.count_users().await.unwrap(),
        0,
        "nothing is written on a validation failure"
    );
}

#[tokio::test]
async fn a_configured_setup_token_must_be_sent() {
    let app = TestApp::builder()
        .setup_token("first-run-token")
        .spawn()
        .await;
    let (_, body) = read(app.http.get(app.at("/api/v1/setup")).send().await.unwrap()).await;
    assert_eq!(body["data"]["tokenRequired"], true);
    let base = json!({"email": "ada@example.com", "password": TEST_PASSWORD, "orgSlug": "acme", "orgName": "Acme"});
    let (status, body) = read(app.browser().post("/api/v1/setup", base.clone()).await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "invalid_setup_token");
    let mut wrong = base.clone();
    wrong["setupToken"] = json!("guess");
    let (status, body) = read(app.browser().post("/api/v1/setup", wrong).await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "invalid_setup_token");
    assert_eq!(app.store.count_users().await.unwrap(), 0);
    let mut right = base;
    right["setupToken"] = json!("first-run-token");
    let (status, _) = read(app.browser().post("/api/v1/setup", right).await).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn setup_from_a_foreign_origin_is_refused() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(app.at("/api/v1/setup"))
        .header("origin", "https://evil.example")
        .json(&json!({"email": "ada@example.com", "password": TEST_PASSWORD, "orgSlug": "acme", "orgName": "Acme"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "csrf_failed");
    assert_eq!(app.store.count_users().await.unwrap(), 0);
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure_and_hsts_is_sent() {
    let app = TestApp::builder()
        .public_url("https://alumia.example.com")
        .spawn()
        .await;
    let res = app
        .http
        .post(app.at("/api/v1/setup"))
        .header("origin", "https://alumia.example.com")
        .json(&json!({"email": "ada@example.com", "password": TEST_PASSWORD, "orgSlug": "acme", "orgName": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    assert!(
        res.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    let res = app.http.get(app.at("/healthz")).send().await.unwrap();
    assert!(res.headers().contains_key("strict-transport-security"));
    // The page origin is the public URL; the socket's own address is foreign.
    let res = app
        .http
        .post(app.at("/api/v1/auth/login"))
        .header("origin", app.url.clone())
        .json(&json!({"email": "ada@example.com", "password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
