//! A scripted provider on loopback: an axum server on 127.0.0.1:0 that
//! answers each request with the next scripted [`Reply`] (the last one
//! repeats) and records what it was sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alumia_models::{ApiSecret, CallPolicy, EventStream, ModelError, ModelEvent, ProviderEndpoint};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

/// The key the tests configure; it must never show up in errors or Debug.
pub const KEY: &str = "sk-test-9f8e7d6c5b4a";

/// One scripted answer.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// Wait before sending the status line and headers.
    delay: Duration,
    body: Vec<Step>,
}

#[derive(Clone)]
pub enum Step {
    /// Bytes written as one body chunk.
    Send(Vec<u8>),
    Pause(Duration),
    /// Break the connection (no clean end of the chunked body).
    Abort,
}

impl Reply {
    /// A 200 event stream whose body is `steps`.
    pub fn sse(body: Vec<Step>) -> Reply {
        Reply {
            status: 200,
            headers: vec![
                ("content-type", "text/event-stream; charset=utf-8".into()),
                ("cache-control", "no-cache".into()),
            ],
            delay: Duration::ZERO,
            body,
        }
    }

    /// A JSON document (error bodies, the model list).
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            delay: Duration::ZERO,
            body: vec![Step::Send(body.as_bytes().to_vec())],
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Each SSE event (a `String` of complete frames) as its own chunk.
pub fn chunks(events: &[String]) -> Vec<Step> {
    events
        .iter()
        .map(|e| Step::Send(e.as_bytes().to_vec()))
        .collect()
}

/// The whole text cut every `n` bytes, even inside a line or a UTF-8
/// character, as TCP may deliver it.
pub fn split_bytes(text: &str, n: usize) -> Vec<Step> {
    text.as_bytes()
        .chunks(n)
        .map(|c| Step::Send(c.to_vec()))
        .collect()
}

/// What the fake was sent.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body, or `Null` when there was none.
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

pub struct Fake {
    pub base_url: String,
    shared: Arc<Shared>,
}

impl Fake {
    /// Serves `replies` in order, repeating the last one.
    pub async fn start(replies: Vec<Reply>) -> Fake {
        assert!(!replies.is_empty());
        let shared = Arc::new(Shared {
            replies: Mutex::new(replies.into()),
            requests: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake {
            base_url: format!("http://{addr}"),
            shared,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// The only request made; fails the test if there were more or fewer.
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request");
        requests.into_iter().next().unwrap()
    }

    pub fn endpoint(&self, base_suffix: &str, policy: CallPolicy) -> ProviderEndpoint {
        ProviderEndpoint {
            base_url: format!("{}{base_suffix}", self.base_url),
            api_key: Some(ApiSecret::new(KEY)),
            policy,
        }
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.lock().unwrap().push(Recorded {
        method,
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = {
        let mut replies = shared.replies.lock().unwrap();
        if replies.len() > 1 {
            replies.pop_front().unwrap()
        } else {
            replies[0].clone()
        }
    };
    tokio::time::sleep(reply.delay).await;

    let steps = futures::stream::iter(reply.body).then(|step| async move {
        match step {
            Step::Send(bytes) => Some(Ok(Bytes::from(bytes))),
            Step::Pause(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Step::Abort => Some(Err(std::io::Error::other("fake: connection dropped"))),
        }
    });
    let body = Body::from_stream(steps.filter_map(|item| async move { item }));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A small policy so the suite is fast: 10 ms backoff, 2 retries.
pub fn policy() -> CallPolicy {
    CallPolicy {
        first_byte_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        max_retries: 2,
        base_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(3),
    }
}

/// Reads the stream to its end: the events, and the error if it ended with
/// one. Fails the test if anything follows an error or a `Finish`.
pub async fn collect(stream: EventStream) -> (Vec<ModelEvent>, Option<ModelError>) {
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .expect("the event stream did not end");
    let mut events = Vec::new();
    let mut error = None;
    for item in items {
        assert!(error.is_none(), "an item after the error: {item:?}");
        assert!(
            !matches!(events.last(), Some(ModelEvent::Finish { .. })),
            "an item after Finish: {item:?}"
        );
        match item {
            Ok(event) => events.push(event),
            Err(e) => error = Some(e),
        }
    }
    (events, error)
}

/// The text of all `TextDelta`s, and how many there were.
pub fn text_of(events: &[ModelEvent]) -> (String, usize) {
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    (deltas.concat(), deltas.len())
}

/// Asserts the key appears in no form of an error.
pub fn assert_no_key(error: &ModelError) {
    for text in [format!("{error:?}"), format!("{error}"), error.user_text()] {
        assert!(!text.contains(KEY), "the key leaked: {text}");
    }
}
