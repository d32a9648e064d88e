//! OpenAI-compatible streaming Chat Completions: OpenAI itself, and the
//! servers that copy its API (vLLM, Ollama, LM Studio, DeepSeek, Groq,
//! OpenRouter, …).
//!
//! `POST {base}/chat/completions` with `stream: true` answers with
//! `data: {chunk}` SSE events and a final `data: [DONE]`. Text arrives as
//! `delta.content`, tool calls as `delta.tool_calls` fragments keyed by
//! `index`, the finish reason on the choice, and (because we ask with
//! `stream_options.include_usage`) the usage in a last chunk with no choices.

use std::collections::{BTreeMap, VecDeque};

use eventsource_stream::Event;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{self, Decoder};
use crate::{
    EventStream, FinishReason, ModelClient, ModelError, ModelEvent, ModelRequest, PromptMessage,
    ProviderEndpoint, Usage,
};

/// Which body field carries the output-token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens`: OpenAI's current name, and the only one its
    /// reasoning models accept; vLLM, Groq and OpenRouter know it too.
    #[default]
    MaxCompletionTokens,
    /// `max_tokens`: for older compatible servers that reject the new name.
    /// OpenAI refuses a request that sets both, so we send exactly one.
    MaxTokens,
}

/// A client of one OpenAI-compatible endpoint. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: ProviderEndpoint,
    max_tokens_field: MaxTokensField,
}

impl OpenAiClient {
    /// `endpoint.base_url` includes the version, e.g. `https://api.openai.com/v1`
    /// or `http://localhost:11434/v1`. Without a key no `Authorization`
    /// header is sent (keyless local servers).
    pub fn new(http: reqwest::Client, endpoint: ProviderEndpoint) -> Self {
        OpenAiClient {
            http,
            endpoint,
            max_tokens_field: MaxTokensField::default(),
        }
    }

    pub fn with_max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens_field = field;
        self
    }

    /// The ids of `GET {base}/models` (`{"data":[{"id":…}]}`).
    pub async fn list_models(&self) -> Result<Vec<String>, ModelError> {
        #[derive(Deserialize)]
        struct Models {
            data: Vec<Model>,
        }
        #[derive(Deserialize)]
        struct Model {
            id: String,
        }

        let url = self.url("models");
        let key = self.key();
        let accepted = http::send(&self.endpoint.policy, key, || {
            self.authorize(self.http.get(&url))
        })
        .await?;
        let body = http::read_all(accepted, self.endpoint.policy.idle_timeout).await?;
        let models: Models =
            serde_json::from_slice(&body).map_err(|e| http::bad_json("model list", e))?;
        Ok(models.data.into_iter().map(|m| m.id).collect())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint.base_url.trim_end_matches('/'))
    }

    fn key(&self) -> Option<&crate::ApiSecret> {
        http::usable_key(self.endpoint.api_key.as_ref())
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.key() {
            // `bearer_auth` marks the header sensitive, so reqwest's own
            // Debug output hides it too.
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    /// The JSON body of a streaming Chat Completions request.
    fn request_body(&self, request: &ModelRequest) -> Value {
        let mut messages = Vec::new();
        if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
            messages.push(json!({"role": "system", "content": system}));
        }
        for message in &request.messages {
            messages.push(match message {
                PromptMessage::User { text } => json!({"role": "user", "content": text}),
                PromptMessage::Assistant { text, tool_calls } => {
                    let mut m = json!({"role": "assistant", "content": text});
                    if !tool_calls.is_empty() {
                        if text.is_empty() {
                            // OpenAI's own shape for a tool-calls-only turn.
                            m["content"] = Value::Null;
                        }
                        m["tool_calls"] = tool_calls
                            .iter()
                            .map(|call| {
                                json!({
                                    "id": call.id,
                                    "type": "function",
                                    "function": {
                                        "name": call.name,
                                        // The wire carries arguments as a JSON string.
                                        "arguments": call.arguments.to_string(),
                                    },
                                })
                            })
                            .collect();
                    }
                    m
                }
                // There is no error flag on the wire: the text says it.
                PromptMessage::ToolResult {
                    call_id, output, ..
                } => json!({"role": "tool", "tool_call_id": call_id, "content": output}),
            });
        }

        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        // Some compatible servers reject an empty `tools` array.
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        },
                    })
                })
                .collect();
        }
        if let Some(max) = request.max_output_tokens {
            let field = match self.max_tokens_field {
                MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
                MaxTokensField::MaxTokens => "max_tokens",
            };
            body[field] = json!(max);
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        if let Some(effort) = &request.reasoning_effort {
            body["reasoning_effort"] = json!(effort);
        }
        body
    }
}

#[async_trait::async_trait]
impl ModelClient for OpenAiClient {
    async fn stream(&self, request: ModelRequest) -> Result<EventStream, ModelError> {
        let url = self.url("chat/completions");
        let body = self.request_body(&request).to_string();
        let accepted = http::send(&self.endpoint.policy, self.key(), || {
            self.authorize(self.http.post(&url))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .body(body.clone())
        })
        .await?;
        http::decode(
            accepted,
            &self.endpoint.policy,
            ChunkDecoder::default(),
            self.key().cloned(),
        )
    }
}

/// `stop` → Stop, `length` → Length, `tool_calls`/`function_call` →
/// ToolCalls, `content_filter` → ContentFilter, anything else → Other.
pub fn map_finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

// The chunk, as far as we read it. Unknown fields are ignored; a field of
// the wrong type is a protocol error.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    /// An error can arrive mid-stream, after the 200.
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
    /// vLLM (older) and DeepSeek.
    reasoning_content: Option<String>,
    /// vLLM (newer), Ollama, OpenRouter.
    reasoning: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<ToolCallFragment>>,
}

#[derive(Deserialize)]
struct ToolCallFragment {
    /// Some compatible servers leave it out; the position stands in.
    index: Option<u32>,
    id: Option<String>,
    function: Option<FunctionFragment>,
}

#[derive(Deserialize)]
struct FunctionFragment {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireError {
    message: Option<String>,
}

/// A tool call being streamed.
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct ChunkDecoder {
    /// By the provider's `index`, so `ToolCallReady` comes in call order.
    calls: BTreeMap<u32, PendingCall>,
    finish: Option<FinishReason>,
    usage: Usage,
    refused: bool,
}

impl ChunkDecoder {
    fn on_chunk(&mut self, chunk: Chunk, out: &mut VecDeque<ModelEvent>) -> Result<(), ModelError> {
        if let Some(error) = chunk.error {
            let detail = error.message.unwrap_or_else(|| "error in stream".into());
            return Err(ModelError::Unavailable {
                detail: http::shorten(&detail),
            });
        }
        if let Some(usage) = chunk.usage {
            self.usage = Usage {
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
                reasoning_tokens: usage
                    .completion_tokens_details
                    .and_then(|d| d.reasoning_tokens),
                cached_input_tokens: usage.prompt_tokens_details.and_then(|d| d.cached_tokens),
            };
        }
        // We never ask for `n > 1`: only the first choice is ours.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let delta = choice.delta.unwrap_or_default();
            // Servers that send both reasoning fields send the same text.
            if let Some(text) = delta.reasoning_content.or(delta.reasoning) {
                push_text(out, text, ModelEvent::ReasoningDelta);
            }
            if let Some(text) = delta.content {
                push_text(out, text, ModelEvent::TextDelta);
            }
            if let Some(text) = delta.refusal {
                // The refusal is shown as the answer; the turn ends as filtered.
                self.refused = true;
                push_text(out, text, ModelEvent::TextDelta);
            }
            for (position, fragment) in delta.tool_calls.into_iter().flatten().enumerate() {
                self.on_tool_fragment(position, fragment, out)?;
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_choice(&reason, out);
            }
        }
        Ok(())
    }

    fn on_tool_fragment(
        &mut self,
        position: usize,
        fragment: ToolCallFragment,
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<(), ModelError> {
        if self.finish.is_some() {
            // The calls were already reported as ready.
            return Err(ModelError::Protocol(
                "tool call fragment after finish_reason".into(),
            ));
        }
        let index = fragment.index.unwrap_or(position as u32);
        let function = fragment.function.unwrap_or(FunctionFragment {
            name: None,
            arguments: None,
        });
        let call = match self.calls.entry(index) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            // The first fragment of a call names it.
            std::collections::btree_map::Entry::Vacant(entry) => {
                let name = function.name.filter(|n| !n.is_empty()).ok_or_else(|| {
                    ModelError::Protocol(format!("tool call {index} starts without a name"))
                })?;
                let id = fragment
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{index}"));
                out.push_back(ModelEvent::ToolCallStart {
                    id: id.clone(),
                    name: name.clone(),
                });
                entry.insert(PendingCall {
                    id,
                    name,
                    arguments: String::new(),
                })
            }
        };
        if let Some(piece) = function.arguments.filter(|a| !a.is_empty()) {
            call.arguments.push_str(&piece);
            out.push_back(ModelEvent::ToolCallDelta {
                id: call.id.clone(),
                delta: piece,
            });
        }
        Ok(())
    }

    /// The choice is complete: every call is ready, in index order.
    fn finish_choice(&mut self, reason: &str, out: &mut VecDeque<ModelEvent>) {
        if self.finish.is_some() {
            return;
        }
        for call in std::mem::take(&mut self.calls).into_values() {
            out.push_back(ModelEvent::ToolCallReady {
                id: call.id,
                name: call.name,
                arguments: call.arguments,
            });
        }
        let mut reason = map_finish_reason(reason);
        if reason == FinishReason::Stop && self.refused {
            reason = FinishReason::ContentFilter;
        }
        self.finish = Some(reason);
    }
}

impl Decoder for ChunkDecoder {
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<bool, ModelError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            // A server that never sent finish_reason still gets its calls run.
            self.finish_choice("", out);
            out.push_back(ModelEvent::Finish {
                reason: self.finish.unwrap_or(FinishReason::Other),
                usage: self.usage,
            });
            return Ok(true);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| http::bad_json("chunk", e))?;
        self.on_chunk(chunk, out)?;
        Ok(false)
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
    fn finish_reasons_map_to_the_portable_set() {
        assert_eq!(map_finish_reason("stop"), FinishReason::Stop);
        assert_eq!(map_finish_reason("length"), FinishReason::Length);
        assert_eq!(map_finish_reason("tool_calls"), FinishReason::ToolCalls);
        assert_eq!(map_finish_reason("function_call"), FinishReason::ToolCalls);
        assert_eq!(
            map_finish_reason("content_filter"),
            FinishReason::ContentFilter
        );
        assert_eq!(map_finish_reason("eos"), FinishReason::Other);
    }

    fn decode_all(chunks: &[&str]) -> (Vec<ModelEvent>, Result<bool, ModelError>) {
        let mut decoder = ChunkDecoder::default();
        let mut out = VecDeque::new();
        let mut last = Ok(false);
        for data in chunks {
            let event = Event {
                data: (*data).into(),
                ..Event::default()
            };
            last = decoder.on_event(&event, &mut out);
            if last.is_err() {
                break;
            }
        }
        (out.into(), last)
    }

    #[test]
    fn a_refusal_is_text_and_ends_as_content_filter() {
        let (events, last) = decode_all(&[
            r#"{"choices":[{"index":0,"delta":{"refusal":"I can't help with that."},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(last, Ok(true));
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("I can't help with that.".into()),
                ModelEvent::Finish {
                    reason: FinishReason::ContentFilter,
                    usage: Usage::default()
                },
            ]
        );
    }

    #[test]
    fn a_whole_call_in_one_fragment_without_index_or_id_works() {
        // Ollama-style: the complete call in one fragment.
        let (events, _) = decode_all(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"get_time","arguments":"{\"tz\":\"UTC\"}"}}]},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(
            events[..3],
            [
                ModelEvent::ToolCallStart {
                    id: "call_0".into(),
                    name: "get_time".into()
                },
                ModelEvent::ToolCallDelta {
                    id: "call_0".into(),
                    delta: r#"{"tz":"UTC"}"#.into()
                },
                ModelEvent::ToolCallReady {
                    id: "call_0".into(),
                    name: "get_time".into(),
                    arguments: r#"{"tz":"UTC"}"#.into()
                },
            ]
        );
    }

    #[test]
    fn a_call_without_a_name_is_a_protocol_error() {
        let (_, last) = decode_all(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":null}]}"#,
        ]);
        assert!(matches!(last, Err(ModelError::Protocol(_))), "{last:?}");
    }

    #[test]
    fn a_mid_stream_error_chunk_fails_the_call() {
        let (_, last) = decode_all(&[
            r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#,
        ]);
        assert_eq!(
            last,
            Err(ModelError::Unavailable {
                detail: "The server had an error".into()
            })
        );
    }
}
