//! Request and response bodies of `/api/v1`, camelCase on the wire.
//!
//! Requests ignore unknown fields (spec 02 §5: never assigned, never an
//! error); responses never carry a secret except the one-time `key`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub preferences: Value,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityView {
    pub totp_enabled: bool,
    pub passkey_count: i64,
    pub recovery_codes_remaining: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub settings: Value,
    pub created_at: String,
    pub updated_at: String,
}

/// An org in the user's list, with the user's role there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrgRoleView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub is_default: bool,
    pub member_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_via: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
}

/// The `201` of a mint: the only time `key` is ever sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub key: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateApiKeyRequest {
    pub name: String,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub name: Option<String>,
    pub org_slug: String,
    pub org_name: String,
    #[serde(default)]
    pub setup_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub totp_code: Option<String>,
    #[serde(default)]
    pub recovery_code: Option<String>,
    #[serde(default)]
    pub org_slug: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepUpRequest {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub totp_code: Option<String>,
    #[serde(default)]
    pub passkey: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRequest {
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchOrgRequest {
    pub org: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchWorkspaceRequest {
    pub workspace_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    pub id: String,
    pub provider: String,
    pub name: String,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub supports_tools: bool,
    pub supports_reasoning: bool,
    pub byok: bool,
    pub pricing: ModelPricing,
    pub is_default: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelPricing {
    pub input_microcredits_per_mtok: u64,
    pub output_microcredits_per_mtok: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub actor: Value,
    pub ip: String,
    pub target: Value,
    pub data: Value,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateOrgRequest {
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: String,
    pub org_id: String,
    pub workspace_id: Option<String>,
    pub shared_workspace_ids: Vec<String>,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub avatar: String,
    pub model: String,
    pub system_prompt: String,
    pub allowed_tools: Vec<String>,
    pub allowed_peers: Vec<String>,
    pub allowed_connectors: Vec<String>,
    pub skills: Vec<String>,
    pub is_default: bool,
    pub is_active: bool,
    pub settings: Value,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Create and (partial) update of an agent: absent or null leaves a field alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_peers: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_connectors: Option<Vec<String>>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub settings: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRequest {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    pub kind: String,
    pub id: String,
    pub joined_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub project_id: Option<String>,
    pub agent_id: Option<String>,
    pub user_id: String,
    pub label: String,
    pub status: String,
    pub relationship: String,
    pub running_turn: Option<Value>,
    pub metadata: Value,
    pub message_count: i64,
    pub last_message_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<ParticipantView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_avatar: Option<String>,
}

/// A stored chat message (spec 03 §3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub session_id: String,
    pub role: String,
    pub parts: Value,
    pub text: String,
    pub author: MessageAuthor,
    pub status: String,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    pub metadata: Value,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageAuthor {
    pub kind: String,
    pub id: Option<String>,
}

/// `POST /api/v1/sessions/:id/messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageRequest {
    pub id: Option<String>,
    pub role: Option<String>,
    pub content: Option<Value>,
    pub parts: Option<Value>,
    pub metadata: Option<Value>,
}

/// `POST /api/v1/chat`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequest {
    #[serde(default)]
    pub messages: Vec<Value>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub model: Option<String>,
    pub project_id: Option<String>,
    pub id: Option<String>,
    pub trigger: Option<String>,
    pub message_id: Option<String>,
}

/// `POST /api/v1/chat/:sessionId/resume`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResumeRequest {
    pub agent_id: Option<String>,
    pub model: Option<String>,
}

/// Create and (partial) update of a project: absent or null leaves a field alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub emoji: Option<String>,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub shared_workspace_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectWorkspaceView {
    pub id: String,
    pub name: String,
    pub is_primary: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSpendView {
    pub credits_microcredits: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// A project (spec 06 §1). `workspaces` and `spend` only on `GET /projects/:id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub shared_workspace_ids: Vec<String>,
    pub user_id: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub prompt: String,
    pub emoji: String,
    pub visibility: String,
    pub status: String,
    pub tags: Vec<String>,
    pub metadata: Value,
    pub share_enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<Vec<ProjectWorkspaceView>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<ProjectSpendView>,
}

// --- blocks and the project canvas (spec 06 §2) ----------------------------

/// A position as sent: numbers, snapped to the 24 px grid by the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockPositionInput {
    pub x: f64,
    pub y: f64,
    #[serde(default)]
    pub width: Option<f64>,
    #[serde(default)]
    pub height: Option<f64>,
}

/// `POST /blocks` and `POST /projects/:id/blocks` (there the path names the
/// project; a different `projectId` in the body is a `422`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBlockRequest {
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(rename = "type")]
    pub block_type: String,
    #[serde(default)]
    pub title: Option<String>,
    pub data: Value,
    #[serde(default)]
    pub position: Option<BlockPositionInput>,
}

/// `PATCH /blocks/:id`. `expectedUpdatedAt`: the `updatedAt` last read (the
/// ISO string, or integer milliseconds). `projectId` is a `422` (a block
/// never changes project); other unknown fields are ignored (spec 02 §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateBlockRequest {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub position: Option<BlockPositionInput>,
    #[serde(default)]
    pub expected_updated_at: Option<Value>,
    /// Only to refuse it.
    #[serde(default)]
    pub project_id: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockPositionView {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockCreatedByView {
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
}

/// A block (spec 06 §2). `updatedAt` is its revision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockView {
    pub id: String,
    pub org_id: String,
    pub project_id: Option<String>,
    #[serde(rename = "type")]
    pub block_type: String,
    pub title: String,
    pub data: Value,
    pub position: BlockPositionView,
    pub created_by: BlockCreatedByView,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockPositionItem {
    pub id: String,
    /// `block` (default) or `session`.
    #[serde(default)]
    pub kind: Option<String>,
    pub x: f64,
    pub y: f64,
    #[serde(default)]
    pub width: Option<f64>,
    #[serde(default)]
    pub height: Option<f64>,
}

/// `PATCH /projects/:id/blocks/positions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockPositionsRequest {
    pub positions: Vec<BlockPositionItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanvasNodeRef {
    /// `block` or `session`.
    pub kind: String,
    pub id: String,
}

/// `POST /projects/:id/edges`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EdgeRequest {
    pub from: CanvasNodeRef,
    pub to: CanvasNodeRef,
    #[serde(default)]
    pub label: Option<String>,
}

/// A stored edge (`id`, deletable) or a derived one (`id: null`,
/// `derived: "created_by" | "peer_message"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    pub id: Option<String>,
    pub from: CanvasNodeRef,
    pub to: CanvasNodeRef,
    pub label: String,
    pub derived: Option<String>,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanvasBlockView {
    pub id: String,
    #[serde(rename = "type")]
    pub block_type: String,
    pub title: String,
    pub position: BlockPositionView,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanvasAgentNodeView {
    pub session_id: String,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub status: String,
    pub position: BlockPositionView,
}

/// `GET /projects/:id/canvas`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanvasView {
    pub project: ProjectView,
    pub blocks: Vec<CanvasBlockView>,
    pub agent_nodes: Vec<CanvasAgentNodeView>,
    pub edges: Vec<EdgeView>,
}

/// `POST /blocks/arrange`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArrangeBlocksRequest {
    pub project_id: String,
    #[serde(default)]
    pub block_ids: Option<Vec<String>>,
    /// `grid` (default) or `ai`.
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArrangedPositionView {
    pub id: String,
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArrangeBlocksView {
    pub positions: Vec<ArrangedPositionView>,
    pub strategy: String,
    pub dry_run: bool,
}

/// `POST /projects/:id/restore-last-run`: ids restored and deleted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreLastRunView {
    pub turn_id: String,
    pub restored: Vec<String>,
    pub deleted: Vec<String>,
}

/// A file, folder or link (spec 06 §3). `storageKey` is never sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileView {
    pub id: String,
    pub org_id: String,
    pub project_id: Option<String>,
    pub parent_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub mime_type: Option<String>,
    pub size: i64,
    pub sha256: Option<String>,
    pub status: String,
    pub system_kind: Option<String>,
    pub is_protected: bool,
    pub target_file_id: Option<String>,
    pub tags: Vec<String>,
    pub metadata: serde_json::Value,
    pub preview_kind: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /api/v1/files` as JSON: an upload (default), a folder or a link.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateFileRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub target_file_id: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// `PATCH /api/v1/files/:id`: absent fields stay.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFileRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// Where to send the bytes of a pending upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileUploadTarget {
    pub url: String,
    pub method: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_at: String,
}

/// `201` of a JSON upload create: the pending file and its upload target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileCreatedView {
    pub file: FileView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<FileUploadTarget>,
}

/// `GET /api/v1/files/:id/preview`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FilePreviewView {
    pub preview_kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<Vec<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether `text` or `table` stops before the end of the file.
    pub truncated: bool,
}
