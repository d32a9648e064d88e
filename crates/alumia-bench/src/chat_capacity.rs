//! `alumia-bench chat-capacity`: how many chat streams one server holds open
//! at once, and its memory per stream.
//!
//! Each step starts a fresh server as a child process (`alumia-bench
//! chat-server`, the parts `alumia serve` assembles, `max_concurrent_turns`
//! set far above the step), so `/proc/<pid>/status` VmRSS is the server's
//! alone and no step inherits the heap of the one before. After setup and a
//! few warm-up turns the baseline RSS is read; then K `POST /api/v1/chat`
//! streams are opened (a new session each, a bounded number opening at a
//! time), each counted as held once its first `text-delta` arrived. They are
//! held for a while, RSS and the server's CPU are read, and then they are
//! ended cleanly: the fake upstream releases its streams (finish, usage,
//! `[DONE]`), or with `--upstream echo` each session gets `POST
//! /api/v1/chat/:id/stop`. The client (and the fake upstream) run in this
//! process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

use crate::chat_app;
use crate::chat_client::{self, TurnRequest};
use crate::fake_upstream::{FakeUpstream, Pace};
use crate::load::percentile_ms;
use crate::sys;

#[derive(clap::Args, Debug)]
pub struct CapacityArgs {
    /// Streams to hold at each step, comma-separated; the ramp stops early
    /// at errors, the time cap, the memory cap or the file-descriptor limit.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "250,500,1000,2000,4000,8000"
    )]
    streams: Vec<usize>,
    /// What keeps a stream open: `fake` (the provider `fake`, a slow
    /// OpenAI-compatible upstream on loopback: one upstream connection per
    /// stream, as in production) or `echo` (`dev/echo` with `/delay`).
    #[arg(long, default_value = "fake", value_parser = ["fake", "echo"])]
    upstream: String,
    /// Milliseconds between two tokens of a held stream (echo: at most 5000).
    #[arg(long, default_value_t = 5000)]
    token_interval_ms: u64,
    /// Seconds every stream of a step is held before RSS and CPU are read.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Streams being opened at once (each until its first text-delta).
    #[arg(long, default_value_t = 32)]
    open_concurrency: usize,
    /// Seconds a step may spend opening its streams; those not started by
    /// then count as failed (and end the ramp).
    #[arg(long, default_value_t = 45.0)]
    open_seconds: f64,
    /// No further step once this many seconds have passed.
    #[arg(long, default_value_t = 150.0)]
    max_seconds: f64,
    /// No further step once the server's RSS passed this many MiB.
    #[arg(long, default_value_t = 4096)]
    max_rss_mib: u64,
    /// No further step once more than this share of a step's streams failed.
    #[arg(long, default_value_t = 0.01)]
    max_error_rate: f64,
    /// `postgres://…` of an empty database (each step needs its own: the
    /// first-run setup must succeed); default a SQLite temp file per step.
    #[arg(long)]
    database_url: Option<String>,
    /// SQLite `synchronous` (full, as `alumia serve` defaults, or normal).
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
    /// Database pool size (`alumia serve`: 10); a diagnostic knob.
    #[arg(long, default_value_t = 10)]
    db_pool: u32,
    /// Do not pin the server (CPU 0) and the client (CPU 1).
    #[arg(long)]
    no_pin: bool,
}

/// What one step measured.
#[derive(Default)]
struct Step {
    target: usize,
    held: usize,
    open_failed: BTreeMap<String, usize>,
    /// Never started: the opening cap passed first.
    not_started: usize,
    lost_while_held: usize,
    open_secs: f64,
    /// Send → first text-delta of each stream while the step was opening.
    open_ttft_ns: Vec<u64>,
    rss_base_kib: u64,
    rss_held_kib: u64,
    cpu_share: f64,
    threads: u64,
    fds: u64,
    ended_ok: usize,
    end_failed: BTreeMap<String, usize>,
    end_secs: f64,
    warnings: BTreeMap<String, usize>,
}

impl Step {
    fn failed(&self) -> usize {
        self.open_failed.values().sum::<usize>() + self.lost_while_held
    }
    fn per_stream_kib(&self) -> f64 {
        (self.rss_held_kib as f64 - self.rss_base_kib as f64) / self.held.max(1) as f64
    }
}

/// The server as a child process.
struct ChildServer {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    log: PathBuf,
}

async fn spawn_server(
    args: &CapacityArgs,
    upstream: Option<String>,
    max_turns: usize,
    pin: bool,
    step: usize,
) -> anyhow::Result<ChildServer> {
    let exe = std::env::current_exe().context("current_exe")?;
    let log = std::env::temp_dir().join(format!(
        "alumia-bench-capacity-{}-{step}.log",
        std::process::id()
    ));
    let mut cmd = Command::new(exe);
    cmd.arg("chat-server")
        .arg("--max-concurrent-turns")
        .arg(max_turns.to_string())
        .arg("--sqlite-synchronous")
        .arg(&args.sqlite_synchronous)
        .arg("--db-pool")
        .arg(args.db_pool.to_string())
        .arg("--log-file")
        .arg(&log);
    if let Some(url) = &upstream {
        cmd.arg("--upstream-url").arg(url);
    }
    if let Some(url) = &args.database_url {
        cmd.arg("--database-url").arg(url);
    }
    if pin {
        cmd.arg("--pin-cpu").arg("0");
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawn the server")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the server did not start within 30 s")??
        .context("the server exited before listening")?;
    let hello: Value = serde_json::from_str(&line).context("the server's first line")?;
    let addr: SocketAddr = hello["addr"].as_str().unwrap_or_default().parse()?;
    let pid = hello["pid"].as_u64().unwrap_or_default() as u32;
    Ok(ChildServer {
        child,
        pid,
        addr,
        log,
    })
}

impl ChildServer {
    /// Closes its stdin (a graceful stop), then waits; kills after 30 s.
    async fn stop(mut self) -> BTreeMap<String, usize> {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let warnings = warnings(&self.log);
        let _ = std::fs::remove_file(&self.log);
        warnings
    }
}

/// Warning and error lines of the server log, by message (ids and times cut).
fn warnings(path: &PathBuf) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    for line in text.lines() {
        // `2025-… WARN target: message key=value…`: keep level and message.
        let Some(level_at) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) else {
            continue;
        };
        let rest = &line[level_at + 1..];
        let message: String = rest
            .split_whitespace()
            .filter(|w| !w.contains('='))
            .collect::<Vec<_>>()
            .join(" ");
        *out.entry(message.chars().take(100).collect()).or_default() += 1;
    }
    out
}

/// A `/proc/<pid>/status` field in kB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l[field.len()..]
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
            })
        })
        .unwrap_or(0)
}

fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// The step's client: opens `k` streams, holds them, ends them.
async fn run_step(
    args: &CapacityArgs,
    k: usize,
    pin: bool,
    index: usize,
    clk_tck: f64,
) -> anyhow::Result<Step> {
    let mut step = Step {
        target: k,
        ..Step::default()
    };
    let interval = Duration::from_millis(args.token_interval_ms);
    let fake = args.upstream == "fake";
    let upstream = if fake {
        Some(
            FakeUpstream::start(Pace::Hold {
                ttft: Duration::from_millis(50),
                interval,
            })
            .await?,
        )
    } else {
        None
    };
    let server = spawn_server(
        args,
        upstream.as_ref().map(|u| u.base_url()),
        k * 2 + 64,
        pin,
        index,
    )
    .await?;
    let key = chat_app::owner_key(server.addr).await?;

    // Warm-up: a few quick dev/echo turns (pool connections, Ala, caches).
    let warm = Arc::new(TurnRequest::alumia(
        server.addr,
        &key,
        "dev/echo",
        "warm up the server",
    ));
    let mut sender = chat_client::connect(server.addr).await?;
    for _ in 0..16 {
        chat_client::turn(&mut sender, &warm)
            .await
            .map_err(|e| anyhow::anyhow!("warm-up turn: {e}"))?;
    }
    drop(sender);
    tokio::time::sleep(Duration::from_millis(500)).await;
    step.rss_base_kib = status_kib(server.pid, "VmRSS:");

    let prompt = if fake {
        "Hold this stream open.".to_string()
    } else {
        // One word every `interval`: long enough to outlast the step.
        let words = ((args.hold + 120.0) * 1000.0 / args.token_interval_ms.max(1) as f64).ceil();
        format!(
            "/delay {}\n{}",
            args.token_interval_ms,
            vec!["hold"; words as usize].join(" ")
        )
    };
    let model = if fake { chat_app::MODEL } else { "dev/echo" };
    let req = Arc::new(TurnRequest::alumia(server.addr, &key, model, &prompt));

    // Open: each stream task holds a permit until its first text-delta.
    let permits = Arc::new(Semaphore::new(args.open_concurrency.max(1)));
    let opened = Arc::new(AtomicUsize::new(0));
    // Held streams that ended (cleanly or not) before being released.
    let lost = Arc::new(AtomicUsize::new(0));
    let released = Arc::new(AtomicBool::new(false));
    let (first_tx, mut first_rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<(u64, String), String>>();
    let started = Instant::now();
    let open_deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.open_seconds);
    let mut tasks = Vec::with_capacity(k);
    for _ in 0..k {
        // No new stream once the opening cap passed.
        let permit =
            match tokio::time::timeout_at(open_deadline, permits.clone().acquire_owned()).await {
                Ok(permit) => permit?,
                Err(_) => break,
            };
        let req = req.clone();
        let first_tx = first_tx.clone();
        let opened = opened.clone();
        let (lost, released) = (lost.clone(), released.clone());
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let result = async {
                let mut sender = chat_client::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let mut stream = chat_client::open(&mut sender, &req).await?;
                stream.until_first_token().await?;
                Ok::<_, String>((sender, stream))
            }
            .await;
            drop(permit);
            let (_sender, mut stream) = match result {
                Ok(s) => s,
                Err(e) => {
                    let _ = first_tx.send(Err(e.clone()));
                    return Err((false, e));
                }
            };
            let ttft = stream
                .first_token
                .map(|t| t.duration_since(stream.sent).as_nanos() as u64)
                .unwrap_or(0);
            opened.fetch_add(1, Ordering::SeqCst);
            let _ = first_tx.send(Ok((ttft, stream.session_id.clone().unwrap_or_default())));
            let end = stream.until_done().await;
            opened.fetch_sub(1, Ordering::SeqCst);
            if !released.load(Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
            }
            match end {
                Ok(_) => Ok(()),
                Err(e) => Err((true, e)),
            }
        }));
    }
    drop(first_tx);
    let mut sessions = Vec::with_capacity(k);
    let spawned = tasks.len();
    step.not_started = k - spawned;
    // Each task reports once, opened or failed (and keeps its sender while it holds).
    for _ in 0..spawned {
        let Some(first) = first_rx.recv().await else {
            break;
        };
        match first {
            Ok((ttft, session)) => {
                step.open_ttft_ns.push(ttft);
                sessions.push(session);
            }
            Err(e) => {
                *step
                    .open_failed
                    .entry(e.chars().take(80).collect())
                    .or_default() += 1;
            }
        }
    }
    step.open_secs = started.elapsed().as_secs_f64();

    // Hold: sample RSS, read CPU over the hold.
    let cpu_before = sys::process_cpu_ticks(server.pid);
    let hold_started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let cpu_after = sys::process_cpu_ticks(server.pid);
    step.cpu_share = (cpu_after.saturating_sub(cpu_before)) as f64
        / clk_tck
        / hold_started.elapsed().as_secs_f64();
    step.rss_held_kib = status_kib(server.pid, "VmRSS:");
    step.threads = status_kib(server.pid, "Threads:");
    step.fds = fd_count(server.pid);
    step.held = opened.load(Ordering::SeqCst);
    step.lost_while_held = lost.load(Ordering::SeqCst);

    // End them cleanly.
    released.store(true, Ordering::SeqCst);
    let ending = Instant::now();
    match &upstream {
        Some(u) => u.release(),
        None => {
            let http = reqwest::Client::new();
            let base = format!("http://{}", server.addr);
            let stops: Vec<Result<(), String>> = futures::stream::iter(sessions)
                .map(|s| {
                    let http = http.clone();
                    let url = format!("{base}/api/v1/chat/{s}/stop");
                    let key = key.clone();
                    async move {
                        let res = http
                            .post(&url)
                            .bearer_auth(&key)
                            .send()
                            .await
                            .map_err(|e| format!("stop: {e}"))?;
                        match res.status().as_u16() {
                            200 => Ok(()),
                            other => Err(format!("stop: HTTP {other}")),
                        }
                    }
                })
                .buffer_unordered(args.open_concurrency.max(1))
                .collect()
                .await;
            for e in stops.into_iter().filter_map(Result::err) {
                *step.end_failed.entry(e).or_default() += 1;
            }
        }
    }
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(60), task).await {
            Ok(Ok(Ok(()))) => step.ended_ok += 1,
            Ok(Ok(Err((true, e)))) => {
                *step
                    .end_failed
                    .entry(e.chars().take(80).collect())
                    .or_default() += 1
            }
            Ok(Ok(Err((false, _)))) => {}
            Ok(Err(e)) => *step.end_failed.entry(format!("task: {e}")).or_default() += 1,
            Err(_) => {
                *step
                    .end_failed
                    .entry("not ended within 60 s".into())
                    .or_default() += 1
            }
        }
    }
    step.end_secs = ending.elapsed().as_secs_f64();
    step.warnings = server.stop().await;
    if let Some(u) = upstream {
        u.stop();
    }
    Ok(step)
}

pub fn run(args: CapacityArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.streams.is_empty() && args.streams.iter().all(|&k| k > 0),
        "--streams must be positive"
    );
    chat_app::parse_synchronous(&args.sqlite_synchronous)?;
    if args.upstream == "echo" {
        anyhow::ensure!(
            args.token_interval_ms <= alumia_models::dev_echo::MAX_DELAY_MS,
            "dev/echo honours /delay up to {} ms",
            alumia_models::dev_echo::MAX_DELAY_MS
        );
    }
    let cpus = sys::nproc();
    let pin = !args.no_pin && cpus >= 2;
    if pin {
        sys::pin_current(1);
    }
    let (nofile_before, nofile) = sys::raise_nofile();
    let clk_tck = sys::clk_tck();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(crate::LOAD_THREAD)
        .enable_all()
        .build()?;

    let command: Vec<String> = std::env::args().collect();
    println!(
        "alumia-bench chat-capacity: concurrent open POST /api/v1/chat streams one server holds, and its memory per stream"
    );
    println!("commit   {}", sys::commit());
    println!("command  {}", command.join(" "));
    println!(
        "nproc    {cpus}; load average before the run {}; memory {}",
        sys::loadavg(),
        sys::mem_total()
    );
    println!(
        "build    {}",
        if cfg!(debug_assertions) {
            "DEBUG (numbers meaningless)"
        } else {
            "release"
        }
    );
    println!(
        "server   a child process per step (`alumia-bench chat-server`: the parts `alumia serve` assembles, default tokio \
         runtime, tracing at warn to a file), store {}, max_concurrent_turns 2 x streams + 64",
        match &args.database_url {
            Some(_) => format!("the given --database-url (pool of {})", args.db_pool),
            None => format!(
                "a fresh SQLite temp file (WAL, synchronous={}, pool of {})",
                args.sqlite_synchronous.to_uppercase(),
                args.db_pool
            ),
        }
    );
    println!(
        "stream   POST /api/v1/chat with an API key, a new session each; held once its first text-delta arrived; {}",
        if args.upstream == "fake" {
            format!(
                "model fake/fake: a loopback OpenAI-compatible upstream sending a token every {} ms until released \
                 (one upstream connection per stream)",
                args.token_interval_ms
            )
        } else {
            format!(
                "model dev/echo with /delay {}: a word every {} ms, no upstream connection",
                args.token_interval_ms, args.token_interval_ms
            )
        }
    );
    println!(
        "method   per step: fresh server, setup + key, 16 warm-up dev/echo turns, baseline VmRSS; open K streams ({} opening at a time, \
         none started after {} s); hold {} s; read VmRSS, threads, fds of /proc/<server pid> and its CPU share over the hold; end every stream \
         ({}); stop the server",
        args.open_concurrency,
        args.open_seconds,
        args.hold,
        if args.upstream == "fake" {
            "the upstream finishes them: finish, usage, [DONE]"
        } else {
            "POST /api/v1/chat/:id/stop each"
        }
    );
    println!(
        "memory   server RSS only (the client and the fake upstream are this process); per stream = (held RSS − baseline) / held"
    );
    println!(
        "limits   RLIMIT_NOFILE {} (was {}; raised to the hard limit when it was lower), for each process; \
         a stream costs the server 1 fd ({}), and this process as many",
        nofile,
        nofile_before,
        if args.upstream == "fake" {
            "+1 for its upstream connection"
        } else {
            "no upstream"
        }
    );
    println!(
        "pinning  {}",
        if pin {
            "server process on CPU 0, client (+ fake upstream) on CPU 1"
        } else {
            "none"
        }
    );

    println!();
    println!(
        "{:>7} {:>6} {:>6} {:>8} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>7} {:>6} {:>7} {:>6}",
        "streams",
        "held",
        "failed",
        "unopened",
        "open s",
        "opens/s",
        "TTFT p50",
        "TTFT p99",
        "RSS base",
        "RSS held",
        "Δ RSS",
        "KiB/strm",
        "srvCPU",
        "threads",
        "fds",
        "ended",
        "end s"
    );
    let run_started = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut stop_reason = "all steps run".to_string();
    for (i, &k) in args.streams.iter().enumerate() {
        let fds_needed = k as u64 * if args.upstream == "fake" { 2 } else { 1 } + 256;
        if fds_needed > nofile {
            stop_reason = format!(
                "stopped before {k} streams: ~{fds_needed} file descriptors needed per process, RLIMIT_NOFILE is {nofile}"
            );
            break;
        }
        if i > 0 && run_started.elapsed().as_secs_f64() > args.max_seconds {
            stop_reason = format!(
                "stopped before {k} streams: the {} s time cap passed",
                args.max_seconds
            );
            break;
        }
        let step = rt.block_on(run_step(&args, k, pin, i, clk_tck))?;
        print_row(&step);
        let failed = step.failed();
        let not_started = step.not_started;
        let rss_mib = step.rss_held_kib / 1024;
        steps.push(step);
        if failed as f64 > args.max_error_rate * k as f64 {
            stop_reason = format!(
                "stopped after {k} streams: {failed} failed (> {:.1}%)",
                args.max_error_rate * 100.0
            );
            break;
        }
        if not_started > 0 {
            stop_reason = format!(
                "stopped after {k} streams: {not_started} not opened within the {} s opening cap \
                 (opening slows as held streams load the server; --open-seconds raises the cap)",
                args.open_seconds
            );
            break;
        }
        if rss_mib > args.max_rss_mib {
            stop_reason = format!(
                "stopped after {k} streams: server RSS {rss_mib} MiB > {} MiB",
                args.max_rss_mib
            );
            break;
        }
    }
    println!();
    for s in &steps {
        for (e, n) in &s.open_failed {
            println!("  {} streams: open failed x{n}: {e}", s.target);
        }
        if s.lost_while_held > 0 {
            println!(
                "  {} streams: {} ended while held",
                s.target, s.lost_while_held
            );
        }
        for (e, n) in &s.end_failed {
            println!("  {} streams: ending failed x{n}: {e}", s.target);
        }
        for (w, n) in &s.warnings {
            println!("  {} streams: server log x{n}: {w}", s.target);
        }
    }
    println!("{stop_reason}");
    if let Some(best) = steps
        .iter()
        .filter(|s| s.failed() == 0)
        .max_by_key(|s| s.held)
    {
        println!(
            "most held without a failure: {} streams; server RSS {:.1} MiB (baseline {:.1} MiB), {:.1} KiB per stream",
            best.held,
            best.rss_held_kib as f64 / 1024.0,
            best.rss_base_kib as f64 / 1024.0,
            best.per_stream_kib()
        );
    }
    println!(
        "TTFT:     send → first text-delta of the streams while the step was opening (a burst of {} at a time).",
        args.open_concurrency
    );
    println!(
        "srvCPU:   the server process's CPU (utime+stime) over the hold, as a share of one CPU."
    );
    println!(
        "failed:   refused or broken while opening, or ended while held; unopened: not started within the opening cap (not a failure)."
    );
    println!(
        "ended:    streams that reached [DONE] after being ended; end s: time to end them all."
    );
    println!(
        "client peak RSS (VmHWM of this process: client connections + fake upstream): {}",
        sys::peak_rss()
    );
    Ok(())
}

fn print_row(s: &Step) {
    let mut ttft = s.open_ttft_ns.clone();
    ttft.sort_unstable();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{:>7} {:>6} {:>6} {:>8} {:>7.1} {:>8.0} {:>9.1} {:>9.1} {:>8.1}M {:>8.1}M {:>8.1}M {:>8.1} {:>5.0}% {:>7} {:>6} {:>7} {:>6.1}",
        s.target,
        s.held,
        s.failed(),
        s.not_started,
        s.open_secs,
        s.open_ttft_ns.len() as f64 / s.open_secs.max(1e-9),
        percentile_ms(&ttft, 50.0),
        percentile_ms(&ttft, 99.0),
        mib(s.rss_base_kib),
        mib(s.rss_held_kib),
        mib(s.rss_held_kib.saturating_sub(s.rss_base_kib)),
        s.per_stream_kib(),
        s.cpu_share * 100.0,
        s.threads,
        s.fds,
        s.ended_ok,
        s.end_secs,
    );
}
