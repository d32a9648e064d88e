//! Extractors whose failures stay in the envelope: JSON bodies, queries,
//! path ids, and the authenticated principal.

use std::collections::BTreeMap;

use alumia_core::Principal;
use alumia_core::identity::ClientInfo;
use alumia_types::ErrorCode;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body under the route cap, with the spec's error for each failure.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let body = json_body(req, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// `Option<ApiJson<T>>`: `None` for a request without a body (no
/// `Content-Length` or `0`, not chunked), else exactly `ApiJson`.
impl<T: DeserializeOwned> OptionalFromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        let headers = req.headers();
        let empty = !headers.contains_key(header::TRANSFER_ENCODING)
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|len| len.as_bytes() == b"0");
        if empty {
            return Ok(None);
        }
        <ApiJson<T> as FromRequest<AppState>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// As [`ApiJson`], keeping the raw body too (idempotency fingerprints it).
pub struct ApiJsonRaw<T>(pub T, pub Bytes);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJsonRaw<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let body = json_body(req, state).await?;
        let value = parse_json(&body)?;
        Ok(ApiJsonRaw(value, body))
    }
}

/// A JSON body of up to `LIMIT` bytes, for the few routes that take more
/// than the general cap (the route also raises `DefaultBodyLimit`).
pub struct LargeJson<T, const LIMIT: usize>(pub T);

impl<T: DeserializeOwned, const LIMIT: usize> FromRequest<AppState> for LargeJson<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let body = json_body_up_to(req, state, LIMIT).await?;
        parse_json(&body).map(LargeJson)
    }
}

/// The body of a JSON request, with the media type and size checks.
async fn json_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.settings.json_body_limit;
    json_body_up_to(req, state, limit).await
}

async fn json_body_up_to(req: Request, state: &AppState, limit: usize) -> Result<Bytes, ApiError> {
    {
        let headers = req.headers();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::bad_request(
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        match headers.get(header::CONTENT_LENGTH) {
            Some(len) => {
                // A declared length over the cap is refused unread.
                let declared: u64 =
                    len.to_str()
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "bad_content_length",
                                "Content-Length is not a number",
                            )
                        })?;
                if declared > limit as u64 {
                    return Err(too_large(limit));
                }
            }
            None => {
                if headers.contains_key(header::TRANSFER_ENCODING) {
                    return Err(ApiError::new(
                        ErrorCode::LengthRequired,
                        "JSON bodies need a Content-Length",
                    )
                    .reason("length_required"));
                }
            }
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                too_large(limit)
            } else {
                ApiError::bad_request("unreadable_body", "the request body could not be read")
            }
        })?;
        if body.len() > limit {
            return Err(too_large(limit));
        }
        Ok(body)
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body is over the {} KB limit", limit / 1024),
    )
    .reason("payload_too_large")
    .details(json!({ "limitBytes": limit }))
}

/// Syntax errors → `400 invalid_json` with line and column; a missing field
/// or wrong type → `400` with `details.fields`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so a malformed body is `invalid_json` whatever its shape.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Err(
            ApiError::bad_request("invalid_json", "the body is not valid JSON")
                .details(json!({ "line": e.line(), "column": e.column() })),
        );
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let message = strip_position(&err.into_inner().to_string());
        let field = missing_field(&message)
            .map(|f| {
                if path == "." {
                    f.to_string()
                } else {
                    format!("{path}.{f}")
                }
            })
            .unwrap_or_else(|| {
                if path == "." {
                    "body".to_string()
                } else {
                    path
                }
            });
        let mut fields = BTreeMap::new();
        fields.insert(field, message);
        ApiError::bad_request("invalid_body", "the body has missing or mistyped fields")
            .details(json!({ "fields": fields }))
    })
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Query strings, with the envelope on failure.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_from_str(query).map(ApiQuery)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "the query string is malformed"))?,
    )
    .map(|q| q.0)
    .map_err(|e| {
        ApiError::bad_request("invalid_query", "the query string has a bad value")
            .details(json!({ "query": e.body_text() }))
    })
}

/// A path id that must be a UUID; anything else cannot name an object, so 404.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}

/// The principal the auth middleware attached (shared, not copied).
pub struct Auth(pub std::sync::Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<std::sync::Arc<Principal>>()
            .cloned()
            .map(Auth)
            .ok_or_else(|| ApiError::internal("route is missing the authentication layer"))
    }
}

/// Where the request came from (client IP and user agent), for sessions and
/// audit events. Built only for the handlers that take it, not on every
/// authenticated request.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(ip) = ClientIp::from_request_parts(parts, state).await;
        Ok(Client(client_info(ip, &parts.headers)))
    }
}

pub fn client_info(ip: ClientIp, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: ip.0.to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    fn fields(e: &ApiError) -> serde_json::Value {
        e.details.as_deref().unwrap()["fields"].clone()
    }

    #[test]
    fn syntax_errors_report_line_and_column() {
        let e = parse_json::<Body>(b"{\n  \"name\": \"x\",,\n}").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.reason, Some("invalid_json"));
        assert_eq!(e.details.as_ref().unwrap()["line"], 2);
        let e = parse_json::<Body>(b"{\"name\": \"x\", \"count\": 1} trailing").unwrap_err();
        assert_eq!(e.reason, Some("invalid_json"));
    }

    #[test]
    fn type_errors_and_missing_fields_name_the_field() {
        let e = parse_json::<Body>(br#"{"name": 5, "count": 1}"#).unwrap_err();
        assert!(
            fields(&e)["name"]
                .as_str()
                .unwrap()
                .contains("invalid type")
        );
        let e = parse_json::<Body>(br#"{"name": "x"}"#).unwrap_err();
        assert!(
            fields(&e)["count"]
                .as_str()
                .unwrap()
                .contains("missing field")
        );
        let e = parse_json::<Body>(b"\"just a string\"").unwrap_err();
        assert!(fields(&e)["body"].is_string());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let b: Body = parse_json(br#"{"name": "x", "count": 2, "orgId": "evil"}"#).unwrap();
        assert_eq!(b.count, 2);
    }
}
