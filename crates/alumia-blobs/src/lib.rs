//! Content-addressed blob storage for file bytes (spec 06 §3, 11 §3).
//!
//! A blob is named by the lowercase hex SHA-256 of its bytes. Rows in the
//! `files` table point at blobs and may share them; the store knows nothing of
//! rows, orgs or reference counts (deleting a blob nobody references is the
//! caller's job).
//!
//! Writes are all-or-nothing: [`BlobStore::put_stream`] writes to a temporary
//! file or object while hashing, and only a stream that ends cleanly within
//! `max_bytes` becomes visible under its content address. A stream that errors,
//! runs past `max_bytes`, or whose future is dropped leaves no blob and no
//! temporary behind.
//!
//! Two back ends: [`FsBlobStore`] (a folder, `<data-dir>/files`) and
//! [`S3BlobStore`] (any S3-compatible bucket). Downloads are served by the
//! server from [`BlobStore::get`]; there is no presigning here.

mod error;
mod fs;
mod hash;
mod s3;

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use error::BlobError;
pub use fs::FsBlobStore;
pub use hash::validate_sha256;
pub use s3::{S3BlobStore, S3Config};

/// The bytes of an upload, as the HTTP layer yields them. Callers map their
/// body errors (a client disconnect, a bad chunk) into `std::io::Error`.
pub type ByteStream<'a> = BoxStream<'a, Result<Bytes, std::io::Error>>;

/// The bytes of a stored blob.
pub type BlobStream = BoxStream<'static, Result<Bytes, BlobError>>;

/// A blob that [`BlobStore::put_stream`] stored (or found already stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutBlob {
    /// Lowercase hex SHA-256 of the bytes: the blob's address.
    pub sha256: String,
    /// Length in bytes.
    pub size: u64,
}

/// A blob opened for reading.
pub struct Blob {
    /// Length in bytes (for `Content-Length`).
    pub size: u64,
    /// The bytes, in order.
    pub stream: BlobStream,
}

impl Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Which back end to open: what the binary's config module builds from
/// `[storage]` (spec 11 §2) and `--data-dir`.
#[derive(Debug, Clone)]
pub enum BlobBackend {
    /// A folder, normally `<data-dir>/files`.
    Local { root: std::path::PathBuf },
    /// An S3-compatible bucket.
    S3(S3Config),
}

impl BlobBackend {
    /// Opens the store (creates the folder; builds the S3 client without a
    /// request).
    pub async fn open(self) -> Result<std::sync::Arc<dyn BlobStore>, BlobError> {
        Ok(match self {
            Self::Local { root } => std::sync::Arc::new(FsBlobStore::open(root).await?),
            Self::S3(config) => std::sync::Arc::new(S3BlobStore::new(config)?),
        })
    }
}

/// Content-addressed blob storage. Object safe: the server holds an
/// `Arc<dyn BlobStore>` and never names a back end.
#[async_trait]
pub trait BlobStore: Send + Sync + Debug {
    /// Streams `stream` into the store while hashing it.
    ///
    /// - More than `max_bytes` bytes: [`BlobError::TooLarge`]; the stream is
    ///   not polled again and nothing is kept.
    /// - The stream yields an error: [`BlobError::Upload`]; nothing is kept.
    /// - Success: the blob is visible under its SHA-256. If a blob with that
    ///   hash already exists it is kept as it is (idempotent).
    async fn put_stream(
        &self,
        stream: ByteStream<'_>,
        max_bytes: u64,
    ) -> Result<PutBlob, BlobError>;

    /// Opens a blob. [`BlobError::NotFound`] if it does not exist.
    async fn get(&self, sha256: &str) -> Result<Blob, BlobError>;

    /// Whether a blob exists.
    async fn exists(&self, sha256: &str) -> Result<bool, BlobError>;

    /// Deletes a blob. Deleting a missing blob succeeds (garbage collection
    /// may race with itself).
    async fn delete(&self, sha256: &str) -> Result<(), BlobError>;
}
