//! The Redis limiter on its own: atomic, shared, fail-closed where it must be.

use std::sync::Arc;

use alumia_core::identity::{AuthSettings, Identity, MintInput, SignupInput};
use alumia_core::keys::KeyEnv;
use alumia_core::limits::{Bucket, Limits, Quota, RateLimiter};
use alumia_server::limiter::RedisLimiter;
use alumia_testkit::{RedisPrefix, TEST_PASSWORD, TestApp, redis_url};
use serde_json::json;

use crate::{assert_error, read};

#[tokio::test]
async fn concurrent_decisions_admit_exactly_the_capacity() {
    let prefix = RedisPrefix::new().await;
    let mut limits = Limits::default();
    limits.set(Bucket::KeyMint, Quota::per_secs(5, 60));
    let limiter = Arc::new(RedisLimiter::new(&redis_url(), &prefix.prefix, limits).unwrap());
    let tasks = (0..20).map(|_| {
        let l = limiter.clone();
        tokio::spawn(async move { l.check(Bucket::KeyMint, "user|ip").await.unwrap() })
    });
    let decisions: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 5);
    let denied = decisions.iter().find(|d| !d.allowed).unwrap();
    assert!((1..=60).contains(&denied.retry_after_secs), "{denied:?}");
    let mut remaining: Vec<u32> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort();
    assert_eq!(remaining, [0, 1, 2, 3, 4]);

    // Keys expire on their own.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}rl:key-mint:user|ip", prefix.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 301_000, "ttl {ttl}");
    prefix.cleanup().await;
}

#[tokio::test]
async fn when_redis_is_unreachable_auth_buckets_fail_closed_and_traffic_falls_back() {
    // Nothing listens on port 1: every Redis call fails fast.
    let app = TestApp::builder()
        .redis("redis://127.0.0.1:1", "alumia:t:down:")
        .spawn()
        .await;
    let identity = Identity::new(
        app.store.clone(),
        app.clock.clone(),
        app.secret.clone(),
        KeyEnv::Test,
        AuthSettings::default(),
    );
    identity
        .bootstrap(SignupInput {
            email: "owner@example.com".into(),
            password: TEST_PASSWORD.into(),
            name: None,
            org_slug: "acme".into(),
            org_name: "Acme".into(),
        })
        .await
        .unwrap();
    let (_, key) = identity
        .admin_create_key(
            "owner@example.com",
            "acme",
            MintInput {
                name: "ops".into(),
                scopes: None,
                expires_at: None,
            },
        )
        .await
        .unwrap();

    let res = app
        .browser()
        .login_response("owner@example.com", TEST_PASSWORD, json!({}))
        .await;
    assert!(res.headers().get("retry-after").is_some());
    let (status, body) = read(res).await;
    assert_error(status, &body, 503, "SERVICE_UNAVAILABLE", "unavailable");

    let (status, body) = read(app.get_with_key("/api/v1/models", &key).await).await;
    assert_eq!(
        status, 200,
        "traffic falls back to in-process limits: {body}"
    );
    assert_eq!(
        app.http
            .get(app.at("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
}
