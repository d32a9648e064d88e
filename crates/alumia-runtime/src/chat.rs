//! Starting, resuming, stopping and attaching to turns (spec 03 §5).
//! Everything that can refuse a turn is checked before anything is written;
//! the turn is then claimed in one transaction with its messages.

use std::sync::Arc;
use std::time::Duration;

use alumia_core::agents::Agents;
use alumia_core::chat_store::{ChatMessage, StartTurnError, Turn};
use alumia_core::error::DomainResult;
use alumia_core::model::{Agent, ChatSession};
use alumia_core::sessions::{SessionInput, Sessions};
use alumia_core::{DomainError, Principal, new_id};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Runtime;
use crate::assembly::text_of;
use crate::catalog::ModelEntry;
use crate::hub::LiveTurn;

/// Most messages one request may carry (a new session imports them all).
pub const MAX_MESSAGES: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct ChatInput {
    pub messages: Vec<Value>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub model: Option<String>,
    pub project_id: Option<String>,
    /// AI SDK chat id: a session of the caller when it names one.
    pub id: Option<String>,
    pub trigger: Option<String>,
}

/// The session a turn runs in: stored already, or created with the turn.
pub(crate) enum SessionSource {
    Existing(ChatSession),
    New(ChatSession, Vec<alumia_core::model::Participant>),
}

/// A turn that has been claimed and is running.
pub struct StartedTurn {
    pub session_id: Uuid,
    pub turn_id: Uuid,
    pub message_id: String,
    pub live: Arc<LiveTurn>,
}

fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One request item → a message to store (`{role, content}` or a
/// UIMessage). `prefix` names the item in errors (`messages[2]`, or empty).
pub fn parse_message(
    prefix: &str,
    item: &Value,
    author: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> DomainResult<ChatMessage> {
    let field = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let Some(obj) = item.as_object() else {
        return Err(DomainError::invalid(
            if prefix.is_empty() { "body" } else { prefix },
            "must be an object",
        ));
    };
    let role = obj.get("role").and_then(Value::as_str).unwrap_or_default();
    if !["user", "assistant", "system"].contains(&role) {
        return Err(DomainError::invalid(
            &field("role"),
            "must be user, assistant or system",
        ));
    }
    let parts = match (obj.get("content"), obj.get("parts")) {
        (Some(Value::String(text)), None) => json!([{"type": "text", "text": text}]),
        (None, Some(Value::Array(parts))) => {
            if parts
                .iter()
                .any(|p| !p.get("type").is_some_and(Value::is_string))
            {
                return Err(DomainError::invalid(
                    &field("parts"),
                    "every part needs a string `type`",
                ));
            }
            Value::Array(parts.clone())
        }
        (Some(_), Some(_)) => {
            return Err(DomainError::invalid(
                &field("content"),
                "give exactly one of content or parts",
            ));
        }
        (Some(_), None) => return Err(DomainError::invalid(&field("content"), "must be a string")),
        (None, Some(_)) => return Err(DomainError::invalid(&field("parts"), "must be an array")),
        (None, None) => {
            return Err(DomainError::invalid(
                &field("content"),
                "content or parts is required",
            ));
        }
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => new_id().to_string(),
        Some(Value::String(id)) if valid_client_id(id) => id.clone(),
        Some(_) => {
            return Err(DomainError::invalid(
                &field("id"),
                "must be 1–128 characters of A-Z a-z 0-9 _ -",
            ));
        }
    };
    let text = text_of(parts.as_array().map(Vec::as_slice).unwrap_or_default());
    Ok(ChatMessage {
        id,
        session_id: Uuid::nil(),
        seq: 0,
        role: role.to_string(),
        parts,
        text,
        author_kind: if role == "user" { "user" } else { "system" }.into(),
        author_id: (role == "user").then_some(author),
        status: "complete".into(),
        model: None,
        finish_reason: None,
        usage: None,
        metadata: obj
            .get("metadata")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({})),
        created_at: now,
        updated_at: now,
    })
}

impl Runtime {
    pub(crate) fn agents(&self) -> Agents<'_> {
        Agents {
            store: self.store.as_ref(),
            now: self.clock.now(),
            step_up_window_secs: 0,
            models: self.catalog.as_ref(),
        }
    }

    fn sessions(&self) -> Sessions<'_> {
        Sessions {
            store: self.store.as_ref(),
            now: self.clock.now(),
        }
    }

    /// The org's default model (`settings.defaultModel`, then the server's).
    pub async fn org_default_model(&self, p: &Principal) -> DomainResult<String> {
        let org = self
            .store
            .get_org(p.org.org_id())
            .await?
            .ok_or(DomainError::NotFound)?;
        Ok(org
            .settings
            .default_model
            .and_then(|m| self.catalog.resolve(&m).map(|e| e.id))
            .unwrap_or_else(|| self.catalog.default_model()))
    }

    async fn agent_by_ref(&self, p: &Principal, raw: &str) -> DomainResult<Agent> {
        self.agents().get(p, raw).await.map_err(|e| match e {
            DomainError::NotFound => DomainError::invalid_reference("agentId"),
            other => other,
        })
    }

    async fn ala(&self, p: &Principal) -> DomainResult<Agent> {
        match self.agents().get(p, "ala").await {
            Err(DomainError::NotFound) => {
                // Listing re-creates a missing Ala (spec 03 §1).
                self.agents()
                    .list(
                        p,
                        alumia_core::store::PageRequest {
                            limit: 1,
                            after: None,
                        },
                    )
                    .await?;
                self.agents().get(p, "ala").await
            }
            other => other,
        }
    }

    async fn model_for(
        &self,
        p: &Principal,
        agent: &Agent,
        requested: Option<&str>,
    ) -> DomainResult<ModelEntry> {
        let id = match (requested, &agent.model) {
            (Some(m), _) => m.to_string(),
            (None, Some(m)) if !agent.is_default => m.clone(),
            _ => self.org_default_model(p).await?,
        };
        let entry = self.catalog.resolve(&id).ok_or_else(|| {
            DomainError::invalid_with_reason("unknown_model", "model", "not in the model catalogue")
        })?;
        // `settings.fastMode` swaps in the model's configured fast sibling.
        let fast = agent.settings.get("fastMode").and_then(Value::as_bool) == Some(true);
        if fast
            && let Some(sibling) = &entry.spec.fast_sibling
            && let Some(faster) = self
                .catalog
                .resolve(&format!("{}/{sibling}", entry.provider))
        {
            return Ok(faster);
        }
        Ok(entry)
    }

    fn check_capacity(&self) -> DomainResult<()> {
        if self.is_shutting_down() {
            return Err(DomainError::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        if self.running_turns() >= self.limits.max_concurrent_turns {
            return Err(DomainError::Unavailable(
                "this replica is at max_concurrent_turns".into(),
            ));
        }
        Ok(())
    }

    /// `POST /api/v1/chat`.
    pub async fn start_chat(
        self: &Arc<Self>,
        p: &Principal,
        input: ChatInput,
    ) -> DomainResult<StartedTurn> {
        if input.trigger.as_deref() == Some("regenerate-message") {
            return Err(DomainError::invalid_with_reason(
                "unsupported_trigger",
                "trigger",
                "regenerate-message is not supported; send a new user message",
            ));
        }
        if input.messages.is_empty() {
            return Err(DomainError::invalid(
                "messages",
                "must hold at least one message",
            ));
        }
        if input.messages.len() > MAX_MESSAGES {
            return Err(DomainError::invalid(
                "messages",
                format!("must hold at most {MAX_MESSAGES} messages"),
            ));
        }
        let now = self.clock.now();

        // The session: `sessionId`, else an AI SDK `id` naming one of ours.
        let session = match (&input.session_id, &input.id) {
            (Some(raw), _) => {
                let id = Uuid::parse_str(raw).map_err(|_| DomainError::NotFound)?;
                Some(self.sessions().get(p, id).await?)
            }
            (None, Some(raw)) => match Uuid::parse_str(raw) {
                Ok(id) => match self.sessions().get(p, id).await {
                    Ok(s) => Some(s),
                    Err(DomainError::NotFound) => None,
                    Err(e) => return Err(e),
                },
                Err(_) => None,
            },
            (None, None) => None,
        };
        // `projectId` names a visible project of the org (else 422
        // invalid_reference); a new session is created in it.
        if let Some(raw) = input.project_id.as_deref() {
            let project = alumia_core::projects::Projects {
                store: self.store.as_ref(),
                now,
            }
            .reference(p, raw)
            .await?;
            if let Some(s) = &session
                && s.project_id != Some(project.id)
            {
                return Err(DomainError::invalid(
                    "projectId",
                    "the session does not belong to this project",
                ));
            }
        }

        let agent = match (&input.agent_id, &session) {
            (Some(raw), _) => self.agent_by_ref(p, raw).await?,
            (
                None,
                Some(ChatSession {
                    agent_id: Some(id), ..
                }),
            ) => self.agent_by_ref(p, &id.to_string()).await?,
            _ => self.ala(p).await?,
        };
        if !agent.is_active {
            return Err(DomainError::invalid_with_reason(
                "agent_inactive",
                "agentId",
                "the agent is inactive",
            ));
        }
        let entry = self.model_for(p, &agent, input.model.as_deref()).await?;

        // Stored history is authoritative: an existing session takes only the
        // last item; a new one imports them all.
        let items: &[Value] = match &session {
            Some(_) => &input.messages[input.messages.len() - 1..],
            None => &input.messages,
        };
        let offset = input.messages.len() - items.len();
        let mut messages = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            messages.push(parse_message(
                &format!("messages[{}]", offset + i),
                item,
                p.user_id,
                now,
            )?);
        }
        if messages.last().map(|m| m.role.as_str()) != Some("user") {
            return Err(DomainError::invalid(
                &format!("messages[{}].role", input.messages.len() - 1),
                "the last message must be a user message",
            ));
        }
        for (i, m) in messages.iter().enumerate() {
            if messages[..i].iter().any(|o| o.id == m.id) {
                return Err(DomainError::conflict(
                    "duplicate_message",
                    format!("message id {} is repeated", m.id),
                ));
            }
        }
        self.check_capacity()?;

        let session = match session {
            Some(s) => SessionSource::Existing(s),
            None => {
                let input = SessionInput {
                    agent_id: Some(agent.id.to_string()),
                    project_id: input.project_id.clone(),
                    ..SessionInput::default()
                };
                let (session, participants) =
                    self.sessions().prepare(p, input, &self.agents()).await?;
                SessionSource::New(session, participants)
            }
        };
        self.begin(p, session, agent, entry, messages, 0).await
    }

    /// `POST /api/v1/chat/:sessionId/resume`.
    pub async fn resume(
        self: &Arc<Self>,
        p: &Principal,
        session_id: Uuid,
        agent_id: Option<&str>,
        model: Option<&str>,
    ) -> DomainResult<StartedTurn> {
        let session = self.sessions().get(p, session_id).await?;
        if session.running_turn.is_some() {
            return Err(DomainError::conflict(
                "turn_in_progress",
                "a turn is already running in this session",
            ));
        }
        let agent = match (agent_id, session.agent_id) {
            (Some(raw), _) => self.agent_by_ref(p, raw).await?,
            (None, Some(id)) => self.agent_by_ref(p, &id.to_string()).await?,
            (None, None) => self.ala(p).await?,
        };
        let resumable = match session.status.as_str() {
            "paused" | "awaiting_input" => true,
            "awaiting_peer" => {
                self.has_follow_up(p, session.id).await?
                    || self
                        .store
                        .count_unread_peer_messages(&p.org, agent.id)
                        .await?
                        > 0
            }
            _ => false,
        };
        if !resumable {
            return Err(DomainError::conflict(
                "not_resumable",
                format!("a {} session cannot be resumed", session.status),
            ));
        }
        if !agent.is_active {
            return Err(DomainError::invalid_with_reason(
                "agent_inactive",
                "agentId",
                "the agent is inactive",
            ));
        }
        let entry = self.model_for(p, &agent, model).await?;
        self.check_capacity()?;
        self.begin(
            p,
            SessionSource::Existing(session),
            agent,
            entry,
            Vec::new(),
            0,
        )
        .await
    }

    /// Whether messages arrived after the last assistant message.
    pub(crate) async fn has_follow_up(&self, p: &Principal, session: Uuid) -> DomainResult<bool> {
        let last = self
            .store
            .list_messages(&p.org, session, None, true, 1)
            .await?;
        Ok(last.first().is_some_and(|m| m.role == "user"))
    }

    /// Claims the session (creating it first when it is new, in the same
    /// transaction) and starts the runner.
    pub(crate) async fn begin(
        self: &Arc<Self>,
        p: &Principal,
        session: SessionSource,
        agent: Agent,
        entry: ModelEntry,
        messages: Vec<ChatMessage>,
        hops: u32,
    ) -> DomainResult<StartedTurn> {
        let now = self.clock.now();
        let session_id = match &session {
            SessionSource::Existing(s) | SessionSource::New(s, _) => s.id,
        };
        let turn = Turn {
            id: new_id(),
            session_id,
            agent_id: agent.id,
            message_id: new_id().to_string(),
            model: entry.id.clone(),
            status: "running".into(),
            finish_reason: None,
            stop_requested: false,
            started_at: now,
            heartbeat_at: now,
            ended_at: None,
            last_seq: -1,
        };
        let assistant = ChatMessage {
            id: turn.message_id.clone(),
            session_id,
            seq: 0,
            role: "assistant".into(),
            parts: json!([]),
            text: String::new(),
            author_kind: "agent".into(),
            author_id: Some(agent.id),
            status: "streaming".into(),
            model: Some(entry.id.clone()),
            finish_reason: None,
            usage: None,
            metadata: json!({"turnId": turn.id}),
            created_at: now,
            updated_at: now,
        };
        let claimed = match &session {
            SessionSource::Existing(_) => {
                self.store
                    .start_turn(&p.org, &turn, &messages, &assistant, agent.id)
                    .await?
            }
            SessionSource::New(s, participants) => {
                self.store
                    .start_turn_in_new_session(
                        &p.org,
                        s,
                        participants,
                        &turn,
                        &messages,
                        &assistant,
                        agent.id,
                    )
                    .await?
            }
        };
        let new_session = matches!(session, SessionSource::New(..));
        let session = match session {
            SessionSource::Existing(s) | SessionSource::New(s, _) => s,
        };
        let stored = match claimed {
            Ok(stored) => stored,
            Err(StartTurnError::SessionNotFound) => return Err(DomainError::NotFound),
            Err(StartTurnError::TurnInProgress) => {
                return Err(DomainError::conflict(
                    "turn_in_progress",
                    "a turn is already running in this session",
                ));
            }
            Err(StartTurnError::DuplicateMessage(id)) => {
                return Err(DomainError::conflict(
                    "duplicate_message",
                    format!(
                        "message {id} is already in the session; retry with an Idempotency-Key"
                    ),
                ));
            }
        };
        // A new session's history is what was just stored: no need to read it back.
        let history = new_session.then(|| {
            stored
                .into_iter()
                .filter(|m| m.id != turn.message_id)
                .collect()
        });
        let live = LiveTurn::new(turn.id, session.id, p.org.org_id());
        let started = StartedTurn {
            session_id: session.id,
            turn_id: turn.id,
            message_id: turn.message_id.clone(),
            live: live.clone(),
        };
        crate::turn::spawn(
            self.clone(),
            crate::turn::TurnJob {
                principal: p.clone(),
                agent,
                session,
                entry,
                turn,
                hops,
                live,
                history,
            },
        );
        Ok(started)
    }

    /// `POST /api/v1/chat/:sessionId/stop`: marks the turn, cancels it here
    /// or lets its replica see the mark, and waits for it to end.
    pub async fn stop(&self, p: &Principal, session_id: Uuid) -> DomainResult<Uuid> {
        self.sessions().get(p, session_id).await?;
        let Some(turn_id) = self.store.request_stop(&p.org, session_id).await? else {
            return Err(DomainError::conflict(
                "no_active_turn",
                "no turn is running in this session",
            ));
        };
        if let Some(live) = self.hub.by_session(p.org.org_id(), session_id) {
            live.cancel.cancel();
        }
        // The runner saves what was produced; wait (bounded) until it has.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match self.store.get_turn(&p.org, turn_id).await? {
                Some(t) if t.status != "running" => break,
                _ => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        Ok(turn_id)
    }

    /// Cancels a session's turn on this replica (session delete).
    pub fn cancel_local(&self, p: &Principal, session_id: Uuid) {
        if let Some(live) = self.hub.by_session(p.org.org_id(), session_id) {
            live.cancel.cancel();
        }
    }
}

/// Starts a turn for `agent` in `session` after a peer message arrived; if
/// one is running, its end picks the message up. Never blocks the caller.
pub(crate) fn queue_peer_turn(
    rt: &Arc<Runtime>,
    p: &Principal,
    agent: Agent,
    session: Uuid,
    hops: u32,
) {
    let rt = rt.clone();
    let p = p.clone();
    tokio::spawn(async move {
        let result = async {
            let session = rt.sessions().get(&p, session).await?;
            let entry = rt.model_for(&p, &agent, None).await?;
            rt.check_capacity()?;
            rt.begin(
                &p,
                SessionSource::Existing(session),
                agent,
                entry,
                Vec::new(),
                hops,
            )
            .await
        }
        .await;
        match result {
            Ok(_) | Err(DomainError::Conflict { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "peer turn not started"),
        }
    });
}
