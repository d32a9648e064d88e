//! `ApiError`: every failure leaves the server through here, as the spec's
//! envelope with the right status and headers.

use std::collections::BTreeMap;

use alumia_core::DomainError;
use alumia_types::{ApiErrorBody, ErrorCode, ErrorEnvelope};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub reason: Option<&'static str>,
    /// Boxed: errors travel through every `Result`, so they stay small.
    pub details: Option<Box<Value>>,
    pub retry_after: Option<u64>,
    /// For 5xx: the cause, logged with the request id, never sent.
    pub cause: Option<Box<str>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Marks a response whose body must get `details.requestId` (generic 500s).
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            reason: None,
            details: None,
            retry_after: None,
            cause: None,
        }
    }

    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, message).reason(reason)
    }

    pub fn not_found() -> Self {
        ApiError::new(ErrorCode::NotFound, "not found").reason("not_found")
    }

    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = ApiError::new(ErrorCode::InternalError, "internal error");
        e.cause = Some(cause.into().into_boxed_str());
        e
    }

    pub fn unavailable(cause: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the service is temporarily unavailable; retry shortly",
        )
        .reason("unavailable");
        e.retry_after = Some(2);
        e.cause = Some(cause.into().into_boxed_str());
        e
    }

    pub fn rate_limited(bucket: &str, retry_after_secs: u64) -> Self {
        let mut e = ApiError::new(ErrorCode::TooManyRequests, "too many requests; slow down")
            .reason("rate_limited")
            .details(json!({ "bucket": bucket }));
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        ApiError::new(ErrorCode::ValidationError, "some fields are not valid")
            .details(json!({ "fields": fields }))
    }
}

/// The one mapping from domain errors to the wire: no `_` arm, so a new
/// variant forces a decision here.
impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::BadRequest {
                reason,
                message,
                fields,
            } => {
                let mut err = ApiError::bad_request(reason, message);
                if !fields.is_empty() {
                    err = err.details(json!({ "fields": fields }));
                }
                err
            }
            DomainError::Unauthorized { reason, message } => {
                ApiError::new(ErrorCode::Unauthorized, message).reason(reason)
            }
            DomainError::Forbidden {
                reason,
                message,
                details,
            } => {
                let mut err = ApiError::new(ErrorCode::Forbidden, message).reason(reason);
                err.details = details.map(Box::new);
                err
            }
            DomainError::NotFound => ApiError::not_found(),
            DomainError::Conflict { reason, message } => {
                ApiError::new(ErrorCode::Conflict, message).reason(reason)
            }
            DomainError::Validation { reason, fields } => {
                let mut err = ApiError::validation(fields);
                err.reason = reason;
                err
            }
            DomainError::RateLimited {
                bucket,
                retry_after_secs,
            } => ApiError::rate_limited(&bucket, retry_after_secs),
            DomainError::Unavailable(cause) => ApiError::unavailable(cause),
            DomainError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorEnvelope {
            success: false,
            error: ApiErrorBody {
                code: self.code,
                message: self.message,
                reason: self.reason.map(str::to_string),
                details: self.details.map(|d| *d),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"alumia\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(cause) = self.cause {
            response
                .extensions_mut()
                .insert(InternalCause(cause.into()));
        }
        response
    }
}
