//! Files (spec 06 §3): the tree of folders, files and links of an org, its
//! protected folders, validation, signed content URLs, and the
//! `FileStore` contract. The bytes live in a blob store the server holds;
//! this module only knows their SHA-256 and the reference counts.
//!
//! The tree: each org has one protected root folder (`systemKind:
//! "orgRoot"`, made on first use) and each project one protected folder
//! (`systemKind: "projectFolder"`, made with the project). Both have no
//! parent. Everything under a project folder carries its `project_id`, so
//! deleting the project takes it along, and access to it follows the
//! project's visibility.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::crypto::SecretKey;
use crate::error::{DomainError, DomainResult, StoreError};
use crate::file_types;
use crate::principal::Principal;
use crate::projects::Projects;
use crate::scope::OrgScope;
use crate::store::{Store, StoreResult};
use crate::{new_id, validate};

pub const ROOT_SYSTEM_KIND: &str = "orgRoot";
/// Largest file: 100 MiB (spec 06 §3 "100 MB").
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// Upload URLs live 15 minutes, download URLs 5 (spec 06 §3).
pub const UPLOAD_URL_SECS: i64 = 15 * 60;
pub const DOWNLOAD_URL_SECS: i64 = 5 * 60;
/// A blob deletion that has not finished after this long was interrupted
/// (crash); an upload of the same bytes may take the blob back.
pub const STALE_BLOB_DELETE_SECS: i64 = 10 * 60;
const METADATA_MAX_BYTES: usize = 16 * 1024;
const MAX_TAGS: usize = 20;

/// A row of `files`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub id: Uuid,
    pub org_id: Uuid,
    pub project_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub name: String,
    /// `file`, `folder` or `link`.
    pub kind: String,
    pub mime_type: Option<String>,
    pub size: i64,
    pub sha256: Option<String>,
    /// `pending` (waiting for its bytes) or `ready`.
    pub status: String,
    pub system_kind: Option<String>,
    pub is_protected: bool,
    pub target_file_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub metadata: Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl StoredFile {
    pub fn is_folder(&self) -> bool {
        self.kind == "folder"
    }

    pub fn preview_kind(&self) -> &'static str {
        file_types::preview_kind(&self.kind, self.mime_type.as_deref())
    }
}

/// A blob an upload stored: its address and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub sha256: String,
    pub size: i64,
}

/// One page of a folder: `offset` rows skipped, `limit` returned.
#[derive(Debug, Clone, Default)]
pub struct FileListQuery {
    pub parent_id: Uuid,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub offset: i64,
    pub limit: i64,
}

/// What a purge did: the rows it removed and the blobs that lost their last
/// reference (now marked deleting; the caller deletes the bytes and then
/// calls [`FileStore::finish_blob_delete`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Purged {
    pub removed: u64,
    pub orphaned_blobs: Vec<String>,
}

/// File rows and blob reference counts. Tenant methods are scoped by org.
/// Blob rows are not tenant data (the same bytes are one blob for everyone),
/// so the blob methods take a hash only.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// The org's live root folder, inserting `root` when there is none.
    async fn ensure_org_root(&self, org: &OrgScope, root: &StoredFile) -> StoreResult<StoredFile>;
    /// A file by id: live only, or also trashed.
    async fn get_file(
        &self,
        org: &OrgScope,
        id: Uuid,
        include_trashed: bool,
    ) -> StoreResult<Option<StoredFile>>;
    /// A live file by id in any org: only for a request that carries a
    /// content URL signed by this server (the signature names the file).
    async fn find_file_for_signed_url(&self, id: Uuid) -> StoreResult<Option<StoredFile>>;
    /// Live children of a folder: folders first, then by name, then id.
    async fn list_files(&self, org: &OrgScope, q: &FileListQuery) -> StoreResult<Vec<StoredFile>>;
    /// Inserts a folder, a link or a pending upload (no blob).
    async fn create_file(&self, org: &OrgScope, file: &StoredFile) -> StoreResult<()>;
    /// Inserts a ready file and takes a reference on its blob, in one
    /// transaction. `Conflict("blob_deleting")` while the blob is being
    /// deleted (the bytes may be gone: the caller must not keep the row).
    async fn create_uploaded_file(
        &self,
        org: &OrgScope,
        file: &StoredFile,
        blob: &BlobRef,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Makes a pending file ready with `blob`, taking a reference, in one
    /// transaction. `Conflict("not_pending")` when it is no longer pending
    /// (the URL was used), `Conflict("size_mismatch")`, `Conflict("blob_deleting")`,
    /// `NotFound` when the row is gone.
    async fn complete_upload(
        &self,
        org: &OrgScope,
        id: Uuid,
        blob: &BlobRef,
        now: DateTime<Utc>,
    ) -> StoreResult<StoredFile>;
    /// Writes name, tags, metadata and `updated_at` of a live file.
    async fn update_file(&self, org: &OrgScope, file: &StoredFile) -> StoreResult<()>;
    /// Moves a live file under `parent` (a live folder), giving its subtree
    /// the parent's project. `Conflict("cycle")` when `parent` is the file
    /// itself or inside it; checked in the same transaction.
    async fn move_file(
        &self,
        org: &OrgScope,
        id: Uuid,
        parent: Uuid,
        project: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Soft-deletes a live file and its live subtree; the number of rows.
    /// `NotFound` when it is not live.
    async fn trash_file(&self, org: &OrgScope, id: Uuid, at: DateTime<Utc>) -> StoreResult<u64>;
    /// Deletes the rows of the subtree of `id` for good and releases their
    /// blob references. `trashed_only`: `Conflict("not_trashed")` when `id`
    /// is live. Blobs left without a reference are marked deleting at `at`.
    async fn purge_file(
        &self,
        org: &OrgScope,
        id: Uuid,
        trashed_only: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Purged>;
    /// For bytes stored by an upload that then kept no row: marks the blob
    /// deleting when no row references it (inserting a zero row if none).
    /// `true`: the caller should delete the bytes, then `finish_blob_delete`.
    async fn release_unreferenced_blob(
        &self,
        sha256: &str,
        size: i64,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Drops the blob row after its bytes were deleted, if it still has no
    /// reference.
    async fn finish_blob_delete(&self, sha256: &str) -> StoreResult<()>;
    /// `(refs, deleting)` of a blob row, for tests and diagnostics.
    async fn blob_refs(&self, sha256: &str) -> StoreResult<Option<(i64, bool)>>;
}

/// What a JSON create asks for.
#[derive(Debug, Clone, Default)]
pub struct NewFileInput {
    pub name: Option<String>,
    pub mime_type: Option<String>,
    pub size: Option<i64>,
    pub parent_id: Option<String>,
    pub project_id: Option<String>,
    /// `upload` (default), `folder` or `link`.
    pub source: Option<String>,
    pub target_file_id: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<Value>,
}

/// What a PATCH may change.
#[derive(Debug, Clone, Default)]
pub struct FilePatch {
    pub name: Option<String>,
    pub parent_id: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<Value>,
}

/// `name`: 1–255 characters, no NUL, CR, LF or `/`.
pub fn validate_name(field: &str, name: &str) -> DomainResult<()> {
    validate::text(field, name, 1, 255)?;
    if name.chars().any(|c| matches!(c, '\0' | '\r' | '\n' | '/')) {
        return Err(DomainError::invalid(
            field,
            "must not contain NUL, CR, LF or '/'",
        ));
    }
    Ok(())
}

fn validate_tags_metadata(
    tags: Option<&Vec<String>>,
    metadata: Option<&Value>,
) -> DomainResult<()> {
    let mut checks = Vec::new();
    if let Some(tags) = tags {
        if tags.len() > MAX_TAGS {
            checks.push(Err(DomainError::invalid("tags", "at most 20 tags")));
        } else if tags
            .iter()
            .any(|t| t.trim().is_empty() || validate::char_len(t) > 64)
        {
            checks.push(Err(DomainError::invalid(
                "tags",
                "each tag must be 1-64 characters",
            )));
        }
    }
    if let Some(meta) = metadata {
        if !meta.is_object() {
            checks.push(Err(DomainError::invalid("metadata", "must be an object")));
        } else if meta.to_string().len() > METADATA_MAX_BYTES {
            checks.push(Err(DomainError::invalid(
                "metadata",
                "must be at most 16 KB",
            )));
        }
    }
    validate::all(checks)
}

/// The MIME allow-list: the defaults plus configured extras.
#[derive(Debug, Clone)]
pub struct MimePolicy {
    allowed: Vec<String>,
}

impl Default for MimePolicy {
    fn default() -> Self {
        MimePolicy::with_extra(&[])
    }
}

impl MimePolicy {
    pub fn with_extra(extra: &[String]) -> Self {
        let mut allowed: Vec<String> = file_types::DEFAULT_MIME_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect();
        for e in extra {
            let e = file_types::essence(e);
            if !e.is_empty() && !allowed.contains(&e) {
                allowed.push(e);
            }
        }
        MimePolicy { allowed }
    }

    /// The normalised type, or `422 mime_not_allowed`.
    pub fn check(&self, mime: &str) -> DomainResult<String> {
        let essence = file_types::essence(mime);
        if self.allowed.contains(&essence) {
            Ok(essence)
        } else {
            Err(DomainError::invalid_with_reason(
                "mime_not_allowed",
                "mimeType",
                format!("{essence:?} is not an allowed file type"),
            ))
        }
    }
}

pub fn mime_mismatch() -> DomainError {
    DomainError::invalid_with_reason(
        "mime_mismatch",
        "file",
        "the bytes do not match the declared file type",
    )
}

pub fn protected_file() -> DomainError {
    DomainError::forbidden(
        "protected_file",
        "the org root and project folders cannot be renamed, moved or deleted",
    )
}

/// Which way a signed content URL works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentOp {
    Upload,
    Download,
}

impl ContentOp {
    fn as_str(self) -> &'static str {
        match self {
            ContentOp::Upload => "put",
            ContentOp::Download => "get",
        }
    }
}

/// `sig` of `/api/v1/files/:id/content?exp=&sig=`: HMAC-SHA256 with the
/// server secret over the operation, the file id and the expiry.
pub fn content_signature(secret: &SecretKey, op: ContentOp, file: Uuid, exp: i64) -> String {
    secret.mac_hex(format!("alumia.file-content.v1|{}|{file}|{exp}", op.as_str()).as_bytes())
}

/// Checks a content URL: the signature first (`403 invalid_signature`),
/// then the expiry (`403 url_expired`), then the file (`404`), and returns
/// it with the org scope the signature vouches for.
pub async fn resolve_content_url(
    store: &dyn Store,
    secret: &SecretKey,
    op: ContentOp,
    file: Uuid,
    exp: i64,
    sig: &str,
    now: DateTime<Utc>,
) -> DomainResult<(OrgScope, StoredFile)> {
    let want = content_signature(secret, op, file, exp);
    let same = want.len() == sig.len()
        && want
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(DomainError::forbidden(
            "invalid_signature",
            "this file URL is not valid",
        ));
    }
    if now.timestamp() > exp {
        return Err(DomainError::forbidden(
            "url_expired",
            "this file URL has expired; ask for a new one",
        ));
    }
    let row = store
        .find_file_for_signed_url(file)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok((OrgScope::new(row.org_id), row))
}

/// The files service: access checks and validation over the store. Blob
/// bytes are the server's business.
pub struct Files<'a> {
    pub store: &'a dyn Store,
    pub now: DateTime<Utc>,
    pub mimes: &'a MimePolicy,
}

impl Files<'_> {
    fn projects(&self) -> Projects<'_> {
        Projects {
            store: self.store,
            now: self.now,
        }
    }

    /// The org root, created on first use.
    pub async fn org_root(&self, p: &Principal) -> DomainResult<StoredFile> {
        let root = StoredFile {
            id: new_id(),
            org_id: p.org.org_id(),
            project_id: None,
            parent_id: None,
            name: "Files".into(),
            kind: "folder".into(),
            mime_type: None,
            size: 0,
            sha256: None,
            status: "ready".into(),
            system_kind: Some(ROOT_SYSTEM_KIND.into()),
            is_protected: true,
            target_file_id: None,
            tags: Vec::new(),
            metadata: json!({}),
            created_by: None,
            created_at: self.now,
            updated_at: self.now,
            deleted_at: None,
        };
        Ok(self.store.ensure_org_root(&p.org, &root).await?)
    }

    /// Whether `p` may see `file`: files of a project follow the project's
    /// visibility.
    async fn check_access(&self, p: &Principal, file: &StoredFile) -> DomainResult<()> {
        if let Some(project) = file.project_id {
            self.projects().get(p, &project.to_string()).await?;
        }
        Ok(())
    }

    /// A live file `p` may see; 404 otherwise (other orgs included).
    pub async fn get(&self, p: &Principal, id: Uuid) -> DomainResult<StoredFile> {
        let file = self
            .store
            .get_file(&p.org, id, false)
            .await?
            .ok_or(DomainError::NotFound)?;
        self.check_access(p, &file).await?;
        Ok(file)
    }

    /// A live file or a trashed one.
    pub async fn get_any(&self, p: &Principal, id: Uuid) -> DomainResult<StoredFile> {
        let file = self
            .store
            .get_file(&p.org, id, true)
            .await?
            .ok_or(DomainError::NotFound)?;
        self.check_access(p, &file).await?;
        Ok(file)
    }

    /// For downloads and previews: a link resolves to its (live) target.
    pub async fn content_of(&self, p: &Principal, file: StoredFile) -> DomainResult<StoredFile> {
        if file.kind != "link" {
            return Ok(file);
        }
        let target = file.target_file_id.ok_or(DomainError::NotFound)?;
        self.get(p, target).await
    }

    /// A folder to put something in, named by `parentId`/`projectId`:
    /// `400 invalid_reference` when unknown, invisible or not a folder.
    pub async fn resolve_parent(
        &self,
        p: &Principal,
        parent_id: Option<&str>,
        project_id: Option<&str>,
    ) -> DomainResult<StoredFile> {
        let project = match project_id {
            Some(raw) => Some(self.projects().reference(p, raw).await?),
            None => None,
        };
        let parent = match (parent_id, &project) {
            (Some(raw), _) => {
                let id =
                    Uuid::parse_str(raw).map_err(|_| DomainError::invalid_reference("parentId"))?;
                let folder = self.get(p, id).await.map_err(|e| match e {
                    DomainError::NotFound => DomainError::invalid_reference("parentId"),
                    other => other,
                })?;
                if !folder.is_folder() {
                    return Err(DomainError::invalid_reference("parentId"));
                }
                if let Some(project) = &project
                    && folder.project_id != Some(project.id)
                {
                    return Err(DomainError::invalid_reference("parentId"));
                }
                folder
            }
            (None, Some(project)) => self
                .store
                .get_project_folder(&p.org, project.id)
                .await?
                .ok_or_else(|| DomainError::invalid_reference("projectId"))
                .map(|entry| StoredFile {
                    id: entry.id,
                    org_id: entry.org_id,
                    project_id: entry.project_id,
                    parent_id: entry.parent_id,
                    name: entry.name,
                    kind: entry.kind,
                    mime_type: None,
                    size: 0,
                    sha256: None,
                    status: entry.status,
                    system_kind: entry.system_kind,
                    is_protected: entry.is_protected,
                    target_file_id: None,
                    tags: Vec::new(),
                    metadata: json!({}),
                    created_by: entry.created_by,
                    created_at: entry.created_at,
                    updated_at: entry.updated_at,
                    deleted_at: None,
                })?,
            (None, None) => self.org_root(p).await?,
        };
        Ok(parent)
    }

    /// A folder to list; 404 (not 400) when it cannot be seen.
    pub async fn listing_parent(
        &self,
        p: &Principal,
        parent_id: Option<&str>,
        project_id: Option<&str>,
    ) -> DomainResult<StoredFile> {
        self.resolve_parent(p, parent_id, project_id)
            .await
            .map_err(|e| match e {
                DomainError::BadRequest { .. } => DomainError::NotFound,
                other => other,
            })
    }

    fn new_row(&self, p: &Principal, parent: &StoredFile, name: String, kind: &str) -> StoredFile {
        StoredFile {
            id: new_id(),
            org_id: p.org.org_id(),
            project_id: parent.project_id,
            parent_id: Some(parent.id),
            name,
            kind: kind.into(),
            mime_type: None,
            size: 0,
            sha256: None,
            status: "ready".into(),
            system_kind: None,
            is_protected: false,
            target_file_id: None,
            tags: Vec::new(),
            metadata: json!({}),
            created_by: Some(p.user_id),
            created_at: self.now,
            updated_at: self.now,
            deleted_at: None,
        }
    }

    /// A JSON create: a folder, a link, or a pending upload (whose bytes
    /// come through the signed PUT).
    pub async fn create(&self, p: &Principal, input: NewFileInput) -> DomainResult<StoredFile> {
        let source = input.source.as_deref().unwrap_or("upload");
        if !matches!(source, "upload" | "folder" | "link") {
            return Err(DomainError::invalid(
                "source",
                "must be upload, folder or link",
            ));
        }
        if let Some(name) = &input.name {
            validate_name("name", name)?;
        }
        validate_tags_metadata(input.tags.as_ref(), input.metadata.as_ref())?;
        let mut file = match source {
            "folder" => {
                let name = input
                    .name
                    .clone()
                    .ok_or_else(|| DomainError::invalid("name", "is required"))?;
                let parent = self
                    .resolve_parent(p, input.parent_id.as_deref(), input.project_id.as_deref())
                    .await?;
                self.new_row(p, &parent, name, "folder")
            }
            "link" => {
                let raw = input
                    .target_file_id
                    .as_deref()
                    .ok_or_else(|| DomainError::invalid("targetFileId", "is required"))?;
                let target_id = Uuid::parse_str(raw)
                    .map_err(|_| DomainError::invalid_reference("targetFileId"))?;
                let target = self.get(p, target_id).await.map_err(|e| match e {
                    DomainError::NotFound => DomainError::invalid_reference("targetFileId"),
                    other => other,
                })?;
                if target.kind != "file" {
                    return Err(DomainError::invalid("targetFileId", "must name a file"));
                }
                let parent = self
                    .resolve_parent(p, input.parent_id.as_deref(), input.project_id.as_deref())
                    .await?;
                let name = input.name.clone().unwrap_or_else(|| target.name.clone());
                let mut row = self.new_row(p, &parent, name, "link");
                row.target_file_id = Some(target.id);
                row.mime_type = target.mime_type.clone();
                row.size = target.size;
                row
            }
            _ => {
                let name = input
                    .name
                    .clone()
                    .ok_or_else(|| DomainError::invalid("name", "is required"))?;
                let mime = input
                    .mime_type
                    .as_deref()
                    .ok_or_else(|| DomainError::invalid("mimeType", "is required"))?;
                let mime = self.mimes.check(mime)?;
                let size = input
                    .size
                    .ok_or_else(|| DomainError::invalid("size", "is required"))?;
                if size < 0 || size as u64 > MAX_FILE_BYTES {
                    return Err(DomainError::invalid(
                        "size",
                        format!("must be from 0 to {MAX_FILE_BYTES} bytes"),
                    ));
                }
                let parent = self
                    .resolve_parent(p, input.parent_id.as_deref(), input.project_id.as_deref())
                    .await?;
                let mut row = self.new_row(p, &parent, name, "file");
                row.mime_type = Some(mime);
                row.size = size;
                row.status = "pending".into();
                row
            }
        };
        if let Some(tags) = input.tags {
            file.tags = tags;
        }
        if let Some(meta) = input.metadata {
            file.metadata = meta;
        }
        self.store.create_file(&p.org, &file).await?;
        Ok(file)
    }

    /// The row of a multipart upload, before its bytes are stored.
    pub fn uploaded_row(
        &self,
        p: &Principal,
        parent: &StoredFile,
        name: String,
        mime: String,
        tags: Vec<String>,
    ) -> DomainResult<StoredFile> {
        validate_name("name", &name)?;
        validate_tags_metadata(Some(&tags), None)?;
        let mut row = self.new_row(p, parent, name, "file");
        row.mime_type = Some(mime);
        row.tags = tags;
        Ok(row)
    }

    pub async fn update(
        &self,
        p: &Principal,
        id: Uuid,
        patch: FilePatch,
    ) -> DomainResult<StoredFile> {
        let mut file = self.get(p, id).await?;
        if let Some(name) = &patch.name {
            validate_name("name", name)?;
        }
        validate_tags_metadata(patch.tags.as_ref(), patch.metadata.as_ref())?;
        if file.is_protected && (patch.name.is_some() || patch.parent_id.is_some()) {
            return Err(protected_file());
        }
        if let Some(raw) = patch.parent_id.as_deref() {
            let parent = self.resolve_parent(p, Some(raw), None).await?;
            if parent.id == file.id {
                return Err(cycle());
            }
            if file.parent_id != Some(parent.id) {
                self.store
                    .move_file(&p.org, file.id, parent.id, parent.project_id, self.now)
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict("cycle") => cycle(),
                        other => other.into(),
                    })?;
                file.parent_id = Some(parent.id);
                file.project_id = parent.project_id;
            }
        }
        if let Some(name) = patch.name {
            file.name = name;
        }
        if let Some(tags) = patch.tags {
            file.tags = tags;
        }
        if let Some(meta) = patch.metadata {
            file.metadata = meta;
        }
        file.updated_at = self.now;
        self.store.update_file(&p.org, &file).await?;
        Ok(file)
    }

    /// Soft delete (a folder takes its subtree).
    pub async fn trash(&self, p: &Principal, id: Uuid) -> DomainResult<StoredFile> {
        let file = self.get(p, id).await?;
        if file.is_protected {
            return Err(protected_file());
        }
        self.store.trash_file(&p.org, id, self.now).await?;
        Ok(file)
    }

    /// Permanent delete of a trashed file (and its subtree). The caller
    /// checked the browser session and step-up, and deletes the orphaned
    /// blobs' bytes.
    pub async fn purge(&self, p: &Principal, id: Uuid) -> DomainResult<(StoredFile, Purged)> {
        let file = self.get_any(p, id).await?;
        if file.is_protected {
            return Err(protected_file());
        }
        if file.deleted_at.is_none() {
            return Err(not_trashed());
        }
        let purged = self
            .store
            .purge_file(&p.org, id, true, self.now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict("not_trashed") => not_trashed(),
                other => other.into(),
            })?;
        Ok((file, purged))
    }

    /// When a blob deletion counts as stale.
    pub fn stale_delete_before(&self) -> DateTime<Utc> {
        self.now - Duration::seconds(STALE_BLOB_DELETE_SECS)
    }
}

fn cycle() -> DomainError {
    DomainError::invalid_with_reason(
        "folder_cycle",
        "parentId",
        "a folder cannot move into itself or its own subtree",
    )
}

fn not_trashed() -> DomainError {
    DomainError::conflict(
        "not_trashed",
        "only a file in the trash can be deleted permanently; delete it first",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_separators_and_control_characters() {
        assert!(validate_name("name", "report.pdf").is_ok());
        assert!(validate_name("name", "").is_err());
        assert!(validate_name("name", &"x".repeat(256)).is_err());
        for bad in ["a/b", "a\nb", "a\rb", "a\0b"] {
            assert!(validate_name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_allow_list_takes_extras_and_normalises() {
        let policy = MimePolicy::with_extra(&["Application/X-Custom".into()]);
        assert_eq!(policy.check("text/CSV; charset=utf-8").unwrap(), "text/csv");
        assert_eq!(
            policy.check("application/x-custom").unwrap(),
            "application/x-custom"
        );
        assert!(policy.check("text/html").is_err());
        assert!(MimePolicy::default().check("application/x-custom").is_err());
    }

    #[test]
    fn signatures_bind_operation_file_and_expiry() {
        let key = SecretKey::generate();
        let id = new_id();
        let sig = content_signature(&key, ContentOp::Download, id, 100);
        assert_eq!(sig, content_signature(&key, ContentOp::Download, id, 100));
        assert_ne!(sig, content_signature(&key, ContentOp::Upload, id, 100));
        assert_ne!(sig, content_signature(&key, ContentOp::Download, id, 101));
        assert_ne!(
            sig,
            content_signature(&key, ContentOp::Download, new_id(), 100)
        );
        assert_ne!(
            sig,
            content_signature(&SecretKey::generate(), ContentOp::Download, id, 100)
        );
    }
}
