//! Token buckets: exact capacity, headers, and no tokens spent on failures.

use alumia_core::limits::{Bucket, Limits, Quota};
use alumia_testkit::TestApp;
use serde_json::json;

use crate::{assert_error, read};

async fn app_with_limits(limits: Limits) -> (TestApp, alumia_testkit::Browser) {
    let app = TestApp::builder().limits(limits).spawn().await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    (app, browser)
}

#[tokio::test]
async fn the_api_key_bucket_admits_its_capacity_then_answers_429_with_headers() {
    let mut limits = Limits::default();
    limits.set(Bucket::ApiKey, Quota::per_secs(3, 3600));
    let (app, browser) = app_with_limits(limits).await;
    let (key, _) = browser.mint_key("k", None).await;

    for expected_left in [2, 1, 0] {
        let res = app.get_with_key("/api/v1/models", &key).await;
        assert_eq!(res.status(), 200);
        // One token per hour: q is the per-minute rate, at least 1.
        assert_eq!(res.headers()["ratelimit-policy"], "\"api-key\";q=1;w=60");
        let current = res.headers()["ratelimit"].to_str().unwrap().to_string();
        assert!(
            current.starts_with(&format!("\"api-key\";r={expected_left};t=")),
            "{current}"
        );
    }
    let res = app.get_with_key("/api/v1/models", &key).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("integer Retry-After");
    assert!((3500..=3600).contains(&retry), "{retry}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers()["ratelimit"].to_str().unwrap().contains("r=0"));
    let (status, body) = read(res).await;
    assert_error(status, &body, 429, "TOO_MANY_REQUESTS", "rate_limited");
    assert_eq!(body["error"]["details"]["bucket"], "api-key");

    // Another key of the same user has its own bucket.
    let (other, _) = browser.mint_key("k2", None).await;
    assert_eq!(
        app.get_with_key("/api/v1/models", &other).await.status(),
        200
    );
}

#[tokio::test]
async fn failed_authentication_spends_no_key_tokens() {
    let mut limits = Limits::default();
    limits.set(Bucket::ApiKey, Quota::per_secs(2, 3600));
    let (app, browser) = app_with_limits(limits).await;
    let (key, _) = browser.mint_key("k", None).await;
    let wrong_env = key.replacen("alm_test_", "alm_live_", 1);
    for _ in 0..10 {
        assert_eq!(
            app.get_with_key("/api/v1/models", &wrong_env)
                .await
                .status(),
            401
        );
    }
    assert_eq!(app.get_with_key("/api/v1/models", &key).await.status(), 200);
    assert_eq!(app.get_with_key("/api/v1/models", &key).await.status(), 200);
    assert_eq!(app.get_with_key("/api/v1/models", &key).await.status(), 429);
}

#[tokio::test]
async fn concurrent_mints_at_the_limit_admit_exactly_the_bucket_capacity() {
    let (app, browser) = app_with_limits(Limits::default()).await;
    let attempts =
        (0..8).map(|i| browser.post("/api/v1/api-keys", json!({"name": format!("k{i}")})));
    let results = futures::future::join_all(attempts).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    let (_, list) = read(browser.get("/api/v1/api-keys").await).await;
    assert_eq!(
        list["data"]["items"].as_array().unwrap().len(),
        5,
        "a refused mint has no side effect"
    );
    drop(app);
}

#[tokio::test]
async fn session_traffic_has_its_own_bucket_and_headers() {
    let mut limits = Limits::default();
    limits.set(Bucket::Session, Quota::per_minute(200, 1200));
    let (_app, browser) = app_with_limits(limits).await;
    let res = browser.get("/api/v1/me").await;
    assert_eq!(res.headers()["ratelimit-policy"], "\"session\";q=1200;w=60");
    assert!(
        res.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"session\";r=199;t=")
    );
}
