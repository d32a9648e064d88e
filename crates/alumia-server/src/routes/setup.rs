use alumia_core::identity::SignupInput;
use alumia_core::limits::Bucket;
use alumia_types::dto::SetupRequest;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::limiter::charge;
use crate::middleware::check_origin;
use crate::routes::auth::set_session_cookie;
use crate::state::AppState;
use crate::views::{self, ok};

/// `GET /api/v1/setup`
pub async fn status(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(ok(json!({
        "required": state.identity.setup_required().await?,
        "tokenRequired": state.settings.setup_token.is_some(),
    })))
}

/// `POST /api/v1/setup`: the first owner and org, only while no user exists.
pub async fn create(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SetupRequest>,
) -> ApiResult<Response> {
    check_origin(&state, &headers)?;
    charge(&state, Bucket::Setup, &ip.bucket_key()).await?;
    if let Some(expected) = &state.settings.setup_token {
        let given = req.setup_token.as_deref().unwrap_or_default();
        if given.is_empty() || !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(alumia_core::DomainError::forbidden(
                "invalid_setup_token",
                "the setup token is missing or wrong; it is printed in the server log",
            )
            .into());
        }
    }
    let client = crate::extract::client_info(ip, &headers);
    let (user, orgs, start) = state
        .identity
        .setup(
            SignupInput {
                email: req.email,
                password: req.password,
                name: req.name,
                org_slug: req.org_slug,
                org_name: req.org_name,
            },
            &client,
        )
        .await
        .map_err(ApiError::from)?;
    let mut response = views::created(json!({
        "user": views::user(&user, None),
        "orgs": orgs.iter().map(views::org_role).collect::<Vec<_>>(),
        "csrfToken": start.session.csrf_token,
    }));
    set_session_cookie(&state, &mut response, &start.token);
    Ok(response)
}
