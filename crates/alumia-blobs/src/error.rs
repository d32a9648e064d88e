/// Errors of a [`BlobStore`](crate::BlobStore).
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The upload ran past its limit (HTTP 413 / 422 upstream).
    #[error("blob exceeds the limit of {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    /// Not 64 lowercase hex digits: refused before any path or key is built.
    #[error("invalid blob hash")]
    InvalidHash,
    #[error("blob not found")]
    NotFound,
    /// The incoming stream failed (client disconnect, body error).
    #[error("upload stream failed")]
    Upload(#[source] std::io::Error),
    /// The local folder failed.
    #[error("blob storage I/O error")]
    Io(#[from] std::io::Error),
    /// The object store failed.
    #[error("object storage error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}
