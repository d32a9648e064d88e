//! Stored entities, as the domain sees them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn is_admin(self) -> bool {
        self >= Role::Admin
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserPreferences {
    pub default_project_visibility: String,
    pub timezone: String,
    pub locale: String,
}

impl Default for UserPreferences {
    fn default() -> Self {
        UserPreferences {
            default_project_visibility: "team".into(),
            timezone: "UTC".into(),
            locale: "en".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub preferences: UserPreferences,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user row plus the secret parts only login and step-up read.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrgSettings {
    pub default_model: Option<String>,
    pub auto_memory: bool,
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            default_model: None,
            auto_memory: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub settings: OrgSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewOrg {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// The "General" workspace created with the org.
    pub default_workspace_id: Uuid,
    /// Ala, created in the same transaction.
    pub default_agent: Agent,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrgMembership {
    pub org: Org,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub is_default: bool,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyOrigin {
    Dashboard,
    Device,
    AdminCli,
}

impl KeyOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrigin::Dashboard => "dashboard",
            KeyOrigin::Device => "device",
            KeyOrigin::AdminCli => "admin_cli",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "dashboard" => Some(KeyOrigin::Dashboard),
            "device" => Some(KeyOrigin::Device),
            "admin_cli" => Some(KeyOrigin::AdminCli),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_via: KeyOrigin,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub active_workspace_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    /// SHA-256 hex of the full key; the plaintext is never stored.
    pub key_hash: String,
    pub scopes: Vec<String>,
    pub created_via: KeyOrigin,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What authentication needs to know about a key, read in one query:
/// the key, its org's slug, and its user's *current* role (None when the
/// user is no longer a member).
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub key: ApiKey,
    pub key_hash: String,
    pub org_slug: String,
    pub role: Option<Role>,
}

#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub current_org_id: Option<Uuid>,
    pub active_workspace_id: Option<Uuid>,
    pub csrf_token: String,
    pub auth_time: DateTime<Utc>,
    pub step_up_at: Option<DateTime<Utc>>,
    pub amr: Vec<String>,
    pub ip: String,
    pub user_agent: String,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct TotpState {
    /// AES-256-GCM ciphertext of the base32 secret.
    pub secret_enc: String,
    pub enabled: bool,
    pub last_step: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub kind: String,
    pub actor_kind: String,
    pub actor_user_id: Option<Uuid>,
    pub actor_key_id: Option<Uuid>,
    pub ip: String,
    pub target_kind: String,
    pub target_id: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// An agent. Ala (`is_default`) has no workspace and reports the org's model.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub avatar: String,
    /// `None`: the org default (always for Ala).
    pub model: Option<String>,
    pub system_prompt: String,
    pub allowed_tools: Vec<String>,
    pub allowed_peers: Vec<String>,
    pub allowed_connectors: Vec<String>,
    pub skills: Vec<String>,
    pub shared_workspace_ids: Vec<Uuid>,
    pub settings: serde_json::Value,
    pub is_default: bool,
    pub is_active: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a path names an agent: a UUID is an id, anything else a slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRef {
    Id(Uuid),
    Slug(String),
}

impl AgentRef {
    pub fn parse(raw: &str) -> AgentRef {
        match Uuid::parse_str(raw) {
            Ok(id) => AgentRef::Id(id),
            Err(_) => AgentRef::Slug(raw.to_string()),
        }
    }
}

/// A conversation (spec 03 §2). Named `ChatSession` to keep it apart from
/// browser sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSession {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub project_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub user_id: Uuid,
    pub label: String,
    pub status: String,
    pub relationship: String,
    pub running_turn: Option<serde_json::Value>,
    pub metadata: serde_json::Value,
    pub message_count: i64,
    pub last_message_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    /// `user` or `agent`.
    pub kind: String,
    pub id: Uuid,
    pub joined_at: DateTime<Utc>,
}

/// Filters of `GET /api/v1/sessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub agent_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub status: Option<String>,
    /// Archived sessions are listed only when asked for by status.
    pub include_archived: bool,
}
