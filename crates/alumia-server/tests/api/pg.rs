//! The same API on PostgreSQL (and Redis): needs the services; never skips.

use std::time::{Duration, Instant};

use alumia_core::limits::{Bucket, Limits, Quota};
use alumia_testkit::{
    Browser, PgDatabase, RedisPrefix, TcpProxy, TestApp, TestDb, eventually, fresh_pg_database,
    redis_url,
};
use serde_json::json;

use crate::{assert_error, read};

/// A server on a fresh PostgreSQL database with its first owner signed in.
async fn owner_on_fresh_postgres() -> (PgDatabase, TestApp, Browser) {
    let db = fresh_pg_database().await;
    let app = TestApp::builder()
        .db(TestDb::Url(db.url.clone()))
        .spawn()
        .await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    (db, app, browser)
}

async fn finish(app: TestApp, db: PgDatabase) {
    app.stop().await;
    db.drop_db().await;
}

#[tokio::test]
async fn setup_mint_use_and_revoke_work_on_postgres() {
    let (db, app, browser) = owner_on_fresh_postgres().await;
    let (key, data) = browser.mint_key("pg", None).await;
    let (status, body) = read(app.get_with_key("/api/v1/models", &key).await).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = read(app.get_with_key("/api/v1/workspaces", &key).await).await;
    assert_eq!(
        (status, body["data"]["items"][0]["name"].as_str()),
        (200, Some("General"))
    );
    let id = data["id"].as_str().unwrap();
    assert_eq!(
        browser
            .delete(&format!("/api/v1/api-keys/{id}"))
            .await
            .status(),
        200
    );
    let (status, body) = read(app.get_with_key("/api/v1/models", &key).await).await;
    assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_api_key");
    let (status, body) = read(app.browser().post("/api/v1/setup", json!({"email": "x@example.com", "password": "correct horse battery", "orgSlug": "other", "orgName": "O"})).await).await;
    assert_error(status, &body, 409, "CONFLICT", "already_set_up");
    finish(app, db).await;
}

#[tokio::test]
async fn two_replicas_on_one_postgres_and_redis_share_one_bucket_and_revocations() {
    let db = fresh_pg_database().await;
    let prefix = RedisPrefix::new().await;
    let mut limits = Limits::default();
    limits.set(Bucket::ApiKey, Quota::per_secs(5, 3600));
    let replica = || {
        TestApp::builder()
            .db(TestDb::Url(db.url.clone()))
            .redis(&redis_url(), &prefix.prefix)
            .limits(limits.clone())
            .spawn()
    };
    let a = replica().await;
    let b = replica().await;
    let mut browser = a.browser();
    browser.setup("owner@example.com", "acme").await;
    let (key, _) = browser.mint_key("shared", None).await;
    let (key2, data2) = browser.mint_key("revoked-on-a", None).await;

    let mut admitted = 0;
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        match app
            .get_with_key("/api/v1/models", &key)
            .await
            .status()
            .as_u16()
        {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted, 5, "two replicas must share one bucket of 5");

    // B has the key cached; a revocation on A reaches B through Redis, well
    // before the cache TTL (the spec's bound is 5 s everywhere).
    assert_eq!(b.get_with_key("/api/v1/me", &key2).await.status(), 200);
    let id = data2["id"].as_str().unwrap();
    assert_eq!(
        browser
            .delete(&format!("/api/v1/api-keys/{id}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        a.get_with_key("/api/v1/me", &key2).await.status(),
        401,
        "at once on A"
    );
    let started = Instant::now();
    eventually(Duration::from_secs(5), || async {
        match b.get_with_key("/api/v1/me", &key2).await.status().as_u16() {
            401 => Ok(()),
            s => Err(format!("status {s}")),
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "pub/sub, not the TTL: {:?}",
        started.elapsed()
    );

    a.stop().await;
    b.stop().await;
    prefix.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_outage_gets_503_promptly_and_the_service_recovers_without_restart() {
    let db = fresh_pg_database().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(
        via_proxy, db.url,
        "the test URL must go through 127.0.0.1:5432"
    );
    let app = TestApp::builder().db(TestDb::Url(via_proxy)).spawn().await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    let (key, _) = browser.mint_key("k", None).await;
    assert_eq!(app.get_with_key("/api/v1/me", &key).await.status(), 200);

    proxy.cut();
    let started = Instant::now();
    let res = app.get_with_key("/api/v1/me", &key).await;
    let took = started.elapsed();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = read(res).await;
    assert_error(status, &body, 503, "SERVICE_UNAVAILABLE", "unavailable");
    assert!(
        retry.is_some_and(|r| r.parse::<u64>().is_ok()),
        "503 needs an integer Retry-After"
    );
    assert!(body["error"]["details"]["requestId"].is_string(), "{body}");
    assert!(
        !body.to_string().contains("5432"),
        "no internals in the body: {body}"
    );
    assert!(took < Duration::from_secs(10), "no hang: took {took:?}");
    assert_eq!(
        app.http
            .get(app.at("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    proxy.restore();
    eventually(Duration::from_secs(15), || async {
        let s = app.get_with_key("/api/v1/me", &key).await.status();
        if s == 200 {
            Ok(())
        } else {
            Err(format!("status {s}"))
        }
    })
    .await;
    assert_eq!(
        app.http
            .get(app.at("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    finish(app, db).await;
}

#[tokio::test]
async fn malformed_keys_are_refused_without_touching_the_database() {
    // With the database cut off, a lookup would be a 503; a malformed key is
    // a 401 because it is refused before any lookup.
    let db = fresh_pg_database().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let app = TestApp::builder()
        .db(TestDb::Url(
            db.url.replace("127.0.0.1:5432", &proxy.addr.to_string()),
        ))
        .spawn()
        .await;
    proxy.cut();
    for malformed in [
        "garbage",
        "alm_live_0123456789abcdef0123456789abcdef0123456789abcdef",
        "alm_test_XYZ",
    ] {
        let (status, body) = read(app.get_with_key("/api/v1/models", malformed).await).await;
        assert_error(status, &body, 401, "UNAUTHORIZED", "invalid_api_key");
    }
    let well_formed = format!("alm_test_{}", "ab".repeat(24));
    let (status, _) = read(app.get_with_key("/api/v1/models", &well_formed).await).await;
    assert_eq!(status, 503, "a well-formed key does need the database");
    proxy.restore();
    finish(app, db).await;
}

#[tokio::test]
async fn agents_work_on_postgres() {
    let (db, app, browser) = owner_on_fresh_postgres().await;
    let (status, body) = read(
        browser
            .post("/api/v1/agents", json!({"name": "Writer"}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = read(
        browser
            .post("/api/v1/agents", json!({"name": "Writer"}))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["data"]["slug"].as_str()),
        (201, Some("writer-2"))
    );
    let (_, list) = read(browser.get("/api/v1/agents").await).await;
    let slugs: Vec<&str> = list["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["writer-2", "writer", "ala"]);
    finish(app, db).await;
}

#[tokio::test]
async fn sessions_work_on_postgres() {
    let (db, app, browser) = owner_on_fresh_postgres().await;
    let (status, body) = read(
        browser
            .post("/api/v1/sessions", json!({"agentId": "ala", "label": "pg"}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["participants"].as_array().unwrap().len(), 2);
    let id = body["data"]["id"].as_str().unwrap().to_string();
    let res = browser
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/sessions/{id}"),
            Some(json!({"status": "idle"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, list) = read(browser.get("/api/v1/sessions?status=idle").await).await;
    assert_eq!(list["data"]["items"][0]["agentName"], "Ala");
    finish(app, db).await;
}
