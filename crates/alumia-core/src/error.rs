use std::collections::BTreeMap;

use serde_json::Value;

/// What a store can say went wrong. Driver errors become one of these in one
/// `From` impl inside alumia-store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint: the name says which (`org_slug`, `user_email`, …).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database cannot be reached or timed out; the caller may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

/// Errors of the domain, mapped to the HTTP envelope once, in alumia-server.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{message}")]
    BadRequest {
        reason: &'static str,
        message: String,
        fields: BTreeMap<String, String>,
    },
    #[error("{message}")]
    Unauthorized {
        reason: &'static str,
        message: &'static str,
    },
    #[error("{message}")]
    Forbidden {
        reason: &'static str,
        message: String,
        details: Option<Value>,
    },
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict {
        reason: &'static str,
        message: String,
    },
    #[error("validation failed")]
    Validation {
        reason: Option<&'static str>,
        fields: BTreeMap<String, String>,
    },
    #[error("rate limited on {bucket}")]
    RateLimited {
        bucket: String,
        retry_after_secs: u64,
    },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        DomainError::Forbidden {
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            reason,
            message: message.into(),
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert(field.to_string(), message.into());
        DomainError::Validation {
            reason: None,
            fields,
        }
    }

    pub fn invalid_with_reason(
        reason: &'static str,
        field: &str,
        message: impl Into<String>,
    ) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert(field.to_string(), message.into());
        DomainError::Validation {
            reason: Some(reason),
            fields,
        }
    }

    /// `400 invalid_reference`: a referenced id that is unknown or invisible.
    pub fn invalid_reference(field: &str) -> Self {
        DomainError::BadRequest {
            reason: "invalid_reference",
            message: format!("no accessible object matches {field}"),
            fields: [(field.to_string(), "unknown or inaccessible".to_string())].into(),
        }
    }

    pub fn unauthorized(reason: &'static str, message: &'static str) -> Self {
        DomainError::Unauthorized { reason, message }
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => DomainError::NotFound,
            StoreError::Conflict(what) => DomainError::Conflict {
                reason: "conflict",
                message: format!("{what} already exists"),
            },
            StoreError::Unavailable(why) => DomainError::Unavailable(why),
            StoreError::Other(why) => DomainError::Internal(why),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
