//! Sharing a project (spec 06 §5).
//!
//! - `POST/DELETE /api/v1/projects/:id/share` and `POST …/share/invite`:
//!   browser session with a fresh step-up, creator or org admin.
//! - `POST /api/v1/share/invite/:token/accept`: a signed-in member of the
//!   same org joins the project.
//! - `GET /api/v1/share/project/:token`: the public read-only payload, no
//!   credential; every `GET /api/v1/share/*` takes a `public-share` token
//!   (client IP) first, so guessing tokens is as slow as the bucket.
//!   Unknown, revoked and malformed tokens are the same 404.

use alumia_core::DomainError;
use alumia_core::clock::format_ts;
use alumia_core::limits::Bucket;
use alumia_core::model::{AgentRef, SessionFilter};
use alumia_core::sharing::{SharedProject, Sharing};
use alumia_core::store::PageRequest;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client_ip::ClientIp;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth};
use crate::limiter::charge;
use crate::state::AppState;
use crate::views::ok;

/// Sessions and messages a share payload carries at most.
const SHARED_SESSIONS: u32 = 50;
const SHARED_MESSAGES: u32 = 200;

fn service(state: &AppState) -> Sharing<'_> {
    Sharing {
        store: state.store.as_ref(),
        secret: state.identity.secret(),
        now: state.clock.now(),
        step_up_window_secs: state.settings.auth.step_up_window_secs,
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareRequest {
    #[serde(default)]
    pub rotate: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteRequest {
    pub role: Option<String>,
    pub expires_in_days: Option<i64>,
}

/// `POST /api/v1/projects/:id/share` `{rotate?}`.
pub async fn enable(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: Option<ApiJson<ShareRequest>>,
) -> ApiResult<Response> {
    let rotate = body.map(|ApiJson(b)| b.rotate).unwrap_or(false);
    let (_, grant) = service(&state).enable(&p, &id, rotate).await?;
    Ok(ok(json!({
        "enabled": true,
        "token": grant.token,
        "shareUrl": format!("{}/share/project/{}", state.settings.public_url, grant.token),
        "createdAt": format_ts(grant.created_at),
    })))
}

/// `DELETE /api/v1/projects/:id/share`: the token stops working at once.
pub async fn disable(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    service(&state).disable(&p, &id).await?;
    Ok(ok(json!({ "enabled": false })))
}

/// `POST /api/v1/projects/:id/share/invite` `{role?, expiresInDays?}`.
pub async fn invite(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: Option<ApiJson<InviteRequest>>,
) -> ApiResult<Response> {
    let req = body.map(|ApiJson(b)| b).unwrap_or_default();
    let (token, invite) = service(&state)
        .invite(&p, &id, req.role, req.expires_in_days)
        .await?;
    Ok(ok(json!({
        "inviteUrl": format!("{}/invite/project/{token}", state.settings.public_url),
        "role": invite.role,
        "expiresAt": format_ts(invite.expires_at),
    })))
}

/// `POST /api/v1/share/invite/:token/accept`.
pub async fn accept(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let member = service(&state).accept(&p, &token).await?;
    Ok(ok(json!({
        "projectId": member.project_id.to_string(),
        "role": member.role,
    })))
}

/// `GET /api/v1/share/project/:token`: the read-only payload.
pub async fn public_project(
    State(state): State<AppState>,
    ip: ClientIp,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    charge(&state, Bucket::PublicShare, &ip.bucket_key()).await?;
    let shared = service(&state).open(&token).await?;
    let payload = payload(&state, &shared).await?;
    let mut response = ok(payload);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

/// `GET /api/v1/share/lab/:token`: the old name, `308` to the project route.
pub async fn public_lab(
    State(state): State<AppState>,
    ip: ClientIp,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    charge(&state, Bucket::PublicShare, &ip.bucket_key()).await?;
    if !alumia_core::sharing::well_formed(&token) {
        return Err(DomainError::NotFound.into());
    }
    Ok(Redirect::permanent(&format!("/api/v1/share/project/{token}")).into_response())
}

/// Parts a viewer sees: text and tool calls; reasoning, files, sources and
/// data parts stay private.
fn shared_parts(parts: &Value) -> Value {
    let keep = |part: &&Value| {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        kind == "text" || kind.starts_with("tool-") || kind == "dynamic-tool"
    };
    Value::Array(
        parts
            .as_array()
            .map(|a| a.iter().filter(keep).cloned().collect())
            .unwrap_or_default(),
    )
}

/// What a share link shows: the project's face, its canvas and its
/// sessions. Nothing else of the org (spec 06 §5, "never shared").
async fn payload(state: &AppState, shared: &SharedProject) -> ApiResult<Value> {
    let (org, project) = (shared.org, &shared.project);
    let store = state.store.as_ref();
    let filter = SessionFilter {
        project_id: Some(project.id),
        ..SessionFilter::default()
    };
    let page = PageRequest {
        limit: SHARED_SESSIONS,
        after: None,
    };
    let sessions = store
        .list_chat_sessions(&org, None, &filter, page)
        .await
        .map_err(DomainError::from)?;
    let mut shared_sessions = Vec::new();
    for s in &sessions {
        let agent = match s.agent_id {
            Some(id) => store
                .get_agent(&org, &AgentRef::Id(id))
                .await
                .map_err(DomainError::from)?,
            None => None,
        };
        let mut messages = store
            .list_messages(&org, s.id, None, true, SHARED_MESSAGES)
            .await
            .map_err(DomainError::from)?;
        messages.reverse();
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "role": m.role,
                    "parts": shared_parts(&m.parts),
                    "createdAt": format_ts(m.created_at),
                })
            })
            .collect();
        let (agent_name, agent_avatar) = agent
            .as_ref()
            .map(|a| (a.name.clone(), a.avatar.clone()))
            .unzip();
        shared_sessions.push(json!({
            "id": s.id.to_string(),
            "label": s.label,
            "agentName": agent_name,
            "agentAvatar": agent_avatar,
            "messages": messages,
        }));
    }
    let canvas = crate::routes::blocks::canvas_parts(state, &org, project).await?;
    let blocks: Vec<_> = canvas
        .blocks
        .iter()
        .map(|b| {
            let v = crate::routes::blocks::view(b);
            // The block as shown, without who made it or where it lives.
            json!({
                "id": v.id,
                "type": v.block_type,
                "title": v.title,
                "data": v.data,
                "position": v.position,
                "updatedAt": v.updated_at,
            })
        })
        .collect();
    Ok(json!({
        "project": {
            "name": project.name,
            "description": project.description,
            "emoji": project.emoji,
        },
        "blocks": blocks,
        "edges": canvas.edges,
        "agentNodes": canvas.agent_nodes,
        "sessions": shared_sessions,
        "sharedAt": format_ts(shared.shared_at),
    }))
}

/// `/share/:token` → `/share/project/:token`.
pub async fn page_redirect(Path(token): Path<String>) -> Response {
    if !alumia_core::sharing::well_formed(&token) {
        return StatusCode::NOT_FOUND.into_response();
    }
    Redirect::permanent(&format!("/share/project/{token}")).into_response()
}
