//! `/api/v1/sessions/:id/messages`: the stored conversation (spec 03 §2–§3).

use alumia_core::DomainError;
use alumia_core::chat_store::ChatMessage;
use alumia_core::clock::format_ts;
use alumia_types::dto::{MessageAuthor, MessageView};
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{ApiJsonRaw, ApiQuery, Auth, parse_id};
use crate::idempotency::{self, IdempotencyKey};
use crate::routes::ListQuery;
use crate::routes::sessions::sessions;
use crate::state::AppState;
use crate::views;

pub fn view(m: &ChatMessage) -> MessageView {
    MessageView {
        id: m.id.clone(),
        session_id: m.session_id.to_string(),
        role: m.role.clone(),
        parts: m.parts.clone(),
        text: m.text.clone(),
        author: MessageAuthor {
            kind: m.author_kind.clone(),
            id: m.author_id.map(|a| a.to_string()),
        },
        status: m.status.clone(),
        model: m.model.clone(),
        finish_reason: m.finish_reason.clone(),
        usage: m.usage.clone(),
        metadata: m.metadata.clone(),
        created_at: format_ts(m.created_at),
        updated_at: format_ts(m.updated_at),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct MessageQuery {
    #[serde(flatten)]
    pub page: ListQuery,
    pub order: Option<String>,
}

/// `GET /api/v1/sessions/:id/messages`: `order=asc` (default) or `desc`.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> ApiResult<Response> {
    let session = sessions(&state).get(&p, parse_id(&id)?).await?;
    let descending = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(DomainError::invalid("order", "must be asc or desc").into()),
    };
    let filter = format!("messages:{}:{descending}", session.id);
    let (request, limit) = q.page.page_request(&filter)?;
    let mut rows = state
        .store
        .list_messages(
            &p.org,
            session.id,
            request.after.map(|(seq, _)| seq),
            descending,
            request.limit,
        )
        .await
        .map_err(DomainError::from)?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        let last = rows.last().expect("non-empty after truncate");
        Some(alumia_core::cursor::encode(last.seq, Uuid::nil(), &filter))
    } else {
        None
    };
    Ok(views::page(rows.iter().map(view).collect(), next))
}

/// `POST /api/v1/sessions/:id/messages`: stores a message, never starts a
/// turn; refused while one runs.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJsonRaw(body, raw): ApiJsonRaw<Value>,
) -> ApiResult<Response> {
    let session = sessions(&state).get(&p, parse_id(&id)?).await?;
    let session_id = session.id.to_string();
    let fingerprint = idempotency::fingerprint(
        "POST",
        "/api/v1/sessions/{id}/messages",
        &[&session_id],
        &raw,
    );
    idempotency::run(&state, &p, key, &fingerprint, || async {
        if !matches!(
            body.get("role").and_then(Value::as_str),
            Some("user" | "assistant")
        ) {
            return Err(DomainError::invalid("role", "must be user or assistant").into());
        }
        let mut message =
            alumia_runtime::chat::parse_message("", &body, p.user_id, state.clock.now())?;
        if message.role == "assistant" {
            message.author_kind = "agent".into();
            message.author_id = session.agent_id;
        }
        let stored = state
            .store
            .append_messages(&p.org, session.id, &[message], true)
            .await
            .map_err(|e| match e {
                alumia_core::StoreError::Conflict("turn_in_progress") => {
                    DomainError::conflict("turn_in_progress", "a turn is running in this session")
                }
                alumia_core::StoreError::Conflict(_) => DomainError::conflict(
                    "duplicate_message",
                    "a message with this id is already in the session",
                ),
                other => other.into(),
            })?;
        Ok(views::created(view(&stored[0])))
    })
    .await
}
