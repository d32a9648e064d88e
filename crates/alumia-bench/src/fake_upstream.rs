//! A fake OpenAI-compatible model server on loopback: `POST
//! /v1/chat/completions` with `stream: true` answers `200 text/event-stream`
//! at once, sends the first content chunk a fixed time after the request
//! arrived (time to first token), then one chunk per token at a fixed
//! interval, a finish chunk, the usage chunk when `stream_options.include_usage`
//! is set, and `data: [DONE]`.
//!
//! Chunks are scheduled against the arrival time (`sleep_until`), not one
//! sleep after another, so the pace does not drift with load. Token `i` is
//! the text `t{i} `, so the full answer is known in advance ([`expected_text`]).
//!
//! In hold mode (`Pace::Hold`) a token follows every `interval` until
//! [`FakeUpstream::release`] is called, then the stream ends normally: it
//! stands for a slow model, to keep many chat streams open at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// How the fake paces its tokens.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// `tokens` tokens, the first `ttft` after arrival, then one per `interval`.
    Fixed {
        ttft: Duration,
        tokens: usize,
        interval: Duration,
    },
    /// The first token after `ttft`, then one per `interval` until released.
    Hold { ttft: Duration, interval: Duration },
}

struct Shared {
    pace: Pace,
    release: CancellationToken,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

/// The text of token `i`.
pub fn token(i: usize) -> String {
    format!("t{i} ")
}

/// The whole answer of a `Pace::Fixed` stream of `tokens` tokens.
pub fn expected_text(tokens: usize) -> String {
    (0..tokens).map(token).collect()
}

impl FakeUpstream {
    /// Binds 127.0.0.1:0 and serves on the current runtime.
    pub async fn start(pace: Pace) -> anyhow::Result<FakeUpstream> {
        let shared = Arc::new(Shared {
            pace,
            release: CancellationToken::new(),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the fake upstream")?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(FakeUpstream {
            addr,
            shared,
            shutdown,
        })
    }

    /// The provider base URL, version included, as `[[providers]] base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Ends every held stream (hold mode) with its finish, usage and `[DONE]`.
    pub fn release(&self) {
        self.shared.release.cancel();
    }

    pub fn stop(&self) {
        self.shared.release.cancel();
        self.shutdown.cancel();
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> Bytes {
    let data = json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {data}\n\n"))
}

fn usage_chunk(prompt: u64, completion: u64) -> Bytes {
    let data = json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    });
    Bytes::from(format!("data: {data}\n\n"))
}

/// Where the stream is.
enum Phase {
    Token(usize),
    Finish(usize),
    Usage(usize),
    Done,
    End,
}

struct StreamState {
    shared: Arc<Shared>,
    arrived: Instant,
    include_usage: bool,
    prompt_tokens: u64,
    phase: Phase,
}

impl StreamState {
    /// When token `i` is due.
    fn due(&self, i: usize) -> Instant {
        let (ttft, interval) = match self.shared.pace {
            Pace::Fixed { ttft, interval, .. } | Pace::Hold { ttft, interval } => (ttft, interval),
        };
        self.arrived + ttft + interval * i as u32
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.phase {
                Phase::Token(i) => {
                    match self.shared.pace {
                        Pace::Fixed { tokens, .. } => {
                            if i >= tokens {
                                self.phase = Phase::Finish(i);
                                continue;
                            }
                            sleep_until(self.due(i)).await;
                        }
                        Pace::Hold { .. } => {
                            // The first token always comes; later ones until released.
                            if i > 0 && self.shared.release.is_cancelled() {
                                self.phase = Phase::Finish(i);
                                continue;
                            }
                            tokio::select! {
                                _ = sleep_until(self.due(i)) => {}
                                _ = self.shared.release.cancelled(), if i > 0 => {
                                    self.phase = Phase::Finish(i);
                                    continue;
                                }
                            }
                        }
                    }
                    self.phase = Phase::Token(i + 1);
                    let delta = if i == 0 {
                        json!({"role": "assistant", "content": token(0)})
                    } else {
                        json!({"content": token(i)})
                    };
                    return Some(chunk(delta, None));
                }
                Phase::Finish(n) => {
                    self.phase = if self.include_usage {
                        Phase::Usage(n)
                    } else {
                        Phase::Done
                    };
                    return Some(chunk(json!({}), Some("stop")));
                }
                Phase::Usage(n) => {
                    self.phase = Phase::Done;
                    return Some(usage_chunk(self.prompt_tokens, n as u64));
                }
                Phase::Done => {
                    self.phase = Phase::End;
                    return Some(Bytes::from_static(b"data: [DONE]\n\n"));
                }
                Phase::End => return None,
            }
        }
    }
}

async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let arrived = Instant::now();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid JSON").into_response();
    };
    if request["stream"] != json!(true) {
        return (StatusCode::BAD_REQUEST, "only stream: true is faked").into_response();
    }
    let include_usage = request["stream_options"]["include_usage"] == json!(true);
    // Whitespace-separated words of every message, as a stand-in for tokens.
    let prompt_tokens = request["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["content"].as_str())
                .map(|c| c.split_whitespace().count() as u64)
                .sum()
        })
        .unwrap_or(0);
    let state = StreamState {
        shared,
        arrived,
        include_usage,
        prompt_tokens,
        phase: Phase::Token(0),
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        let bytes = state.next().await?;
        Some((Ok::<Bytes, Infallible>(bytes), state))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
