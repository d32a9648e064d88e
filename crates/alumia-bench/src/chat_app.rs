//! The chat server under test, assembled from the same parts as `alumia
//! serve` (crates/alumia/src/serve.rs): the store, the in-process limiter,
//! the system clock, identity, a model catalogue with one OpenAI-compatible
//! provider `fake` (model `fake/fake`, the default) next to `dev/echo`, the
//! runtime with its maintenance task, and `alumia_server::serve`. No Redis,
//! no signal handling; the api-key bucket is raised so the limiter decides
//! but never refuses.
//!
//! [`child_main`] runs it as a separate process (`alumia-bench chat-server`),
//! so its memory can be read from `/proc/<pid>/status` alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alumia_core::crypto::SecretKey;
use alumia_core::identity::{AuthSettings, Identity};
use alumia_core::keys::KeyEnv;
use alumia_core::limits::RateLimiter;
use alumia_core::{Clock, Store, SystemClock};
use alumia_models::CallPolicy;
use alumia_runtime::catalog::{ModelSpec, ProviderConfig, ProviderKind};
use alumia_runtime::{Catalog, Runtime, TurnLimits};
use alumia_server::limiter::MemoryLimiter;
use alumia_server::{AppState, ServerSettings};
use alumia_store::{ConnectOptions, DbUrl, Synchronous};
use anyhow::Context;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::servers::bench_limits;

/// The provider id and the model id the bench configures.
pub const PROVIDER: &str = "fake";
pub const MODEL: &str = "fake/fake";

#[derive(Clone, Debug)]
pub struct ChatServerOptions {
    /// `None`: a fresh SQLite file in a temporary folder.
    pub database_url: Option<String>,
    pub sqlite_synchronous: Synchronous,
    /// Base URL (with `/v1`) of the OpenAI-compatible upstream, if any.
    pub upstream: Option<String>,
    pub max_concurrent_turns: usize,
    /// Database pool size (`alumia serve` uses the default, 10).
    pub db_pool: u32,
}

pub fn parse_synchronous(s: &str) -> anyhow::Result<Synchronous> {
    match s {
        "full" => Ok(Synchronous::Full),
        "normal" => Ok(Synchronous::Normal),
        other => anyhow::bail!("--sqlite-synchronous {other:?} must be full or normal"),
    }
}

pub struct ChatServer {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub runtime: Arc<Runtime>,
    /// `sqlite` or `postgres`, and where.
    pub store_label: String,
    shutdown: CancellationToken,
    handle: JoinHandle<std::io::Result<()>>,
    temp_dir: Option<PathBuf>,
}

impl ChatServer {
    pub async fn start(options: &ChatServerOptions) -> anyhow::Result<ChatServer> {
        let (url, temp_dir) = match &options.database_url {
            Some(url) => (url.clone(), None),
            None => {
                let dir = std::env::temp_dir()
                    .join(format!("alumia-bench-{}", uuid::Uuid::now_v7().simple()));
                std::fs::create_dir_all(&dir).context("create the temp folder")?;
                (format!("sqlite://{}/alumia.db", dir.display()), Some(dir))
            }
        };
        let db_url = DbUrl::parse(&url).map_err(|e| anyhow::anyhow!("database URL: {e}"))?;
        let connect = ConnectOptions {
            sqlite_synchronous: options.sqlite_synchronous,
            max_connections: options.db_pool,
            ..ConnectOptions::default()
        };
        let store = alumia_store::connect(&db_url, &connect)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database {db_url}: {e}"))?;
        let store_label = match (&temp_dir, store.kind()) {
            (Some(_), kind) => format!(
                "{kind} temp file (WAL, synchronous={}, pool of {})",
                match options.sqlite_synchronous {
                    Synchronous::Full => "FULL",
                    Synchronous::Normal => "NORMAL",
                },
                connect.max_connections
            ),
            (None, kind) => format!("{kind} at {db_url} (pool of {})", connect.max_connections),
        };

        let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryLimiter::new(bench_limits()));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let identity = Arc::new(Identity::new(
            store.clone(),
            clock.clone(),
            SecretKey::generate(),
            KeyEnv::Test,
            AuthSettings::default(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind")?;
        let addr = listener.local_addr()?;
        let settings = ServerSettings::new(&format!("http://{addr}"), KeyEnv::Test);

        let providers = match &options.upstream {
            Some(base_url) => vec![ProviderConfig {
                id: PROVIDER.into(),
                kind: ProviderKind::OpenAi,
                base_url: base_url.clone(),
                api_key: None,
                models: Some(vec![ModelSpec::discovered("fake")]),
                policy: CallPolicy::default(),
            }],
            None => Vec::new(),
        };
        let default_model = options.upstream.as_ref().map(|_| MODEL.to_string());
        let catalog = Arc::new(Catalog::new(providers, default_model));
        let limits = TurnLimits {
            max_concurrent_turns: options.max_concurrent_turns,
            ..TurnLimits::default()
        };
        let runtime = Runtime::new(
            store.clone(),
            clock.clone(),
            catalog,
            identity.secret().clone(),
            limits,
            None,
        );
        runtime.spawn_maintenance();
        let state = AppState::with_runtime(
            store.clone(),
            identity,
            limiter,
            clock,
            settings,
            runtime.clone(),
        );
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(alumia_server::serve(listener, state, shutdown.clone()));
        Ok(ChatServer {
            addr,
            store,
            runtime,
            store_label,
            shutdown,
            handle,
            temp_dir,
        })
    }

    /// Stops accepting, lets turns end (up to 5 s), closes the store.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
        self.runtime.shutdown(Duration::from_secs(5)).await;
        self.store.close().await;
        if let Some(dir) = self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Creates the owner (first-run setup) and mints a key, as the existing
/// bench does; returns the key. The database must be empty.
pub async fn owner_key(addr: SocketAddr) -> anyhow::Result<String> {
    let mut browser = alumia_testkit::Browser::new(&format!("http://{addr}"));
    browser.setup("bench@example.com", "bench").await;
    let (key, _) = browser.mint_key("bench", None).await;
    Ok(key)
}

/// `alumia-bench chat-server`: the server above as its own process, for the
/// capacity run. Prints `{"addr": …, "pid": …}` on one stdout line when it
/// listens, and stops gracefully when its standard input closes.
#[derive(clap::Args, Debug)]
pub struct ChildArgs {
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
    #[arg(long)]
    upstream_url: Option<String>,
    #[arg(long)]
    max_concurrent_turns: usize,
    #[arg(long, default_value_t = 10)]
    db_pool: u32,
    /// Pin every thread of this process to this CPU.
    #[arg(long)]
    pin_cpu: Option<usize>,
    /// Warnings and errors of the server (tracing, level warn) go here.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

pub fn child_main(args: ChildArgs) -> anyhow::Result<()> {
    if let Some(cpu) = args.pin_cpu {
        // Threads inherit the mask of the thread that creates them.
        crate::sys::pin_current(cpu);
    }
    if let Some(path) = &args.log_file {
        let file = std::fs::File::create(path).context("create the log file")?;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
    // As `alumia serve`: a multi-thread runtime with the default worker count.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let options = ChatServerOptions {
            database_url: args.database_url,
            sqlite_synchronous: parse_synchronous(&args.sqlite_synchronous)?,
            upstream: args.upstream_url,
            max_concurrent_turns: args.max_concurrent_turns,
            db_pool: args.db_pool,
        };
        let server = ChatServer::start(&options).await?;
        println!(
            "{}",
            serde_json::json!({"addr": server.addr.to_string(), "pid": std::process::id(), "store": server.store_label})
        );
        use std::io::Write;
        std::io::stdout().flush()?;
        // Until the parent closes our stdin (or exits).
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
        server.stop().await;
        anyhow::Ok(())
    })
}
