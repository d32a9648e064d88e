//! A closed-loop HTTP/1.1 load generator: N keep-alive connections, each
//! sending its next request as soon as the previous response body is read,
//! for a fixed time. Every latency is kept (nanoseconds) and sorted later.
//!
//! Closed loop means a slow response delays the next request, so the figures
//! are throughput-bound latencies at N requests in flight (Little's law:
//! mean latency ≈ N / rps), not latencies at a fixed arrival rate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One route under load.
pub struct Target {
    /// The label in the table, e.g. `bench/bare`.
    pub name: String,
    pub addr: SocketAddr,
    pub path: String,
    /// `Authorization` header value, if any.
    pub authorization: Option<HeaderValue>,
    /// A 200 whose body has another length counts as an error.
    pub body_len: Option<usize>,
}

/// What one round of one route measured.
#[derive(Default)]
pub struct Round {
    /// One entry per successful request, nanoseconds from send to last body byte.
    pub latencies_ns: Vec<u64>,
    /// Non-200 answers, wrong body lengths, transport errors.
    pub errors: u64,
    /// From the first send to the last response.
    pub elapsed: Duration,
}

impl Round {
    pub fn rps(&self) -> f64 {
        self.latencies_ns.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

async fn connect(target: &Target) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("connect {}", target.addr))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(target: &Target, host: &HeaderValue) -> Request<Empty<Bytes>> {
    let mut req = Request::get(target.path.as_str())
        .header(header::HOST, host.clone())
        .body(Empty::new())
        .expect("a valid request");
    if let Some(auth) = &target.authorization {
        req.headers_mut()
            .insert(header::AUTHORIZATION, auth.clone());
    }
    req
}

/// Drives `target` with `connections` connections for `duration`. Connections
/// are opened before the clock starts.
pub async fn run(
    target: Arc<Target>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Round> {
    let host = HeaderValue::from_str(&target.addr.to_string())?;
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(&target).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for mut sender in senders {
        let target = target.clone();
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let req = request(&target, &host);
                let sent = Instant::now();
                let ok = match sender.send_request(req).await {
                    Ok(res) => {
                        let status = res.status();
                        match res.into_body().collect().await {
                            Ok(body) => {
                                status == 200
                                    && target.body_len.is_none_or(|n| n == body.to_bytes().len())
                            }
                            Err(_) => false,
                        }
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed().as_nanos() as u64);
                } else {
                    errors += 1;
                    // The connection may be gone: open a new one.
                    if sender.ready().await.is_err() {
                        match connect(&target).await {
                            Ok(s) => sender = s,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut round = Round::default();
    for task in tasks {
        let (latencies, errors) = task.await?;
        round.latencies_ns.extend(latencies);
        round.errors += errors;
    }
    round.elapsed = started.elapsed();
    Ok(round)
}

/// The nearest-rank percentile of sorted nanoseconds, in milliseconds.
pub fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e6
}
