//! `ProjectStore` in portable SQL, expanded for each engine like `sql_store`.
//! Creates and deletes touch several tables and run in one write
//! transaction (`begin_write`).

use alumia_core::clock::from_millis;
use alumia_core::projects::{FileEntry, Project};

use crate::rows::uuid;

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub prompt: String,
    pub emoji: String,
    pub visibility: String,
    pub status: String,
    pub tags: String,
    pub metadata: String,
    pub share_enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Project {
        Project {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            workspace_id: uuid(&r.workspace_id),
            shared_workspace_ids: Vec::new(),
            user_id: uuid(&r.user_id),
            name: r.name,
            slug: r.slug,
            description: r.description,
            prompt: r.prompt,
            emoji: r.emoji,
            visibility: r.visibility,
            status: r.status,
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            metadata: serde_json::from_str(&r.metadata).unwrap_or_default(),
            share_enabled: r.share_enabled,
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct FileRow {
    pub id: String,
    pub org_id: String,
    pub project_id: Option<String>,
    pub parent_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub system_kind: Option<String>,
    pub is_protected: bool,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<FileRow> for FileEntry {
    fn from(r: FileRow) -> FileEntry {
        FileEntry {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            project_id: r.project_id.as_deref().map(uuid),
            parent_id: r.parent_id.as_deref().map(uuid),
            name: r.name,
            kind: r.kind,
            status: r.status,
            system_kind: r.system_kind,
            is_protected: r.is_protected,
            created_by: r.created_by.as_deref().map(uuid),
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }
}

/// Columns of a `projects` row, in `ProjectRow` order (never the token hash).
pub(crate) const PROJECT_COLUMNS: &str = "p.id, p.org_id, p.workspace_id, p.user_id, p.name, \
     p.slug, p.description, p.prompt, p.emoji, p.visibility, p.status, p.tags, p.metadata, \
     (p.share_token_hash IS NOT NULL) AS share_enabled, p.created_at, p.updated_at";

pub(crate) const FILE_COLUMNS: &str = "id, org_id, project_id, parent_id, name, kind, status, \
     system_kind, is_protected, created_by, created_at, updated_at";

/// `$first, $first+1, …` for `n` bound values; `NULL` for none.
pub(crate) fn params(first: usize, n: usize) -> String {
    if n == 0 {
        return "NULL".into();
    }
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Statements shared by the project stores (create, duplicate): expanded
/// inside an impl macro's `const _` block for one engine.
macro_rules! project_sql_helpers {
    ($store:ty) => {
        /// The project row, its shared workspaces and its folder, on `tx`.
        async fn insert_project_in(
            tx: &mut <<$store as $crate::sql_store::EngineDb>::Db as sqlx::Database>::Connection,
            org_id: &str,
            p: &alumia_core::projects::Project,
            folder: &alumia_core::projects::FileEntry,
        ) -> alumia_core::store::StoreResult<()> {
            use alumia_core::clock::to_millis;
            use $crate::errors::{classify, err};
            let org_id = org_id.to_string();
            sqlx::query(
                "INSERT INTO projects (id, org_id, workspace_id, user_id, name, slug, description, \
                 prompt, emoji, visibility, status, tags, metadata, share_token_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, $14, $15)",
            )
            .bind(p.id.to_string())
            .bind(&org_id)
            .bind(p.workspace_id.to_string())
            .bind(p.user_id.to_string())
            .bind(&p.name)
            .bind(&p.slug)
            .bind(&p.description)
            .bind(&p.prompt)
            .bind(&p.emoji)
            .bind(&p.visibility)
            .bind(&p.status)
            .bind(serde_json::to_string(&p.tags).expect("tags serialise"))
            .bind(p.metadata.to_string())
            .bind(to_millis(p.created_at))
            .bind(to_millis(p.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(e, "project_slug"))?;
            for w in &p.shared_workspace_ids {
                sqlx::query(
                    "INSERT INTO project_workspaces (project_id, workspace_id, org_id, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(p.id.to_string())
                .bind(w.to_string())
                .bind(&org_id)
                .bind(to_millis(p.created_at))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
            insert_project_folder_in(&mut *tx, &org_id, folder).await
        }

        /// A project's protected folder. A live one already there (the
        /// unique `files_project_folder_key`) makes this a no-op, which is
        /// what the backfill of `GET /projects` relies on.
        async fn insert_project_folder_in<'c, E>(
            ex: E,
            org_id: &str,
            folder: &alumia_core::projects::FileEntry,
        ) -> alumia_core::store::StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = <$store as $crate::sql_store::EngineDb>::Db>,
        {
            use alumia_core::clock::to_millis;
            use $crate::errors::err;
            sqlx::query(
                "INSERT INTO files (id, org_id, project_id, parent_id, name, kind, mime_type, size, \
                 sha256, storage_key, status, system_kind, is_protected, target_file_id, tags, metadata, \
                 created_by, created_at, updated_at, deleted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, NULL, NULL, $7, $8, $9, NULL, '[]', '{}', \
                 $10, $11, $12, NULL) ON CONFLICT DO NOTHING",
            )
            .bind(folder.id.to_string())
            .bind(org_id)
            .bind(folder.project_id.map(|u| u.to_string()))
            .bind(folder.parent_id.map(|u| u.to_string()))
            .bind(&folder.name)
            .bind(&folder.kind)
            .bind(&folder.status)
            .bind(&folder.system_kind)
            .bind(folder.is_protected)
            .bind(folder.created_by.map(|u| u.to_string()))
            .bind(to_millis(folder.created_at))
            .bind(to_millis(folder.updated_at))
            .execute(ex)
            .await
            .map_err(err)?;
            Ok(())
        }
    };
}

pub(crate) use project_sql_helpers;

macro_rules! impl_project_store {
    ($store:ty) => {
        const _: () = {
            use alumia_core::clock::to_millis;
            use alumia_core::projects::*;
            use alumia_core::store::{PageRequest, StoreResult};
            use alumia_core::{OrgScope, StoreError};
            use chrono::{DateTime, Utc};
            use serde_json::Value;
            use uuid::Uuid;

            use $crate::errors::{classify, err};
            use $crate::sql_project::{FILE_COLUMNS, FileRow, PROJECT_COLUMNS, ProjectRow, params};

            $crate::sql_project::project_sql_helpers!($store);

            impl $store {
                /// Fills `shared_workspace_ids` of `projects` in one query.
                async fn load_shared(&self, org: &OrgScope, projects: &mut [Project]) -> StoreResult<()> {
                    if projects.is_empty() {
                        return Ok(());
                    }
                    let sql = format!(
                        "SELECT project_id, workspace_id FROM project_workspaces \
                         WHERE org_id = $1 AND project_id IN ({}) ORDER BY created_at, workspace_id",
                        params(2, projects.len())
                    );
                    let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string());
                    for p in projects.iter() {
                        query = query.bind(p.id.to_string());
                    }
                    let rows = query.fetch_all(&self.pool).await.map_err(err)?;
                    for (project, workspace) in rows {
                        let (project, workspace) = ($crate::rows::uuid(&project), $crate::rows::uuid(&workspace));
                        if let Some(p) = projects.iter_mut().find(|p| p.id == project) {
                            p.shared_workspace_ids.push(workspace);
                        }
                    }
                    Ok(())
                }
            }

            #[async_trait::async_trait]
            impl ProjectStore for $store {
                async fn create_project(&self, org: &OrgScope, p: &Project, folder: &FileEntry) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    insert_project_in(&mut *tx, &org.org_id().to_string(), p, folder).await?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn get_project(&self, org: &OrgScope, r: &ProjectRef) -> StoreResult<Option<Project>> {
                    let (column, value) = match r {
                        ProjectRef::Id(id) => ("id", id.to_string()),
                        ProjectRef::Slug(slug) => ("slug", slug.clone()),
                    };
                    let sql = format!(
                        "SELECT {PROJECT_COLUMNS} FROM projects p \
                         WHERE p.org_id = $1 AND p.{column} = $2 AND p.deleted_at IS NULL"
                    );
                    let row: Option<ProjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(value)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    let mut found: Vec<Project> = row.into_iter().map(Project::from).collect();
                    self.load_shared(org, &mut found).await?;
                    Ok(found.pop())
                }

                async fn list_projects(
                    &self,
                    org: &OrgScope,
                    viewer: ProjectViewer<'_>,
                    filter: &ProjectFilter,
                    page: PageRequest,
                ) -> StoreResult<Vec<Project>> {
                    // Workspace ids are bound as parameters $10.. (never spliced in).
                    let reach = match viewer.workspaces {
                        None => String::new(),
                        Some(ids) => {
                            let list = params(10, ids.len());
                            format!(
                                " AND (p.workspace_id IN ({list}) OR EXISTS (SELECT 1 FROM project_workspaces pw \
                                 WHERE pw.project_id = p.id AND pw.workspace_id IN ({list})))"
                            )
                        }
                    };
                    let sql = format!(
                        "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.org_id = $1 AND p.deleted_at IS NULL \
                           AND ($2 IS NULL OR p.updated_at < $2 OR (p.updated_at = $2 AND p.id < $3)) \
                           AND (((p.visibility <> 'private' OR p.user_id = $5){reach}) \
                                OR EXISTS (SELECT 1 FROM project_members pm \
                                WHERE pm.project_id = p.id AND pm.org_id = p.org_id AND pm.user_id = $5)) \
                           AND ($6 IS NULL OR p.workspace_id = $6 OR EXISTS (SELECT 1 FROM project_workspaces pw \
                                WHERE pw.project_id = p.id AND pw.workspace_id = $6)) \
                           AND ($7 IS NULL OR p.status = $7) \
                           AND ($8 IS NULL OR LOWER(p.name) LIKE $8 OR LOWER(p.description) LIKE $8) \
                           AND ($9 IS NULL OR p.tags LIKE $9) \
                         ORDER BY p.updated_at DESC, p.id DESC LIMIT $4"
                    );
                    let like = |s: &str| {
                        let escaped: String = s
                            .to_lowercase()
                            .chars()
                            .filter(|c| !matches!(c, '%' | '_' | '\\'))
                            .collect();
                        format!("%{escaped}%")
                    };
                    // Tags are a JSON array of strings: match one exact element.
                    let tag = filter.tag.as_deref().map(|t| {
                        let quoted = serde_json::to_string(t).expect("a string serialises");
                        let quoted: String = quoted.chars().filter(|c| !matches!(c, '%' | '_')).collect();
                        format!("%{quoted}%")
                    });
                    let mut query = sqlx::query_as::<_, ProjectRow>(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(page.after.map(|a| a.0))
                        .bind(page.after.map(|a| a.1.to_string()))
                        .bind(i64::from(page.limit))
                        .bind(viewer.user_id.to_string())
                        .bind(filter.workspace_id.map(|u| u.to_string()))
                        .bind(filter.status.clone())
                        .bind(filter.q.as_deref().map(like))
                        .bind(tag);
                    for id in viewer.workspaces.unwrap_or_default() {
                        query = query.bind(id.to_string());
                    }
                    let rows = query.fetch_all(&self.pool).await.map_err(err)?;
                    let mut projects: Vec<Project> = rows.into_iter().map(Project::from).collect();
                    // A tag with `%` or `_` was matched loosely above; check it exactly.
                    if let Some(t) = &filter.tag {
                        projects.retain(|p| p.tags.iter().any(|x| x == t));
                    }
                    self.load_shared(org, &mut projects).await?;
                    Ok(projects)
                }

                async fn update_project(&self, org: &OrgScope, p: &Project) -> StoreResult<()> {
                    let org_id = org.org_id().to_string();
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE projects SET workspace_id = $3, name = $4, slug = $5, description = $6, \
                         prompt = $7, emoji = $8, visibility = $9, status = $10, tags = $11, metadata = $12, \
                         updated_at = $13 WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&org_id)
                    .bind(p.id.to_string())
                    .bind(p.workspace_id.to_string())
                    .bind(&p.name)
                    .bind(&p.slug)
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
                    .map_err(|e| classify(e, "project_slug"))?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    sqlx::query("DELETE FROM project_workspaces WHERE org_id = $1 AND project_id = $2")
                        .bind(&org_id)
                        .bind(p.id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    for w in &p.shared_workspace_ids {
                        sqlx::query(
                            "INSERT INTO project_workspaces (project_id, workspace_id, org_id, created_at) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(p.id.to_string())
                        .bind(w.to_string())
                        .bind(&org_id)
                        .bind(to_millis(p.updated_at))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn delete_project(&self, org: &OrgScope, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                    let (org_id, id, at) = (org.org_id().to_string(), id.to_string(), to_millis(at));
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE projects SET deleted_at = $3, share_token_hash = NULL, share_token_sealed = NULL, \
                         share_created_at = NULL \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&org_id)
                    .bind(&id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    sqlx::query(
                        "UPDATE files SET deleted_at = $3 WHERE org_id = $1 AND project_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&org_id)
                    .bind(&id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    // Its blocks go with it (soft), its edges and session positions for good.
                    sqlx::query(
                        "UPDATE blocks SET deleted_at = $3 WHERE org_id = $1 AND project_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&org_id)
                    .bind(&id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    for table in ["project_edges", "canvas_positions"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE org_id = $1 AND project_id = $2"
                        )))
                        .bind(&org_id)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    }
                    // Running turns of its sessions stop at their next save.
                    sqlx::query(
                        "UPDATE turns SET stop_requested = TRUE WHERE org_id = $1 AND status = 'running' \
                         AND session_id IN (SELECT id FROM chat_sessions WHERE org_id = $1 AND project_id = $2 \
                         AND deleted_at IS NULL)",
                    )
                    .bind(&org_id)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    sqlx::query(
                        "UPDATE chat_sessions SET deleted_at = $3, running_turn = NULL \
                         WHERE org_id = $1 AND project_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&org_id)
                    .bind(&id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn get_project_folder(&self, org: &OrgScope, project: Uuid) -> StoreResult<Option<FileEntry>> {
                    let sql = format!(
                        "SELECT {FILE_COLUMNS} FROM files WHERE org_id = $1 AND project_id = $2 \
                         AND system_kind = $3 AND deleted_at IS NULL ORDER BY created_at, id LIMIT 1"
                    );
                    let row: Option<FileRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(project.to_string())
                        .bind(FOLDER_SYSTEM_KIND)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(row.map(FileEntry::from))
                }

                async fn projects_without_folder(&self, org: &OrgScope, projects: &[Uuid]) -> StoreResult<Vec<Uuid>> {
                    if projects.is_empty() {
                        return Ok(Vec::new());
                    }
                    let sql = format!(
                        "SELECT p.id FROM projects p WHERE p.org_id = $1 AND p.id IN ({}) \
                         AND NOT EXISTS (SELECT 1 FROM files f WHERE f.org_id = $1 AND f.project_id = p.id \
                         AND f.system_kind = $2 AND f.deleted_at IS NULL)",
                        params(3, projects.len())
                    );
                    let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(FOLDER_SYSTEM_KIND);
                    for id in projects {
                        query = query.bind(id.to_string());
                    }
                    let rows = query.fetch_all(&self.pool).await.map_err(err)?;
                    Ok(rows.iter().map(|(id,)| $crate::rows::uuid(id)).collect())
                }

                async fn create_missing_project_folders(&self, org: &OrgScope, folders: &[FileEntry]) -> StoreResult<()> {
                    let org_id = org.org_id().to_string();
                    let mut tx = self.begin_write().await?;
                    for folder in folders {
                        insert_project_folder_in(&mut *tx, &org_id, folder).await?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn list_project_usage(&self, org: &OrgScope, project: Uuid) -> StoreResult<Vec<Value>> {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "SELECT m.usage FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id \
                         WHERE s.org_id = $1 AND m.org_id = $1 AND s.project_id = $2 AND s.deleted_at IS NULL \
                         AND m.role = 'assistant' AND m.usage IS NOT NULL",
                    )
                    .bind(org.org_id().to_string())
                    .bind(project.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows
                        .into_iter()
                        .filter_map(|(u,)| serde_json::from_str(&u).ok())
                        .collect())
                }
            }
        };
    };
}

pub(crate) use impl_project_store;
