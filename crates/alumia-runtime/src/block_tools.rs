//! Canvas tools (spec 06 §2): `data_block`, `show`, `list_blocks` and
//! `search_blocks`. Blocks go to the session's project (the org context
//! when the session has none), created by `{kind: agent, id, sessionId,
//! turnId}`; every write records a revision for restore-last-run.

use alumia_core::DomainError;
use alumia_core::blocks::{
    Block, BlockPatch, Blocks, CreatedBy, MAX_UNPAGED, NewBlockInput, RunRef, SHOW_PRIMITIVES,
};
use alumia_core::clock::format_ts;
use alumia_core::projects::Project;
use alumia_core::store::PageRequest;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::tools::ToolCtx;

/// Matches `search_blocks` returns at most.
const MAX_MATCHES: usize = 50;

pub(crate) fn spec(name: &str) -> Option<(&'static str, Value)> {
    Some(match name {
        "data_block" => (
            "Creates a data block on the project canvas, or updates it when given blockId. \
             spec is a DataSpec: {type: markdown|callout|metric|kpi-grid|card|table|list|form|chart|\
             timeline|kanban|dashboard, …}.",
            json!({"type": "object", "required": ["title", "spec"], "properties": {
                "title": {"type": "string"}, "spec": {"type": "object"},
                "blockId": {"type": "string"}}}),
        ),
        "show" => (
            "Shows content on the project canvas as a primitive block.",
            json!({"type": "object", "required": ["primitive", "data"], "properties": {
                "primitive": {"type": "string", "enum": SHOW_PRIMITIVES},
                "title": {"type": "string"}, "data": {"type": "object"}}}),
        ),
        "list_blocks" => (
            "Lists the blocks on the project canvas.",
            json!({"type": "object", "properties": {}}),
        ),
        "search_blocks" => (
            "Finds blocks on the project canvas whose title or content contains the query.",
            json!({"type": "object", "required": ["query"], "properties": {"query": {"type": "string"}}}),
        ),
        _ => return None,
    })
}

fn service(ctx: &ToolCtx) -> Blocks<'_> {
    Blocks {
        store: ctx.rt.store.as_ref(),
        now: ctx.rt.clock.now(),
    }
}

fn refused(field: &str, msg: &str) -> DomainError {
    DomainError::invalid(field, msg)
}

fn summary(b: &Block) -> Value {
    json!({"id": b.id, "type": b.block_type, "title": b.title, "updatedAt": format_ts(b.updated_at)})
}

async fn project(ctx: &ToolCtx) -> Result<Option<Project>, DomainError> {
    match ctx.session.project_id {
        Some(id) => Ok(Some(
            service(ctx)
                .project(&ctx.principal, &id.to_string())
                .await?,
        )),
        None => Ok(None),
    }
}

fn run(ctx: &ToolCtx) -> RunRef {
    RunRef {
        turn_id: ctx.turn_id,
        session_id: ctx.session.id,
    }
}

fn creator(ctx: &ToolCtx) -> CreatedBy {
    CreatedBy {
        kind: "agent".into(),
        id: ctx.agent.id,
        session_id: Some(ctx.session.id),
        turn_id: Some(ctx.turn_id),
    }
}

async fn create(
    ctx: &ToolCtx,
    block_type: &str,
    title: String,
    data: Value,
) -> Result<Value, DomainError> {
    let project = project(ctx).await?;
    let block = service(ctx)
        .create(
            &ctx.principal,
            project.as_ref(),
            NewBlockInput {
                block_type: block_type.into(),
                title: Some(title),
                data,
                position: None,
            },
            creator(ctx),
            Some(run(ctx)),
        )
        .await?;
    Ok(json!({"block": summary(&block), "created": true}))
}

pub(crate) async fn call(ctx: &ToolCtx, name: &str, input: &Value) -> Result<Value, DomainError> {
    let title = input
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match name {
        "data_block" => {
            let spec = input
                .get("spec")
                .cloned()
                .ok_or_else(|| refused("spec", "is required"))?;
            match input.get("blockId").and_then(Value::as_str) {
                None => create(ctx, "data", title, spec).await,
                Some(raw) => {
                    let id = Uuid::parse_str(raw).map_err(|_| DomainError::NotFound)?;
                    let blocks = service(ctx);
                    // Only a block of this session's canvas may be rewritten.
                    let current = blocks.get(&ctx.principal, id).await?;
                    if current.project_id != ctx.session.project_id || current.block_type != "data"
                    {
                        return Err(DomainError::NotFound);
                    }
                    let patch = BlockPatch {
                        title: Some(title),
                        data: Some(spec),
                        position: None,
                    };
                    let block = blocks
                        .update(&ctx.principal, id, patch, None, Some(run(ctx)))
                        .await
                        .map_err(DomainError::from)?;
                    Ok(json!({"block": summary(&block), "created": false}))
                }
            }
        }
        "show" => {
            let primitive = input
                .get("primitive")
                .and_then(Value::as_str)
                .filter(|p| SHOW_PRIMITIVES.contains(p))
                .ok_or_else(|| refused("primitive", "must be one of the show primitives"))?;
            let data = input.get("data").cloned().unwrap_or_else(|| json!({}));
            create(ctx, primitive, title, data).await
        }
        "list_blocks" | "search_blocks" => {
            let project = project(ctx).await?;
            let all = ctx
                .rt
                .store
                .list_blocks(
                    &ctx.principal.org,
                    project.as_ref().map(|p| p.id),
                    None,
                    PageRequest {
                        limit: MAX_UNPAGED,
                        after: None,
                    },
                )
                .await?;
            if name == "list_blocks" {
                return Ok(json!({"blocks": all.iter().map(summary).collect::<Vec<_>>()}));
            }
            let query = input
                .get("query")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
                .filter(|q| !q.trim().is_empty())
                .ok_or_else(|| refused("query", "is required"))?;
            let hits: Vec<Value> = all
                .iter()
                .filter(|b| {
                    b.title.to_lowercase().contains(&query)
                        || b.data.to_string().to_lowercase().contains(&query)
                })
                .take(MAX_MATCHES)
                .map(summary)
                .collect();
            Ok(json!({"blocks": hits}))
        }
        _ => Err(refused("tool", "unknown block tool")),
    }
}
