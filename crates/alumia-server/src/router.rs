//! One router, one layer stack. The route table is data, so tests can
//! compare it with the OpenAPI document.

use std::convert::Infallible;

use alumia_types::ErrorCode;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::middleware::{AuthenticateLayer, Middleware};
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
        ("/api/v1/auth/device/code", post(device::code)),
        ("/api/v1/auth/device/token", post(device::token)),
        ("/api/v1/share/project/{token}", get(share::public_project)),
        ("/api/v1/share/lab/{token}", get(share::public_lab)),
        // Signed URLs: the signature is the credential (routes/files.rs).
        (
            "/api/v1/files/{id}/content",
            get(files::content_get).put(files::content_put),
        ),
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
        ("/api/v1/auth/device/lookup", get(device::lookup)),
        ("/api/v1/auth/device/approve", post(device::approve)),
        ("/api/v1/auth/device/deny", post(device::deny)),
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
        ("/api/v1/agents", get(agents::list).post(agents::create)),
        (
            "/api/v1/agents/{id}",
            get(agents::get)
                .patch(agents::update)
                .delete(agents::delete),
        ),
        ("/api/v1/agents/{id}/sessions", get(sessions::of_agent)),
        ("/api/v1/agents/{id}/messages", get(agents::messages)),
        ("/api/v1/agents/{id}/peers", get(agents::peers)),
        (
            "/api/v1/sessions",
            get(sessions::list).post(sessions::create),
        ),
        (
            "/api/v1/sessions/{id}",
            get(sessions::get)
                .patch(sessions::update)
                .delete(sessions::delete),
        ),
        (
            "/api/v1/sessions/{id}/messages",
            get(messages::list).post(messages::create),
        ),
        (
            "/api/v1/projects",
            get(projects::list).post(projects::create),
        ),
        (
            "/api/v1/projects/{id}",
            get(projects::get)
                .patch(projects::update)
                .delete(projects::delete),
        ),
        ("/api/v1/projects/{id}/duplicate", post(projects::duplicate)),
        ("/api/v1/projects/{id}/export", get(projects::export)),
        ("/api/v1/projects/{id}/navigator", get(projects::navigator)),
        (
            "/api/v1/projects/{id}/restore",
            post(projects::restore).layer(DefaultBodyLimit::max(
                alumia_core::portability::MAX_MANIFEST_BYTES,
            )),
        ),
        (
            "/api/v1/projects/{id}/share",
            post(share::enable).delete(share::disable),
        ),
        ("/api/v1/projects/{id}/share/invite", post(share::invite)),
        ("/api/v1/share/invite/{token}/accept", post(share::accept)),
        (
            "/api/v1/projects/{id}/blocks",
            get(blocks::list).post(blocks::create_in_project),
        ),
        (
            "/api/v1/projects/{id}/blocks/positions",
            patch(blocks::positions),
        ),
        ("/api/v1/projects/{id}/canvas", get(blocks::canvas)),
        ("/api/v1/projects/{id}/edges", post(blocks::create_edge)),
        (
            "/api/v1/projects/{id}/edges/{edgeId}",
            delete(blocks::delete_edge),
        ),
        (
            "/api/v1/projects/{id}/restore-last-run",
            post(blocks::restore_last_run),
        ),
        ("/api/v1/blocks", post(blocks::create)),
        ("/api/v1/blocks/arrange", post(blocks::arrange)),
        (
            "/api/v1/blocks/{id}",
            get(blocks::get)
                .patch(blocks::update)
                .delete(blocks::delete),
        ),
        (
            "/api/v1/files",
            // Multipart uploads stream up to 100 MB: the JSON cap is lifted
            // here (JSON bodies still go through ApiJson's own checks).
            get(files::list).post(files::create.layer(DefaultBodyLimit::disable())),
        ),
        (
            "/api/v1/files/{id}",
            get(files::get).patch(files::update).delete(files::delete),
        ),
        ("/api/v1/files/{id}/preview", get(files::preview)),
        ("/api/v1/chat", post(chat::chat)),
        ("/api/v1/chat/{sessionId}/stop", post(chat::stop)),
        ("/api/v1/chat/{sessionId}/resume", post(chat::resume)),
        ("/api/v1/chat/{sessionId}/stream", get(chat::stream)),
        (
            "/api/v1/billing/byok-keys",
            get(byok_keys::list).post(byok_keys::create),
        ),
        ("/api/v1/billing/byok-keys/{id}", delete(byok_keys::delete)),
        ("/api/v1/audit-events", get(audit::list)),
    ]
}

/// HTML pages and their assets (not part of the OpenAPI document).
fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::root))
        .route("/setup", get(pages::setup))
        .route("/login", get(pages::login))
        .route("/device", get(pages::device))
        .route("/share/project/{token}", get(pages::share_project))
        .route("/share/{token}", get(share::page_redirect))
        .route("/invite/project/{token}", get(pages::invite_project))
        .route("/assets/app.js", get(pages::app_js))
        .route("/assets/app.css", get(pages::app_css))
        .route("/{org}/developers", get(pages::developers))
        .route("/{org}/settings/security", get(pages::security))
}

/// The whole HTTP surface as one service: `request_context` around the
/// router (serve it with `into_make_service_with_connect_info`).
pub fn router(
    state: AppState,
) -> Middleware<
    impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static,
> {
    let mut public = Router::new();
    for (path, route) in public_routes() {
        public = public.route(path, route);
    }
    let mut authed = Router::new();
    for (path, route) in authed_routes() {
        authed = authed.route(path, route);
    }
    let authed = authed.route_layer(AuthenticateLayer(state.clone()));

    let rest: Router = Router::new()
        .merge(public)
        .merge(authed)
        .merge(page_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // `/mcp` calls the routes above in-process (spec 04 §1).
    let mcp = crate::mcp::McpEndpoint::new(state.clone(), rest.clone());
    let routes = rest.route(
        "/mcp",
        axum::routing::any(move |req: Request| mcp.clone().handle(req)),
    );
    // The layers every request passes wrap the router once, as one service.
    // (`Router::layer` would wrap each route in its own boxed copy of the
    // stack, and every request would clone that chain of boxes.) Extractors
    // read at most `json_body_limit`; ApiJson also refuses a larger declared
    // Content-Length unread.
    let limited = DefaultBodyLimit::max(state.settings.json_body_limit).layer(routes);
    Middleware::request_context(state, limited)
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
