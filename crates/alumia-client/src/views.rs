//! Answers that have no DTO in alumia-types: `/me`, stop and revoke results.

use alumia_types::dto::{OrgView, UserView};
use serde::{Deserialize, Serialize};

/// `GET /api/v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeView {
    pub user: UserView,
    pub org: OrgView,
    pub role: String,
    pub principal: PrincipalView,
    pub active_workspace_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalView {
    /// `api_key` or `session`.
    pub kind: String,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub key_prefix: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `POST /api/v1/chat/:sessionId/stop`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StopView {
    pub session_id: String,
    pub turn_id: String,
    pub status: String,
}

/// `DELETE /api/v1/api-keys/:id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevokedKeyView {
    pub id: String,
    pub revoked_at: String,
}
