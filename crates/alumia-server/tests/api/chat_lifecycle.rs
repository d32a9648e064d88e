//! The life of a turn beyond one request (spec 03 §5.1, §5.4, 02 §8): a
//! disconnect never stops it; reattach, stop and resume; refusals while it
//! runs; stored messages; UIMessage ids; idempotent retries; tenancy.

use std::time::Duration;

use alumia_core::Clock;
use alumia_testkit::TestApp;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::chat::{chat, get, messages, parse_sse, post, session, text_of, types};
use crate::{add_user, app_with_owner, assert_error, read};

/// Longest wait for anything a test expects to happen.
const DEADLINE: Duration = Duration::from_secs(5);

/// Reads an SSE response one chunk at a time.
pub struct Sse {
    res: reqwest::Response,
    buf: Vec<u8>,
    pub done: bool,
}

impl Sse {
    pub fn new(res: reqwest::Response) -> Sse {
        assert_eq!(res.status(), 200, "not a stream");
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Sse {
            res,
            buf: Vec::new(),
            done: false,
        }
    }

    pub fn header(&self, name: &str) -> String {
        self.res.headers()[name].to_str().unwrap().to_string()
    }

    /// The next `(id, chunk)`, or `None` once `[DONE]` arrived.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let event = String::from_utf8(event).expect("UTF-8 event");
                let mut id = String::new();
                let mut data = None;
                for line in event.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(v.to_string());
                    }
                }
                match data.as_deref() {
                    Some("[DONE]") => {
                        self.done = true;
                        return None;
                    }
                    Some(d) => {
                        assert!(!self.done, "a chunk after [DONE]");
                        return Some((id, serde_json::from_str(d).expect("chunk is JSON")));
                    }
                    None => continue,
                }
            }
            if self.done {
                return None;
            }
            let chunk = tokio::time::timeout(DEADLINE, self.res.chunk())
                .await
                .expect("the stream stalled")
                .expect("stream read");
            match chunk {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => panic!("the stream ended without [DONE]"),
            }
        }
    }

    /// Chunks up to and including the first that matches `pred`.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while let Some(c) = self.next().await {
            let hit = pred(&c.1);
            out.push(c);
            if hit {
                return out;
            }
        }
        panic!("the stream ended before the awaited chunk: {out:?}");
    }

    /// Everything up to `[DONE]`.
    pub async fn rest(&mut self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while let Some(c) = self.next().await {
            out.push(c);
        }
        out
    }
}

/// `w1 w2 … wn`.
pub fn words(n: usize) -> String {
    (1..=n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn seqs(chunks: &[(String, Value)], turn: &str) -> Vec<i64> {
    chunks
        .iter()
        .map(|(id, _)| {
            let (t, seq) = id.split_once(':').expect("id is turn:seq");
            assert_eq!(t, turn, "a chunk of another turn");
            seq.parse().unwrap()
        })
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some`, or panics at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a turn and returns its stream.
async fn start(app: &TestApp, key: &str, body: Value) -> Sse {
    Sse::new(chat(app, key, body).await)
}

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

fn user_in(session: &str, text: &str) -> Value {
    json!({"sessionId": session, "messages": [{"role": "user", "content": text}]})
}

fn is_delta(c: &Value) -> bool {
    c["type"] == "text-delta"
}

/// Reads the stream until its second text delta.
async fn two_deltas(s: &mut Sse) -> Vec<(String, Value)> {
    let mut out = s.until(is_delta).await;
    out.extend(s.until(is_delta).await);
    out
}

#[tokio::test]
async fn a_client_disconnect_does_not_stop_the_turn() {
    let (app, _owner, key) = app_with_owner().await;
    let mut s = start(&app, &key, user(&format!("/delay 50\n{}", words(10)))).await;
    let session_id = s.header("x-alumia-session-id");
    let first = two_deltas(&mut s).await;
    assert_eq!(text_of(&first), "echo: w1 ");
    drop(s);
    // Still running after the client left …
    let data = session(&app, &key, &session_id).await;
    assert!(data["runningTurn"].is_object(), "{data}");
    // … and it completes with the whole text.
    let done = eventually("the turn to complete", || async {
        let items = messages(&app, &key, &session_id).await;
        (items.len() == 2 && items[1]["status"] == "complete").then(|| items[1].clone())
    })
    .await;
    assert_eq!(done["text"], format!("echo: {}", words(10)));
    assert_eq!(done["finishReason"], "stop");
    let data = session(&app, &key, &session_id).await;
    assert!(data["runningTurn"].is_null(), "{data}");
    assert_eq!(data["status"], "active");
}

#[tokio::test]
async fn reattach_replays_then_follows_and_honours_last_event_id() {
    let (app, _owner, key) = app_with_owner().await;
    let mut s = start(&app, &key, user(&format!("/delay 40\n{}", words(12)))).await;
    let session_id = s.header("x-alumia-session-id");
    let turn_id = s.header("x-alumia-turn-id");
    let mut original = two_deltas(&mut s).await;
    let path = format!("/api/v1/chat/{session_id}/stream");

    // While it runs: from seq 0, and after seq 3.
    let whole = app.get_with_key(&path, &key).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["x-alumia-turn-id"], turn_id.as_str());
    let tail = app
        .http
        .get(app.at(&path))
        .bearer_auth(&key)
        .header("last-event-id", format!("{turn_id}:3"))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let (rest, whole, tail) = tokio::join!(s.rest(), whole.text(), tail.text());
    original.extend(rest);
    let whole = parse_sse(&whole.unwrap());
    let tail = parse_sse(&tail.unwrap());

    let n = original.len() as i64;
    assert_eq!(seqs(&original, &turn_id), (0..n).collect::<Vec<_>>());
    assert_eq!(whole, original, "a reattach from 0 is the same stream");
    assert_eq!(seqs(&tail, &turn_id), (4..n).collect::<Vec<_>>());
    assert_eq!(tail[..], original[4..]);
    assert_eq!(text_of(&whole), format!("echo: {}", words(12)));

    // After the end: a Last-Event-ID of that turn gets the remainder.
    let after = app
        .http
        .get(app.at(&path))
        .bearer_auth(&key)
        .header("last-event-id", format!("{turn_id}:5"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
    let after = parse_sse(&after.text().await.unwrap());
    assert_eq!(after[..], original[6..]);
    assert_eq!(after.last().unwrap().1["type"], "finish");

    // No running turn and no Last-Event-ID, or an unknown turn: nothing to attach to.
    let res = app.get_with_key(&path, &key).await;
    assert_eq!(res.status(), 204);
    let res = app
        .http
        .get(app.at(&path))
        .bearer_auth(&key)
        .header("last-event-id", format!("{}:0", uuid::Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // Another org's reader does not see the session.
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let res = app
        .http
        .get(app.at(&path))
        .bearer_auth(&eve_key)
        .header("last-event-id", format!("{turn_id}:0"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
}

#[tokio::test]
async fn stop_cancels_the_turn_keeps_the_partial_text_and_pauses_the_session() {
    let (app, _owner, key) = app_with_owner().await;
    let full = format!("echo: {}", words(30));
    let mut s = start(&app, &key, user(&format!("/delay 40\n{}", words(30)))).await;
    let session_id = s.header("x-alumia-session-id");
    let turn_id = s.header("x-alumia-turn-id");
    let mut chunks = two_deltas(&mut s).await;

    let (status, body) = post(
        &app,
        &key,
        &format!("/api/v1/chat/{session_id}/stop"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"sessionId": session_id, "turnId": turn_id, "status": "cancelled"})
    );
    chunks.extend(s.rest().await);
    let t = types(&chunks);
    assert_eq!(t[t.len() - 2..], ["abort", "finish"], "{t:?}");
    let abort = &chunks[chunks.len() - 2].1;
    assert_eq!(abort["reason"], "stopped");
    assert_eq!(chunks.last().unwrap().1["finishReason"], "other");
    // Open parts are closed before the abort.
    let starts = t.iter().filter(|t| *t == "text-start").count();
    let ends = t.iter().filter(|t| *t == "text-end").count();
    assert_eq!(starts, ends, "{t:?}");

    let streamed = text_of(&chunks);
    assert!(streamed.len() < full.len(), "the turn was not cut short");
    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items.len(), 2);
    let stored = &items[1];
    assert_eq!(stored["status"], "cancelled", "{stored}");
    assert_eq!(stored["finishReason"], "other");
    let text = stored["text"].as_str().unwrap();
    assert!(!text.is_empty());
    assert!(
        full.starts_with(text),
        "{text:?} is not a prefix of the echo"
    );
    assert_eq!(text, streamed, "the stored text is what was streamed");

    let data = session(&app, &key, &session_id).await;
    assert_eq!(data["status"], "paused");
    assert!(data["runningTurn"].is_null(), "{data}");

    // Nothing runs now (the stopped turn included).
    let (status, body) = post(
        &app,
        &key,
        &format!("/api/v1/chat/{session_id}/stop"),
        json!({}),
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "no_active_turn");
    let (_, fresh) = post(&app, &key, "/api/v1/sessions", json!({})).await;
    let fresh = fresh["data"]["id"].as_str().unwrap();
    let (status, body) = post(&app, &key, &format!("/api/v1/chat/{fresh}/stop"), json!({})).await;
    assert_error(status, &body, 409, "CONFLICT", "no_active_turn");
}

#[tokio::test]
async fn a_stopped_session_resumes_and_refusals_follow_its_state() {
    let (app, _owner, key) = app_with_owner().await;
    let mut s = start(&app, &key, user(&format!("/delay 30\n{}", words(12)))).await;
    let session_id = s.header("x-alumia-session-id");
    let first_turn = s.header("x-alumia-turn-id");
    two_deltas(&mut s).await;
    let resume = format!("/api/v1/chat/{session_id}/resume");

    // Running: not resumable yet.
    let (status, body) = post(&app, &key, &resume, json!({})).await;
    assert_error(status, &body, 409, "CONFLICT", "turn_in_progress");
    let (status, _) = post(
        &app,
        &key,
        &format!("/api/v1/chat/{session_id}/stop"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    s.rest().await;
    assert_eq!(session(&app, &key, &session_id).await["status"], "paused");

    // Paused: resume streams a new turn without a new user message.
    let res = app
        .http
        .post(app.at(&resume))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let mut r = Sse::new(res);
    assert_eq!(r.header("x-alumia-session-id"), session_id);
    let turn = r.header("x-alumia-turn-id");
    assert_ne!(turn, first_turn);
    let head = r.until(is_delta).await;
    assert_eq!(head[0].1["type"], "start");
    assert_eq!(head[0].1["messageMetadata"]["turnId"], turn.as_str());
    // While it runs: turn_in_progress.
    let (status, body) = post(&app, &key, &resume, json!({})).await;
    assert_error(status, &body, 409, "CONFLICT", "turn_in_progress");
    let rest = r.rest().await;
    assert_eq!(rest.last().unwrap().1["finishReason"], "stop");
    assert_eq!(seqs(&rest, &turn)[0], head.len() as i64);

    let items = messages(&app, &key, &session_id).await;
    let roles: Vec<&str> = items.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "assistant"],
        "no user message added"
    );
    assert_eq!(items[2]["status"], "complete");
    assert_eq!(items[2]["metadata"]["turnId"], turn.as_str());
    // Active again: nothing to resume.
    assert_eq!(session(&app, &key, &session_id).await["status"], "active");
    let (status, body) = post(&app, &key, &resume, json!({})).await;
    assert_error(status, &body, 409, "CONFLICT", "not_resumable");
}

#[tokio::test]
async fn a_session_paused_by_the_step_limit_resumes() {
    let app = TestApp::builder()
        .turn_limits(alumia_runtime::TurnLimits {
            max_steps: 3,
            ..Default::default()
        })
        .spawn()
        .await;
    let mut owner = app.browser();
    owner.setup("owner@example.com", "acme").await;
    let (key, _) = owner.mint_key("k", None).await;

    let res = chat(&app, &key, user("/loop echo")).await;
    let session_id = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let chunks = parse_sse(&res.text().await.unwrap());
    assert_eq!(
        types(&chunks).iter().filter(|t| *t == "start-step").count(),
        3
    );
    assert_eq!(chunks.last().unwrap().1["finishReason"], "length");
    assert_eq!(session(&app, &key, &session_id).await["status"], "paused");

    let res = app
        .http
        .post(app.at(&format!("/api/v1/chat/{session_id}/resume")))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let chunks = parse_sse(&res.text().await.unwrap());
    assert_eq!(chunks[0].1["type"], "start");
    assert_eq!(
        types(&chunks).iter().filter(|t| *t == "start-step").count(),
        3
    );
    let finish = &chunks.last().unwrap().1;
    assert_eq!(finish["finishReason"], "length");
    assert_eq!(finish["messageMetadata"]["limit"], "steps");
    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items.len(), 3, "one user message, two turns");
}

#[tokio::test]
async fn a_second_chat_while_a_turn_runs_is_refused_and_stores_nothing() {
    let (app, _owner, key) = app_with_owner().await;
    let mut s = start(&app, &key, user(&format!("/delay 30\n{}", words(12)))).await;
    let session_id = s.header("x-alumia-session-id");
    s.until(is_delta).await;
    assert_eq!(session(&app, &key, &session_id).await["messageCount"], 2);

    let body = json!({"sessionId": session_id, "messages": [
        {"id": "second-try", "role": "user", "parts": [{"type": "text", "text": "again"}]}]});
    let (status, res) = read(chat(&app, &key, body).await).await;
    assert_error(status, &res, 409, "CONFLICT", "turn_in_progress");

    assert_eq!(session(&app, &key, &session_id).await["messageCount"], 2);
    s.rest().await;
    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|m| m["id"] != "second-try"));
}

#[tokio::test]
async fn posted_messages_are_stored_without_a_turn_and_page_both_ways() {
    let (app, _owner, key) = app_with_owner().await;
    let (_, created) = post(&app, &key, "/api/v1/sessions", json!({"label": "notes"})).await;
    let sid = created["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/sessions/{sid}/messages");

    let (status, m) = post(
        &app,
        &key,
        &path,
        json!({"role": "user", "content": "first"}),
    )
    .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["data"]["role"], "user");
    assert_eq!(m["data"]["text"], "first");
    assert_eq!(m["data"]["status"], "complete");
    assert_eq!(m["data"]["sessionId"], sid.as_str());
    let (status, m) = post(
        &app,
        &key,
        &path,
        json!({"role": "assistant", "parts": [{"type": "text", "text": "second"}], "metadata": {"k": 1}}),
    )
    .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["data"]["author"]["kind"], "agent");
    assert_eq!(m["data"]["metadata"], json!({"k": 1}));

    // No turn started: no running turn, no assistant reply appears.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.runtime.hub.is_empty());
    let data = session(&app, &key, &sid).await;
    assert!(data["runningTurn"].is_null(), "{data}");
    assert_eq!(data["messageCount"], 2);
    let texts: Vec<Value> = messages(&app, &key, &sid)
        .await
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("first"), json!("second")]);

    // Exactly one of content or parts; user or assistant only.
    for bad in [
        json!({"role": "user", "content": "x", "parts": [{"type": "text", "text": "x"}]}),
        json!({"role": "user"}),
        json!({"role": "system", "content": "x"}),
    ] {
        let (status, body) = post(&app, &key, &path, bad.clone()).await;
        assert_eq!(status, 422, "{bad} → {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{body}");
    }

    for i in 3..=7 {
        let (status, _) = post(
            &app,
            &key,
            &path,
            json!({"role": "user", "content": format!("m{i}")}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let all: Vec<String> = messages(&app, &key, &sid)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), 7);
    for (order, want) in [
        ("asc", all.clone()),
        ("desc", all.iter().rev().cloned().collect()),
    ] {
        let mut got = Vec::new();
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("{path}?order={order}&limit=3&cursor={c}"),
                None => format!("{path}?order={order}&limit=3"),
            };
            let (status, body) = get(&app, &key, &q).await;
            assert_eq!(status, 200, "{body}");
            let items = body["data"]["items"].as_array().unwrap();
            pages.push(items.len());
            got.extend(items.iter().map(|m| m["id"].as_str().unwrap().to_string()));
            match body["data"]["nextCursor"].as_str() {
                Some(c) => {
                    assert_eq!(body["data"]["hasMore"], true);
                    cursor = Some(c.to_string());
                }
                None => {
                    assert_eq!(body["data"]["hasMore"], false);
                    break;
                }
            }
        }
        assert_eq!(pages, [3, 3, 1], "{order}");
        assert_eq!(got, want, "{order}: no duplicate, nothing missing");
    }

    // A cursor of another list is refused.
    let (_, page) = get(&app, &key, &format!("{path}?order=desc&limit=2")).await;
    let desc_cursor = page["data"]["nextCursor"].as_str().unwrap().to_string();
    let (status, body) = get(&app, &key, &format!("{path}?limit=2&cursor={desc_cursor}")).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_cursor");
    let (_, other) = post(&app, &key, "/api/v1/sessions", json!({})).await;
    let other = other["data"]["id"].as_str().unwrap();
    let (status, body) = get(
        &app,
        &key,
        &format!("/api/v1/sessions/{other}/messages?order=desc&limit=2&cursor={desc_cursor}"),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_cursor");
}

#[tokio::test]
async fn posting_a_message_while_a_turn_runs_is_refused() {
    let (app, _owner, key) = app_with_owner().await;
    let mut s = start(&app, &key, user(&format!("/delay 30\n{}", words(12)))).await;
    let session_id = s.header("x-alumia-session-id");
    s.until(is_delta).await;
    let (status, body) = post(
        &app,
        &key,
        &format!("/api/v1/sessions/{session_id}/messages"),
        json!({"role": "user", "content": "sneaky"}),
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "turn_in_progress");
    s.rest().await;
    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|m| m["text"] != "sneaky"));
}

#[tokio::test]
async fn client_message_ids_are_kept_and_a_repeated_id_is_a_conflict() {
    let (app, _owner, key) = app_with_owner().await;
    let ui = |id: &str, text: &str| json!({"id": id, "role": "user", "parts": [{"type": "text", "text": text}]});
    let res = chat(
        &app,
        &key,
        json!({"messages": [ui("Msg_client-1", "hello")]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let session_id = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    parse_sse(&res.text().await.unwrap());
    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items[0]["id"], "Msg_client-1");
    assert_eq!(items[0]["text"], "hello");

    let (status, body) = read(
        chat(
            &app,
            &key,
            json!({"sessionId": session_id, "messages": [ui("Msg_client-1", "hello again")]}),
        )
        .await,
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "duplicate_message");
    assert_eq!(messages(&app, &key, &session_id).await.len(), 2);
    // A fresh id in the same session is fine.
    let res = chat(
        &app,
        &key,
        json!({"sessionId": session_id, "messages": [ui("Msg_client-2", "more")]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    parse_sse(&res.text().await.unwrap());
    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items.len(), 4);
    assert_eq!(items[2]["id"], "Msg_client-2");
}

async fn chat_with_key(app: &TestApp, key: &str, idem: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.at("/api/v1/chat"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idempotent_chat_retry_replays_the_same_turn() {
    let (app, _owner, key) = app_with_owner().await;
    let body = user(&format!("/delay 20\n{}", words(8)));
    let mut first = Sse::new(chat_with_key(&app, &key, "chat-1", &body).await);
    let session_id = first.header("x-alumia-session-id");
    let turn_id = first.header("x-alumia-turn-id");
    let mut original = first.until(is_delta).await;

    // A retry while the turn runs re-attaches to it.
    let retry = chat_with_key(&app, &key, "chat-1", &body).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.headers()["x-alumia-turn-id"], turn_id.as_str());
    assert_eq!(retry.headers()["x-alumia-session-id"], session_id.as_str());
    let (rest, retried) = tokio::join!(first.rest(), retry.text());
    original.extend(rest);
    assert_eq!(parse_sse(&retried.unwrap()), original);

    // And after it ended, from the log.
    let late = chat_with_key(&app, &key, "chat-1", &body).await;
    assert_eq!(late.headers()["idempotent-replayed"], "true");
    assert_eq!(late.headers()["x-alumia-turn-id"], turn_id.as_str());
    assert_eq!(parse_sse(&late.text().await.unwrap()), original);

    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items.len(), 2, "one user message, one reply");
    let (_, sessions) = get(&app, &key, "/api/v1/sessions").await;
    assert_eq!(sessions["data"]["items"].as_array().unwrap().len(), 1);

    // The same key with another body, and malformed keys.
    let other = chat_with_key(&app, &key, "chat-1", &user("something else")).await;
    let (status, b) = read(other).await;
    assert_error(
        status,
        &b,
        422,
        "VALIDATION_ERROR",
        "idempotency_key_reused",
    );
    for bad in ["k".repeat(300), String::new()] {
        let (status, b) = read(chat_with_key(&app, &key, &bad, &user("x")).await).await;
        assert_error(status, &b, 400, "BAD_REQUEST", "invalid_idempotency_key");
    }
    let (_, sessions) = get(&app, &key, "/api/v1/sessions").await;
    assert_eq!(sessions["data"]["items"].as_array().unwrap().len(), 1);
}

async fn post_with_key(
    app: &TestApp,
    key: &str,
    idem: &str,
    path: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let res = app
        .http
        .post(app.at(path))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = read(res).await;
    (status, replayed, body)
}

#[tokio::test]
async fn idempotent_creates_replay_and_keys_are_per_org() {
    let (app, _owner, key) = app_with_owner().await;
    for (path, body, idem) in [
        ("/api/v1/sessions", json!({"label": "once"}), "session-1"),
        ("/api/v1/agents", json!({"name": "Once"}), "agent-1"),
    ] {
        let (_, before) = get(&app, &key, path).await;
        let before = before["data"]["items"].as_array().unwrap().len();
        let (s1, r1, b1) = post_with_key(&app, &key, idem, path, &body).await;
        assert_eq!((s1, r1), (201, None), "{path}: {b1}");
        let (s2, r2, b2) = post_with_key(&app, &key, idem, path, &body).await;
        assert_eq!(s2, 201, "{path}: {b2}");
        assert_eq!(r2.as_deref(), Some("true"), "{path}");
        assert_eq!(b2, b1, "{path}: the same body");
        let (_, after) = get(&app, &key, path).await;
        let after = after["data"]["items"].as_array().unwrap().len();
        assert_eq!(after, before + 1, "{path}: created once");
        let (status, _, b) =
            post_with_key(&app, &key, idem, path, &json!({"label": "x", "name": "X"})).await;
        assert_error(
            status,
            &b,
            422,
            "VALIDATION_ERROR",
            "idempotency_key_reused",
        );
    }
    // One namespace per org: a key used on one route is taken on another.
    let (status, _, b) = post_with_key(
        &app,
        &key,
        "session-1",
        "/api/v1/agents",
        &json!({"label": "once"}),
    )
    .await;
    assert_error(
        status,
        &b,
        422,
        "VALIDATION_ERROR",
        "idempotency_key_reused",
    );

    // Another org's identical request runs anew.
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let body = json!({"name": "Once"});
    let (_, _, mine) = post_with_key(&app, &key, "agent-2", "/api/v1/agents", &body).await;
    let (status, replayed, theirs) =
        post_with_key(&app, &eve_key, "agent-2", "/api/v1/agents", &body).await;
    assert_eq!((status, replayed), (201, None), "{theirs}");
    assert_ne!(theirs["data"]["id"], mine["data"]["id"]);
    assert_ne!(theirs["data"]["orgId"], mine["data"]["orgId"]);
    let (status, _) = get(
        &app,
        &eve_key,
        &format!("/api/v1/agents/{}", theirs["data"]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn accept_json_waits_for_the_turn() {
    let (app, _owner, key) = app_with_owner().await;
    let res = app
        .http
        .post(app.at("/api/v1/chat"))
        .bearer_auth(&key)
        .header("accept", "application/json")
        .json(&user("/delay 10\nplain answer"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let session_id = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (_, body) = read(res).await;
    let data = &body["data"];
    assert_eq!(data["sessionId"], session_id.as_str());
    assert_eq!(data["finishReason"], "stop");
    assert_eq!(data["usage"]["outputTokens"], 3);
    assert_eq!(data["message"]["role"], "assistant");
    assert_eq!(data["message"]["status"], "complete");
    assert_eq!(data["message"]["text"], "echo: plain answer");
    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items[1]["id"], data["message"]["id"]);
}

#[tokio::test]
async fn another_orgs_sessions_and_agents_are_out_of_reach() {
    let (app, _owner, key) = app_with_owner().await;
    let res = chat(&app, &key, user("mine")).await;
    let session_id = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    parse_sse(&res.text().await.unwrap());
    let (_, agent) = post(&app, &key, "/api/v1/agents", json!({"name": "Private"})).await;
    let agent_id = agent["data"]["id"].as_str().unwrap().to_string();

    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let (status, body) = read(chat(&app, &eve_key, user_in(&session_id, "theirs")).await).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    for agent in [agent_id.as_str(), "private"] {
        let (status, body) = read(
            chat(
                &app,
                &eve_key,
                json!({"agentId": agent, "messages": [{"role": "user", "content": "x"}]}),
            )
            .await,
        )
        .await;
        assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    }
    let path = format!("/api/v1/sessions/{session_id}/messages");
    let (status, body) = get(&app, &eve_key, &path).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    let (status, body) = post(
        &app,
        &eve_key,
        &path,
        json!({"role": "user", "content": "x"}),
    )
    .await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    for action in ["stop", "resume"] {
        let (status, body) = post(
            &app,
            &eve_key,
            &format!("/api/v1/chat/{session_id}/{action}"),
            json!({}),
        )
        .await;
        assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    }
    // Nothing of theirs landed in the session.
    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items.len(), 2);
}

#[tokio::test]
async fn deleting_a_session_stops_its_running_turn() {
    let (app, _owner, key) = app_with_owner().await;
    // Left alone, this turn would run for about ten seconds.
    let mut s = start(&app, &key, user(&format!("/delay 1000\n{}", words(10)))).await;
    let session_id = s.header("x-alumia-session-id");
    s.until(is_delta).await;
    assert_eq!(app.runtime.running_turns(), 1);
    let res = app
        .http
        .delete(app.at(&format!("/api/v1/sessions/{session_id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    let rest = s.rest().await;
    let t = types(&rest);
    assert_eq!(t[t.len() - 2..], ["abort", "finish"], "{t:?}");
    assert_eq!(rest.last().unwrap().1["finishReason"], "other");
    eventually("the turn to end", || async {
        (app.runtime.running_turns() == 0 && app.runtime.hub.is_empty()).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let (status, _) = get(&app, &key, &format!("/api/v1/sessions/{session_id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_idempotent_retry_of_a_refused_chat_replays_the_refusal() {
    let (app, _owner, key) = app_with_owner().await;
    let body = user_in(&uuid::Uuid::now_v7().to_string(), "anyone there?");
    let (status, first) = read(chat_with_key(&app, &key, "refused-1", &body).await).await;
    assert_error(status, &first, 404, "NOT_FOUND", "not_found");
    // 404 is stored (02 §8): the retry replays it with its status.
    let res = chat_with_key(&app, &key, "refused-1", &body).await;
    assert_eq!(
        res.headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let (status, again) = read(res).await;
    assert_eq!(status, 404, "{again}");
    assert_eq!(again, first);
}

#[tokio::test]
async fn a_replay_after_the_log_is_pruned_is_rebuilt_from_the_stored_message() {
    let (app, _owner, key) = app_with_owner().await;
    let body = user("/tool echo {\"text\":\"hi\"}\nrebuilt");
    let first = chat_with_key(&app, &key, "rebuild-1", &body).await;
    let session_id = first.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let turn_id = first.headers()["x-alumia-turn-id"]
        .to_str()
        .unwrap()
        .to_string();
    let original = parse_sse(&first.text().await.unwrap());
    let pruned = app
        .store
        .prune_turn_events(app.clock.now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(pruned > 0);

    // The log is gone: a reattach has nothing to send …
    let res = app
        .http
        .get(app.at(&format!("/api/v1/chat/{session_id}/stream")))
        .bearer_auth(&key)
        .header("last-event-id", format!("{turn_id}:2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // … and an idempotent replay is rebuilt from the stored message.
    let res = chat_with_key(&app, &key, "rebuild-1", &body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(res.headers()["x-alumia-session-id"], session_id.as_str());
    assert_eq!(res.headers()["x-alumia-turn-id"], turn_id.as_str());
    let rebuilt = parse_sse(&res.text().await.unwrap());
    let n = rebuilt.len() as i64;
    assert_eq!(seqs(&rebuilt, &turn_id), (0..n).collect::<Vec<_>>());
    let t = types(&rebuilt);
    assert_eq!(t.first().map(String::as_str), Some("start"));
    assert_eq!(t[1], "start-step");
    assert_eq!(t[t.len() - 2..], ["finish-step", "finish"], "{t:?}");
    assert_eq!(rebuilt[0].1["messageId"], original[0].1["messageId"]);
    assert_eq!(
        rebuilt[0].1["messageMetadata"]["sessionId"],
        session_id.as_str()
    );
    let output = rebuilt
        .iter()
        .find(|(_, c)| c["type"] == "tool-output-available")
        .expect("the tool result");
    assert_eq!(output.1["output"], json!({"text": "hi"}));
    assert_eq!(text_of(&rebuilt), text_of(&original));
    assert_eq!(rebuilt.last().unwrap().1["finishReason"], "stop");
    assert_eq!(messages(&app, &key, &session_id).await.len(), 2);
}

/// The stored assistant message while its turn still runs (`None` once over).
async fn stored_while_running(app: &TestApp, key: &str, session_id: &str) -> Option<Value> {
    let items = messages(app, key, session_id).await;
    let running = session(app, key, session_id).await["runningTurn"].is_object();
    (running && items.len() == 2).then(|| items[1].clone())
}

#[tokio::test]
async fn a_streaming_message_is_saved_while_the_turn_runs() {
    // Spec 03 §5.1: saved at least once a second (the default flush).
    let (app, _owner, key) = app_with_owner().await;
    let all = format!("echo: {}", words(40));
    let mut s = start(&app, &key, user(&format!("/delay 100\n{}", words(40)))).await;
    let session_id = s.header("x-alumia-session-id");
    two_deltas(&mut s).await;
    let saved = eventually("a save of the streaming text", || async {
        let m = stored_while_running(&app, &key, &session_id).await?;
        (m["text"].as_str()?.len() > "echo: ".len()).then_some(m)
    })
    .await;
    assert_eq!(saved["status"], "streaming");
    let text = saved["text"].as_str().unwrap();
    assert!(
        all.starts_with(text),
        "{text:?} is not a prefix of the answer"
    );
    assert!(text.len() < all.len(), "saved before the end: {text:?}");
}

#[tokio::test]
async fn a_completed_part_is_saved_at_once() {
    // No timed saves in this test: only the tool part's completion saves.
    let app = TestApp::builder()
        .turn_limits(alumia_runtime::TurnLimits {
            flush_interval: Duration::from_secs(3600),
            ..Default::default()
        })
        .spawn()
        .await;
    let mut owner = app.browser();
    owner.setup("owner@example.com", "acme").await;
    let (key, _) = owner.mint_key("k", None).await;
    let mut s = start(
        &app,
        &key,
        user(&format!(
            "/delay 100\n/tool echo {{\"text\": \"hi\"}}\n{}",
            words(40)
        )),
    )
    .await;
    let session_id = s.header("x-alumia-session-id");
    s.until(|c| c["type"] == "tool-output-available").await;
    let saved = eventually("the tool part saved", || async {
        let m = stored_while_running(&app, &key, &session_id).await?;
        let parts = m["parts"].as_array()?.clone();
        parts
            .iter()
            .any(|p| p["type"] == "tool-echo" && p["state"] == "output-available")
            .then_some(m)
    })
    .await;
    assert_eq!(saved["status"], "streaming");
}
