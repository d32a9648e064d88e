//! `OpenAiClient` against a fake that speaks streaming Chat Completions.

use std::time::{Duration, Instant};

use alumia_models::openai::{MaxTokensField, OpenAiClient};
use alumia_models::{
    ApiSecret, CallPolicy, FinishReason, ModelClient, ModelError, ModelEvent, ModelRequest,
    PromptMessage, ToolCall, ToolSpec, Usage,
};
use serde_json::json;

use crate::fake::{
    Fake, KEY, Reply, Step, assert_no_key, chunks, collect, policy, split_bytes, text_of,
};

/// One `data:` event with the envelope OpenAI sends (field order as sent).
fn chunk(delta: &str, finish_reason: Option<&str>) -> String {
    let finish = finish_reason.map_or("null".to_owned(), |r| format!("\"{r}\""));
    format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
         \"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_1\",\"choices\":[{{\"index\":0,\
         \"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
    )
}

/// The `include_usage` chunk: no choices, the usage.
fn usage_chunk(usage: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
         \"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{usage}}}\n\n"
    )
}

const DONE: &str = "data: [DONE]\n\n";

fn text_events() -> Vec<String> {
    vec![
        chunk(r#"{"role":"assistant","content":"","refusal":null}"#, None),
        chunk(r#"{"content":"Hello"}"#, None),
        chunk(r#"{"content":", wörld"}"#, None),
        chunk(r#"{"content":"!"}"#, None),
        chunk("{}", Some("stop")),
        usage_chunk(
            r#"{"prompt_tokens":57,"completion_tokens":17,"total_tokens":74,"prompt_tokens_details":{"cached_tokens":32,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}"#,
        ),
        DONE.into(),
    ]
}

fn text_reply() -> Reply {
    Reply::sse(chunks(&text_events()))
}

fn hello_request() -> ModelRequest {
    ModelRequest {
        model: "gpt-4o-mini".into(),
        system: Some("You are Ala.".into()),
        messages: vec![PromptMessage::User { text: "Hi".into() }],
        ..ModelRequest::default()
    }
}

fn client(fake: &Fake, policy: CallPolicy) -> OpenAiClient {
    OpenAiClient::new(reqwest::Client::new(), fake.endpoint("/v1", policy))
}

fn text_finish() -> ModelEvent {
    ModelEvent::Finish {
        reason: FinishReason::Stop,
        usage: Usage {
            input_tokens: 57,
            output_tokens: 17,
            reasoning_tokens: Some(0),
            cached_input_tokens: Some(32),
        },
    }
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
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(
        sent.body,
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are Ala."},
                {"role": "user", "content": "Hi"},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[tokio::test]
async fn sse_split_at_any_byte_still_decodes() {
    // Cut every 7 bytes: inside `data:`, inside JSON, inside the `ö`.
    let fake = Fake::start(vec![Reply::sse(split_bytes(&text_events().concat(), 7))]).await;
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
async fn keyless_endpoint_sends_no_authorization_header() {
    let fake = Fake::start(vec![text_reply()]).await;
    for key in [None, Some(ApiSecret::new(""))] {
        let mut endpoint = fake.endpoint("/v1", policy());
        endpoint.api_key = key;
        let client = OpenAiClient::new(reqwest::Client::new(), endpoint);
        let (_, error) = collect(client.stream(hello_request()).await.unwrap()).await;
        assert_eq!(error, None);
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    for sent in requests {
        assert_eq!(sent.header("authorization"), None);
    }
}

#[tokio::test]
async fn parallel_tool_calls_interleaved_by_index() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        chunk(
            r#"{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_time","arguments":""}}]}"#,
            None,
        ),
        chunk(
            r#"{"tool_calls":[{"index":1,"id":"call_def","type":"function","function":{"name":"get_weather","arguments":""}}]}"#,
            None,
        ),
        chunk(
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"tz\":"}}]}"#,
            None,
        ),
        chunk(
            r#"{"tool_calls":[{"index":1,"function":{"arguments":"{\"city\":"}}]}"#,
            None,
        ),
        chunk(
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"UTC\"}"}}]}"#,
            None,
        ),
        chunk(
            r#"{"tool_calls":[{"index":1,"function":{"arguments":"\"Paris\"}"}}]}"#,
            None,
        ),
        chunk("{}", Some("tool_calls")),
        usage_chunk(r#"{"prompt_tokens":80,"completion_tokens":30,"total_tokens":110}"#),
        DONE.into(),
    ]))])
    .await;

    let tools = vec![
        ToolSpec {
            name: "get_time".into(),
            description: "The current time".into(),
            parameters: json!({"type":"object","properties":{"tz":{"type":"string"}},"required":["tz"]}),
        },
        ToolSpec {
            name: "get_weather".into(),
            description: "The weather in a city".into(),
            parameters: json!({"type":"object","properties":{"city":{"type":"string"}}}),
        },
    ];
    let request = ModelRequest {
        model: "gpt-4o-mini".into(),
        system: None,
        messages: vec![
            PromptMessage::User {
                text: "What time is it?".into(),
            },
            PromptMessage::Assistant {
                text: String::new(),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "memory__recall".into(),
                    arguments: json!({"q": "time zone"}),
                }],
            },
            PromptMessage::ToolResult {
                call_id: "call_1".into(),
                name: "memory__recall".into(),
                output: r#"{"tz":"UTC"}"#.into(),
                is_error: false,
            },
            PromptMessage::Assistant {
                text: "Checking.".into(),
                tool_calls: vec![],
            },
            PromptMessage::User {
                text: "And the weather in Paris?".into(),
            },
        ],
        tools,
        max_output_tokens: Some(1000),
        temperature: Some(0.5),
        reasoning_effort: None,
    };
    let stream = client(&fake, policy()).stream(request).await.unwrap();
    let (events, error) = collect(stream).await;

    assert_eq!(error, None);
    let start = |id: &str, name: &str| ModelEvent::ToolCallStart {
        id: id.into(),
        name: name.into(),
    };
    let delta = |id: &str, d: &str| ModelEvent::ToolCallDelta {
        id: id.into(),
        delta: d.into(),
    };
    assert_eq!(
        events,
        vec![
            start("call_abc", "get_time"),
            start("call_def", "get_weather"),
            delta("call_abc", r#"{"tz":"#),
            delta("call_def", r#"{"city":"#),
            delta("call_abc", r#""UTC"}"#),
            delta("call_def", r#""Paris"}"#),
            ModelEvent::ToolCallReady {
                id: "call_abc".into(),
                name: "get_time".into(),
                arguments: r#"{"tz":"UTC"}"#.into(),
            },
            ModelEvent::ToolCallReady {
                id: "call_def".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            },
            ModelEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 80,
                    output_tokens: 30,
                    reasoning_tokens: None,
                    cached_input_tokens: None,
                },
            },
        ]
    );

    let body = fake.only_request().body;
    assert_eq!(
        body["tools"],
        json!([
            {"type": "function", "function": {
                "name": "get_time", "description": "The current time",
                "parameters": {"type":"object","properties":{"tz":{"type":"string"}},"required":["tz"]},
            }},
            {"type": "function", "function": {
                "name": "get_weather", "description": "The weather in a city",
                "parameters": {"type":"object","properties":{"city":{"type":"string"}}},
            }},
        ])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "What time is it?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "memory__recall", "arguments": "{\"q\":\"time zone\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"tz\":\"UTC\"}"},
            {"role": "assistant", "content": "Checking."},
            {"role": "user", "content": "And the weather in Paris?"},
        ])
    );
    assert_eq!(body["max_completion_tokens"], 1000);
    assert!(body.get("max_tokens").is_none());
    assert_eq!(body["temperature"], 0.5);
    assert!(body.get("reasoning_effort").is_none());
}

#[tokio::test]
async fn reasoning_fields_of_compatible_servers_become_reasoning_deltas() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        // DeepSeek / older vLLM: `reasoning_content`.
        chunk(
            r#"{"role":"assistant","content":null,"reasoning_content":"The user"}"#,
            None,
        ),
        // Ollama / newer vLLM: `reasoning`.
        chunk(r#"{"content":null,"reasoning":" greets me."}"#, None),
        chunk(r#"{"content":"Hello!","reasoning_content":null}"#, None),
        chunk("{}", Some("stop")),
        usage_chunk(
            r#"{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,"completion_tokens_details":{"reasoning_tokens":12}}"#,
        ),
        DONE.into(),
    ]))])
    .await;
    let request = ModelRequest {
        reasoning_effort: Some("high".into()),
        max_output_tokens: Some(2000),
        ..hello_request()
    };
    let client = client(&fake, policy()).with_max_tokens_field(MaxTokensField::MaxTokens);
    let (events, error) = collect(client.stream(request).await.unwrap()).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            ModelEvent::ReasoningDelta("The user".into()),
            ModelEvent::ReasoningDelta(" greets me.".into()),
            ModelEvent::TextDelta("Hello!".into()),
            ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 20,
                    reasoning_tokens: Some(12),
                    cached_input_tokens: None,
                },
            },
        ]
    );
    let body = fake.only_request().body;
    assert_eq!(body["reasoning_effort"], "high");
    // The legacy field, and only it.
    assert_eq!(body["max_tokens"], 2000);
    assert!(body.get("max_completion_tokens").is_none());
}

#[tokio::test]
async fn length_finish_reason_maps_to_length() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        chunk(r#"{"content":"Once upon"}"#, None),
        chunk("{}", Some("length")),
        DONE.into(),
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
    // No usage chunk came: the usage stays zero.
    assert_eq!(
        events.last(),
        Some(&ModelEvent::Finish {
            reason: FinishReason::Length,
            usage: Usage::default()
        })
    );
}

#[tokio::test]
async fn unauthorized_fails_at_once() {
    let fake = Fake::start(vec![Reply::json(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-test-****5b4a.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
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
            r#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
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
    // Retry-After, not the 10 ms backoff.
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
}

#[tokio::test]
async fn retry_after_beyond_the_limit_fails_at_once() {
    let fake = Fake::start(vec![
        Reply::json(
            429,
            r#"{"error":{"message":"Rate limit","type":"requests"}}"#,
        )
        .header("retry-after", "60"),
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
            retry_after: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(fake.count(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let fake = Fake::start(vec![Reply::json(
        500,
        r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}"#,
    )])
    .await;
    let started = Instant::now();
    let error = client(&fake, policy())
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ModelError::Unavailable { .. }), "{error:?}");
    assert_eq!(fake.count(), 1 + policy().max_retries as usize);
    // Backoff 10 ms then 20 ms.
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn a_server_error_then_success_is_invisible() {
    let fake = Fake::start(vec![
        Reply::json(503, r#"{"error":{"message":"Service Unavailable"}}"#),
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
    assert_eq!(text_of(&events).0, "Hello, wörld!");
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn other_client_errors_are_rejected_with_the_provider_detail() {
    let fake = Fake::start(vec![Reply::json(
        404,
        r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
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
            status: 404,
            detail: "The model `gpt-9` does not exist or you do not have access to it.".into()
        }
    );
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn refused_connections_are_retried_then_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = alumia_models::ProviderEndpoint {
        base_url: format!("http://{addr}/v1"),
        api_key: Some(ApiSecret::new(KEY)),
        policy: policy(),
    };
    let started = Instant::now();
    let error = OpenAiClient::new(reqwest::Client::new(), endpoint)
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    let ModelError::Unavailable { detail } = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(detail.starts_with("connection failed"), "{detail}");
    // It was retried: 10 ms + 20 ms of backoff.
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_no_key(&error);
}

#[tokio::test]
async fn a_malformed_chunk_is_a_protocol_error_after_the_good_events() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        chunk(r#"{"content":"Hello"}"#, None),
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\n\n".into(),
        chunk(r#"{"content":" never seen"}"#, None),
        DONE.into(),
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
async fn a_chunk_of_the_wrong_shape_is_a_protocol_error() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        chunk(r#"{"content":"Hello"}"#, None),
        chunk(r#"{"content":["not","a","string"]}"#, None),
        DONE.into(),
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
async fn an_error_chunk_mid_stream_fails_the_call() {
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        chunk(r#"{"content":"Hel"}"#, None),
        "data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n".into(),
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
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn a_dropped_connection_mid_stream_is_interrupted_and_not_retried() {
    let mut body = chunks(&[
        chunk(r#"{"content":"Hello"}"#, None),
        chunk(r#"{"content":" there"}"#, None),
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
async fn a_body_that_ends_before_done_is_interrupted() {
    // A clean end of the HTTP body, but no `[DONE]` (and no usage chunk).
    let fake = Fake::start(vec![Reply::sse(chunks(&[
        chunk(r#"{"content":"Hello"}"#, None),
        chunk("{}", Some("stop")),
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
    // A timeout is not retried.
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
    let mut body = chunks(&[chunk(r#"{"content":"Hello"}"#, None)]);
    body.push(Step::Pause(Duration::from_secs(3)));
    body.extend(chunks(&[
        chunk(r#"{"content":" late"}"#, None),
        DONE.into(),
    ]));
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
async fn a_json_answer_to_a_stream_request_is_a_protocol_error() {
    // A server that ignored `stream: true`.
    let fake = Fake::start(vec![Reply::json(
        200,
        r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#,
    )])
    .await;
    let error = client(&fake, policy())
        .stream(hello_request())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
}

#[tokio::test]
async fn list_models_reads_the_ids() {
    let fake = Fake::start(vec![Reply::json(
        200,
        r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"},{"id":"o4-mini","object":"model","created":1744225351,"owned_by":"system"}]}"#,
    )])
    .await;
    let models = client(&fake, policy()).list_models().await.unwrap();
    assert_eq!(models, vec!["gpt-4o-mini", "o4-mini"]);
    let sent = fake.only_request();
    assert_eq!(sent.method, "GET");
    assert_eq!(sent.path, "/v1/models");
    assert_eq!(
        sent.header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
}

#[tokio::test]
async fn list_models_rejects_a_foreign_shape() {
    let fake = Fake::start(vec![Reply::json(200, r#"{"models":["a","b"]}"#)]).await;
    let error = client(&fake, policy()).list_models().await.err().unwrap();
    assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
}

#[tokio::test]
async fn the_key_never_shows_in_debug_or_errors() {
    // A provider that echoes the key back in its error text.
    let echo = format!(r#"{{"error":{{"message":"key {KEY} is not allowed for this model"}}}}"#);
    let fake = Fake::start(vec![Reply::json(400, &echo), Reply::json(401, &echo)]).await;
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
    assert_eq!(detail, "key *** is not allowed for this model");
    assert_no_key(&rejected);

    let unauthorized = client.stream(hello_request()).await.err().unwrap();
    assert_eq!(unauthorized, ModelError::Unauthorized { status: 401 });
    assert_no_key(&unauthorized);

    // The key was really sent, so the checks above mean something.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&*format!("Bearer {KEY}")))
    );
}
