use std::sync::Arc;

use alumia_core::identity::Identity;
use alumia_core::limits::RateLimiter;
use alumia_core::{Clock, Store};
use tokio_util::sync::CancellationToken;

use crate::settings::ServerSettings;

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    pub limiter: Arc<dyn RateLimiter>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<ServerSettings>,
    /// Cancelled when shutdown begins; `/readyz` answers 503 from then on.
    pub shutting_down: CancellationToken,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        identity: Arc<Identity>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        settings: ServerSettings,
    ) -> Self {
        AppState {
            store,
            identity,
            limiter,
            clock,
            settings: Arc::new(settings),
            shutting_down: CancellationToken::new(),
        }
    }
}
