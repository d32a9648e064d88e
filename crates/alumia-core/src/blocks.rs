//! Blocks and the project canvas (spec 06 §2): block types and their data
//! checks, positions on the 24 px grid, stored edges, session nodes, and the
//! per-turn revisions behind restore-last-run.
//!
//! Decisions (also in openapi.json):
//! - Positions **snap** to the 24 px grid (x, y rounded to the nearest
//!   multiple; width and height too, at least one cell). Coordinates beyond
//!   ±1,000,000 and sizes above 4,800 are a `422`.
//! - A block without a position takes the first free slot of a 4-column
//!   lattice (cells of the default size plus one grid gap), row by row: the
//!   same blocks always give the same slot. Two creates racing may pick the
//!   same slot (no lock is taken for placement); `arrange` tidies that up.
//! - `updatedAt` is the revision; the store makes it strictly increase (a
//!   write in the same millisecond as the last one moves it one past).

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::clock::{from_millis, to_millis};
use crate::error::{DomainError, DomainResult, StoreError};
use crate::principal::Principal;
use crate::projects::{Project, Projects};
use crate::scope::OrgScope;
use crate::store::{PageRequest, Store, StoreResult};
use crate::{new_id, validate};

pub const GRID: i64 = 24;
pub const DEFAULT_WIDTH: i64 = 12 * GRID;
pub const DEFAULT_HEIGHT: i64 = 8 * GRID;
pub const MAX_COORD: i64 = 1_000_000;
pub const MAX_SIZE: i64 = 200 * GRID;
pub const MAX_TITLE: usize = 255;
pub const MAX_DATA_BYTES: usize = 100 * 1024;
/// Lattice columns for free slots and `arrange`.
pub const LATTICE_COLUMNS: i64 = 4;
/// A project list without `limit` returns at most this many blocks.
pub const MAX_UNPAGED: u32 = 5000;
/// Items of one `PATCH …/blocks/positions`.
pub const MAX_POSITION_ITEMS: usize = 500;

pub const SHOW_PRIMITIVES: [&str; 13] = [
    "document",
    "code",
    "spreadsheet",
    "browser",
    "terminal",
    "timer",
    "drawing",
    "chat-transcript",
    "image",
    "video",
    "audio",
    "gallery",
    "map",
];

pub const DATASPEC_TYPES: [&str; 12] = [
    "markdown",
    "callout",
    "metric",
    "kpi-grid",
    "card",
    "table",
    "list",
    "form",
    "chart",
    "timeline",
    "kanban",
    "dashboard",
];

pub const CHART_KINDS: [&str; 5] = ["line", "bar", "area", "pie", "scatter"];

pub fn is_block_type(t: &str) -> bool {
    matches!(t, "data" | "mcp-app" | "app") || SHOW_PRIMITIVES.contains(&t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
}

impl Position {
    fn overlaps(&self, o: &Position) -> bool {
        self.x < o.x + o.width
            && o.x < self.x + self.width
            && self.y < o.y + o.height
            && o.y < self.y + self.height
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreatedBy {
    /// `user` or `agent`.
    pub kind: String,
    pub id: Uuid,
    pub session_id: Option<Uuid>,
    pub turn_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub id: Uuid,
    pub org_id: Uuid,
    /// `None`: an org-context block.
    pub project_id: Option<Uuid>,
    pub block_type: String,
    pub title: String,
    pub data: Value,
    pub position: Position,
    pub created_by: CreatedBy,
    pub created_at: DateTime<Utc>,
    /// The revision.
    pub updated_at: DateTime<Utc>,
}

impl Block {
    /// The JSON a revision keeps of the block as it was.
    pub fn snapshot(&self) -> Value {
        json!({
            "id": self.id, "orgId": self.org_id, "projectId": self.project_id,
            "type": self.block_type, "title": self.title, "data": self.data,
            "position": {"x": self.position.x, "y": self.position.y,
                         "width": self.position.width, "height": self.position.height},
            "createdBy": {"kind": self.created_by.kind, "id": self.created_by.id,
                          "sessionId": self.created_by.session_id, "turnId": self.created_by.turn_id},
            "createdAt": to_millis(self.created_at), "updatedAt": to_millis(self.updated_at),
        })
    }

    pub fn from_snapshot(v: &Value) -> Option<Block> {
        let uuid = |v: &Value| v.as_str().and_then(|s| Uuid::parse_str(s).ok());
        let p = &v["position"];
        let c = &v["createdBy"];
        Some(Block {
            id: uuid(&v["id"])?,
            org_id: uuid(&v["orgId"])?,
            project_id: uuid(&v["projectId"]),
            block_type: v["type"].as_str()?.to_string(),
            title: v["title"].as_str()?.to_string(),
            data: v["data"].clone(),
            position: Position {
                x: p["x"].as_i64()?,
                y: p["y"].as_i64()?,
                width: p["width"].as_i64()?,
                height: p["height"].as_i64()?,
            },
            created_by: CreatedBy {
                kind: c["kind"].as_str()?.to_string(),
                id: uuid(&c["id"])?,
                session_id: uuid(&c["sessionId"]),
                turn_id: uuid(&c["turnId"]),
            },
            created_at: from_millis(v["createdAt"].as_i64()?),
            updated_at: from_millis(v["updatedAt"].as_i64()?),
        })
    }
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockPatch {
    pub title: Option<String>,
    pub data: Option<Value>,
    pub position: Option<Position>,
}

/// The agent turn behind a write: the store records a revision with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRef {
    pub turn_id: Uuid,
    pub session_id: Uuid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlockRevision {
    pub block_id: Uuid,
    pub turn_id: Uuid,
    /// `None`: the turn created the block.
    pub before: Option<Block>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    Updated(Box<Block>),
    /// `expected_updated_at` did not match: nothing changed; the current revision.
    Stale(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// `block` or `session`.
    pub kind: String,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub id: Uuid,
    pub org_id: Uuid,
    pub project_id: Uuid,
    pub from: NodeRef,
    pub to: NodeRef,
    pub label: String,
    pub created_by: CreatedBy,
    pub created_at: DateTime<Utc>,
}

/// A live session of a project, as a canvas node.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionNode {
    pub session_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub agent_name: Option<String>,
    pub status: String,
    pub position: Option<Position>,
    pub created_at: DateTime<Utc>,
}

/// One item of `PATCH …/blocks/positions`, already on the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionUpdate {
    /// `block` or `session`.
    pub kind: String,
    pub id: Uuid,
    pub x: i64,
    pub y: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

/// Block rows; every method is scoped by the org.
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// Inserts the block; with `run`, also a revision with no `before`.
    async fn create_block(
        &self,
        org: &OrgScope,
        block: &Block,
        run: Option<RunRef>,
    ) -> StoreResult<()>;
    /// A live block.
    async fn get_block(&self, org: &OrgScope, id: Uuid) -> StoreResult<Option<Block>>;
    /// Live blocks of a project (`None`: org-context blocks), `created_at`
    /// asc, then id; `page.after` is the last row of the previous page.
    async fn list_blocks(
        &self,
        org: &OrgScope,
        project: Option<Uuid>,
        block_type: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Vec<Block>>;
    /// Compare-and-set in one statement: with `expected` (millis) the row
    /// changes only when its `updated_at` still equals it. The new
    /// `updated_at` is `max(at, old + 1)`. `NotFound` for no live block.
    async fn update_block(
        &self,
        org: &OrgScope,
        id: Uuid,
        patch: &BlockPatch,
        expected: Option<i64>,
        at: DateTime<Utc>,
        run: Option<RunRef>,
    ) -> StoreResult<UpdateOutcome>;
    /// Soft delete. `NotFound` when already gone.
    async fn delete_block(
        &self,
        org: &OrgScope,
        id: Uuid,
        at: DateTime<Utc>,
        run: Option<RunRef>,
    ) -> StoreResult<()>;
    /// All or nothing: the ids that are not live blocks or sessions of the
    /// project (nothing changed when not empty).
    async fn set_positions(
        &self,
        org: &OrgScope,
        project: Uuid,
        items: &[PositionUpdate],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;
    /// Live sessions of the project with their agent and canvas position.
    async fn list_session_nodes(
        &self,
        org: &OrgScope,
        project: Uuid,
    ) -> StoreResult<Vec<SessionNode>>;
    /// `(from, to)` session pairs of the project linked by peer messages:
    /// from every live session of the sending agent in the project to the
    /// recipient's session.
    async fn list_peer_links(
        &self,
        org: &OrgScope,
        project: Uuid,
    ) -> StoreResult<Vec<(Uuid, Uuid)>>;
    async fn create_edge(&self, org: &OrgScope, edge: &Edge) -> StoreResult<()>;
    async fn list_edges(&self, org: &OrgScope, project: Uuid) -> StoreResult<Vec<Edge>>;
    /// Hard delete. `NotFound` for no such edge of the project.
    async fn delete_edge(&self, org: &OrgScope, project: Uuid, id: Uuid) -> StoreResult<()>;
    /// The latest turn of the project's sessions that ended in error.
    async fn latest_failed_turn(&self, org: &OrgScope, project: Uuid) -> StoreResult<Option<Uuid>>;
    /// Revisions of a turn, oldest first.
    async fn list_turn_revisions(
        &self,
        org: &OrgScope,
        turn: Uuid,
    ) -> StoreResult<Vec<BlockRevision>>;
    /// In one transaction: writes each block back as given (undeleting it),
    /// soft-deletes `delete`, and drops the turn's revisions so the same
    /// restore never runs twice over later edits. Returns how many rows
    /// each changed.
    async fn restore_blocks(
        &self,
        org: &OrgScope,
        turn: Uuid,
        restore: &[Block],
        delete: &[Uuid],
        at: DateTime<Utc>,
    ) -> StoreResult<(u64, u64)>;
}

// --- validation --------------------------------------------------------

fn bad(field: &str, msg: &str) -> DomainError {
    DomainError::invalid_with_reason("invalid_block_data", field, msg)
}

fn need_str(data: &Value, key: &str, prefix: &str) -> DomainResult<()> {
    match data.get(key) {
        Some(Value::String(_)) => Ok(()),
        _ => Err(bad(&format!("{prefix}.{key}"), "must be a string")),
    }
}

fn need_array<'a>(data: &'a Value, key: &str, prefix: &str) -> DomainResult<&'a Vec<Value>> {
    data.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| bad(&format!("{prefix}.{key}"), "must be an array"))
}

fn scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_))
}

/// The DataSpec of a `data` block (shapes of spec 06 §2).
pub fn check_dataspec(spec: &Value) -> DomainResult<()> {
    if !spec.is_object() {
        return Err(bad("data", "must be a DataSpec object"));
    }
    let Some(t) = spec.get("type").and_then(Value::as_str) else {
        return Err(DomainError::invalid_with_reason(
            "unknown_dataspec_type",
            "data.type",
            "must be one of the DataSpec types",
        ));
    };
    if !DATASPEC_TYPES.contains(&t) {
        return Err(DomainError::invalid_with_reason(
            "unknown_dataspec_type",
            "data.type",
            format!(
                "unknown DataSpec type; one of {}",
                DATASPEC_TYPES.join(", ")
            ),
        ));
    }
    let p = "data";
    match t {
        "markdown" => need_str(spec, "markdown", p),
        "metric" => {
            need_str(spec, "label", p)?;
            if !spec.get("value").is_some_and(scalar) {
                return Err(bad("data.value", "must be a string or a number"));
            }
            if spec
                .get("delta")
                .is_some_and(|d| !d.is_null() && !scalar(d))
            {
                return Err(bad("data.delta", "must be a string or a number"));
            }
            if spec
                .get("unit")
                .is_some_and(|u| !u.is_null() && !u.is_string())
            {
                return Err(bad("data.unit", "must be a string"));
            }
            Ok(())
        }
        "table" => {
            let columns = need_array(spec, "columns", p)?;
            for (i, c) in columns.iter().enumerate() {
                let ok = c.get("key").is_some_and(Value::is_string)
                    && c.get("label").is_some_and(Value::is_string)
                    && c.get("type").is_none_or(|t| t.is_null() || t.is_string());
                if !ok {
                    return Err(bad(
                        &format!("data.columns[{i}]"),
                        "must be {key: string, label: string, type?: string}",
                    ));
                }
            }
            need_array(spec, "rows", p).map(|_| ())
        }
        "chart" => {
            if !spec
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| CHART_KINDS.contains(&k))
            {
                return Err(bad("data.kind", "must be line, bar, area, pie or scatter"));
            }
            let series = need_array(spec, "series", p)?;
            for (i, s) in series.iter().enumerate() {
                let field = format!("data.series[{i}]");
                if !s.get("name").is_some_and(Value::is_string) {
                    return Err(bad(&format!("{field}.name"), "must be a string"));
                }
                let points = s
                    .get("points")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad(&format!("{field}.points"), "must be an array"))?;
                if points.iter().any(|pt| {
                    !pt.get("x").is_some_and(scalar) || !pt.get("y").is_some_and(Value::is_number)
                }) {
                    return Err(bad(
                        &format!("{field}.points"),
                        "each point must be {x: string|number, y: number}",
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Data of a block of `block_type` (checked to be a known type). Show
/// primitives need one field each (our decision): the smallest thing the
/// canvas needs to render them.
pub fn check_data(block_type: &str, data: &Value) -> DomainResult<()> {
    if data.to_string().len() > MAX_DATA_BYTES {
        return Err(DomainError::invalid_with_reason(
            "block_data_too_large",
            "data",
            "must be at most 100 KB of JSON",
        ));
    }
    if block_type == "data" {
        return check_dataspec(data);
    }
    if !data.is_object() {
        return Err(bad("data", "must be an object"));
    }
    let p = "data";
    match block_type {
        "mcp-app" => {
            need_str(data, "connectorSlug", p)?;
            need_str(data, "app", p)?;
            if data
                .get("props")
                .is_some_and(|v| !v.is_object() && !v.is_null())
            {
                return Err(bad("data.props", "must be an object"));
            }
            Ok(())
        }
        "app" => {
            let files = data
                .get("files")
                .and_then(Value::as_object)
                .filter(|f| !f.is_empty())
                .ok_or_else(|| bad("data.files", "must be a non-empty {path: content} object"))?;
            if files.values().any(|v| !v.is_string()) {
                return Err(bad("data.files", "every file content must be a string"));
            }
            need_str(data, "entry", p)?;
            let entry = data["entry"].as_str().unwrap_or_default();
            if !files.contains_key(entry) {
                return Err(bad("data.entry", "must name one of the files"));
            }
            Ok(())
        }
        "document" => need_str(data, "content", p),
        "code" => need_str(data, "code", p),
        "spreadsheet" => need_array(data, "rows", p).map(|_| ()),
        "browser" | "image" | "video" | "audio" => need_str(data, "url", p),
        "terminal" => need_str(data, "output", p),
        "timer" => match data.get("durationSeconds").and_then(Value::as_f64) {
            Some(s) if s >= 0.0 => Ok(()),
            _ => Err(bad("data.durationSeconds", "must be a number ≥ 0")),
        },
        "drawing" => need_array(data, "shapes", p).map(|_| ()),
        "chat-transcript" => need_array(data, "messages", p).map(|_| ()),
        "gallery" => need_array(data, "items", p).map(|_| ()),
        "map" => {
            let c = data.get("center");
            let ok = c.is_some_and(|c| {
                c.get("lat")
                    .and_then(Value::as_f64)
                    .is_some_and(|v| (-90.0..=90.0).contains(&v))
                    && c.get("lng")
                        .and_then(Value::as_f64)
                        .is_some_and(|v| (-180.0..=180.0).contains(&v))
            });
            if ok {
                Ok(())
            } else {
                Err(bad("data.center", "must be {lat: -90..90, lng: -180..180}"))
            }
        }
        _ => Ok(()),
    }
}

pub fn check_title(title: &str) -> DomainResult<()> {
    if validate::char_len(title) > MAX_TITLE {
        return Err(DomainError::invalid(
            "title",
            "must be at most 255 characters",
        ));
    }
    Ok(())
}

pub fn check_type(t: &str) -> DomainResult<()> {
    if is_block_type(t) {
        Ok(())
    } else {
        Err(DomainError::invalid_with_reason(
            "unknown_block_type",
            "type",
            "must be data, mcp-app, app or a show primitive",
        ))
    }
}

/// Rounds to the nearest grid line.
pub fn snap(v: f64) -> i64 {
    ((v / GRID as f64).round() as i64) * GRID
}

/// A position from the wire (numbers, sizes optional), snapped to the grid.
pub fn grid_position(
    field: &str,
    x: f64,
    y: f64,
    width: Option<f64>,
    height: Option<f64>,
) -> DomainResult<(i64, i64, Option<i64>, Option<i64>)> {
    let coord = |v: f64| v.is_finite() && v.abs() <= MAX_COORD as f64;
    if !coord(x) || !coord(y) {
        return Err(DomainError::invalid(
            field,
            "x and y must be numbers within ±1000000",
        ));
    }
    let size = |v: Option<f64>| -> DomainResult<Option<i64>> {
        match v {
            None => Ok(None),
            Some(v) if v.is_finite() && v > 0.0 && v <= MAX_SIZE as f64 => {
                Ok(Some(snap(v).max(GRID)))
            }
            Some(_) => Err(DomainError::invalid(
                field,
                "width and height must be numbers in (0, 4800]",
            )),
        }
    };
    Ok((snap(x), snap(y), size(width)?, size(height)?))
}

/// The first free lattice slot for a `width`×`height` block among `taken`.
pub fn next_free_slot(taken: &[Position], width: i64, height: i64) -> Position {
    let step_x = DEFAULT_WIDTH + GRID;
    let step_y = DEFAULT_HEIGHT + GRID;
    // Enough rows that one is free: every block blocks at most a few slots.
    let max_rows = (taken.len() as i64 + 1) * (1 + MAX_SIZE / step_y) + 1;
    for row in 0..max_rows {
        for col in 0..LATTICE_COLUMNS {
            let candidate = Position {
                x: col * step_x,
                y: row * step_y,
                width,
                height,
            };
            // Keep a one-cell gap to neighbours.
            let padded = Position {
                width: width + GRID,
                height: height + GRID,
                ..candidate
            };
            if !taken.iter().any(|t| padded.overlaps(t)) {
                return candidate;
            }
        }
    }
    let bottom = taken.iter().map(|t| t.y + t.height).max().unwrap_or(0);
    Position {
        x: 0,
        y: bottom + GRID,
        width,
        height,
    }
}

/// The `grid` arrangement: blocks in the given order, `LATTICE_COLUMNS`
/// per row; columns as wide as the widest block, rows as tall as their
/// tallest, one grid gap between. Sizes are kept.
pub fn arrange_grid(blocks: &[Block]) -> Vec<(Uuid, Position)> {
    let col_w = blocks.iter().map(|b| b.position.width).max().unwrap_or(0) + GRID;
    let mut out = Vec::with_capacity(blocks.len());
    let mut y = 0;
    for row in blocks.chunks(LATTICE_COLUMNS as usize) {
        let row_h = row.iter().map(|b| b.position.height).max().unwrap_or(0) + GRID;
        for (col, b) in row.iter().enumerate() {
            out.push((
                b.id,
                Position {
                    x: col as i64 * col_w,
                    y,
                    width: b.position.width,
                    height: b.position.height,
                },
            ));
        }
        y += row_h;
    }
    out
}

/// Default position of the `index`th session node without a stored one:
/// a column left of the blocks.
pub fn default_session_position(index: usize) -> Position {
    Position {
        x: -(DEFAULT_WIDTH + 2 * GRID),
        y: index as i64 * (DEFAULT_HEIGHT / 2 + GRID),
        width: DEFAULT_WIDTH,
        height: DEFAULT_HEIGHT / 2,
    }
}

/// Errors of the block routes that carry details beyond the domain's.
#[derive(Debug)]
pub enum BlockError {
    Domain(DomainError),
    /// `409 stale_revision`, `details.currentUpdatedAt` (millis).
    StaleRevision {
        current: i64,
    },
    /// `400 invalid_reference`, `details.ids`.
    InvalidReference {
        ids: Vec<Uuid>,
    },
    /// `400 invalid_layout`: the model's arrangement was unusable.
    InvalidLayout(String),
    /// `404 no_failed_run`.
    NoFailedRun,
}

impl From<DomainError> for BlockError {
    fn from(e: DomainError) -> Self {
        BlockError::Domain(e)
    }
}

impl From<StoreError> for BlockError {
    fn from(e: StoreError) -> Self {
        BlockError::Domain(e.into())
    }
}

impl From<BlockError> for DomainError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::Domain(d) => d,
            BlockError::StaleRevision { .. } => {
                DomainError::conflict("stale_revision", "the block changed since that revision")
            }
            BlockError::InvalidReference { .. } => DomainError::invalid_reference("ids"),
            BlockError::InvalidLayout(why) => DomainError::BadRequest {
                reason: "invalid_layout",
                message: why,
                fields: BTreeMap::new(),
            },
            BlockError::NoFailedRun => DomainError::NotFound,
        }
    }
}

pub type BlockResult<T> = Result<T, BlockError>;

/// What a create carries, before checks.
#[derive(Debug, Clone, Default)]
pub struct NewBlockInput {
    pub block_type: String,
    pub title: Option<String>,
    pub data: Value,
    /// Already snapped; sizes default per block.
    pub position: Option<(i64, i64, Option<i64>, Option<i64>)>,
}

/// Where a restore-last-run left things.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    pub turn_id: Uuid,
    pub restored: Vec<Uuid>,
    pub deleted: Vec<Uuid>,
}

pub struct Blocks<'a> {
    pub store: &'a dyn Store,
    pub now: DateTime<Utc>,
}

impl Blocks<'_> {
    fn projects(&self) -> Projects<'_> {
        Projects {
            store: self.store,
            now: self.now,
        }
    }

    /// The project, when the principal sees it (else 404).
    pub async fn project(&self, p: &Principal, raw: &str) -> DomainResult<Project> {
        self.projects().get(p, raw).await
    }

    /// The project, when the principal may change it: visible, and not
    /// only through a viewer invite (`403 project_read_only`).
    pub async fn writable_project(&self, p: &Principal, raw: &str) -> DomainResult<Project> {
        self.projects().get_writable(p, raw).await
    }

    /// A live block the principal may reach: org-context blocks belong to
    /// the org; project blocks need their project to be visible.
    pub async fn get(&self, p: &Principal, id: Uuid) -> DomainResult<Block> {
        self.reach(p, id, false).await
    }

    /// As `get`, for a change: a viewer member of its project reads only.
    async fn get_writable(&self, p: &Principal, id: Uuid) -> DomainResult<Block> {
        self.reach(p, id, true).await
    }

    async fn reach(&self, p: &Principal, id: Uuid, write: bool) -> DomainResult<Block> {
        let block = self
            .store
            .get_block(&p.org, id)
            .await?
            .ok_or(DomainError::NotFound)?;
        if let Some(project) = block.project_id {
            let raw = project.to_string();
            if write {
                self.projects().get_writable(p, &raw).await?;
            } else {
                self.projects().get(p, &raw).await?;
            }
        }
        Ok(block)
    }

    /// A project's live blocks. `org` is the caller's scope (or, for a
    /// share link, the scope its token opened).
    pub async fn list(
        &self,
        org: &OrgScope,
        project: &Project,
        block_type: Option<&str>,
        page: PageRequest,
    ) -> DomainResult<Vec<Block>> {
        Ok(self
            .store
            .list_blocks(org, Some(project.id), block_type, page)
            .await?)
    }

    /// Every live block of a project or of the org context (≤ 5,000).
    async fn all(&self, org: &OrgScope, project: Option<Uuid>) -> DomainResult<Vec<Block>> {
        Ok(self
            .store
            .list_blocks(
                org,
                project,
                None,
                PageRequest {
                    limit: MAX_UNPAGED,
                    after: None,
                },
            )
            .await?)
    }

    /// Creates a block in `project` (or the org context) as `created_by`.
    pub async fn create(
        &self,
        p: &Principal,
        project: Option<&Project>,
        input: NewBlockInput,
        created_by: CreatedBy,
        run: Option<RunRef>,
    ) -> DomainResult<Block> {
        check_type(&input.block_type)?;
        let title = input.title.unwrap_or_default();
        validate::all([check_title(&title)])?;
        check_data(&input.block_type, &input.data)?;
        let project_id = project.map(|pr| pr.id);
        let position = match input.position {
            Some((x, y, w, h)) => Position {
                x,
                y,
                width: w.unwrap_or(DEFAULT_WIDTH),
                height: h.unwrap_or(DEFAULT_HEIGHT),
            },
            None => {
                let taken: Vec<Position> = self
                    .all(&p.org, project_id)
                    .await?
                    .iter()
                    .map(|b| b.position)
                    .collect();
                next_free_slot(&taken, DEFAULT_WIDTH, DEFAULT_HEIGHT)
            }
        };
        let block = Block {
            id: new_id(),
            org_id: p.org.org_id(),
            project_id,
            block_type: input.block_type,
            title,
            data: input.data,
            position,
            created_by,
            created_at: self.now,
            updated_at: self.now,
        };
        self.store.create_block(&p.org, &block, run).await?;
        Ok(block)
    }

    /// `expected`: the client's `expectedUpdatedAt` in millis.
    pub async fn update(
        &self,
        p: &Principal,
        id: Uuid,
        patch: BlockPatch,
        expected: Option<i64>,
        run: Option<RunRef>,
    ) -> BlockResult<Block> {
        let current = self.get_writable(p, id).await?;
        if let Some(t) = &patch.title {
            check_title(t)?;
        }
        if let Some(d) = &patch.data {
            check_data(&current.block_type, d)?;
        }
        match self
            .store
            .update_block(&p.org, id, &patch, expected, self.now, run)
            .await?
        {
            UpdateOutcome::Updated(b) => Ok(*b),
            UpdateOutcome::Stale(current) => Err(BlockError::StaleRevision { current }),
        }
    }

    pub async fn delete(
        &self,
        p: &Principal,
        id: Uuid,
        run: Option<RunRef>,
    ) -> DomainResult<Block> {
        let block = self.get_writable(p, id).await?;
        self.store.delete_block(&p.org, id, self.now, run).await?;
        Ok(block)
    }

    /// Atomic: one unknown id and nothing moves.
    pub async fn set_positions(
        &self,
        p: &Principal,
        project: &Project,
        items: &[PositionUpdate],
    ) -> BlockResult<()> {
        if items.is_empty() || items.len() > MAX_POSITION_ITEMS {
            return Err(DomainError::invalid("positions", "must hold 1-500 items").into());
        }
        let invalid = self
            .store
            .set_positions(&p.org, project.id, items, self.now)
            .await?;
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(BlockError::InvalidReference { ids: invalid })
        }
    }

    /// Session nodes with a position each (stored or the default column).
    pub async fn session_nodes(
        &self,
        org: &OrgScope,
        project: &Project,
    ) -> DomainResult<Vec<SessionNode>> {
        let mut nodes = self.store.list_session_nodes(org, project.id).await?;
        for (i, n) in nodes.iter_mut().enumerate() {
            if n.position.is_none() {
                n.position = Some(default_session_position(i));
            }
        }
        Ok(nodes)
    }

    /// Stored and derived edges. Derived ones have no id.
    pub async fn canvas_edges(
        &self,
        org: &OrgScope,
        project: &Project,
        blocks: &[Block],
        sessions: &[SessionNode],
    ) -> DomainResult<(Vec<Edge>, Vec<(NodeRef, NodeRef, &'static str)>)> {
        let stored = self.store.list_edges(org, project.id).await?;
        let live: HashSet<Uuid> = sessions.iter().map(|s| s.session_id).collect();
        let mut derived = Vec::new();
        for b in blocks {
            if let Some(s) = b.created_by.session_id.filter(|s| live.contains(s)) {
                derived.push((
                    NodeRef {
                        kind: "block".into(),
                        id: b.id,
                    },
                    NodeRef {
                        kind: "session".into(),
                        id: s,
                    },
                    "created_by",
                ));
            }
        }
        for (from, to) in self.store.list_peer_links(org, project.id).await? {
            derived.push((
                NodeRef {
                    kind: "session".into(),
                    id: from,
                },
                NodeRef {
                    kind: "session".into(),
                    id: to,
                },
                "peer_message",
            ));
        }
        Ok((stored, derived))
    }

    /// A user or agent edge between two live nodes of the project.
    pub async fn create_edge(
        &self,
        p: &Principal,
        project: &Project,
        from: NodeRef,
        to: NodeRef,
        label: String,
        created_by: CreatedBy,
    ) -> BlockResult<Edge> {
        if validate::char_len(&label) > MAX_TITLE {
            return Err(DomainError::invalid("label", "must be at most 255 characters").into());
        }
        let mut missing = Vec::new();
        let sessions: HashSet<Uuid> = self
            .store
            .list_session_nodes(&p.org, project.id)
            .await?
            .iter()
            .map(|s| s.session_id)
            .collect();
        for node in [&from, &to] {
            let found = match node.kind.as_str() {
                "block" => self
                    .store
                    .get_block(&p.org, node.id)
                    .await?
                    .is_some_and(|b| b.project_id == Some(project.id)),
                _ => sessions.contains(&node.id),
            };
            if !found && !missing.contains(&node.id) {
                missing.push(node.id);
            }
        }
        if !missing.is_empty() {
            return Err(BlockError::InvalidReference { ids: missing });
        }
        let edge = Edge {
            id: new_id(),
            org_id: p.org.org_id(),
            project_id: project.id,
            from,
            to,
            label,
            created_by,
            created_at: self.now,
        };
        self.store.create_edge(&p.org, &edge).await?;
        Ok(edge)
    }

    pub async fn delete_edge(
        &self,
        p: &Principal,
        project: &Project,
        id: Uuid,
    ) -> DomainResult<()> {
        Ok(self.store.delete_edge(&p.org, project.id, id).await?)
    }

    /// The blocks `arrange` moves: `ids` (each a live block of the project,
    /// else `400 invalid_reference`) or all, by `createdAt`.
    pub async fn arrange_targets(
        &self,
        p: &Principal,
        project: &Project,
        ids: Option<&[Uuid]>,
    ) -> BlockResult<Vec<Block>> {
        let all = self.all(&p.org, Some(project.id)).await?;
        let Some(ids) = ids else {
            return Ok(all);
        };
        let missing: Vec<Uuid> = ids
            .iter()
            .filter(|id| !all.iter().any(|b| b.id == **id))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(BlockError::InvalidReference { ids: missing });
        }
        Ok(all.into_iter().filter(|b| ids.contains(&b.id)).collect())
    }

    /// Writes an arrangement through the atomic positions path.
    pub async fn apply_arrangement(
        &self,
        p: &Principal,
        project: &Project,
        layout: &[(Uuid, Position)],
    ) -> BlockResult<()> {
        if layout.is_empty() {
            return Ok(());
        }
        let items: Vec<PositionUpdate> = layout
            .iter()
            .map(|(id, pos)| PositionUpdate {
                kind: "block".into(),
                id: *id,
                x: pos.x,
                y: pos.y,
                width: Some(pos.width),
                height: Some(pos.height),
            })
            .collect();
        for chunk in items.chunks(MAX_POSITION_ITEMS) {
            let invalid = self
                .store
                .set_positions(&p.org, project.id, chunk, self.now)
                .await?;
            if !invalid.is_empty() {
                return Err(BlockError::InvalidReference { ids: invalid });
            }
        }
        Ok(())
    }

    /// Restores what the latest failed turn of the project touched.
    pub async fn restore_last_run(
        &self,
        p: &Principal,
        project: &Project,
    ) -> BlockResult<RestoreReport> {
        let turn = self
            .store
            .latest_failed_turn(&p.org, project.id)
            .await?
            .ok_or(BlockError::NoFailedRun)?;
        let revisions = self.store.list_turn_revisions(&p.org, turn).await?;
        // The first revision of each block holds its state before the turn.
        let mut seen = HashSet::new();
        let (mut restore, mut delete) = (Vec::new(), Vec::new());
        for r in revisions {
            if !seen.insert(r.block_id) {
                continue;
            }
            match r.before {
                Some(b) => restore.push(b),
                None => delete.push(r.block_id),
            }
        }
        self.store
            .restore_blocks(&p.org, turn, &restore, &delete, self.now)
            .await?;
        Ok(RestoreReport {
            turn_id: turn,
            restored: restore.iter().map(|b| b.id).collect(),
            deleted: delete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_snap_to_the_grid_and_refuse_out_of_range_values() {
        assert_eq!(
            grid_position("p", 13.0, 35.0, Some(100.0), None).unwrap(),
            (24, 24, Some(96), None)
        );
        assert_eq!(
            grid_position("p", -11.0, 0.0, Some(1.0), None).unwrap().0,
            0
        );
        assert_eq!(
            grid_position("p", 0.0, 0.0, Some(1.0), None).unwrap().2,
            Some(24)
        );
        assert!(grid_position("p", 2e6, 0.0, None, None).is_err());
        assert!(grid_position("p", 0.0, 0.0, Some(0.0), None).is_err());
        assert!(grid_position("p", 0.0, 0.0, None, Some(5000.0)).is_err());
    }

    #[test]
    fn free_slots_fill_rows_left_to_right_and_skip_taken_cells() {
        let w = DEFAULT_WIDTH;
        let h = DEFAULT_HEIGHT;
        let first = next_free_slot(&[], w, h);
        assert_eq!((first.x, first.y), (0, 0));
        let second = next_free_slot(&[first], w, h);
        assert_eq!((second.x, second.y), (w + GRID, 0));
        let row: Vec<Position> = (0..4)
            .map(|c| Position {
                x: c * (w + GRID),
                y: 0,
                width: w,
                height: h,
            })
            .collect();
        let next = next_free_slot(&row, w, h);
        assert_eq!((next.x, next.y), (0, h + GRID), "a full row wraps");
        // A hand-placed block in the second slot is skipped.
        let odd = Position {
            x: w + GRID + 24,
            y: 24,
            width: 48,
            height: 48,
        };
        let after = next_free_slot(&[first, odd], w, h);
        assert_eq!((after.x, after.y), (2 * (w + GRID), 0));
    }

    #[test]
    fn dataspecs_check_their_type_and_the_four_shapes() {
        let reason = |v: Value| match check_data("data", &v) {
            Err(DomainError::Validation { reason, .. }) => reason,
            other => panic!("expected a 422 for {v}: {other:?}"),
        };
        assert_eq!(
            reason(json!({"type": "pie-chart"})),
            Some("unknown_dataspec_type")
        );
        assert_eq!(
            reason(json!({"markdown": "x"})),
            Some("unknown_dataspec_type")
        );
        assert_eq!(
            reason(json!({"type": "markdown"})),
            Some("invalid_block_data")
        );
        assert_eq!(
            reason(json!({"type": "metric", "label": "x"})),
            Some("invalid_block_data")
        );
        assert_eq!(
            reason(json!({"type": "table", "columns": [{"key": "a"}], "rows": []})),
            Some("invalid_block_data")
        );
        assert_eq!(
            reason(json!({"type": "chart", "kind": "donut", "series": []})),
            Some("invalid_block_data")
        );
        assert_eq!(
            reason(
                json!({"type": "chart", "kind": "bar", "series": [{"name": "s", "points": [{"x": 1, "y": "a"}]}]})
            ),
            Some("invalid_block_data")
        );
        for ok in [
            json!({"type": "markdown", "markdown": "# hi"}),
            json!({"type": "metric", "label": "MRR", "value": 10, "delta": "+2%", "unit": "€"}),
            json!({"type": "table", "columns": [{"key": "a", "label": "A", "type": "number"}], "rows": [{"a": 1}]}),
            json!({"type": "chart", "kind": "line", "series": [{"name": "s", "points": [{"x": "jan", "y": 1.5}]}]}),
            json!({"type": "kanban", "anything": true}),
        ] {
            check_data("data", &ok).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        }
        let big = "x".repeat(MAX_DATA_BYTES);
        assert_eq!(
            reason(json!({"type": "markdown", "markdown": big})),
            Some("block_data_too_large")
        );
    }

    #[test]
    fn show_primitives_and_apps_need_their_one_field() {
        assert!(check_data("document", &json!({"content": "x"})).is_ok());
        assert!(check_data("document", &json!({})).is_err());
        assert!(check_data("map", &json!({"center": {"lat": 1, "lng": 2}})).is_ok());
        assert!(check_data("map", &json!({"center": {"lat": 100, "lng": 2}})).is_err());
        assert!(
            check_data(
                "app",
                &json!({"files": {"index.html": "<p>"}, "entry": "index.html"})
            )
            .is_ok()
        );
        assert!(
            check_data(
                "app",
                &json!({"files": {"index.html": "<p>"}, "entry": "main.js"})
            )
            .is_err()
        );
        assert!(
            check_data(
                "mcp-app",
                &json!({"connectorSlug": "gh", "app": "issues", "props": {}})
            )
            .is_ok()
        );
        assert!(check_data("mcp-app", &json!({"app": "issues"})).is_err());
        for t in SHOW_PRIMITIVES {
            assert!(is_block_type(t));
        }
        assert!(!is_block_type("widget"));
    }

    #[test]
    fn grid_arrangement_is_deterministic_and_keeps_sizes() {
        let b = |i: u128, w: i64, h: i64| Block {
            id: Uuid::from_u128(i),
            org_id: Uuid::nil(),
            project_id: None,
            block_type: "document".into(),
            title: String::new(),
            data: json!({}),
            position: Position {
                x: 999,
                y: 999,
                width: w,
                height: h,
            },
            created_by: CreatedBy {
                kind: "user".into(),
                id: Uuid::nil(),
                session_id: None,
                turn_id: None,
            },
            created_at: from_millis(0),
            updated_at: from_millis(0),
        };
        let blocks = [
            b(1, 48, 48),
            b(2, 96, 24),
            b(3, 24, 96),
            b(4, 24, 24),
            b(5, 24, 24),
        ];
        let out = arrange_grid(&blocks);
        assert_eq!(out, arrange_grid(&blocks));
        let pos: Vec<(i64, i64)> = out.iter().map(|(_, p)| (p.x, p.y)).collect();
        assert_eq!(pos, [(0, 0), (120, 0), (240, 0), (360, 0), (0, 120)]);
        assert_eq!(out[1].1.width, 96);
    }

    #[test]
    fn snapshots_round_trip() {
        let block = Block {
            id: new_id(),
            org_id: new_id(),
            project_id: Some(new_id()),
            block_type: "data".into(),
            title: "t".into(),
            data: json!({"type": "markdown", "markdown": "m"}),
            position: Position {
                x: 24,
                y: 48,
                width: 72,
                height: 96,
            },
            created_by: CreatedBy {
                kind: "agent".into(),
                id: new_id(),
                session_id: Some(new_id()),
                turn_id: None,
            },
            created_at: from_millis(1_000),
            updated_at: from_millis(2_000),
        };
        assert_eq!(Block::from_snapshot(&block.snapshot()), Some(block));
    }
}
