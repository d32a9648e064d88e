//! The tool catalogue (spec 04 §3): each tool's name, class, schema and the
//! REST route it wraps. Names and descriptions are what MCP clients show.

use serde_json::{Value, json};

/// What a tool does, which decides its scope and its annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Reads; needs `mcp:read` (hosted).
    Read,
    /// Creates or changes; needs `mcp:write` (hosted).
    Write,
    /// Deletes or cancels; needs `mcp:write` (hosted).
    Destructive,
    /// `whoami`: no MCP scope.
    Identity,
}

/// Where a tool is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Both,
    /// `alumia mcp --stdio` only (spec 04 §4).
    StdioOnly,
}

pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub class: Class,
    /// A route scope the wrapped route needs besides the MCP scope.
    pub route_scope: Option<&'static str>,
    pub surface: Surface,
    /// `properties` of the input schema, and which are required.
    pub properties: fn() -> Value,
    pub required: &'static [&'static str],
    /// `chat_send` reaches a model: `openWorldHint`.
    pub open_world: bool,
}

impl ToolSpec {
    /// The MCP scope a hosted key needs (`None`: none).
    pub fn mcp_scope(&self) -> Option<&'static str> {
        match self.class {
            Class::Read => Some("mcp:read"),
            Class::Write | Class::Destructive => Some("mcp:write"),
            Class::Identity => None,
        }
    }

    pub fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": (self.properties)(),
            "required": self.required,
            "additionalProperties": false,
        })
    }

    /// Spec 04 §3 "Annotations".
    pub fn annotations(&self) -> Value {
        match self.class {
            Class::Read | Class::Identity => json!({"readOnlyHint": true, "openWorldHint": false}),
            Class::Write => json!({
                "readOnlyHint": false,
                "destructiveHint": false,
                "openWorldHint": self.open_world,
            }),
            Class::Destructive => json!({
                "readOnlyHint": false,
                "destructiveHint": true,
                "idempotentHint": true,
                "openWorldHint": false,
            }),
        }
    }
}

fn none() -> Value {
    json!({})
}

fn page() -> Value {
    json!({
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Items per page (default 50)"},
        "cursor": {"type": "string", "description": "nextCursor of the previous page"},
    })
}

fn with_page(mut extra: Value) -> Value {
    if let (Some(map), Value::Object(page)) = (extra.as_object_mut(), page()) {
        map.extend(page);
    }
    extra
}

fn id(what: &str) -> Value {
    json!({"id": {"type": "string", "description": format!("The {what}'s id (UUID) or slug")}})
}

fn agents_list() -> Value {
    with_page(json!({"workspaceId": {"type": "string"}}))
}

fn agent_fields() -> Value {
    json!({
        "name": {"type": "string", "description": "1–80 characters"},
        "slug": {"type": "string"},
        "description": {"type": "string"},
        "systemPrompt": {"type": "string"},
        "model": {"type": "string", "description": "A model id of models_list"},
        "workspaceId": {"type": "string"},
        "isActive": {"type": "boolean"},
        "settings": {"type": "object"},
    })
}

fn agent_update() -> Value {
    let mut fields = agent_fields();
    if let (Some(map), Value::Object(id)) = (fields.as_object_mut(), id("agent")) {
        map.extend(id);
    }
    fields
}

fn sessions_list() -> Value {
    with_page(json!({
        "agentId": {"type": "string"},
        "projectId": {"type": "string"},
        "status": {"type": "string"},
    }))
}

fn session_id() -> Value {
    json!({"id": {"type": "string", "description": "The session id"}})
}

fn session_messages() -> Value {
    with_page(json!({
        "id": {"type": "string", "description": "The session id"},
        "order": {"type": "string", "enum": ["asc", "desc"]},
    }))
}

fn sessions_create() -> Value {
    json!({
        "agentId": {"type": "string"},
        "projectId": {"type": "string"},
        "label": {"type": "string"},
    })
}

fn chat_send() -> Value {
    json!({
        "message": {"type": "string", "description": "The user message"},
        "sessionId": {"type": "string", "description": "Continue this session (else a new one)"},
        "agentId": {"type": "string", "description": "Agent id or slug (default: Ala)"},
        "model": {"type": "string"},
        "projectId": {"type": "string"},
        "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 300, "description": "Wait at most this long (default 120); the turn goes on after"},
    })
}

fn chat_stop() -> Value {
    json!({"sessionId": {"type": "string"}})
}

fn exec_args() -> Value {
    json!({"args": {
        "type": "array",
        "items": {"type": "string"},
        "description": "One alumia command and its arguments, e.g. [\"agents\", \"list\", \"--json\"] (not serve, admin, mcp or login)",
    }})
}

fn key_id() -> Value {
    json!({"id": {"type": "string", "description": "The key id"}})
}

fn projects_list() -> Value {
    with_page(json!({
        "workspaceId": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "archived"]},
        "q": {"type": "string", "description": "Words in the name or description"},
        "tag": {"type": "string"},
    }))
}

fn project_fields() -> Value {
    json!({
        "name": {"type": "string", "description": "1–255 characters; with only a description one is made from it"},
        "description": {"type": "string"},
        "prompt": {"type": "string", "description": "A system prompt for every turn in the project's sessions"},
        "emoji": {"type": "string"},
        "visibility": {"type": "string", "enum": ["team", "private"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "workspaceId": {"type": "string"},
    })
}

fn blocks_list() -> Value {
    json!({
        "projectId": {"type": "string", "description": "The project's id (UUID) or slug"},
        "type": {"type": "string", "description": "Only blocks of this type"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 500, "description": "Page size (default: every block)"},
        "cursor": {"type": "string", "description": "nextCursor of the previous page"},
    })
}

fn position() -> Value {
    json!({"type": "object", "description": "{x, y, width, height} in px on the 24 px grid"})
}

fn blocks_create() -> Value {
    json!({
        "projectId": {"type": "string", "description": "The project (else the block is the org's)"},
        "type": {"type": "string", "description": "data, mcp-app, app, or a show primitive (document, code, …)"},
        "title": {"type": "string"},
        "data": {"type": "object", "description": "For type data: a DataSpec such as {\"type\": \"markdown\", \"markdown\": \"…\"}"},
        "position": position(),
    })
}

fn blocks_update() -> Value {
    json!({
        "id": {"type": "string", "description": "The block id"},
        "title": {"type": "string"},
        "data": {"type": "object"},
        "position": position(),
        "expectedUpdatedAt": {"type": "string", "description": "The updatedAt you read; a newer block refuses the change (409 stale_revision)"},
    })
}

/// Every tool, in the order `tools/list` shows them.
pub fn tools() -> &'static [ToolSpec] {
    use Class::*;
    use Surface::*;
    const T: &[ToolSpec] = &[
        ToolSpec {
            name: "whoami",
            description: "The caller: user, org, role, and the key's scopes.",
            class: Identity,
            route_scope: None,
            surface: Both,
            properties: none,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "models_list",
            description: "Models this server can run, with pricing and the default.",
            class: Read,
            route_scope: Some("models:read"),
            surface: Both,
            properties: none,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "workspaces_list",
            description: "Workspaces of the org the caller belongs to.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: none,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "agents_list",
            description: "Agents of the org, newest first.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: agents_list,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "agents_get",
            description: "One agent by id or slug.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: || id("agent"),
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "agents_create",
            description: "Create an agent. Privileged restrictions need a browser session.",
            class: Write,
            route_scope: None,
            surface: Both,
            properties: agent_fields,
            required: &["name"],
            open_world: false,
        },
        ToolSpec {
            name: "agents_update",
            description: "Change an agent's fields.",
            class: Write,
            route_scope: None,
            surface: Both,
            properties: agent_update,
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "agents_delete",
            description: "Delete an agent (Ala cannot be deleted).",
            class: Destructive,
            route_scope: None,
            surface: Both,
            properties: || id("agent"),
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "sessions_list",
            description: "Chat sessions, newest first.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: sessions_list,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "sessions_get",
            description: "One session.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: session_id,
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "session_messages",
            description: "A session's messages, oldest first by default.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: session_messages,
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "sessions_create",
            description: "Create a session with an agent.",
            class: Write,
            route_scope: None,
            surface: Both,
            properties: sessions_create,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "chat_send",
            description: "Send a message to an agent and wait for its reply (or for timeoutSeconds; the turn continues).",
            class: Write,
            route_scope: None,
            surface: Both,
            properties: chat_send,
            required: &["message"],
            open_world: true,
        },
        ToolSpec {
            name: "chat_stop",
            description: "Stop the turn running in a session; what was produced is kept.",
            class: Destructive,
            route_scope: None,
            surface: Both,
            properties: chat_stop,
            required: &["sessionId"],
            open_world: false,
        },
        ToolSpec {
            name: "projects_list",
            description: "Projects the caller can see, most recently updated first.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: projects_list,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "project_get",
            description: "One project by id or slug, with its workspaces and spend.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: || id("project"),
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "canvas_get",
            description: "A project's canvas: blocks with positions, agent nodes and edges.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: || id("project"),
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "blocks_list",
            description: "A project's canvas blocks with their data, oldest first.",
            class: Read,
            route_scope: None,
            surface: Both,
            properties: blocks_list,
            required: &["projectId"],
            open_world: false,
        },
        ToolSpec {
            name: "projects_create",
            description: "Create a project (a name, or a description to name it from).",
            class: Write,
            route_scope: None,
            surface: Both,
            properties: project_fields,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "blocks_create",
            description: "Add a block to a project's canvas.",
            class: Write,
            route_scope: None,
            surface: Both,
            properties: blocks_create,
            required: &["type", "data"],
            open_world: false,
        },
        ToolSpec {
            name: "blocks_update",
            description: "Change a block's title, data or position; pass expectedUpdatedAt to refuse overwriting a newer edit.",
            class: Write,
            route_scope: None,
            surface: Both,
            properties: blocks_update,
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "keys_list",
            description: "The caller's API keys (never the secrets).",
            class: Read,
            route_scope: None,
            surface: StdioOnly,
            properties: none,
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "keys_revoke",
            description: "Revoke one of the caller's API keys.",
            class: Destructive,
            route_scope: None,
            surface: StdioOnly,
            properties: key_id,
            required: &["id"],
            open_world: false,
        },
        ToolSpec {
            name: "audit_events_list",
            description: "The org's audit events (owner/admin).",
            class: Read,
            route_scope: None,
            surface: StdioOnly,
            properties: || page(),
            required: &[],
            open_world: false,
        },
        ToolSpec {
            name: "alumia_exec",
            description: "Run one alumia CLI command (no shell) and return its exit code, stdout and stderr.",
            class: Write,
            route_scope: None,
            surface: StdioOnly,
            properties: exec_args,
            required: &["args"],
            open_world: false,
        },
    ];
    T
}

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    tools().iter().find(|t| t.name == name)
}
