//! The minimal server-rendered pages. They are static HTML plus one script;
//! everything they do goes through the JSON API with the CSRF token.

use alumia_core::DomainError;
use alumia_core::device::{display_user_code, normalize_user_code};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::middleware::{SESSION_COOKIE, cookie_value};
use crate::state::AppState;

const SETUP: &str = include_str!("../../assets/setup.html");
const LOGIN: &str = include_str!("../../assets/login.html");
const DEVICE: &str = include_str!("../../assets/device.html");
const SHARE: &str = include_str!("../../assets/share.html");
const INVITE: &str = include_str!("../../assets/invite.html");
const DEVELOPERS: &str = include_str!("../../assets/developers.html");
const SECURITY: &str = include_str!("../../assets/security.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(html: impl IntoResponse) -> Response {
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

#[derive(Debug, Deserialize, Default)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

/// `/device?user_code=…`: the approval page of device login. Without a
/// session it sends the browser to `/login?next=…` (and back here after).
/// The page shows the code pre-filled; everything else comes from the JSON
/// API (`lookup`, then `approve` or `deny` with the CSRF token).
pub async fn device(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> ApiResult<Response> {
    let code = q.user_code.as_deref().map(prefill).unwrap_or_default();
    let signed_in = match cookie_value(&headers, SESSION_COOKIE) {
        None => false,
        Some(token) => match state.identity.authenticate_session(token, None).await {
            Ok(_) => true,
            Err(DomainError::Unauthorized { .. }) => false,
            // Signed in, with no current org picked yet: the page lets them pick.
            Err(DomainError::Forbidden { .. }) => true,
            Err(e) => return Err(e.into()),
        },
    };
    if !signed_in {
        // `code` is [A-Z0-9-] only, so it needs no further escaping.
        let next = if code.is_empty() {
            "%2Fdevice".to_string()
        } else {
            format!("%2Fdevice%3Fuser_code%3D{code}")
        };
        return Ok(Redirect::to(&format!("/login?next={next}")).into_response());
    }
    Ok(page(DEVICE.replace("{{userCode}}", &code)))
}

/// `/share/project/:token`: the read-only canvas. The page reads the token
/// from its own path and loads `GET /api/v1/share/project/:token`, which
/// checks it; a malformed token is a 404 here already.
pub async fn share_project(Path(token): Path<String>) -> Response {
    if !alumia_core::sharing::well_formed(&token) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = page(SHARE);
    // The token is in the URL: no Referer leaves this page.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `/invite/project/:token`: a signed-in member joins (the page posts to
/// `…/share/invite/:token/accept`).
pub async fn invite_project(Path(token): Path<String>) -> Response {
    if !alumia_core::sharing::well_formed(&token) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = page(INVITE);
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The user code from the link, safe to put into HTML and URLs as is: the
/// `XXXX-XXXX` form of a well-formed code, else its letters, digits and
/// dashes (upper-cased, at most 16).
fn prefill(raw: &str) -> String {
    match normalize_user_code(raw) {
        Some(code) => display_user_code(&code),
        None => raw
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .map(|c| c.to_ascii_uppercase())
            .take(16)
            .collect(),
    }
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

#[cfg(test)]
mod tests {
    use super::prefill;

    #[test]
    fn the_prefilled_code_is_normalized_and_never_markup() {
        assert_eq!(prefill("wdjb mjht"), "WDJB-MJHT");
        assert_eq!(prefill("WDJB-MJHT"), "WDJB-MJHT");
        assert_eq!(prefill("\"><script>alert(1)</script>"), "SCRIPTALERT1SCRI");
        assert_eq!(prefill("a&b=c%20d"), "ABC20D");
    }
}
