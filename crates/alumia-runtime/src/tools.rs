//! The built-in agent tools of P2 (spec 03 §6): `echo` and peer messaging
//! (`list_agents`, `spawn_agent`, `message_agent`, `check_messages`) plus
//! `set_agent_model`; and the canvas tools of spec 06 §2 (`data_block`,
//! `show`, `list_blocks`, `search_blocks`, in `block_tools`). Tools run
//! server-side with the turn's principal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use alumia_core::agents::AgentInput;
use alumia_core::chat_store::{ChatMessage, PeerMessage};
use alumia_core::model::{Agent, ChatSession, Participant, SessionFilter};
use alumia_core::store::PageRequest;
use alumia_core::{DomainError, Principal, new_id};
use alumia_models::ToolSpec;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Runtime;

/// Tools that exist in this build. Others named in `allowedTools` (later
/// phases, connectors) are not offered.
pub const SHIPPED: [&str; 10] = [
    "echo",
    "list_agents",
    "check_messages",
    "spawn_agent",
    "message_agent",
    "set_agent_model",
    "data_block",
    "show",
    "list_blocks",
    "search_blocks",
];

/// `spawn_agent` calls allowed per turn.
pub const MAX_SPAWNS_PER_TURN: u32 = 5;
/// Peer-triggered turns in a chain before `message_agent` refuses: a
/// runaway conversation between agents ends here.
pub const MAX_PEER_HOPS: u32 = 8;

pub fn effective(agent: &Agent) -> Vec<String> {
    agent
        .allowed_tools
        .iter()
        .filter(|t| SHIPPED.contains(&t.as_str()))
        .cloned()
        .collect()
}

pub fn spec(name: &str) -> Option<ToolSpec> {
    let (description, parameters) = match name {
        "echo" => (
            "Returns the given text unchanged.",
            json!({"type": "object", "properties": {"text": {"type": "string"}}}),
        ),
        "list_agents" => (
            "Lists the agents you may message.",
            json!({"type": "object", "properties": {}}),
        ),
        "check_messages" => (
            "Returns your unread messages from other agents and marks them read.",
            json!({"type": "object", "properties": {}}),
        ),
        "spawn_agent" => (
            "Creates a new peer agent and its session.",
            json!({"type": "object", "required": ["name", "systemPrompt"], "properties": {
                "name": {"type": "string"}, "systemPrompt": {"type": "string"},
                "model": {"type": "string"}, "task": {"type": "string"}}}),
        ),
        "message_agent" => (
            "Sends a message to a peer agent (id or slug); it answers later.",
            json!({"type": "object", "required": ["agent", "message"], "properties": {
                "agent": {"type": "string"}, "message": {"type": "string"}}}),
        ),
        "set_agent_model" => (
            "Changes your model. Only on the user's explicit request.",
            json!({"type": "object", "required": ["model"], "properties": {"model": {"type": "string"}}}),
        ),
        "data_block" | "show" | "list_blocks" | "search_blocks" => crate::block_tools::spec(name)?,
        _ => return None,
    };
    Some(ToolSpec {
        name: crate::prompt::provider_tool_name(name),
        description: description.into(),
        parameters,
    })
}

/// What a tool can see of its turn.
pub struct ToolCtx {
    pub rt: Arc<Runtime>,
    pub principal: Principal,
    pub agent: Agent,
    pub session: ChatSession,
    pub hops: u32,
    /// The running turn: agent block writes record a revision under it.
    pub turn_id: Uuid,
    pub spawned: AtomicU32,
    pub messaged: AtomicU32,
}

/// Runs one call. `Err` is the `errorText` the model sees.
pub async fn call(ctx: &ToolCtx, name: &str, input: &Value) -> Result<Value, String> {
    if !SHIPPED.contains(&name) {
        return Err(format!("unknown tool: {name}"));
    }
    if !ctx.agent.allowed_tools.iter().any(|t| t == name) {
        return Err("tool not allowed".into());
    }
    let result = match name {
        "echo" => Ok(json!({"text": input.get("text").cloned().unwrap_or(json!(""))})),
        "list_agents" => list_agents(ctx).await,
        "check_messages" => check_messages(ctx).await,
        "spawn_agent" => spawn_agent(ctx, input).await,
        "message_agent" => message_agent(ctx, input).await,
        "set_agent_model" => set_agent_model(ctx, input).await,
        "data_block" | "show" | "list_blocks" | "search_blocks" => {
            crate::block_tools::call(ctx, name, input)
                .await
                .map_err(ToolError::Domain)
        }
        _ => unreachable!("checked against SHIPPED"),
    };
    result.map_err(|e| match e {
        ToolError::Refused(text) => text,
        ToolError::Domain(e) => safe_text(&e),
    })
}

enum ToolError {
    Refused(String),
    Domain(DomainError),
}

impl From<DomainError> for ToolError {
    fn from(e: DomainError) -> Self {
        ToolError::Domain(e)
    }
}

impl From<alumia_core::StoreError> for ToolError {
    fn from(e: alumia_core::StoreError) -> Self {
        ToolError::Domain(e.into())
    }
}

/// Tool errors reach the model and the client: say what, never internals.
fn safe_text(e: &DomainError) -> String {
    match e {
        DomainError::NotFound => "not found".into(),
        DomainError::Validation { fields, .. } => {
            let list: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("invalid input ({})", list.join("; "))
        }
        DomainError::Conflict { message, .. } | DomainError::BadRequest { message, .. } => {
            message.clone()
        }
        DomainError::Forbidden { message, .. } => message.clone(),
        _ => "the tool failed".into(),
    }
}

fn str_arg<'a>(input: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    input
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ToolError::Refused(format!("`{key}` is required")))
}

/// How a peer is shown (`list_agents`, `GET /agents/:id/peers`).
pub fn peer_view(a: &Agent) -> Value {
    json!({"id": a.id, "slug": a.slug, "name": a.name, "avatar": a.avatar, "isActive": a.is_active})
}

fn allows(agent: &Agent, peer: &Agent) -> bool {
    agent
        .allowed_peers
        .iter()
        .any(|p| p == "*" || *p == peer.slug || *p == peer.id.to_string())
}

/// Agents `agent` may message (`GET /agents/:id/peers`, `list_agents`).
pub async fn peers(rt: &Runtime, p: &Principal, agent: &Agent) -> Result<Vec<Agent>, DomainError> {
    let mut out = Vec::new();
    let mut page = PageRequest {
        limit: 200,
        after: None,
    };
    loop {
        let batch = rt.agents().list(p, page).await?;
        let last = batch
            .last()
            .map(|a| (alumia_core::clock::to_millis(a.updated_at), a.id));
        let full = batch.len() == page.limit as usize;
        out.extend(
            batch
                .into_iter()
                .filter(|a| a.id != agent.id && allows(agent, a)),
        );
        match last {
            Some(after) if full => page.after = Some(after),
            _ => break,
        }
    }
    Ok(out)
}

async fn list_agents(ctx: &ToolCtx) -> Result<Value, ToolError> {
    let list = peers(&ctx.rt, &ctx.principal, &ctx.agent).await?;
    Ok(json!({"agents": list.iter().map(peer_view).collect::<Vec<_>>()}))
}

async fn check_messages(ctx: &ToolCtx) -> Result<Value, ToolError> {
    let now = ctx.rt.clock.now();
    let unread = ctx
        .rt
        .store
        .take_unread_peer_messages(&ctx.principal.org, ctx.agent.id, now)
        .await?;
    Ok(json!({"messages": unread.iter().map(|m| json!({
        "id": m.id, "fromAgentId": m.from_agent_id, "text": m.text,
        "createdAt": alumia_core::clock::format_ts(m.created_at),
    })).collect::<Vec<_>>()}))
}

async fn spawn_agent(ctx: &ToolCtx, input: &Value) -> Result<Value, ToolError> {
    if ctx.spawned.fetch_add(1, Ordering::SeqCst) >= MAX_SPAWNS_PER_TURN {
        return Err(ToolError::Refused(format!(
            "at most {MAX_SPAWNS_PER_TURN} agents may be spawned per turn"
        )));
    }
    let name = str_arg(input, "name")?;
    let prompt = str_arg(input, "systemPrompt")?;
    let agent = ctx
        .rt
        .agents()
        .create(
            &ctx.principal,
            AgentInput {
                name: Some(name.to_string()),
                system_prompt: Some(prompt.to_string()),
                model: input
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                workspace_id: Some(ctx.session.workspace_id.to_string()),
                settings: Some(json!({"spawnedBy": ctx.agent.id})),
                ..AgentInput::default()
            },
        )
        .await?;
    let session = peer_session(ctx, &agent).await?;
    if let Some(task) = input
        .get("task")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    {
        deliver(ctx, &agent, task).await?;
    }
    Ok(json!({"agent": peer_view(&agent), "sessionId": session.id}))
}

async fn message_agent(ctx: &ToolCtx, input: &Value) -> Result<Value, ToolError> {
    let target = str_arg(input, "agent")?;
    let text = str_arg(input, "message")?;
    if ctx.hops >= MAX_PEER_HOPS {
        return Err(ToolError::Refused(
            "peer message limit reached for this conversation".into(),
        ));
    }
    let peer = match ctx.rt.agents().get(&ctx.principal, target).await {
        Ok(a) if a.id != ctx.agent.id => a,
        Ok(_) => return Err(ToolError::Refused("an agent cannot message itself".into())),
        Err(DomainError::NotFound) => {
            return Err(ToolError::Refused(format!("no agent `{target}`")));
        }
        Err(e) => return Err(e.into()),
    };
    if !allows(&ctx.agent, &peer) {
        return Err(ToolError::Refused(format!(
            "`{}` is not an allowed peer",
            peer.slug
        )));
    }
    if !peer.is_active {
        return Err(ToolError::Refused(format!("`{}` is inactive", peer.slug)));
    }
    let session = deliver(ctx, &peer, text).await?;
    ctx.messaged.fetch_add(1, Ordering::SeqCst);
    Ok(json!({"delivered": true, "agentId": peer.id, "sessionId": session}))
}

async fn set_agent_model(ctx: &ToolCtx, input: &Value) -> Result<Value, ToolError> {
    if ctx.agent.is_default {
        return Err(ToolError::Refused(
            "Ala's model is the org default and cannot be changed".into(),
        ));
    }
    let model = str_arg(input, "model")?;
    let agent = ctx
        .rt
        .agents()
        .update(
            &ctx.principal,
            &ctx.agent.id.to_string(),
            AgentInput {
                model: Some(model.to_string()),
                ..AgentInput::default()
            },
        )
        .await?;
    Ok(json!({"model": agent.model}))
}

/// The target's peer session (relationship `peer`, same project), created
/// on first contact.
async fn peer_session(ctx: &ToolCtx, target: &Agent) -> Result<ChatSession, ToolError> {
    let store = ctx.rt.store.as_ref();
    let filter = SessionFilter {
        agent_id: Some(target.id),
        project_id: None,
        status: None,
        include_archived: false,
    };
    let existing = store
        .list_chat_sessions(
            &ctx.principal.org,
            None,
            &filter,
            PageRequest {
                limit: 200,
                after: None,
            },
        )
        .await?
        .into_iter()
        .find(|s| s.relationship == "peer" && s.project_id == ctx.session.project_id);
    if let Some(s) = existing {
        return Ok(s);
    }
    let now = ctx.rt.clock.now();
    let session = ChatSession {
        id: new_id(),
        org_id: ctx.principal.org.org_id(),
        workspace_id: target.workspace_id.unwrap_or(ctx.session.workspace_id),
        project_id: ctx.session.project_id,
        agent_id: Some(target.id),
        user_id: ctx.principal.user_id,
        label: format!("{} ↔ {}", ctx.agent.name, target.name),
        status: "idle".into(),
        relationship: "peer".into(),
        running_turn: None,
        metadata: json!({"peerOf": ctx.agent.id}),
        message_count: 0,
        last_message_at: None,
        created_at: now,
        updated_at: now,
    };
    let participants = [
        Participant {
            kind: "agent".into(),
            id: target.id,
            joined_at: now,
        },
        Participant {
            kind: "agent".into(),
            id: ctx.agent.id,
            joined_at: now,
        },
    ];
    store
        .create_chat_session(&ctx.principal.org, &session, &participants)
        .await?;
    Ok(session)
}

/// Posts `text` from this agent to `target`: into the target's session that
/// is awaiting a peer reply if it has one, else its peer session; records
/// the peer message; and starts (or queues) a turn there. Never blocks.
async fn deliver(ctx: &ToolCtx, target: &Agent, text: &str) -> Result<Uuid, ToolError> {
    let store = ctx.rt.store.as_ref();
    let awaiting = SessionFilter {
        agent_id: Some(target.id),
        project_id: None,
        status: Some("awaiting_peer".into()),
        include_archived: false,
    };
    let session = match store
        .list_chat_sessions(
            &ctx.principal.org,
            None,
            &awaiting,
            PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await?
        .into_iter()
        .next()
    {
        Some(s) => s,
        None => peer_session(ctx, target).await?,
    };
    let now = ctx.rt.clock.now();
    let message = ChatMessage {
        id: new_id().to_string(),
        session_id: session.id,
        seq: 0,
        role: "user".into(),
        parts: json!([{"type": "text", "text": text}]),
        text: text.to_string(),
        author_kind: "agent".into(),
        author_id: Some(ctx.agent.id),
        status: "complete".into(),
        model: None,
        finish_reason: None,
        usage: None,
        metadata: json!({"relationship": "peer"}),
        created_at: now,
        updated_at: now,
    };
    store
        .append_messages(&ctx.principal.org, session.id, &[message], false)
        .await?;
    store
        .insert_peer_message(
            &ctx.principal.org,
            &PeerMessage {
                id: new_id(),
                session_id: session.id,
                from_agent_id: ctx.agent.id,
                to_agent_id: target.id,
                text: text.to_string(),
                created_at: now,
                read_at: None,
            },
        )
        .await?;
    crate::chat::queue_peer_turn(
        &ctx.rt,
        &ctx.principal,
        target.clone(),
        session.id,
        ctx.hops + 1,
    );
    Ok(session.id)
}
