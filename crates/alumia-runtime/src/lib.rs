//! The agent runtime: turns run here, not in the HTTP handler.
//!
//! A turn is claimed in the database ([`alumia_core::chat_store::ChatStore::start_turn`]),
//! then runs in its own task: model call → chunks → tools → next step. Each
//! chunk goes to the in-process [`hub`] (readers of this replica), to Redis
//! (readers of other replicas, when configured) and, batched, to the turn's
//! event log in the database. The HTTP response only relays, so a client
//! that disconnects never stops a turn.

pub mod assembly;
pub mod attach;
mod block_tools;
pub mod catalog;
pub mod chat;
pub mod fanout;
pub mod hub;
pub mod prompt;
pub mod tools;
mod turn;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alumia_core::crypto::SecretKey;
use alumia_core::{Clock, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use catalog::Catalog;
pub use chat::{ChatInput, StartedTurn};

/// The limits of the loop (spec 03 §5.3, `[agents]`).
#[derive(Debug, Clone)]
pub struct TurnLimits {
    pub max_steps: u32,
    pub max_turn: Duration,
    pub max_output_tokens: u64,
    pub max_concurrent_turns: usize,
    pub tool_timeout: Duration,
    /// Largest tool output fed back to the model, bytes.
    pub max_tool_output: usize,
    /// How often the streaming message and the event log are saved when
    /// something changed (spec 03 §5.1: at least once a second); a
    /// completed part is saved at once.
    pub flush_interval: Duration,
    /// How often an idle turn still beats its heartbeat (well under `stale_after`).
    pub heartbeat_interval: Duration,
    /// A running turn whose heartbeat is older than this belongs to a dead process.
    pub stale_after: Duration,
    /// How long event logs are kept after a turn ends.
    pub log_retention: Duration,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            max_steps: 20,
            max_turn: Duration::from_secs(600),
            max_output_tokens: 32_000,
            max_concurrent_turns: 64,
            tool_timeout: Duration::from_secs(60),
            max_tool_output: 100 * 1024,
            flush_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            log_retention: Duration::from_secs(24 * 3600),
        }
    }
}

pub struct Runtime {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub catalog: Arc<Catalog>,
    pub limits: TurnLimits,
    pub hub: hub::Hub,
    pub fanout: Option<fanout::RedisFanout>,
    secret: SecretKey,
    running: AtomicUsize,
    tasks: TaskTracker,
    /// Cancelled at shutdown: running turns end as `error` ("server shutting down").
    shutdown: CancellationToken,
}

impl Runtime {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        catalog: Arc<Catalog>,
        secret: SecretKey,
        limits: TurnLimits,
        fanout: Option<fanout::RedisFanout>,
    ) -> Arc<Self> {
        Arc::new(Runtime {
            store,
            clock,
            catalog,
            limits,
            hub: hub::Hub::default(),
            fanout,
            secret,
            running: AtomicUsize::new(0),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        })
    }

    pub fn running_turns(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// Background upkeep: fail turns of dead processes, prune old logs,
    /// refresh discovered model lists. Runs until shutdown.
    pub fn spawn_maintenance(self: &Arc<Self>) {
        let rt = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    _ = rt.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = rt.clock.now();
                let stale =
                    now - chrono::Duration::from_std(rt.limits.stale_after).unwrap_or_default();
                if let Err(e) = rt.store.fail_stale_turns(stale, now).await {
                    tracing::warn!(error = %e, "stale turns not checked");
                }
                if n.is_multiple_of(60) {
                    let before = now
                        - chrono::Duration::from_std(rt.limits.log_retention).unwrap_or_default();
                    if let Err(e) = rt.store.prune_turn_events(before).await {
                        tracing::warn!(error = %e, "turn logs not pruned");
                    }
                    rt.catalog.refresh().await;
                }
                n += 1;
            }
        });
    }

    /// Stops taking turns, waits up to `grace` for running ones, then ends
    /// the rest as `error` ("server shutting down") with their sessions paused.
    pub async fn shutdown(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            self.shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        }
        self.shutdown.cancel();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.tasks.is_closed()
    }
}
