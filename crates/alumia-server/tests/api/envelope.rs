//! The v1 conventions: envelope, error codes, request ids, body rules.

use alumia_testkit::TestApp;
use serde_json::json;

use crate::{app_with_owner, assert_error, read};

#[tokio::test]
async fn unknown_routes_get_a_404_envelope_with_request_id_and_nosniff() {
    let app = TestApp::spawn().await;
    let res = app.http.get(app.at("/api/v1/nope")).send().await.unwrap();
    assert!(res.headers().get("x-request-id").is_some());
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let (status, body) = read(res).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .put(app.at("/api/v1/api-keys"))
        .send()
        .await
        .unwrap();
    let allow = res
        .headers()
        .get("allow")
        .expect("Allow header")
        .to_str()
        .unwrap()
        .to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let (status, body) = read(res).await;
    assert_error(
        status,
        &body,
        405,
        "METHOD_NOT_ALLOWED",
        "method_not_allowed",
    );
}

#[tokio::test]
async fn valid_request_ids_are_echoed_and_invalid_ones_replaced() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(app.at("/healthz"))
        .header("x-request-id", "abc.DEF_1:2-3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc.DEF_1:2-3");
    let res = app
        .http
        .get(app.at("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "bad id with spaces");
    assert!(!id.is_empty() && id.len() <= 128);
    let long = "a".repeat(129);
    let res = app
        .http
        .get(app.at("/healthz"))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], long.as_str());
}

#[tokio::test]
async fn missing_credentials_get_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let res = app.http.get(app.at("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"alumia\"");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = read(res).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "missing_credentials");
}

#[tokio::test]
async fn malformed_json_reports_line_and_column() {
    let (app, browser, _) = app_with_owner().await;
    let res = browser
        .client
        .post(browser.at("/api/v1/api-keys"))
        .header("x-csrf-token", browser.csrf.clone().unwrap())
        .header("content-type", "application/json")
        .body("{\n \"name\": \"x\",\n oops }")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_json");
    assert_eq!(body["error"]["details"]["line"], 3, "{body}");
    assert!(body["error"]["details"]["column"].as_u64().unwrap() > 0);
    drop(app);
}

#[tokio::test]
async fn wrong_types_and_missing_fields_are_400_with_field_details() {
    let (_app, browser, _) = app_with_owner().await;
    let (status, body) = read(browser.post("/api/v1/api-keys", json!({"name": 42})).await).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_body");
    assert!(
        body["error"]["details"]["fields"]["name"].is_string(),
        "{body}"
    );
    let (status, body) = read(
        browser
            .post("/api/v1/api-keys", json!({"scopes": []}))
            .await,
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_body");
    assert!(
        body["error"]["details"]["fields"]["name"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{body}"
    );
}

#[tokio::test]
async fn a_non_json_content_type_is_refused() {
    let (_app, browser, _) = app_with_owner().await;
    let res = browser
        .client
        .post(browser.at("/api/v1/api-keys"))
        .header("x-csrf-token", browser.csrf.clone().unwrap())
        .header("content-type", "text/plain")
        .body("{\"name\":\"x\"}")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "unsupported_media_type");
}

#[tokio::test]
async fn bodies_over_128_kb_get_413_and_nothing_is_created() {
    let (app, browser, key) = app_with_owner().await;
    let big = json!({"name": "x".repeat(140 * 1024)});
    let (status, body) = read(browser.post("/api/v1/api-keys", big).await).await;
    assert_error(status, &body, 413, "PAYLOAD_TOO_LARGE", "payload_too_large");
    // A streamed (chunked) body has no Content-Length: 411 on a JSON route.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"{\"name\":".to_vec()), Ok(b"\"x\"}".to_vec())];
    let stream = futures::stream::iter(chunks);
    let res = browser
        .client
        .post(browser.at("/api/v1/api-keys"))
        .header("x-csrf-token", browser.csrf.clone().unwrap())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 411, "LENGTH_REQUIRED", "length_required");
    let (_, list) = read(app.get_with_key("/api/v1/api-keys", &key).await).await;
    assert_eq!(
        list["data"]["items"].as_array().unwrap().len(),
        1,
        "only the first key exists: {list}"
    );
}
