//! Who is calling, in which org, with which rights.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::error::DomainError;
use crate::model::Role;
use crate::scope::OrgScope;

pub const SCOPE_MODELS_READ: &str = "models:read";
pub const SCOPE_TERMINAL: &str = "terminal";
pub const SCOPE_MACHINE_CHARGE: &str = "billing:machine:charge";
pub const SCOPE_MCP_READ: &str = "mcp:read";
pub const SCOPE_MCP_WRITE: &str = "mcp:write";

/// Scopes a dashboard or admin mint may request (`terminal` is device-only).
pub const MINTABLE_SCOPES: [&str; 4] = [
    SCOPE_MODELS_READ,
    SCOPE_MCP_READ,
    SCOPE_MCP_WRITE,
    SCOPE_MACHINE_CHARGE,
];

#[derive(Debug, Clone)]
pub enum PrincipalKind {
    ApiKey {
        key_id: Uuid,
        prefix: String,
    },
    Session {
        session_id: Uuid,
        csrf_token: String,
        step_up_at: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub user_id: Uuid,
    pub org: OrgScope,
    pub org_slug: String,
    pub role: Role,
    /// For keys, the key's scopes; for sessions, every scope the role permits.
    pub scopes: Vec<String>,
    pub active_workspace_id: Option<Uuid>,
}

/// Every scope a role permits; a browser session holds all of them.
pub fn role_scopes(role: Role) -> &'static [&'static str] {
    const MEMBER: [&str; 3] = [SCOPE_MODELS_READ, SCOPE_MCP_READ, SCOPE_MCP_WRITE];
    const ADMIN: [&str; 4] = [
        SCOPE_MODELS_READ,
        SCOPE_MCP_READ,
        SCOPE_MCP_WRITE,
        SCOPE_MACHINE_CHARGE,
    ];
    if role.is_admin() { &ADMIN } else { &MEMBER }
}

impl Principal {
    pub fn is_api_key(&self) -> bool {
        matches!(self.kind, PrincipalKind::ApiKey { .. })
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            PrincipalKind::ApiKey { .. } => "api_key",
            PrincipalKind::Session { .. } => "session",
        }
    }

    pub fn key_id(&self) -> Option<Uuid> {
        match &self.kind {
            PrincipalKind::ApiKey { key_id, .. } => Some(*key_id),
            PrincipalKind::Session { .. } => None,
        }
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match &self.kind {
            PrincipalKind::Session { session_id, .. } => Some(*session_id),
            PrincipalKind::ApiKey { .. } => None,
        }
    }

    /// 403 `insufficient_scope` naming the scope.
    pub fn require_scope(&self, scope: &str) -> Result<(), DomainError> {
        // A key's scopes only narrow its user's current role.
        let permitted = role_scopes(self.role).contains(&scope)
            || (scope == SCOPE_TERMINAL && self.is_api_key());
        if permitted && self.scopes.iter().any(|s| s == scope) {
            return Ok(());
        }
        Err(DomainError::Forbidden {
            reason: "insufficient_scope",
            message: format!("this credential lacks the {scope} scope"),
            details: Some(json!({ "requiredScope": scope })),
        })
    }

    /// 403 `insufficient_role` with `details.requiredRole`.
    pub fn require_role(&self, role: Role) -> Result<(), DomainError> {
        if self.role >= role {
            return Ok(());
        }
        Err(DomainError::Forbidden {
            reason: "insufficient_role",
            message: format!("this needs the {} role", role.as_str()),
            details: Some(json!({ "requiredRole": role.as_str() })),
        })
    }

    /// 403 `browser_session_required` for keys: they never get a step-up offer.
    pub fn require_browser_session(&self) -> Result<Uuid, DomainError> {
        match &self.kind {
            PrincipalKind::Session { session_id, .. } => Ok(*session_id),
            PrincipalKind::ApiKey { .. } => Err(DomainError::forbidden(
                "browser_session_required",
                "this action needs a signed-in browser session; API keys cannot perform it",
            )),
        }
    }

    /// A browser session whose last step-up is within the (fixed) window.
    pub fn require_step_up(
        &self,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> Result<Uuid, DomainError> {
        let session_id = self.require_browser_session()?;
        if let PrincipalKind::Session {
            step_up_at: Some(at),
            ..
        } = &self.kind
            && now - *at <= Duration::seconds(window_secs)
        {
            return Ok(session_id);
        }
        Err(DomainError::Forbidden {
            reason: "step_up_required",
            message: "confirm your password or a second factor first".into(),
            details: Some(json!({
                "stepUpUrl": "/api/v1/auth/step-up",
                "maxAgeSeconds": window_secs,
            })),
        })
    }
}
