//! Browser sign-in: login, logout, the session, step-up and TOTP.

use alumia_core::DomainError;
use alumia_core::clock::format_ts;
use alumia_core::identity::{LoginInput, StepUpFactor};
use alumia_core::limits::Bucket;
use alumia_core::principal::PrincipalKind;
use alumia_types::dto::{CodeRequest, LoginRequest, StepUpRequest, SwitchOrgRequest};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use chrono::Duration;
use serde_json::json;

use crate::client_ip::ClientIp;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, Client, client_info};
use crate::limiter::charge;
use crate::middleware::{SESSION_COOKIE, check_origin};
use crate::state::AppState;
use crate::views::{self, ok};

/// `alumia_session=…; HttpOnly; SameSite=Lax; Path=/` (+ `Secure` over https).
pub fn set_session_cookie(state: &AppState, response: &mut Response, token: &str) {
    let secure = if state.settings.is_https() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        state.settings.auth.session_max_age_secs
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn clear_session_cookie(state: &AppState, response: &mut Response) {
    let secure = if state.settings.is_https() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `POST /api/v1/auth/login`. Buckets: `login` per IP, and `login-account`
/// per email, charged before the password is checked so a locked account
/// stays locked even for a right guess.
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    check_origin(&state, &headers)?;
    charge(&state, Bucket::Login, &ip.bucket_key()).await?;
    charge(
        &state,
        Bucket::LoginAccount,
        &req.email.trim().to_lowercase(),
    )
    .await?;
    let outcome = state
        .identity
        .login(
            LoginInput {
                email: req.email,
                password: req.password,
                totp_code: req.totp_code,
                recovery_code: req.recovery_code,
                org_slug: req.org_slug,
            },
            &client_info(ip, &headers),
        )
        .await?;
    let mut response = ok(json!({
        "user": views::user(&outcome.user, None),
        "orgs": outcome.orgs.iter().map(views::org_role).collect::<Vec<_>>(),
        "currentOrgId": outcome.current_org_id.map(|id| id.to_string()),
        "csrfToken": outcome.start.session.csrf_token,
    }));
    set_session_cookie(&state, &mut response, &outcome.start.token);
    Ok(response)
}

/// `POST /api/v1/auth/logout`: deletes the session and clears the cookie.
pub async fn logout(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    state.identity.logout(&p).await?;
    let mut response = ok(json!({ "loggedOut": true }));
    clear_session_cookie(&state, &mut response);
    Ok(response)
}

/// `GET /api/v1/auth/session`
pub async fn session(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    p.require_browser_session()?;
    let PrincipalKind::Session {
        csrf_token,
        step_up_at,
        ..
    } = &p.kind
    else {
        return Err(DomainError::NotFound.into());
    };
    let user = views::user_with_security(&state, p.user_id).await?;
    let orgs = state
        .store
        .list_user_orgs(p.user_id)
        .await
        .map_err(DomainError::from)?;
    let totp = user.security.as_ref().is_some_and(|s| s.totp_enabled);
    let window = Duration::seconds(state.settings.auth.step_up_window_secs);
    Ok(ok(json!({
        "user": user,
        "currentOrgId": p.org.org_id().to_string(),
        "orgs": orgs.iter().map(views::org_role).collect::<Vec<_>>(),
        "role": p.role.as_str(),
        "csrfToken": csrf_token,
        "activeWorkspaceId": p.active_workspace_id.map(|id| id.to_string()),
        "stepUpExpiresAt": step_up_at.map(|at| format_ts(at + window)),
        "authMethods": { "password": true, "totp": totp, "passkeys": false },
    })))
}

/// `POST /api/v1/auth/session/org`: switch the session's current org.
pub async fn switch_org(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<SwitchOrgRequest>,
) -> ApiResult<Response> {
    let org = state.identity.switch_org(&p, &req.org).await?;
    Ok(ok(
        json!({ "currentOrgId": org.id.to_string(), "org": views::org(&org) }),
    ))
}

/// `POST /api/v1/auth/step-up`: `{password}` or `{totpCode}`. Every attempt
/// spends a `step-up` token (5, one back every 180 s): the lockout.
pub async fn step_up(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    ApiJson(req): ApiJson<StepUpRequest>,
) -> ApiResult<Response> {
    let session_id = p.require_browser_session()?;
    let factor = match (req.password, req.totp_code, req.passkey) {
        (Some(pw), None, None) => StepUpFactor::Password(pw),
        (None, Some(code), None) => StepUpFactor::Totp(code),
        (None, None, Some(_)) => {
            return Err(DomainError::invalid_with_reason(
                "factor_not_enrolled",
                "passkey",
                "passkeys are not enrolled on this server",
            )
            .into());
        }
        _ => {
            return Err(DomainError::invalid(
                "password",
                "send exactly one of password or totpCode",
            )
            .into());
        }
    };
    charge(&state, Bucket::StepUp, &session_id.to_string()).await?;
    let (token, expires_at) = state.identity.step_up(&p, factor, &client).await?;
    let mut response = ok(json!({ "stepUpExpiresAt": format_ts(expires_at) }));
    set_session_cookie(&state, &mut response, &token);
    Ok(response)
}

/// `POST /api/v1/auth/totp/enroll` → `{secret, otpauthUrl}` (not active yet).
pub async fn totp_enroll(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    let (secret, url) = state.identity.totp_enroll(&p).await?;
    Ok(ok(json!({ "secret": secret, "otpauthUrl": url })))
}

/// `POST /api/v1/auth/totp/confirm` → `{enabled, recoveryCodes}` (shown once).
pub async fn totp_confirm(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<Response> {
    let codes = state.identity.totp_confirm(&p, &req.code, &client).await?;
    Ok(ok(json!({ "enabled": true, "recoveryCodes": codes })))
}

/// `DELETE /api/v1/auth/totp`
pub async fn totp_disable(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
) -> ApiResult<Response> {
    state.identity.totp_disable(&p, &client).await?;
    Ok(ok(json!({ "enabled": false })))
}
