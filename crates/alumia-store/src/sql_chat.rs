//! `ChatStore` in portable SQL, expanded for each engine like `sql_store`.
//! One running turn per session is enforced by a conditional UPDATE of
//! `chat_sessions.running_turn`, so it holds across replicas.

use alumia_core::chat_store::*;
use alumia_core::clock::from_millis;

use crate::rows::uuid;

/// A claim keeps its writes only when it succeeded.
pub(crate) fn keep_if_ok<T, E>(r: Result<T, E>) -> crate::write_lane::Finish<Result<T, E>> {
    if r.is_ok() {
        crate::write_lane::Finish::Commit(r)
    } else {
        crate::write_lane::Finish::Rollback(r)
    }
}

/// Event-log rows per INSERT: 3 binds each, far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bind limits.
pub(crate) const EVENT_ROWS_PER_INSERT: usize = 1_000;

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    pub session_id: String,
    pub id: String,
    pub seq: i64,
    pub role: String,
    pub parts: String,
    pub text: String,
    pub author_kind: String,
    pub author_id: Option<String>,
    pub status: String,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<String>,
    pub metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<MessageRow> for ChatMessage {
    fn from(r: MessageRow) -> ChatMessage {
        ChatMessage {
            id: r.id,
            session_id: uuid(&r.session_id),
            seq: r.seq,
            role: r.role,
            parts: serde_json::from_str(&r.parts).unwrap_or_else(|_| serde_json::json!([])),
            text: r.text,
            author_kind: r.author_kind,
            author_id: r.author_id.as_deref().map(uuid),
            status: r.status,
            model: r.model,
            finish_reason: r.finish_reason,
            usage: r.usage.and_then(|u| serde_json::from_str(&u).ok()),
            metadata: serde_json::from_str(&r.metadata).unwrap_or_default(),
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

pub(crate) const MESSAGE_COLUMNS: &str = "session_id, id, seq, role, parts, text, author_kind, \
     author_id, status, model, finish_reason, usage, metadata, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct TurnRow {
    pub id: String,
    pub session_id: String,
    pub agent_id: String,
    pub message_id: String,
    pub model: String,
    pub status: String,
    pub finish_reason: Option<String>,
    pub stop_requested: bool,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub ended_at: Option<i64>,
    pub last_seq: i64,
}

impl From<TurnRow> for Turn {
    fn from(r: TurnRow) -> Turn {
        Turn {
            id: uuid(&r.id),
            session_id: uuid(&r.session_id),
            agent_id: uuid(&r.agent_id),
            message_id: r.message_id,
            model: r.model,
            status: r.status,
            finish_reason: r.finish_reason,
            stop_requested: r.stop_requested,
            started_at: from_millis(r.started_at),
            heartbeat_at: from_millis(r.heartbeat_at),
            ended_at: r.ended_at.map(from_millis),
            last_seq: r.last_seq,
        }
    }
}

pub(crate) const TURN_COLUMNS: &str = "id, session_id, agent_id, message_id, model, status, \
     finish_reason, stop_requested, started_at, heartbeat_at, ended_at, last_seq";

#[derive(sqlx::FromRow)]
pub(crate) struct ProviderKeyRow {
    pub id: String,
    pub provider: String,
    pub label: String,
    pub key_sealed: String,
    pub key_hint: String,
    pub base_url: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl From<ProviderKeyRow> for ProviderKey {
    fn from(r: ProviderKeyRow) -> ProviderKey {
        ProviderKey {
            id: uuid(&r.id),
            provider: r.provider,
            label: r.label,
            key_sealed: r.key_sealed,
            key_hint: r.key_hint,
            base_url: r.base_url,
            created_by: uuid(&r.created_by),
            created_at: from_millis(r.created_at),
            last_used_at: r.last_used_at.map(from_millis),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PeerMessageRow {
    pub id: String,
    pub session_id: String,
    pub from_agent_id: String,
    pub to_agent_id: String,
    pub text: String,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

impl From<PeerMessageRow> for PeerMessage {
    fn from(r: PeerMessageRow) -> PeerMessage {
        PeerMessage {
            id: uuid(&r.id),
            session_id: uuid(&r.session_id),
            from_agent_id: uuid(&r.from_agent_id),
            to_agent_id: uuid(&r.to_agent_id),
            text: r.text,
            created_at: from_millis(r.created_at),
            read_at: r.read_at.map(from_millis),
        }
    }
}

macro_rules! impl_chat_store {
    ($store:ty) => {
        const _: () = {
            use alumia_core::chat_store::*;
            use alumia_core::clock::{format_ts, to_millis};
            use alumia_core::store::StoreResult;
            use alumia_core::{OrgScope, StoreError};
            use chrono::{DateTime, Utc};
            use uuid::Uuid;

            use $crate::errors::{classify, err};
            use $crate::sql_chat::*;
            use $crate::write_lane::{Finish, Priority};

            type Db = <$store as $crate::sql_store::EngineDb>::Db;

            /// Appends one message at the session's next seq inside `tx`.
            type Conn = <Db as sqlx::Database>::Connection;

            async fn append_one(
                conn: &mut Conn,
                org: &OrgScope,
                session: Uuid,
                m: &ChatMessage,
            ) -> StoreResult<ChatMessage> {
                let at = to_millis(m.created_at);
                let seq: Option<i64> = sqlx::query_scalar(
                    "UPDATE chat_sessions SET message_count = message_count + 1, \
                     last_message_at = $3, updated_at = $3 \
                     WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING message_count",
                )
                .bind(org.org_id().to_string())
                .bind(session.to_string())
                .bind(at)
                .fetch_optional(&mut *conn)
                .await
                .map_err(err)?;
                let seq = seq.ok_or(StoreError::NotFound)?;
                sqlx::query(
                    "INSERT INTO chat_messages (session_id, id, org_id, seq, role, parts, text, author_kind, \
                     author_id, status, model, finish_reason, usage, metadata, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(session.to_string())
                .bind(&m.id)
                .bind(org.org_id().to_string())
                .bind(seq)
                .bind(&m.role)
                .bind(m.parts.to_string())
                .bind(&m.text)
                .bind(&m.author_kind)
                .bind(m.author_id.map(|u| u.to_string()))
                .bind(&m.status)
                .bind(&m.model)
                .bind(&m.finish_reason)
                .bind(m.usage.as_ref().map(|u| u.to_string()))
                .bind(m.metadata.to_string())
                .bind(at)
                .bind(to_millis(m.updated_at))
                .execute(&mut *conn)
                .await
                .map_err(|e| classify(e, "duplicate_message"))?;
                let mut stored = m.clone();
                stored.session_id = session;
                stored.seq = seq;
                Ok(stored)
            }

            async fn write_events(
                conn: &mut Conn,
                turn: Uuid,
                events: &[TurnEvent],
            ) -> StoreResult<()> {
                // One multi-row INSERT per batch: a save is one statement, not
                // one per chunk (each is a round trip to SQLite's worker thread).
                let turn = turn.to_string();
                for batch in events.chunks(EVENT_ROWS_PER_INSERT) {
                    let mut insert =
                        sqlx::QueryBuilder::<Db>::new("INSERT INTO turn_events (turn_id, seq, data) ");
                    insert.push_values(batch, |mut row, e| {
                        row.push_bind(turn.as_str()).push_bind(e.seq).push_bind(e.data.as_str());
                    });
                    insert.build().execute(&mut *conn).await.map_err(err)?;
                }
                Ok(())
            }

            async fn save_message(
                conn: &mut Conn,
                org: &OrgScope,
                turn: &Turn,
                m: &MessageProgress,
                at: i64,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE chat_messages SET parts = $4, text = $5, status = $6, model = $7, \
                     finish_reason = $8, usage = $9, updated_at = $10 \
                     WHERE org_id = $1 AND session_id = $2 AND id = $3",
                )
                .bind(org.org_id().to_string())
                .bind(turn.session_id.to_string())
                .bind(&turn.message_id)
                .bind(m.parts.to_string())
                .bind(&m.text)
                .bind(&m.status)
                .bind(&m.model)
                .bind(&m.finish_reason)
                .bind(m.usage.as_ref().map(|u| u.to_string()))
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                Ok(())
            }

            /// The claim, the messages, the turn row and the agent's
            /// participation, inside `tx` (the caller commits on success).
            async fn start_turn_in(
                conn: &mut Conn,
                org: &OrgScope,
                turn: &Turn,
                new_messages: &[ChatMessage],
                assistant: &ChatMessage,
                participant_agent: Uuid,
            ) -> StoreResult<Result<Vec<ChatMessage>, StartTurnError>> {
                let at = to_millis(turn.started_at);
                let running = serde_json::json!({
                    "id": turn.id,
                    "startedAt": format_ts(turn.started_at),
                    "agentId": turn.agent_id,
                });
                let claimed = sqlx::query(
                    "UPDATE chat_sessions SET running_turn = $3, status = 'active', updated_at = $4 \
                     WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL AND running_turn IS NULL",
                )
                .bind(org.org_id().to_string())
                .bind(turn.session_id.to_string())
                .bind(running.to_string())
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                if claimed.rows_affected() == 0 {
                    let live: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM chat_sessions WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    )
                    .bind(org.org_id().to_string())
                    .bind(turn.session_id.to_string())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(err)?;
                    return Ok(Err(if live.is_some() {
                        StartTurnError::TurnInProgress
                    } else {
                        StartTurnError::SessionNotFound
                    }));
                }
                let mut out = Vec::with_capacity(new_messages.len() + 1);
                for m in new_messages.iter().chain(std::iter::once(assistant)) {
                    match append_one(conn, org, turn.session_id, m).await {
                        Ok(stored) => out.push(stored),
                        Err(StoreError::Conflict("duplicate_message")) => {
                            return Ok(Err(StartTurnError::DuplicateMessage(m.id.clone())));
                        }
                        Err(e) => return Err(e),
                    }
                }
                sqlx::query(
                    "INSERT INTO turns (id, org_id, session_id, agent_id, message_id, model, status, \
                     stop_requested, started_at, heartbeat_at, last_seq) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'running', FALSE, $7, $7, -1)",
                )
                .bind(turn.id.to_string())
                .bind(org.org_id().to_string())
                .bind(turn.session_id.to_string())
                .bind(turn.agent_id.to_string())
                .bind(&turn.message_id)
                .bind(&turn.model)
                .bind(at)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
                // The agent joins the session when it first runs a turn.
                let joined: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM session_participants WHERE session_id = $1 AND kind = 'agent' AND participant_id = $2",
                )
                .bind(turn.session_id.to_string())
                .bind(participant_agent.to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err(err)?;
                if joined.is_none() {
                    sqlx::query(
                        "INSERT INTO session_participants (session_id, kind, participant_id, joined_at) VALUES ($1, 'agent', $2, $3)",
                    )
                    .bind(turn.session_id.to_string())
                    .bind(participant_agent.to_string())
                    .bind(at)
                    .execute(&mut *conn)
                    .await
                    .map_err(err)?;
                }
                Ok(Ok(out))
            }

            #[async_trait::async_trait]
            impl ChatStore for $store {
                async fn append_messages(
                    &self,
                    org: &OrgScope,
                    session: Uuid,
                    messages: &[ChatMessage],
                    require_idle: bool,
                ) -> StoreResult<Vec<ChatMessage>> {
                    let mut tx = self.begin_write().await?;
                    // A no-op UPDATE, not a SELECT: it locks the row (PostgreSQL) so a
                    // turn cannot claim the session between this check and the append.
                    let running: Option<Option<String>> = sqlx::query_scalar(
                        "UPDATE chat_sessions SET message_count = message_count \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING running_turn",
                    )
                    .bind(org.org_id().to_string())
                    .bind(session.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    match running {
                        None => return Err(StoreError::NotFound),
                        Some(Some(_)) if require_idle => return Err(StoreError::Conflict("turn_in_progress")),
                        Some(_) => {}
                    }
                    let mut out = Vec::with_capacity(messages.len());
                    for m in messages {
                        out.push(append_one(&mut tx, org, session, m).await?);
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(out)
                }

                async fn list_messages(
                    &self,
                    org: &OrgScope,
                    session: Uuid,
                    after_seq: Option<i64>,
                    descending: bool,
                    limit: u32,
                ) -> StoreResult<Vec<ChatMessage>> {
                    let sql = if descending {
                        format!(
                            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE org_id = $1 AND session_id = $2 \
                             AND ($3 IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4"
                        )
                    } else {
                        format!(
                            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE org_id = $1 AND session_id = $2 \
                             AND ($3 IS NULL OR seq > $3) ORDER BY seq ASC LIMIT $4"
                        )
                    };
                    let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(session.to_string())
                        .bind(after_seq)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(rows.into_iter().map(ChatMessage::from).collect())
                }

                async fn get_message(
                    &self,
                    org: &OrgScope,
                    session: Uuid,
                    id: &str,
                ) -> StoreResult<Option<ChatMessage>> {
                    let row: Option<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE org_id = $1 AND session_id = $2 AND id = $3"
                    )))
                    .bind(org.org_id().to_string())
                    .bind(session.to_string())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.map(ChatMessage::from))
                }

                async fn start_turn(
                    &self,
                    org: &OrgScope,
                    turn: &Turn,
                    new_messages: &[ChatMessage],
                    assistant: &ChatMessage,
                    participant_agent: Uuid,
                ) -> StoreResult<Result<Vec<ChatMessage>, StartTurnError>> {
                    let (org, turn, new_messages, assistant) =
                        (org.clone(), turn.clone(), new_messages.to_vec(), assistant.clone());
                    self.write(Priority::Claim, move |conn| {
                        Box::pin(async move {
                            let started = start_turn_in(conn, &org, &turn, &new_messages, &assistant, participant_agent).await?;
                            Ok(keep_if_ok(started))
                        })
                    })
                    .await
                }

                async fn start_turn_in_new_session(
                    &self,
                    org: &OrgScope,
                    session: &alumia_core::model::ChatSession,
                    participants: &[alumia_core::model::Participant],
                    turn: &Turn,
                    new_messages: &[ChatMessage],
                    assistant: &ChatMessage,
                    participant_agent: Uuid,
                ) -> StoreResult<Result<Vec<ChatMessage>, StartTurnError>> {
                    let (org, session, participants, turn, new_messages, assistant) = (
                        org.clone(),
                        session.clone(),
                        participants.to_vec(),
                        turn.clone(),
                        new_messages.to_vec(),
                        assistant.clone(),
                    );
                    self.write(Priority::Claim, move |conn| {
                        Box::pin(async move {
                            <$store>::insert_chat_session(conn, &org, &session, &participants).await?;
                            let started = start_turn_in(conn, &org, &turn, &new_messages, &assistant, participant_agent).await?;
                            Ok(keep_if_ok(started))
                        })
                    })
                    .await
                }

                async fn save_turn_progress(
                    &self,
                    org: &OrgScope,
                    turn: &Turn,
                    message: &MessageProgress,
                    events: &[TurnEvent],
                    at: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let (org, turn, message, events) =
                        (org.clone(), turn.clone(), message.clone(), events.to_vec());
                    let at = to_millis(at);
                    self.write(Priority::Save, move |conn| {
                        Box::pin(async move {
                            let last_seq = events.last().map(|e| e.seq);
                            // The turn first: it is org-scoped (the event log is not), and
                            // turn, message, session is the lock order `fail_stale_turns` takes.
                            let stop: Option<bool> = sqlx::query_scalar(
                                "UPDATE turns SET heartbeat_at = $3, last_seq = COALESCE($4, last_seq) \
                                 WHERE org_id = $1 AND id = $2 RETURNING stop_requested",
                            )
                            .bind(org.org_id().to_string())
                            .bind(turn.id.to_string())
                            .bind(at)
                            .bind(last_seq)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(err)?;
                            // The turn row is gone: stop.
                            let Some(stop) = stop else {
                                return Ok(Finish::Rollback(true));
                            };
                            save_message(conn, &org, &turn, &message, at).await?;
                            write_events(conn, turn.id, &events).await?;
                            Ok(Finish::Commit(stop))
                        })
                    })
                    .await
                }

                async fn finish_turn(
                    &self,
                    org: &OrgScope,
                    turn: &Turn,
                    end: &TurnEnd,
                    at: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let (org, turn, end) = (org.clone(), turn.clone(), end.clone());
                    let at = to_millis(at);
                    self.write(Priority::Save, move |conn| {
                        Box::pin(async move {
                            let last_seq = end.events.last().map(|e| e.seq);
                            // The turn first, as in `save_turn_progress`.
                            let done = sqlx::query(
                                "UPDATE turns SET status = $3, finish_reason = $4, ended_at = $5, heartbeat_at = $5, \
                                 last_seq = COALESCE($6, last_seq) WHERE org_id = $1 AND id = $2",
                            )
                            .bind(org.org_id().to_string())
                            .bind(turn.id.to_string())
                            .bind(&end.status)
                            .bind(&end.finish_reason)
                            .bind(at)
                            .bind(last_seq)
                            .execute(&mut *conn)
                            .await
                            .map_err(err)?;
                            if done.rows_affected() == 0 {
                                return Err(StoreError::NotFound);
                            }
                            save_message(conn, &org, &turn, &end.message, at).await?;
                            write_events(conn, turn.id, &end.events).await?;
                            // Only release the session if it is still this turn's.
                            sqlx::query(
                                "UPDATE chat_sessions SET running_turn = NULL, status = $4, updated_at = $5 \
                                 WHERE org_id = $1 AND id = $2 AND running_turn LIKE $3",
                            )
                            .bind(org.org_id().to_string())
                            .bind(turn.session_id.to_string())
                            .bind(format!("%\"id\":\"{}\"%", turn.id))
                            .bind(&end.session_status)
                            .bind(at)
                            .execute(&mut *conn)
                            .await
                            .map_err(err)?;
                            Ok(Finish::Commit(()))
                        })
                    })
                    .await
                }

                async fn get_turn(&self, org: &OrgScope, id: Uuid) -> StoreResult<Option<Turn>> {
                    let row: Option<TurnRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {TURN_COLUMNS} FROM turns WHERE org_id = $1 AND id = $2"
                    )))
                    .bind(org.org_id().to_string())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.map(Turn::from))
                }

                async fn running_turn(&self, org: &OrgScope, session: Uuid) -> StoreResult<Option<Turn>> {
                    let row: Option<TurnRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {TURN_COLUMNS} FROM turns WHERE org_id = $1 AND session_id = $2 \
                         AND status = 'running' AND EXISTS (SELECT 1 FROM chat_sessions c \
                         WHERE c.id = turns.session_id AND c.deleted_at IS NULL) \
                         ORDER BY started_at DESC LIMIT 1"
                    )))
                    .bind(org.org_id().to_string())
                    .bind(session.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.map(Turn::from))
                }

                async fn request_stop(&self, org: &OrgScope, session: Uuid) -> StoreResult<Option<Uuid>> {
                    let id: Option<String> = sqlx::query_scalar(
                        "UPDATE turns SET stop_requested = TRUE \
                         WHERE org_id = $1 AND session_id = $2 AND status = 'running' RETURNING id",
                    )
                    .bind(org.org_id().to_string())
                    .bind(session.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(id.as_deref().map($crate::rows::uuid))
                }

                async fn turn_events(
                    &self,
                    org: &OrgScope,
                    turn: Uuid,
                    after_seq: i64,
                ) -> StoreResult<Vec<TurnEvent>> {
                    let rows: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT e.seq, e.data FROM turn_events e JOIN turns t ON t.id = e.turn_id \
                         WHERE t.org_id = $1 AND e.turn_id = $2 AND e.seq > $3 ORDER BY e.seq",
                    )
                    .bind(org.org_id().to_string())
                    .bind(turn.to_string())
                    .bind(after_seq)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows.into_iter().map(|(seq, data)| TurnEvent { seq, data }).collect())
                }

                async fn fail_stale_turns(&self, before: DateTime<Utc>, at: DateTime<Utc>) -> StoreResult<u64> {
                    let stale: Vec<(String, String, String, String)> = sqlx::query_as(
                        "SELECT id, org_id, session_id, message_id FROM turns \
                         WHERE status = 'running' AND heartbeat_at < $1",
                    )
                    .bind(to_millis(before))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    let at = to_millis(at);
                    let mut failed = 0;
                    for (id, org_id, session_id, message_id) in stale {
                        let mut tx = self.begin_write().await?;
                        let done = sqlx::query(
                            "UPDATE turns SET status = 'error', finish_reason = 'error', ended_at = $2 \
                             WHERE id = $1 AND status = 'running' AND heartbeat_at < $3",
                        )
                        .bind(&id)
                        .bind(at)
                        .bind(to_millis(before))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                        if done.rows_affected() == 0 {
                            continue;
                        }
                        sqlx::query(
                            "UPDATE chat_messages SET status = 'error', finish_reason = 'error', updated_at = $3 \
                             WHERE session_id = $1 AND id = $2 AND status = 'streaming'",
                        )
                        .bind(&session_id)
                        .bind(&message_id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                        sqlx::query(
                            "UPDATE chat_sessions SET running_turn = NULL, status = 'paused', updated_at = $3 \
                             WHERE org_id = $1 AND id = $2 AND running_turn LIKE $4",
                        )
                        .bind(&org_id)
                        .bind(&session_id)
                        .bind(at)
                        .bind(format!("%\"id\":\"{id}\"%"))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                        tx.commit().await.map_err(err)?;
                        failed += 1;
                    }
                    Ok(failed)
                }

                async fn prune_turn_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                    let done = sqlx::query(
                        "DELETE FROM turn_events WHERE turn_id IN \
                         (SELECT id FROM turns WHERE ended_at IS NOT NULL AND ended_at < $1)",
                    )
                    .bind(to_millis(before))
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(done.rows_affected())
                }

                async fn claim_idempotency(
                    &self,
                    org: &OrgScope,
                    key: &str,
                    fingerprint: &str,
                    at: DateTime<Utc>,
                    expired_before: DateTime<Utc>,
                ) -> StoreResult<IdempotencyClaim> {
                    let mut tx = self.begin_write().await?;
                    let existing: Option<(String, String, Option<i32>, Option<String>, Option<String>, i64)> =
                        sqlx::query_as(
                            "SELECT fingerprint, state, status, body, location, created_at FROM idempotency_keys \
                             WHERE org_id = $1 AND idem_key = $2",
                        )
                        .bind(org.org_id().to_string())
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
                    if let Some((stored_fp, state, status, body, location, created_at)) = existing {
                        if created_at >= to_millis(expired_before) {
                            return Ok(if stored_fp != fingerprint {
                                IdempotencyClaim::Mismatch
                            } else if state == "done" {
                                IdempotencyClaim::Done(StoredResponse {
                                    status: status.unwrap_or(200) as u16,
                                    body: body.unwrap_or_default(),
                                    location,
                                })
                            } else {
                                IdempotencyClaim::InFlight
                            });
                        }
                        // `created_at < $3`: a concurrent claim may have replaced the
                        // expired record since the SELECT; its fresh claim stays.
                        sqlx::query(
                            "DELETE FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2 AND created_at < $3",
                        )
                            .bind(org.org_id().to_string())
                            .bind(key)
                            .bind(to_millis(expired_before))
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys (org_id, idem_key, fingerprint, state, created_at) \
                         VALUES ($1, $2, $3, 'in_flight', $4)",
                    )
                    .bind(org.org_id().to_string())
                    .bind(key)
                    .bind(fingerprint)
                    .bind(to_millis(at))
                    .execute(&mut *tx)
                    .await;
                    if let Err(e) = inserted {
                        return match classify(e, "idempotency") {
                            // A concurrent claim won the insert (PostgreSQL).
                            StoreError::Conflict(_) => Ok(IdempotencyClaim::InFlight),
                            other => Err(other),
                        };
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(IdempotencyClaim::Claimed)
                }

                async fn complete_idempotency(
                    &self,
                    org: &OrgScope,
                    key: &str,
                    response: &StoredResponse,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE idempotency_keys SET state = 'done', status = $3, body = $4, location = $5 \
                         WHERE org_id = $1 AND idem_key = $2",
                    )
                    .bind(org.org_id().to_string())
                    .bind(key)
                    .bind(i32::from(response.status))
                    .bind(&response.body)
                    .bind(&response.location)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(())
                }

                async fn release_idempotency(&self, org: &OrgScope, key: &str) -> StoreResult<()> {
                    sqlx::query(
                        "DELETE FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2 AND state = 'in_flight'",
                    )
                    .bind(org.org_id().to_string())
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(())
                }

                async fn create_provider_key(&self, org: &OrgScope, k: &ProviderKey) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO provider_keys (id, org_id, provider, label, key_sealed, key_hint, base_url, \
                         created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(k.id.to_string())
                    .bind(org.org_id().to_string())
                    .bind(&k.provider)
                    .bind(&k.label)
                    .bind(&k.key_sealed)
                    .bind(&k.key_hint)
                    .bind(&k.base_url)
                    .bind(k.created_by.to_string())
                    .bind(to_millis(k.created_at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| classify(e, "provider_key"))?;
                    Ok(())
                }

                async fn list_provider_keys(&self, org: &OrgScope) -> StoreResult<Vec<ProviderKey>> {
                    let rows: Vec<ProviderKeyRow> = sqlx::query_as(
                        "SELECT id, provider, label, key_sealed, key_hint, base_url, created_by, created_at, last_used_at \
                         FROM provider_keys WHERE org_id = $1 ORDER BY created_at DESC, id DESC",
                    )
                    .bind(org.org_id().to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows.into_iter().map(ProviderKey::from).collect())
                }

                async fn find_provider_key(&self, org: &OrgScope, provider: &str) -> StoreResult<Option<ProviderKey>> {
                    let row: Option<ProviderKeyRow> = sqlx::query_as(
                        "SELECT id, provider, label, key_sealed, key_hint, base_url, created_by, created_at, last_used_at \
                         FROM provider_keys WHERE org_id = $1 AND provider = $2",
                    )
                    .bind(org.org_id().to_string())
                    .bind(provider)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.map(ProviderKey::from))
                }

                async fn delete_provider_key(&self, org: &OrgScope, id: Uuid) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM provider_keys WHERE org_id = $1 AND id = $2")
                        .bind(org.org_id().to_string())
                        .bind(id.to_string())
                        .execute(&self.pool)
                        .await
                        .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                }

                async fn insert_peer_message(&self, org: &OrgScope, m: &PeerMessage) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO peer_messages (id, org_id, session_id, from_agent_id, to_agent_id, text, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(m.id.to_string())
                    .bind(org.org_id().to_string())
                    .bind(m.session_id.to_string())
                    .bind(m.from_agent_id.to_string())
                    .bind(m.to_agent_id.to_string())
                    .bind(&m.text)
                    .bind(to_millis(m.created_at))
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(())
                }

                async fn list_peer_messages(&self, org: &OrgScope, agent: Uuid, limit: u32) -> StoreResult<Vec<PeerMessage>> {
                    let rows: Vec<PeerMessageRow> = sqlx::query_as(
                        "SELECT id, session_id, from_agent_id, to_agent_id, text, created_at, read_at FROM peer_messages \
                         WHERE org_id = $1 AND (from_agent_id = $2 OR to_agent_id = $2) \
                         ORDER BY created_at DESC, id DESC LIMIT $3",
                    )
                    .bind(org.org_id().to_string())
                    .bind(agent.to_string())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows.into_iter().map(PeerMessage::from).collect())
                }

                async fn take_unread_peer_messages(
                    &self,
                    org: &OrgScope,
                    agent: Uuid,
                    at: DateTime<Utc>,
                ) -> StoreResult<Vec<PeerMessage>> {
                    // One statement: a concurrent reader re-checks `read_at IS NULL`.
                    let rows: Vec<PeerMessageRow> = sqlx::query_as(
                        "UPDATE peer_messages SET read_at = $3 \
                         WHERE org_id = $1 AND to_agent_id = $2 AND read_at IS NULL \
                         RETURNING id, session_id, from_agent_id, to_agent_id, text, created_at, read_at",
                    )
                    .bind(org.org_id().to_string())
                    .bind(agent.to_string())
                    .bind(to_millis(at))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    let mut out: Vec<PeerMessage> = rows.into_iter().map(PeerMessage::from).collect();
                    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
                    Ok(out)
                }

                async fn count_unread_peer_messages(&self, org: &OrgScope, agent: Uuid) -> StoreResult<i64> {
                    sqlx::query_scalar(
                        "SELECT COUNT(*) FROM peer_messages WHERE org_id = $1 AND to_agent_id = $2 AND read_at IS NULL",
                    )
                    .bind(org.org_id().to_string())
                    .bind(agent.to_string())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err)
                }
            }
        };
    };
}

pub(crate) use impl_chat_store;
