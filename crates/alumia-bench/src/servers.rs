//! The servers under test, all in this process on loopback: the real app
//! (TestApp: temp SQLite file, in-process governor limiter), the bare axum
//! baseline, and optional variants that remove one piece of the
//! authenticated path so its cost shows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alumia_core::identity::{AuthSettings, Identity};
use alumia_core::keys::KeyEnv;
use alumia_core::limits::{Bucket, Decision, LimiterUnavailable, Limits, Quota, RateLimiter};
use alumia_core::{Clock, Store};
use alumia_server::{AppState, ServerSettings};
use alumia_testkit::TestApp;
use anyhow::{Context, ensure};
use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct Servers {
    pub app: TestApp,
    /// A Bearer key with the default scope (`models:read`).
    pub key: String,
    /// The exact body of `GET /api/v1/models`, served by the bare handler too.
    pub models_body: Bytes,
    pub bare: SocketAddr,
    /// The app with a limiter that always says yes without any work.
    pub no_limiter: Option<SocketAddr>,
    shutdown: CancellationToken,
}

/// The `api-key` bucket raised so far that the limiter decides on every
/// request but never refuses during a run.
pub fn bench_limits() -> Limits {
    let mut limits = Limits::default();
    limits.set(
        Bucket::ApiKey,
        Quota {
            capacity: 1_000_000_000,
            // governor needs a non-zero period; 1 µs = 60 M tokens a minute.
            refill_every: Duration::from_micros(1),
        },
    );
    limits
}

impl Servers {
    pub async fn start(variants: bool) -> anyhow::Result<Servers> {
        let limits = bench_limits();
        let app = TestApp::builder().limits(limits.clone()).spawn().await;
        let mut browser = app.browser();
        browser.setup("bench@example.com", "bench").await;
        let (key, _) = browser.mint_key("bench", None).await;
        drop(browser);

        let res = app.get_with_key("/api/v1/models", &key).await;
        ensure!(
            res.status() == 200,
            "GET /api/v1/models answered {}",
            res.status()
        );
        ensure!(
            res.headers().contains_key("ratelimit"),
            "no RateLimit header: the limiter did not decide"
        );
        let models_body = res.bytes().await?;

        let shutdown = CancellationToken::new();
        let bare = serve_bare(models_body.clone(), shutdown.clone()).await?;

        let no_limiter = if variants {
            let allow_all: Arc<dyn RateLimiter> = Arc::new(AllowAll(limits.clone()));
            Some(serve_app(&app, app.store.clone(), allow_all, shutdown.clone()).await?)
        } else {
            None
        };

        Ok(Servers {
            app,
            key,
            models_body,
            bare,
            no_limiter,
            shutdown,
        })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.app.stop().await;
    }
}

/// `GET /bench/bare`: plain axum, the same JSON bytes, nothing else.
async fn serve_bare(body: Bytes, shutdown: CancellationToken) -> anyhow::Result<SocketAddr> {
    let router = Router::new().route(
        "/bench/bare",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.context("bind")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    Ok(addr)
}

/// Another instance of the real app on the same database, key and clock,
/// with the store or limiter swapped.
async fn serve_app(
    app: &TestApp,
    store: Arc<dyn Store>,
    limiter: Arc<dyn RateLimiter>,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let clock: Arc<dyn Clock> = app.clock.clone();
    let identity = Arc::new(Identity::new(
        store.clone(),
        clock.clone(),
        app.secret.clone(),
        KeyEnv::Test,
        AuthSettings::default(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.context("bind")?;
    let addr = listener.local_addr()?;
    let settings = ServerSettings::new(&format!("http://{addr}"), KeyEnv::Test);
    let state = AppState::new(store, identity, limiter, clock, settings);
    tokio::spawn(alumia_server::serve(listener, state, shutdown));
    Ok(addr)
}

/// A limiter that admits everything and does no work.
struct AllowAll(Limits);

#[async_trait]
impl RateLimiter for AllowAll {
    async fn check(&self, bucket: Bucket, _key: &str) -> Result<Decision, LimiterUnavailable> {
        Ok(Decision {
            allowed: true,
            remaining: self.0.get(bucket).capacity,
            retry_after_secs: 0,
            reset_secs: 0,
        })
    }
    fn limits(&self) -> &Limits {
        &self.0
    }
    fn kind(&self) -> &'static str {
        "allow-all"
    }
}
