//! `/api/v1/sessions` (spec 03 §2) and `GET /api/v1/agents/:id/sessions`.

use std::collections::HashMap;

use alumia_core::DomainError;
use alumia_core::clock::{format_ts, to_millis};
use alumia_core::model::{AgentRef, ChatSession, Participant, SessionFilter};
use alumia_core::sessions::{STATUSES, SessionInput, Sessions};
use alumia_types::dto::{ParticipantView, SessionRequest, SessionView};
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiJsonRaw, ApiQuery, Auth, parse_id};
use crate::idempotency::{self, IdempotencyKey};
use crate::routes::{ListQuery, finish_page};
use crate::state::AppState;
use crate::views::{self, ok};

pub(crate) fn sessions(state: &AppState) -> Sessions<'_> {
    Sessions {
        store: state.store.as_ref(),
        now: state.clock.now(),
    }
}

fn view(s: &ChatSession, participants: Option<&[Participant]>) -> SessionView {
    SessionView {
        id: s.id.to_string(),
        org_id: s.org_id.to_string(),
        workspace_id: s.workspace_id.to_string(),
        project_id: s.project_id.map(|u| u.to_string()),
        agent_id: s.agent_id.map(|u| u.to_string()),
        user_id: s.user_id.to_string(),
        label: s.label.clone(),
        status: s.status.clone(),
        relationship: s.relationship.clone(),
        running_turn: s.running_turn.clone(),
        metadata: s.metadata.clone(),
        message_count: s.message_count,
        last_message_at: s.last_message_at.map(format_ts),
        created_at: format_ts(s.created_at),
        updated_at: format_ts(s.updated_at),
        participants: participants.map(|ps| {
            ps.iter()
                .map(|p| ParticipantView {
                    kind: p.kind.clone(),
                    id: p.id.to_string(),
                    joined_at: format_ts(p.joined_at),
                })
                .collect()
        }),
        agent_name: None,
        agent_avatar: None,
    }
}

fn input(req: SessionRequest) -> SessionInput {
    SessionInput {
        label: req.label,
        project_id: req.project_id,
        agent_id: req.agent_id,
        metadata: req.metadata,
        status: req.status,
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SessionQuery {
    #[serde(flatten)]
    pub page: ListQuery,
    pub agent_id: Option<String>,
    pub status: Option<String>,
    pub project_id: Option<String>,
}

/// List items add the agent's name and avatar.
async fn list_page(
    state: &AppState,
    p: &alumia_core::Principal,
    filter: SessionFilter,
    q: &ListQuery,
    key: &str,
) -> ApiResult<Response> {
    let filter_key = format!("sessions:{}:{}:{key}", p.org.org_id(), p.user_id);
    let (request, limit) = q.page_request(&filter_key)?;
    let rows = sessions(state).list(p, &filter, request).await?;
    let (rows, next) = finish_page(rows, limit, &filter_key, |s| {
        (to_millis(s.updated_at), s.id)
    });
    let mut names: HashMap<Uuid, (String, String)> = HashMap::new();
    for id in rows.iter().filter_map(|s| s.agent_id) {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id)
            && let Some(agent) = state
                .store
                .get_agent(&p.org, &AgentRef::Id(id))
                .await
                .map_err(DomainError::from)?
        {
            slot.insert((agent.name, agent.avatar));
        }
    }
    let items = rows
        .iter()
        .map(|s| {
            let mut v = view(s, None);
            if let Some((name, avatar)) = s.agent_id.and_then(|id| names.get(&id)) {
                v.agent_name = Some(name.clone());
                v.agent_avatar = Some(avatar.clone());
            }
            v
        })
        .collect();
    Ok(views::page(items, next))
}

/// `GET /api/v1/sessions`: `updatedAt` desc; `archived` only when asked for.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> ApiResult<Response> {
    if let Some(status) = &q.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(DomainError::invalid("status", "is not a session status").into());
    }
    let agent_id = match q.agent_id.as_deref() {
        Some(raw) => Some(super::agents::service(&state).get(&p, raw).await?.id),
        None => None,
    };
    let project_id = match q.project_id.as_deref() {
        Some(raw) => Some(super::projects::service(&state).get(&p, raw).await?.id),
        None => None,
    };
    let filter = SessionFilter {
        agent_id,
        project_id,
        include_archived: q.status.as_deref() == Some("archived"),
        status: q.status.clone(),
    };
    let key = format!(
        "{:?}:{:?}:{:?}",
        filter.agent_id, filter.status, filter.project_id
    );
    list_page(&state, &p, filter, &q.page, &key).await
}

/// `GET /api/v1/agents/:id/sessions`
pub async fn of_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let agent = super::agents::service(&state).get(&p, &id).await?;
    let filter = SessionFilter {
        agent_id: Some(agent.id),
        ..SessionFilter::default()
    };
    list_page(&state, &p, filter, &q, &format!("agent:{}", agent.id)).await
}

/// `POST /api/v1/sessions` → 201 with participants. Supports `Idempotency-Key`.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    IdempotencyKey(key): IdempotencyKey,
    ApiJsonRaw(req, raw): ApiJsonRaw<SessionRequest>,
) -> ApiResult<Response> {
    let fingerprint = idempotency::fingerprint("POST", "/api/v1/sessions", &[], &raw);
    idempotency::run(&state, &p, key, &fingerprint, || async {
        if req.status.is_some() {
            return Err(DomainError::invalid("status", "is set by the server on create").into());
        }
        let session = sessions(&state)
            .create(&p, input(req), &super::agents::service(&state))
            .await?;
        let participants = state
            .store
            .list_participants(&p.org, session.id)
            .await
            .map_err(DomainError::from)?;
        Ok(views::created(view(&session, Some(&participants))))
    })
    .await
}

/// `GET /api/v1/sessions/:id`, with participants.
pub async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let session = sessions(&state).get(&p, parse_id(&id)?).await?;
    let participants = state
        .store
        .list_participants(&p.org, session.id)
        .await
        .map_err(DomainError::from)?;
    Ok(ok(view(&session, Some(&participants))))
}

/// `PATCH /api/v1/sessions/:id`: `label`, `metadata`, `status` (active, idle, archived).
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SessionRequest>,
) -> ApiResult<Response> {
    let session = sessions(&state)
        .update(&p, parse_id(&id)?, input(req))
        .await?;
    Ok(ok(view(&session, None)))
}

/// `DELETE /api/v1/sessions/:id`: soft delete.
pub async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    sessions(&state).delete(&p, id).await?;
    // A running turn here stops now; on another replica, at its next save.
    state.runtime.cancel_local(&p, id);
    Ok(ok(
        json!({ "id": id.to_string(), "deletedAt": format_ts(state.clock.now()) }),
    ))
}
