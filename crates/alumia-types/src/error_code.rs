use serde::{Deserialize, Serialize};

/// The public error codes of `/api/v1` (spec README, "Errors"), each with its status.
///
/// One catalogue: the server maps to it, the client and CLI read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    PaymentRequired,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    LengthRequired,
    PayloadTooLarge,
    ValidationError,
    TooManyRequests,
    InternalError,
    ServiceUnavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::PaymentRequired,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::LengthRequired,
        ErrorCode::PayloadTooLarge,
        ErrorCode::ValidationError,
        ErrorCode::TooManyRequests,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
    ];

    /// The HTTP status that always accompanies this code.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::PaymentRequired => 402,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::LengthRequired => 411,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::ValidationError => 422,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::ServiceUnavailable => 503,
        }
    }

    /// The wire spelling, e.g. `NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::PaymentRequired => "PAYMENT_REQUIRED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::LengthRequired => "LENGTH_REQUIRED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serialises_to_its_wire_name_and_has_a_distinct_status() {
        let mut statuses = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(
                json,
                code.as_str(),
                "serde and as_str disagree for {code:?}"
            );
            assert!(statuses.insert(code.status()), "{code:?} reuses a status");
            assert!((400..600).contains(&code.status()));
        }
    }
}
