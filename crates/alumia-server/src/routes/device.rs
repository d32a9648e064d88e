//! Device login (RFC 8628; spec 01 §10).
//!
//! - `POST /api/v1/auth/device/code` and `…/token` are public OAuth
//!   endpoints: form or JSON in, plain JSON out, every RFC error as
//!   `400 {"error", "error_description"}`. Their buckets (`device-code`,
//!   `device-token`, per client IP) answer 429 in the usual envelope.
//! - `GET …/lookup`, `POST …/approve` and `…/deny` are browser-only. Each
//!   takes a `user-code-guess` token (user + client IP) *before* the code is
//!   looked up, and gives it back when the code was real: only failed
//!   guesses cost, and a locked-out user learns nothing about any code.
//!   Approval also takes a `key-mint` token, the bucket of `POST /api-keys`.

use alumia_core::Principal;
use alumia_core::clock::format_ts;
use alumia_core::device::{
    CLIENT_NAME, DeviceCode, DeviceFlowError, DeviceStart, DeviceTokenRequest, OAuthError,
    UserCodeError,
};
use alumia_core::identity::{ClientInfo, Identity};
use alumia_core::limits::Bucket;
use alumia_types::ErrorCode;
use alumia_types::device::{
    DeviceCodeResponse, DeviceDecisionRequest, DeviceLookupView, DeviceTokenResponse,
    OAuthErrorResponse,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Auth, Client};
use crate::limiter::charge;
use crate::routes::api_keys::client_bucket;
use crate::state::AppState;
use crate::views::ok;

/// Form or JSON parameters of `POST …/device/code`.
#[derive(Deserialize, Default)]
struct CodeParams {
    client_id: Option<String>,
    scope: Option<String>,
    device_name: Option<String>,
}

/// Form or JSON parameters of `POST …/device/token`.
#[derive(Deserialize, Default)]
struct TokenParams {
    grant_type: Option<String>,
    device_code: Option<String>,
    client_id: Option<String>,
}

/// `POST /api/v1/auth/device/code`
pub async fn code(State(state): State<AppState>, ip: ClientIp, req: Request) -> Response {
    if let Err(e) = charge(&state, Bucket::DeviceCode, &ip.bucket_key()).await {
        return e.into_response();
    }
    let params: CodeParams = match oauth_params(&state, req).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let input = DeviceStart {
        client_id: params.client_id,
        scope: params.scope,
        device_name: params.device_name,
    };
    match state.identity.device_start(input, &ip.0.to_string()).await {
        Ok(issued) => {
            let base = format!("{}/device", state.settings.public_url);
            oauth_json(
                StatusCode::OK,
                &DeviceCodeResponse {
                    verification_uri_complete: format!("{base}?user_code={}", issued.user_code),
                    verification_uri: base,
                    device_code: issued.device_code,
                    user_code: issued.user_code,
                    expires_in: issued.expires_in,
                    interval: issued.interval,
                },
            )
        }
        Err(e) => flow_error(e),
    }
}

/// `POST /api/v1/auth/device/token`
pub async fn token(State(state): State<AppState>, ip: ClientIp, req: Request) -> Response {
    if let Err(e) = charge(&state, Bucket::DeviceToken, &ip.bucket_key()).await {
        return e.into_response();
    }
    let params: TokenParams = match oauth_params(&state, req).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let input = DeviceTokenRequest {
        grant_type: params.grant_type,
        device_code: params.device_code,
        client_id: params.client_id,
    };
    match state.identity.device_token(input).await {
        Ok(token) => oauth_json(
            StatusCode::OK,
            &DeviceTokenResponse {
                access_token: token.access_token,
                token_type: "Bearer".into(),
                scope: token.scope,
            },
        ),
        Err(e) => flow_error(e),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LookupQuery {
    user_code: Option<String>,
}

/// `GET /api/v1/auth/device/lookup?userCode=`: what the approval page shows.
pub async fn lookup(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> ApiResult<Response> {
    p.require_browser_session()?;
    let typed = q.user_code.ok_or_else(|| {
        ApiError::bad_request("invalid_query", "userCode is required")
            .details(json!({ "fields": { "userCode": "required" } }))
    })?;
    let code = find_code(&state, &p, &client, &typed).await?;
    Ok(ok(DeviceLookupView {
        client_name: CLIENT_NAME.into(),
        device_name: code.device_name,
        request_ip: code.request_ip,
        requested_at: format_ts(code.created_at),
        expires_at: format_ts(code.expires_at),
        requested_scopes: code.scopes,
    }))
}

/// `POST /api/v1/auth/device/approve` `{userCode, grantScopes?}`: browser
/// session with a fresh step-up; binds the code to this user and org.
pub async fn approve(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    ApiJson(req): ApiJson<DeviceDecisionRequest>,
) -> ApiResult<Response> {
    p.require_step_up(
        state.identity.now(),
        state.identity.settings().step_up_window_secs,
    )?;
    Identity::device_check_grant(req.grant_scopes.as_deref())?;
    let code = find_code(&state, &p, &client, &req.user_code).await?;
    charge(
        &state,
        Bucket::KeyMint,
        &format!("{}|{}", p.user_id, client_bucket(&client)),
    )
    .await?;
    state
        .identity
        .device_approve(&p, &code, req.grant_scopes.as_deref(), &client)
        .await?
        .map_err(user_code_error)?;
    Ok(ok(json!({ "approved": true })))
}

/// `POST /api/v1/auth/device/deny` `{userCode}`: browser session.
pub async fn deny(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    ApiJson(req): ApiJson<DeviceDecisionRequest>,
) -> ApiResult<Response> {
    p.require_browser_session()?;
    let code = find_code(&state, &p, &client, &req.user_code).await?;
    state
        .identity
        .device_deny(&p, &code, &client)
        .await?
        .map_err(user_code_error)?;
    Ok(ok(json!({ "denied": true })))
}

/// The pending code the user typed, behind the `user-code-guess` bucket.
async fn find_code(
    state: &AppState,
    p: &Principal,
    client: &ClientInfo,
    typed: &str,
) -> ApiResult<DeviceCode> {
    let key = format!("{}|{}", p.user_id, client_bucket(client));
    charge(state, Bucket::UserCodeGuess, &key).await?;
    let found = state.identity.device_find(p, typed).await;
    if !matches!(found, Ok(Err(UserCodeError::Unknown))) {
        // Not a failed guess: the token goes back.
        if let Err(e) = state.limiter.refund(Bucket::UserCodeGuess, &key).await {
            tracing::warn!(error = %e, "could not refund a user-code-guess token");
        }
    }
    found?.map_err(user_code_error)
}

fn user_code_error(e: UserCodeError) -> ApiError {
    match e {
        UserCodeError::Unknown => ApiError::new(
            ErrorCode::NotFound,
            "no pending sign-in has this code; check it against your terminal, or start again",
        )
        .reason("invalid_user_code"),
        UserCodeError::AlreadyDecided => ApiError::new(
            ErrorCode::Conflict,
            "this sign-in was already approved or denied",
        )
        .reason("already_decided"),
    }
}

// --- OAuth plumbing ---------------------------------------------------------------

/// A form or JSON body into `T`; anything else is `invalid_request` (a body
/// over the cap is the usual `413`).
async fn oauth_params<T: DeserializeOwned + Default>(
    state: &AppState,
    req: Request,
) -> Result<T, Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let too_large = |status: StatusCode| {
        (status == StatusCode::PAYLOAD_TOO_LARGE).then(|| {
            ApiError::new(ErrorCode::PayloadTooLarge, "the body is too large")
                .reason("payload_too_large")
                .into_response()
        })
    };
    match mime.as_str() {
        "application/x-www-form-urlencoded" => {
            match axum::Form::<T>::from_request(req, state).await {
                Ok(axum::Form(params)) => Ok(params),
                Err(rejection) => Err(too_large(rejection.status()).unwrap_or_else(|| {
                    oauth_error(&OAuthError::InvalidRequest(
                        "the form body could not be read",
                    ))
                })),
            }
        }
        "application/json" => {
            let body = Bytes::from_request(req, state).await.map_err(|rejection| {
                too_large(rejection.status()).unwrap_or_else(|| {
                    oauth_error(&OAuthError::InvalidRequest("the body could not be read"))
                })
            })?;
            serde_json::from_slice(&body).map_err(|_| {
                oauth_error(&OAuthError::InvalidRequest(
                    "the body must be a JSON object of strings",
                ))
            })
        }
        _ => Err(oauth_error(&OAuthError::InvalidRequest(
            "send the parameters as application/x-www-form-urlencoded or application/json",
        ))),
    }
}

/// Plain (not enveloped) JSON with `Cache-Control: no-store` and
/// `Pragma: no-cache` (RFC 6749 §5.1).
fn oauth_json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn oauth_error(e: &OAuthError) -> Response {
    let interval = match e {
        OAuthError::SlowDown { interval_secs } => Some(*interval_secs),
        _ => None,
    };
    oauth_json(
        StatusCode::BAD_REQUEST,
        &OAuthErrorResponse {
            error: e.code().into(),
            error_description: Some(e.description()),
            interval,
        },
    )
}

fn flow_error(e: DeviceFlowError) -> Response {
    match e {
        DeviceFlowError::OAuth(e) => oauth_error(&e),
        DeviceFlowError::Domain(e) => ApiError::from(e).into_response(),
    }
}
