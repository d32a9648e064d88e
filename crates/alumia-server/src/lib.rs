//! Alumia's HTTP surface: the `/api/v1` router, authentication and rate
//! limiting, the envelope, and the minimal server-rendered pages.
//!
//! Reading order: [`settings`] → [`state`] → [`router`] → [`middleware`] →
//! one module of [`routes`].

pub mod client_ip;
pub mod error;
pub mod extract;
pub mod fanout;
pub mod file_content;
pub mod idempotency;
pub mod limiter;
pub mod mcp;
pub mod middleware;
pub mod router;
pub mod routes;
pub mod settings;
pub mod state;
pub mod views;

use std::net::SocketAddr;

use axum::ServiceExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use router::router;
pub use settings::ServerSettings;
pub use state::AppState;

/// Serves until `shutdown` is cancelled, then stops accepting and lets
/// in-flight requests finish before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let stopping = shutdown.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        stopping.cancelled().await;
        // Readiness flips to 503 while the last requests drain.
        state.shutting_down.cancel();
    })
    .await
}
