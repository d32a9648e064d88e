//! HTTP side-by-side benchmark (docs: shared/guide/benchmarks.md §2).
//!
//! One process, one run: the real app serves an authenticated
//! `GET /api/v1/models` (API-key verification against SQLite, a rate-limit
//! decision by the in-process governor limiter, org scope), a plain axum
//! router serves `GET /bench/bare` with the same JSON bytes, and a closed-loop
//! load generator drives both with the same number of keep-alive connections
//! in alternating rounds (A B A B …). It prints rps, p50, p99 and errors per
//! route and the ratios api/bare, then the peak RSS.
//!
//! The servers (and SQLite's worker threads) run on one tokio worker pinned to
//! CPU 0; the load generator on another runtime pinned to CPU 1.
//!
//! `--variants` adds rows that remove one piece of the authenticated path:
//! `/healthz` through the full app (router + middleware, no auth), and the app
//! with an allow-all limiter.
//!
//! By default no tracing subscriber is installed, so the access log costs
//! (next to) nothing; `--log text|json` installs the one `alumia serve` uses
//! (level `info`) writing to a sink: formatting cost, without the write(2) a
//! real deployment adds per line.
//!
//! Chat modes (subcommands; without one the HTTP comparison above runs):
//! `chat-latency` (the time `POST /api/v1/chat` adds to a streamed turn from
//! a fake upstream, and whether every message is persisted) and
//! `chat-capacity` (concurrent open chat streams one server holds, and its
//! memory per stream). See `chat_latency.rs` and `chat_capacity.rs`.

mod chat_app;
mod chat_capacity;
mod chat_client;
mod chat_latency;
mod fake_upstream;
mod load;
mod servers;
mod sys;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::{Parser, Subcommand};

use crate::load::{Round, Target, percentile_ms};
use crate::servers::Servers;

/// Thread-name prefixes, so CPU time can be told apart per group.
pub const SERVER_THREAD: &str = "bench-server";
pub const LOAD_THREAD: &str = "bench-load";

#[derive(Parser, Debug)]
#[command(
    about = "Authenticated GET /api/v1/models vs a bare axum handler, side by side; chat modes as subcommands",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    http: Args,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Added latency of POST /api/v1/chat over a fake upstream called directly.
    #[command(name = "chat-latency")]
    Latency(chat_latency::LatencyArgs),
    /// Concurrent open chat streams one server holds, and its memory per stream.
    #[command(name = "chat-capacity")]
    Capacity(chat_capacity::CapacityArgs),
    /// The chat server as a child process (used by chat-capacity).
    #[command(name = "chat-server", hide = true)]
    Server(chat_app::ChildArgs),
}

/// The HTTP side-by-side run (no subcommand).
#[derive(clap::Args, Debug)]
struct Args {
    /// Seconds per route per round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Warm-up seconds per route, before the rounds of each connection count.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Rounds; each round runs every route once, in the same order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections, comma-separated for several runs.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    connections: Vec<usize>,
    /// Add the diagnostic rows (healthz, allow-all limiter).
    #[arg(long)]
    variants: bool,
    /// Run only these routes (bare, api, healthz, no-limiter), e.g.
    /// `--only api` under a profiler. Ratios need `bare` among them.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Do not pin the servers and the load generator to different CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Install the `alumia serve` log subscriber (`text` or `json`, level
    /// info), writing to a sink, so the access log is formatted per request.
    #[arg(long, value_parser = ["text", "json"])]
    log: Option<String>,
}

/// Everything measured for one route at one connection count.
#[derive(Default)]
struct RouteStats {
    rounds: Vec<Round>,
    cpu: BTreeMap<&'static str, Duration>,
}

impl RouteStats {
    fn requests(&self) -> usize {
        self.rounds.iter().map(|r| r.latencies_ns.len()).sum()
    }
    fn elapsed(&self) -> Duration {
        self.rounds.iter().map(|r| r.elapsed).sum()
    }
    fn rps(&self) -> f64 {
        self.requests() as f64 / self.elapsed().as_secs_f64().max(1e-9)
    }
    fn errors(&self) -> u64 {
        self.rounds.iter().map(|r| r.errors).sum()
    }
    fn sorted(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .rounds
            .iter()
            .flat_map(|r| r.latencies_ns.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }
    fn cpu(&self, group: &str) -> Duration {
        self.cpu.get(group).copied().unwrap_or_default()
    }
    /// CPU time of everything but the load generator, per request.
    fn server_us_per_req(&self, group: Option<&str>) -> f64 {
        let total = match group {
            Some(g) => self.cpu(g),
            None => self.cpu("server") + self.cpu("sqlite") + self.cpu("other"),
        };
        total.as_secs_f64() * 1e6 / (self.requests().max(1) as f64)
    }
    fn load_cpu_share(&self) -> f64 {
        self.cpu("load").as_secs_f64() / self.elapsed().as_secs_f64().max(1e-9)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.mode {
        None => http_main(cli.http),
        Some(Mode::Latency(args)) => chat_latency::run(args),
        Some(Mode::Capacity(args)) => chat_capacity::run(args),
        Some(Mode::Server(args)) => chat_app::child_main(args),
    }
}

fn http_main(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rounds > 0 && args.seconds > 0.0,
        "--rounds and --seconds must be positive"
    );
    anyhow::ensure!(
        args.connections.iter().all(|&c| c > 0),
        "--connections must be positive"
    );
    if let Some(format) = &args.log {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::sink);
        if format == "json" {
            builder.json().init();
        } else {
            builder.init();
        }
    }
    let cpus = sys::nproc();
    let pin = !args.no_pin && cpus >= 2;
    if pin {
        // Threads inherit their creator's CPU mask: SQLite worker threads,
        // spawned from here or from the server runtime, stay on CPU 0 too.
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

    let servers = server_rt.block_on(Servers::start(args.variants))?;
    let mut targets = targets(&servers)?;
    if !args.only.is_empty() {
        targets.retain(|t| args.only.iter().any(|o| o == short(&t.name)));
        anyhow::ensure!(!targets.is_empty(), "--only matched no route");
    }

    let command: Vec<String> = std::env::args().collect();
    println!(
        "alumia-bench: authenticated GET /api/v1/models vs a bare axum handler (same process, same load)"
    );
    println!("commit   {}", sys::commit());
    println!("command  {}", command.join(" "));
    println!("nproc    {cpus}");
    println!(
        "build    {}; {}",
        if cfg!(debug_assertions) {
            "DEBUG (numbers meaningless)"
        } else {
            "release"
        },
        match &args.log {
            None => "no tracing subscriber (request logs off)".to_string(),
            Some(format) => format!("{format} log subscriber at info, writing to a sink"),
        }
    );
    println!(
        "store    SQLite temp file (WAL, synchronous=FULL, pool of 10); limiter: in-process governor, api-key bucket raised to never refuse"
    );
    println!(
        "body     {} bytes, identical on every route: {}",
        servers.models_body.len(),
        String::from_utf8_lossy(&servers.models_body)
    );
    println!(
        "load     closed loop, HTTP/1.1 keep-alive, one hyper connection per task; {} round(s) x {} s per route, \
         routes alternating within each round, after {} s warm-up per route",
        args.rounds, args.seconds, args.warmup
    );
    println!("pinning  {}", pinning_summary(pin));
    println!("network  loopback only: no NIC, no TLS; not WAN latency");

    let seconds = Duration::from_secs_f64(args.seconds);
    let warmup = Duration::from_secs_f64(args.warmup);
    for &connections in &args.connections {
        let rounds = args.rounds;
        // Spawned, so the measuring loop itself runs on the pinned load worker.
        let stats = load_rt.block_on(load_rt.spawn(measure(
            targets.clone(),
            connections,
            rounds,
            seconds,
            warmup,
        )))??;
        report(&targets, connections, &stats);
    }

    println!();
    println!(
        "srv µs/rq: CPU time of every thread but the load generator's (/proc/self/task/*/schedstat), per request,"
    );
    println!(
        "           split runtime (servers' tokio worker) / sqlite (sqlx worker threads) / other."
    );
    println!(
        "load:      load-generator CPU as a share of wall time; near 100% the client, not the server, set the pace."
    );
    println!(
        "peak RSS (VmHWM, whole process: servers + SQLite + load generator): {}",
        sys::peak_rss()
    );
    server_rt.block_on(servers.stop());
    Ok(())
}

fn targets(servers: &Servers) -> anyhow::Result<Vec<Arc<Target>>> {
    let bearer = HeaderValue::from_str(&format!("Bearer {}", servers.key))?;
    let len = Some(servers.models_body.len());
    let mut targets = vec![
        Target {
            name: "bench/bare".into(),
            addr: servers.bare,
            path: "/bench/bare".into(),
            authorization: None,
            body_len: len,
        },
        Target {
            name: "api/v1/models".into(),
            addr: servers.app.addr,
            path: "/api/v1/models".into(),
            authorization: Some(bearer.clone()),
            body_len: len,
        },
    ];
    if let Some(no_limiter) = servers.no_limiter {
        targets.push(Target {
            name: "healthz (app, no auth)".into(),
            addr: servers.app.addr,
            path: "/healthz".into(),
            authorization: None,
            body_len: None,
        });
        targets.push(Target {
            name: "models, allow-all limiter".into(),
            addr: no_limiter,
            path: "/api/v1/models".into(),
            authorization: Some(bearer),
            body_len: len,
        });
    }
    Ok(targets.into_iter().map(Arc::new).collect())
}

async fn measure(
    targets: Vec<Arc<Target>>,
    connections: usize,
    rounds: usize,
    seconds: Duration,
    warmup: Duration,
) -> anyhow::Result<Vec<RouteStats>> {
    if !warmup.is_zero() {
        for target in &targets {
            load::run(target.clone(), connections, warmup).await?;
        }
    }
    let mut stats: Vec<RouteStats> = targets.iter().map(|_| RouteStats::default()).collect();
    for _ in 0..rounds {
        for (target, stat) in targets.iter().zip(stats.iter_mut()) {
            let before = sys::cpu_by_group();
            let round = load::run(target.clone(), connections, seconds).await?;
            let spent = sys::cpu_delta(&before, &sys::cpu_by_group());
            for (group, d) in spent {
                *stat.cpu.entry(group).or_default() += d;
            }
            stat.rounds.push(round);
        }
    }
    Ok(stats)
}

fn pinning_summary(pin: bool) -> String {
    let affinity = sys::affinity_by_group();
    let groups: Vec<String> = affinity
        .iter()
        .map(|(g, cpus)| format!("{g}={}", cpus.iter().cloned().collect::<Vec<_>>().join("|")))
        .collect();
    if pin {
        format!(
            "servers (1 tokio worker) + SQLite workers on CPU 0, load generator (1 tokio worker) on CPU 1 [{}]",
            groups.join(" ")
        )
    } else {
        format!("none [{}]", groups.join(" "))
    }
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn report(targets: &[Arc<Target>], connections: usize, stats: &[RouteStats]) {
    println!();
    println!("== {connections} connection(s) ==");
    println!(
        "{:<27} {:>9} {:>8} {:>8} {:>8} {:>6}  {:<26} {:>9} {:>22} {:>5}",
        "route",
        "requests",
        "rps",
        "p50 ms",
        "p99 ms",
        "errors",
        "rps per round",
        "srv µs/rq",
        "(runtime/sqlite/other)",
        "load"
    );
    let mut p = Vec::new();
    for (target, s) in targets.iter().zip(stats) {
        let sorted = s.sorted();
        let (p50, p99) = (percentile_ms(&sorted, 50.0), percentile_ms(&sorted, 99.0));
        p.push((p50, p99));
        let per_round: Vec<String> = s.rounds.iter().map(|r| thousands(r.rps())).collect();
        println!(
            "{:<27} {:>9} {:>8} {:>8.3} {:>8.3} {:>6}  {:<26} {:>9.1} {:>22} {:>4.0}%",
            target.name,
            thousands(s.requests() as f64),
            thousands(s.rps()),
            p50,
            p99,
            s.errors(),
            per_round.join(" "),
            s.server_us_per_req(None),
            format!(
                "{:.1}/{:.1}/{:.1}",
                s.server_us_per_req(Some("server")),
                s.server_us_per_req(Some("sqlite")),
                s.server_us_per_req(Some("other"))
            ),
            s.load_cpu_share() * 100.0
        );
    }
    if targets[0].name != "bench/bare" {
        return;
    }
    let bare = &stats[0];
    for (i, (target, s)) in targets.iter().zip(stats).enumerate().skip(1) {
        let paired: Vec<String> = s
            .rounds
            .iter()
            .zip(&bare.rounds)
            .map(|(a, b)| format!("{:.2}", a.rps() / b.rps().max(1e-9)))
            .collect();
        println!(
            "{:<27} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>6}  {:<26} {:>9.2}",
            format!("ratio {}/bare", short(&target.name)),
            "",
            s.rps() / bare.rps().max(1e-9),
            p[i].0 / p[0].0,
            p[i].1 / p[0].1,
            "",
            paired.join(" "),
            s.server_us_per_req(None) / bare.server_us_per_req(None).max(1e-9),
        );
    }
    if let Some(api) = stats.get(1)
        && targets[1].name == "api/v1/models"
    {
        let ratio = api.rps() / bare.rps().max(1e-9);
        let p99 = p[1].1;
        println!(
            "goal at 64 connections (api rps >= 0.70 x bare, api p99 < 2 ms); here at {connections}: rps ratio {:.2} {}, p99 {:.3} ms {}",
            ratio,
            if ratio >= 0.70 { "MET" } else { "NOT MET" },
            p99,
            if p99 < 2.0 { "MET" } else { "NOT MET" },
        );
    }
}

fn short(name: &str) -> &str {
    match name {
        "bench/bare" => "bare",
        "api/v1/models" => "api",
        "healthz (app, no auth)" => "healthz",
        "models, allow-all limiter" => "no-limiter",
        other => other,
    }
}
