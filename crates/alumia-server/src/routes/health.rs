use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: migrations applied (the store only opens after they are),
/// the database and (if configured) Redis answer, and we are not shutting down.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = serde_json::Map::new();
    let db = state.store.ping().await;
    checks.insert(
        "database".into(),
        json!(if db.is_ok() { "ok" } else { "unavailable" }),
    );
    let limiter = state.limiter.ready().await;
    checks.insert(
        "rateLimiter".into(),
        json!(if limiter.is_ok() { "ok" } else { "unavailable" }),
    );
    let stopping = state.shutting_down.is_cancelled();
    if stopping {
        checks.insert("shutdown".into(), json!("in progress"));
    }
    let ready = db.is_ok() && limiter.is_ok() && !stopping;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (
        status,
        axum::Json(json!({ "status": if ready { "ok" } else { "unavailable" }, "checks": checks })),
    )
        .into_response();
    if !ready {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}
