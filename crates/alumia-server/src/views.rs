//! Domain → wire conversions. View types hold no secrets, so a response
//! cannot leak one by accident.

use alumia_core::clock::format_ts;
use alumia_core::model::*;
use alumia_types::dto::*;
use alumia_types::{Envelope, Page};
use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `200 {"success": true, "data": …}`.
pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope::ok(data)).into_response()
}

/// `201 {"success": true, "data": …}`.
pub fn created<T: Serialize>(data: T) -> Response {
    (StatusCode::CREATED, Json(Envelope::ok(data))).into_response()
}

/// `200` with a JSON body serialized ahead of time (the headers `Json` sets).
pub fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

pub fn page<T: Serialize>(items: Vec<T>, next_cursor: Option<String>) -> Response {
    ok(Page {
        has_more: next_cursor.is_some(),
        items,
        next_cursor,
    })
}

pub fn user(u: &User, security: Option<SecurityView>) -> UserView {
    UserView {
        id: u.id.to_string(),
        email: u.email.clone(),
        name: u.name.clone(),
        preferences: serde_json::to_value(&u.preferences).unwrap_or_default(),
        created_at: format_ts(u.created_at),
        updated_at: format_ts(u.updated_at),
        security,
    }
}

pub fn org(o: &Org) -> OrgView {
    OrgView {
        id: o.id.to_string(),
        slug: o.slug.clone(),
        name: o.name.clone(),
        settings: serde_json::to_value(&o.settings).unwrap_or_default(),
        created_at: format_ts(o.created_at),
        updated_at: format_ts(o.updated_at),
    }
}

pub fn org_role(m: &OrgMembership) -> OrgRoleView {
    OrgRoleView {
        id: m.org.id.to_string(),
        slug: m.org.slug.clone(),
        name: m.org.name.clone(),
        role: m.role.as_str().to_string(),
    }
}

pub fn member(m: &Member) -> MemberView {
    MemberView {
        user_id: m.user_id.to_string(),
        email: m.email.clone(),
        name: m.name.clone(),
        role: m.role.as_str().to_string(),
        created_at: format_ts(m.created_at),
    }
}

pub fn workspace(w: &Workspace) -> WorkspaceView {
    WorkspaceView {
        id: w.id.to_string(),
        org_id: w.org_id.to_string(),
        name: w.name.clone(),
        slug: w.slug.clone(),
        description: w.description.clone(),
        is_default: w.is_default,
        member_count: w.member_count,
        created_at: format_ts(w.created_at),
        updated_at: format_ts(w.updated_at),
    }
}

pub fn api_key(k: &ApiKey) -> ApiKeyView {
    ApiKeyView {
        id: k.id.to_string(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        scopes: k.scopes.clone(),
        created_via: k.created_via.as_str().to_string(),
        last_used_at: k.last_used_at.map(format_ts),
        expires_at: k.expires_at.map(format_ts),
        created_at: format_ts(k.created_at),
    }
}

pub fn audit_event(e: &AuditEvent) -> AuditEventView {
    AuditEventView {
        id: e.id.to_string(),
        kind: e.kind.clone(),
        actor: serde_json::json!({
            "kind": e.actor_kind,
            "userId": e.actor_user_id.map(|u| u.to_string()),
            "keyId": e.actor_key_id.map(|u| u.to_string()),
        }),
        ip: e.ip.clone(),
        target: serde_json::json!({ "kind": e.target_kind, "id": e.target_id }),
        data: e.data.clone(),
        created_at: format_ts(e.created_at),
    }
}

/// The user as `/me` and `/auth/session` show them, with `security`.
pub async fn user_with_security(
    state: &crate::state::AppState,
    user_id: uuid::Uuid,
) -> Result<UserView, alumia_core::DomainError> {
    let user = state
        .store
        .get_user(user_id)
        .await?
        .ok_or(alumia_core::DomainError::NotFound)?;
    let (totp_enabled, recovery_codes_remaining) = state.identity.security_summary(user_id).await?;
    Ok(self::user(
        &user,
        Some(SecurityView {
            totp_enabled,
            passkey_count: 0,
            recovery_codes_remaining,
        }),
    ))
}
