//! `AnthropicClient` against a fake that speaks the streaming Messages API.

use std::time::{Duration, Instant};

use alumia_models::anthropic::AnthropicClient;
use alumia_models::{
    CallPolicy, FinishReason, ModelClient, ModelError, ModelEvent, ModelRequest, PromptMessage,
    ToolCall, ToolSpec, Usage,
};
use serde_json::json;

use crate::fake::{
    Fake, KEY, Reply, Step, assert_no_key, chunks, collect, policy, split_bytes, text_of,
};

/// One named SSE event; `data` is the JSON whose `type` is the name.
fn event(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn message_start(usage: &str) -> String {
    event(
        "message_start",
        &format!(
            r#"{{"type":"message_start","message":{{"id":"msg_01K2","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[],"stop_reason":null,"stop_sequence":null,"usage":{usage}}}}}"#
        ),
    )
}

fn block_start(index: u32, block: &str) -> String {
    event(
        "content_block_start",
        &format!(r#"{{"type":"content_block_start","index":{index},"content_block":{block}}}"#),
    )
}

fn block_delta(index: u32, delta: &str) -> String {
    event(
        "content_block_delta",
        &format!(r#"{{"type":"content_block_delta","index":{index},"delta":{delta}}}"#),
    )
}

fn text_delta(index: u32, text: &str) -> String {
    block_delta(
        index,
        &json!({"type": "text_delta", "text": text}).to_string(),
    )
}

fn json_delta(index: u32, partial: &str) -> String {
    block_delta(
        index,
        &json!({"type": "input_json_delta", "partial_json": partial}).to_string(),
    )
}

fn block_stop(index: u32) -> String {
    event(
        "content_block_stop",
        &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
    )
}

fn message_delta(stop_reason: &str, output_tokens: u64) -> String {
    event(
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{{"output_tokens":{output_tokens}}}}}"#
        ),
    )
}

fn ping() -> String {
    event("ping", r#"{"type": "ping"}"#)
}

fn message_stop() -> String {
    event("message_stop", r#"{"type":"message_stop"}"#)
}

fn text_events() -> Vec<String> {
    vec![
        message_start(
            r#"{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":1}"#,
        ),
        block_start(0, r#"{"type":"text","text":""}"#),
        ping(),
        text_delta(0, "Hello"),
        text_delta(0, ", wörld"),
        text_delta(0, "!"),
        block_stop(0),
        message_delta("end_turn", 15),
        message_stop(),
    ]
}

fn text_reply() -> Reply {
    Reply::sse(chunks(&text_events()))
}

fn text_finish() -> ModelEvent {
    ModelEvent::Finish {
        reason: FinishReason::Stop,
        usage: Usage {
            input_tokens: 125,
            output_tokens: 15,
            reasoning_tokens: None,
            cached_input_tokens: Some(100),
        },
    }
}

fn hello_request() -> ModelRequest {
    ModelRequest {
        model: "claude-haiku-4-5".into(),
        system: Some("You are Ala.".into()),
        messages: vec![PromptMessage::User { text: "Hi".into() }],
        ..ModelRequest::default()
    }
}

fn client(fake: &Fake, policy: CallPolicy) -> AnthropicClient {
    AnthropicClient::new(reqwest::Client::new(), fake.endpoint("", policy))
}

#[tokio::test]
async fn text_stream_yields_deltas_in_order_then_finish_with_usage() {
    let fake = Fake::start(vec![text_reply()]).await;
    let stream = client(&fake, policy())
        .stream(hello_request())
        .await
        .unwrap();
    let (events, error) = collect(stream).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            ModelEvent::TextDelta("Hello".into()),
            ModelEvent::TextDelta(", wörld".into()),
            ModelEvent::TextDelta("!".into()),
            text_finish(),
        ]
    );

    let sent = fake.only_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.body,
        json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 4096,
            "system": "You are Ala.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "stream": true,
        })
    );
}

#[tokio::test]
async fn sse_split_at_any_byte_still_decodes() {
    let fake = Fake::start(vec![Reply::sse(split_bytes(&text_events().concat(), 5))]).await;
    let stream = client(&fake, policy())
        .stream(hello_request())
        .await
        .unwrap();
    let (events, error) = collect(stream).await;
    assert_eq!(error, None);
    assert_eq!(text_of(&events), ("Hello, wörld!".into(), 3));
    assert_eq!(events.last(), Some(&text_finish()));
}

#[tokio::test]
async fn keyless_endpoint_sends_no_key_header() {
    let fake = Fake::start(vec![text_reply()]).await;
    let mut endpoint = fake.endpoint("", policy());
    endpoint.api_key = None;
    let client = AnthropicClient::new(reqwest::Client::new(), endpoint);
    let (_, error) = collect(client.stream(hello_request()).await.unwrap()).await;
    assert_eq!(error, None);
    assert_eq!(fake.only_request().header("x-api-key"), None);
}

#[tokio::test]
async fn tool_use_blocks_stream_and_history_maps_to_blocks() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        message_start(r#"{"input_tokens":849,"output_tokens":10}"#),
        block_start(0, r#"{"type":"text","text":""}"#),
        text_delta(0, "Let me check."),
        block_stop(0),
        block_start(
            1,
            r#"{"type":"tool_use","id":"toolu_01KF","name":"get_time","input":{}}"#,
        ),
        json_delta(1, ""),
        ping(),
        json_delta(1, r#"{"tz": "#),
        json_delta(1, r#""UTC"}"#),
        block_stop(1),
        // A call without arguments: no deltas at all.
        block_start(
            2,
            r#"{"type":"tool_use","id":"toolu_02AB","name":"list_files","input":{}}"#,
        ),
        block_stop(2),
        message_delta("tool_use", 47),
        message_stop(),
    ]))])
    .await;

    let request = ModelRequest {
        model: "claude-haiku-4-5".into(),
        system: None,
        messages: vec![
            PromptMessage::User {
                text: "Look around.".into(),
            },
            PromptMessage::Assistant {
                text: "On it.".into(),
                tool_calls: vec![
                    ToolCall {
                        id: "toolu_a".into(),
                        name: "read_file".into(),
                        arguments: json!({"path": "a.txt"}),
                    },
                    ToolCall {
                        id: "toolu_b".into(),
                        name: "read_file".into(),
                        arguments: json!({"path": "b.txt"}),
                    },
                ],
            },
            PromptMessage::ToolResult {
                call_id: "toolu_a".into(),
                name: "read_file".into(),
                output: r#""alpha""#.into(),
                is_error: false,
            },
            PromptMessage::ToolResult {
                call_id: "toolu_b".into(),
                name: "read_file".into(),
                output: "no such file".into(),
                is_error: true,
            },
            PromptMessage::Assistant {
                // A tool-only turn has no text block.
                text: String::new(),
                tool_calls: vec![ToolCall {
                    id: "toolu_c".into(),
                    name: "list_files".into(),
                    arguments: json!({}),
                }],
            },
            PromptMessage::ToolResult {
                call_id: "toolu_c".into(),
                name: "list_files".into(),
                output: r#"["a.txt"]"#.into(),
                is_error: false,
            },
            PromptMessage::User {
                text: "And the time?".into(),
            },
        ],
        tools: vec![ToolSpec {
            name: "get_time".into(),
            description: "The current time".into(),
            parameters: json!({"type":"object","properties":{"tz":{"type":"string"}}}),
        }],
        max_output_tokens: Some(1024),
        temperature: Some(1.7),
        reasoning_effort: None,
    };
    let stream = client(&fake, policy()).stream(request).await.unwrap();
    let (events, error) = collect(stream).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            ModelEvent::TextDelta("Let me check.".into()),
            ModelEvent::ToolCallStart {
                id: "toolu_01KF".into(),
                name: "get_time".into()
            },
            ModelEvent::ToolCallDelta {
                id: "toolu_01KF".into(),
                delta: r#"{"tz": "#.into()
            },
            ModelEvent::ToolCallDelta {
                id: "toolu_01KF".into(),
                delta: r#""UTC"}"#.into()
            },
            ModelEvent::ToolCallReady {
                id: "toolu_01KF".into(),
                name: "get_time".into(),
                arguments: r#"{"tz": "UTC"}"#.into()
            },
            ModelEvent::ToolCallStart {
                id: "toolu_02AB".into(),
                name: "list_files".into()
            },
            ModelEvent::ToolCallReady {
                id: "toolu_02AB".into(),
                name: "list_files".into(),
                arguments: "{}".into()
            },
            ModelEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 849,
                    output_tokens: 47,
                    reasoning_tokens: None,
                    cached_input_tokens: None,
                },
            },
        ]
    );

    let body = fake.only_request().body;
    assert_eq!(
        body["tools"],
        json!([{
            "name": "get_time",
            "description": "The current time",
            "input_schema": {"type":"object","properties":{"tz":{"type":"string"}}},
        }])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Look around."}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "On it."},
                {"type": "tool_use", "id": "toolu_a", "name": "read_file", "input": {"path": "a.txt"}},
                {"type": "tool_use", "id": "toolu_b", "name": "read_file", "input": {"path": "b.txt"}},
            ]},
            // Both results in the one user message that follows.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "\"alpha\"", "is_error": false},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "no such file", "is_error": true},
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_c", "name": "list_files", "input": {}},
            ]},
            // The next user text joins the results: roles must alternate.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_c", "content": "[\"a.txt\"]", "is_error": false},
                {"type": "text", "text": "And the time?"},
            ]},
        ])
    );
    assert_eq!(body["max_tokens"], 1024);
    // Anthropic's temperature range ends at 1.
    assert_eq!(body["temperature"], 1.0);
    assert!(body.get("system").is_none());
}

#[tokio::test]
async fn thinking_blocks_become_reasoning_deltas() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        message_start(r#"{"input_tokens":30,"output_tokens":1}"#),
        block_start(0, r#"{"type":"thinking","thinking":""}"#),
        block_delta(
            0,
            r#"{"type":"thinking_delta","thinking":"The user greets me."}"#,
        ),
        block_delta(
            0,
            r#"{"type":"thinking_delta","thinking":" Be brief."}"#,
        ),
        block_delta(
            0,
            r#"{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}"#,
        ),
        block_stop(0),
        block_start(1, r#"{"type":"text","text":""}"#),
        text_delta(1, "Hello!"),
        block_stop(1),
        message_delta("end_turn", 40),
        message_stop(),
    ]))])
    .await;
    let (events, error) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            ModelEvent::ReasoningDelta("The user greets me.".into()),
            ModelEvent::ReasoningDelta(" Be brief.".into()),
            ModelEvent::TextDelta("Hello!".into()),
            ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: Usage {
                    input_tokens: 30,
                    output_tokens: 40,
                    reasoning_tokens: None,
                    cached_input_tokens: None,
                },
            },
        ]
    );
}

#[tokio::test]
async fn max_tokens_stop_reason_maps_to_length() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        message_start(r#"{"input_tokens":5,"output_tokens":1}"#),
        block_start(0, r#"{"type":"text","text":""}"#),
        text_delta(0, "Once upon"),
        block_stop(0),
        message_delta("max_tokens", 2),
        message_stop(),
    ]))])
    .await;
    let (events, _) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert!(matches!(
        events.last(),
        Some(ModelEvent::Finish {
            reason: FinishReason::Length,
            ..
        })
    ));
}

#[tokio::test]
async fn unauthorized_fails_at_once() {
    let fake = Fake::start(vec![Reply::json(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    )])
    .await;
    let error = client(&fake, policy())
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    assert_eq!(error, ModelError::Unauthorized { status: 401 });
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn rate_limit_waits_retry_after_then_succeeds() {
    let fake = Fake::start(vec![
        Reply::json(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
        )
        .header("retry-after", "1"),
        text_reply(),
    ])
    .await;
    let started = Instant::now();
    let stream = client(&fake, policy())
        .stream(hello_request())
        .await
        .unwrap();
    let waited = started.elapsed();
    let (events, error) = collect(stream).await;

    assert_eq!(error, None);
    assert_eq!(events.last(), Some(&text_finish()));
    assert_eq!(fake.count(), 2);
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
}

#[tokio::test]
async fn retry_after_beyond_the_limit_fails_at_once() {
    let fake = Fake::start(vec![
        Reply::json(
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}"#,
        )
        .header("retry-after", "45"),
    ])
    .await;
    let started = Instant::now();
    let error = client(&fake, policy())
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    assert_eq!(
        error,
        ModelError::RateLimited {
            retry_after: Some(Duration::from_secs(45))
        }
    );
    assert_eq!(fake.count(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let fake = Fake::start(vec![Reply::json(
        500,
        r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
    )])
    .await;
    let error = client(&fake, policy())
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ModelError::Unavailable { .. }), "{error:?}");
    assert_eq!(fake.count(), 1 + policy().max_retries as usize);
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let fake = Fake::start(vec![
        Reply::json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
        text_reply(),
    ])
    .await;
    let (events, error) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error, None);
    assert_eq!(events.last(), Some(&text_finish()));
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn an_invalid_request_is_rejected_with_the_provider_detail() {
    let fake = Fake::start(vec![Reply::json(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 999999 > 64000, which is the maximum allowed"}}"#,
    )])
    .await;
    let error = client(&fake, policy())
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    assert_eq!(
        error,
        ModelError::Rejected {
            status: 400,
            detail: "max_tokens: 999999 > 64000, which is the maximum allowed".into()
        }
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn an_error_event_mid_stream_fails_the_call() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        message_start(r#"{"input_tokens":5,"output_tokens":1}"#),
        block_start(0, r#"{"type":"text","text":""}"#),
        text_delta(0, "Hel"),
        event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
    ]))])
    .await;
    let (events, error) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(events, vec![ModelEvent::TextDelta("Hel".into())]);
    assert!(
        matches!(error, Some(ModelError::Unavailable { .. })),
        "{error:?}"
    );
    // Events were already yielded: no retry.
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn unknown_events_and_blocks_are_ignored() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        message_start(r#"{"input_tokens":5,"output_tokens":1}"#),
        event("future_event", r#"{"type":"future_event","x":1}"#),
        block_start(
            0,
            r#"{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"}"#,
        ),
        block_stop(0),
        block_start(1, r#"{"type":"text","text":""}"#),
        block_delta(
            1,
            r#"{"type":"citations_delta","citation":{"type":"char_location"}}"#,
        ),
        text_delta(1, "Hi"),
        block_stop(1),
        message_delta("end_turn", 3),
        message_stop(),
    ]))])
    .await;
    let (events, error) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error, None);
    assert_eq!(text_of(&events), ("Hi".into(), 1));
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn a_malformed_event_is_a_protocol_error_after_the_good_events() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        message_start(r#"{"input_tokens":5,"output_tokens":1}"#),
        block_start(0, r#"{"type":"text","text":""}"#),
        text_delta(0, "Hello"),
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\n\n".into(),
        text_delta(0, " never seen"),
        message_stop(),
    ]))])
    .await;
    let (events, error) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(events, vec![ModelEvent::TextDelta("Hello".into())]);
    assert!(matches!(error, Some(ModelError::Protocol(_))), "{error:?}");
}

#[tokio::test]
async fn an_event_without_a_type_is_a_protocol_error() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        message_start(r#"{"input_tokens":5,"output_tokens":1}"#),
        event("content_block_delta", r#"{"index":0,"delta":{}}"#),
        message_stop(),
    ]))])
    .await;
    let (events, error) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(events, vec![]);
    assert!(matches!(error, Some(ModelError::Protocol(_))), "{error:?}");
}

#[tokio::test]
async fn a_dropped_connection_mid_stream_is_interrupted_and_not_retried() {
    let mut body = chunks(&[
        message_start(r#"{"input_tokens":5,"output_tokens":1}"#),
        block_start(0, r#"{"type":"text","text":""}"#),
        text_delta(0, "Hello"),
        text_delta(0, " there"),
    ]);
    // Let the events reach the client before the connection breaks.
    body.push(Step::Pause(Duration::from_millis(50)));
    body.push(Step::Abort);
    let fake = Fake::start(vec![Reply::sse(body), text_reply()]).await;
    let (events, error) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text_of(&events), ("Hello there".into(), 2));
    assert_eq!(error, Some(ModelError::Interrupted));
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn a_body_that_ends_before_message_stop_is_interrupted() {
    let mut events = text_events();
    events.pop(); // no message_stop
    let fake = Fake::start(vec![Reply::sse(chunks(&events))]).await;
    let (events, error) = collect(
        client(&fake, policy())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(text_of(&events).0, "Hello, wörld!");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ModelEvent::Finish { .. }))
    );
    assert_eq!(error, Some(ModelError::Interrupted));
}

/// Short, but with room for a loaded CI machine; the fakes stall for 3 s.
fn short_timeouts() -> CallPolicy {
    CallPolicy {
        first_byte_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(500),
        ..policy()
    }
}

#[tokio::test]
async fn slow_headers_time_out() {
    let fake = Fake::start(vec![text_reply().delayed(Duration::from_secs(3))]).await;
    let started = Instant::now();
    let error = client(&fake, short_timeouts())
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    assert_eq!(error, ModelError::Timeout);
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn a_slow_first_body_chunk_times_out() {
    let mut body = vec![Step::Pause(Duration::from_secs(3))];
    body.extend(chunks(&text_events()));
    let fake = Fake::start(vec![Reply::sse(body)]).await;
    let started = Instant::now();
    let error = client(&fake, short_timeouts())
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    assert_eq!(error, ModelError::Timeout);
    assert!(started.elapsed() < Duration::from_millis(2500));
}

#[tokio::test]
async fn an_idle_stall_mid_stream_times_out() {
    let mut body = chunks(&[
        message_start(r#"{"input_tokens":5,"output_tokens":1}"#),
        block_start(0, r#"{"type":"text","text":""}"#),
        text_delta(0, "Hello"),
    ]);
    body.push(Step::Pause(Duration::from_secs(3)));
    body.extend(chunks(&[text_delta(0, " late"), message_stop()]));
    let fake = Fake::start(vec![Reply::sse(body)]).await;
    let started = Instant::now();
    let stream = client(&fake, short_timeouts())
        .stream(hello_request())
        .await
        .unwrap();
    let (events, error) = collect(stream).await;
    assert_eq!(events, vec![ModelEvent::TextDelta("Hello".into())]);
    assert_eq!(error, Some(ModelError::Timeout));
    assert!(started.elapsed() < Duration::from_millis(2500));
}

#[tokio::test]
async fn pings_keep_an_otherwise_idle_stream_alive() {
    // Five pings 200 ms apart: 1 s without content, but never 500 ms of silence.
    let mut body = chunks(&[
        message_start(r#"{"input_tokens":5,"output_tokens":1}"#),
        block_start(0, r#"{"type":"text","text":""}"#),
    ]);
    for _ in 0..5 {
        body.push(Step::Pause(Duration::from_millis(200)));
        body.extend(chunks(&[ping()]));
    }
    body.extend(chunks(&[
        text_delta(0, "Hi"),
        block_stop(0),
        message_delta("end_turn", 2),
        message_stop(),
    ]));
    let fake = Fake::start(vec![Reply::sse(body)]).await;
    let (events, error) = collect(
        client(&fake, short_timeouts())
            .stream(hello_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error, None);
    assert_eq!(text_of(&events).0, "Hi");
}

#[tokio::test]
async fn the_key_never_shows_in_debug_or_errors() {
    let echo = format!(
        r#"{{"type":"error","error":{{"type":"invalid_request_error","message":"key {KEY} may not use this model"}}}}"#
    );
    let fake = Fake::start(vec![Reply::json(400, &echo), Reply::json(403, &echo)]).await;
    let client = client(&fake, policy());
    assert!(!format!("{client:?}").contains(KEY));

    let rejected = client.stream(hello_request()).await.err().unwrap();
    let ModelError::Rejected {
        status: 400,
        detail,
    } = &rejected
    else {
        panic!("expected Rejected, got {rejected:?}");
    };
    assert_eq!(detail, "key *** may not use this model");
    assert_no_key(&rejected);

    let forbidden = client.stream(hello_request()).await.err().unwrap();
    assert_eq!(forbidden, ModelError::Unauthorized { status: 403 });
    assert_no_key(&forbidden);

    assert!(
        fake.requests()
            .iter()
            .all(|r| r.header("x-api-key") == Some(KEY))
    );
}
