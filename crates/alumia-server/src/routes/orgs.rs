//! The caller's orgs, the current org, and its members.

use alumia_core::DomainError;
use alumia_core::identity::KeyInvalidation;
use alumia_core::model::Role;
use alumia_types::dto::CreateOrgRequest;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, Client, parse_id};
use crate::state::AppState;
use crate::views::{self, ok};

/// `GET /api/v1/orgs`: browser sessions only; a key lives in one org.
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    p.require_browser_session()?;
    let orgs = state
        .store
        .list_user_orgs(p.user_id)
        .await
        .map_err(DomainError::from)?;
    Ok(views::page(
        orgs.iter().map(views::org_role).collect(),
        None,
    ))
}

/// `POST /api/v1/orgs`: browser sessions; the caller becomes the owner.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    ApiJson(req): ApiJson<CreateOrgRequest>,
) -> ApiResult<Response> {
    let org = state
        .identity
        .create_org(&p, &req.slug, &req.name, &client)
        .await?;
    Ok(views::created(views::org(&org)))
}

/// `GET /api/v1/org`
pub async fn current(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    let org = state
        .store
        .get_org(p.org.org_id())
        .await
        .map_err(DomainError::from)?
        .ok_or(DomainError::NotFound)?;
    Ok(ok(views::org(&org)))
}

/// `GET /api/v1/org/members`, by email.
pub async fn members(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    let members = state
        .store
        .list_members(&p.org)
        .await
        .map_err(DomainError::from)?;
    Ok(views::page(
        members.iter().map(views::member).collect(),
        None,
    ))
}

/// `DELETE /api/v1/org/members/:userId`: admin (or self), browser session
/// with step-up. Only owners remove owners; the last owner stays. The
/// removed user's keys stop working on their next request.
pub async fn remove_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    Path(user_id): Path<String>,
) -> ApiResult<Response> {
    p.require_step_up(state.clock.now(), state.settings.auth.step_up_window_secs)?;
    let target = parse_id(&user_id)?;
    if target != p.user_id {
        p.require_role(Role::Admin)?;
    }
    let members = state
        .store
        .list_members(&p.org)
        .await
        .map_err(DomainError::from)?;
    let member = members
        .iter()
        .find(|m| m.user_id == target)
        .ok_or(DomainError::NotFound)?;
    if member.role == Role::Owner {
        if target != p.user_id {
            p.require_role(Role::Owner)?;
        }
        if members.iter().filter(|m| m.role == Role::Owner).count() == 1 {
            return Err(
                DomainError::conflict("last_owner", "an org must keep at least one owner").into(),
            );
        }
    }
    state
        .store
        .remove_member(&p.org, target)
        .await
        .map_err(DomainError::from)?;
    state
        .identity
        .invalidate_keys(KeyInvalidation::Member {
            org: p.org.org_id(),
            user: target,
        })
        .await;
    let event = alumia_core::model::AuditEvent {
        id: alumia_core::new_id(),
        kind: "member.removed".into(),
        actor_kind: p.kind_name().into(),
        actor_user_id: Some(p.user_id),
        actor_key_id: p.key_id(),
        ip: client.ip.clone(),
        target_kind: "user".into(),
        target_id: target.to_string(),
        data: json!({ "role": member.role.as_str() }),
        created_at: state.clock.now(),
    };
    let _ = state.store.record_audit(&p.org, &event).await;
    Ok(ok(json!({ "userId": target.to_string(), "deleted": true })))
}
