//! File bytes between HTTP and the blob store: uploads streamed with the
//! magic-byte check and the size cap, blob references kept consistent with
//! the rows (see migration 0008), and downloads with hardened headers.

use alumia_blobs::{Blob, BlobError, BlobStore, ByteStream, PutBlob};
use alumia_core::DomainError;
use alumia_core::file_types::{self, MAGIC_HEAD};
use alumia_core::files::{MAX_FILE_BYTES, StoredFile, mime_mismatch};
use alumia_core::{OrgScope, StoreError};
use alumia_types::ErrorCode;
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The blob store of a state built without one (benchmarks, unit tests).
#[derive(Debug)]
pub struct NoBlobStore;

fn unconfigured() -> BlobError {
    BlobError::Backend("file storage is not configured".into())
}

#[async_trait]
impl BlobStore for NoBlobStore {
    async fn put_stream(&self, _: ByteStream<'_>, _: u64) -> Result<PutBlob, BlobError> {
        Err(unconfigured())
    }
    async fn get(&self, _: &str) -> Result<Blob, BlobError> {
        Err(unconfigured())
    }
    async fn exists(&self, _: &str) -> Result<bool, BlobError> {
        Err(unconfigured())
    }
    async fn delete(&self, _: &str) -> Result<(), BlobError> {
        Err(unconfigured())
    }
}

pub fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("files are at most {} MB", MAX_FILE_BYTES / (1024 * 1024)),
    )
    .reason("file_too_large")
    .details(json!({ "limitBytes": MAX_FILE_BYTES }))
}

fn storage_error(e: BlobError) -> ApiError {
    ApiError::unavailable(format!("blob storage: {e}"))
}

/// The marker a stream yields when the first bytes betray the type.
#[derive(Debug, thiserror::Error)]
#[error("the bytes do not match the declared type")]
struct MimeMismatch;

/// Passes `inner` through, failing it with [`MimeMismatch`] as soon as its
/// first bytes (or all of it, when shorter) do not fit `mime`.
fn magic_checked<'a>(inner: ByteStream<'a>, mime: String) -> ByteStream<'a> {
    struct State<'a> {
        inner: ByteStream<'a>,
        mime: String,
        head: Vec<u8>,
        decided: bool,
        done: bool,
    }
    let state = State {
        inner,
        mime,
        head: Vec::new(),
        decided: false,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let mismatch = || std::io::Error::other(MimeMismatch);
        match s.inner.next().await {
            Some(Ok(chunk)) => {
                if !s.decided {
                    let take = (MAGIC_HEAD - s.head.len()).min(chunk.len());
                    s.head.extend_from_slice(&chunk[..take]);
                    match file_types::magic_matches(&s.mime, &s.head, false) {
                        Some(false) => {
                            s.done = true;
                            return Some((Err(mismatch()), s));
                        }
                        Some(true) => s.decided = true,
                        None => {}
                    }
                }
                Some((Ok(chunk), s))
            }
            Some(Err(e)) => {
                s.done = true;
                Some((Err(e), s))
            }
            None => {
                s.done = true;
                if !s.decided && file_types::magic_matches(&s.mime, &s.head, true) != Some(true) {
                    return Some((Err(mismatch()), s));
                }
                None
            }
        }
    })
    .boxed()
}

/// Streams an upload into the blob store: the type checked on the first
/// bytes, at most `max` bytes. Nothing is kept on any error.
pub async fn put_upload(
    state: &AppState,
    stream: ByteStream<'_>,
    mime: &str,
    max: u64,
) -> Result<PutBlob, ApiError> {
    let checked = magic_checked(stream, mime.to_string());
    match state.blobs.put_stream(checked, max).await {
        Ok(put) => Ok(put),
        Err(BlobError::TooLarge { .. }) => Err(too_large()),
        Err(BlobError::Upload(e)) => {
            if e.get_ref().is_some_and(|inner| inner.is::<MimeMismatch>()) {
                Err(mime_mismatch().into())
            } else {
                Err(ApiError::bad_request(
                    "upload_interrupted",
                    "the upload did not arrive in full",
                ))
            }
        }
        Err(e) => Err(storage_error(e)),
    }
}

/// Deletes the bytes of blobs the store marked deleting, then their rows.
/// A failure leaves the row marked (a later upload of the same bytes takes
/// it over once stale); it is logged, never returned: the rows are gone.
pub async fn delete_blobs(state: &AppState, shas: &[String]) {
    for sha in shas {
        match state.blobs.delete(sha).await {
            Ok(()) => {
                if let Err(e) = state.store.finish_blob_delete(sha).await {
                    tracing::warn!(sha256 = %sha, error = %e, "blob row left marked deleting");
                }
            }
            Err(e) => tracing::warn!(sha256 = %sha, error = %e, "blob bytes not deleted"),
        }
    }
}

/// Bytes an upload stored but no row kept: deleted unless referenced.
pub async fn release_unkept(state: &AppState, put: &PutBlob) {
    let now = state.clock.now();
    match state
        .store
        .release_unreferenced_blob(&put.sha256, put.size as i64, now)
        .await
    {
        Ok(true) => delete_blobs(state, std::slice::from_ref(&put.sha256)).await,
        Ok(false) => {}
        Err(e) => tracing::warn!(sha256 = %put.sha256, error = %e, "unkept blob not released"),
    }
}

/// After a row took a reference: the bytes must still be there (a purge of
/// the last other reference may have deleted them between our write and our
/// reference). If not, the row is removed again and the client retries.
pub async fn confirm_bytes(
    state: &AppState,
    org: &OrgScope,
    file: &StoredFile,
    sha256: &str,
) -> Result<(), ApiError> {
    match state.blobs.exists(sha256).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            let now = state.clock.now();
            if let Ok(purged) = state.store.purge_file(org, file.id, false, now).await {
                delete_blobs(state, &purged.orphaned_blobs).await;
            }
            Err(blob_busy())
        }
        Err(e) => Err(storage_error(e)),
    }
}

pub fn blob_busy() -> ApiError {
    let mut e = ApiError::unavailable("blob deleted concurrently");
    e.reason = Some("blob_busy");
    e
}

/// Store conflicts of an upload, as errors.
pub fn upload_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict("blob_deleting") => blob_busy(),
        StoreError::Conflict("not_pending") => DomainError::conflict(
            "already_uploaded",
            "this upload URL was already used; the file is ready",
        )
        .into(),
        StoreError::Conflict("size_mismatch") => DomainError::invalid_with_reason(
            "size_mismatch",
            "body",
            "the body is not exactly the declared size",
        )
        .into(),
        other => DomainError::from(other).into(),
    }
}

/// How bytes are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Inline,
    Attachment,
}

/// The bytes of a ready file with hardened headers: a sandboxing CSP,
/// `nosniff`, and HTML/SVG always as attachments.
pub async fn serve_bytes(
    state: &AppState,
    file: &StoredFile,
    disposition: Disposition,
) -> Result<Response, ApiError> {
    let sha = match (&file.sha256, file.status.as_str()) {
        (Some(sha), "ready") => sha.clone(),
        _ => {
            return Err(
                DomainError::conflict("file_not_ready", "the file has no content yet").into(),
            );
        }
    };
    let blob = match state.blobs.get(&sha).await {
        Ok(blob) => blob,
        Err(BlobError::NotFound) => {
            return Err(ApiError::internal(format!(
                "blob {sha} of a ready file is missing"
            )));
        }
        Err(e) => return Err(storage_error(e)),
    };
    let mime = file
        .mime_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let disposition = if file_types::is_active_content(&mime) {
        Disposition::Attachment
    } else {
        disposition
    };
    let stream = blob
        .stream
        .map(|chunk| chunk.map_err(std::io::Error::other));
    let mut res = Body::from_stream(stream).into_response();
    *res.status_mut() = StatusCode::OK;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&mime)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(disposition, &file.name),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII
/// fallback with quotes and controls replaced, and the exact name encoded.
fn content_disposition(disposition: Disposition, name: &str) -> HeaderValue {
    let kind = match disposition {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Reads up to `max` bytes of a ready file (for previews).
pub async fn read_head(
    state: &AppState,
    file: &StoredFile,
    max: usize,
) -> Result<(Vec<u8>, bool), ApiError> {
    let Some(sha) = file.sha256.as_deref() else {
        return Ok((Vec::new(), true));
    };
    let blob = state.blobs.get(sha).await.map_err(storage_error)?;
    let complete_size = blob.size as usize;
    let mut out = Vec::new();
    let mut stream = blob.stream;
    while out.len() < max {
        match stream.next().await {
            Some(Ok(chunk)) => {
                let take = (max - out.len()).min(chunk.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Some(Err(e)) => return Err(storage_error(e)),
            None => break,
        }
    }
    let complete = out.len() >= complete_size;
    Ok((out, complete))
}

/// An upload body as a byte stream (`Bytes` frames, errors as io errors).
pub fn body_stream(body: Body) -> ByteStream<'static> {
    body.into_data_stream()
        .map(|r: Result<Bytes, axum::Error>| r.map_err(std::io::Error::other))
        .boxed()
}
