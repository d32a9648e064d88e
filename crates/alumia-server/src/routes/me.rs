use alumia_core::DomainError;
use alumia_core::principal::PrincipalKind;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::error::ApiResult;
use crate::extract::Auth;
use crate::state::AppState;
use crate::views::{self, ok};

/// `GET /api/v1/me`: who this credential is, where, and with what.
pub async fn get(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    let user = views::user_with_security(&state, p.user_id).await?;
    let org = state
        .store
        .get_org(p.org.org_id())
        .await
        .map_err(DomainError::from)?
        .ok_or(DomainError::NotFound)?;
    let principal = match &p.kind {
        PrincipalKind::ApiKey { key_id, prefix } => json!({
            "kind": "api_key", "keyId": key_id.to_string(), "keyPrefix": prefix, "scopes": p.scopes,
        }),
        PrincipalKind::Session { .. } => json!({ "kind": "session", "scopes": p.scopes }),
    };
    Ok(ok(json!({
        "user": user,
        "org": views::org(&org),
        "role": p.role.as_str(),
        "principal": principal,
        "activeWorkspaceId": p.active_workspace_id.map(|id| id.to_string()),
    })))
}
