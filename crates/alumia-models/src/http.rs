//! What the HTTP providers share: sending with retries and timeouts
//! ([`send`]), and turning an accepted SSE body into [`ModelEvent`]s
//! ([`decode`]) with a provider-specific [`Decoder`].
//!
//! The rules (spec 11 §5, 03 §5.3):
//! - 429, 5xx and failed connections are retried up to `max_retries` times,
//!   waiting `Retry-After` when the provider sent one (a longer one than
//!   `max_retry_after` fails at once), else `base_backoff * 2^n`.
//! - 401/403 → `Unauthorized` and other 4xx → `Rejected`: never retried.
//! - `first_byte_timeout` runs from sending the request to the first chunk
//!   of the body; `idle_timeout` bounds every gap after that.
//! - Retries happen only inside [`send`], so never after an event was yielded.
//! - The API key is scrubbed from every error detail we build.

use std::collections::VecDeque;
use std::error::Error as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::{Instant, timeout, timeout_at};

use crate::{ApiSecret, CallPolicy, EventStream, ModelError, ModelEvent};

/// Longest provider text kept in an error detail.
const DETAIL_CHARS: usize = 200;
/// At most this much of an error response body is read for its detail.
const ERROR_BODY_BYTES: usize = 16 * 1024;

/// A response the provider accepted (2xx), with its first body chunk
/// already read (`None`: the body was empty).
pub(crate) struct Accepted {
    first: Option<Bytes>,
    rest: BoxStream<'static, reqwest::Result<Bytes>>,
    /// The body is `application/json`, not an event stream.
    json: bool,
}

/// The key, when there is a non-empty one: an empty key means "keyless".
pub(crate) fn usable_key(key: Option<&ApiSecret>) -> Option<&ApiSecret> {
    key.filter(|k| !k.expose().is_empty())
}

/// Sends the request built by `make` (called once per attempt), retrying as
/// the policy says, until a provider accepts it or the call fails.
pub(crate) async fn send(
    policy: &CallPolicy,
    key: Option<&ApiSecret>,
    make: impl Fn() -> RequestBuilder,
) -> Result<Accepted, ModelError> {
    let mut retries_done = 0;
    loop {
        let (error, retry_after) = match attempt(policy, make()).await {
            Ok(accepted) => return Ok(accepted),
            Err(Failure::Final(error)) => return Err(scrub(error, key)),
            Err(Failure::Retryable { error, retry_after }) => (error, retry_after),
        };
        if retries_done >= policy.max_retries {
            return Err(scrub(error, key));
        }
        let wait = match retry_after {
            // The provider asked for a pause we will not sit through.
            Some(wait) if wait > policy.max_retry_after => return Err(scrub(error, key)),
            Some(wait) => wait,
            None => backoff(policy.base_backoff, retries_done),
        };
        tracing::warn!(
            error = %scrub(error, key),
            retry = retries_done + 1,
            wait_ms = wait.as_millis() as u64,
            "model provider call failed; retrying"
        );
        tokio::time::sleep(wait).await;
        retries_done += 1;
    }
}

enum Failure {
    Final(ModelError),
    Retryable {
        error: ModelError,
        retry_after: Option<Duration>,
    },
}

fn retryable(error: ModelError, retry_after: Option<Duration>) -> Failure {
    Failure::Retryable { error, retry_after }
}

/// One try: the status line, then (for a 2xx) the first body chunk, both
/// within `first_byte_timeout` of sending.
async fn attempt(policy: &CallPolicy, request: RequestBuilder) -> Result<Accepted, Failure> {
    let deadline = Instant::now() + policy.first_byte_timeout;
    let response = match timeout_at(deadline, request.send()).await {
        Err(_) => return Err(Failure::Final(ModelError::Timeout)),
        // A request we could not even build (a bad base URL) will not get better.
        Ok(Err(e)) if e.is_builder() => {
            return Err(Failure::Final(ModelError::Unavailable {
                detail: format!("invalid provider request: {}", error_chain(e)),
            }));
        }
        Ok(Err(e)) => {
            let detail = format!("connection failed: {}", error_chain(e));
            return Err(retryable(ModelError::Unavailable { detail }, None));
        }
        Ok(Ok(response)) => response,
    };

    let status = response.status();
    if !status.is_success() {
        return Err(refusal(status, response, deadline).await);
    }
    let json = is_json(response.headers());

    let mut body = response.bytes_stream().boxed();
    let first = match timeout_at(deadline, body.next()).await {
        Err(_) => return Err(Failure::Final(ModelError::Timeout)),
        Ok(Some(Err(e))) => {
            let detail = format!("connection failed: {}", error_chain(e));
            return Err(retryable(ModelError::Unavailable { detail }, None));
        }
        Ok(Some(Ok(chunk))) => Some(chunk),
        Ok(None) => None,
    };
    Ok(Accepted {
        first,
        rest: body,
        json,
    })
}

/// Classifies a non-2xx answer.
async fn refusal(status: StatusCode, response: Response, deadline: Instant) -> Failure {
    let retry_after = parse_retry_after(response.headers(), SystemTime::now());
    let code = status.as_u16();
    match code {
        401 | 403 => Failure::Final(ModelError::Unauthorized { status: code }),
        429 => retryable(ModelError::RateLimited { retry_after }, retry_after),
        500..=599 => retryable(
            ModelError::Unavailable {
                detail: format!("HTTP {code}"),
            },
            retry_after,
        ),
        400..=499 => {
            let body = read_capped(response, deadline).await;
            Failure::Final(ModelError::Rejected {
                status: code,
                detail: error_detail(&body),
            })
        }
        // 1xx/3xx that reqwest did not resolve itself.
        _ => Failure::Final(ModelError::Unavailable {
            detail: format!("unexpected HTTP {code}"),
        }),
    }
}

/// Reads up to [`ERROR_BODY_BYTES`] of an error body, giving up (with what
/// it has) at the deadline.
async fn read_capped(response: Response, deadline: Instant) -> Vec<u8> {
    let mut body = response.bytes_stream();
    let mut out = Vec::new();
    while out.len() < ERROR_BODY_BYTES {
        match timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => out.extend_from_slice(&chunk),
            _ => break,
        }
    }
    out.truncate(ERROR_BODY_BYTES);
    out
}

/// The provider's own words from an error body: `error.message` (OpenAI,
/// Anthropic), `error` as a string (Ollama), `message`, else the raw text.
fn error_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            [
                v.pointer("/error/message"),
                v.get("error"),
                v.get("message"),
            ]
            .into_iter()
            .flatten()
            .find_map(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| text.trim().to_owned());
    shorten(&message)
}

pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // A date in the past means "now".
    Some(at.duration_since(now).unwrap_or_default())
}

/// `base * 2^retry`, saturating rather than overflowing.
fn backoff(base: Duration, retry: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(retry))
}

/// reqwest's error with its causes ("error sending request: … Connection
/// refused"), without the URL.
fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    shorten(&text)
}

/// Replaces the key in an error's detail text, should a provider or a
/// library ever echo it back.
pub(crate) fn scrub(error: ModelError, key: Option<&ApiSecret>) -> ModelError {
    let Some(key) = usable_key(key).map(ApiSecret::expose) else {
        return error;
    };
    let clean = |text: String| text.replace(key, "***");
    match error {
        ModelError::Unavailable { detail } => ModelError::Unavailable {
            detail: clean(detail),
        },
        ModelError::Rejected { status, detail } => ModelError::Rejected {
            status,
            detail: clean(detail),
        },
        ModelError::Protocol(detail) => ModelError::Protocol(clean(detail)),
        ModelError::Scripted(detail) => ModelError::Scripted(clean(detail)),
        other => other,
    }
}

/// Reads a whole (small) accepted body, such as a model list, with the
/// idle timeout between chunks.
pub(crate) async fn read_all(accepted: Accepted, idle: Duration) -> Result<Vec<u8>, ModelError> {
    let mut out = accepted.first.map(Vec::from).unwrap_or_default();
    let mut chunks = with_idle_timeout(accepted.rest, idle);
    while let Some(chunk) = chunks.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// The body after its first chunk: each chunk must come within `idle`.
fn with_idle_timeout(
    rest: BoxStream<'static, reqwest::Result<Bytes>>,
    idle: Duration,
) -> BoxStream<'static, Result<Bytes, ModelError>> {
    stream::unfold(Some(rest), move |state| async move {
        let mut rest = state?;
        match timeout(idle, rest.next()).await {
            Err(_) => Some((Err(ModelError::Timeout), None)),
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(rest))),
            // The caller's reqwest client may carry its own total timeout.
            Ok(Some(Err(e))) if e.is_timeout() => Some((Err(ModelError::Timeout), None)),
            // The connection broke mid-body.
            Ok(Some(Err(_))) => Some((Err(ModelError::Interrupted), None)),
        }
    })
    .boxed()
}

/// One provider's reading of its SSE events.
pub(crate) trait Decoder: Send + 'static {
    /// Handles one SSE event, pushing the [`ModelEvent`]s it yields (in
    /// order). Returns `true` once the provider said the stream is complete,
    /// after pushing `Finish`.
    fn on_event(
        &mut self,
        event: &Event,
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<bool, ModelError>;
}

/// Turns an accepted SSE body into the event stream: SSE framing by
/// `eventsource-stream`, meaning by `decoder`. The stream ends after
/// `Finish` or after its first error; a body that ends before the decoder
/// saw the provider's end marker yields `Interrupted`.
pub(crate) fn decode<D: Decoder>(
    accepted: Accepted,
    policy: &CallPolicy,
    decoder: D,
    key: Option<ApiSecret>,
) -> Result<EventStream, ModelError> {
    // A server that ignored `stream: true` answers with one JSON document.
    if accepted.json {
        return Err(ModelError::Protocol(
            "expected an event stream, got application/json".into(),
        ));
    }
    let body = stream::iter(accepted.first.map(Ok))
        .chain(with_idle_timeout(accepted.rest, policy.idle_timeout));
    let state = DecodeState {
        sse: body.eventsource().boxed(),
        decoder,
        queue: VecDeque::new(),
        end: None,
        key,
    };
    Ok(Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.queue.pop_front() {
                return Some((Ok(event), st));
            }
            match st.end.take() {
                Some(End::Error(error)) => {
                    st.end = Some(End::Done);
                    let error = scrub(error, st.key.as_ref());
                    return Some((Err(error), st));
                }
                Some(End::Done) => return None,
                None => {}
            }
            st.end = match st.sse.next().await {
                None => Some(End::Error(ModelError::Interrupted)),
                Some(Err(EventStreamError::Transport(error))) => Some(End::Error(error)),
                Some(Err(EventStreamError::Utf8(_))) => Some(End::Error(ModelError::Protocol(
                    "the event stream is not UTF-8".into(),
                ))),
                Some(Err(EventStreamError::Parser(_))) => {
                    Some(End::Error(ModelError::Protocol("bad SSE framing".into())))
                }
                Some(Ok(event)) => match st.decoder.on_event(&event, &mut st.queue) {
                    Ok(true) => Some(End::Done),
                    Ok(false) => None,
                    Err(error) => Some(End::Error(error)),
                },
            };
        }
    })))
}

enum End {
    /// Yield this error, then end.
    Error(ModelError),
    Done,
}

struct DecodeState<D> {
    sse: BoxStream<'static, Result<Event, EventStreamError<ModelError>>>,
    decoder: D,
    /// Events decoded but not yet yielded (one SSE event can give several).
    queue: VecDeque<ModelEvent>,
    /// Set once the stream must end, after the queue is drained.
    end: Option<End>,
    key: Option<ApiSecret>,
}

/// A JSON payload that did not parse: the serde message names the place,
/// never the content.
pub(crate) fn bad_json(what: &str, error: serde_json::Error) -> ModelError {
    ModelError::Protocol(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after(&headers(" 7 "), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(&headers("Sun, 06 Nov 1994 08:50:07 GMT"), now),
            Some(Duration::from_secs(30))
        );
        // A date already past: retry now.
        assert_eq!(
            parse_retry_after(&headers("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&headers("soon"), now), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_and_saturates() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 0), Duration::from_millis(500));
        assert_eq!(backoff(base, 1), Duration::from_millis(1000));
        assert_eq!(backoff(base, 2), Duration::from_millis(2000));
        // No overflow panic for an absurd retry count.
        assert_eq!(backoff(base, 200), base * u32::MAX);
    }

    #[test]
    fn error_detail_prefers_the_provider_message_and_is_short() {
        assert_eq!(
            error_detail(br#"{"error":{"message":"model not found","type":"x"}}"#),
            "model not found"
        );
        assert_eq!(
            error_detail(br#"{"error":"no such model"}"#),
            "no such model"
        );
        assert_eq!(error_detail(b" plain text "), "plain text");
        let long = "é".repeat(500);
        let detail = error_detail(long.as_bytes());
        assert_eq!(detail.chars().count(), DETAIL_CHARS + 1);
        assert!(detail.ends_with('…'));
    }

    #[test]
    fn scrub_removes_the_key_and_ignores_empty_keys() {
        let key = ApiSecret::new("sk-secret");
        let error = ModelError::Rejected {
            status: 400,
            detail: "bad key sk-secret here".into(),
        };
        assert_eq!(
            scrub(error.clone(), Some(&key)),
            ModelError::Rejected {
                status: 400,
                detail: "bad key *** here".into()
            }
        );
        // An empty key must not turn every gap into "***".
        assert_eq!(scrub(error.clone(), Some(&ApiSecret::new(""))), error);
    }
}
