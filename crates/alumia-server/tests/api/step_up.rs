//! Step-up: the fixed window, the rotation of the session id, the lockout.

use alumia_testkit::TEST_PASSWORD;
use chrono::Duration;
use serde_json::json;

use crate::{app_with_owner, assert_error, read};

#[tokio::test]
async fn a_stale_session_must_step_up_before_minting() {
    let (app, browser, _) = app_with_owner().await;
    app.clock.advance(Duration::seconds(601));
    let (status, body) = read(
        browser
            .post("/api/v1/api-keys", json!({"name": "late"}))
            .await,
    )
    .await;
    assert_error(status, &body, 403, "FORBIDDEN", "step_up_required");
    assert_eq!(
        body["error"]["details"],
        json!({"stepUpUrl": "/api/v1/auth/step-up", "maxAgeSeconds": 600})
    );

    let (status, body) = read(browser.step_up("wrong password!!").await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "step_up_failed");

    let res = browser.step_up(TEST_PASSWORD).await;
    assert!(
        res.headers().get("set-cookie").is_some(),
        "the session id rotates on step-up"
    );
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["stepUpExpiresAt"].is_string());
    assert_eq!(
        browser
            .post("/api/v1/api-keys", json!({"name": "fresh"}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn the_window_is_fixed_not_sliding() {
    let (app, browser, _) = app_with_owner().await;
    app.clock.advance(Duration::seconds(300));
    assert_eq!(browser.get("/api/v1/me").await.status(), 200);
    app.clock.advance(Duration::seconds(301));
    let (status, body) = read(browser.post("/api/v1/api-keys", json!({"name": "x"})).await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "step_up_required");
}

#[tokio::test]
async fn the_old_cookie_dies_when_step_up_rotates_the_session() {
    let (app, browser, _) = app_with_owner().await;
    let old_cookie = {
        let res = app
            .http
            .post(app.at("/api/v1/auth/login"))
            .json(&json!({"email": "owner@example.com", "password": TEST_PASSWORD}))
            .send()
            .await
            .unwrap();
        let c = res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let (_, body) = read(res).await;
        (c, body["data"]["csrfToken"].as_str().unwrap().to_string())
    };
    let res = app
        .http
        .post(app.at("/api/v1/auth/step-up"))
        .header("cookie", &old_cookie.0)
        .header("x-csrf-token", &old_cookie.1)
        .json(&json!({"password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let new_cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(new_cookie, old_cookie.0);
    let me = |c: String| {
        app.http
            .get(app.at("/api/v1/me"))
            .header("cookie", c)
            .send()
    };
    let (status, body) = read(me(old_cookie.0.clone()).await.unwrap()).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_session");
    assert_eq!(me(new_cookie).await.unwrap().status(), 200);
    drop(browser);
}

#[tokio::test]
async fn repeated_step_up_attempts_lock_the_session_out() {
    let (_app, browser, _) = app_with_owner().await;
    for _ in 0..5 {
        let (status, _) = read(browser.step_up("wrong password!!").await).await;
        assert_eq!(status, 403);
    }
    // Locked: even the right password gets 429 until the bucket refills.
    let res = browser.step_up(TEST_PASSWORD).await;
    assert!(res.headers().get("retry-after").is_some());
    let (status, body) = read(res).await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "step-up");
}

#[tokio::test]
async fn keys_are_never_offered_step_up() {
    let (_app, browser, key) = app_with_owner().await;
    let res = browser
        .client
        .post(browser.at("/api/v1/auth/step-up"))
        .bearer_auth(&key)
        .json(&json!({"password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "browser_session_required");
    assert!(
        body["error"]["details"].is_null(),
        "no stepUpUrl for keys: {body}"
    );
}
