//! `POST /api/v1/chat` with the built-in dev model: the stream, what is
//! stored, and the refusals before a stream starts.

use alumia_testkit::TestApp;
use serde_json::{Value, json};

use crate::{app_with_owner, assert_error, read};

/// Splits an SSE body into `(id, chunk)` pairs; checks the `[DONE]` end.
pub fn parse_sse(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut done = false;
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
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
            Some("[DONE]") => done = true,
            Some(d) => {
                assert!(!done, "a chunk after [DONE]");
                out.push((id, serde_json::from_str(d).expect("chunk is JSON")));
            }
            None => {}
        }
    }
    assert!(done, "the stream did not end with [DONE]: {body}");
    out
}

pub fn types(chunks: &[(String, Value)]) -> Vec<String> {
    chunks
        .iter()
        .map(|(_, c)| c["type"].as_str().unwrap().to_string())
        .collect()
}

pub fn text_of(chunks: &[(String, Value)]) -> String {
    chunks
        .iter()
        .filter(|(_, c)| c["type"] == "text-delta")
        .map(|(_, c)| c["delta"].as_str().unwrap())
        .collect()
}

pub async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    read(app.get_with_key(path, key).await).await
}

pub async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> (u16, Value) {
    read(
        app.http
            .post(app.at(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub async fn messages(app: &TestApp, key: &str, session: &str) -> Vec<Value> {
    let (status, body) = get(
        app,
        key,
        &format!("/api/v1/sessions/{session}/messages?limit=100"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["items"].as_array().unwrap().clone()
}

pub async fn session(app: &TestApp, key: &str, id: &str) -> Value {
    let (status, body) = get(app, key, &format!("/api/v1/sessions/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

pub async fn chat(app: &alumia_testkit::TestApp, key: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.at("/api/v1/chat"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_turn_streams_the_ui_message_protocol_and_is_stored() {
    let (app, _owner, key) = app_with_owner().await;
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["x-vercel-ai-ui-message-stream"], "v1");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    let session_id = h["x-alumia-session-id"].to_str().unwrap().to_string();
    let turn_id = h["x-alumia-turn-id"].to_str().unwrap().to_string();
    let chunks = parse_sse(&res.text().await.unwrap());
    assert_eq!(
        types(&chunks),
        [
            "start",
            "start-step",
            "text-start",
            "text-delta",
            "text-delta",
            "text-delta",
            "text-end",
            "finish-step",
            "finish"
        ]
    );
    for (i, (id, _)) in chunks.iter().enumerate() {
        assert_eq!(id, &format!("{turn_id}:{i}"));
    }
    let deltas = text_of(&chunks);
    assert_eq!(deltas, "echo: hello there");
    let start = &chunks[0].1;
    assert_eq!(start["messageMetadata"]["sessionId"], session_id.as_str());
    assert_eq!(start["messageMetadata"]["model"], "dev/echo");
    let finish = &chunks.last().unwrap().1;
    assert_eq!(finish["finishReason"], "stop");
    assert_eq!(finish["messageMetadata"]["usage"]["inputTokens"], 2);
    assert_eq!(finish["messageMetadata"]["usage"]["outputTokens"], 3);

    let items = messages(&app, &key, &session_id).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["role"], "user");
    assert_eq!(items[0]["text"], "hello there");
    assert_eq!(items[1]["role"], "assistant");
    assert_eq!(items[1]["id"], start["messageId"]);
    assert_eq!(items[1]["status"], "complete");
    assert_eq!(items[1]["text"], "echo: hello there");
    assert_eq!(items[1]["finishReason"], "stop");
    assert_eq!(items[1]["model"], "dev/echo");
    assert_eq!(items[1]["usage"]["outputTokens"], 3);

    let session = session(&app, &key, &session_id).await;
    assert_eq!(session["messageCount"], 2);
    assert_eq!(session["runningTurn"], Value::Null);
    assert_eq!(session["status"], "active");
}

#[tokio::test]
async fn tool_directives_run_tools_and_a_disallowed_tool_fails_cleanly() {
    let (app, _owner, key) = app_with_owner().await;
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/tool echo {\"text\":\"hi\"}\n/tool nope\nok"}]}),
    )
    .await;
    let chunks = parse_sse(&res.text().await.unwrap());
    let t = types(&chunks);
    assert_eq!(t.iter().filter(|t| *t == "start-step").count(), 2, "{t:?}");
    let out = chunks
        .iter()
        .find(|(_, c)| c["type"] == "tool-output-available")
        .expect("echo output");
    assert_eq!(out.1["toolCallId"], "call_1");
    assert_eq!(out.1["output"], json!({"text": "hi"}));
    let err = chunks
        .iter()
        .find(|(_, c)| c["type"] == "tool-output-error")
        .expect("nope fails");
    assert_eq!(err.1["toolCallId"], "call_2");
    assert_eq!(err.1["errorText"], "unknown tool: nope");
    let text = text_of(&chunks);
    assert_eq!(
        text,
        "echo: ok\ntool echo returned {\"text\":\"hi\"}\ntool nope failed: unknown tool: nope"
    );
    assert_eq!(chunks.last().unwrap().1["finishReason"], "stop");
}

#[tokio::test]
async fn a_runaway_loop_ends_at_the_step_limit_and_pauses_the_session() {
    let (app, _owner, key) = app_with_owner().await;
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/loop echo"}]}),
    )
    .await;
    let session_id = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let chunks = parse_sse(&res.text().await.unwrap());
    let t = types(&chunks);
    assert_eq!(t.iter().filter(|t| *t == "start-step").count(), 20);
    let finish = &chunks.last().unwrap().1;
    assert_eq!(finish["finishReason"], "length");
    assert_eq!(finish["messageMetadata"]["limit"], "steps");
    let session = session(&app, &key, &session_id).await;
    assert_eq!(session["status"], "paused");
}

#[tokio::test]
async fn a_model_error_ends_the_stream_with_an_error_chunk_and_is_recorded() {
    let (app, _owner, key) = app_with_owner().await;
    let res = chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/error boom"}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let session_id = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let chunks = parse_sse(&res.text().await.unwrap());
    let t = types(&chunks);
    assert_eq!(t, ["start", "start-step", "error", "finish"]);
    assert_eq!(chunks[2].1["errorText"], "dev/echo error: boom");
    assert_eq!(chunks[3].1["finishReason"], "error");
    let (_, list) = get(
        &app,
        &key,
        &format!("/api/v1/sessions/{session_id}/messages?order=desc&limit=1"),
    )
    .await;
    assert_eq!(list["data"]["items"][0]["status"], "error");
    assert_eq!(list["data"]["items"][0]["finishReason"], "error");
}

#[tokio::test]
async fn refusals_come_before_the_stream_in_the_envelope() {
    let (app, _owner, key) = app_with_owner().await;
    let (s, b) = read(chat(&app, &key, json!({"messages": []})).await).await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (422, &json!("VALIDATION_ERROR")),
        "{b}"
    );
    assert_eq!(
        b["error"]["details"]["fields"]["messages"],
        "must hold at least one message"
    );
    let (s, b) = read(
        chat(
            &app,
            &key,
            json!({"messages": [{"role": "assistant", "content": "x"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = read(
        chat(
            &app,
            &key,
            json!({"messages": [{"role": "user", "content": "x"}], "model": "nope/nope"}),
        )
        .await,
    )
    .await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", "unknown_model");
    let (s, b) = read(
        chat(
            &app,
            &key,
            json!({"messages": [{"role": "user", "content": "x"}], "agentId": "ghost"}),
        )
        .await,
    )
    .await;
    assert_error(s, &b, 400, "BAD_REQUEST", "invalid_reference");
    let (s, b) = read(
        chat(&app, &key, json!({"messages": [{"role": "user", "content": "x"}], "sessionId": uuid::Uuid::now_v7()})).await,
    )
    .await;
    assert_error(s, &b, 404, "NOT_FOUND", "not_found");
    let (s, b) = read(chat(&app, &key, json!({"messages": [{"role": "user", "content": "x"}], "trigger": "regenerate-message"})).await).await;
    assert_error(s, &b, 422, "VALIDATION_ERROR", "unsupported_trigger");
    let (s, b) = read(chat(&app, &key, json!({"messages": "nope"})).await).await;
    assert_eq!(s, 400, "{b}");
}
