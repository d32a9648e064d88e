use std::sync::Arc;

use alumia_blobs::BlobStore;
use alumia_core::identity::Identity;
use alumia_core::limits::RateLimiter;
use alumia_core::{Clock, Store};
use alumia_runtime::{Catalog, Runtime, TurnLimits};
use tokio_util::sync::CancellationToken;

use crate::limiter::RateLimitPolicies;
use crate::settings::ServerSettings;

/// Everything a handler can reach. One `Arc`, because axum clones the state
/// several times per request.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    pub limiter: Arc<dyn RateLimiter>,
    pub clock: Arc<dyn Clock>,
    pub settings: ServerSettings,
    /// Turns, the model catalogue and live streams.
    pub runtime: Arc<Runtime>,
    /// `RateLimit-Policy` values, rendered once from `limiter.limits()`.
    pub rate_limit_policies: RateLimitPolicies,
    /// Cancelled when shutdown begins; `/readyz` answers 503 from then on.
    pub shutting_down: CancellationToken,
    /// File bytes (spec 06 §3). Until [`AppState::with_blobs`] sets one,
    /// file routes that touch bytes answer 503.
    pub blobs: Arc<dyn BlobStore>,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        identity: Arc<Identity>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        settings: ServerSettings,
    ) -> Self {
        let runtime = Runtime::new(
            store.clone(),
            clock.clone(),
            Arc::new(Catalog::dev_only()),
            identity.secret().clone(),
            TurnLimits::default(),
            None,
        );
        Self::with_runtime(store, identity, limiter, clock, settings, runtime)
    }

    /// As `new`, with a runtime built by the caller (providers, limits, Redis).
    pub fn with_runtime(
        store: Arc<dyn Store>,
        identity: Arc<Identity>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        settings: ServerSettings,
        runtime: Arc<Runtime>,
    ) -> Self {
        let rate_limit_policies = RateLimitPolicies::new(limiter.limits());
        AppState(Arc::new(AppInner {
            rate_limit_policies,
            store,
            identity,
            limiter,
            clock,
            settings,
            runtime,
            shutting_down: CancellationToken::new(),
            blobs: Arc::new(crate::file_content::NoBlobStore),
        }))
    }

    /// Sets the blob store; call right after construction (before clones).
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("with_blobs is called before the state is shared")
            .blobs = blobs;
        self
    }
}
