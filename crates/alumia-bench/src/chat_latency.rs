//! `alumia-bench chat-latency`: the time Alumia adds to a streamed chat turn.
//!
//! A fake OpenAI-compatible upstream streams with a fixed time to first
//! token and a fixed token rate. The same closed-loop client calls it
//! directly (`POST /v1/chat/completions`) and through Alumia (`POST
//! /api/v1/chat`, a new session every turn, an API key), at each concurrency,
//! in alternating rounds. It prints p50/p99 of the time to first token and of
//! the total time for both paths, and the added latency per percentile
//! (Alumia pN − direct pN: turns are not paired, so this is a difference of
//! percentiles, not a percentile of differences). After each concurrency it
//! reads back every measured turn's session over the API and counts those
//! whose user message is stored and whose assistant message is `complete`
//! with the full text.
//!
//! The server (and SQLite's worker threads) run on one tokio worker pinned to
//! CPU 0; the client and the fake upstream on another runtime pinned to CPU 1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::chat_app::{self, ChatServer, ChatServerOptions};
use crate::chat_client::{self, TurnRequest, Wire};
use crate::fake_upstream::{self, FakeUpstream, Pace};
use crate::load::percentile_ms;
use crate::{LOAD_THREAD, SERVER_THREAD, sys};

#[derive(clap::Args, Debug)]
pub struct LatencyArgs {
    /// Concurrent turns (closed loop), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Seconds per path per round.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Instead of seconds: turns per path per round (split over the connections).
    #[arg(long)]
    turns: Option<usize>,
    /// Rounds; each runs direct then Alumia.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Warm-up seconds per path, before the rounds of each concurrency.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The fake upstream's time to first token, ms.
    #[arg(long, default_value_t = 50)]
    ttft_ms: u64,
    /// Tokens per answer.
    #[arg(long, default_value_t = 40)]
    tokens: usize,
    /// Milliseconds between two tokens.
    #[arg(long, default_value_t = 5)]
    token_interval_ms: u64,
    /// `postgres://…` of an empty database; default a SQLite temp file.
    #[arg(long)]
    database_url: Option<String>,
    /// SQLite `synchronous` (full, as `alumia serve` defaults, or normal).
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
    /// Database pool size (`alumia serve`: 10); a diagnostic knob.
    #[arg(long, default_value_t = 10)]
    db_pool: u32,
    /// The server's `max_concurrent_turns`; default 2 x the largest concurrency.
    #[arg(long)]
    max_concurrent_turns: Option<usize>,
    /// Do not pin the server and the client to different CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Start every connection at once (the default staggers their first
    /// turns over one answer's length, so turns do not arrive in waves).
    #[arg(long)]
    no_stagger: bool,
}

/// One path at one concurrency, all rounds.
#[derive(Default)]
struct PathStats {
    head_ns: Vec<u64>,
    ttft_ns: Vec<u64>,
    total_ns: Vec<u64>,
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
    sessions: Vec<String>,
    wrong_text: u64,
    cpu: BTreeMap<&'static str, Duration>,
}

impl PathStats {
    fn turns(&self) -> usize {
        self.ttft_ns.len()
    }
    fn errors(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.wrong_text
    }
    fn per_sec(&self) -> f64 {
        self.turns() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// CPU of these groups as a share of one CPU over the measured time.
    fn cpu_share(&self, groups: &[&str]) -> f64 {
        let total: Duration = groups
            .iter()
            .map(|g| self.cpu.get(g).copied().unwrap_or_default())
            .sum();
        total.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn cpu_us_per_turn(&self, groups: &[&str]) -> f64 {
        let total: Duration = groups
            .iter()
            .map(|g| self.cpu.get(g).copied().unwrap_or_default())
            .sum();
        total.as_secs_f64() * 1e6 / self.turns().max(1) as f64
    }
}

struct Phase {
    samples: Vec<chat_client::Timed>,
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
}

/// `concurrency` connections, each running turns back to back until the
/// deadline or its share of `turns`.
async fn phase(
    addr: SocketAddr,
    req: Arc<TurnRequest>,
    concurrency: usize,
    limit: Limit,
    stagger: Duration,
) -> anyhow::Result<Phase> {
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        senders.push(chat_client::connect(addr).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for (i, mut sender) in senders.into_iter().enumerate() {
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let (deadline, quota) = match limit {
                Limit::Time(d) => (Some(started + d), usize::MAX),
                Limit::Turns(n) => (None, n / concurrency + usize::from(i < n % concurrency)),
            };
            let mut samples = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut done = 0;
            // Connection i starts i/concurrency of an answer later: with a
            // fixed-length upstream, turns started together stay together
            // and arrive as one wave per answer.
            tokio::time::sleep(stagger.mul_f64(i as f64 / concurrency as f64)).await;
            while done < quota && deadline.is_none_or(|d| Instant::now() < d) {
                done += 1;
                match chat_client::turn(&mut sender, &req).await {
                    Ok(t) => samples.push(t),
                    Err(e) => {
                        *errors.entry(short_error(&e)).or_default() += 1;
                        if sender.ready().await.is_err() {
                            match chat_client::connect(addr).await {
                                Ok(s) => sender = s,
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
            (samples, errors)
        }));
    }
    let mut out = Phase {
        samples: Vec::new(),
        errors: BTreeMap::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (samples, errors) = task.await?;
        out.samples.extend(samples);
        for (k, v) in errors {
            *out.errors.entry(k).or_default() += v;
        }
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

/// The error without ids, so equal causes count together.
fn short_error(e: &str) -> String {
    e.chars().take(80).collect()
}

#[derive(Clone, Copy)]
enum Limit {
    Time(Duration),
    Turns(usize),
}

pub fn run(args: LatencyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rounds > 0 && args.seconds > 0.0 && args.tokens > 0,
        "--rounds, --seconds and --tokens must be positive"
    );
    anyhow::ensure!(
        !args.concurrency.is_empty() && args.concurrency.iter().all(|&c| c > 0),
        "--concurrency must be positive"
    );
    let max_c = args.concurrency.iter().copied().max().unwrap_or(1);
    let max_turns = args.max_concurrent_turns.unwrap_or(max_c * 2);
    anyhow::ensure!(
        max_turns >= max_c,
        "--max-concurrent-turns {max_turns} is below the concurrency {max_c}"
    );
    let synchronous = chat_app::parse_synchronous(&args.sqlite_synchronous)?;

    let cpus = sys::nproc();
    let pin = !args.no_pin && cpus >= 2;
    if pin {
        sys::pin_current(0);
    }
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVER_THREAD)
        .on_thread_start(move || {
            if pin {
                sys::pin_current(0);
            }
        })
        .enable_all()
        .build()?;
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(LOAD_THREAD)
        .on_thread_start(move || {
            if pin {
                sys::pin_current(1);
            }
        })
        .enable_all()
        .build()?;

    let pace = Pace::Fixed {
        ttft: Duration::from_millis(args.ttft_ms),
        tokens: args.tokens,
        interval: Duration::from_millis(args.token_interval_ms),
    };
    // The upstream is not part of the server: it runs with the client.
    let upstream = load_rt.block_on(async { FakeUpstream::start(pace).await })?;
    let options = ChatServerOptions {
        database_url: args.database_url.clone(),
        sqlite_synchronous: synchronous,
        upstream: Some(upstream.base_url()),
        max_concurrent_turns: max_turns,
        db_pool: args.db_pool,
    };
    let server = server_rt.block_on(ChatServer::start(&options))?;
    let addr = server.addr;
    let key = load_rt.block_on(load_rt.spawn(chat_app::owner_key(addr)))??;

    let prompt = "Tell me something short about latency.";
    let direct = Arc::new(TurnRequest::direct(upstream.addr, prompt));
    let through = Arc::new(TurnRequest::alumia(addr, &key, chat_app::MODEL, prompt));
    let expected = fake_upstream::expected_text(args.tokens);

    let command: Vec<String> = std::env::args().collect();
    println!(
        "alumia-bench chat-latency: the time POST /api/v1/chat adds to a streamed turn, against calling the upstream directly"
    );
    println!("commit   {}", sys::commit());
    println!("command  {}", command.join(" "));
    println!(
        "nproc    {cpus}; load average before the run {}",
        sys::loadavg()
    );
    println!(
        "build    {}; no tracing subscriber",
        if cfg!(debug_assertions) {
            "DEBUG (numbers meaningless)"
        } else {
            "release"
        }
    );
    println!(
        "upstream fake OpenAI Chat Completions on loopback: first token {} ms after the request arrives, then {} tokens one every {} ms \
         (an answer of {} ms), finish, usage (include_usage), [DONE]",
        args.ttft_ms,
        args.tokens,
        args.token_interval_ms,
        args.ttft_ms + args.token_interval_ms * (args.tokens as u64 - 1)
    );
    println!(
        "server   in-process, as `alumia serve` assembles it; store {}; provider `fake` (model {}); max_concurrent_turns {max_turns}",
        server.store_label,
        chat_app::MODEL
    );
    println!(
        "turn     direct: POST /v1/chat/completions (stream) to the fake; alumia: POST /api/v1/chat with an API key, no sessionId \
         (a new session every turn), SSE read to the first text-delta (TTFT) and to [DONE] (total)"
    );
    println!(
        "load     closed loop, one HTTP/1.1 keep-alive connection per concurrent turn, {}; {} round(s) x {} per path, \
         direct then alumia in each round, after {} s warm-up per path",
        if args.no_stagger {
            "all starting at once (--no-stagger)".to_string()
        } else {
            format!(
                "first turns staggered over one answer ({} ms)",
                args.ttft_ms + args.tokens as u64 * args.token_interval_ms
            )
        },
        args.rounds,
        match args.turns {
            Some(n) => format!("{n} turns"),
            None => format!("{} s", args.seconds),
        },
        args.warmup
    );
    println!(
        "pinning  {}",
        if pin {
            "server (1 tokio worker) + SQLite workers on CPU 0; client + fake upstream (1 tokio worker) on CPU 1"
        } else {
            "none"
        }
    );
    println!("network  loopback only: no NIC, no TLS");

    let limit = match args.turns {
        Some(n) => Limit::Turns(n),
        None => Limit::Time(Duration::from_secs_f64(args.seconds)),
    };
    let warmup = Duration::from_secs_f64(args.warmup);
    let mut goal: Option<(f64, usize, usize)> = None;
    let stagger = if args.no_stagger {
        Duration::ZERO
    } else {
        Duration::from_millis(args.ttft_ms + args.tokens as u64 * args.token_interval_ms)
    };
    for &c in &args.concurrency {
        let mut paths = [PathStats::default(), PathStats::default()];
        if !warmup.is_zero() {
            for req in [&direct, &through] {
                let target = if req.wire == Wire::Direct {
                    upstream.addr
                } else {
                    addr
                };
                load_rt.block_on(load_rt.spawn(phase(
                    target,
                    (*req).clone(),
                    c,
                    Limit::Time(warmup),
                    stagger,
                )))??;
            }
        }
        for _ in 0..args.rounds {
            for (req, stats) in [&direct, &through].into_iter().zip(paths.iter_mut()) {
                let target = if req.wire == Wire::Direct {
                    upstream.addr
                } else {
                    addr
                };
                let before = sys::cpu_by_group();
                let p = load_rt.block_on(load_rt.spawn(phase(
                    target,
                    req.clone(),
                    c,
                    limit,
                    stagger,
                )))??;
                for (g, d) in sys::cpu_delta(&before, &sys::cpu_by_group()) {
                    *stats.cpu.entry(g).or_default() += d;
                }
                stats.elapsed += p.elapsed;
                for (k, v) in p.errors {
                    *stats.errors.entry(k).or_default() += v;
                }
                for t in p.samples {
                    if t.text != expected {
                        stats.wrong_text += 1;
                        continue;
                    }
                    stats.head_ns.push(t.head_ns);
                    stats.ttft_ns.push(t.ttft_ns);
                    stats.total_ns.push(t.total_ns);
                    if let Some(s) = t.session_id {
                        stats.sessions.push(s);
                    }
                }
            }
        }
        // Every turn has ended on the server once its [DONE] arrived.
        let sessions = paths[1].sessions.clone();
        let persisted = load_rt.block_on(load_rt.spawn(check_persisted(
            addr,
            key.clone(),
            sessions.clone(),
            expected.clone(),
        )))??;
        let added_p99 = report(c, &paths, &persisted, sessions.len());
        if c == 64 {
            goal = Some((added_p99, persisted.ok, sessions.len()));
        }
    }

    println!();
    println!(
        "added:     Alumia pN − direct pN, per percentile (turns are not paired: a difference of percentiles)."
    );
    println!(
        "head:      send → response head (status + headers). Through Alumia the head leaves once the turn is claimed: \
         key check, session created, start_turn committed."
    );
    println!(
        "srv µs:    CPU time of the server's tokio worker + SQLite threads + other (main, blocking pool) per Alumia turn \
         (/proc/self/task/*/schedstat), split rt/sqlite/oth; srv CPU: the same as a share of one CPU (they share CPU 0 when pinned)."
    );
    println!("load µs:   CPU of the client + fake upstream runtime per turn.");
    println!(
        "persisted: measured Alumia turns whose session holds the user message and the assistant message, status complete, \
         finishReason stop, with the full streamed text (GET /api/v1/sessions/:id/messages)."
    );
    match goal {
        Some((p99, ok, n)) => println!(
            "goal (p99 added TTFT < 5 ms at 64 concurrent turns, every message persisted): p99 added TTFT {:.2} ms {}; persisted {ok}/{n} {}",
            p99,
            if p99 < 5.0 { "MET" } else { "NOT MET" },
            if ok == n && n > 0 { "MET" } else { "NOT MET" },
        ),
        None => println!("goal is stated at 64 concurrent turns; not run here"),
    }
    println!(
        "peak RSS (VmHWM, whole process: server + SQLite + client + fake upstream): {}",
        sys::peak_rss()
    );
    let running = server.runtime.running_turns();
    if running != 0 {
        println!("warning: {running} turn(s) still running at the end");
    }
    server_rt.block_on(server.stop());
    upstream.stop();
    Ok(())
}

#[derive(Default)]
struct Persisted {
    ok: usize,
    problems: BTreeMap<String, usize>,
}

async fn check_persisted(
    addr: SocketAddr,
    key: String,
    sessions: Vec<String>,
    expected: String,
) -> anyhow::Result<Persisted> {
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let results: Vec<Result<(), String>> = futures::stream::iter(sessions)
        .map(|s| {
            let http = http.clone();
            let url = format!("{base}/api/v1/sessions/{s}/messages");
            let key = key.clone();
            let expected = expected.clone();
            async move {
                let res = http
                    .get(&url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .map_err(|e| format!("GET messages: {e}"))?;
                if res.status() != 200 {
                    return Err(format!("GET messages: HTTP {}", res.status().as_u16()));
                }
                let body: Value = res.json().await.map_err(|e| format!("json: {e}"))?;
                // A page: `{data: {items, hasMore, nextCursor}}`.
                let messages = body["data"]["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let user = messages.iter().any(|m| m["role"] == "user");
                let assistant = messages.iter().find(|m| m["role"] == "assistant");
                match assistant {
                    None => Err("no assistant message".into()),
                    Some(_) if !user => Err("no user message".into()),
                    Some(m) if m["status"] != "complete" => {
                        Err(format!("assistant status {}", m["status"]))
                    }
                    Some(m) if m["finishReason"] != "stop" => {
                        Err(format!("finishReason {}", m["finishReason"]))
                    }
                    Some(m) if m["text"].as_str() != Some(expected.as_str()) => {
                        Err("assistant text differs from the streamed text".into())
                    }
                    Some(_) => Ok(()),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut out = Persisted::default();
    for r in results {
        match r {
            Ok(()) => out.ok += 1,
            Err(e) => *out.problems.entry(e).or_default() += 1,
        }
    }
    Ok(out)
}

/// Prints one concurrency's table; returns the p99 added TTFT, ms.
fn report(c: usize, paths: &[PathStats; 2], persisted: &Persisted, n: usize) -> f64 {
    const SERVER: [&str; 3] = ["server", "sqlite", "other"];
    println!();
    println!("== {c} concurrent turn(s) ==");
    println!(
        "{:<8} {:>6} {:>7} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>16} {:>7}",
        "path",
        "turns",
        "turns/s",
        "errors",
        "head p50",
        "head p99",
        "TTFT p50",
        "TTFT p99",
        "total p50",
        "total p99",
        "srv µs",
        "srv CPU",
        "(rt/sqlite/oth)",
        "load µs"
    );
    let mut pct = Vec::new();
    for (name, s) in ["direct", "alumia"].iter().zip(paths) {
        let sorted = |v: &Vec<u64>| {
            let mut v = v.clone();
            v.sort_unstable();
            v
        };
        let (head, ttft, total) = (sorted(&s.head_ns), sorted(&s.ttft_ns), sorted(&s.total_ns));
        let p = [
            percentile_ms(&ttft, 50.0),
            percentile_ms(&ttft, 99.0),
            percentile_ms(&total, 50.0),
            percentile_ms(&total, 99.0),
            percentile_ms(&head, 50.0),
            percentile_ms(&head, 99.0),
        ];
        pct.push(p);
        let alumia = *name == "alumia";
        println!(
            "{:<8} {:>6} {:>7.1} {:>6} {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>7} {:>16} {:>7.0}",
            name,
            s.turns(),
            s.per_sec(),
            s.errors(),
            p[4],
            p[5],
            p[0],
            p[1],
            p[2],
            p[3],
            if alumia {
                format!("{:.0}", s.cpu_us_per_turn(&SERVER))
            } else {
                "-".into()
            },
            if alumia {
                format!("{:.0}%", s.cpu_share(&SERVER) * 100.0)
            } else {
                "-".into()
            },
            if alumia {
                format!(
                    "{:.0}/{:.0}/{:.0}",
                    s.cpu_us_per_turn(&["server"]),
                    s.cpu_us_per_turn(&["sqlite"]),
                    s.cpu_us_per_turn(&["other"])
                )
            } else {
                "-".into()
            },
            s.cpu_us_per_turn(&["load"]),
        );
    }
    let added: Vec<f64> = (0..4).map(|i| pct[1][i] - pct[0][i]).collect();
    println!(
        "{:<8} {:>6} {:>7} {:>6} {:>+8.2} {:>+8.2} {:>+9.2} {:>+9.2} {:>+9.2} {:>+9.2}   (ms; alumia pN − direct pN)",
        "added",
        "",
        "",
        "",
        pct[1][4] - pct[0][4],
        pct[1][5] - pct[0][5],
        added[0],
        added[1],
        added[2],
        added[3]
    );
    for (name, s) in ["direct", "alumia"].iter().zip(paths) {
        for (e, k) in &s.errors {
            println!("  {name} error x{k}: {e}");
        }
        if s.wrong_text > 0 {
            println!(
                "  {name}: {} turn(s) streamed another text than expected",
                s.wrong_text
            );
        }
    }
    println!("persisted: {}/{n}", persisted.ok);
    for (problem, k) in &persisted.problems {
        println!("  not persisted x{k}: {problem}");
    }
    added[1]
}
