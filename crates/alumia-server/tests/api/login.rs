//! Browser sign-in and sessions.

use alumia_core::limits::{Bucket, Limits, Quota};
use alumia_testkit::{TEST_PASSWORD, TestApp};
use serde_json::json;

use crate::{assert_error, read};

#[tokio::test]
async fn login_sets_a_session_and_logout_ends_it() {
    let app = TestApp::spawn().await;
    app.browser().setup("ada@example.com", "acme").await;

    let mut browser = app.browser();
    let data = browser.login("ADA@example.com", TEST_PASSWORD).await;
    assert_eq!(data["user"]["email"], "ada@example.com");
    assert_eq!(data["orgs"][0]["slug"], "acme");
    assert!(data["currentOrgId"].is_string());

    let (status, session) = read(browser.get("/api/v1/auth/session").await).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["data"]["role"], "owner");
    assert_eq!(session["data"]["csrfToken"], data["csrfToken"]);
    assert!(
        session["data"]["stepUpExpiresAt"].is_string(),
        "login counts as a step-up"
    );
    assert_eq!(session["data"]["authMethods"]["totp"], false);

    let (status, body) = read(browser.post("/api/v1/auth/logout", json!({})).await).await;
    assert_eq!((status, &body["data"]), (200, &json!({"loggedOut": true})));
    let (status, body) = read(browser.get("/api/v1/auth/session").await).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "missing_credentials");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_emails_get_the_same_401() {
    let app = TestApp::spawn().await;
    app.browser().setup("ada@example.com", "acme").await;
    let (s1, wrong_pw) = read(
        app.browser()
            .login_response("ada@example.com", "not the password!", json!({}))
            .await,
    )
    .await;
    let (s2, no_user) = read(
        app.browser()
            .login_response("nobody@example.com", "not the password!", json!({}))
            .await,
    )
    .await;
    assert_error(s1, &wrong_pw, 401, "UNAUTHORIZED", "invalid_credentials");
    assert_eq!(
        (s1, &wrong_pw),
        (s2, &no_user),
        "the answers must not tell the cases apart"
    );
}

#[tokio::test]
async fn a_stolen_cookie_value_that_was_logged_out_is_invalid() {
    let app = TestApp::spawn().await;
    let mut browser = app.browser();
    browser.setup("ada@example.com", "acme").await;
    let res = app
        .http
        .post(app.at("/api/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, body) = read(res).await;
    let csrf = body["data"]["csrfToken"].as_str().unwrap().to_string();
    let get = || {
        app.http
            .get(app.at("/api/v1/me"))
            .header("cookie", cookie.clone())
    };
    assert_eq!(get().send().await.unwrap().status(), 200);
    let res = app
        .http
        .post(app.at("/api/v1/auth/logout"))
        .header("cookie", cookie.clone())
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, body) = read(get().send().await.unwrap()).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_session");
}

#[tokio::test]
async fn the_login_bucket_limits_attempts_per_client_ip() {
    let mut limits = Limits::default();
    limits.set(Bucket::Login, Quota::per_secs(3, 3600));
    let app = TestApp::builder().limits(limits).spawn().await;
    app.browser().setup("ada@example.com", "acme").await;
    for _ in 0..3 {
        let (status, _) = read(
            app.browser()
                .login_response("ada@example.com", "wrong password!!", json!({}))
                .await,
        )
        .await;
        assert_eq!(status, 401);
    }
    // Even the right password is refused once the IP's bucket is empty.
    let res = app
        .browser()
        .login_response("ada@example.com", TEST_PASSWORD, json!({}))
        .await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "login");
}

#[tokio::test]
async fn the_login_account_bucket_locks_one_email_whatever_the_password() {
    let mut limits = Limits::default();
    limits.set(Bucket::LoginAccount, Quota::per_secs(2, 3600));
    let app = TestApp::builder().limits(limits).spawn().await;
    app.browser().setup("ada@example.com", "acme").await;
    for _ in 0..2 {
        let (status, _) = read(
            app.browser()
                .login_response("ada@example.com", "wrong password!!", json!({}))
                .await,
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, body) = read(
        app.browser()
            .login_response("Ada@Example.com", TEST_PASSWORD, json!({}))
            .await,
    )
    .await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "login-account");
}
