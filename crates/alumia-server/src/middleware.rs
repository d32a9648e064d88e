//! Layers every request passes: request id, response hygiene and logging
//! (outermost), then authentication + traffic limits on `/api/v1` routes.

use std::time::Instant;

use alumia_core::Principal;
use alumia_core::identity::ClientInfo;
use alumia_core::limits::Bucket;
use alumia_core::principal::PrincipalKind;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::client_ip::ClientIp;
use crate::error::{ApiError, InternalCause};
use crate::limiter::{charge, rate_limit_headers};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "alumia_session";

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn valid_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Request id in and out, `nosniff`, `no-store` and HSTS (over https),
/// generic 5xx bodies with the cause only in the log, and one log line per
/// request. Never logs
/// headers, so credentials cannot reach the log.
pub async fn request_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();

    let mut response = next.run(req).await;

    if let Some(InternalCause(cause)) = response.extensions_mut().remove::<InternalCause>() {
        let status = response.status();
        tracing::error!(request_id = %request_id, %method, %path, status = status.as_u16(), cause = %cause, "request failed");
        // Rebuild the generic body so it carries the request id.
        let mut error = if status.as_u16() == 503 {
            ApiError::unavailable(String::new())
        } else {
            ApiError::internal(String::new())
        };
        error.cause = None;
        error = error.details(json!({ "requestId": request_id }));
        let headers = response.headers().clone();
        response = error.into_response();
        for (name, value) in headers.iter() {
            if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }

    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    if state.settings.is_https() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let principal = response.extensions().get::<LogPrincipal>().cloned();
    tracing::info!(
        request_id = %request_id,
        %method,
        %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        org = principal.as_ref().map(|p| p.org.as_str()).unwrap_or("-"),
        principal = principal.as_ref().map(|p| p.kind).unwrap_or("-"),
        key_prefix = principal.as_ref().and_then(|p| p.key_prefix.as_deref()).unwrap_or("-"),
        "request"
    );
    response
}

/// What the access log may say about the caller (never the credential).
#[derive(Clone, Debug)]
struct LogPrincipal {
    org: String,
    kind: &'static str,
    key_prefix: Option<String>,
}

pub fn cookie_value<'a>(req_headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    req_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `Origin`, when present, must be our public origin (cookie-setting routes too).
pub fn check_origin(state: &AppState, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN) {
        None => Ok(()),
        Some(origin) if origin.as_bytes() == state.settings.public_origin().as_bytes() => Ok(()),
        Some(_) => Err(csrf_failed()),
    }
}

fn csrf_failed() -> ApiError {
    alumia_core::DomainError::forbidden("csrf_failed", "the CSRF check failed").into()
}

/// Authenticates by Bearer key or session cookie, checks CSRF on cookie
/// writes, charges the traffic bucket, and attaches the [`Principal`].
/// Failed authentication spends no bucket tokens.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let client_ip = match ClientIp::from_request_parts(&mut parts, &state).await {
        Ok(ip) => ip,
        Err(never) => match never {},
    };
    let principal = match resolve_principal(&state, &parts).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (bucket, bucket_key) = match &principal.kind {
        PrincipalKind::ApiKey { key_id, .. } => (Bucket::ApiKey, key_id.to_string()),
        PrincipalKind::Session { session_id, .. } => (Bucket::Session, session_id.to_string()),
    };
    let decision = match charge(&state, bucket, &bucket_key).await {
        Ok(d) => d,
        Err(e) => {
            let denied = alumia_core::limits::Decision {
                allowed: false,
                remaining: 0,
                retry_after_secs: e.retry_after.unwrap_or(1),
                reset_secs: e.retry_after.unwrap_or(1),
            };
            let mut response = e.into_response();
            rate_limit_headers(&state, bucket, &denied, response.headers_mut());
            return response;
        }
    };
    let log = LogPrincipal {
        org: principal.org_slug.clone(),
        kind: principal.kind_name(),
        key_prefix: match &principal.kind {
            PrincipalKind::ApiKey { prefix, .. } => Some(prefix.clone()),
            PrincipalKind::Session { .. } => None,
        },
    };
    parts.extensions.insert(ClientInfo {
        ip: client_ip.0.to_string(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    });
    parts.extensions.insert(std::sync::Arc::new(principal));
    let mut response = next.run(Request::from_parts(parts, body)).await;
    rate_limit_headers(&state, bucket, &decision, response.headers_mut());
    response.extensions_mut().insert(log);
    response
}

async fn resolve_principal(
    state: &AppState,
    parts: &axum::http::request::Parts,
) -> Result<Principal, ApiError> {
    let headers = &parts.headers;
    let org_header = headers.get("x-alumia-org").and_then(|v| v.to_str().ok());
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        // When a Bearer header is present the cookie is ignored.
        let token = auth
            .to_str()
            .ok()
            .filter(|v| v.len() <= 1024)
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .unwrap_or_default();
        return Ok(state.identity.authenticate_key(token, org_header).await?);
    }
    if let Some(token) = cookie_value(headers, SESSION_COOKIE) {
        let principal = state
            .identity
            .authenticate_session(token, org_header)
            .await?;
        if is_unsafe(&parts.method) {
            let PrincipalKind::Session { csrf_token, .. } = &principal.kind else {
                return Err(csrf_failed());
            };
            let sent = headers
                .get("x-csrf-token")
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if sent.is_empty() || !bool::from(sent.ct_eq(csrf_token.as_bytes())) {
                return Err(csrf_failed());
            }
            check_origin(state, headers)?;
        }
        return Ok(principal);
    }
    Err(alumia_core::DomainError::unauthorized(
        "missing_credentials",
        "send an API key (Authorization: Bearer …) or sign in",
    )
    .into())
}
