//! Anthropic's streaming Messages API.
//!
//! `POST {base}/v1/messages` with `stream: true` answers with named SSE
//! events (`event: content_block_delta` / `data: {"type":"content_block_delta",…}`):
//! `message_start` (input usage), then per content block a start, deltas and
//! a stop, then `message_delta` (stop reason, output usage) and
//! `message_stop`, which ends the stream (there is no `[DONE]`). `ping` may
//! come anywhere; unknown event, block and delta types are ignored, as
//! Anthropic asks clients to do.

use std::collections::{BTreeMap, VecDeque};

use eventsource_stream::Event;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{self, Decoder};
use crate::{
    ApiSecret, EventStream, FinishReason, ModelClient, ModelError, ModelEvent, ModelRequest,
    PromptMessage, ProviderEndpoint, Usage,
};

/// The API version we speak (the event shapes above).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by Anthropic; this is used when the request has none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A client of the Anthropic Messages API. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct AnthropicClient {
    http: reqwest::Client,
    endpoint: ProviderEndpoint,
}

impl AnthropicClient {
    /// `endpoint.base_url` is the host without the version, e.g.
    /// `https://api.anthropic.com`.
    pub fn new(http: reqwest::Client, endpoint: ProviderEndpoint) -> Self {
        AnthropicClient { http, endpoint }
    }

    fn key(&self) -> Option<&ApiSecret> {
        http::usable_key(self.endpoint.api_key.as_ref())
    }

    /// The JSON body of a streaming Messages request.
    ///
    /// `reasoning_effort` is not sent: extended thinking in a tool loop
    /// requires sending each thinking block back with its signature, which
    /// [`PromptMessage::Assistant`] cannot carry yet.
    fn request_body(&self, request: &ModelRequest) -> Value {
        let mut messages: Vec<Value> = Vec::new();
        for message in &request.messages {
            match message {
                PromptMessage::User { text } => {
                    push_blocks(&mut messages, "user", text_block(text))
                }
                PromptMessage::Assistant { text, tool_calls } => {
                    let mut blocks = text_block(text);
                    blocks.extend(tool_calls.iter().map(|call| {
                        // Anthropic only takes an object as the input.
                        let input = match &call.arguments {
                            Value::Object(_) => call.arguments.clone(),
                            _ => json!({}),
                        };
                        json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
                    }));
                    push_blocks(&mut messages, "assistant", blocks);
                }
                // Consecutive results merge into the one user message that
                // must follow the assistant's `tool_use` blocks.
                PromptMessage::ToolResult {
                    call_id,
                    output,
                    is_error,
                    ..
                } => push_blocks(
                    &mut messages,
                    "user",
                    vec![json!({
                        "type": "tool_result",
                        "tool_use_id": call_id,
                        "content": output,
                        "is_error": is_error,
                    })],
                ),
            }
        }

        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
            "stream": true,
        });
        if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
            body["system"] = json!(system);
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "name": tool.name,
                        "description": tool.description,
                        "input_schema": tool.parameters,
                    })
                })
                .collect();
        }
        if let Some(temperature) = request.temperature {
            // Anthropic's range is 0..=1 (OpenAI's goes to 2).
            body["temperature"] = json!(temperature.clamp(0.0, 1.0));
        }
        body
    }
}

/// Anthropic rejects empty text blocks, so an empty text is no block.
fn text_block(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

/// Appends blocks to the last message when it has the same role (Anthropic
/// wants roles to alternate), else starts a new message. No blocks, no message.
fn push_blocks(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut().filter(|m| m["role"] == role)
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

#[async_trait::async_trait]
impl ModelClient for AnthropicClient {
    async fn stream(&self, request: ModelRequest) -> Result<EventStream, ModelError> {
        let url = format!(
            "{}/v1/messages",
            self.endpoint.base_url.trim_end_matches('/')
        );
        let body = self.request_body(&request).to_string();
        let key = self.key();
        let key_header = key
            .map(|k| {
                let mut value = HeaderValue::from_str(k.expose()).map_err(|_| {
                    // Never echo the value: say only what is wrong with it.
                    ModelError::Unavailable {
                        detail: "the API key is not a valid header value".into(),
                    }
                })?;
                value.set_sensitive(true);
                Ok::<_, ModelError>(value)
            })
            .transpose()?;
        let accepted = http::send(&self.endpoint.policy, key, || {
            let request = self
                .http
                .post(&url)
                .header("anthropic-version", ANTHROPIC_VERSION)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "text/event-stream")
                .body(body.clone());
            match &key_header {
                Some(value) => request.header("x-api-key", value.clone()),
                None => request,
            }
        })
        .await?;
        http::decode(
            accepted,
            &self.endpoint.policy,
            EventDecoder::default(),
            key.cloned(),
        )
    }
}

/// `end_turn`/`stop_sequence`/`pause_turn` → Stop, `max_tokens` (and
/// `model_context_window_exceeded`) → Length, `tool_use` → ToolCalls,
/// `refusal` → ContentFilter, anything else → Other.
pub fn map_stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// One SSE event's data. We dispatch on its `type` (which equals the SSE
/// event name).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: WireMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: WireBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: WireDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: WireMessageDelta,
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        error: WireError,
    },
    /// `ping` and event types added after this was written.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct WireMessage {
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// `redacted_thinking`, server tool blocks, future types.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// `signature_delta`, `citations_delta`, future types.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireMessageDelta {
    stop_reason: Option<String>,
}

/// Every field is optional: `message_delta` usage may carry only
/// `output_tokens`.
#[derive(Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// An open content block.
enum Block {
    ToolUse {
        id: String,
        name: String,
        json: String,
        /// The input the start event already carried (normally `{}`).
        input: Value,
    },
    /// Text and thinking deltas need no state.
    Plain,
}

#[derive(Default)]
struct EventDecoder {
    blocks: BTreeMap<u64, Block>,
    /// The usage fields as last reported (they are cumulative).
    uncached_input: u64,
    cache_read: Option<u64>,
    cache_write: u64,
    output: u64,
    stop: Option<FinishReason>,
}

impl EventDecoder {
    fn on_usage(&mut self, usage: WireUsage) {
        if let Some(n) = usage.input_tokens {
            self.uncached_input = n;
        }
        if let Some(n) = usage.cache_read_input_tokens {
            self.cache_read = Some(n);
        }
        if let Some(n) = usage.cache_creation_input_tokens {
            self.cache_write = n;
        }
        if let Some(n) = usage.output_tokens {
            self.output = n;
        }
    }

    /// Anthropic's `input_tokens` leaves out cache reads and writes; ours,
    /// like OpenAI's `prompt_tokens`, is the whole prompt, of which
    /// `cached_input_tokens` were read from the cache.
    fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.uncached_input + self.cache_read.unwrap_or(0) + self.cache_write,
            output_tokens: self.output,
            reasoning_tokens: None,
            cached_input_tokens: self.cache_read,
        }
    }

    fn on_block_stop(&mut self, index: u64, out: &mut VecDeque<ModelEvent>) {
        if let Some(Block::ToolUse {
            id,
            name,
            json,
            input,
        }) = self.blocks.remove(&index)
        {
            let arguments = if !json.is_empty() {
                json
            } else if input.as_object().is_some_and(|o| !o.is_empty()) {
                // A compatible server that sent the input whole at the start.
                input.to_string()
            } else {
                "{}".to_owned()
            };
            out.push_back(ModelEvent::ToolCallReady {
                id,
                name,
                arguments,
            });
        }
    }
}

impl Decoder for EventDecoder {
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<bool, ModelError> {
        let wire: WireEvent =
            serde_json::from_str(&event.data).map_err(|e| http::bad_json("event", e))?;
        match wire {
            WireEvent::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.on_usage(usage);
                }
            }
            WireEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let block = match content_block {
                    WireBlock::Text { text } => {
                        push_text(out, text, ModelEvent::TextDelta);
                        Block::Plain
                    }
                    WireBlock::Thinking { thinking } => {
                        push_text(out, thinking, ModelEvent::ReasoningDelta);
                        Block::Plain
                    }
                    WireBlock::ToolUse { id, name, input } => {
                        out.push_back(ModelEvent::ToolCallStart {
                            id: id.clone(),
                            name: name.clone(),
                        });
                        Block::ToolUse {
                            id,
                            name,
                            json: String::new(),
                            input,
                        }
                    }
                    WireBlock::Other => Block::Plain,
                };
                self.blocks.insert(index, block);
            }
            WireEvent::ContentBlockDelta { index, delta } => match delta {
                WireDelta::TextDelta { text } => push_text(out, text, ModelEvent::TextDelta),
                WireDelta::ThinkingDelta { thinking } => {
                    push_text(out, thinking, ModelEvent::ReasoningDelta)
                }
                WireDelta::InputJsonDelta { partial_json } => {
                    let Some(Block::ToolUse { id, json, .. }) = self.blocks.get_mut(&index) else {
                        return Err(ModelError::Protocol(format!(
                            "input_json_delta for block {index}, which is not an open tool_use"
                        )));
                    };
                    // The first fragment is often empty.
                    if !partial_json.is_empty() {
                        json.push_str(&partial_json);
                        out.push_back(ModelEvent::ToolCallDelta {
                            id: id.clone(),
                            delta: partial_json,
                        });
                    }
                }
                WireDelta::Other => {}
            },
            WireEvent::ContentBlockStop { index } => self.on_block_stop(index, out),
            WireEvent::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    self.stop = Some(map_stop_reason(&reason));
                }
                if let Some(usage) = usage {
                    self.on_usage(usage);
                }
            }
            WireEvent::MessageStop => {
                // Blocks never stopped still count as finished here.
                let open: Vec<u64> = self.blocks.keys().copied().collect();
                for index in open {
                    self.on_block_stop(index, out);
                }
                out.push_back(ModelEvent::Finish {
                    reason: self.stop.unwrap_or(FinishReason::Other),
                    usage: self.usage(),
                });
                return Ok(true);
            }
            WireEvent::Error { error } => return Err(stream_error(error)),
            WireEvent::Ignored => {}
        }
        Ok(false)
    }
}

/// An `error` event after the 200 (the same kinds as the HTTP errors).
fn stream_error(error: WireError) -> ModelError {
    let detail = http::shorten(&format!("{}: {}", error.kind, error.message));
    match error.kind.as_str() {
        "overloaded_error" | "api_error" => ModelError::Unavailable { detail },
        "rate_limit_error" => ModelError::RateLimited { retry_after: None },
        _ => ModelError::Protocol(detail),
    }
}

fn push_text(out: &mut VecDeque<ModelEvent>, text: String, event: fn(String) -> ModelEvent) {
    if !text.is_empty() {
        out.push_back(event(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_to_the_portable_set() {
        assert_eq!(map_stop_reason("end_turn"), FinishReason::Stop);
        assert_eq!(map_stop_reason("stop_sequence"), FinishReason::Stop);
        assert_eq!(map_stop_reason("max_tokens"), FinishReason::Length);
        assert_eq!(map_stop_reason("tool_use"), FinishReason::ToolCalls);
        assert_eq!(map_stop_reason("refusal"), FinishReason::ContentFilter);
        assert_eq!(map_stop_reason("something_new"), FinishReason::Other);
    }

    #[test]
    fn stream_errors_map_by_kind() {
        let error = |kind: &str| WireError {
            kind: kind.into(),
            message: "m".into(),
        };
        assert!(matches!(
            stream_error(error("overloaded_error")),
            ModelError::Unavailable { .. }
        ));
        assert!(matches!(
            stream_error(error("rate_limit_error")),
            ModelError::RateLimited { .. }
        ));
        assert!(matches!(
            stream_error(error("invalid_request_error")),
            ModelError::Protocol(_)
        ));
    }

    #[test]
    fn usage_counts_cache_reads_and_writes_as_input() {
        let mut decoder = EventDecoder::default();
        decoder.on_usage(WireUsage {
            input_tokens: Some(10),
            output_tokens: Some(1),
            cache_read_input_tokens: Some(100),
            cache_creation_input_tokens: Some(5),
        });
        // message_delta: cumulative output only.
        decoder.on_usage(WireUsage {
            input_tokens: None,
            output_tokens: Some(42),
            cache_read_input_tokens: None,
            cache_creation_input_tokens: None,
        });
        assert_eq!(
            decoder.usage(),
            Usage {
                input_tokens: 115,
                output_tokens: 42,
                reasoning_tokens: None,
                cached_input_tokens: Some(100),
            }
        );
    }
}
