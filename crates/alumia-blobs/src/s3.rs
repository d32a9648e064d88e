//! The S3 back end, for any S3-compatible object store (AWS, MinIO, Garage,
//! Ceph, R2, …), over `object_store`.
//!
//! Keys: blobs at `<prefix>/<sha256>`, temporaries at `<prefix>/tmp/<uuid>`.
//!
//! How an upload becomes visible only once complete and hashed:
//! - The first `single_put_max` bytes are buffered in memory. A stream that
//!   ends within that (most files) is hashed before anything is sent, and is
//!   written with one `PutObject` straight to its final key, so a cut-off
//!   upload never reached the bucket at all.
//! - A longer stream goes to a multipart upload at a temporary key. Parts of
//!   an incomplete multipart upload are invisible to readers and listings; on
//!   error, `TooLarge` or a dropped future the upload is aborted. Once the
//!   stream ends and the hash is known the upload is completed, copied
//!   server-side to the final key (`CopyObject`, up to 5 GB in one call) and
//!   the temporary deleted. A crash between complete and delete can leave a
//!   `tmp/` object: give the bucket a lifecycle rule expiring `<prefix>/tmp/`
//!   and aborting incomplete multipart uploads after a day.
//!
//! Memory per upload is bounded by `single_put_max` plus `part_size` times the
//! number of parts in flight.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::hash::{Hashing, validate_sha256};
use crate::{Blob, BlobError, BlobStore, ByteStream, PutBlob};

/// S3 settings (the `[storage] s3 = { … }` table of spec 11 §2, with the
/// secrets already resolved from their `*_env` variables by the config module).
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// `None`: AWS's endpoint for `region`. Otherwise e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: String,
    /// Key prefix inside the bucket, e.g. `alumia/files`; empty for the root.
    pub prefix: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    /// Most self-hosted S3 servers need it.
    pub path_style: bool,
    /// `None` for both: object_store's own credential chain (instance
    /// metadata, web identity).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Default for [`S3BlobStore::with_part_sizes`]: 8 MiB (S3's minimum part is 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Multipart parts uploaded concurrently per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// Blobs in an S3-compatible bucket.
#[derive(Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    prefix: Path,
    single_put_max: usize,
    part_size: usize,
}

impl fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .field("single_put_max", &self.single_put_max)
            .field("part_size", &self.part_size)
            .finish()
    }
}

fn backend(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        e => BlobError::Backend(Box::new(e)),
    }
}

impl S3BlobStore {
    /// Builds the client; no request is made (use [`BlobStore::exists`] on
    /// any hash as a start-up probe).
    pub fn new(config: S3Config) -> Result<Self, BlobError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(!config.path_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let store = builder.build().map_err(backend)?;
        let prefix = Path::parse(config.prefix.trim_matches('/'))
            .map_err(|e| BlobError::Backend(Box::new(e)))?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            single_put_max: DEFAULT_PART_SIZE,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Overrides the buffered single-PUT limit and the multipart part size
    /// (tests use small values to exercise the multipart path; AWS needs
    /// `part_size` ≥ 5 MiB).
    pub fn with_part_sizes(mut self, single_put_max: usize, part_size: usize) -> Self {
        self.single_put_max = single_put_max;
        self.part_size = part_size.max(1);
        self
    }

    /// Every key under the prefix, blobs and temporaries (for garbage
    /// collection and checks; a bucket holds few enough blobs per listing).
    pub async fn list_keys(&self) -> Result<Vec<String>, BlobError> {
        let prefix = (!self.prefix.is_root()).then_some(&self.prefix);
        let mut keys: Vec<String> = self
            .store
            .list(prefix)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(backend)?;
        keys.sort();
        Ok(keys)
    }

    /// Deletes `<prefix>/tmp/` objects older than `older_than`: what a crash
    /// between completing and deleting a temporary leaves. Returns how many.
    pub async fn sweep_temp(&self, older_than: std::time::Duration) -> Result<usize, BlobError> {
        let cutoff = std::time::SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(std::time::UNIX_EPOCH);
        let tmp = self.prefix.clone().join("tmp");
        let old: Vec<Path> = self
            .store
            .list(Some(&tmp))
            .try_filter(|meta| {
                futures::future::ready(std::time::SystemTime::from(meta.last_modified) < cutoff)
            })
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(backend)?;
        for key in &old {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(old.len())
    }

    fn blob_key(&self, sha256: &str) -> Result<Path, BlobError> {
        let sha256 = validate_sha256(sha256)?;
        Ok(self.prefix.clone().join(sha256))
    }

    fn temp_key(&self) -> Path {
        self.prefix
            .clone()
            .join("tmp")
            .join(uuid::Uuid::now_v7().to_string().as_str())
    }

    async fn head_exists(&self, key: &Path) -> Result<bool, BlobError> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    /// Streams the rest of `stream` into a multipart upload at a temporary
    /// key, then completes it and moves it to its content address.
    async fn put_multipart(
        &self,
        buffered: Vec<Bytes>,
        mut stream: ByteStream<'_>,
        mut hashing: Hashing,
    ) -> Result<PutBlob, BlobError> {
        let temp = self.temp_key();
        let upload = self.store.put_multipart(&temp).await.map_err(backend)?;
        let mut guard = AbortOnDrop(Some(WriteMultipart::new_with_chunk_size(
            upload,
            self.part_size,
        )));
        let writer = guard.0.as_mut().expect("writer present");
        for chunk in buffered {
            writer.put(chunk);
        }
        let streamed: Result<(), BlobError> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(BlobError::Upload)?;
                hashing.update(&chunk)?;
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(backend)?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        let writer = guard.0.take().expect("writer present");
        if let Err(e) = streamed {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(key = %temp, error = %abort, "could not abort multipart blob upload");
            }
            return Err(e);
        }
        // `finish` aborts the upload itself when a part or the completion fails.
        writer.finish().await.map_err(backend)?;

        let blob = hashing.finish();
        let dest = self.blob_key(&blob.sha256)?;
        let moved = async {
            if !self.head_exists(&dest).await? {
                // Plain copy, not copy-if-not-exists (which needs conditional
                // writes not every S3 server has): a concurrent upload of the
                // same hash writes the same bytes.
                self.store.copy(&temp, &dest).await.map_err(backend)?;
            }
            Ok::<_, BlobError>(())
        }
        .await;
        if let Err(e) = self.store.delete(&temp).await {
            tracing::warn!(key = %temp, error = %e, "could not delete temporary blob object");
        }
        moved.map(|()| blob)
    }
}

/// Aborts a multipart upload whose future was dropped mid-stream (the client
/// went away): the abort runs as a detached task.
struct AbortOnDrop(Option<WriteMultipart>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = writer.abort().await {
                    tracing::warn!(error = %e, "could not abort dropped multipart blob upload");
                }
            });
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_stream(
        &self,
        mut stream: ByteStream<'_>,
        max_bytes: u64,
    ) -> Result<PutBlob, BlobError> {
        let mut hashing = Hashing::new(max_bytes);
        let mut buffered = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BlobError::Upload)?;
            hashing.update(&chunk)?;
            buffered.push(chunk);
            if hashing.size() > self.single_put_max as u64 {
                return self.put_multipart(buffered, stream, hashing).await;
            }
        }
        let blob = hashing.finish();
        let dest = self.blob_key(&blob.sha256)?;
        if !self.head_exists(&dest).await? {
            self.store
                .put(&dest, PutPayload::from_iter(buffered))
                .await
                .map_err(backend)?;
        }
        Ok(blob)
    }

    async fn get(&self, sha256: &str) -> Result<Blob, BlobError> {
        let key = self.blob_key(sha256)?;
        let result = self.store.get(&key).await.map_err(backend)?;
        let size = result.meta.size;
        let stream = result.into_stream().map_err(backend).boxed();
        Ok(Blob { size, stream })
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        let key = self.blob_key(sha256)?;
        self.head_exists(&key).await
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        let key = self.blob_key(sha256)?;
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
