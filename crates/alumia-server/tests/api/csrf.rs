//! CSRF on cookie-authenticated writes; Bearer requests ignore cookies.

use serde_json::json;

use crate::{app_with_owner, assert_error, read};

#[tokio::test]
async fn cookie_writes_need_the_csrf_token() {
    let (app, mut browser, _) = app_with_owner().await;
    let token = browser.csrf.take();
    let (status, body) = read(
        browser
            .post("/api/v1/api-keys", json!({"name": "no csrf"}))
            .await,
    )
    .await;
    assert_error(status, &body, 403, "FORBIDDEN", "csrf_failed");
    browser.csrf = Some("wrong".into());
    let (status, body) = read(
        browser
            .post("/api/v1/api-keys", json!({"name": "bad csrf"}))
            .await,
    )
    .await;
    assert_error(status, &body, 403, "FORBIDDEN", "csrf_failed");
    // Reads need no token.
    assert_eq!(browser.get("/api/v1/api-keys").await.status(), 200);
    browser.csrf = token;
    assert_eq!(
        browser
            .post("/api/v1/api-keys", json!({"name": "ok"}))
            .await
            .status(),
        201
    );
    drop(app);
}

#[tokio::test]
async fn a_foreign_origin_fails_csrf_even_with_the_token() {
    let (_app, browser, _) = app_with_owner().await;
    let res = browser
        .client
        .post(browser.at("/api/v1/api-keys"))
        .header("x-csrf-token", browser.csrf.clone().unwrap())
        .header("origin", "https://evil.example")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "csrf_failed");
}

#[tokio::test]
async fn a_bearer_header_wins_over_the_cookie() {
    let (app, browser, key) = app_with_owner().await;
    // Same cookie jar, but a Bearer header: the key decides, and keys cannot mint.
    let res = browser
        .client
        .post(browser.at("/api/v1/api-keys"))
        .bearer_auth(&key)
        .header("x-csrf-token", browser.csrf.clone().unwrap())
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "browser_session_required");
    // A bad Bearer header is not rescued by a good cookie.
    let res = browser
        .client
        .get(app.at("/api/v1/me"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_api_key");
}
