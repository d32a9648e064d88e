//! `ShareStore` in portable SQL, expanded for each engine like `sql_store`:
//! the share link columns of `projects`, `project_invites` and
//! `project_members` (migration 0009).

macro_rules! impl_share_store {
    ($store:ty) => {
        const _: () = {
            use alumia_core::clock::{from_millis, to_millis};
            use alumia_core::projects::Project;
            use alumia_core::sharing::*;
            use alumia_core::store::StoreResult;
            use alumia_core::{OrgScope, StoreError};
            use uuid::Uuid;

            use $crate::errors::{classify, err};
            use $crate::rows::uuid;
            use $crate::sql_project::{PROJECT_COLUMNS, ProjectRow};

            type InviteRow = (String, String, String, String, String, i64, i64);

            fn invite(r: InviteRow) -> ProjectInvite {
                ProjectInvite {
                    project_id: uuid(&r.0),
                    org_id: uuid(&r.1),
                    token_hash: r.2,
                    role: r.3,
                    created_by: uuid(&r.4),
                    expires_at: from_millis(r.5),
                    created_at: from_millis(r.6),
                }
            }

            #[async_trait::async_trait]
            impl ShareStore for $store {
                async fn get_share_link(&self, org: &OrgScope, project: Uuid) -> StoreResult<Option<ShareLink>> {
                    let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
                        "SELECT share_token_sealed, share_created_at FROM projects \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL AND share_token_hash IS NOT NULL",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.and_then(|(sealed, at)| {
                        Some(ShareLink {
                            sealed_token: sealed?,
                            created_at: from_millis(at?),
                        })
                    }))
                }

                async fn set_share_link(
                    &self,
                    org: &OrgScope,
                    project: Uuid,
                    token_hash: &str,
                    link: &ShareLink,
                ) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE projects SET share_token_hash = $3, share_token_sealed = $4, share_created_at = $5 \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .bind(token_hash)
                    .bind(&link.sealed_token)
                    .bind(to_millis(link.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(e, "share_token"))?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn clear_share_link(&self, org: &OrgScope, project: Uuid) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE projects SET share_token_hash = NULL, share_token_sealed = NULL, \
                         share_created_at = NULL WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn find_project_by_share_hash(&self, token_hash: &str) -> StoreResult<Option<Project>> {
                    let sql = format!(
                        "SELECT {PROJECT_COLUMNS} FROM projects p \
                         WHERE p.share_token_hash = $1 AND p.deleted_at IS NULL"
                    );
                    let row: Option<ProjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(token_hash)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(row.map(Project::from))
                }

                async fn replace_invite(&self, org: &OrgScope, i: &ProjectInvite) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("DELETE FROM project_invites WHERE org_id = $1 AND project_id = $2")
                        .bind(org.org_id().to_string())
                        .bind(i.project_id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    sqlx::query(
                        "INSERT INTO project_invites (project_id, org_id, token_hash, role, created_by, \
                         expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(i.project_id.to_string())
                    .bind(org.org_id().to_string())
                    .bind(&i.token_hash)
                    .bind(&i.role)
                    .bind(i.created_by.to_string())
                    .bind(to_millis(i.expires_at))
                    .bind(to_millis(i.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(e, "invite_token"))?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn find_invite_by_hash(&self, token_hash: &str) -> StoreResult<Option<ProjectInvite>> {
                    let row: Option<InviteRow> = sqlx::query_as(
                        "SELECT project_id, org_id, token_hash, role, created_by, expires_at, created_at \
                         FROM project_invites WHERE token_hash = $1",
                    )
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.map(invite))
                }

                async fn upsert_project_member(&self, org: &OrgScope, m: &ProjectMember) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO project_members (project_id, user_id, org_id, role, created_at) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
                    )
                    .bind(m.project_id.to_string())
                    .bind(m.user_id.to_string())
                    .bind(org.org_id().to_string())
                    .bind(&m.role)
                    .bind(to_millis(m.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn get_project_member(
                    &self,
                    org: &OrgScope,
                    project: Uuid,
                    user: Uuid,
                ) -> StoreResult<Option<ProjectMember>> {
                    let row: Option<(String, i64)> = sqlx::query_as(
                        "SELECT role, created_at FROM project_members \
                         WHERE org_id = $1 AND project_id = $2 AND user_id = $3",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .bind(user.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(row.map(|(role, at)| ProjectMember {
                        project_id: project,
                        user_id: user,
                        org_id: org.org_id(),
                        role,
                        created_at: from_millis(at),
                    }))
                }
            }
        };
    };
}

pub(crate) use impl_share_store;
