//! The minimal server-rendered pages. They are static HTML plus one script;
//! everything they do goes through the JSON API with the CSRF token.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const SETUP: &str = include_str!("../../assets/setup.html");
const LOGIN: &str = include_str!("../../assets/login.html");
const DEVELOPERS: &str = include_str!("../../assets/developers.html");
const SECURITY: &str = include_str!("../../assets/security.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(html: &'static str) -> Response {
    let mut response = (StatusCode::OK, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `/`: setup while no user exists, else login.
pub async fn root(State(state): State<AppState>) -> ApiResult<Response> {
    let target = if state.identity.setup_required().await? {
        "/setup"
    } else {
        "/login"
    };
    Ok(Redirect::to(target).into_response())
}

/// `/setup` is served only while no user exists; afterwards it redirects to `/login`.
pub async fn setup(State(state): State<AppState>) -> ApiResult<Response> {
    if state.identity.setup_required().await? {
        Ok(page(SETUP))
    } else {
        Ok(Redirect::to("/login").into_response())
    }
}

pub async fn login() -> Response {
    page(LOGIN)
}

/// `/<orgSlug>/developers`: the page checks the session itself and
/// redirects to `/login?next=…` when there is none.
pub async fn developers(Path(org): Path<String>) -> Result<Response, ApiError> {
    valid_slug(&org)?;
    Ok(page(DEVELOPERS))
}

pub async fn security(Path(org): Path<String>) -> Result<Response, ApiError> {
    valid_slug(&org)?;
    Ok(page(SECURITY))
}

fn valid_slug(org: &str) -> Result<(), ApiError> {
    if alumia_core::validate::is_slug(org, 3, 48) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

pub async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

pub async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}
