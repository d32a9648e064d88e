//! `BlockStore` in portable SQL, expanded for each engine like `sql_project`.
//! Every write runs in one `begin_write` transaction; the block's revision
//! (`updated_at`) only moves forward: `max(now, old + 1)`.

use alumia_core::blocks::{Block, CreatedBy, Edge, NodeRef, Position, SessionNode};
use alumia_core::clock::from_millis;

use crate::rows::uuid;

#[derive(sqlx::FromRow)]
pub(crate) struct BlockRow {
    pub id: String,
    pub org_id: String,
    pub project_id: Option<String>,
    #[sqlx(rename = "type")]
    pub block_type: String,
    pub title: String,
    pub data: String,
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub created_by_kind: String,
    pub created_by_id: String,
    pub created_by_session_id: Option<String>,
    pub created_by_turn_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<BlockRow> for Block {
    fn from(r: BlockRow) -> Block {
        Block {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            project_id: r.project_id.as_deref().map(uuid),
            block_type: r.block_type,
            title: r.title,
            data: serde_json::from_str(&r.data).unwrap_or_default(),
            position: Position {
                x: r.x,
                y: r.y,
                width: r.width,
                height: r.height,
            },
            created_by: CreatedBy {
                kind: r.created_by_kind,
                id: uuid(&r.created_by_id),
                session_id: r.created_by_session_id.as_deref().map(uuid),
                turn_id: r.created_by_turn_id.as_deref().map(uuid),
            },
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

pub(crate) const BLOCK_COLUMNS: &str = "id, org_id, project_id, type, title, data, x, y, width, \
     height, created_by_kind, created_by_id, created_by_session_id, created_by_turn_id, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct EdgeRow {
    pub id: String,
    pub org_id: String,
    pub project_id: String,
    pub from_kind: String,
    pub from_id: String,
    pub to_kind: String,
    pub to_id: String,
    pub label: String,
    pub created_by_kind: String,
    pub created_by_id: String,
    pub created_at: i64,
}

impl From<EdgeRow> for Edge {
    fn from(r: EdgeRow) -> Edge {
        Edge {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            project_id: uuid(&r.project_id),
            from: NodeRef {
                kind: r.from_kind,
                id: uuid(&r.from_id),
            },
            to: NodeRef {
                kind: r.to_kind,
                id: uuid(&r.to_id),
            },
            label: r.label,
            created_by: CreatedBy {
                kind: r.created_by_kind,
                id: uuid(&r.created_by_id),
                session_id: None,
                turn_id: None,
            },
            created_at: from_millis(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionNodeRow {
    pub id: String,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub status: String,
    pub x: Option<i64>,
    pub y: Option<i64>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub created_at: i64,
}

impl From<SessionNodeRow> for SessionNode {
    fn from(r: SessionNodeRow) -> SessionNode {
        let position = match (r.x, r.y, r.width, r.height) {
            (Some(x), Some(y), Some(width), Some(height)) => Some(Position {
                x,
                y,
                width,
                height,
            }),
            _ => None,
        };
        SessionNode {
            session_id: uuid(&r.id),
            agent_id: r.agent_id.as_deref().map(uuid),
            agent_name: r.agent_name,
            status: r.status,
            position,
            created_at: from_millis(r.created_at),
        }
    }
}

/// The next revision after `old` written at `now`.
pub(crate) const NEXT_REVISION: &str =
    "CASE WHEN $NOW > updated_at THEN $NOW ELSE updated_at + 1 END";

/// Statements shared by the block stores (canvas, duplicate, restore):
/// expanded inside an impl macro's `const _` block for one engine.
macro_rules! block_sql_helpers {
    ($store:ty) => {
        async fn insert_block_in<'c, E>(
            ex: E,
            org_id: &str,
            b: &alumia_core::blocks::Block,
        ) -> alumia_core::store::StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::sql_store::EngineDb>::Db>,
        {
            use alumia_core::clock::to_millis;
            use $crate::errors::err;
            sqlx::query(
                "INSERT INTO blocks (id, org_id, project_id, type, title, data, x, y, width, height, \
                 created_by_kind, created_by_id, created_by_session_id, created_by_turn_id, \
                 created_at, updated_at, deleted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL)",
            )
            .bind(b.id.to_string())
            .bind(org_id)
            .bind(b.project_id.map(|u| u.to_string()))
            .bind(&b.block_type)
            .bind(&b.title)
            .bind(b.data.to_string())
            .bind(b.position.x)
            .bind(b.position.y)
            .bind(b.position.width)
            .bind(b.position.height)
            .bind(&b.created_by.kind)
            .bind(b.created_by.id.to_string())
            .bind(b.created_by.session_id.map(|u| u.to_string()))
            .bind(b.created_by.turn_id.map(|u| u.to_string()))
            .bind(to_millis(b.created_at))
            .bind(to_millis(b.updated_at))
            .execute(ex)
            .await
            .map_err(err)?;
            Ok(())
        }

        async fn insert_edge_in<'c, E>(
            ex: E,
            org_id: &str,
            e: &alumia_core::blocks::Edge,
        ) -> alumia_core::store::StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::sql_store::EngineDb>::Db>,
        {
            use alumia_core::clock::to_millis;
            use $crate::errors::err;
            sqlx::query(
                "INSERT INTO project_edges (id, org_id, project_id, from_kind, from_id, to_kind, to_id, \
                 label, created_by_kind, created_by_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(e.id.to_string())
            .bind(org_id)
            .bind(e.project_id.to_string())
            .bind(&e.from.kind)
            .bind(e.from.id.to_string())
            .bind(&e.to.kind)
            .bind(e.to.id.to_string())
            .bind(&e.label)
            .bind(&e.created_by.kind)
            .bind(e.created_by.id.to_string())
            .bind(to_millis(e.created_at))
            .execute(ex)
            .await
            .map_err(err)?;
            Ok(())
        }
    };
}

pub(crate) use block_sql_helpers;

macro_rules! impl_block_store {
    ($store:ty) => {
        const _: () = {
            use alumia_core::blocks::*;
            use alumia_core::clock::to_millis;
            use alumia_core::store::{PageRequest, StoreResult};
            use alumia_core::{OrgScope, StoreError, new_id};
            use chrono::{DateTime, Utc};
            use uuid::Uuid;

            use $crate::errors::err;
            use $crate::sql_block::{BLOCK_COLUMNS, BlockRow, EdgeRow, NEXT_REVISION, SessionNodeRow};
            use $crate::sql_project::params;

            $crate::sql_block::block_sql_helpers!($store);

            /// Reads a live block inside `tx`.
            async fn block_in<'c, E>(ex: E, org: &str, id: &str) -> StoreResult<Option<Block>>
            where
                E: sqlx::Executor<'c, Database = <$store as $crate::sql_store::EngineDb>::Db>,
            {
                let sql = format!(
                    "SELECT {BLOCK_COLUMNS} FROM blocks WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
                );
                let row: Option<BlockRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(org)
                    .bind(id)
                    .fetch_optional(ex)
                    .await
                    .map_err(err)?;
                Ok(row.map(Block::from))
            }

            async fn revision_in<'c, E>(
                ex: E,
                org: &str,
                block: Uuid,
                run: RunRef,
                before: Option<&Block>,
                at: i64,
            ) -> StoreResult<()>
            where
                E: sqlx::Executor<'c, Database = <$store as $crate::sql_store::EngineDb>::Db>,
            {
                sqlx::query(
                    "INSERT INTO block_revisions (id, org_id, block_id, turn_id, session_id, before_json, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(new_id().to_string())
                .bind(org)
                .bind(block.to_string())
                .bind(run.turn_id.to_string())
                .bind(run.session_id.to_string())
                .bind(before.map(|b| b.snapshot().to_string()))
                .bind(at)
                .execute(ex)
                .await
                .map_err(err)?;
                Ok(())
            }

            #[async_trait::async_trait]
            impl BlockStore for $store {
                async fn create_block(&self, org: &OrgScope, b: &Block, run: Option<RunRef>) -> StoreResult<()> {
                    let org_id = org.org_id().to_string();
                    let mut tx = self.begin_write().await?;
                    insert_block_in(&mut *tx, &org_id, b).await?;
                    if let Some(run) = run {
                        revision_in(&mut *tx, &org_id, b.id, run, None, to_millis(b.created_at)).await?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn get_block(&self, org: &OrgScope, id: Uuid) -> StoreResult<Option<Block>> {
                    block_in(&self.pool, &org.org_id().to_string(), &id.to_string()).await
                }

                async fn list_blocks(
                    &self,
                    org: &OrgScope,
                    project: Option<Uuid>,
                    block_type: Option<&str>,
                    page: PageRequest,
                ) -> StoreResult<Vec<Block>> {
                    let project_clause = if project.is_some() {
                        "project_id = $2"
                    } else {
                        "project_id IS NULL AND $2 IS NULL"
                    };
                    let sql = format!(
                        "SELECT {BLOCK_COLUMNS} FROM blocks WHERE org_id = $1 AND {project_clause} \
                           AND deleted_at IS NULL AND ($3 IS NULL OR type = $3) \
                           AND ($4 IS NULL OR created_at > $4 OR (created_at = $4 AND id > $5)) \
                         ORDER BY created_at, id LIMIT $6"
                    );
                    let rows: Vec<BlockRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(project.map(|u| u.to_string()))
                        .bind(block_type)
                        .bind(page.after.map(|a| a.0))
                        .bind(page.after.map(|a| a.1.to_string()))
                        .bind(i64::from(page.limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(rows.into_iter().map(Block::from).collect())
                }

                async fn update_block(
                    &self,
                    org: &OrgScope,
                    id: Uuid,
                    patch: &BlockPatch,
                    expected: Option<i64>,
                    at: DateTime<Utc>,
                    run: Option<RunRef>,
                ) -> StoreResult<UpdateOutcome> {
                    let (org_id, id_s, now) = (org.org_id().to_string(), id.to_string(), to_millis(at));
                    let mut tx = self.begin_write().await?;
                    let before = match run {
                        Some(_) => block_in(&mut *tx, &org_id, &id_s).await?,
                        None => None,
                    };
                    // The compare-and-set is this one statement: of two writers
                    // holding the same `expected`, the second sees the new
                    // `updated_at` and changes nothing.
                    let sql = format!(
                        "UPDATE blocks SET title = COALESCE($4, title), data = COALESCE($5, data), \
                         x = COALESCE($6, x), y = COALESCE($7, y), width = COALESCE($8, width), \
                         height = COALESCE($9, height), updated_at = {} \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL \
                           AND ($3 IS NULL OR updated_at = $3) \
                         RETURNING {BLOCK_COLUMNS}",
                        NEXT_REVISION.replace("$NOW", "$10")
                    );
                    let pos = patch.position;
                    let row: Option<BlockRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(&org_id)
                        .bind(&id_s)
                        .bind(expected)
                        .bind(patch.title.clone())
                        .bind(patch.data.as_ref().map(|d| d.to_string()))
                        .bind(pos.map(|p| p.x))
                        .bind(pos.map(|p| p.y))
                        .bind(pos.map(|p| p.width))
                        .bind(pos.map(|p| p.height))
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
                    let Some(row) = row else {
                        let current = block_in(&mut *tx, &org_id, &id_s).await?;
                        drop(tx);
                        return match current {
                            Some(b) => Ok(UpdateOutcome::Stale(to_millis(b.updated_at))),
                            None => Err(StoreError::NotFound),
                        };
                    };
                    if let Some(run) = run {
                        revision_in(&mut *tx, &org_id, id, run, before.as_ref(), now).await?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(UpdateOutcome::Updated(Box::new(Block::from(row))))
                }

                async fn delete_block(
                    &self,
                    org: &OrgScope,
                    id: Uuid,
                    at: DateTime<Utc>,
                    run: Option<RunRef>,
                ) -> StoreResult<()> {
                    let (org_id, id_s, now) = (org.org_id().to_string(), id.to_string(), to_millis(at));
                    let mut tx = self.begin_write().await?;
                    let before = block_in(&mut *tx, &org_id, &id_s).await?.ok_or(StoreError::NotFound)?;
                    let sql = format!(
                        "UPDATE blocks SET deleted_at = $3, updated_at = {} \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                        NEXT_REVISION.replace("$NOW", "$3")
                    );
                    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&org_id)
                        .bind(&id_s)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    if let Some(run) = run {
                        revision_in(&mut *tx, &org_id, id, run, Some(&before), now).await?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn set_positions(
                    &self,
                    org: &OrgScope,
                    project: Uuid,
                    items: &[PositionUpdate],
                    at: DateTime<Utc>,
                ) -> StoreResult<Vec<Uuid>> {
                    let (org_id, project_s, now) = (org.org_id().to_string(), project.to_string(), to_millis(at));
                    let mut tx = self.begin_write().await?;
                    // Check every id first, inside the write transaction, so a
                    // concurrent move to another project or delete cannot slip in.
                    let mut known = std::collections::HashSet::new();
                    for (kind, table) in [("block", "blocks"), ("session", "chat_sessions")] {
                        let ids: Vec<String> = items
                            .iter()
                            .filter(|i| i.kind == kind)
                            .map(|i| i.id.to_string())
                            .collect();
                        if ids.is_empty() {
                            continue;
                        }
                        let sql = format!(
                            "SELECT id FROM {table} WHERE org_id = $1 AND project_id = $2 \
                             AND deleted_at IS NULL AND id IN ({})",
                            params(3, ids.len())
                        );
                        let mut q = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql))
                            .bind(&org_id)
                            .bind(&project_s);
                        for id in &ids {
                            q = q.bind(id);
                        }
                        for (id,) in q.fetch_all(&mut *tx).await.map_err(err)? {
                            known.insert((kind, $crate::rows::uuid(&id)));
                        }
                    }
                    let mut invalid: Vec<Uuid> = Vec::new();
                    for i in items {
                        if !known.contains(&(i.kind.as_str(), i.id)) && !invalid.contains(&i.id) {
                            invalid.push(i.id);
                        }
                    }
                    if !invalid.is_empty() {
                        // Dropping the transaction rolls back: nothing changed.
                        return Ok(invalid);
                    }
                    let block_sql = format!(
                        "UPDATE blocks SET x = $3, y = $4, width = COALESCE($5, width), \
                         height = COALESCE($6, height), updated_at = {} \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                        NEXT_REVISION.replace("$NOW", "$7")
                    );
                    for i in items {
                        if i.kind == "block" {
                            sqlx::query(sqlx::AssertSqlSafe(block_sql.clone()))
                                .bind(&org_id)
                                .bind(i.id.to_string())
                                .bind(i.x)
                                .bind(i.y)
                                .bind(i.width)
                                .bind(i.height)
                                .bind(now)
                                .execute(&mut *tx)
                                .await
                                .map_err(err)?;
                        } else {
                            sqlx::query(
                                "INSERT INTO canvas_positions (org_id, project_id, node_kind, node_id, x, y, \
                                 width, height, updated_at) VALUES ($1, $2, 'session', $3, $4, $5, \
                                 COALESCE($6, $8), COALESCE($7, $9), $10) \
                                 ON CONFLICT (project_id, node_kind, node_id) DO UPDATE SET x = excluded.x, \
                                 y = excluded.y, width = COALESCE($6, canvas_positions.width), \
                                 height = COALESCE($7, canvas_positions.height), updated_at = excluded.updated_at",
                            )
                            .bind(&org_id)
                            .bind(&project_s)
                            .bind(i.id.to_string())
                            .bind(i.x)
                            .bind(i.y)
                            .bind(i.width)
                            .bind(i.height)
                            .bind(DEFAULT_WIDTH)
                            .bind(DEFAULT_HEIGHT / 2)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                        }
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(Vec::new())
                }

                async fn list_session_nodes(&self, org: &OrgScope, project: Uuid) -> StoreResult<Vec<SessionNode>> {
                    let rows: Vec<SessionNodeRow> = sqlx::query_as(
                        "SELECT s.id, s.agent_id, a.name AS agent_name, s.status, cp.x, cp.y, cp.width, \
                         cp.height, s.created_at FROM chat_sessions s \
                         LEFT JOIN agents a ON a.id = s.agent_id AND a.org_id = s.org_id \
                         LEFT JOIN canvas_positions cp ON cp.project_id = s.project_id \
                           AND cp.node_kind = 'session' AND cp.node_id = s.id AND cp.org_id = s.org_id \
                         WHERE s.org_id = $1 AND s.project_id = $2 AND s.deleted_at IS NULL \
                         ORDER BY s.created_at, s.id",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows.into_iter().map(SessionNode::from).collect())
                }

                async fn list_peer_links(&self, org: &OrgScope, project: Uuid) -> StoreResult<Vec<(Uuid, Uuid)>> {
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT DISTINCT fs.id, rs.id FROM peer_messages pm \
                         JOIN chat_sessions rs ON rs.id = pm.session_id AND rs.org_id = $1 \
                           AND rs.project_id = $2 AND rs.deleted_at IS NULL \
                         JOIN chat_sessions fs ON fs.org_id = $1 AND fs.project_id = $2 \
                           AND fs.agent_id = pm.from_agent_id AND fs.deleted_at IS NULL AND fs.id <> rs.id \
                         WHERE pm.org_id = $1 ORDER BY fs.id, rs.id",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows
                        .into_iter()
                        .map(|(a, b)| ($crate::rows::uuid(&a), $crate::rows::uuid(&b)))
                        .collect())
                }

                async fn create_edge(&self, org: &OrgScope, e: &Edge) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    insert_edge_in(&mut *tx, &org.org_id().to_string(), e).await?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn list_edges(&self, org: &OrgScope, project: Uuid) -> StoreResult<Vec<Edge>> {
                    let rows: Vec<EdgeRow> = sqlx::query_as(
                        "SELECT id, org_id, project_id, from_kind, from_id, to_kind, to_id, label, \
                         created_by_kind, created_by_id, created_at FROM project_edges \
                         WHERE org_id = $1 AND project_id = $2 ORDER BY created_at, id",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows.into_iter().map(Edge::from).collect())
                }

                async fn delete_edge(&self, org: &OrgScope, project: Uuid, id: Uuid) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "DELETE FROM project_edges WHERE org_id = $1 AND project_id = $2 AND id = $3",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn latest_failed_turn(&self, org: &OrgScope, project: Uuid) -> StoreResult<Option<Uuid>> {
                    let row: Option<(String,)> = sqlx::query_as(
                        "SELECT t.id FROM turns t JOIN chat_sessions s ON s.id = t.session_id AND s.org_id = $1 \
                         WHERE t.org_id = $1 AND s.project_id = $2 \
                           AND (t.finish_reason = 'error' OR t.status = 'error') \
                         ORDER BY t.started_at DESC, t.id DESC LIMIT 1",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.map(|(id,)| $crate::rows::uuid(&id)))
                }

                async fn list_turn_revisions(&self, org: &OrgScope, turn: Uuid) -> StoreResult<Vec<BlockRevision>> {
                    let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
                        "SELECT block_id, turn_id, before_json, created_at FROM block_revisions \
                         WHERE org_id = $1 AND turn_id = $2 ORDER BY created_at, id",
                    )
                    .bind(org.org_id().to_string())
                    .bind(turn.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows
                        .into_iter()
                        .map(|(block, turn, before, at)| BlockRevision {
                            block_id: $crate::rows::uuid(&block),
                            turn_id: $crate::rows::uuid(&turn),
                            before: before
                                .and_then(|b| serde_json::from_str(&b).ok())
                                .and_then(|v| Block::from_snapshot(&v)),
                            created_at: alumia_core::clock::from_millis(at),
                        })
                        .collect())
                }

                async fn restore_blocks(
                    &self,
                    org: &OrgScope,
                    turn: Uuid,
                    restore: &[Block],
                    delete: &[Uuid],
                    at: DateTime<Utc>,
                ) -> StoreResult<(u64, u64)> {
                    let (org_id, now) = (org.org_id().to_string(), to_millis(at));
                    let mut tx = self.begin_write().await?;
                    let (mut restored, mut deleted) = (0, 0);
                    let restore_sql = format!(
                        "UPDATE blocks SET title = $3, data = $4, x = $5, y = $6, width = $7, height = $8, \
                         deleted_at = NULL, updated_at = {} WHERE org_id = $1 AND id = $2",
                        NEXT_REVISION.replace("$NOW", "$9")
                    );
                    for b in restore {
                        restored += sqlx::query(sqlx::AssertSqlSafe(restore_sql.clone()))
                            .bind(&org_id)
                            .bind(b.id.to_string())
                            .bind(&b.title)
                            .bind(b.data.to_string())
                            .bind(b.position.x)
                            .bind(b.position.y)
                            .bind(b.position.width)
                            .bind(b.position.height)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?
                            .rows_affected();
                    }
                    let delete_sql = format!(
                        "UPDATE blocks SET deleted_at = $3, updated_at = {} \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                        NEXT_REVISION.replace("$NOW", "$3")
                    );
                    for id in delete {
                        deleted += sqlx::query(sqlx::AssertSqlSafe(delete_sql.clone()))
                            .bind(&org_id)
                            .bind(id.to_string())
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?
                            .rows_affected();
                    }
                    sqlx::query("DELETE FROM block_revisions WHERE org_id = $1 AND turn_id = $2")
                        .bind(&org_id)
                        .bind(turn.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok((restored, deleted))
                }
            }
        };
    };
}

pub(crate) use impl_block_store;
