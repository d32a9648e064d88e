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

/// Chat on PostgreSQL: a turn streams and is stored; a second turn on the
/// same session is refused while it runs; stop keeps the partial message.
#[tokio::test]
async fn chat_turns_stream_store_and_stop_on_postgres() {
    let (db, app, browser) = owner_on_fresh_postgres().await;
    let (key, _) = browser.mint_key("pg", None).await;
    let res = crate::chat::chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/tool echo {\"text\":\"x\"}\nhello"}]}),
    )
    .await;
    let session = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let chunks = crate::chat::parse_sse(&res.text().await.unwrap());
    assert_eq!(chunks.last().unwrap().1["finishReason"], "stop");
    let (_, list) = read(
        app.get_with_key(&format!("/api/v1/sessions/{session}/messages"), &key)
            .await,
    )
    .await;
    let items = list["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1]["text"],
        "echo: hello\ntool echo returned {\"text\":\"x\"}"
    );
    assert_eq!(items[1]["parts"][1]["type"], "tool-echo");

    // A slow turn: a second POST is refused, stop cancels and keeps the prefix.
    let slow = crate::chat::chat(
        &app,
        &key,
        json!({"sessionId": session, "messages": [{"role": "user", "content": "/delay 100\na b c d e f g h i j"}]}),
    )
    .await;
    assert_eq!(slow.status(), 200);
    let (s, b) = read(
        crate::chat::chat(
            &app,
            &key,
            json!({"sessionId": session, "messages": [{"role": "user", "content": "again"}]}),
        )
        .await,
    )
    .await;
    assert_error(s, &b, 409, "CONFLICT", "turn_in_progress");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (s, stopped) = read(
        app.http
            .post(app.at(&format!("/api/v1/chat/{session}/stop")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, &stopped["data"]["status"]),
        (200, &json!("cancelled")),
        "{stopped}"
    );
    let chunks = crate::chat::parse_sse(&slow.text().await.unwrap());
    let t = crate::chat::types(&chunks);
    assert_eq!(&t[t.len() - 2..], ["abort", "finish"]);
    let (_, list) = read(
        app.get_with_key(
            &format!("/api/v1/sessions/{session}/messages?order=desc&limit=1"),
            &key,
        )
        .await,
    )
    .await;
    let last = &list["data"]["items"][0];
    assert_eq!(last["status"], "cancelled");
    let text = last["text"].as_str().unwrap();
    assert!(
        text.starts_with("echo: ")
            && "echo: a b c d e f g h i j".starts_with(text)
            && text.len() < 24,
        "{text}"
    );
    let (_, s) = read(
        app.get_with_key(&format!("/api/v1/sessions/{session}"), &key)
            .await,
    )
    .await;
    assert_eq!(s["data"]["status"], "paused");
    finish(app, db).await;
}

/// Two replicas on one PostgreSQL (with or without Redis): a client on B
/// follows a turn running on A from seq 0, or after a Last-Event-ID,
/// without missing or repeating a chunk; a stop sent to B ends it on A.
async fn follow_across_replicas(with_redis: bool) {
    let db = fresh_pg_database().await;
    let prefix = RedisPrefix::new().await;
    let replica = || {
        let mut b = TestApp::builder().db(TestDb::Url(db.url.clone()));
        if with_redis {
            b = b.redis(&redis_url(), &prefix.prefix);
        }
        b.spawn()
    };
    let a = replica().await;
    let b = replica().await;
    let mut browser = a.browser();
    browser.setup("owner@example.com", "acme").await;
    let (key, _) = browser.mint_key("shared", None).await;

    let words: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
    let content = format!("/delay 40\n{}", words.join(" "));
    let on_a = crate::chat::chat(
        &a,
        &key,
        json!({"messages": [{"role": "user", "content": content}]}),
    )
    .await;
    let session = on_a.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let turn = on_a.headers()["x-alumia-turn-id"]
        .to_str()
        .unwrap()
        .to_string();
    let a_body = tokio::spawn(async move { on_a.text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(400)).await;

    let attach = |last: Option<String>| {
        let mut req = b
            .http
            .get(b.at(&format!("/api/v1/chat/{session}/stream")))
            .bearer_auth(&key);
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        req.send()
    };
    let full = attach(None).await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["x-alumia-turn-id"].to_str().unwrap(), turn);
    let tail = attach(Some(format!("{turn}:5"))).await.unwrap();
    if with_redis {
        // B follows through the turn's Redis channel, not only by polling.
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("{}turn:{turn}", prefix.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            subscribers, 2,
            "both readers on B subscribe to the turn's channel"
        );
    }
    let full = tokio::spawn(async move { full.text().await.unwrap() });
    let tail = tokio::spawn(async move { tail.text().await.unwrap() });

    let original = crate::chat::parse_sse(&a_body.await.unwrap());
    let followed = crate::chat::parse_sse(&full.await.unwrap());
    let tail = crate::chat::parse_sse(&tail.await.unwrap());
    assert_eq!(
        followed, original,
        "B replays and follows exactly A's chunks"
    );
    assert_eq!(
        tail,
        original[6..],
        "after Last-Event-ID :5, chunks 6.. exactly"
    );
    assert_eq!(original.last().unwrap().1["finishReason"], "stop");

    // A stop sent to B reaches the turn running on A.
    let slow = crate::chat::chat(
        &a,
        &key,
        json!({"sessionId": session, "messages": [{"role": "user", "content": content}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (s, body) = read(
        b.http
            .post(b.at(&format!("/api/v1/chat/{session}/stop")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let chunks = crate::chat::parse_sse(&slow.text().await.unwrap());
    assert_eq!(crate::chat::types(&chunks).last().unwrap(), "finish");
    assert!(crate::chat::types(&chunks).contains(&"abort".to_string()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    a.stop().await;
    b.stop().await;
    prefix.cleanup().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_turn_on_one_replica_is_followed_and_stopped_from_another_through_redis() {
    follow_across_replicas(true).await;
}

#[tokio::test]
async fn without_redis_another_replica_follows_a_turn_by_polling_the_log() {
    follow_across_replicas(false).await;
}

#[tokio::test]
async fn blocks_race_to_one_winner_move_atomically_and_go_with_their_project_on_postgres() {
    use crate::blocks::{block, delete, patch, project};
    use crate::chat::{get, post};
    let (db, app, browser) = owner_on_fresh_postgres().await;
    let (key, _) = browser.mint_key("pg", None).await;
    let pid = project(&app, &key, "Board").await;
    let other = project(&app, &key, "Other").await;
    let b = block(
        &app,
        &key,
        &pid,
        json!({"type": "data", "data": {"type": "markdown", "markdown": "m"}}),
    )
    .await;
    let foreign = block(
        &app,
        &key,
        &other,
        json!({"type": "code", "data": {"code": "x"}}),
    )
    .await;
    assert_eq!(
        b["position"],
        json!({"x": 0, "y": 0, "width": 288, "height": 192})
    );
    let path = format!("/api/v1/blocks/{}", b["id"].as_str().unwrap());

    // Two PATCHes holding one revision, at once: one 200, one 409.
    let mut revision = b["updatedAt"].as_str().unwrap().to_string();
    for round in 0..4 {
        let body = |t: &str| json!({"title": format!("{t}{round}"), "expectedUpdatedAt": revision});
        let (x, y) = tokio::join!(
            patch(&app, &key, &path, body("a")),
            patch(&app, &key, &path, body("b"))
        );
        let mut statuses = [x.0, y.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{x:?} {y:?}");
        let (winner, loser) = if x.0 == 200 { (x, y) } else { (y, x) };
        assert_error(loser.0, &loser.1, 409, "CONFLICT", "stale_revision");
        assert_eq!(
            loser.1["error"]["details"]["currentUpdatedAt"],
            winner.1["data"]["updatedAt"]
        );
        revision = winner.1["data"]["updatedAt"].as_str().unwrap().to_string();
    }

    // A foreign id in the batch: nothing moves.
    let positions = format!("/api/v1/projects/{pid}/blocks/positions");
    let (status, body) = patch(
        &app,
        &key,
        &positions,
        json!({"positions": [
        {"id": b["id"], "x": 480, "y": 480}, {"id": foreign["id"], "x": 0, "y": 0}]}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    assert_eq!(body["error"]["details"]["ids"], json!([foreign["id"]]));
    let (_, now) = get(&app, &key, &path).await;
    assert_eq!(now["data"]["position"]["x"], 0);
    let (status, _) = patch(
        &app,
        &key,
        &positions,
        json!({"positions": [{"id": b["id"], "x": 481, "y": 470}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, now) = get(&app, &key, &path).await;
    assert_eq!(
        (
            now["data"]["position"]["x"].as_i64(),
            now["data"]["position"]["y"].as_i64()
        ),
        (Some(480), Some(480))
    );

    // Edges, the canvas, and the project delete cascade.
    let (status, _) = post(
        &app,
        &key,
        &format!("/api/v1/projects/{pid}/edges"),
        json!({"from": {"kind": "block", "id": b["id"]}, "to": {"kind": "block", "id": b["id"]}}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, canvas) = get(&app, &key, &format!("/api/v1/projects/{pid}/canvas")).await;
    assert_eq!(
        canvas["data"]["edges"].as_array().unwrap().len(),
        1,
        "{canvas}"
    );
    let (status, _) = delete(&app, &key, &format!("/api/v1/projects/{pid}")).await;
    assert_eq!(status, 200);
    let (status, _) = get(&app, &key, &path).await;
    assert_eq!(status, 404, "blocks go with their project");
    let (status, _) = get(
        &app,
        &key,
        &format!("/api/v1/blocks/{}", foreign["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    finish(app, db).await;
}

/// Files on PostgreSQL: multipart and JSON + PUT uploads, a signed
/// download, tenancy, a folder move cycle, and shared blobs purged last.
#[tokio::test]
async fn files_upload_download_and_purge_shared_blobs_on_postgres() {
    use crate::files::{download, files_under, upload_ok};
    let (db, app, browser) = owner_on_fresh_postgres().await;
    let (key, _) = browser.mint_key("pg", None).await;
    let a = upload_ok(&app, &key, "a.txt", "text/plain", b"same bytes").await;
    let b = upload_ok(&app, &key, "b.txt", "text/plain", b"same bytes").await;
    assert_eq!(a["sha256"], b["sha256"]);
    let (a, b) = (
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    );
    let (status, _, bytes) = download(&app, &key, &a).await;
    assert_eq!((status, bytes.as_slice()), (200, &b"same bytes"[..]));

    let res = app
        .http
        .post(app.at("/api/v1/files"))
        .bearer_auth(&key)
        .json(&json!({"name": "p.txt", "mimeType": "text/plain", "size": 3}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 201, "{body}");
    let url = body["data"]["upload"]["url"].as_str().unwrap();
    let (status, body) = read(app.http.put(url).body("abc").send().await.unwrap()).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("ready")),
        "{body}"
    );

    let folder = |name: &str, parent: Option<&str>| {
        let mut body = json!({"source": "folder", "name": name});
        if let Some(p) = parent {
            body["parentId"] = json!(p);
        }
        let req = app
            .http
            .post(app.at("/api/v1/files"))
            .bearer_auth(&key)
            .json(&body);
        async move {
            read(req.send().await.unwrap()).await.1["data"]["file"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let outer = folder("outer", None).await;
    let inner = folder("inner", Some(&outer)).await;
    let (status, body) = read(
        app.http
            .patch(app.at(&format!("/api/v1/files/{outer}")))
            .bearer_auth(&key)
            .json(&json!({"parentId": inner}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "folder_cycle");

    let eve = crate::add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let (status, body) = read(
        app.get_with_key(&format!("/api/v1/files/{a}"), &eve_key)
            .await,
    )
    .await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");

    for id in [&a, &b] {
        let res = app
            .http
            .delete(app.at(&format!("/api/v1/files/{id}")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let (status, body) = read(
            browser
                .delete(&format!("/api/v1/files/{id}?permanent=true"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let left = files_under(&app.blob_dir).len();
        assert_eq!(
            left,
            if id == &a { 2 } else { 1 },
            "blob kept until its last row goes"
        );
    }
    finish(app, db).await;
}
