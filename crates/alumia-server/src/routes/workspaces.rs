//! Workspace reads and switching (mutations come with P5).

use alumia_core::DomainError;
use alumia_types::dto::SwitchWorkspaceRequest;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, parse_id};
use crate::state::AppState;
use crate::views::{self, ok};

/// `GET /api/v1/workspaces`: accessible ones, default first, then by name.
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    let items = state
        .store
        .list_workspaces(&p.org, p.user_id, p.role)
        .await
        .map_err(DomainError::from)?;
    Ok(views::page(
        items.iter().map(views::workspace).collect(),
        None,
    ))
}

/// `GET /api/v1/workspaces/:id`: 404 when not accessible (or another org's).
pub async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let ws = state
        .store
        .get_workspace(&p.org, p.user_id, p.role, id)
        .await
        .map_err(DomainError::from)?
        .ok_or(DomainError::NotFound)?;
    Ok(ok(views::workspace(&ws)))
}

/// `POST /api/v1/workspaces/switch`: on the session, or on the calling key.
pub async fn switch(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<SwitchWorkspaceRequest>,
) -> ApiResult<Response> {
    let invalid = || DomainError::invalid_reference("workspaceId");
    let id = Uuid::parse_str(&req.workspace_id).map_err(|_| invalid())?;
    state
        .store
        .get_workspace(&p.org, p.user_id, p.role, id)
        .await
        .map_err(DomainError::from)?
        .ok_or_else(invalid)?;
    match (p.session_id(), p.key_id()) {
        (Some(session), _) => {
            state
                .store
                .set_session_context(session, None, Some(id))
                .await
        }
        (None, Some(key)) => state.store.set_key_workspace(&p.org, key, id).await,
        (None, None) => Ok(()),
    }
    .map_err(DomainError::from)?;
    if let Some(key) = p.key_id() {
        // The cached grant holds the key's active workspace.
        state
            .identity
            .invalidate_keys(alumia_core::identity::KeyInvalidation::Key { id: key })
            .await;
    }
    Ok(ok(json!({ "activeWorkspaceId": id.to_string() })))
}
