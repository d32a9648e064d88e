//! `FileStore` in portable SQL, expanded for each engine like `sql_project`.
//! Subtrees are walked with `WITH RECURSIVE` (both engines). Blob reference
//! counts change in the same transaction as the rows that hold them; see
//! migration 0008 for the two-phase blob deletion.

use alumia_core::clock::from_millis;
use alumia_core::files::StoredFile;

use crate::rows::uuid;

#[derive(sqlx::FromRow)]
pub(crate) struct StoredFileRow {
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
    pub tags: String,
    pub metadata: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

impl From<StoredFileRow> for StoredFile {
    fn from(r: StoredFileRow) -> StoredFile {
        StoredFile {
            id: uuid(&r.id),
            org_id: uuid(&r.org_id),
            project_id: r.project_id.as_deref().map(uuid),
            parent_id: r.parent_id.as_deref().map(uuid),
            name: r.name,
            kind: r.kind,
            mime_type: r.mime_type,
            size: r.size,
            sha256: r.sha256,
            status: r.status,
            system_kind: r.system_kind,
            is_protected: r.is_protected,
            target_file_id: r.target_file_id.as_deref().map(uuid),
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            metadata: serde_json::from_str(&r.metadata).unwrap_or_default(),
            created_by: r.created_by.as_deref().map(uuid),
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
            deleted_at: r.deleted_at.map(from_millis),
        }
    }
}

pub(crate) const STORED_FILE_COLUMNS: &str = "id, org_id, project_id, parent_id, name, kind, \
     mime_type, size, sha256, status, system_kind, is_protected, target_file_id, tags, metadata, \
     created_by, created_at, updated_at, deleted_at";

/// `sub(id)`: `$2` and everything below it, in org `$1`.
pub(crate) const SUBTREE: &str = "WITH RECURSIVE sub(id) AS (\
     SELECT id FROM files WHERE org_id = $1 AND id = $2 \
     UNION ALL SELECT f.id FROM files f JOIN sub s ON f.parent_id = s.id WHERE f.org_id = $1) ";

/// Takes a reference on a blob unless it is being deleted (a deletion older
/// than `$4` counts as abandoned). One affected row: taken.
pub(crate) const TAKE_BLOB_REF: &str = "INSERT INTO blobs (sha256, size, refs, deleting_at, created_at) \
     VALUES ($1, $2, 1, NULL, $3) ON CONFLICT (sha256) DO UPDATE SET refs = blobs.refs + 1, deleting_at = NULL \
     WHERE blobs.deleting_at IS NULL OR blobs.deleting_at < $4";

macro_rules! impl_file_store {
    ($store:ty) => {
        const _: () = {
            use alumia_core::clock::to_millis;
            use alumia_core::files::*;
            use alumia_core::store::StoreResult;
            use alumia_core::{OrgScope, StoreError};
            use chrono::{DateTime, Duration, Utc};
            use uuid::Uuid;

            use $crate::errors::err;
            use $crate::sql_file::{STORED_FILE_COLUMNS, SUBTREE, StoredFileRow, TAKE_BLOB_REF};

            fn stale(now: DateTime<Utc>) -> i64 {
                to_millis(now - Duration::seconds(STALE_BLOB_DELETE_SECS))
            }

            const INSERT_FILE: &str = "INSERT INTO files (id, org_id, project_id, parent_id, name, kind, \
                 mime_type, size, sha256, storage_key, status, system_kind, is_protected, target_file_id, \
                 tags, metadata, created_by, created_at, updated_at, deleted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, NULL)";

            macro_rules! bind_file {
                ($q:expr, $org:expr, $f:expr) => {
                    $q.bind($f.id.to_string())
                        .bind($org.org_id().to_string())
                        .bind($f.project_id.map(|u| u.to_string()))
                        .bind($f.parent_id.map(|u| u.to_string()))
                        .bind(&$f.name)
                        .bind(&$f.kind)
                        .bind(&$f.mime_type)
                        .bind($f.size)
                        .bind(&$f.sha256)
                        .bind(&$f.status)
                        .bind(&$f.system_kind)
                        .bind($f.is_protected)
                        .bind($f.target_file_id.map(|u| u.to_string()))
                        .bind(serde_json::to_string(&$f.tags).expect("tags serialise"))
                        .bind($f.metadata.to_string())
                        .bind($f.created_by.map(|u| u.to_string()))
                        .bind(to_millis($f.created_at))
                        .bind(to_millis($f.updated_at))
                };
            }

            #[async_trait::async_trait]
            impl FileStore for $store {
                async fn ensure_org_root(&self, org: &OrgScope, root: &StoredFile) -> StoreResult<StoredFile> {
                    let find = format!(
                        "SELECT {STORED_FILE_COLUMNS} FROM files WHERE org_id = $1 AND system_kind = $2 \
                         AND deleted_at IS NULL"
                    );
                    let existing: Option<StoredFileRow> = sqlx::query_as(sqlx::AssertSqlSafe(find.clone()))
                        .bind(org.org_id().to_string())
                        .bind(ROOT_SYSTEM_KIND)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    if let Some(row) = existing {
                        return Ok(row.into());
                    }
                    // The partial unique index keeps one root under racing first uses.
                    let mut tx = self.begin_write().await?;
                    let sql = format!("{INSERT_FILE} ON CONFLICT DO NOTHING");
                    bind_file!(sqlx::query(sqlx::AssertSqlSafe(sql)), org, root)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    let row: StoredFileRow = sqlx::query_as(sqlx::AssertSqlSafe(find))
                        .bind(org.org_id().to_string())
                        .bind(ROOT_SYSTEM_KIND)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(row.into())
                }

                async fn get_file(&self, org: &OrgScope, id: Uuid, include_trashed: bool) -> StoreResult<Option<StoredFile>> {
                    let live = if include_trashed { "" } else { " AND deleted_at IS NULL" };
                    let sql = format!("SELECT {STORED_FILE_COLUMNS} FROM files WHERE org_id = $1 AND id = $2{live}");
                    let row: Option<StoredFileRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(row.map(StoredFile::from))
                }

                async fn find_file_for_signed_url(&self, id: Uuid) -> StoreResult<Option<StoredFile>> {
                    let sql = format!("SELECT {STORED_FILE_COLUMNS} FROM files WHERE id = $1 AND deleted_at IS NULL");
                    let row: Option<StoredFileRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(row.map(StoredFile::from))
                }

                async fn list_files(&self, org: &OrgScope, q: &FileListQuery) -> StoreResult<Vec<StoredFile>> {
                    let sql = format!(
                        "SELECT {STORED_FILE_COLUMNS} FROM files WHERE org_id = $1 AND parent_id = $2 \
                         AND deleted_at IS NULL AND ($3 IS NULL OR LOWER(name) LIKE $3 ESCAPE '\\') \
                         ORDER BY CASE WHEN kind = 'folder' THEN 0 ELSE 1 END, LOWER(name), name, id \
                         LIMIT $4 OFFSET $5"
                    );
                    let like = q.search.as_deref().map(|s| {
                        let mut escaped = String::new();
                        for c in s.to_lowercase().chars() {
                            if matches!(c, '%' | '_' | '\\') {
                                escaped.push('\\');
                            }
                            escaped.push(c);
                        }
                        format!("%{escaped}%")
                    });
                    let rows: Vec<StoredFileRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(q.parent_id.to_string())
                        .bind(like)
                        .bind(q.limit)
                        .bind(q.offset)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(err)?;
                    Ok(rows.into_iter().map(StoredFile::from).collect())
                }

                async fn create_file(&self, org: &OrgScope, file: &StoredFile) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    bind_file!(sqlx::query(INSERT_FILE), org, file)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn create_uploaded_file(
                    &self,
                    org: &OrgScope,
                    file: &StoredFile,
                    blob: &BlobRef,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    let taken = sqlx::query(TAKE_BLOB_REF)
                        .bind(&blob.sha256)
                        .bind(blob.size)
                        .bind(to_millis(now))
                        .bind(stale(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    if taken.rows_affected() == 0 {
                        return Err(StoreError::Conflict("blob_deleting"));
                    }
                    let mut row = file.clone();
                    row.sha256 = Some(blob.sha256.clone());
                    row.size = blob.size;
                    row.status = "ready".into();
                    bind_file!(sqlx::query(INSERT_FILE), org, row)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn complete_upload(
                    &self,
                    org: &OrgScope,
                    id: Uuid,
                    blob: &BlobRef,
                    now: DateTime<Utc>,
                ) -> StoreResult<StoredFile> {
                    let mut tx = self.begin_write().await?;
                    let sql = format!(
                        "SELECT {STORED_FILE_COLUMNS} FROM files WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
                    );
                    let row: Option<StoredFileRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(org.org_id().to_string())
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
                    let mut file = StoredFile::from(row.ok_or(StoreError::NotFound)?);
                    if file.status != "pending" || file.kind != "file" {
                        return Err(StoreError::Conflict("not_pending"));
                    }
                    if file.size != blob.size {
                        return Err(StoreError::Conflict("size_mismatch"));
                    }
                    let taken = sqlx::query(TAKE_BLOB_REF)
                        .bind(&blob.sha256)
                        .bind(blob.size)
                        .bind(to_millis(now))
                        .bind(stale(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    if taken.rows_affected() == 0 {
                        return Err(StoreError::Conflict("blob_deleting"));
                    }
                    // `status = 'pending'` again: a racing PUT that got here first wins.
                    let done = sqlx::query(
                        "UPDATE files SET status = 'ready', sha256 = $3, storage_key = $3, updated_at = $4 \
                         WHERE org_id = $1 AND id = $2 AND status = 'pending' AND deleted_at IS NULL",
                    )
                    .bind(org.org_id().to_string())
                    .bind(id.to_string())
                    .bind(&blob.sha256)
                    .bind(to_millis(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict("not_pending"));
                    }
                    tx.commit().await.map_err(err)?;
                    file.status = "ready".into();
                    file.sha256 = Some(blob.sha256.clone());
                    file.updated_at = now;
                    Ok(file)
                }

                async fn update_file(&self, org: &OrgScope, file: &StoredFile) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE files SET name = $3, tags = $4, metadata = $5, updated_at = $6 \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    )
                    .bind(org.org_id().to_string())
                    .bind(file.id.to_string())
                    .bind(&file.name)
                    .bind(serde_json::to_string(&file.tags).expect("tags serialise"))
                    .bind(file.metadata.to_string())
                    .bind(to_millis(file.updated_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn move_file(
                    &self,
                    org: &OrgScope,
                    id: Uuid,
                    parent: Uuid,
                    project: Option<Uuid>,
                    at: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let (org_id, id, parent) = (org.org_id().to_string(), id.to_string(), parent.to_string());
                    let mut tx = self.begin_write().await?;
                    // Moves of one org queue on its root row (PostgreSQL row
                    // lock; SQLite has one writer anyway), so two crossing
                    // moves cannot both pass the cycle check.
                    sqlx::query(
                        "UPDATE files SET updated_at = updated_at WHERE org_id = $1 AND system_kind = $2 \
                         AND deleted_at IS NULL",
                    )
                    .bind(&org_id)
                    .bind(ROOT_SYSTEM_KIND)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    let sql = format!("{SUBTREE}SELECT COUNT(*) FROM sub WHERE id = $3");
                    let (inside,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(&org_id)
                        .bind(&id)
                        .bind(&parent)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(err)?;
                    if inside > 0 {
                        return Err(StoreError::Conflict("cycle"));
                    }
                    let folder: Option<(String,)> = sqlx::query_as(
                        "SELECT kind FROM files WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&org_id)
                    .bind(&parent)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    if folder.map(|(k,)| k) != Some("folder".to_string()) {
                        return Err(StoreError::NotFound);
                    }
                    let done = sqlx::query(
                        "UPDATE files SET parent_id = $3, updated_at = $4 \
                         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL AND is_protected = FALSE",
                    )
                    .bind(&org_id)
                    .bind(&id)
                    .bind(&parent)
                    .bind(to_millis(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    let sql = format!("{SUBTREE}UPDATE files SET project_id = $3 WHERE org_id = $1 AND id IN (SELECT id FROM sub)");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&org_id)
                        .bind(&id)
                        .bind(project.map(|u| u.to_string()))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn trash_file(&self, org: &OrgScope, id: Uuid, at: DateTime<Utc>) -> StoreResult<u64> {
                    let (org_id, id) = (org.org_id().to_string(), id.to_string());
                    let mut tx = self.begin_write().await?;
                    let live: Option<(String,)> = sqlx::query_as(
                        "SELECT id FROM files WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL AND is_protected = FALSE",
                    )
                    .bind(&org_id)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    if live.is_none() {
                        return Err(StoreError::NotFound);
                    }
                    let sql = format!(
                        "{SUBTREE}UPDATE files SET deleted_at = $3 WHERE org_id = $1 AND deleted_at IS NULL \
                         AND id IN (SELECT id FROM sub)"
                    );
                    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&org_id)
                        .bind(&id)
                        .bind(to_millis(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(done.rows_affected())
                }

                async fn purge_file(
                    &self,
                    org: &OrgScope,
                    id: Uuid,
                    trashed_only: bool,
                    at: DateTime<Utc>,
                ) -> StoreResult<Purged> {
                    let (org_id, id) = (org.org_id().to_string(), id.to_string());
                    let mut tx = self.begin_write().await?;
                    let top: Option<(Option<i64>, bool)> = sqlx::query_as(
                        "SELECT deleted_at, is_protected FROM files WHERE org_id = $1 AND id = $2",
                    )
                    .bind(&org_id)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    match top {
                        None => return Err(StoreError::NotFound),
                        Some((_, true)) => return Err(StoreError::Conflict("protected_file")),
                        Some((None, _)) if trashed_only => return Err(StoreError::Conflict("not_trashed")),
                        Some(_) => {}
                    }
                    // Only ready files hold a reference (a pending row has none yet).
                    let sql = format!(
                        "{SUBTREE}SELECT sha256 FROM files WHERE org_id = $1 AND id IN (SELECT id FROM sub) \
                         AND kind = 'file' AND status = 'ready' AND sha256 IS NOT NULL"
                    );
                    let shas: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(&org_id)
                        .bind(&id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(err)?;
                    let sql = format!("{SUBTREE}DELETE FROM files WHERE org_id = $1 AND id IN (SELECT id FROM sub)");
                    let removed = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&org_id)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?
                        .rows_affected();
                    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
                    for (sha,) in shas {
                        *counts.entry(sha).or_default() += 1;
                    }
                    let mut orphaned_blobs = Vec::new();
                    for (sha, n) in counts {
                        sqlx::query(
                            "UPDATE blobs SET refs = CASE WHEN refs >= $2 THEN refs - $2 ELSE 0 END WHERE sha256 = $1",
                        )
                        .bind(&sha)
                        .bind(n)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                        let marked = sqlx::query(
                            "UPDATE blobs SET deleting_at = $2 WHERE sha256 = $1 AND refs = 0 AND deleting_at IS NULL",
                        )
                        .bind(&sha)
                        .bind(to_millis(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                        if marked.rows_affected() == 1 {
                            orphaned_blobs.push(sha);
                        }
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(Purged { removed, orphaned_blobs })
                }

                async fn release_unreferenced_blob(&self, sha256: &str, size: i64, at: DateTime<Utc>) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    let marked = sqlx::query(
                        "INSERT INTO blobs (sha256, size, refs, deleting_at, created_at) VALUES ($1, $2, 0, $3, $3) \
                         ON CONFLICT (sha256) DO UPDATE SET deleting_at = $3 \
                         WHERE blobs.refs = 0 AND blobs.deleting_at IS NULL",
                    )
                    .bind(sha256)
                    .bind(size)
                    .bind(to_millis(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(marked.rows_affected() == 1)
                }

                async fn finish_blob_delete(&self, sha256: &str) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("DELETE FROM blobs WHERE sha256 = $1 AND refs = 0 AND deleting_at IS NOT NULL")
                        .bind(sha256)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }

                async fn blob_refs(&self, sha256: &str) -> StoreResult<Option<(i64, bool)>> {
                    let row: Option<(i64, Option<i64>)> =
                        sqlx::query_as("SELECT refs, deleting_at FROM blobs WHERE sha256 = $1")
                            .bind(sha256)
                            .fetch_optional(&self.pool)
                            .await
                            .map_err(err)?;
                    Ok(row.map(|(refs, deleting)| (refs, deleting.is_some())))
                }
            }
        };
    };
}

pub(crate) use impl_file_store;
