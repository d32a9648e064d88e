//! TOTP enrolment, login with a second factor, replay and recovery codes.

use alumia_core::{Clock, totp};
use alumia_testkit::{Browser, TEST_PASSWORD, TestApp};
use chrono::Duration;
use serde_json::{Value, json};

use crate::{app_with_owner, assert_error, read};

fn code_at(secret_b32: &str, app: &TestApp, offset_steps: i64) -> String {
    let secret = totp::base32_decode(secret_b32).unwrap();
    let step = totp::step_at(app.clock.now().timestamp()) + offset_steps;
    totp::hotp(&secret, step as u64, 6)
}

async fn enable_totp(app: &TestApp, browser: &Browser) -> (String, Vec<String>) {
    let (status, body) = read(browser.post("/api/v1/auth/totp/enroll", json!({})).await).await;
    assert_eq!(status, 200, "{body}");
    let secret = body["data"]["secret"].as_str().unwrap().to_string();
    let url = body["data"]["otpauthUrl"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/Alumia:owner@example.com?secret="),
        "{url}"
    );
    assert!(url.contains(&secret));
    let (status, body) = read(
        browser
            .post(
                "/api/v1/auth/totp/confirm",
                json!({"code": code_at(&secret, app, 0)}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["enabled"], true);
    let codes: Vec<String> = body["data"]["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

#[tokio::test]
async fn login_needs_the_second_factor_once_totp_is_enabled_and_codes_work_once() {
    let (app, browser, _) = app_with_owner().await;
    let (secret, _) = enable_totp(&app, &browser).await;
    app.clock.advance(Duration::seconds(30));

    let mut b = app.browser();
    let (status, body) = read(
        b.login_response("owner@example.com", TEST_PASSWORD, json!({}))
            .await,
    )
    .await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "second_factor_required");

    let (status, body) = read(
        b.login_response(
            "owner@example.com",
            TEST_PASSWORD,
            json!({"totpCode": "000000"}),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_credentials");

    let code = code_at(&secret, &app, 0);
    let (status, body) = read(
        b.login_response(
            "owner@example.com",
            TEST_PASSWORD,
            json!({"totpCode": code}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The same code again (its step is used): refused.
    let (status, body) = read(
        app.browser()
            .login_response(
                "owner@example.com",
                TEST_PASSWORD,
                json!({"totpCode": code}),
            )
            .await,
    )
    .await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_credentials");
    // And so is the previous step's code, though it is within the drift window.
    let older = code_at(&secret, &app, -1);
    let (status, _) = read(
        app.browser()
            .login_response(
                "owner@example.com",
                TEST_PASSWORD,
                json!({"totpCode": older}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn recovery_codes_sign_in_once_but_never_step_up() {
    let (app, browser, _) = app_with_owner().await;
    let (_, codes) = enable_totp(&app, &browser).await;
    let mut b = app.browser();
    let (status, body) = read(
        b.login_response(
            "owner@example.com",
            TEST_PASSWORD,
            json!({"recoveryCode": codes[0]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    b.csrf = body["data"]["csrfToken"].as_str().map(str::to_string);
    let (_, session) = read(b.get("/api/v1/auth/session").await).await;
    assert_eq!(
        session["data"]["user"]["security"]["recoveryCodesRemaining"],
        9
    );
    let (status, _) = read(
        app.browser()
            .login_response(
                "owner@example.com",
                TEST_PASSWORD,
                json!({"recoveryCode": codes[0]}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 401, "a recovery code works once");
    // Step-up accepts only password or TOTP.
    let (status, body) = read(
        b.post("/api/v1/auth/step-up", json!({"recoveryCode": codes[1]}))
            .await,
    )
    .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn step_up_by_totp_works_and_refuses_a_replayed_code() {
    let (app, browser, _) = app_with_owner().await;
    let (secret, _) = enable_totp(&app, &browser).await;
    app.clock.advance(Duration::seconds(700));
    let code = code_at(&secret, &app, 0);
    let (status, body) = read(
        browser
            .post("/api/v1/auth/step-up", json!({"totpCode": code}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = read(
        browser
            .post("/api/v1/auth/step-up", json!({"totpCode": code}))
            .await,
    )
    .await;
    assert_error(status, &body, 403, "FORBIDDEN", "step_up_failed");
}

#[tokio::test]
async fn totp_step_up_without_enrolment_is_422_and_enrolment_needs_a_fresh_step_up() {
    let (app, browser, _) = app_with_owner().await;
    let (status, body) = read(
        browser
            .post("/api/v1/auth/step-up", json!({"totpCode": "123456"}))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        422,
        "VALIDATION_ERROR",
        "factor_not_enrolled",
    );
    app.clock.advance(Duration::seconds(601));
    let (status, body): (u16, Value) =
        read(browser.post("/api/v1/auth/totp/enroll", json!({})).await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "step_up_required");
}

#[tokio::test]
async fn the_totp_secret_is_stored_encrypted() {
    let (app, browser, _) = app_with_owner().await;
    let (secret, _) = enable_totp(&app, &browser).await;
    let (_, session) = read(browser.get("/api/v1/auth/session").await).await;
    let user_id = session["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stored = app.store.get_totp(user_id).await.unwrap().unwrap();
    assert!(stored.enabled);
    assert!(
        !stored.secret_enc.contains(&secret),
        "the seed must not be stored in clear"
    );
    assert_eq!(
        app.secret.open(&stored.secret_enc).unwrap(),
        secret.as_bytes()
    );
    let (_, me) = read(browser.get("/api/v1/me").await).await;
    assert!(!me.to_string().contains(&secret));
}
