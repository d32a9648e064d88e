//! The storage contract. alumia-store implements it on SQLite and PostgreSQL;
//! the server holds an `Arc<dyn Store>` and never names a backend.
//!
//! Tenant-owned methods take `&OrgScope` first and filter on its org. The few
//! unscoped lookups are named for what they find (`find_key_grant_by_hash`,
//! `find_session_by_hash`): they are how a scope is derived in the first place.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::*;
use crate::scope::OrgScope;

pub type StoreResult<T> = Result<T, StoreError>;

/// A keyset page request, newest first: rows strictly before `after`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest {
    /// How many rows to return; stores fetch exactly this many.
    pub limit: u32,
    /// `(created_at millis, id)` of the last row of the previous page.
    pub after: Option<(i64, Uuid)>,
}

#[async_trait]
pub trait Store:
    crate::chat_store::ChatStore
    + crate::device::DeviceStore
    + crate::projects::ProjectStore
    + crate::sharing::ShareStore
    + crate::blocks::BlockStore
    + crate::portability::PortabilityStore
    + crate::files::FileStore
    + Send
    + Sync
    + 'static
{
    /// `"sqlite"` or `"postgres"`, for the start-up line and `/api/v1/meta`.
    fn kind(&self) -> &'static str;

    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Close the pool: on shutdown, after in-flight requests finished.
    async fn close(&self);

    // --- users and orgs ---------------------------------------------------

    async fn count_users(&self) -> StoreResult<i64>;

    /// First run: creates the owner, the org and its default workspace in one
    /// transaction, only while no user exists (else `Conflict("already_set_up")`).
    async fn setup_first_owner(&self, user: &NewUser, org: &NewOrg) -> StoreResult<()>;

    /// `Conflict("user_email")` when the (case-folded) email exists.
    async fn create_user(&self, user: &NewUser) -> StoreResult<()>;

    /// Creates the org, its default workspace and the owner's membership in
    /// one transaction. `Conflict("org_slug")` when the slug is taken.
    async fn create_org(&self, org: &NewOrg, owner: Uuid) -> StoreResult<()>;

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserCredentials>>;
    async fn get_user(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn get_password_hash(&self, user: Uuid) -> StoreResult<Option<String>>;
    async fn set_password_hash(&self, user: Uuid, hash: &str, at: DateTime<Utc>)
    -> StoreResult<()>;

    async fn get_org(&self, id: Uuid) -> StoreResult<Option<Org>>;
    async fn get_org_by_slug(&self, slug: &str) -> StoreResult<Option<Org>>;
    /// The user's orgs with their role, by slug.
    async fn list_user_orgs(&self, user: Uuid) -> StoreResult<Vec<OrgMembership>>;

    // --- membership (scoped) ------------------------------------------------

    /// `Conflict("membership")` when the user is already a member.
    async fn add_member(
        &self,
        org: &OrgScope,
        user: Uuid,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn get_role(&self, org: &OrgScope, user: Uuid) -> StoreResult<Option<Role>>;
    async fn list_members(&self, org: &OrgScope) -> StoreResult<Vec<Member>>;
    /// Removes the membership and the user's workspace memberships in this org.
    async fn remove_member(&self, org: &OrgScope, user: Uuid) -> StoreResult<()>;

    // --- workspaces (scoped) ------------------------------------------------

    /// Accessible workspaces, default first, then by name: admins and owners
    /// see all; members see the default one and those they belong to.
    async fn list_workspaces(
        &self,
        org: &OrgScope,
        user: Uuid,
        role: Role,
    ) -> StoreResult<Vec<Workspace>>;
    async fn get_workspace(
        &self,
        org: &OrgScope,
        user: Uuid,
        role: Role,
        id: Uuid,
    ) -> StoreResult<Option<Workspace>>;

    // --- API keys -------------------------------------------------------------

    async fn create_api_key(&self, org: &OrgScope, key: &NewApiKey) -> StoreResult<ApiKey>;
    /// Unscoped by design: this is how a Bearer key finds its org.
    async fn find_key_grant_by_hash(&self, key_hash: &str) -> StoreResult<Option<KeyGrant>>;
    /// The user's non-revoked keys in this org, newest first.
    async fn list_api_keys(
        &self,
        org: &OrgScope,
        user: Uuid,
        page: PageRequest,
    ) -> StoreResult<Vec<ApiKey>>;
    async fn get_api_key(&self, org: &OrgScope, id: Uuid) -> StoreResult<Option<ApiKey>>;
    /// `NotFound` for another user's key; `Conflict("already_revoked")` the second time.
    async fn revoke_api_key(
        &self,
        org: &OrgScope,
        user: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<ApiKey>;
    async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;
    async fn set_key_workspace(
        &self,
        org: &OrgScope,
        key: Uuid,
        workspace: Uuid,
    ) -> StoreResult<()>;

    // --- browser sessions -------------------------------------------------------

    async fn create_session(&self, token_hash: &str, session: &BrowserSession) -> StoreResult<()>;
    /// Unscoped by design: this is how a cookie finds its user.
    async fn find_session_by_hash(&self, token_hash: &str) -> StoreResult<Option<BrowserSession>>;
    /// Moves the session to a new token (the id rotates on step-up) and records the step-up.
    async fn rotate_session(
        &self,
        id: Uuid,
        new_token_hash: &str,
        step_up_at: DateTime<Utc>,
        amr: &[String],
    ) -> StoreResult<()>;
    async fn set_session_context(
        &self,
        id: Uuid,
        current_org: Option<Uuid>,
        active_workspace: Option<Uuid>,
    ) -> StoreResult<()>;
    async fn touch_session(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;
    async fn delete_session(&self, id: Uuid) -> StoreResult<()>;
    async fn delete_user_sessions(&self, user: Uuid, except: Option<Uuid>) -> StoreResult<u64>;

    // --- second factors -----------------------------------------------------------

    async fn get_totp(&self, user: Uuid) -> StoreResult<Option<TotpState>>;
    /// Stores a new, not yet enabled secret (replacing a pending one).
    async fn set_totp_pending(&self, user: Uuid, secret_enc: &str) -> StoreResult<()>;
    /// Enables TOTP and replaces the recovery codes (their HMACs).
    async fn enable_totp(
        &self,
        user: Uuid,
        recovery_code_hashes: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Records `step` as the last accepted TOTP step if it is strictly newer.
    /// Returns false when it is not: that code (or an older one) was used.
    async fn accept_totp_step(&self, user: Uuid, step: i64) -> StoreResult<bool>;
    async fn disable_totp(&self, user: Uuid) -> StoreResult<()>;
    async fn recovery_codes_remaining(&self, user: Uuid) -> StoreResult<i64>;
    /// Marks one unused recovery code used; false when none matched.
    async fn use_recovery_code(
        &self,
        user: Uuid,
        code_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    // --- agents (scoped) -------------------------------------------------------

    /// `Conflict("agent_slug")` when a live agent of the org has the slug.
    async fn create_agent(&self, org: &OrgScope, agent: &Agent) -> StoreResult<()>;
    /// A live (non-deleted) agent by id or slug.
    async fn get_agent(&self, org: &OrgScope, agent: &AgentRef) -> StoreResult<Option<Agent>>;
    /// Live agents, `updated_at` desc; `workspaces: Some(ids)` keeps Ala and
    /// the agents of those workspaces only (None: every workspace).
    async fn list_agents(
        &self,
        org: &OrgScope,
        workspaces: Option<&[Uuid]>,
        page: PageRequest,
    ) -> StoreResult<Vec<Agent>>;
    /// Writes every mutable field of a live agent (`NotFound` otherwise).
    async fn update_agent(&self, org: &OrgScope, agent: &Agent) -> StoreResult<()>;
    /// Soft delete; `NotFound` when already gone.
    async fn delete_agent(&self, org: &OrgScope, id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;

    // --- chat sessions (scoped) ----------------------------------------------------

    /// Inserts the session and its first participants in one transaction.
    async fn create_chat_session(
        &self,
        org: &OrgScope,
        session: &ChatSession,
        participants: &[Participant],
    ) -> StoreResult<()>;
    async fn get_chat_session(&self, org: &OrgScope, id: Uuid) -> StoreResult<Option<ChatSession>>;
    /// Live sessions, `updated_at` desc, in the given workspaces (None: all).
    async fn list_chat_sessions(
        &self,
        org: &OrgScope,
        workspaces: Option<&[Uuid]>,
        filter: &SessionFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<ChatSession>>;
    /// Writes label, status, metadata and `updated_at` of a live session.
    async fn update_chat_session(&self, org: &OrgScope, session: &ChatSession) -> StoreResult<()>;
    async fn delete_chat_session(
        &self,
        org: &OrgScope,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn list_participants(
        &self,
        org: &OrgScope,
        session: Uuid,
    ) -> StoreResult<Vec<Participant>>;

    // --- audit ----------------------------------------------------------------

    async fn record_audit(&self, org: &OrgScope, event: &AuditEvent) -> StoreResult<()>;
    async fn list_audit(&self, org: &OrgScope, page: PageRequest) -> StoreResult<Vec<AuditEvent>>;
}
