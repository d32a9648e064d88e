//! The provider-neutral request, events and errors.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use serde_json::Value;

/// One model call: a step of a turn.
#[derive(Debug, Clone, Default)]
pub struct ModelRequest {
    /// The provider's own model name (`gpt-4o-mini`), without our `openai/` prefix.
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<PromptMessage>,
    pub tools: Vec<ToolSpec>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f64>,
    /// `low` | `medium` | `high`; only set for models that support reasoning.
    pub reasoning_effort: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PromptMessage {
    User {
        text: String,
    },
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call of the previous assistant message.
    ToolResult {
        call_id: String,
        name: String,
        /// Compact JSON of the output, or the error text.
        output: String,
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    /// The name as sent to the provider (`.` already replaced by `__`).
    pub name: String,
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// What a model produces, in order. Text and reasoning arrive as deltas; a
/// tool call opens with `ToolCallStart`, streams its argument JSON, and is
/// complete at `ToolCallReady`. `Finish` is always last.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    TextDelta(String),
    ReasoningDelta(String),
    ToolCallStart {
        id: String,
        name: String,
    },
    ToolCallDelta {
        id: String,
        delta: String,
    },
    ToolCallReady {
        id: String,
        name: String,
        /// The raw argument JSON as the model wrote it (may be invalid).
        arguments: String,
    },
    Finish {
        reason: FinishReason,
        usage: Usage,
    },
}

/// The portable AI SDK set (`stop, length, content-filter, tool-calls, other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool-calls",
            FinishReason::ContentFilter => "content-filter",
            FinishReason::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
            }
        }
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens = sum(self.reasoning_tokens, other.reasoning_tokens);
        self.cached_input_tokens = sum(self.cached_input_tokens, other.cached_input_tokens);
    }
}

/// Why a model call failed. `Display` may carry provider detail for logs;
/// [`ModelError::user_text`] is what a client is allowed to see.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// 401/403: the key was rejected.
    #[error("the provider rejected the API key (HTTP {status})")]
    Unauthorized { status: u16 },
    /// 429 after the retries were spent.
    #[error("the provider rate-limited the call")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx after the retries were spent, or the connection failed.
    #[error("the provider is unavailable: {detail}")]
    Unavailable { detail: String },
    /// Another 4xx: the request itself was refused (unknown model, too long).
    #[error("the provider refused the request (HTTP {status}): {detail}")]
    Rejected { status: u16, detail: String },
    /// No first byte within the first-byte timeout, or a gap longer than the idle timeout.
    #[error("the provider timed out")]
    Timeout,
    /// A chunk that does not parse as the provider's format.
    #[error("malformed provider stream: {0}")]
    Protocol(String),
    /// The stream ended before the provider said it was done.
    #[error("the provider stream ended early")]
    Interrupted,
    /// The dev model's `/error` directive.
    #[error("{0}")]
    Scripted(String),
}

impl ModelError {
    /// Safe text for the `error` chunk and the stored message: never
    /// provider internals.
    pub fn user_text(&self) -> String {
        match self {
            ModelError::Unauthorized { .. } => "Your provider key was rejected".into(),
            ModelError::Rejected { .. } => "The model provider refused the request".into(),
            ModelError::Scripted(text) => text.clone(),
            _ => "The model provider is unavailable".into(),
        }
    }
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ModelError>> + Send>>;

/// A provider endpoint. `stream` returns once the provider has accepted the
/// call (retries for 429/5xx happen before that); the stream then yields
/// events until `Finish` or an error. Dropping the stream cancels the call.
#[async_trait::async_trait]
pub trait ModelClient: Send + Sync {
    async fn stream(&self, request: ModelRequest) -> Result<EventStream, ModelError>;
}

/// A provider key kept in memory: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiSecret(String);

impl ApiSecret {
    pub fn new(value: impl Into<String>) -> Self {
        ApiSecret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret(***)")
    }
}

/// Timeouts and retries of the HTTP providers (spec 11 §5, 03 §5.3).
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// From sending the request to the first byte of the response body.
    pub first_byte_timeout: Duration,
    /// Longest silence between two chunks of a stream.
    pub idle_timeout: Duration,
    /// Retries of a 429 or 5xx (or a refused connection) before giving up.
    pub max_retries: u32,
    /// Backoff before retry n is `base_backoff * 2^n` unless the provider
    /// sent `Retry-After`.
    pub base_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails.
    pub max_retry_after: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_retries: 2,
            base_backoff: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// How to reach one HTTP provider.
#[derive(Debug, Clone)]
pub struct ProviderEndpoint {
    /// `https://api.openai.com/v1` or `https://api.anthropic.com` style base.
    pub base_url: String,
    pub api_key: Option<ApiSecret>,
    pub policy: CallPolicy,
}
