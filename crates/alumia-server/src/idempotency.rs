//! `Idempotency-Key` (spec 02 §8): one namespace per org, the fingerprint
//! is method + route + path parameters + SHA-256 of the raw body, claimed
//! atomically in the database so any replica sees it.

use std::future::Future;

use alumia_core::Principal;
use alumia_core::chat_store::{IdempotencyClaim, StoredResponse};
use alumia_types::ErrorCode;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a key is remembered.
const RETENTION_HOURS: i64 = 24;
/// Largest response body kept for replay; bigger ones are not stored.
const MAX_STORED_BODY: usize = 256 * 1024;

/// The `Idempotency-Key` header, validated (1–255 printable ASCII).
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let valid = raw.to_str().ok().filter(|k| {
            (1..=255).contains(&k.len()) && k.bytes().all(|b| (0x20..0x7f).contains(&b))
        });
        match valid {
            Some(k) => Ok(IdempotencyKey(Some(k.to_string()))),
            None => Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1–255 printable ASCII characters",
            )),
        }
    }
}

pub fn fingerprint(method: &str, route: &str, params: &[&str], body: &[u8]) -> String {
    let body_hash = alumia_core::crypto::sha256_hex(body);
    alumia_core::crypto::sha256_hex(
        format!("{method}\n{route}\n{}\n{body_hash}", params.join("\n")).as_bytes(),
    )
}

/// What a replay or a claim decided.
pub enum Claim {
    /// No key, or claimed now: run the operation (and `finish` with the key).
    Run(Option<String>),
    /// Answer this refusal (in flight, key reused).
    Answer(Response),
    /// Done before: replay what was stored.
    Replay(StoredResponse),
}

pub async fn claim(
    state: &AppState,
    p: &Principal,
    key: Option<String>,
    fingerprint: &str,
) -> ApiResult<Claim> {
    let Some(key) = key else {
        return Ok(Claim::Run(None));
    };
    let now = state.clock.now();
    let expired_before = now - chrono::Duration::hours(RETENTION_HOURS);
    let claim = state
        .store
        .claim_idempotency(&p.org, &key, fingerprint, now, expired_before)
        .await
        .map_err(alumia_core::DomainError::from)?;
    Ok(match claim {
        IdempotencyClaim::Claimed => Claim::Run(Some(key)),
        IdempotencyClaim::InFlight => {
            let mut e = ApiError::new(
                ErrorCode::Conflict,
                "a request with this Idempotency-Key is still running",
            )
            .reason("idempotency_in_flight");
            e.retry_after = Some(1);
            Claim::Answer(e.into_response())
        }
        IdempotencyClaim::Mismatch => Claim::Answer(
            ApiError::new(
                ErrorCode::ValidationError,
                "this Idempotency-Key was used with a different request",
            )
            .reason("idempotency_key_reused")
            .into_response(),
        ),
        IdempotencyClaim::Done(stored) => Claim::Replay(stored),
    })
}

pub fn replay(stored: StoredResponse) -> Response {
    let mut response = (
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        stored.body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if let Some(location) = stored.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// Stores what the operation answered (2xx, 402, 404, 409), or releases
/// the key so a retry runs again.
pub async fn finish(
    state: &AppState,
    p: &Principal,
    key: Option<String>,
    response: Response,
) -> Response {
    let Some(key) = key else {
        return response;
    };
    let status = response.status().as_u16();
    let keep = (200..300).contains(&status) || matches!(status, 402 | 404 | 409);
    if !keep {
        if let Err(e) = state.store.release_idempotency(&p.org, &key).await {
            tracing::warn!(error = %e, "idempotency key not released");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let _ = state.store.release_idempotency(&p.org, &key).await;
            return ApiError::internal("response too large to store for idempotency")
                .into_response();
        }
    };
    let stored = StoredResponse {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        location: parts
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    if let Err(e) = state
        .store
        .complete_idempotency(&p.org, &key, &stored)
        .await
    {
        tracing::warn!(error = %e, "idempotent response not stored");
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Runs `op` under the key: a claim, the operation, then `finish`.
pub async fn run<F, Fut>(
    state: &AppState,
    p: &Principal,
    key: Option<String>,
    fingerprint: &str,
    op: F,
) -> ApiResult<Response>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<Response>>,
{
    match claim(state, p, key, fingerprint).await? {
        Claim::Answer(response) => Ok(response),
        Claim::Replay(stored) => Ok(replay(stored)),
        Claim::Run(key) => {
            let response = match op().await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            Ok(finish(state, p, key, response).await)
        }
    }
}
