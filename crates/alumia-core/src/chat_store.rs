//! The storage contract of chat: messages, turns and their event logs,
//! idempotency records, BYOK provider keys and peer messages. A supertrait
//! of [`crate::Store`], so `dyn Store` reaches it; kept apart because it is
//! one resource with its own invariants (one running turn per session,
//! message order, the event log a reattaching client replays).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::scope::OrgScope;
use crate::store::StoreResult;

/// A stored message (spec 03 §3). `id` is a uuid or a client UIMessage id.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub id: String,
    pub session_id: Uuid,
    /// Position in the session, from 1; assigned by the store.
    pub seq: i64,
    pub role: String,
    pub parts: Value,
    pub text: String,
    pub author_kind: String,
    pub author_id: Option<Uuid>,
    /// `complete`, `streaming`, `cancelled` or `error`.
    pub status: String,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a save of the streaming assistant message writes.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageProgress {
    pub parts: Value,
    pub text: String,
    pub status: String,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
}

/// A turn: one run of the agent loop in a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub id: Uuid,
    pub session_id: Uuid,
    pub agent_id: Uuid,
    /// The assistant message the turn streams into.
    pub message_id: String,
    pub model: String,
    /// `running`, `complete`, `error` or `cancelled`.
    pub status: String,
    pub finish_reason: Option<String>,
    pub stop_requested: bool,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seq of the last event in the log, or -1 when none was written.
    pub last_seq: i64,
}

/// One chunk of a turn's stream, as the log keeps it (compact JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEvent {
    pub seq: i64,
    pub data: String,
}

/// Why a turn could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartTurnError {
    /// The session is missing, deleted or another org's.
    SessionNotFound,
    TurnInProgress,
    /// A message id the session already holds.
    DuplicateMessage(String),
}

/// How a turn ends: the final message and the session status it leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEnd {
    pub status: String,
    pub finish_reason: String,
    pub message: MessageProgress,
    pub session_status: String,
    pub events: Vec<TurnEvent>,
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// Claimed now: run the operation, then complete or release the key.
    Claimed,
    /// Another request with this key is running.
    InFlight,
    /// The key was used with a different request.
    Mismatch,
    /// Done before: replay this.
    Done(StoredResponse),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

/// An org's own provider key (BYOK), sealed with the server secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderKey {
    pub id: Uuid,
    pub provider: String,
    pub label: String,
    /// AES-GCM sealed key; only the model layer opens it.
    pub key_sealed: String,
    /// The last four characters, for lists.
    pub key_hint: String,
    pub base_url: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A message between two agents (spec 03 §1, `/agents/:id/messages`).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerMessage {
    pub id: Uuid,
    /// The recipient's peer session.
    pub session_id: Uuid,
    pub from_agent_id: Uuid,
    pub to_agent_id: Uuid,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    // --- messages ---------------------------------------------------------------

    /// Appends messages in order (seq assigned here) to a live session, in
    /// one transaction. `require_idle`: refuse while a turn runs.
    /// Errors: `NotFound`, `Conflict("turn_in_progress")`,
    /// `Conflict("duplicate_message")`.
    async fn append_messages(
        &self,
        org: &OrgScope,
        session: Uuid,
        messages: &[ChatMessage],
        require_idle: bool,
    ) -> StoreResult<Vec<ChatMessage>>;

    /// Messages by seq: after `after_seq` ascending, or before it descending.
    async fn list_messages(
        &self,
        org: &OrgScope,
        session: Uuid,
        after_seq: Option<i64>,
        descending: bool,
        limit: u32,
    ) -> StoreResult<Vec<ChatMessage>>;

    async fn get_message(
        &self,
        org: &OrgScope,
        session: Uuid,
        id: &str,
    ) -> StoreResult<Option<ChatMessage>>;

    // --- turns --------------------------------------------------------------------

    /// In one transaction: claims the session for the turn (it must be live
    /// and have no running turn), appends `new_messages` and the streaming
    /// assistant message, records the turn, and sets the session `active`.
    async fn start_turn(
        &self,
        org: &OrgScope,
        turn: &Turn,
        new_messages: &[ChatMessage],
        assistant: &ChatMessage,
        participant_agent: Uuid,
    ) -> StoreResult<Result<Vec<ChatMessage>, StartTurnError>>;

    /// As `start_turn`, creating the session (and its first participants)
    /// in the same transaction: a chat without `sessionId` commits once.
    #[allow(clippy::too_many_arguments)]
    async fn start_turn_in_new_session(
        &self,
        org: &OrgScope,
        session: &crate::model::ChatSession,
        participants: &[crate::model::Participant],
        turn: &Turn,
        new_messages: &[ChatMessage],
        assistant: &ChatMessage,
        participant_agent: Uuid,
    ) -> StoreResult<Result<Vec<ChatMessage>, StartTurnError>>;

    /// Saves the streaming message and new log events, beats the heartbeat,
    /// and says whether a stop was requested.
    async fn save_turn_progress(
        &self,
        org: &OrgScope,
        turn: &Turn,
        message: &MessageProgress,
        events: &[TurnEvent],
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Finalises the turn, its message and its session in one transaction.
    async fn finish_turn(
        &self,
        org: &OrgScope,
        turn: &Turn,
        end: &TurnEnd,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    async fn get_turn(&self, org: &OrgScope, id: Uuid) -> StoreResult<Option<Turn>>;

    /// The running turn of a live session, if any.
    async fn running_turn(&self, org: &OrgScope, session: Uuid) -> StoreResult<Option<Turn>>;

    /// Marks the session's running turn for stopping; its id, or None.
    async fn request_stop(&self, org: &OrgScope, session: Uuid) -> StoreResult<Option<Uuid>>;

    /// Log events with seq > `after_seq`, in order.
    async fn turn_events(
        &self,
        org: &OrgScope,
        turn: Uuid,
        after_seq: i64,
    ) -> StoreResult<Vec<TurnEvent>>;

    /// Ends turns whose heartbeat stopped before `before` (their process
    /// died): message `error`, session `paused`. Returns how many.
    async fn fail_stale_turns(&self, before: DateTime<Utc>, at: DateTime<Utc>) -> StoreResult<u64>;

    /// Deletes the event logs of turns that ended before `before`.
    async fn prune_turn_events(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // --- idempotency -------------------------------------------------------------

    /// Atomically claims `(org, key)`; records older than `expired_before`
    /// are forgotten first.
    async fn claim_idempotency(
        &self,
        org: &OrgScope,
        key: &str,
        fingerprint: &str,
        at: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> StoreResult<IdempotencyClaim>;

    async fn complete_idempotency(
        &self,
        org: &OrgScope,
        key: &str,
        response: &StoredResponse,
    ) -> StoreResult<()>;

    /// Forgets an in-flight claim so a retry runs again.
    async fn release_idempotency(&self, org: &OrgScope, key: &str) -> StoreResult<()>;

    // --- BYOK provider keys ------------------------------------------------------

    /// `Conflict("provider_key")` if the org already has a key for the provider.
    async fn create_provider_key(&self, org: &OrgScope, key: &ProviderKey) -> StoreResult<()>;
    async fn list_provider_keys(&self, org: &OrgScope) -> StoreResult<Vec<ProviderKey>>;
    async fn find_provider_key(
        &self,
        org: &OrgScope,
        provider: &str,
    ) -> StoreResult<Option<ProviderKey>>;
    async fn delete_provider_key(&self, org: &OrgScope, id: Uuid) -> StoreResult<()>;

    // --- peer messages -----------------------------------------------------------

    async fn insert_peer_message(&self, org: &OrgScope, message: &PeerMessage) -> StoreResult<()>;
    /// Sent or received by the agent, newest first.
    async fn list_peer_messages(
        &self,
        org: &OrgScope,
        agent: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<PeerMessage>>;
    /// Unread messages to the agent, oldest first, marked read in the same
    /// transaction so two readers never both get one.
    async fn take_unread_peer_messages(
        &self,
        org: &OrgScope,
        agent: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<PeerMessage>>;
    async fn count_unread_peer_messages(&self, org: &OrgScope, agent: Uuid) -> StoreResult<i64>;
}
