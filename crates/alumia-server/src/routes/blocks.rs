//! Blocks and the project canvas (spec 06 §2): `/api/v1/blocks…` and the
//! block, canvas and edge routes under `/api/v1/projects/:id`.
//!
//! A project is always reached through `Projects::get`, so a foreign,
//! deleted or invisible project (and everything on it) is a 404.

use std::time::Duration;

use alumia_core::DomainError;
use alumia_core::blocks::{
    Block, BlockError, BlockPatch, Blocks, CreatedBy, Edge, MAX_UNPAGED, NewBlockInput, NodeRef,
    Position, PositionUpdate, arrange_grid, grid_position,
};
use alumia_core::clock::{format_ts, to_millis};
use alumia_core::cursor;
use alumia_core::projects::Project;
use alumia_core::store::PageRequest;
use alumia_models::{ModelEvent, ModelRequest, PromptMessage};
use alumia_types::ErrorCode;
use alumia_types::dto::*;
use axum::extract::{Path, State};
use axum::response::Response;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Auth, parse_id};
use crate::routes::finish_page;
use crate::state::AppState;
use crate::views::{self, ok};

/// The route-level errors that carry details.
impl From<BlockError> for ApiError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::Domain(d) => d.into(),
            BlockError::StaleRevision { current } => ApiError::new(
                ErrorCode::Conflict,
                "the block changed since that revision; re-read it and retry",
            )
            .reason("stale_revision")
            .details(
                json!({ "currentUpdatedAt": format_ts(alumia_core::clock::from_millis(current)) }),
            ),
            BlockError::InvalidReference { ids } => ApiError::bad_request(
                "invalid_reference",
                "some ids are not live blocks or sessions of this project; nothing changed",
            )
            .details(json!({ "ids": ids })),
            BlockError::InvalidLayout(why) => ApiError::bad_request("invalid_layout", why),
            BlockError::NoFailedRun => ApiError::new(
                ErrorCode::NotFound,
                "no turn of this project ended in error",
            )
            .reason("no_failed_run"),
        }
    }
}

pub(crate) fn service(state: &AppState) -> Blocks<'_> {
    Blocks {
        store: state.store.as_ref(),
        now: state.clock.now(),
    }
}

fn position_view(p: &Position) -> BlockPositionView {
    BlockPositionView {
        x: p.x,
        y: p.y,
        width: p.width,
        height: p.height,
    }
}

pub(crate) fn view(b: &Block) -> BlockView {
    BlockView {
        id: b.id.to_string(),
        org_id: b.org_id.to_string(),
        project_id: b.project_id.map(|p| p.to_string()),
        block_type: b.block_type.clone(),
        title: b.title.clone(),
        data: b.data.clone(),
        position: position_view(&b.position),
        created_by: BlockCreatedByView {
            kind: b.created_by.kind.clone(),
            id: b.created_by.id.to_string(),
            session_id: b.created_by.session_id.map(|s| s.to_string()),
            turn_id: b.created_by.turn_id.map(|s| s.to_string()),
        },
        created_at: format_ts(b.created_at),
        updated_at: format_ts(b.updated_at),
    }
}

fn node_view(n: &NodeRef) -> CanvasNodeRef {
    CanvasNodeRef {
        kind: n.kind.clone(),
        id: n.id.to_string(),
    }
}

fn edge_view(e: &Edge) -> EdgeView {
    EdgeView {
        id: Some(e.id.to_string()),
        from: node_view(&e.from),
        to: node_view(&e.to),
        label: e.label.clone(),
        derived: None,
        created_at: Some(format_ts(e.created_at)),
    }
}

fn user_creator(p: &alumia_core::Principal) -> CreatedBy {
    CreatedBy {
        kind: "user".into(),
        id: p.user_id,
        session_id: None,
        turn_id: None,
    }
}

fn wire_position(
    field: &str,
    p: &BlockPositionInput,
) -> Result<(i64, i64, Option<i64>, Option<i64>), DomainError> {
    grid_position(field, p.x, p.y, p.width, p.height)
}

fn new_block(req: CreateBlockRequest) -> Result<NewBlockInput, DomainError> {
    Ok(NewBlockInput {
        block_type: req.block_type,
        title: req.title,
        data: req.data,
        position: req
            .position
            .as_ref()
            .map(|p| wire_position("position", p))
            .transpose()?,
    })
}

/// A node reference of a body; a bad kind or id is a 422.
fn node_ref(field: &str, n: &CanvasNodeRef) -> Result<NodeRef, DomainError> {
    if n.kind != "block" && n.kind != "session" {
        return Err(DomainError::invalid(
            &format!("{field}.kind"),
            "must be block or session",
        ));
    }
    let id = Uuid::parse_str(&n.id)
        .map_err(|_| DomainError::invalid(&format!("{field}.id"), "must be a uuid"))?;
    Ok(NodeRef {
        kind: n.kind.clone(),
        id,
    })
}

#[derive(Debug, Deserialize, Default)]
pub struct BlockListQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    #[serde(rename = "type")]
    pub block_type: Option<String>,
}

/// `GET /api/v1/projects/:id/blocks`: `createdAt` asc. Without `limit`
/// everything (≤ 5,000, then a cursor); `limit` 1–500 pages.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<BlockListQuery>,
) -> ApiResult<Response> {
    let blocks = service(&state);
    let project = blocks.project(&p, &id).await?;
    let limit = match q.limit.as_deref() {
        None => MAX_UNPAGED,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| DomainError::invalid("limit", "must be an integer from 1 to 500"))?,
    };
    let key = format!(
        "blocks:{}:{}:{:?}",
        p.org.org_id(),
        project.id,
        q.block_type
    );
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(cursor::decode(c, &key).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "the cursor is not valid for this list")
        })?),
    };
    let rows = blocks
        .list(
            &p.org,
            &project,
            q.block_type.as_deref(),
            PageRequest {
                limit: limit + 1,
                after,
            },
        )
        .await?;
    let (rows, next) = finish_page(rows, limit, &key, |b| (to_millis(b.created_at), b.id));
    Ok(views::page(rows.iter().map(view).collect(), next))
}

/// `POST /api/v1/projects/:id/blocks` → 201.
pub async fn create_in_project(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateBlockRequest>,
) -> ApiResult<Response> {
    let blocks = service(&state);
    let project = blocks.writable_project(&p, &id).await?;
    if let Some(other) = &req.project_id
        && other != &project.id.to_string()
        && other != &project.slug
    {
        return Err(DomainError::invalid("projectId", "must match the project in the path").into());
    }
    let input = new_block(req)?;
    let block = blocks
        .create(&p, Some(&project), input, user_creator(&p), None)
        .await?;
    Ok(views::created(view(&block)))
}

/// `POST /api/v1/blocks` → 201; no `projectId`: an org-context block.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<CreateBlockRequest>,
) -> ApiResult<Response> {
    let blocks = service(&state);
    let project = match req.project_id.as_deref() {
        Some(raw) => Some(
            blocks
                .writable_project(&p, raw)
                .await
                .map_err(|e| match e {
                    DomainError::NotFound => DomainError::invalid_reference("projectId"),
                    other => other,
                })?,
        ),
        None => None,
    };
    let input = new_block(req)?;
    let block = blocks
        .create(&p, project.as_ref(), input, user_creator(&p), None)
        .await?;
    Ok(views::created(view(&block)))
}

pub async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let block = service(&state).get(&p, parse_id(&id)?).await?;
    Ok(ok(view(&block)))
}

/// `expectedUpdatedAt` as the ISO `updatedAt` or integer millis.
fn expected_millis(v: &Value) -> Result<i64, DomainError> {
    let bad = || {
        DomainError::invalid(
            "expectedUpdatedAt",
            "must be the block's updatedAt (ISO-8601) or integer milliseconds",
        )
    };
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `PATCH /api/v1/blocks/:id`: compare-and-set with `expectedUpdatedAt`,
/// last write wins without it.
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateBlockRequest>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    if req.project_id.is_some() {
        return Err(DomainError::invalid_with_reason(
            "immutable_field",
            "projectId",
            "a block cannot move to another project",
        )
        .into());
    }
    let expected = match req.expected_updated_at.as_ref().filter(|v| !v.is_null()) {
        Some(v) => Some(expected_millis(v)?),
        None => None,
    };
    let blocks = service(&state);
    let position = match &req.position {
        Some(pos) => {
            let (x, y, w, h) = wire_position("position", pos)?;
            // Sizes left out keep the block's own.
            let current = blocks.get(&p, id).await?;
            Some(Position {
                x,
                y,
                width: w.unwrap_or(current.position.width),
                height: h.unwrap_or(current.position.height),
            })
        }
        None => None,
    };
    let patch = BlockPatch {
        title: req.title,
        data: req.data,
        position,
    };
    let block = blocks.update(&p, id, patch, expected, None).await?;
    Ok(ok(view(&block)))
}

/// `DELETE /api/v1/blocks/:id`: soft.
pub async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let block = service(&state).delete(&p, parse_id(&id)?, None).await?;
    Ok(ok(
        json!({ "id": block.id.to_string(), "deletedAt": format_ts(state.clock.now()) }),
    ))
}

/// `PATCH /api/v1/projects/:id/blocks/positions`: all or nothing.
pub async fn positions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<BlockPositionsRequest>,
) -> ApiResult<Response> {
    let blocks = service(&state);
    let project = blocks.writable_project(&p, &id).await?;
    let mut items = Vec::with_capacity(req.positions.len());
    let mut unparsable = Vec::new();
    for (i, item) in req.positions.iter().enumerate() {
        let field = format!("positions[{i}]");
        let kind = item.kind.clone().unwrap_or_else(|| "block".into());
        if kind != "block" && kind != "session" {
            return Err(
                DomainError::invalid(&format!("{field}.kind"), "must be block or session").into(),
            );
        }
        let (x, y, width, height) = grid_position(&field, item.x, item.y, item.width, item.height)?;
        match Uuid::parse_str(&item.id) {
            Ok(id) => items.push(PositionUpdate {
                kind,
                id,
                x,
                y,
                width,
                height,
            }),
            Err(_) => unparsable.push(item.id.clone()),
        }
    }
    if !unparsable.is_empty() {
        // Not a uuid cannot name anything here: the same refusal, nothing changed.
        return Err(ApiError::bad_request(
            "invalid_reference",
            "some ids are not live blocks or sessions of this project; nothing changed",
        )
        .details(json!({ "ids": unparsable })));
    }
    blocks.set_positions(&p, &project, &items).await?;
    Ok(ok(json!({ "updated": items.len() })))
}

fn canvas_project(project: &Project) -> ProjectView {
    crate::routes::projects::view(project)
}

/// What a canvas shows: live blocks, session nodes (with a position, a
/// default one when never placed) and stored plus derived edges. Read with
/// `org`: the caller's scope, or the one a share token opened.
pub(crate) struct CanvasParts {
    pub blocks: Vec<Block>,
    pub agent_nodes: Vec<CanvasAgentNodeView>,
    pub edges: Vec<EdgeView>,
}

pub(crate) async fn canvas_parts(
    state: &AppState,
    org: &alumia_core::OrgScope,
    project: &Project,
) -> ApiResult<CanvasParts> {
    let blocks = service(state);
    let all = blocks
        .list(
            org,
            project,
            None,
            PageRequest {
                limit: MAX_UNPAGED,
                after: None,
            },
        )
        .await?;
    let sessions = blocks.session_nodes(org, project).await?;
    let (stored, derived) = blocks.canvas_edges(org, project, &all, &sessions).await?;
    let mut edges: Vec<EdgeView> = stored.iter().map(edge_view).collect();
    edges.extend(derived.iter().map(|(from, to, why)| EdgeView {
        id: None,
        from: node_view(from),
        to: node_view(to),
        label: String::new(),
        derived: Some((*why).to_string()),
        created_at: None,
    }));
    let agent_nodes = sessions
        .iter()
        .map(|s| CanvasAgentNodeView {
            session_id: s.session_id.to_string(),
            agent_id: s.agent_id.map(|a| a.to_string()),
            agent_name: s.agent_name.clone(),
            status: s.status.clone(),
            position: position_view(&s.position.unwrap_or(Position {
                x: 0,
                y: 0,
                width: 0,
                height: 0,
            })),
        })
        .collect();
    Ok(CanvasParts {
        blocks: all,
        agent_nodes,
        edges,
    })
}

/// `GET /api/v1/projects/:id/canvas`.
pub async fn canvas(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let project = service(&state).project(&p, &id).await?;
    let parts = canvas_parts(&state, &p.org, &project).await?;
    Ok(ok(CanvasView {
        project: canvas_project(&project),
        blocks: parts
            .blocks
            .iter()
            .map(|b| CanvasBlockView {
                id: b.id.to_string(),
                block_type: b.block_type.clone(),
                title: b.title.clone(),
                position: position_view(&b.position),
                updated_at: format_ts(b.updated_at),
            })
            .collect(),
        agent_nodes: parts.agent_nodes,
        edges: parts.edges,
    }))
}

/// `POST /api/v1/projects/:id/edges` → 201. Both ends must be live nodes
/// of the project (`400 invalid_reference`).
pub async fn create_edge(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EdgeRequest>,
) -> ApiResult<Response> {
    let blocks = service(&state);
    let project = blocks.writable_project(&p, &id).await?;
    let from = node_ref("from", &req.from)?;
    let to = node_ref("to", &req.to)?;
    let edge = blocks
        .create_edge(
            &p,
            &project,
            from,
            to,
            req.label.unwrap_or_default(),
            user_creator(&p),
        )
        .await?;
    Ok(views::created(edge_view(&edge)))
}

/// `DELETE /api/v1/projects/:id/edges/:edgeId`: hard. Derived edges have no
/// id, so they cannot be named here.
pub async fn delete_edge(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, edge)): Path<(String, String)>,
) -> ApiResult<Response> {
    let blocks = service(&state);
    let project = blocks.writable_project(&p, &id).await?;
    let edge = parse_id(&edge)?;
    blocks.delete_edge(&p, &project, edge).await?;
    Ok(ok(json!({ "id": edge.to_string(), "deleted": true })))
}

/// `POST /api/v1/blocks/arrange`.
pub async fn arrange(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<ArrangeBlocksRequest>,
) -> ApiResult<Response> {
    let strategy = req.strategy.clone().unwrap_or_else(|| "grid".into());
    if strategy != "grid" && strategy != "ai" {
        return Err(DomainError::invalid("strategy", "must be grid or ai").into());
    }
    let blocks = service(&state);
    let project = blocks
        .writable_project(&p, &req.project_id)
        .await
        .map_err(|e| match e {
            DomainError::NotFound => DomainError::invalid_reference("projectId"),
            other => other,
        })?;
    let ids = match &req.block_ids {
        Some(raw) => {
            let mut ids = Vec::with_capacity(raw.len());
            let mut bad = Vec::new();
            for r in raw {
                match Uuid::parse_str(r) {
                    Ok(id) if !ids.contains(&id) => ids.push(id),
                    Ok(_) => {}
                    Err(_) => bad.push(r.clone()),
                }
            }
            if !bad.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_reference",
                    "some ids are not live blocks of this project",
                )
                .details(json!({ "ids": bad })));
            }
            Some(ids)
        }
        None => None,
    };
    let targets = blocks.arrange_targets(&p, &project, ids.as_deref()).await?;
    let layout = if strategy == "grid" {
        arrange_grid(&targets)
    } else {
        ai_layout(&state, &p, &targets).await?
    };
    let dry_run = req.dry_run.unwrap_or(false);
    if !dry_run {
        blocks.apply_arrangement(&p, &project, &layout).await?;
    }
    Ok(ok(ArrangeBlocksView {
        positions: layout
            .iter()
            .map(|(id, pos)| ArrangedPositionView {
                id: id.to_string(),
                x: pos.x,
                y: pos.y,
                width: pos.width,
                height: pos.height,
            })
            .collect(),
        strategy,
        dry_run,
    }))
}

/// Asks the org's default model for a layout and keeps it only when it
/// places every target exactly once on the grid, inside the canvas. Nothing
/// is written before that check, and the call is not billed (only turns
/// are, so far): an unusable answer is `400 invalid_layout` (the dev/echo
/// model never answers with a layout).
async fn ai_layout(
    state: &AppState,
    p: &alumia_core::Principal,
    targets: &[Block],
) -> Result<Vec<(Uuid, Position)>, ApiError> {
    let invalid = |why: &str| ApiError::from(BlockError::InvalidLayout(why.to_string()));
    let catalog = &state.runtime.catalog;
    let model = state.runtime.org_default_model(p).await?;
    let entry = catalog
        .resolve(&model)
        .ok_or_else(|| invalid("no default model is available for an AI layout"))?;
    let client = catalog
        .client(&entry, None)
        .ok_or_else(|| invalid("no default model is available for an AI layout"))?;
    let listing: Vec<Value> = targets
        .iter()
        .map(|b| {
            json!({"id": b.id, "type": b.block_type, "title": b.title,
                        "width": b.position.width, "height": b.position.height})
        })
        .collect();
    let request = ModelRequest {
        model: entry.model.clone(),
        system: Some(
            "You lay out blocks on a canvas with a 24 px grid. Answer with JSON only: \
             {\"positions\": [{\"id\", \"x\", \"y\", \"width\", \"height\"}]}, every block exactly \
             once, all values multiples of 24, blocks not overlapping."
                .into(),
        ),
        messages: vec![PromptMessage::User {
            text: Value::Array(listing).to_string(),
        }],
        tools: Vec::new(),
        max_output_tokens: Some(4096),
        temperature: Some(0.0),
        reasoning_effort: None,
    };
    let collect = async {
        let mut stream = client.stream(request).await.ok()?;
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            match event.ok()? {
                ModelEvent::TextDelta(t) => text.push_str(&t),
                ModelEvent::Finish { .. } => break,
                _ => {}
            }
        }
        Some(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| invalid("the model did not answer"))?;
    parse_layout(&text, targets).map_err(|why| invalid(&why))
}

/// The model's JSON, checked: every target once, on the grid, in range.
fn parse_layout(text: &str, targets: &[Block]) -> Result<Vec<(Uuid, Position)>, String> {
    let start = text.find('{').ok_or("the answer holds no JSON object")?;
    let end = text.rfind('}').ok_or("the answer holds no JSON object")?;
    let v: Value = serde_json::from_str(text.get(start..=end).unwrap_or_default())
        .map_err(|_| "the answer is not valid JSON".to_string())?;
    let items = v["positions"]
        .as_array()
        .ok_or("the answer has no positions array")?;
    let mut out: Vec<(Uuid, Position)> = Vec::new();
    for item in items {
        let id = item["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .filter(|id| targets.iter().any(|b| b.id == *id))
            .ok_or("a position names an unknown block")?;
        if out.iter().any(|(o, _)| *o == id) {
            return Err("a block is placed twice".into());
        }
        let num = |k: &str| item[k].as_i64().ok_or(format!("{k} must be an integer"));
        let (x, y, w, h) = (num("x")?, num("y")?, num("width")?, num("height")?);
        let on_grid = [x, y, w, h]
            .iter()
            .all(|v| v % alumia_core::blocks::GRID == 0);
        let in_range = x.abs() <= alumia_core::blocks::MAX_COORD
            && y.abs() <= alumia_core::blocks::MAX_COORD
            && (1..=alumia_core::blocks::MAX_SIZE).contains(&w)
            && (1..=alumia_core::blocks::MAX_SIZE).contains(&h);
        if !on_grid || !in_range {
            return Err("a position is off the grid or out of range".into());
        }
        out.push((
            id,
            Position {
                x,
                y,
                width: w,
                height: h,
            },
        ));
    }
    if out.len() != targets.len() {
        return Err("the layout leaves blocks out".into());
    }
    Ok(out)
}

/// `POST /api/v1/projects/:id/restore-last-run`.
pub async fn restore_last_run(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let blocks = service(&state);
    let project = blocks.writable_project(&p, &id).await?;
    let report = blocks.restore_last_run(&p, &project).await?;
    Ok(ok(RestoreLastRunView {
        turn_id: report.turn_id.to_string(),
        restored: report.restored.iter().map(|i| i.to_string()).collect(),
        deleted: report.deleted.iter().map(|i| i.to_string()).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use alumia_core::blocks::CreatedBy;
    use alumia_core::clock::from_millis;

    use super::*;

    fn block(n: u128) -> Block {
        Block {
            id: Uuid::from_u128(n),
            org_id: Uuid::nil(),
            project_id: None,
            block_type: "document".into(),
            title: String::new(),
            data: json!({}),
            position: Position {
                x: 0,
                y: 0,
                width: 48,
                height: 48,
            },
            created_by: CreatedBy {
                kind: "user".into(),
                id: Uuid::nil(),
                session_id: None,
                turn_id: None,
            },
            created_at: from_millis(0),
            updated_at: from_millis(0),
        }
    }

    #[test]
    fn model_layouts_must_place_every_block_once_on_the_grid() {
        let (a, b) = (block(1), block(2));
        let targets = [a.clone(), b.clone()];
        let good = format!(
            "Here you go: {{\"positions\": [{{\"id\": \"{}\", \"x\": 0, \"y\": 0, \"width\": 48, \"height\": 48}}, \
             {{\"id\": \"{}\", \"x\": 72, \"y\": 0, \"width\": 48, \"height\": 48}}]}}",
            a.id, b.id
        );
        let layout = parse_layout(&good, &targets).expect("a valid layout");
        assert_eq!(layout[1].1.x, 72);
        let one = format!(
            "{{\"positions\": [{{\"id\": \"{}\", \"x\": 0, \"y\": 0, \"width\": 48, \"height\": 48}}]}}",
            a.id
        );
        assert!(parse_layout(&one, &targets).is_err(), "a block left out");
        let twice = good.replace(&b.id.to_string(), &a.id.to_string());
        assert!(
            parse_layout(&twice, &targets).is_err(),
            "a block placed twice"
        );
        let off = good.replace("\"x\": 72", "\"x\": 70");
        assert!(parse_layout(&off, &targets).is_err(), "off the grid");
        assert!(parse_layout("echo: [{\"id\": 1}]", &targets).is_err());
        assert!(parse_layout("no json", &targets).is_err());
    }
}
