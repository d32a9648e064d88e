//! `/api/v1/agents`: list, create, read, update, soft delete (spec 03 §1).

use alumia_core::DomainError;
use alumia_core::agents::{AgentInput, Agents};
use alumia_core::clock::{format_ts, to_millis};
use alumia_core::model::Agent;
use alumia_types::dto::{AgentRequest, AgentView};
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiJsonRaw, ApiQuery, Auth};
use crate::idempotency::{self, IdempotencyKey};
use crate::routes::{ListQuery, finish_page};
use crate::state::AppState;
use crate::views::{self, ok};

pub(crate) fn service(state: &AppState) -> Agents<'_> {
    Agents {
        store: state.store.as_ref(),
        now: state.clock.now(),
        step_up_window_secs: state.settings.auth.step_up_window_secs,
        models: state.runtime.catalog.as_ref(),
    }
}

/// The org's default model, which Ala (and agents without one) report.
async fn default_model(state: &AppState, p: &alumia_core::Principal) -> ApiResult<String> {
    Ok(state.runtime.org_default_model(p).await?)
}

fn view(a: &Agent, default_model: &str) -> AgentView {
    AgentView {
        id: a.id.to_string(),
        org_id: a.org_id.to_string(),
        workspace_id: a.workspace_id.map(|w| w.to_string()),
        shared_workspace_ids: a
            .shared_workspace_ids
            .iter()
            .map(|w| w.to_string())
            .collect(),
        name: a.name.clone(),
        slug: a.slug.clone(),
        description: a.description.clone(),
        avatar: a.avatar.clone(),
        model: match (&a.model, a.is_default) {
            (Some(m), false) => m.clone(),
            _ => default_model.to_string(),
        },
        system_prompt: a.system_prompt.clone(),
        allowed_tools: a.allowed_tools.clone(),
        allowed_peers: a.allowed_peers.clone(),
        allowed_connectors: a.allowed_connectors.clone(),
        skills: a.skills.clone(),
        is_default: a.is_default,
        is_active: a.is_active,
        settings: a.settings.clone(),
        created_by: a.created_by.map(|u| u.to_string()),
        created_at: format_ts(a.created_at),
        updated_at: format_ts(a.updated_at),
    }
}

fn input(req: AgentRequest) -> AgentInput {
    AgentInput {
        name: req.name,
        slug: req.slug,
        description: req.description,
        avatar: req.avatar,
        model: req.model,
        system_prompt: req.system_prompt,
        workspace_id: req.workspace_id,
        allowed_tools: req.allowed_tools,
        allowed_peers: req.allowed_peers,
        allowed_connectors: req.allowed_connectors,
        is_active: req.is_active,
        settings: req.settings,
    }
}

/// `GET /api/v1/agents`: accessible agents, `updatedAt` desc, Ala always included.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let filter = format!("agents:{}:{}", p.org.org_id(), p.user_id);
    let (request, limit) = q.page_request(&filter)?;
    let agents = service(&state).list(&p, request).await?;
    let (agents, next) = finish_page(agents, limit, &filter, |a| (to_millis(a.updated_at), a.id));
    let default = default_model(&state, &p).await?;
    Ok(views::page(
        agents.iter().map(|a| view(a, &default)).collect(),
        next,
    ))
}

/// `POST /api/v1/agents` → 201.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    IdempotencyKey(key): IdempotencyKey,
    ApiJsonRaw(req, raw): ApiJsonRaw<AgentRequest>,
) -> ApiResult<Response> {
    let fingerprint = idempotency::fingerprint("POST", "/api/v1/agents", &[], &raw);
    idempotency::run(&state, &p, key, &fingerprint, || async {
        let agent = service(&state).create(&p, input(req)).await?;
        let default = default_model(&state, &p).await?;
        Ok(views::created(view(&agent, &default)))
    })
    .await
}

/// `GET /api/v1/agents/:id` (uuid or slug).
pub async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let agent = service(&state).get(&p, &id).await?;
    let default = default_model(&state, &p).await?;
    Ok(ok(view(&agent, &default)))
}

/// `PATCH /api/v1/agents/:id`: partial.
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AgentRequest>,
) -> ApiResult<Response> {
    let agent = service(&state).update(&p, &id, input(req)).await?;
    let default = default_model(&state, &p).await?;
    Ok(ok(view(&agent, &default)))
}

/// `DELETE /api/v1/agents/:id`: soft delete → `{id, deletedAt}`.
pub async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let agent = service(&state).delete(&p, &id).await?;
    Ok(ok(
        json!({ "id": agent.id.to_string(), "deletedAt": format_ts(state.clock.now()) }),
    ))
}

/// `GET /api/v1/agents/:id/peers`: agents it may message.
pub async fn peers(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let agent = service(&state).get(&p, &id).await?;
    let peers = alumia_runtime::tools::peers(&state.runtime, &p, &agent).await?;
    let items: Vec<_> = peers.iter().map(alumia_runtime::tools::peer_view).collect();
    Ok(views::page(items, None))
}

/// `GET /api/v1/agents/:id/messages`: recent peer messages it sent or
/// received, newest first.
pub async fn messages(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let agent = service(&state).get(&p, &id).await?;
    // Newest first, up to `limit`; there is no cursor on this list.
    let (_, limit) = q.page_request("agent-messages")?;
    let rows = state
        .store
        .list_peer_messages(&p.org, agent.id, limit)
        .await
        .map_err(DomainError::from)?;
    let items: Vec<_> = rows
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "sessionId": m.session_id, "fromAgentId": m.from_agent_id,
                "toAgentId": m.to_agent_id, "text": m.text, "createdAt": format_ts(m.created_at),
                "readAt": m.read_at.map(format_ts),
            })
        })
        .collect();
    Ok(views::page(items, None))
}
