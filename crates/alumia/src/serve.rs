//! `alumia serve`: wire the store, limiter and identity service, listen, and
//! shut down gracefully on SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use alumia_core::identity::Identity;
use alumia_core::limits::RateLimiter;
use alumia_core::{Clock, SystemClock};
use alumia_runtime::fanout::RedisFanout;
use alumia_runtime::{Catalog, Runtime};
use alumia_server::fanout::{RedisKeyBus, spawn_key_invalidation_listener};
use alumia_server::limiter::{MemoryLimiter, RedisLimiter};
use alumia_server::{AppState, ServerSettings};
use alumia_store::ConnectOptions;
use tokio_util::sync::CancellationToken;

use crate::config::{CommonArgs, Config};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Socket address to listen on.
    #[arg(long, env = "ALUMIA_LISTEN")]
    listen: Option<String>,
    /// Redis for shared rate limits across replicas.
    #[arg(long, env = "ALUMIA_REDIS_URL")]
    redis_url: Option<String>,
    /// `api`, `worker` or `all` (there are no background workers yet).
    #[arg(long, env = "ALUMIA_ROLE", default_value = "all", value_parser = ["api", "worker", "all"])]
    role: String,
    /// Skip start-up migrations.
    #[arg(long)]
    no_migrate: bool,
    #[command(flatten)]
    common: CommonArgs,
}

pub fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn run(args: ServeArgs) -> ExitCode {
    let config = match Config::load(&args.common, args.listen.clone(), args.redis_url.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alumia serve: invalid configuration: {}", e.0);
            return ExitCode::from(2);
        }
    };
    // A malformed ALUMIA_SECRET_KEY is a configuration error too (exit 2).
    let secret = match config.secret_key() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("alumia serve: invalid configuration: {}", e.0);
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    match serve(config, secret, args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alumia serve: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(
    config: Config,
    (secret, secret_source): (alumia_core::crypto::SecretKey, String),
    args: ServeArgs,
) -> anyhow::Result<()> {
    let store = alumia_store::connect(
        &config.database_url,
        &ConnectOptions {
            migrate: !args.no_migrate,
            sqlite_synchronous: config.sqlite_synchronous,
            ..ConnectOptions::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", config.database_url))?;

    let limiter: Arc<dyn RateLimiter> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisLimiter::new(url, &config.redis_prefix, config.limits.clone())
                .map_err(|e| anyhow::anyhow!("bad Redis URL: {e}"))?,
        ),
        None => {
            let memory = Arc::new(MemoryLimiter::new(config.limits.clone()));
            // Keyed buckets stay bounded: forget the ones that are full again.
            let sweeper = memory.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    sweeper.retain_recent();
                }
            });
            memory
        }
    };
    if config.redis_url.is_none() && store.kind() == "postgres" {
        tracing::warn!("PostgreSQL without Redis: rate limits are per replica");
    }

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let identity = Arc::new(Identity::new(
        store.clone(),
        clock.clone(),
        secret,
        config.key_env,
        config.auth.clone(),
    ));
    let mut settings = ServerSettings::new(&config.public_url, config.key_env);
    settings.auth = config.auth.clone();
    settings.trusted_proxies = config.trusted_proxies.clone();
    settings.setup_token = config.setup_token.clone();
    settings.mcp_allowed_origins = config.mcp_allowed_origins.clone();
    settings.file_mimes = alumia_core::files::MimePolicy::with_extra(&config.extra_mime_types);
    let settings = settings.with_listen_addr(config.listen);
    let shutdown = CancellationToken::new();
    if let Some(url) = &config.redis_url {
        let bus = RedisKeyBus::new(url, &config.redis_prefix)
            .map_err(|e| anyhow::anyhow!("bad Redis URL: {e}"))?;
        identity.set_invalidation_bus(Arc::new(bus));
        spawn_key_invalidation_listener(
            url.clone(),
            config.redis_prefix.clone(),
            identity.clone(),
            shutdown.clone(),
        );
    }
    let catalog = Arc::new(Catalog::new(
        config.providers.clone(),
        config.default_model.clone(),
    ));
    // Discovers the models of providers configured without a list; one that
    // cannot be reached now joins at a later refresh.
    catalog.refresh().await;
    let fanout = match &config.redis_url {
        Some(url) => Some(
            RedisFanout::new(url, &config.redis_prefix)
                .map_err(|e| anyhow::anyhow!("bad Redis URL: {e}"))?,
        ),
        None => None,
    };
    let runtime = Runtime::new(
        store.clone(),
        clock.clone(),
        catalog.clone(),
        identity.secret().clone(),
        config.turn_limits.clone(),
        fanout,
    );
    runtime.spawn_maintenance();
    let state = AppState::with_runtime(
        store.clone(),
        identity,
        limiter,
        clock,
        settings,
        runtime.clone(),
    )
    .with_blobs(
        config
            .storage
            .clone()
            .open()
            .await
            .map_err(|e| anyhow::anyhow!("cannot open file storage: {e}"))?,
    );
    let providers: Vec<String> = std::iter::once("dev".to_string())
        .chain(config.providers.iter().map(|p| p.id.clone()))
        .collect();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    eprintln!(
        "alumia {} listening on {local} public_url={} database={} redis={} providers={} models={} secret_key={secret_source} role={}",
        env!("CARGO_PKG_VERSION"),
        config.public_url,
        store.kind(),
        if config.redis_url.is_some() {
            "on"
        } else {
            "off"
        },
        providers.join(","),
        catalog.entries().len(),
        args.role,
    );
    if config.public_url_defaulted && !config.listen.ip().is_loopback() {
        tracing::warn!(
            public_url = %config.public_url,
            "ALUMIA_PUBLIC_URL is not set while listening beyond loopback: browsers on other \
             hosts will fail the Origin check; set it to the URL they use"
        );
    }
    if let Some(token) = &config.setup_token
        && state.identity.setup_required().await.unwrap_or(false)
    {
        // Printed once, so the person who started the server can claim it.
        eprintln!(
            "alumia: first-run setup token: {token} (open {}/setup)",
            config.public_url
        );
    }

    spawn_signal_handler(shutdown.clone());

    let server = tokio::spawn(alumia_server::serve(listener, state, shutdown.clone()));
    shutdown.cancelled().await;
    tracing::info!("shutting down: finishing in-flight requests and turns (up to 30 s)");
    // Turns get the same 30 s; what is left then ends as `error` with its
    // session paused, which also ends the streams that relay it.
    let turns = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.shutdown(Duration::from_secs(30)).await }
    });
    match tokio::time::timeout(Duration::from_secs(40), server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!("requests still running after 40 s; stopping anyway"),
    }
    let _ = turns.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        shutdown.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        shutdown.cancel();
    });
}
