//! `PortabilityStore` in portable SQL, expanded for each engine like
//! `sql_store`: duplicate and restore, each one write transaction over
//! projects, blocks and edges, through the insert statements the project
//! and block stores use themselves.

macro_rules! impl_portability_store {
    ($store:ty) => {
        const _: () = {
            use alumia_core::blocks::{Block, Edge};
            use alumia_core::clock::to_millis;
            use alumia_core::portability::{PortabilityStore, RestoreWrites};
            use alumia_core::projects::{FileEntry, Project};
            use alumia_core::store::StoreResult;
            use alumia_core::{OrgScope, StoreError};
            use chrono::{DateTime, Utc};
            use uuid::Uuid;

            use $crate::errors::err;
            use $crate::sql_block::NEXT_REVISION;
            use $crate::sql_project::params;

            $crate::sql_project::project_sql_helpers!($store);
            $crate::sql_block::block_sql_helpers!($store);

            #[async_trait::async_trait]
            impl PortabilityStore for $store {
                async fn find_block_owners(
                    &self,
                    ids: &[Uuid],
                ) -> StoreResult<Vec<(Uuid, Uuid, Option<Uuid>)>> {
                    let mut found = Vec::new();
                    // Bounded IN lists: a manifest may name thousands of blocks.
                    for chunk in ids.chunks(500) {
                        let sql = format!(
                            "SELECT id, org_id, project_id FROM blocks WHERE id IN ({})",
                            params(1, chunk.len())
                        );
                        let mut query =
                            sqlx::query_as::<_, (String, String, Option<String>)>(sqlx::AssertSqlSafe(sql));
                        for id in chunk {
                            query = query.bind(id.to_string());
                        }
                        for (id, org, project) in query.fetch_all(&self.pool).await.map_err(err)? {
                            found.push((
                                $crate::rows::uuid(&id),
                                $crate::rows::uuid(&org),
                                project.as_deref().map($crate::rows::uuid),
                            ));
                        }
                    }
                    Ok(found)
                }

                async fn apply_project_restore(
                    &self,
                    org: &OrgScope,
                    writes: &RestoreWrites,
                    at: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let RestoreWrites { project: p, update, create, delete, edges } = writes;
                    let (org_id, project_id, now) =
                        (org.org_id().to_string(), p.id.to_string(), to_millis(at));
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE projects SET name = $3, description = $4, prompt = $5, emoji = $6, \
                         visibility = $7, status = $8, tags = $9, metadata = $10, updated_at = $11 \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&org_id)
                    .bind(&project_id)
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(&p.prompt)
                    .bind(&p.emoji)
                    .bind(&p.visibility)
                    .bind(&p.status)
                    .bind(serde_json::to_string(&p.tags).expect("tags serialise"))
                    .bind(p.metadata.to_string())
                    .bind(to_millis(p.updated_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    // Blocks of this project (live or deleted) take the
                    // manifest's content and come back to life.
                    let rewrite = format!(
                        "UPDATE blocks SET type = $4, title = $5, data = $6, x = $7, y = $8, width = $9, \
                         height = $10, deleted_at = NULL, updated_at = {} \
                         WHERE org_id = $1 AND project_id = $2 AND id = $3",
                        NEXT_REVISION.replace("$NOW", "$11")
                    );
                    for b in update {
                        sqlx::query(sqlx::AssertSqlSafe(rewrite.clone()))
                            .bind(&org_id)
                            .bind(&project_id)
                            .bind(b.id.to_string())
                            .bind(&b.block_type)
                            .bind(&b.title)
                            .bind(b.data.to_string())
                            .bind(b.position.x)
                            .bind(b.position.y)
                            .bind(b.position.width)
                            .bind(b.position.height)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                    }
                    for b in create {
                        insert_block_in(&mut *tx, &org_id, b).await?;
                    }
                    let remove = format!(
                        "UPDATE blocks SET deleted_at = $4, updated_at = {} \
                         WHERE org_id = $1 AND project_id = $2 AND id = $3 AND deleted_at IS NULL",
                        NEXT_REVISION.replace("$NOW", "$4")
                    );
                    for id in delete {
                        sqlx::query(sqlx::AssertSqlSafe(remove.clone()))
                            .bind(&org_id)
                            .bind(&project_id)
                            .bind(id.to_string())
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                    }
                    sqlx::query("DELETE FROM project_edges WHERE org_id = $1 AND project_id = $2")
                        .bind(&org_id)
                        .bind(&project_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    for e in edges {
                        insert_edge_in(&mut *tx, &org_id, e).await?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn org_blob_size(&self, org: &OrgScope, sha256: &str) -> StoreResult<Option<i64>> {
                    // A blob being deleted is as good as gone.
                    let row: Option<(i64,)> = sqlx::query_as(
                        "SELECT b.size FROM blobs b WHERE b.sha256 = $2 AND b.deleting_at IS NULL \
                         AND EXISTS (SELECT 1 FROM files f WHERE f.org_id = $1 AND f.sha256 = $2)",
                    )
                    .bind(org.org_id().to_string())
                    .bind(sha256)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.map(|(size,)| size))
                }

                async fn create_project_copy(
                    &self,
                    org: &OrgScope,
                    p: &Project,
                    folder: &FileEntry,
                    blocks: &[Block],
                    edges: &[Edge],
                ) -> StoreResult<()> {
                    let org_id = org.org_id().to_string();
                    let mut tx = self.begin_write().await?;
                    insert_project_in(&mut *tx, &org_id, p, folder).await?;
                    for b in blocks {
                        insert_block_in(&mut *tx, &org_id, b).await?;
                    }
                    for e in edges {
                        insert_edge_in(&mut *tx, &org_id, e).await?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }
            }
        };
    };
}

pub(crate) use impl_portability_store;
