//! Device login (RFC 8628; spec 01 §10): the OAuth code and token
//! endpoints, the browser's lookup/approve/deny, their buckets, and the
//! `/device` page. Time moves on the app's ManualClock; limiter buckets run
//! on real time, so the tests that need them set small quotas.

use alumia_core::crypto::sha256_hex;
use alumia_core::limits::{Bucket, Limits, Quota};
use alumia_core::model::Role;
use alumia_testkit::{Browser, TEST_PASSWORD, TestApp};
use chrono::Duration;
use serde_json::{Value, json};

use crate::{add_user, assert_error, read};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const ALPHABET: &str = "BCDFGHJKLMNPQRSTVWXZ";

// --- helpers --------------------------------------------------------------------

/// `application/x-www-form-urlencoded`, as the CLI (and RFC 8628) sends it.
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn post_form(app: &TestApp, path: &str, body: String) -> reqwest::Response {
    app.http
        .post(app.at(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("request")
}

/// `POST /api/v1/auth/device/code` (form); asserts 200 and returns the body.
async fn start(app: &TestApp, scope: Option<&str>, device_name: Option<&str>) -> Value {
    let mut pairs = vec![("client_id", "alumia-cli")];
    if let Some(scope) = scope {
        pairs.push(("scope", scope));
    }
    if let Some(name) = device_name {
        pairs.push(("device_name", name));
    }
    let (status, body) = read(post_form(app, "/api/v1/auth/device/code", form(&pairs)).await).await;
    assert_eq!(status, 200, "device code: {body}");
    body
}

/// One poll of the token endpoint (form).
async fn poll(app: &TestApp, device_code: &str) -> (u16, Value) {
    let body = form(&[
        ("grant_type", GRANT),
        ("device_code", device_code),
        ("client_id", "alumia-cli"),
    ]);
    read(post_form(app, "/api/v1/auth/device/token", body).await).await
}

/// Asserts an RFC error: 400, plain `{error, error_description}`, no envelope.
#[track_caller]
fn assert_oauth(status: u16, body: &Value, error: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert!(body.get("success").is_none(), "not the envelope: {body}");
}

fn device_code(issued: &Value) -> String {
    issued["device_code"]
        .as_str()
        .expect("device_code")
        .to_string()
}

fn user_code(issued: &Value) -> String {
    issued["user_code"].as_str().expect("user_code").to_string()
}

async fn lookup(browser: &Browser, code: &str) -> (u16, Value) {
    let path = format!(
        "/api/v1/auth/device/lookup?userCode={}",
        code.replace(' ', "%20")
    );
    read(browser.get(&path).await).await
}

async fn approve(browser: &Browser, code: &str, grant: Option<Vec<&str>>) -> (u16, Value) {
    let mut body = json!({ "userCode": code });
    if let Some(grant) = grant {
        body["grantScopes"] = json!(grant);
    }
    read(browser.post("/api/v1/auth/device/approve", body).await).await
}

async fn deny(browser: &Browser, code: &str) -> (u16, Value) {
    read(
        browser
            .post("/api/v1/auth/device/deny", json!({ "userCode": code }))
            .await,
    )
    .await
}

/// A fresh app (with `limits`) and its first owner, signed in, step-up fresh.
async fn owner_app(limits: Limits) -> (TestApp, Browser) {
    let app = TestApp::builder().limits(limits).spawn().await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    (app, browser)
}

/// The caller's keys made by device login, from `GET /api/v1/api-keys`.
async fn device_keys(browser: &Browser) -> Vec<Value> {
    let (status, body) = read(browser.get("/api/v1/api-keys").await).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|k| k["createdVia"] == "device")
        .cloned()
        .collect()
}

/// Approves a fresh code and exchanges it; returns the token response.
async fn login_device(
    app: &TestApp,
    browser: &Browser,
    scope: Option<&str>,
    grant: Option<Vec<&str>>,
) -> Value {
    let issued = start(app, scope, Some("box")).await;
    let (status, body) = approve(browser, &user_code(&issued), grant).await;
    assert_eq!(status, 200, "approve: {body}");
    let (status, token) = poll(app, &device_code(&issued)).await;
    assert_eq!(status, 200, "token: {token}");
    token
}

// --- the code endpoint ------------------------------------------------------------

#[tokio::test]
async fn the_code_endpoint_issues_codes_in_the_documented_shape_from_form_or_json() {
    let (app, _) = owner_app(Limits::default()).await;
    let res = post_form(
        &app,
        "/api/v1/auth/device/code",
        form(&[
            ("client_id", "alumia-cli"),
            ("scope", "mcp:read"),
            ("device_name", "laptop"),
        ]),
    )
    .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, issued) = read(res).await;
    assert_eq!(status, 200, "{issued}");
    assert!(
        issued.get("success").is_none(),
        "plain JSON, not the envelope: {issued}"
    );

    let device = device_code(&issued);
    assert_eq!(device.len(), 43, "32 bytes of base64url: {device}");
    assert!(
        device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let user = user_code(&issued);
    let letters: Vec<char> = user.chars().collect();
    assert_eq!(letters.len(), 9, "{user}");
    assert_eq!(letters[4], '-', "XXXX-XXXX: {user}");
    assert!(
        user.chars()
            .filter(|c| *c != '-')
            .all(|c| ALPHABET.contains(c)),
        "{user}"
    );
    assert_eq!(issued["verification_uri"], format!("{}/device", app.url));
    assert_eq!(
        issued["verification_uri_complete"],
        format!("{}/device?user_code={user}", app.url)
    );
    assert_eq!(
        (issued["expires_in"].as_i64(), issued["interval"].as_i64()),
        (Some(900), Some(5))
    );

    // Stored by hash only: the SHA-256 finds it, with what was asked.
    let stored = app
        .store
        .find_device_code_by_hash(&sha256_hex(device.as_bytes()))
        .await
        .unwrap()
        .expect("the code is found by its SHA-256");
    assert_eq!(stored.user_code, user.replace('-', ""));
    assert_eq!(stored.scopes, ["terminal", "models:read", "mcp:read"]);
    assert_eq!(stored.device_name.as_deref(), Some("laptop"));
    assert!(
        app.store
            .find_device_code_by_hash(&device)
            .await
            .unwrap()
            .is_none(),
        "the plaintext device code is not what is stored"
    );

    // JSON works too, and each request gets its own codes.
    let res = app
        .http
        .post(app.at("/api/v1/auth/device/code"))
        .json(&json!({"client_id": "alumia-cli"}))
        .send()
        .await
        .unwrap();
    let (status, other) = read(res).await;
    assert_eq!(status, 200, "{other}");
    assert_ne!(device_code(&other), device);
    assert_ne!(user_code(&other), user);

    // A charset parameter is fine.
    let res = app
        .http
        .post(app.at("/api/v1/auth/device/code"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body("client_id=alumia-cli&scope=terminal+mcp%3Awrite")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    let stored = app
        .store
        .find_device_code_by_hash(&sha256_hex(device_code(&body).as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.scopes, ["terminal", "models:read", "mcp:write"]);
}

#[tokio::test]
async fn the_code_endpoint_refuses_other_clients_scopes_and_malformed_requests() {
    let mut limits = Limits::default();
    limits.set(Bucket::DeviceCode, Quota::per_secs(100, 60));
    let (app, _) = owner_app(limits).await;
    let long_name = "x".repeat(65);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another client",
            form(&[("client_id", "curl")]),
            "invalid_client",
        ),
        (
            "no client",
            form(&[("scope", "terminal")]),
            "invalid_request",
        ),
        (
            "unknown scope",
            form(&[("client_id", "alumia-cli"), ("scope", "admin")]),
            "invalid_scope",
        ),
        (
            "a key scope",
            form(&[
                ("client_id", "alumia-cli"),
                ("scope", "mcp:read billing:machine:charge"),
            ]),
            "invalid_scope",
        ),
        (
            "long device name",
            form(&[("client_id", "alumia-cli"), ("device_name", &long_name)]),
            "invalid_request",
        ),
        (
            "control characters",
            form(&[("client_id", "alumia-cli"), ("device_name", "a\nb")]),
            "invalid_request",
        ),
    ];
    for (what, body, error) in cases {
        let (status, res) = read(post_form(&app, "/api/v1/auth/device/code", body).await).await;
        assert_eq!(res["error"], error, "{what}: {res}");
        assert_oauth(status, &res, error);
    }
    // 64 characters (not bytes) is fine.
    let name = "é".repeat(64);
    start(&app, None, Some(&name)).await;

    let raw = |content_type: &'static str, body: &'static str| {
        app.http
            .post(app.at("/api/v1/auth/device/code"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (content_type, body) in [
        ("text/plain", "client_id=alumia-cli"),
        ("application/json", "{\"client_id\": 5}"),
        ("application/json", "{not json"),
        ("application/json", ""),
    ] {
        let (status, res) = read(raw(content_type, body).await.unwrap()).await;
        assert_oauth(status, &res, "invalid_request");
    }
}

#[tokio::test]
async fn the_code_endpoint_has_a_per_ip_bucket_answering_429_in_the_envelope() {
    let mut limits = Limits::default();
    limits.set(Bucket::DeviceCode, Quota::per_secs(2, 3600));
    let (app, _) = owner_app(limits).await;
    start(&app, None, None).await;
    start(&app, None, None).await;
    let res = post_form(
        &app,
        "/api/v1/auth/device/code",
        form(&[("client_id", "alumia-cli")]),
    )
    .await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    let (status, body) = read(res).await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "device-code");
}

// --- the token endpoint -------------------------------------------------------------

#[tokio::test]
async fn the_token_endpoint_answers_each_rfc_error() {
    let (app, _) = owner_app(Limits::default()).await;
    let issued = start(&app, None, None).await;
    let device = device_code(&issued);
    let unknown = "A".repeat(43);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another grant",
            form(&[
                ("grant_type", "authorization_code"),
                ("device_code", &device),
                ("client_id", "alumia-cli"),
            ]),
            "unsupported_grant_type",
        ),
        (
            "no grant",
            form(&[("device_code", &device), ("client_id", "alumia-cli")]),
            "invalid_request",
        ),
        (
            "another client",
            form(&[
                ("grant_type", GRANT),
                ("device_code", &device),
                ("client_id", "other"),
            ]),
            "invalid_client",
        ),
        (
            "no client",
            form(&[("grant_type", GRANT), ("device_code", &device)]),
            "invalid_request",
        ),
        (
            "no device code",
            form(&[("grant_type", GRANT), ("client_id", "alumia-cli")]),
            "invalid_request",
        ),
        (
            "unknown device code",
            form(&[
                ("grant_type", GRANT),
                ("device_code", &unknown),
                ("client_id", "alumia-cli"),
            ]),
            "invalid_grant",
        ),
        (
            "malformed device code",
            form(&[
                ("grant_type", GRANT),
                ("device_code", "short"),
                ("client_id", "alumia-cli"),
            ]),
            "invalid_grant",
        ),
        (
            "the user code instead",
            form(&[
                ("grant_type", GRANT),
                ("device_code", &user_code(&issued)),
                ("client_id", "alumia-cli"),
            ]),
            "invalid_grant",
        ),
    ];
    for (what, body, error) in cases {
        let (status, res) = read(post_form(&app, "/api/v1/auth/device/token", body).await).await;
        assert_eq!(res["error"], error, "{what}: {res}");
        assert_oauth(status, &res, error);
        assert!(
            !res.to_string().contains(&device),
            "{what}: the code is not echoed"
        );
    }
    // Not decided yet, in JSON too.
    let res = app
        .http
        .post(app.at("/api/v1/auth/device/token"))
        .json(&json!({"grant_type": GRANT, "device_code": device, "client_id": "alumia-cli"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_oauth(status, &body, "authorization_pending");
}

#[tokio::test]
async fn polling_too_soon_slows_down_and_the_interval_stays_grown() {
    let (app, _) = owner_app(Limits::default()).await;
    let device = device_code(&start(&app, None, None).await);
    let steps: [(i64, &str, Option<i64>); 6] = [
        (0, "authorization_pending", None),
        (1, "slow_down", Some(10)),
        // 5 s after the last poll is too soon now: the interval is 10 s.
        (5, "slow_down", Some(15)),
        (15, "authorization_pending", None),
        (10, "slow_down", Some(20)),
        (20, "authorization_pending", None),
    ];
    for (wait, error, interval) in steps {
        app.clock.advance(Duration::seconds(wait));
        let (status, body) = poll(&app, &device).await;
        assert_oauth(status, &body, error);
        assert_eq!(
            body["interval"].as_i64(),
            interval,
            "after {wait} s: {body}"
        );
    }
    let stored = app
        .store
        .find_device_code_by_hash(&sha256_hex(device.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.interval_secs, 20, "the grown interval is kept");
}

#[tokio::test]
async fn a_code_expires_after_900_seconds() {
    let (app, browser) = owner_app(Limits::default()).await;
    let issued = start(&app, None, None).await;
    let device = device_code(&issued);
    app.clock.advance(Duration::seconds(900));
    let (status, body) = poll(&app, &device).await;
    assert_oauth(status, &body, "authorization_pending");
    assert_eq!(
        lookup(&browser, &user_code(&issued)).await.0,
        200,
        "still valid at 900 s"
    );

    app.clock.advance(Duration::seconds(1));
    let (status, body) = poll(&app, &device).await;
    assert_oauth(status, &body, "expired_token");
    browser.step_up(TEST_PASSWORD).await;
    for (status, body) in [
        lookup(&browser, &user_code(&issued)).await,
        approve(&browser, &user_code(&issued), None).await,
        deny(&browser, &user_code(&issued)).await,
    ] {
        assert_error(status, &body, 404, "NOT_FOUND", "invalid_user_code");
    }
    let (status, body) = poll(&app, &device).await;
    assert_oauth(status, &body, "expired_token");

    // Approved in time but not picked up in time: expired as well.
    let issued = start(&app, None, None).await;
    assert_eq!(approve(&browser, &user_code(&issued), None).await.0, 200);
    app.clock.advance(Duration::seconds(901));
    let (status, body) = poll(&app, &device_code(&issued)).await;
    assert_oauth(status, &body, "expired_token");
    assert!(
        device_keys(&browser).await.is_empty(),
        "no key from an expired code"
    );
}

#[tokio::test]
async fn the_token_bucket_is_per_ip_and_answers_429_in_the_envelope() {
    let mut limits = Limits::default();
    limits.set(Bucket::DeviceToken, Quota::per_secs(3, 3600));
    let (app, _) = owner_app(limits).await;
    let device = device_code(&start(&app, None, None).await);
    for _ in 0..3 {
        assert_eq!(poll(&app, &device).await.0, 400);
    }
    let (status, body) = poll(&app, &device).await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "device-token");
}

// --- approval and the key -------------------------------------------------------------

#[tokio::test]
async fn an_approved_code_becomes_one_listed_revocable_key() {
    let (app, browser) = owner_app(Limits::default()).await;
    let issued = start(&app, Some("mcp:read mcp:write"), Some("ci-box")).await;
    let device = device_code(&issued);

    let (status, body) = lookup(&browser, &user_code(&issued)).await;
    assert_eq!(status, 200, "{body}");
    let view = &body["data"];
    assert_eq!(view["clientName"], "Alumia CLI");
    assert_eq!(view["deviceName"], "ci-box");
    assert_eq!(view["requestIp"], "127.0.0.1");
    assert_eq!(
        view["requestedScopes"],
        json!(["terminal", "models:read", "mcp:read", "mcp:write"])
    );
    assert!(
        view["requestedAt"].as_str().unwrap().ends_with('Z'),
        "{view}"
    );
    assert!(view["expiresAt"].as_str().unwrap() > view["requestedAt"].as_str().unwrap());

    // Only mcp:read left ticked.
    let (status, body) = approve(&browser, &user_code(&issued), Some(vec!["mcp:read"])).await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"approved": true})),
        "{body}"
    );

    let res = post_form(
        &app,
        "/api/v1/auth/device/token",
        form(&[
            ("grant_type", GRANT),
            ("device_code", &device),
            ("client_id", "alumia-cli"),
        ]),
    )
    .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, token) = read(res).await;
    assert_eq!(status, 200, "{token}");
    let key = token["access_token"].as_str().unwrap().to_string();
    assert!(key.starts_with("alm_test_") && key.len() == 57, "{key}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["scope"], "terminal models:read mcp:read");

    // The key works, as its user, in the approving org.
    let (status, me) = read(app.get_with_key("/api/v1/me", &key).await).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["org"]["slug"], "acme");
    assert_eq!(me["data"]["user"]["email"], "owner@example.com");
    assert_eq!(me["data"]["principal"]["kind"], "api_key");
    assert_eq!(app.get_with_key("/api/v1/models", &key).await.status(), 200);

    // Single use: the next poll gets invalid_grant, and never the key.
    let (status, body) = poll(&app, &device).await;
    assert_oauth(status, &body, "invalid_grant");
    assert!(!body.to_string().contains(&key[12..]));

    // Listed as a device key, and revocable like any other.
    let keys = device_keys(&browser).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["name"], "Alumia CLI (ci-box)");
    assert_eq!(keys[0]["prefix"], &key[..12]);
    assert_eq!(
        keys[0]["scopes"],
        json!(["terminal", "models:read", "mcp:read"])
    );
    let id = keys[0]["id"].as_str().unwrap();
    let (status, body) = read(browser.delete(&format!("/api/v1/api-keys/{id}")).await).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = read(app.get_with_key("/api/v1/models", &key).await).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_api_key");
    assert!(device_keys(&browser).await.is_empty());

    // The approval and the mint are audited.
    let (_, audit) = read(browser.get("/api/v1/audit-events").await).await;
    let kinds: Vec<&str> = audit["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for kind in ["device.approved", "api_key.created", "api_key.revoked"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn a_key_gets_only_the_scopes_requested_and_left_ticked() {
    let (app, browser) = owner_app(Limits::default()).await;
    // (requested scope, ticked MCP scopes, granted)
    type Case<'a> = (Option<&'a str>, Option<Vec<&'a str>>, &'a str);
    let cases: [Case; 4] = [
        // Ticks cannot add what the CLI did not ask for.
        (
            None,
            Some(vec!["mcp:read", "mcp:write"]),
            "terminal models:read",
        ),
        (
            Some("mcp:read mcp:write"),
            None,
            "terminal models:read mcp:read mcp:write",
        ),
        (Some("mcp:write"), Some(vec![]), "terminal models:read"),
        (
            Some("mcp:write mcp:read terminal"),
            Some(vec!["mcp:write", "terminal"]),
            "terminal models:read mcp:write",
        ),
    ];
    for (scope, grant, want) in cases {
        let token = login_device(&app, &browser, scope, grant.clone()).await;
        assert_eq!(
            token["scope"], want,
            "requested {scope:?}, ticked {grant:?}"
        );
    }
    let issued = start(&app, Some("mcp:read"), None).await;
    let (status, body) = approve(
        &browser,
        &user_code(&issued),
        Some(vec!["mcp:read", "admin"]),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["details"]["fields"]["grantScopes.1"].is_string(),
        "{body}"
    );
    let (status, body) = poll(&app, &device_code(&issued)).await;
    assert_oauth(status, &body, "authorization_pending");
}

#[tokio::test]
async fn concurrent_polls_after_approval_mint_exactly_one_key() {
    let (app, browser) = owner_app(Limits::default()).await;
    let issued = start(&app, None, Some("racer")).await;
    assert_eq!(approve(&browser, &user_code(&issued), None).await.0, 200);
    let device = device_code(&issued);
    let polls = (0..8).map(|_| poll(&app, &device));
    let results = futures::future::join_all(polls).await;
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_oauth(*status, body, "invalid_grant");
    }
    let keys = device_keys(&browser).await;
    assert_eq!(keys.len(), 1, "one code, one key: {keys:?}");
    let token = winners[0]["access_token"].as_str().unwrap();
    assert_eq!(keys[0]["prefix"], &token[..12]);
}

#[tokio::test]
async fn a_denied_code_gets_access_denied_and_cannot_be_decided_again() {
    let (app, browser) = owner_app(Limits::default()).await;
    let issued = start(&app, None, None).await;
    let code = user_code(&issued);
    let (status, body) = deny(&browser, &code).await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"denied": true})),
        "{body}"
    );
    for _ in 0..2 {
        let (status, body) = poll(&app, &device_code(&issued)).await;
        assert_oauth(status, &body, "access_denied");
    }
    for (status, body) in [
        approve(&browser, &code, None).await,
        deny(&browser, &code).await,
        lookup(&browser, &code).await,
    ] {
        assert_error(status, &body, 409, "CONFLICT", "already_decided");
    }
    assert!(device_keys(&browser).await.is_empty());

    // Approved codes are decided too.
    let issued = start(&app, None, None).await;
    assert_eq!(approve(&browser, &user_code(&issued), None).await.0, 200);
    let (status, body) = deny(&browser, &user_code(&issued)).await;
    assert_error(status, &body, 409, "CONFLICT", "already_decided");
    assert_eq!(
        poll(&app, &device_code(&issued)).await.0,
        200,
        "the approval stands"
    );
}

#[tokio::test]
async fn typed_codes_ignore_case_dashes_and_spaces_and_unknown_ones_are_404() {
    let (app, browser) = owner_app(Limits::default()).await;
    let issued = start(&app, None, None).await;
    let code = user_code(&issued);
    let sloppy = code.replace('-', " ").to_lowercase();
    let (status, body) = lookup(&browser, &sloppy).await;
    assert_eq!(status, 200, "{sloppy}: {body}");

    let unknown = if code.starts_with('B') {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };
    for typed in [unknown, "hello", "WDJB-MJH"] {
        let (status, body) = lookup(&browser, typed).await;
        assert_error(status, &body, 404, "NOT_FOUND", "invalid_user_code");
    }
    let (status, body) = approve(&browser, unknown, None).await;
    assert_error(status, &body, 404, "NOT_FOUND", "invalid_user_code");
    let (status, body) = read(browser.get("/api/v1/auth/device/lookup").await).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["details"]["fields"]["userCode"].is_string(),
        "{body}"
    );

    // Approving with the sloppy spelling works as well.
    let (status, body) = approve(&browser, &sloppy, None).await;
    assert_eq!(status, 200, "{body}");
}

// --- buckets --------------------------------------------------------------------------

#[tokio::test]
async fn approval_and_key_minting_share_the_key_mint_bucket() {
    let mut limits = Limits::default();
    limits.set(Bucket::KeyMint, Quota::per_secs(3, 3600));
    let (app, browser) = owner_app(limits).await;
    login_device(&app, &browser, None, None).await;
    browser.mint_key("a", None).await;
    browser.mint_key("b", None).await;

    // Both routes are now refused by the same bucket.
    let issued = start(&app, None, None).await;
    let res = browser
        .post(
            "/api/v1/auth/device/approve",
            json!({ "userCode": user_code(&issued) }),
        )
        .await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    let (status, body) = read(res).await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "key-mint");
    let res = browser.post("/api/v1/api-keys", json!({"name": "c"})).await;
    assert!(res.headers().get("retry-after").is_some());
    let (status, body) = read(res).await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "key-mint");

    // The refused approval changed nothing.
    let (status, body) = poll(&app, &device_code(&issued)).await;
    assert_oauth(status, &body, "authorization_pending");
    assert_eq!(lookup(&browser, &user_code(&issued)).await.0, 200);
}

#[tokio::test]
async fn failed_user_code_guesses_lock_the_user_and_ip_out() {
    let (app, browser) = owner_app(Limits::default()).await;
    let issued = start(&app, None, None).await;
    let code = user_code(&issued);
    // Real codes cost nothing: far more lookups than the bucket holds.
    for _ in 0..12 {
        assert_eq!(lookup(&browser, &code).await.0, 200);
    }
    let wrong = if code.starts_with('B') {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };
    for i in 0..5 {
        let (status, body) = if i % 2 == 0 {
            lookup(&browser, wrong).await
        } else {
            deny(&browser, wrong).await
        };
        assert_error(status, &body, 404, "NOT_FOUND", "invalid_user_code");
    }
    // Locked out: wrong and right codes alike get 429, so guessing teaches nothing.
    for (what, res) in [
        (
            "wrong lookup",
            browser
                .get(&format!("/api/v1/auth/device/lookup?userCode={wrong}"))
                .await,
        ),
        (
            "right lookup",
            browser
                .get(&format!("/api/v1/auth/device/lookup?userCode={code}"))
                .await,
        ),
        (
            "right approval",
            browser
                .post("/api/v1/auth/device/approve", json!({ "userCode": code }))
                .await,
        ),
    ] {
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=180).contains(&retry), "{what}: {retry}");
        let (status, body) = read(res).await;
        assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
        assert_eq!(
            body["error"]["details"]["bucket"], "user-code-guess",
            "{what}"
        );
    }
    let (status, body) = poll(&app, &device_code(&issued)).await;
    assert_oauth(status, &body, "authorization_pending");

    // Another user on the same IP has their own bucket.
    let bob = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    assert_eq!(lookup(&bob, &code).await.0, 200);
}

// --- who may decide --------------------------------------------------------------------

#[tokio::test]
async fn keys_are_refused_and_stale_sessions_step_up_before_approving() {
    let (app, browser) = owner_app(Limits::default()).await;
    let (key, _) = browser.mint_key("k", None).await;
    let issued = start(&app, None, None).await;
    let code = user_code(&issued);
    let with_key = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = app.http.request(method, app.at(path)).bearer_auth(&key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    for (method, path, body) in [
        (
            reqwest::Method::GET,
            format!("/api/v1/auth/device/lookup?userCode={code}"),
            None,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/device/approve".to_string(),
            Some(json!({"userCode": code})),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/device/deny".to_string(),
            Some(json!({"userCode": code})),
        ),
    ] {
        let (status, res) = read(with_key(method, &path, body).await.unwrap()).await;
        assert_error(status, &res, 403, "FORBIDDEN", "browser_session_required");
        assert!(
            res["error"]["details"].is_null(),
            "no step-up offer for keys: {res}"
        );
    }

    // CSRF as for the other browser writes.
    let res = browser
        .client
        .post(browser.at("/api/v1/auth/device/approve"))
        .json(&json!({"userCode": code}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 403, "FORBIDDEN", "csrf_failed");

    // A stale session may look and deny, but must step up to approve.
    app.clock.advance(Duration::seconds(601));
    assert_eq!(lookup(&browser, &code).await.0, 200);
    let (status, body) = approve(&browser, &code, None).await;
    assert_error(status, &body, 403, "FORBIDDEN", "step_up_required");
    assert_eq!(
        body["error"]["details"]["stepUpUrl"],
        "/api/v1/auth/step-up"
    );
    let (status, body) = poll(&app, &device_code(&issued)).await;
    assert_oauth(status, &body, "authorization_pending");
    assert_eq!(browser.step_up(TEST_PASSWORD).await.status(), 200);
    assert_eq!(approve(&browser, &code, None).await.0, 200);
    assert_eq!(poll(&app, &device_code(&issued)).await.0, 200);
}

#[tokio::test]
async fn the_approval_binds_the_key_to_the_approvers_chosen_org() {
    let (app, browser) = owner_app(Limits::default()).await;
    let (status, body) = read(
        browser
            .post("/api/v1/orgs", json!({"slug": "beta", "name": "Beta"}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let issued = start(&app, None, None).await;
    let res = browser
        .client
        .post(browser.at("/api/v1/auth/device/approve"))
        .header("x-csrf-token", browser.csrf.as_deref().unwrap())
        .header("x-alumia-org", "beta")
        .json(&json!({"userCode": user_code(&issued)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, token) = poll(&app, &device_code(&issued)).await;
    let key = token["access_token"].as_str().unwrap();
    let (_, me) = read(app.get_with_key("/api/v1/me", key).await).await;
    assert_eq!(me["data"]["org"]["slug"], "beta", "{me}");
    assert!(device_keys(&browser).await.is_empty(), "not a key of acme");
}

// --- the page --------------------------------------------------------------------------

#[tokio::test]
async fn the_device_page_sends_strangers_to_login_and_shows_the_code_to_users() {
    let (app, browser) = owner_app(Limits::default()).await;
    let stranger = app.browser();
    let res = stranger.get("/device?user_code=wdjb-mjht").await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/login?next=%2Fdevice%3Fuser_code%3DWDJB-MJHT"
    );
    let res = stranger.get("/device").await;
    assert_eq!(res.headers()["location"], "/login?next=%2Fdevice");
    let res = stranger
        .client
        .get(app.at("/device?user_code=%22%3E%3Cx%3E"))
        .header("cookie", "alumia_session=not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "a dead cookie is no session");
    assert_eq!(
        res.headers()["location"],
        "/login?next=%2Fdevice%3Fuser_code%3DX"
    );

    let res = browser.get("/device?user_code=wdjb%20mjht").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = res.text().await.unwrap();
    for needle in [
        "data-page=\"device\"",
        "value=\"WDJB-MJHT\"",
        "id=\"approve\"",
        "id=\"deny\"",
        "value=\"mcp:read\"",
        "value=\"mcp:write\"",
        "id=\"device-name\"",
        "id=\"request-ip\"",
        "id=\"requested-at\"",
        "id=\"org-select\"",
        "/assets/app.js",
    ] {
        assert!(html.contains(needle), "the page has {needle}");
    }
    assert!(!html.contains("{{"), "no placeholder left");
    assert!(!html.contains("<script>"), "no inline scripts");

    let html = browser
        .get("/device?user_code=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("alert("),
        "the query is never reflected as markup"
    );
    assert!(html.contains("value=\"SCRIPTALERT1SCRI\""));

    let js = browser.get("/assets/app.js").await.text().await.unwrap();
    for needle in [
        "device: devicePage",
        "/api/v1/auth/device/lookup",
        "/api/v1/auth/device/approve",
        "/api/v1/auth/device/deny",
        "promptStepUp",
    ] {
        assert!(js.contains(needle), "app.js has {needle}");
    }
}

// --- PostgreSQL and Redis -------------------------------------------------------------------

mod pg {
    use alumia_testkit::{TestApp, TestDb, fresh_pg_database};

    use super::*;

    /// The whole flow on PostgreSQL, with racing polls at the end.
    #[tokio::test]
    async fn device_login_works_on_postgres_and_racing_polls_mint_one_key() {
        let db = fresh_pg_database().await;
        let app = TestApp::builder()
            .db(TestDb::Url(db.url.clone()))
            .spawn()
            .await;
        let mut browser = app.browser();
        browser.setup("owner@example.com", "acme").await;

        let issued = start(&app, Some("mcp:read"), Some("pg-box")).await;
        let device = device_code(&issued);
        let (status, body) = poll(&app, &device).await;
        assert_oauth(status, &body, "authorization_pending");
        let (status, body) = poll(&app, &device).await;
        assert_oauth(status, &body, "slow_down");
        assert_eq!(lookup(&browser, &user_code(&issued)).await.0, 200);
        assert_eq!(approve(&browser, &user_code(&issued), None).await.0, 200);

        let results = futures::future::join_all((0..8).map(|_| poll(&app, &device))).await;
        let winners: Vec<&Value> = results
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert_eq!(winners[0]["scope"], "terminal models:read mcp:read");
        let keys = device_keys(&browser).await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0]["name"], "Alumia CLI (pg-box)");

        let denied = start(&app, None, None).await;
        assert_eq!(deny(&browser, &user_code(&denied)).await.0, 200);
        let (status, body) = poll(&app, &device_code(&denied)).await;
        assert_oauth(status, &body, "access_denied");

        app.stop().await;
        db.drop_db().await;
    }
}

mod redis {
    use alumia_testkit::{RedisPrefix, TestApp, redis_url};

    use super::*;

    /// On Redis, real codes are refunded and failed guesses lock out.
    #[tokio::test]
    async fn user_code_guesses_are_counted_and_refunded_on_redis() {
        let prefix = RedisPrefix::new().await;
        let app = TestApp::builder()
            .redis(&redis_url(), &prefix.prefix)
            .spawn()
            .await;
        let mut browser = app.browser();
        browser.setup("owner@example.com", "acme").await;
        let code = user_code(&start(&app, None, None).await);
        for _ in 0..10 {
            assert_eq!(
                lookup(&browser, &code).await.0,
                200,
                "real codes are refunded"
            );
        }
        let wrong = if code.starts_with('B') {
            "CCCC-CCCC"
        } else {
            "BBBB-BBBB"
        };
        for _ in 0..5 {
            assert_eq!(lookup(&browser, wrong).await.0, 404);
        }
        let (status, body) = lookup(&browser, &code).await;
        assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
        assert_eq!(body["error"]["details"]["bucket"], "user-code-guess");
        app.stop().await;
        prefix.cleanup().await;
    }

    /// Device buckets are auth buckets: without Redis they fail closed.
    #[tokio::test]
    async fn device_endpoints_fail_closed_when_redis_is_unreachable() {
        let app = TestApp::builder()
            .redis("redis://127.0.0.1:1", "alumia:t:down:")
            .spawn()
            .await;
        let code = post_form(
            &app,
            "/api/v1/auth/device/code",
            form(&[("client_id", "alumia-cli")]),
        )
        .await;
        let token = post_form(
            &app,
            "/api/v1/auth/device/token",
            form(&[
                ("grant_type", GRANT),
                ("device_code", &"A".repeat(43)),
                ("client_id", "alumia-cli"),
            ]),
        )
        .await;
        for res in [code, token] {
            assert!(res.headers().get("retry-after").is_some());
            let (status, body) = read(res).await;
            assert_error(status, &body, 503, "SERVICE_UNAVAILABLE", "unavailable");
        }
    }
}
