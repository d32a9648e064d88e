//! Row types, private to this crate, and their conversion to domain types.

use alumia_core::clock::from_millis;
use alumia_core::model::*;
use uuid::Uuid;

pub(crate) fn uuid(s: &str) -> Uuid {
    // Ids are written by us as hyphenated UUIDs; a bad one is a corrupt row.
    Uuid::parse_str(s).unwrap_or(Uuid::nil())
}

fn opt_uuid(s: Option<String>) -> Option<Uuid> {
    s.as_deref().map(uuid)
}

pub(crate) fn split_words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub preferences: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    pub fn into_user(self) -> User {
        User {
            id: uuid(&self.id),
            email: self.email,
            name: self.name,
            preferences: serde_json::from_str(&self.preferences).unwrap_or_default(),
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
        }
    }

    pub fn into_credentials(self) -> UserCredentials {
        let password_hash = self.password_hash.clone();
        UserCredentials {
            user: self.into_user(),
            password_hash,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrgRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub settings: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<OrgRow> for Org {
    fn from(r: OrgRow) -> Org {
        Org {
            id: uuid(&r.id),
            slug: r.slug,
            name: r.name,
            settings: serde_json::from_str(&r.settings).unwrap_or_default(),
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrgRoleRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub settings: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub role: String,
}

impl From<OrgRoleRow> for OrgMembership {
    fn from(r: OrgRoleRow) -> OrgMembership {
        let role = Role::parse(&r.role).unwrap_or(Role::Member);
        OrgMembership {
            org: OrgRow {
                id: r.id,
                slug: r.slug,
                name: r.name,
                settings: r.settings,
                created_at: r.created_at,
                updated_at: r.updated_at,
            }
            .into(),
            role,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

impl From<MemberRow> for Member {
    fn from(r: MemberRow) -> Member {
        Member {
            user_id: uuid(&r.user_id),
            email: r.email,
            name: r.name,
            role: Role::parse(&r.role).unwrap_or(Role::Member),
            created_at: from_millis(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct WorkspaceRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub is_default: bool,
    pub member_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<WorkspaceRow> for Workspace {
    fn from(r: WorkspaceRow) -> Workspace {
        Workspace {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            name: r.name,
            slug: r.slug,
            description: r.description,
            is_default: r.is_default,
            member_count: r.member_count,
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created_via: String,
    pub active_workspace_id: Option<String>,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(r: ApiKeyRow) -> ApiKey {
        ApiKey {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            user_id: uuid(&r.user_id),
            name: r.name,
            prefix: r.prefix,
            scopes: split_words(&r.scopes),
            created_via: KeyOrigin::parse(&r.created_via).unwrap_or(KeyOrigin::Dashboard),
            last_used_at: r.last_used_at.map(from_millis),
            expires_at: r.expires_at.map(from_millis),
            revoked_at: r.revoked_at.map(from_millis),
            active_workspace_id: opt_uuid(r.active_workspace_id),
            created_at: from_millis(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyGrantRow {
    #[sqlx(flatten)]
    pub key: ApiKeyRow,
    pub key_hash: String,
    pub org_slug: String,
    pub role: Option<String>,
}

impl From<KeyGrantRow> for KeyGrant {
    fn from(r: KeyGrantRow) -> KeyGrant {
        KeyGrant {
            key: r.key.into(),
            key_hash: r.key_hash,
            org_slug: r.org_slug,
            role: r.role.as_deref().and_then(Role::parse),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub current_org_id: Option<String>,
    pub active_workspace_id: Option<String>,
    pub csrf_token: String,
    pub auth_time: i64,
    pub step_up_at: Option<i64>,
    pub amr: String,
    pub ip: String,
    pub user_agent: String,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

impl From<SessionRow> for BrowserSession {
    fn from(r: SessionRow) -> BrowserSession {
        BrowserSession {
            id: uuid(&r.id),
            user_id: uuid(&r.user_id),
            current_org_id: opt_uuid(r.current_org_id),
            active_workspace_id: opt_uuid(r.active_workspace_id),
            csrf_token: r.csrf_token,
            auth_time: from_millis(r.auth_time),
            step_up_at: r.step_up_at.map(from_millis),
            amr: split_words(&r.amr),
            ip: r.ip,
            user_agent: r.user_agent,
            last_seen_at: from_millis(r.last_seen_at),
            expires_at: from_millis(r.expires_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TotpRow {
    pub secret_enc: String,
    pub enabled: bool,
    pub last_step: Option<i64>,
}

impl From<TotpRow> for TotpState {
    fn from(r: TotpRow) -> TotpState {
        TotpState {
            secret_enc: r.secret_enc,
            enabled: r.enabled,
            last_step: r.last_step,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub actor_kind: String,
    pub actor_user_id: Option<String>,
    pub actor_key_id: Option<String>,
    pub ip: String,
    pub target_kind: String,
    pub target_id: String,
    pub data: String,
    pub created_at: i64,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> AuditEvent {
        AuditEvent {
            id: uuid(&r.id),
            kind: r.kind,
            actor_kind: r.actor_kind,
            actor_user_id: opt_uuid(r.actor_user_id),
            actor_key_id: opt_uuid(r.actor_key_id),
            ip: r.ip,
            target_kind: r.target_kind,
            target_id: r.target_id,
            data: serde_json::from_str(&r.data).unwrap_or_default(),
            created_at: from_millis(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: Option<String>,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub avatar: String,
    pub model: Option<String>,
    pub system_prompt: String,
    pub allowed_tools: String,
    pub allowed_peers: String,
    pub allowed_connectors: String,
    pub skills: String,
    pub shared_workspace_ids: String,
    pub settings: String,
    pub is_default: bool,
    pub is_active: bool,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Agent {
        Agent {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            workspace_id: opt_uuid(r.workspace_id),
            name: r.name,
            slug: r.slug,
            description: r.description,
            avatar: r.avatar,
            model: r.model,
            system_prompt: r.system_prompt,
            allowed_tools: json_list(&r.allowed_tools),
            allowed_peers: json_list(&r.allowed_peers),
            allowed_connectors: json_list(&r.allowed_connectors),
            skills: json_list(&r.skills),
            shared_workspace_ids: json_list(&r.shared_workspace_ids)
                .iter()
                .map(|s| uuid(s))
                .collect(),
            settings: serde_json::from_str(&r.settings).unwrap_or_default(),
            is_default: r.is_default,
            is_active: r.is_active,
            created_by: opt_uuid(r.created_by),
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ChatSessionRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub project_id: Option<String>,
    pub agent_id: Option<String>,
    pub user_id: String,
    pub label: String,
    pub status: String,
    pub relationship: String,
    pub running_turn: Option<String>,
    pub metadata: String,
    pub message_count: i64,
    pub last_message_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<ChatSessionRow> for ChatSession {
    fn from(r: ChatSessionRow) -> ChatSession {
        ChatSession {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            workspace_id: uuid(&r.workspace_id),
            project_id: opt_uuid(r.project_id),
            agent_id: opt_uuid(r.agent_id),
            user_id: uuid(&r.user_id),
            label: r.label,
            status: r.status,
            relationship: r.relationship,
            running_turn: r.running_turn.and_then(|t| serde_json::from_str(&t).ok()),
            metadata: serde_json::from_str(&r.metadata).unwrap_or_default(),
            message_count: r.message_count,
            last_message_at: r.last_message_at.map(from_millis),
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ParticipantRow {
    pub kind: String,
    pub participant_id: String,
    pub joined_at: i64,
}

impl From<ParticipantRow> for Participant {
    fn from(r: ParticipantRow) -> Participant {
        Participant {
            kind: r.kind,
            id: uuid(&r.participant_id),
            joined_at: from_millis(r.joined_at),
        }
    }
}
