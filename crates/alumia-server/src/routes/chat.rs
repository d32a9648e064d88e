//! `/api/v1/chat`: start a turn and stream it as an AI SDK v6 UI message
//! stream; stop, resume and reattach (spec 03 §5). The handler only relays
//! the turn, which runs in the runtime: a disconnect never stops it.

use std::convert::Infallible;
use std::time::Duration;

use alumia_core::{DomainError, Principal};
use alumia_runtime::attach::FrameStream;
use alumia_runtime::hub::{DONE_FRAME, KEEPALIVE_FRAME};
use alumia_runtime::{ChatInput, StartedTurn};
use alumia_types::dto::{ChatRequest, ResumeRequest};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiJsonRaw, Auth, parse_id};
use crate::idempotency::{self, Claim, IdempotencyKey};
use crate::state::AppState;
use crate::views;

const KEEPALIVE: Duration = Duration::from_secs(15);

/// The SSE response: frames, `: keep-alive` every 15 s, then `[DONE]`.
fn sse(session_id: Uuid, turn_id: Uuid, frames: FrameStream) -> Response {
    let keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let body = futures::stream::unfold(Some((frames, keepalive)), |state| async move {
        let (mut frames, mut keepalive) = state?;
        tokio::select! {
            next = frames.next() => match next {
                Some(f) => Some((f, Some((frames, keepalive)))),
                None => Some((Bytes::from_static(DONE_FRAME), None)),
            },
            _ = keepalive.tick() => Some((Bytes::from_static(KEEPALIVE_FRAME), Some((frames, keepalive)))),
        }
    })
    .map(Ok::<Bytes, Infallible>);
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    h.insert(
        "x-vercel-ai-ui-message-stream",
        HeaderValue::from_static("v1"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert("x-alumia-session-id", header_value(session_id));
    h.insert("x-alumia-turn-id", header_value(turn_id));
    response
}

fn header_value(id: Uuid) -> HeaderValue {
    HeaderValue::from_str(&id.to_string()).expect("a uuid is a valid header value")
}

/// `Accept: application/json` without `text/event-stream`: wait and answer JSON.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept.contains("application/json") && !accept.contains("text/event-stream")
}

async fn json_answer(
    state: &AppState,
    p: &Principal,
    session_id: Uuid,
    turn_id: Uuid,
    message_id: &str,
    frames: FrameStream,
) -> ApiResult<Response> {
    // Drain the stream: the turn is over when it ends.
    frames.for_each(|_| async {}).await;
    let message = state
        .store
        .get_message(&p.org, session_id, message_id)
        .await
        .map_err(DomainError::from)?
        .ok_or(DomainError::NotFound)?;
    let mut response = views::ok(json!({
        "sessionId": session_id,
        "turnId": turn_id,
        "message": super::messages::view(&message),
        "finishReason": message.finish_reason,
        "usage": message.usage,
    }));
    response
        .headers_mut()
        .insert("x-alumia-session-id", header_value(session_id));
    Ok(response)
}

async fn respond(
    state: &AppState,
    p: &Principal,
    headers: &HeaderMap,
    started: StartedTurn,
) -> ApiResult<Response> {
    let frames: FrameStream = Box::pin(started.live.subscribe(None));
    if wants_json(headers) {
        return json_answer(
            state,
            p,
            started.session_id,
            started.turn_id,
            &started.message_id,
            frames,
        )
        .await;
    }
    Ok(sse(started.session_id, started.turn_id, frames))
}

/// `POST /api/v1/chat`.
pub async fn chat(
    State(state): State<AppState>,
    Auth(p): Auth,
    IdempotencyKey(key): IdempotencyKey,
    headers: HeaderMap,
    ApiJsonRaw(req, raw): ApiJsonRaw<ChatRequest>,
) -> ApiResult<Response> {
    let fingerprint = idempotency::fingerprint("POST", "/api/v1/chat", &[], &raw);
    let key = match idempotency::claim(&state, &p, key, &fingerprint).await? {
        Claim::Answer(response) => return Ok(response),
        // The stored result is a turn (replayed as its stream) or a refusal.
        Claim::Replay(stored) if stored.body.contains("\"turnId\"") => {
            return replay_turn(&state, &p, &headers, &stored.body).await;
        }
        Claim::Replay(stored) => return Ok(idempotency::replay(stored)),
        Claim::Run(key) => key,
    };
    let input = ChatInput {
        messages: req.messages,
        session_id: req.session_id,
        agent_id: req.agent_id,
        model: req.model,
        project_id: req.project_id,
        id: req.id,
        trigger: req.trigger,
    };
    let started = match state.runtime.start_chat(&p, input).await {
        Ok(s) => s,
        Err(e) => {
            let response = ApiError::from(e).into_response();
            return Ok(idempotency::finish(&state, &p, key, response).await);
        }
    };
    if let Some(key) = &key {
        // The stored result is the turn; a replay re-attaches to it.
        let record = json!({"sessionId": started.session_id, "turnId": started.turn_id, "messageId": started.message_id});
        let stored = alumia_core::chat_store::StoredResponse {
            status: 200,
            body: record.to_string(),
            location: None,
        };
        if let Err(e) = state.store.complete_idempotency(&p.org, key, &stored).await {
            tracing::warn!(error = %e, "chat idempotency record not stored");
        }
    }
    respond(&state, &p, &headers, started).await
}

/// An idempotent retry of a chat: its turn's stream again, live or replayed.
async fn replay_turn(
    state: &AppState,
    p: &Principal,
    headers: &HeaderMap,
    record: &str,
) -> ApiResult<Response> {
    let record: serde_json::Value = serde_json::from_str(record).unwrap_or_default();
    let ids = (
        record["sessionId"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok()),
        record["turnId"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok()),
        record["messageId"].as_str(),
    );
    let (Some(session_id), Some(turn_id), Some(message_id)) = ids else {
        return Err(ApiError::internal("an idempotency record without its turn"));
    };
    let frames = match state.runtime.attach(p, turn_id, None).await? {
        Some(frames) => frames,
        None => {
            let message = state
                .store
                .get_message(&p.org, session_id, message_id)
                .await
                .map_err(DomainError::from)?
                .ok_or(DomainError::NotFound)?;
            let turn = state
                .store
                .get_turn(&p.org, turn_id)
                .await
                .map_err(DomainError::from)?;
            state
                .runtime
                .rebuild(turn_id, &message, turn.map(|t| t.agent_id))
        }
    };
    let mut response = if wants_json(headers) {
        json_answer(state, p, session_id, turn_id, message_id, frames).await?
    } else {
        sse(session_id, turn_id, frames)
    };
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

/// `POST /api/v1/chat/:sessionId/stop`.
pub async fn stop(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let session_id = parse_id(&id)?;
    let turn_id = state.runtime.stop(&p, session_id).await?;
    Ok(views::ok(
        json!({"sessionId": session_id, "turnId": turn_id, "status": "cancelled"}),
    ))
}

/// `POST /api/v1/chat/:sessionId/resume`: a turn without a new user message.
pub async fn resume(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ResumeRequest>,
) -> ApiResult<Response> {
    let session_id = parse_id(&id)?;
    let started = state
        .runtime
        .resume(
            &p,
            session_id,
            req.agent_id.as_deref(),
            req.model.as_deref(),
        )
        .await?;
    respond(&state, &p, &headers, started).await
}

/// `GET /api/v1/chat/:sessionId/stream`: reattach to the live turn (from
/// seq 0, or after `Last-Event-ID: <turnId>:<n>`); `204` when there is none.
pub async fn stream(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let session_id = parse_id(&id)?;
    let session = super::sessions::sessions(&state)
        .get(&p, session_id)
        .await?;
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(':'))
        .and_then(|(turn, seq)| Some((Uuid::parse_str(turn).ok()?, seq.parse::<i64>().ok()?)));
    // A Last-Event-ID names its turn, running or finished; else the running one.
    let (turn_id, after) = match last_event {
        Some((turn, seq)) => (Some(turn), Some(seq)),
        None => {
            let running = state
                .store
                .running_turn(&p.org, session.id)
                .await
                .map_err(DomainError::from)?;
            (running.map(|t| t.id), None)
        }
    };
    let Some(turn_id) = turn_id else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    // The turn must belong to this session.
    match state
        .store
        .get_turn(&p.org, turn_id)
        .await
        .map_err(DomainError::from)?
    {
        Some(t) if t.session_id == session.id => {}
        _ => return Ok(StatusCode::NO_CONTENT.into_response()),
    }
    match state.runtime.attach(&p, turn_id, after).await? {
        Some(frames) => Ok(sse(session.id, turn_id, frames)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
