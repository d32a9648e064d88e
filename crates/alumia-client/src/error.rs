//! What can go wrong talking to a server, in three kinds the caller acts on
//! differently: the API said no ([`ClientError::Api`]), the server could not
//! be talked to ([`ClientError::Network`]), or it answered something this
//! client cannot read ([`ClientError::Decode`]).

use alumia_types::ErrorCode;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A non-2xx answer. `body` is the error envelope as sent, or one built
    /// from the status when the server sent none (a proxy's 502 page, say).
    #[error("{message} ({}, {})", status.as_u16(), reason.as_deref().unwrap_or(code))]
    Api {
        status: StatusCode,
        /// The catalogue code, e.g. `NOT_FOUND` (see [`ClientError::error_code`]).
        code: String,
        reason: Option<String>,
        message: String,
        body: Value,
    },
    /// The server is unreachable, timed out, or broke the connection.
    #[error("{0}")]
    Network(String),
    /// A 2xx answer (or stream frame) that is not what the API promises.
    #[error("unexpected response from the server: {0}")]
    Decode(String),
    /// The device-authorization grant answered with an RFC 8628 error.
    #[error("device login: {0}")]
    Device(DeviceGrantError),
    /// A bad base URL or an argument that cannot be sent (e.g. a header value).
    #[error("{0}")]
    InvalidInput(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The code as a catalogue entry, when this client knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => {
                ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
            }
            _ => None,
        }
    }

    /// The `reason` of an API error, e.g. `slug_taken`.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ClientError::Api { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }
}

/// RFC 8628 §3.5 token-endpoint errors (and the code endpoint's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceGrantError {
    /// Not decided yet: poll again after the interval.
    AuthorizationPending,
    /// Polled too soon: add 5 s to the interval.
    SlowDown,
    /// The user denied the request.
    AccessDenied,
    /// The code is older than its `expires_in`.
    ExpiredToken,
    /// Unknown code, or one already exchanged.
    InvalidGrant,
    /// Anything else (`invalid_client`, `invalid_scope`, …), with its description.
    Other(String),
}

impl DeviceGrantError {
    /// Reads `{"error": …, "error_description"?: …}`.
    pub fn from_body(body: &Value) -> Option<DeviceGrantError> {
        let error = body.get("error")?.as_str()?;
        Some(match error {
            "authorization_pending" => DeviceGrantError::AuthorizationPending,
            "slow_down" => DeviceGrantError::SlowDown,
            "access_denied" => DeviceGrantError::AccessDenied,
            "expired_token" => DeviceGrantError::ExpiredToken,
            "invalid_grant" => DeviceGrantError::InvalidGrant,
            other => match body.get("error_description").and_then(Value::as_str) {
                Some(d) => DeviceGrantError::Other(format!("{other}: {d}")),
                None => DeviceGrantError::Other(other.to_string()),
            },
        })
    }
}

impl std::fmt::Display for DeviceGrantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceGrantError::AuthorizationPending => f.write_str("authorization pending"),
            DeviceGrantError::SlowDown => f.write_str("polling too fast (slow_down)"),
            DeviceGrantError::AccessDenied => f.write_str("the request was denied"),
            DeviceGrantError::ExpiredToken => f.write_str("the code expired"),
            DeviceGrantError::InvalidGrant => f.write_str("the code is unknown or already used"),
            DeviceGrantError::Other(e) => f.write_str(e),
        }
    }
}

/// Maps a non-2xx answer. An error envelope is kept as sent; anything else
/// (an HTML page, plain text, an empty body) becomes an envelope built from
/// the status so callers can always print one.
pub(crate) fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && v.get("success") == Some(&Value::Bool(false))
        && let Some(err) = v.get("error").filter(|e| e.is_object())
    {
        let code = err["code"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| code_for(status).to_string());
        let message = err["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| generic_message(status));
        let reason = err["reason"].as_str().map(str::to_string);
        return ClientError::Api {
            status,
            code,
            reason,
            message,
            body: v,
        };
    }
    let text = String::from_utf8_lossy(body);
    let first_line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let message = match first_line {
        Some(line) if !line.starts_with('<') => {
            let line: String = line.chars().take(200).collect();
            format!("{}: {line}", generic_message(status))
        }
        _ => generic_message(status),
    };
    let code = code_for(status).to_string();
    ClientError::Api {
        status,
        body: json!({"success": false, "error": {"code": code, "message": message}}),
        code,
        reason: None,
        message,
    }
}

fn generic_message(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(r) => format!("the server answered {} {r}", status.as_u16()),
        None => format!("the server answered {}", status.as_u16()),
    }
}

fn code_for(status: StatusCode) -> &'static str {
    if let Some(code) = ErrorCode::ALL
        .into_iter()
        .find(|c| c.status() == status.as_u16())
    {
        return code.as_str();
    }
    if status.is_server_error() {
        ErrorCode::InternalError.as_str()
    } else {
        ErrorCode::BadRequest.as_str()
    }
}

/// One line a person can act on, never a panic trace: "cannot reach
/// http://…: connection refused".
pub(crate) fn network_error(base: &str, e: reqwest::Error) -> ClientError {
    if e.is_builder() {
        return ClientError::InvalidInput(format!("cannot build the request: {}", root_cause(&e)));
    }
    if e.is_timeout() {
        return ClientError::Network(format!("timed out waiting for the server at {base}"));
    }
    if e.is_connect() {
        return ClientError::Network(format!(
            "cannot reach the server at {base}: {}",
            root_cause(&e)
        ));
    }
    if e.is_decode() {
        return ClientError::Decode(root_cause(&e));
    }
    ClientError::Network(format!(
        "the connection to {base} failed: {}",
        root_cause(&e)
    ))
}

/// The innermost cause, which names the actual problem ("Connection refused
/// (os error 111)"); the outer ones only repeat the URL.
fn root_cause(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    let text = last.to_string();
    // "Connection refused (os error 111)" → "connection refused".
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_keeps_code_reason_message_and_body() {
        let body = br#"{"success":false,"error":{"code":"CONFLICT","reason":"slug_taken","message":"slug in use"}}"#;
        let e = api_error(StatusCode::CONFLICT, body);
        match &e {
            ClientError::Api {
                status,
                code,
                reason,
                message,
                body,
            } => {
                assert_eq!(*status, StatusCode::CONFLICT);
                assert_eq!(code, "CONFLICT");
                assert_eq!(reason.as_deref(), Some("slug_taken"));
                assert_eq!(message, "slug in use");
                assert_eq!(body["error"]["reason"], "slug_taken");
            }
            other => panic!("not an API error: {other:?}"),
        }
        assert_eq!(e.error_code(), Some(ErrorCode::Conflict));
        assert_eq!(e.to_string(), "slug in use (409, slug_taken)");
    }

    #[test]
    fn a_bare_500_becomes_an_internal_error_envelope() {
        let e = api_error(StatusCode::INTERNAL_SERVER_ERROR, b"boom\n");
        let ClientError::Api {
            code,
            message,
            body,
            ..
        } = &e
        else {
            panic!("not an API error: {e:?}")
        };
        assert_eq!(code, "INTERNAL_ERROR");
        assert_eq!(
            message,
            "the server answered 500 Internal Server Error: boom"
        );
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "INTERNAL_ERROR");
    }

    #[test]
    fn an_html_error_page_is_not_quoted() {
        let e = api_error(
            StatusCode::BAD_GATEWAY,
            b"<html><body>Bad gateway</body></html>",
        );
        assert_eq!(
            e.to_string(),
            "the server answered 502 Bad Gateway (502, INTERNAL_ERROR)"
        );
    }

    #[test]
    fn json_that_is_not_an_envelope_gets_one() {
        let e = api_error(StatusCode::NOT_FOUND, br#"{"detail":"nope"}"#);
        assert_eq!(e.error_code(), Some(ErrorCode::NotFound));
        assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
    }

    #[test]
    fn device_errors_map_to_the_typed_enum() {
        let cases = [
            (
                "authorization_pending",
                DeviceGrantError::AuthorizationPending,
            ),
            ("slow_down", DeviceGrantError::SlowDown),
            ("access_denied", DeviceGrantError::AccessDenied),
            ("expired_token", DeviceGrantError::ExpiredToken),
            ("invalid_grant", DeviceGrantError::InvalidGrant),
            (
                "invalid_client",
                DeviceGrantError::Other("invalid_client".into()),
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(
                DeviceGrantError::from_body(&json!({"error": wire})),
                Some(want)
            );
        }
        assert_eq!(
            DeviceGrantError::from_body(
                &json!({"error": "invalid_scope", "error_description": "x"})
            ),
            Some(DeviceGrantError::Other("invalid_scope: x".into()))
        );
        assert_eq!(
            DeviceGrantError::from_body(&json!({"success": false})),
            None
        );
    }
}
