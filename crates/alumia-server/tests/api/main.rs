//! HTTP behaviour of `/api/v1`, driven over a real socket against a real
//! server (SQLite by default). Modules named `pg` and `redis` need those
//! services; the README's test command skips them, `.ci/run` runs them.

mod agents;
mod api_keys;
mod blocks;
mod chat;
mod chat_lifecycle;
mod chat_providers;
mod csrf;
mod device;
mod envelope;
mod files;
mod login;
mod mcp;
mod openapi;
mod pages;
mod peers;
mod pg;
mod portability;
mod projects;
mod rate_limits;
mod redis;
mod scopes;
mod sessions;
mod setup;
mod share;
mod step_up;
mod tenancy;
mod totp;

use alumia_testkit::{Browser, TestApp};
use serde_json::Value;

/// Status and parsed JSON body of a response.
pub async fn read(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Asserts the error envelope: status, code and reason.
#[track_caller]
pub fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, reason: &str) {
    assert_eq!(status, want_status, "unexpected status; body: {body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["reason"], reason, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// A fresh app with its first owner signed in (step-up fresh) and one key.
pub async fn app_with_owner() -> (TestApp, Browser, String) {
    let app = TestApp::spawn().await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    let (key, _) = browser.mint_key("first", None).await;
    (app, browser, key)
}

/// Adds a user (and, when `role` is None, their own org) the way
/// `alumia admin` does, then signs them in.
pub async fn add_user(
    app: &TestApp,
    email: &str,
    org_slug: &str,
    role: Option<alumia_core::model::Role>,
) -> Browser {
    use alumia_core::identity::{AuthSettings, Identity, SignupInput};
    let identity = Identity::new(
        app.store.clone(),
        app.clock.clone(),
        app.secret.clone(),
        alumia_core::keys::KeyEnv::Test,
        AuthSettings::default(),
    );
    match role {
        None => {
            identity
                .bootstrap(SignupInput {
                    email: email.into(),
                    password: alumia_testkit::TEST_PASSWORD.into(),
                    name: None,
                    org_slug: org_slug.into(),
                    org_name: org_slug.into(),
                })
                .await
                .expect("bootstrap");
        }
        Some(role) => {
            identity
                .admin_create_user(email, alumia_testkit::TEST_PASSWORD, None, org_slug, role)
                .await
                .expect("create user");
        }
    }
    let mut browser = app.browser();
    browser.login(email, alumia_testkit::TEST_PASSWORD).await;
    browser
}
