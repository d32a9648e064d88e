//! `/api/v1/files` (spec 06 §3): the org's tree of files, folders and links;
//! uploads (multipart, or JSON then a signed PUT), signed downloads,
//! inline bytes, previews, soft delete and purge.
//!
//! Content URLs (`/api/v1/files/:id/content?exp=&sig=`) are public routes:
//! the HMAC signature (server secret) is the credential, minted only after
//! the org and project access checks. A bad signature is `403
//! invalid_signature`, an expired one `403 url_expired`. On S3 the bytes
//! also stream through this route (no presigned bucket URLs): one code
//! path, and the bucket never needs to be reachable by clients.

use std::collections::BTreeMap;

use alumia_core::clock::format_ts;
use alumia_core::cursor;
use alumia_core::file_types;
use alumia_core::files::{
    ContentOp, DOWNLOAD_URL_SECS, FileListQuery, FilePatch, Files, MAX_FILE_BYTES, NewFileInput,
    StoredFile, UPLOAD_URL_SECS, content_signature, resolve_content_url,
};
use alumia_core::{DomainError, Principal};
use alumia_types::dto::{
    CreateFileRequest, FileCreatedView, FilePreviewView, FileUploadTarget, FileView,
    UpdateFileRequest,
};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Auth, parse_id};
use crate::file_content::{
    self, Disposition, confirm_bytes, put_upload, release_unkept, serve_bytes, too_large,
    upload_conflict,
};
use crate::state::AppState;
use crate::views::{self, ok};

/// Multipart framing allowed on top of the 100 MB file in a declared length.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;
/// Text fields of a multipart upload.
const FIELD_MAX: usize = 16 * 1024;
const PREVIEW_TEXT_BYTES: usize = 64 * 1024;
const PREVIEW_TABLE_BYTES: usize = 1024 * 1024;
const PREVIEW_TABLE_ROWS: usize = 100;

pub(crate) fn service(state: &AppState) -> Files<'_> {
    Files {
        store: state.store.as_ref(),
        now: state.clock.now(),
        mimes: &state.settings.file_mimes,
    }
}

fn view(f: &StoredFile) -> FileView {
    FileView {
        id: f.id.to_string(),
        org_id: f.org_id.to_string(),
        project_id: f.project_id.map(|u| u.to_string()),
        parent_id: f.parent_id.map(|u| u.to_string()),
        name: f.name.clone(),
        kind: f.kind.clone(),
        mime_type: f.mime_type.clone(),
        size: f.size,
        sha256: f.sha256.clone(),
        status: f.status.clone(),
        system_kind: f.system_kind.clone(),
        is_protected: f.is_protected,
        target_file_id: f.target_file_id.map(|u| u.to_string()),
        tags: f.tags.clone(),
        metadata: f.metadata.clone(),
        preview_kind: f.preview_kind().to_string(),
        created_by: f.created_by.map(|u| u.to_string()),
        created_at: format_ts(f.created_at),
        updated_at: format_ts(f.updated_at),
    }
}

/// A signed content URL for `file`, valid `secs` seconds.
fn content_url(state: &AppState, op: ContentOp, file: Uuid, secs: i64) -> (String, String) {
    let expires = state.clock.now() + Duration::seconds(secs);
    let exp = expires.timestamp();
    let sig = content_signature(state.identity.secret(), op, file, exp);
    (
        format!(
            "{}/api/v1/files/{file}/content?exp={exp}&sig={sig}",
            state.settings.public_url
        ),
        format_ts(expires),
    )
}

fn flag(raw: &Option<String>, field: &str) -> Result<bool, ApiError> {
    match raw.as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(_) => Err(DomainError::invalid(field, "must be true or false").into()),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListFilesQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub page: Option<String>,
    pub search: Option<String>,
    pub parent_id: Option<String>,
    pub project_id: Option<String>,
}

/// `GET /api/v1/files`: one folder's live children, folders first, then by
/// name. Pages by `cursor` (an opaque offset bound to the folder and search)
/// or by `page` (1-based).
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListFilesQuery>,
) -> ApiResult<Response> {
    let limit: i64 = match q.limit.as_deref() {
        None => 50,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| DomainError::invalid("limit", "must be an integer from 1 to 100"))?,
    };
    let files = service(&state);
    let parent = files
        .listing_parent(&p, q.parent_id.as_deref(), q.project_id.as_deref())
        .await?;
    let search = q.search.clone().filter(|s| !s.trim().is_empty());
    let key = format!("files:{}:{}:{:?}", p.org.org_id(), parent.id, search);
    let offset = match (q.cursor.as_deref(), q.page.as_deref()) {
        (Some(c), _) if !c.is_empty() => cursor::decode(c, &key)
            .map(|(offset, _)| offset)
            .filter(|o| *o >= 0)
            .ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "the cursor is not valid for this list")
            })?,
        (_, Some(raw)) => {
            let page = raw
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| DomainError::invalid("page", "must be a positive integer"))?;
            (page - 1) * limit
        }
        _ => 0,
    };
    let query = FileListQuery {
        parent_id: parent.id,
        search,
        offset,
        limit: limit + 1,
    };
    let mut rows = state
        .store
        .list_files(&p.org, &query)
        .await
        .map_err(DomainError::from)?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        Some(cursor::encode(offset + limit, Uuid::nil(), &key))
    } else {
        None
    };
    Ok(views::page(rows.iter().map(view).collect(), next))
}

/// `POST /api/v1/files`: JSON (an upload target, a folder or a link) or
/// multipart (the bytes at once).
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    req: Request,
) -> ApiResult<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        return create_multipart(&state, &p, req).await;
    }
    let ApiJson(body) = ApiJson::<CreateFileRequest>::from_request(req, &state).await?;
    let input = NewFileInput {
        name: body.name,
        mime_type: body.mime_type,
        size: body.size,
        parent_id: body.parent_id,
        project_id: body.project_id,
        source: body.source,
        target_file_id: body.target_file_id,
        tags: body.tags,
        metadata: body.metadata,
    };
    let file = service(&state).create(&p, input).await?;
    let upload = (file.status == "pending").then(|| {
        let (url, expires_at) = content_url(&state, ContentOp::Upload, file.id, UPLOAD_URL_SECS);
        let mut headers = BTreeMap::new();
        headers.insert(
            "Content-Type".to_string(),
            file.mime_type.clone().unwrap_or_default(),
        );
        FileUploadTarget {
            url,
            method: "PUT".into(),
            headers,
            expires_at,
        }
    });
    Ok(views::created(FileCreatedView {
        file: view(&file),
        upload,
    }))
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request("bad_content_length", "Content-Length is not a number")
            }),
    }
}

fn bad_multipart() -> ApiError {
    ApiError::bad_request("invalid_multipart", "the multipart body could not be read")
}

/// Reads a small text field of a multipart body.
async fn text_field(field: axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_string();
    let mut out = Vec::new();
    let mut field = field;
    while let Some(chunk) = field.chunk().await.map_err(|_| bad_multipart())? {
        out.extend_from_slice(&chunk);
        if out.len() > FIELD_MAX {
            return Err(DomainError::invalid(&name, "must be at most 16 KB").into());
        }
    }
    String::from_utf8(out).map_err(|_| DomainError::invalid(&name, "must be UTF-8 text").into())
}

/// Tags as a JSON array of strings or a comma-separated list.
fn parse_tags(raw: &str) -> Result<Vec<String>, ApiError> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        return serde_json::from_str(raw)
            .map_err(|_| DomainError::invalid("tags", "must be a JSON array of strings").into());
    }
    Ok(raw
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect())
}

async fn create_multipart(state: &AppState, p: &Principal, req: Request) -> ApiResult<Response> {
    // A declared body too large for any file is refused before it is read.
    if declared_length(req.headers())?.is_some_and(|n| n > MAX_FILE_BYTES + MULTIPART_OVERHEAD) {
        return Err(too_large());
    }
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|_| bad_multipart())?;
    let files = service(state);
    let mut stored: Option<(alumia_blobs::PutBlob, String, Option<String>)> = None;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let outcome: Result<(), ApiError> = async {
        while let Some(field) = multipart.next_field().await.map_err(|_| bad_multipart())? {
            let name = field.name().unwrap_or_default().to_string();
            match name.as_str() {
                "file" => {
                    if stored.is_some() {
                        return Err(
                            DomainError::invalid("file", "send one file per request").into()
                        );
                    }
                    // Some clients send a path; the name is its last segment.
                    let file_name = field
                        .file_name()
                        .and_then(|n| n.rsplit(['/', '\\']).next())
                        .filter(|n| !n.is_empty())
                        .map(str::to_string);
                    let declared = field
                        .content_type()
                        .map(str::to_string)
                        .filter(|m| !m.eq_ignore_ascii_case("application/octet-stream"))
                        .or_else(|| {
                            file_name
                                .as_deref()
                                .and_then(file_types::from_extension)
                                .map(str::to_string)
                        })
                        .unwrap_or_else(|| "application/octet-stream".into());
                    let mime = files.mimes.check(&declared)?;
                    let stream = field.map(|r| r.map_err(std::io::Error::other)).boxed();
                    let put = put_upload(state, stream, &mime, MAX_FILE_BYTES).await?;
                    stored = Some((put, mime, file_name));
                }
                "name" | "parentId" | "projectId" | "tags" => {
                    let value = text_field(field).await?;
                    fields.insert(name, value);
                }
                _ => {
                    // Unknown parts are read and dropped (bounded like text).
                    text_field(field).await.map(|_| ())?;
                }
            }
        }
        Ok(())
    }
    .await;
    let Some((put, mime, file_name)) = stored else {
        outcome?;
        return Err(DomainError::invalid("file", "is required").into());
    };
    // From here on the bytes are stored: every failure releases them.
    let result = async {
        outcome?;
        let tags = match fields.get("tags") {
            Some(raw) => parse_tags(raw)?,
            None => Vec::new(),
        };
        let parent = files
            .resolve_parent(
                p,
                fields.get("parentId").map(String::as_str),
                fields.get("projectId").map(String::as_str),
            )
            .await?;
        let name = fields
            .get("name")
            .cloned()
            .or(file_name)
            .unwrap_or_else(|| "upload".into());
        let row = files.uploaded_row(p, &parent, name, mime, tags)?;
        let blob = alumia_core::files::BlobRef {
            sha256: put.sha256.clone(),
            size: put.size as i64,
        };
        state
            .store
            .create_uploaded_file(&p.org, &row, &blob, state.clock.now())
            .await
            .map_err(upload_conflict)?;
        Ok::<StoredFile, ApiError>(row)
    }
    .await;
    let mut row = match result {
        Ok(row) => row,
        Err(e) => {
            release_unkept(state, &put).await;
            return Err(e);
        }
    };
    confirm_bytes(state, &p.org, &row, &put.sha256).await?;
    row.sha256 = Some(put.sha256);
    row.size = put.size as i64;
    row.status = "ready".into();
    Ok(views::created(FileCreatedView {
        file: view(&row),
        upload: None,
    }))
}

#[derive(Debug, Deserialize, Default)]
pub struct GetFileQuery {
    pub download: Option<String>,
    pub inline: Option<String>,
}

/// `GET /api/v1/files/:id`: metadata; `?download=true` → 302 to a signed
/// URL; `?inline=true` → the bytes with hardened headers.
pub async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<GetFileQuery>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (download, inline) = (flag(&q.download, "download")?, flag(&q.inline, "inline")?);
    let files = service(&state);
    let file = files.get(&p, id).await?;
    if !download && !inline {
        return Ok(ok(view(&file)));
    }
    let content = files.content_of(&p, file).await?;
    if content.kind != "file" {
        return Err(DomainError::conflict("not_a_file", "a folder has no content").into());
    }
    if content.status != "ready" {
        return Err(DomainError::conflict("file_not_ready", "the file has no content yet").into());
    }
    if inline {
        return serve_bytes(&state, &content, Disposition::Inline).await;
    }
    let (url, _) = content_url(&state, ContentOp::Download, content.id, DOWNLOAD_URL_SECS);
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response())
}

/// `PATCH /api/v1/files/:id`: rename, move, tags, metadata.
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateFileRequest>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let patch = FilePatch {
        name: req.name,
        parent_id: req.parent_id,
        tags: req.tags,
        metadata: req.metadata,
    };
    let files = service(&state);
    if patch.parent_id.is_some() {
        // Moves queue on the org root row; make sure it exists.
        files.org_root(&p).await?;
    }
    let file = files.update(&p, id, patch).await?;
    Ok(ok(view(&file)))
}

#[derive(Debug, Deserialize, Default)]
pub struct DeleteFileQuery {
    pub permanent: Option<String>,
}

/// `DELETE /api/v1/files/:id`: to the trash (with the subtree), or
/// `?permanent=true` out of it for good (browser session + step-up).
pub async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteFileQuery>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let files = service(&state);
    if flag(&q.permanent, "permanent")? {
        p.require_step_up(state.clock.now(), state.settings.auth.step_up_window_secs)?;
        let (file, purged) = files.purge(&p, id).await?;
        file_content::delete_blobs(&state, &purged.orphaned_blobs).await;
        return Ok(ok(json!({
            "id": file.id.to_string(),
            "purged": true,
            "removed": purged.removed,
        })));
    }
    let file = files.trash(&p, id).await?;
    Ok(ok(json!({
        "id": file.id.to_string(),
        "deletedAt": format_ts(state.clock.now()),
    })))
}

/// Valid UTF-8 of `bytes`, dropping a character cut off at the end.
fn utf8_prefix(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// `GET /api/v1/files/:id/preview`: `{previewKind, text?, table?, url?}`.
pub async fn preview(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let files = service(&state);
    let file = files.get(&p, id).await?;
    let content = files.content_of(&p, file).await?;
    let kind = content.preview_kind();
    let mut out = FilePreviewView {
        preview_kind: kind.to_string(),
        text: None,
        table: None,
        url: None,
        truncated: false,
    };
    if content.kind != "file" || content.status != "ready" {
        return Ok(ok(out));
    }
    let mime = content.mime_type.as_deref().unwrap_or_default();
    if mime == "text/csv" {
        let (head, complete) =
            file_content::read_head(&state, &content, PREVIEW_TABLE_BYTES).await?;
        let text = utf8_prefix(&head);
        let rows = file_types::csv_rows(&text, PREVIEW_TABLE_ROWS + 1, complete);
        out.truncated = rows.len() > PREVIEW_TABLE_ROWS || !complete;
        out.table = Some(rows.into_iter().take(PREVIEW_TABLE_ROWS).collect());
    } else if kind == "text" {
        let (head, complete) =
            file_content::read_head(&state, &content, PREVIEW_TEXT_BYTES).await?;
        out.text = Some(utf8_prefix(&head));
        out.truncated = !complete;
    } else if matches!(kind, "image" | "pdf" | "video" | "audio") {
        out.url = Some(content_url(&state, ContentOp::Download, content.id, DOWNLOAD_URL_SECS).0);
    }
    Ok(ok(out))
}

#[derive(Debug, Deserialize, Default)]
pub struct ContentQuery {
    pub exp: Option<String>,
    pub sig: Option<String>,
}

async fn signed(
    state: &AppState,
    op: ContentOp,
    id: &str,
    q: &ContentQuery,
) -> ApiResult<(alumia_core::OrgScope, StoredFile)> {
    let id = parse_id(id)?;
    let invalid = || {
        ApiError::from(DomainError::forbidden(
            "invalid_signature",
            "this file URL is not valid",
        ))
    };
    let exp = q
        .exp
        .as_deref()
        .and_then(|e| e.parse::<i64>().ok())
        .ok_or_else(invalid)?;
    let sig = q.sig.as_deref().ok_or_else(invalid)?;
    Ok(resolve_content_url(
        state.store.as_ref(),
        state.identity.secret(),
        op,
        id,
        exp,
        sig,
        state.clock.now(),
    )
    .await?)
}

/// `GET /api/v1/files/:id/content?exp=&sig=` (public, signed): the bytes,
/// as an attachment.
pub async fn content_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ContentQuery>,
) -> ApiResult<Response> {
    let (_, file) = signed(&state, ContentOp::Download, &id, &q).await?;
    serve_bytes(&state, &file, Disposition::Attachment).await
}

/// `PUT /api/v1/files/:id/content?exp=&sig=` (public, signed): the bytes
/// of a pending upload. Exactly `size` bytes make it ready; anything else
/// is `422 size_mismatch` and nothing is kept. Once ready, the URL is spent.
pub async fn content_put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ContentQuery>,
    req: Request,
) -> ApiResult<Response> {
    let (org, file) = signed(&state, ContentOp::Upload, &id, &q).await?;
    if file.status != "pending" || file.kind != "file" {
        return Err(DomainError::conflict(
            "already_uploaded",
            "this upload URL was already used; the file is ready",
        )
        .into());
    }
    let size = file.size as u64;
    match declared_length(req.headers())? {
        Some(n) if n > MAX_FILE_BYTES => return Err(too_large()),
        Some(n) if n != size => {
            return Err(DomainError::invalid_with_reason(
                "size_mismatch",
                "body",
                format!("the body must be exactly {size} bytes"),
            )
            .into());
        }
        _ => {}
    }
    let mime = file.mime_type.clone().unwrap_or_default();
    let stream = file_content::body_stream(req.into_body());
    let mismatch = || {
        ApiError::from(DomainError::invalid_with_reason(
            "size_mismatch",
            "body",
            format!("the body must be exactly {size} bytes"),
        ))
    };
    let put = match put_upload(&state, stream, &mime, size).await {
        Ok(put) => put,
        // The limit here is the declared size, so more is a mismatch.
        Err(e) if e.code == alumia_types::ErrorCode::PayloadTooLarge => return Err(mismatch()),
        Err(e) => return Err(e),
    };
    if put.size != size {
        release_unkept(&state, &put).await;
        return Err(mismatch());
    }
    let blob = alumia_core::files::BlobRef {
        sha256: put.sha256.clone(),
        size: put.size as i64,
    };
    let ready = match state
        .store
        .complete_upload(&org, file.id, &blob, state.clock.now())
        .await
    {
        Ok(ready) => ready,
        Err(e) => {
            release_unkept(&state, &put).await;
            return Err(upload_conflict(e));
        }
    };
    confirm_bytes(&state, &org, &ready, &put.sha256).await?;
    Ok(ok(view(&ready)))
}
