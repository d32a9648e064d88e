//! Chat through real provider adapters: a loopback server speaks the
//! OpenAI Chat Completions or Anthropic Messages streaming wire format, so
//! the whole path (catalogue → adapter → tool loop → stream → store) is
//! the production code.

use std::sync::{Arc, Mutex};

use alumia_models::{ApiSecret, CallPolicy};
use alumia_runtime::catalog::{ModelSpec, ProviderConfig, ProviderKind};
use alumia_testkit::TestApp;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::chat::{chat, parse_sse, text_of, types};
use crate::read;

/// What the fake answers each call with, in order (the last repeats).
#[derive(Clone)]
enum Reply {
    Sse(Vec<String>),
    Status(u16),
    /// Some SSE frames, then the connection closes without `[DONE]`.
    Cut(Vec<String>),
    /// Headers only after this long.
    Slow(u64),
}

#[derive(Clone, Default)]
struct Fake {
    replies: Arc<Mutex<Vec<Reply>>>,
    /// (authorization or x-api-key header, JSON body) per call.
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Fake {
    fn next(&self) -> Reply {
        let mut r = self.replies.lock().unwrap();
        if r.len() > 1 {
            r.remove(0)
        } else {
            r[0].clone()
        }
    }
    fn calls(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn completions(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let auth = headers
        .get("authorization")
        .or_else(|| headers.get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    fake.seen
        .lock()
        .unwrap()
        .push((auth, serde_json::from_str(&body).unwrap_or(Value::Null)));
    match fake.next() {
        Reply::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            [("content-type", "application/json")],
            json!({"error": {"message": "upstream says no", "type": "server_error"}}).to_string(),
        )
            .into_response(),
        Reply::Sse(frames) => sse(frames.join("")),
        Reply::Slow(ms) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            sse(openai_text(&["late"], 1).join(""))
        }
        Reply::Cut(frames) => {
            // A body stream that errors: hyper aborts the chunked response.
            // Paced, so the frames reach the client before the cut.
            let chunks = frames
                .into_iter()
                .map(Ok::<_, std::io::Error>)
                .chain(std::iter::once(Err(std::io::Error::other("cut"))));
            let paced =
                futures::StreamExt::then(futures::stream::iter(chunks), |item| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    item
                });
            let mut r = Response::new(Body::from_stream(paced));
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
    }
}

fn sse(body: String) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn spawn_fake(fake: Fake) -> String {
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/messages", post(completions))
        .route("/v1/models", get(|| async { axum::Json(json!({"object": "list", "data": [{"id": "tiny", "object": "model"}, {"id": "small", "object": "model"}]})) }))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn data(v: Value) -> String {
    format!("data: {v}\n\n")
}

fn openai_text(words: &[&str], prompt_tokens: u64) -> Vec<String> {
    let mut f = vec![data(
        json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
    )];
    for w in words {
        f.push(data(json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]})));
    }
    f.push(data(json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})));
    f.push(data(json!({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": words.len(), "total_tokens": prompt_tokens + words.len() as u64}})));
    f.push("data: [DONE]\n\n".into());
    f
}

fn openai_tool_call(name: &str, args: &[&str]) -> Vec<String> {
    let mut f = vec![data(
        json!({"id": "c2", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_abc", "type": "function", "function": {"name": name, "arguments": ""}}]}, "finish_reason": null}]}),
    )];
    for a in args {
        f.push(data(json!({"id": "c2", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": a}}]}, "finish_reason": null}]})));
    }
    f.push(data(json!({"id": "c2", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})));
    f.push(data(json!({"id": "c2", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})));
    f.push("data: [DONE]\n\n".into());
    f
}

fn provider(
    id: &str,
    kind: ProviderKind,
    base: String,
    key: &str,
    models: Option<&[&str]>,
) -> ProviderConfig {
    ProviderConfig {
        id: id.into(),
        kind,
        base_url: base,
        api_key: Some(ApiSecret::new(key)),
        models: models.map(|m| m.iter().map(|id| ModelSpec::discovered(id)).collect()),
        policy: CallPolicy {
            base_backoff: std::time::Duration::from_millis(5),
            ..CallPolicy::default()
        },
    }
}

async fn app_with(providers: Vec<ProviderConfig>) -> (TestApp, String) {
    let app = TestApp::builder().providers(providers).spawn().await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    let (key, _) = browser.mint_key("first", None).await;
    (app, key)
}

async fn last_message(app: &TestApp, key: &str, session: &str) -> Value {
    let path = format!("/api/v1/sessions/{session}/messages?order=desc&limit=1");
    let (_, list) = crate::chat::get(app, key, &path).await;
    list["data"]["items"][0].clone()
}

#[tokio::test]
async fn discovered_openai_models_join_the_catalogue_and_become_the_default() {
    let fake = Fake::default();
    fake.replies.lock().unwrap().push(Reply::Status(500));
    let base = spawn_fake(fake).await;
    let (app, key) = app_with(vec![provider(
        "local",
        ProviderKind::OpenAi,
        format!("{base}/v1"),
        "sk-local",
        None,
    )])
    .await;
    let (status, body) = read(app.get_with_key("/api/v1/models", &key).await).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dev/echo", "local/tiny", "local/small"]);
    let default: Vec<&str> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["isDefault"] == true)
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(default, ["local/tiny"]);
    assert!(!body.to_string().contains("sk-local"));
    // A bare model id resolves when one provider offers it.
    let (status, agent) = read(
        app.http
            .post(app.at("/api/v1/agents"))
            .bearer_auth(&key)
            .json(&json!({"name": "Tiny", "model": "tiny"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent["data"]["model"], "local/tiny");
}

#[tokio::test]
async fn an_openai_compatible_turn_streams_text_and_usage_and_sends_the_key() {
    let fake = Fake::default();
    fake.replies
        .lock()
        .unwrap()
        .push(Reply::Sse(openai_text(&["Hel", "lo ", "world"], 7)));
    let base = spawn_fake(fake.clone()).await;
    let (app, key) = app_with(vec![provider(
        "local",
        ProviderKind::OpenAi,
        format!("{base}/v1"),
        "sk-local",
        Some(&["tiny"]),
    )])
    .await;
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "hi"}], "model": "local/tiny"}),
    )
    .await;
    let session = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let chunks = parse_sse(&res.text().await.unwrap());
    assert_eq!(text_of(&chunks), "Hello world");
    let finish = &chunks.last().unwrap().1;
    assert_eq!(finish["finishReason"], "stop");
    assert_eq!(finish["messageMetadata"]["usage"]["inputTokens"], 7);
    assert_eq!(finish["messageMetadata"]["usage"]["outputTokens"], 3);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "Bearer sk-local");
    assert_eq!(calls[0].1["model"], "tiny");
    assert_eq!(calls[0].1["stream"], true);
    assert_eq!(
        calls[0].1["messages"].as_array().unwrap().last().unwrap()["content"],
        "hi"
    );
    // The default tools are offered, with `.` mapped for providers.
    let tools: Vec<&str> = calls[0].1["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"message_agent"),
        "{tools:?}"
    );
    let stored = last_message(&app, &key, &session).await;
    assert_eq!(stored["text"], "Hello world");
    assert_eq!(stored["status"], "complete");
    assert_eq!(stored["model"], "local/tiny");
}

#[tokio::test]
async fn provider_tool_calls_run_server_side_and_feed_the_next_step() {
    let fake = Fake::default();
    {
        let mut r = fake.replies.lock().unwrap();
        r.push(Reply::Sse(openai_tool_call(
            "echo",
            &["{\"te", "xt\":\"ping\"}"],
        )));
        r.push(Reply::Sse(openai_text(&["pong"], 20)));
    }
    let base = spawn_fake(fake.clone()).await;
    let (app, key) = app_with(vec![provider(
        "local",
        ProviderKind::OpenAi,
        format!("{base}/v1"),
        "sk-local",
        Some(&["tiny"]),
    )])
    .await;
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "call echo"}], "model": "local/tiny"}),
    )
    .await;
    let chunks = parse_sse(&res.text().await.unwrap());
    let t = types(&chunks);
    for want in [
        "tool-input-start",
        "tool-input-delta",
        "tool-input-available",
        "tool-output-available",
    ] {
        assert!(t.iter().any(|x| x == want), "{want} missing: {t:?}");
    }
    let out = chunks
        .iter()
        .find(|(_, c)| c["type"] == "tool-output-available")
        .unwrap();
    assert_eq!(out.1["toolCallId"], "call_abc");
    assert_eq!(out.1["output"], json!({"text": "ping"}));
    assert_eq!(text_of(&chunks), "pong");
    assert_eq!(
        chunks.last().unwrap().1["messageMetadata"]["usage"]["inputTokens"],
        30
    );
    // Step 2 carried the assistant tool call and its result.
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    let msgs = calls[1].1["messages"].as_array().unwrap();
    let assistant = msgs
        .iter()
        .find(|m| m["role"] == "assistant")
        .expect("assistant tool call");
    assert_eq!(assistant["tool_calls"][0]["id"], "call_abc");
    let tool = msgs
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("tool result");
    assert_eq!(tool["tool_call_id"], "call_abc");
    assert_eq!(
        serde_json::from_str::<Value>(tool["content"].as_str().unwrap()).unwrap(),
        json!({"text": "ping"})
    );
}

#[tokio::test]
async fn provider_failures_end_the_stream_with_a_safe_error_and_are_recorded() {
    for (reply, want) in [
        (Reply::Status(500), "The model provider is unavailable"),
        (Reply::Status(401), "Your provider key was rejected"),
    ] {
        let fake = Fake::default();
        fake.replies.lock().unwrap().push(reply);
        let base = spawn_fake(fake.clone()).await;
        let (app, key) = app_with(vec![provider(
            "local",
            ProviderKind::OpenAi,
            format!("{base}/v1"),
            "sk-secret-123",
            Some(&["tiny"]),
        )])
        .await;
        let res = chat(
            &app,
            &key,
            json!({"messages": [{"role": "user", "content": "hi"}], "model": "local/tiny"}),
        )
        .await;
        assert_eq!(res.status(), 200);
        let session = res.headers()["x-alumia-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body = res.text().await.unwrap();
        assert!(
            !body.contains("sk-secret-123") && !body.contains("upstream says no"),
            "{body}"
        );
        let chunks = parse_sse(&body);
        assert_eq!(types(&chunks), ["start", "start-step", "error", "finish"]);
        assert_eq!(chunks[2].1["errorText"], want);
        assert_eq!(chunks[3].1["finishReason"], "error");
        let stored = last_message(&app, &key, &session).await;
        assert_eq!(stored["status"], "error");
    }
}

#[tokio::test]
async fn a_stream_cut_midway_keeps_the_partial_text_and_errors() {
    let fake = Fake::default();
    let mut frames = openai_text(&["par", "tial ", "never"], 3);
    frames.truncate(3); // role chunk + two words, then the connection dies
    fake.replies.lock().unwrap().push(Reply::Cut(frames));
    let base = spawn_fake(fake).await;
    let (app, key) = app_with(vec![provider(
        "local",
        ProviderKind::OpenAi,
        format!("{base}/v1"),
        "sk",
        Some(&["tiny"]),
    )])
    .await;
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "hi"}], "model": "local/tiny"}),
    )
    .await;
    let session = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let chunks = parse_sse(&res.text().await.unwrap());
    let t = types(&chunks);
    assert_eq!(text_of(&chunks), "partial ");
    // The open text part is closed before the error.
    let end = t.iter().position(|x| x == "text-end").unwrap();
    let err = t.iter().position(|x| x == "error").unwrap();
    assert!(end < err, "{t:?}");
    assert_eq!(chunks.last().unwrap().1["finishReason"], "error");
    let stored = last_message(&app, &key, &session).await;
    assert_eq!(stored["status"], "error");
    assert_eq!(stored["text"], "partial ");
}

#[tokio::test]
async fn an_anthropic_turn_streams_thinking_text_and_usage() {
    let fake = Fake::default();
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    fake.replies.lock().unwrap().push(Reply::Sse(vec![
        ev("message_start", json!({"type": "message_start", "message": {"id": "m1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1}}})),
        ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}})),
        ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}})),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ev("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}})),
        ev("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Bonjour"}})),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 4}})),
        ev("message_stop", json!({"type": "message_stop"})),
    ]));
    let base = spawn_fake(fake.clone()).await;
    let (app, key) = app_with(vec![provider(
        "claude",
        ProviderKind::Anthropic,
        base,
        "sk-ant",
        Some(&["claude-x"]),
    )])
    .await;
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "salut"}], "model": "claude/claude-x"}),
    )
    .await;
    let chunks = parse_sse(&res.text().await.unwrap());
    let t = types(&chunks);
    assert_eq!(
        t,
        [
            "start",
            "start-step",
            "reasoning-start",
            "reasoning-delta",
            "reasoning-end",
            "text-start",
            "text-delta",
            "text-end",
            "finish-step",
            "finish"
        ]
    );
    assert_eq!(text_of(&chunks), "Bonjour");
    assert_eq!(
        chunks.last().unwrap().1["messageMetadata"]["usage"]["inputTokens"],
        12
    );
    assert_eq!(
        chunks.last().unwrap().1["messageMetadata"]["usage"]["outputTokens"],
        4
    );
    assert_eq!(fake.calls()[0].0, "sk-ant");
    assert_eq!(fake.calls()[0].1["model"], "claude-x");
}

#[tokio::test]
async fn an_org_byok_key_replaces_the_server_key_and_is_never_shown_again() {
    let fake = Fake::default();
    fake.replies
        .lock()
        .unwrap()
        .push(Reply::Sse(openai_text(&["ok"], 1)));
    let base = spawn_fake(fake.clone()).await;
    let app = TestApp::builder()
        .providers(vec![provider(
            "openai",
            ProviderKind::OpenAi,
            format!("{base}/v1"),
            "sk-server",
            Some(&["tiny"]),
        )])
        .spawn()
        .await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    let (key, _) = browser.mint_key("first", None).await;

    // Keys cannot manage BYOK keys; a stepped-up admin browser can.
    let (s, b) = read(
        app.http
            .post(app.at("/api/v1/billing/byok-keys"))
            .bearer_auth(&key)
            .json(&json!({"provider": "openai", "apiKey": "sk-org-owned-9876"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    crate::assert_error(s, &b, 403, "FORBIDDEN", "browser_session_required");
    let (s, created) = read(
        browser
            .post(
                "/api/v1/billing/byok-keys",
                json!({"provider": "openai", "apiKey": "sk-org-owned-9876", "label": "ours"}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["data"]["keyHint"], "9876");
    assert!(!created.to_string().contains("sk-org-owned"));
    let (s, again) = read(
        browser
            .post(
                "/api/v1/billing/byok-keys",
                json!({"provider": "openai", "apiKey": "sk-other-1111"}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 409, "{again}");
    let (_, list) = read(browser.get("/api/v1/billing/byok-keys").await).await;
    assert_eq!(list["data"]["items"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("sk-org-owned"));

    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "hi"}], "model": "openai/tiny"}),
    )
    .await;
    let chunks = parse_sse(&res.text().await.unwrap());
    assert_eq!(text_of(&chunks), "ok");
    assert_eq!(
        chunks.last().unwrap().1["messageMetadata"]["creditsMicrocredits"],
        0
    );
    assert_eq!(fake.calls()[0].0, "Bearer sk-org-owned-9876");
}

#[tokio::test]
async fn a_slow_provider_times_out_into_an_error_chunk_not_a_hang() {
    let fake = Fake::default();
    fake.replies.lock().unwrap().push(Reply::Slow(3_000));
    let base = spawn_fake(fake.clone()).await;
    let mut slow = provider(
        "local",
        ProviderKind::OpenAi,
        format!("{base}/v1"),
        "sk",
        Some(&["tiny"]),
    );
    slow.policy.first_byte_timeout = std::time::Duration::from_millis(200);
    slow.policy.max_retries = 1;
    let (app, key) = app_with(vec![slow]).await;
    let started = std::time::Instant::now();
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "hi"}], "model": "local/tiny"}),
    )
    .await;
    let session = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let chunks = parse_sse(&res.text().await.unwrap());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(types(&chunks), ["start", "start-step", "error", "finish"]);
    assert_eq!(
        chunks[2].1["errorText"],
        "The model provider is unavailable"
    );
    assert_eq!(fake.calls().len(), 1, "a timeout is not retried");
    assert_eq!(last_message(&app, &key, &session).await["status"], "error");
}
