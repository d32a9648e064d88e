//! Streaming chat turns over one HTTP/1.1 keep-alive connection (hyper),
//! timed from the send to the first text token and to the end of the stream.
//!
//! Two wires: the upstream's own (OpenAI Chat Completions chunks, the first
//! non-empty `choices[0].delta.content` is the first token) and Alumia's
//! (`POST /api/v1/chat`, a UI message stream, the first `text-delta` chunk).
//! Both end at `data: [DONE]`.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

pub type Sender = SendRequest<Full<Bytes>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// The fake upstream, called directly.
    Direct,
    /// Through Alumia's `POST /api/v1/chat`.
    Alumia,
}

pub async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// What to send for one turn; the body is built once and shared.
#[derive(Clone)]
pub struct TurnRequest {
    pub wire: Wire,
    pub host: HeaderValue,
    pub path: &'static str,
    pub authorization: Option<HeaderValue>,
    pub body: Bytes,
}

impl TurnRequest {
    /// The body an OpenAI-compatible client would send (as Alumia's adapter does).
    pub fn direct(addr: SocketAddr, prompt: &str) -> TurnRequest {
        let body = json!({
            "model": "fake",
            "messages": [{"role": "user", "content": prompt}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 8192,
        });
        TurnRequest {
            wire: Wire::Direct,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a header value"),
            path: "/v1/chat/completions",
            authorization: None,
            body: Bytes::from(body.to_string()),
        }
    }

    /// A new session every time: no `sessionId`.
    pub fn alumia(addr: SocketAddr, key: &str, model: &str, prompt: &str) -> TurnRequest {
        let body = json!({
            "messages": [{"role": "user", "content": prompt}],
            "model": model,
        });
        TurnRequest {
            wire: Wire::Alumia,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a header value"),
            path: "/api/v1/chat",
            authorization: Some(
                HeaderValue::from_str(&format!("Bearer {key}")).expect("a key is a header value"),
            ),
            body: Bytes::from(body.to_string()),
        }
    }

    fn build(&self) -> Request<Full<Bytes>> {
        let mut req = Request::post(self.path)
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "text/event-stream")
            .body(Full::new(self.body.clone()))
            .expect("a valid request");
        if let Some(auth) = &self.authorization {
            req.headers_mut()
                .insert(header::AUTHORIZATION, auth.clone());
        }
        req
    }
}

/// An open stream, after a 200.
pub struct OpenStream {
    pub wire: Wire,
    pub sent: Instant,
    /// When the response head (status and headers) arrived.
    pub head: Instant,
    /// `X-Alumia-Session-Id` (Alumia only).
    pub session_id: Option<String>,
    body: Incoming,
    buf: Vec<u8>,
    /// Where the next line starts in `buf`.
    pos: usize,
    pub text: String,
    pub first_token: Option<Instant>,
}

/// One `data:` event as far as the bench cares.
pub enum Event {
    /// A text token; the first one sets `first_token`.
    Text,
    /// Any other chunk.
    Other,
    /// `data: [DONE]`.
    Done,
}

/// Sends the request and waits for the response head.
pub async fn open(sender: &mut Sender, req: &TurnRequest) -> Result<OpenStream, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let sent = Instant::now();
    let res = sender
        .send_request(req.build())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let head = Instant::now();
    let status = res.status();
    let session_id = res
        .headers()
        .get("x-alumia-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if status != 200 {
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        return Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            text.chars().take(160).collect::<String>()
        ));
    }
    Ok(OpenStream {
        wire: req.wire,
        sent,
        head,
        session_id,
        body: res.into_body(),
        buf: Vec::with_capacity(4096),
        pos: 0,
        text: String::new(),
        first_token: None,
    })
}

impl OpenStream {
    /// The next complete line, reading more of the body when needed; `None`
    /// at the end of the body.
    async fn line(&mut self) -> Result<Option<String>, String> {
        loop {
            if let Some(n) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&self.buf[self.pos..self.pos + n])
                    .trim_end_matches('\r')
                    .to_string();
                self.pos += n + 1;
                return Ok(Some(line));
            }
            // Compact, then read the next frame.
            self.buf.drain(..self.pos);
            self.pos = 0;
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("body: {e}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The next `data:` event; an `error` chunk (Alumia) is an `Err`.
    pub async fn next(&mut self) -> Result<Option<Event>, String> {
        loop {
            let Some(line) = self.line().await? else {
                return Ok(None);
            };
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim_start();
            if data == "[DONE]" {
                return Ok(Some(Event::Done));
            }
            let v: Value = serde_json::from_str(data).map_err(|e| format!("chunk: {e}"))?;
            let text = match self.wire {
                Wire::Direct => v["choices"][0]["delta"]["content"]
                    .as_str()
                    .filter(|s| !s.is_empty()),
                Wire::Alumia => match v["type"].as_str() {
                    Some("text-delta") => v["delta"].as_str(),
                    Some("error") => {
                        return Err(format!("error chunk: {}", v["errorText"]));
                    }
                    _ => None,
                },
            };
            match text {
                Some(t) => {
                    if self.first_token.is_none() {
                        self.first_token = Some(Instant::now());
                    }
                    self.text.push_str(t);
                    return Ok(Some(Event::Text));
                }
                None => return Ok(Some(Event::Other)),
            }
        }
    }

    /// Reads until the first text token.
    pub async fn until_first_token(&mut self) -> Result<(), String> {
        while self.first_token.is_none() {
            match self.next().await? {
                Some(Event::Done) | None => return Err("stream ended before any text".into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads to `[DONE]` and then the end of the body; returns when `[DONE]` came.
    pub async fn until_done(&mut self) -> Result<Instant, String> {
        loop {
            match self.next().await? {
                Some(Event::Done) => {
                    let at = Instant::now();
                    // The body ends right after `[DONE]`; drain it so the
                    // keep-alive connection can carry the next request.
                    while self.line().await?.is_some() {}
                    return Ok(at);
                }
                None => return Err("stream ended without [DONE]".into()),
                _ => {}
            }
        }
    }
}

/// One whole turn, timed.
pub struct Timed {
    /// Send → response head.
    pub head_ns: u64,
    /// Send → first text token.
    pub ttft_ns: u64,
    pub total_ns: u64,
    pub session_id: Option<String>,
    pub text: String,
}

pub async fn turn(sender: &mut Sender, req: &TurnRequest) -> Result<Timed, String> {
    let mut stream = open(sender, req).await?;
    stream.until_first_token().await?;
    let done = stream.until_done().await?;
    let first = stream.first_token.expect("set by until_first_token");
    Ok(Timed {
        head_ns: stream.head.duration_since(stream.sent).as_nanos() as u64,
        ttft_ns: first.duration_since(stream.sent).as_nanos() as u64,
        total_ns: done.duration_since(stream.sent).as_nanos() as u64,
        session_id: stream.session_id,
        text: stream.text,
    })
}
