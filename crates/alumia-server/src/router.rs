//! One router, one layer stack. The route table is data, so tests can
//! compare it with the OpenAPI document.

use std::any::Any;

use alumia_types::ErrorCode;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::middleware::{authenticate, request_context};
use crate::routes::*;
use crate::state::AppState;

/// Routes that need no credential.
pub fn public_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/healthz", get(health::healthz)),
        ("/readyz", get(health::readyz)),
        ("/api/v1/meta", get(meta::meta)),
        ("/api/v1/openapi.json", get(meta::openapi)),
        ("/api/v1/setup", get(setup::status).post(setup::create)),
        ("/api/v1/auth/login", post(auth::login)),
    ]
}

/// Routes behind [`authenticate`]: a Bearer key or a session cookie.
pub fn authed_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/api/v1/auth/session", get(auth::session)),
        ("/api/v1/auth/session/org", post(auth::switch_org)),
        ("/api/v1/auth/logout", post(auth::logout)),
        ("/api/v1/auth/step-up", post(auth::step_up)),
        ("/api/v1/auth/totp/enroll", post(auth::totp_enroll)),
        ("/api/v1/auth/totp/confirm", post(auth::totp_confirm)),
        ("/api/v1/auth/totp", delete(auth::totp_disable)),
        ("/api/v1/me", get(me::get)),
        ("/api/v1/orgs", get(orgs::list).post(orgs::create)),
        ("/api/v1/org", get(orgs::current)),
        ("/api/v1/org/members", get(orgs::members)),
        ("/api/v1/org/members/{userId}", delete(orgs::remove_member)),
        ("/api/v1/workspaces", get(workspaces::list)),
        ("/api/v1/workspaces/switch", post(workspaces::switch)),
        ("/api/v1/workspaces/{id}", get(workspaces::get)),
        (
            "/api/v1/api-keys",
            get(api_keys::list).post(api_keys::create),
        ),
        ("/api/v1/api-keys/{id}", delete(api_keys::revoke)),
        ("/api/v1/models", get(models::list)),
        ("/api/v1/audit-events", get(audit::list)),
    ]
}

/// HTML pages and their assets (not part of the OpenAPI document).
fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::root))
        .route("/setup", get(pages::setup))
        .route("/login", get(pages::login))
        .route("/assets/app.js", get(pages::app_js))
        .route("/assets/app.css", get(pages::app_css))
        .route("/{org}/developers", get(pages::developers))
        .route("/{org}/settings/security", get(pages::security))
}

pub fn router(state: AppState) -> Router {
    let mut public = Router::new();
    for (path, route) in public_routes() {
        public = public.route(path, route);
    }
    let mut authed = Router::new();
    for (path, route) in authed_routes() {
        authed = authed.route(path, route);
    }
    let authed = authed.route_layer(from_fn_with_state(state.clone(), authenticate));

    Router::new()
        .merge(public)
        .merge(authed)
        .merge(page_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Extractors read at most this much; ApiJson also refuses a larger
        // declared Content-Length unread.
        .layer(DefaultBodyLimit::max(state.settings.json_body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::not_found().into_response()
}

/// axum adds the `Allow` header to this response.
async fn method_not_allowed() -> Response {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this method is not allowed here",
    )
    .reason("method_not_allowed")
    .into_response()
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}
