//! The folder back end: `<root>/ab/cd/<sha256>`, temporaries in `<root>/tmp`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use tokio::fs::{self, File};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use crate::hash::{Hashing, validate_sha256};
use crate::{Blob, BlobError, BlobStore, ByteStream, PutBlob};

/// Blobs in a local folder (the default, `<data-dir>/files`), or in one volume
/// shared by every replica.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) the store at `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).await?;
        Ok(Self { root, tmp })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes temporaries older than `older_than`: what a crash (not an
    /// error, not a dropped upload: those clean up) leaves behind. Age-based
    /// so replicas sharing the volume don't remove each other's live uploads.
    /// Returns how many were removed.
    pub async fn sweep_temp(&self, older_than: Duration) -> Result<usize, BlobError> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = 0;
        let mut dir = fs::read_dir(&self.tmp).await?;
        while let Some(entry) = dir.next_entry().await? {
            let meta = entry.metadata().await?;
            if meta.is_file() && meta.modified()? < cutoff {
                match fs::remove_file(entry.path()).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(removed)
    }

    fn blob_path(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        let sha256 = validate_sha256(sha256)?;
        Ok(self
            .root
            .join(&sha256[0..2])
            .join(&sha256[2..4])
            .join(sha256))
    }
}

/// Deletes the temporary file unless disarmed: on error, on `TooLarge`, and
/// when the upload future is dropped mid-stream.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn path(&self) -> &Path {
        self.path.as_deref().expect("temp file path taken")
    }

    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Blocking but short (one unlink); must also run when the future
            // is dropped, where no await is possible.
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not remove temporary blob file");
            }
        }
    }
}

async fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    // fsync of the directory makes the rename itself durable.
    File::open(dir).await?.sync_all().await?;
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put_stream(
        &self,
        mut stream: ByteStream<'_>,
        max_bytes: u64,
    ) -> Result<PutBlob, BlobError> {
        let mut temp = TempFile {
            path: Some(self.tmp.join(format!("{}.part", uuid::Uuid::now_v7()))),
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp.path())
            .await?;
        let mut hashing = Hashing::new(max_bytes);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BlobError::Upload)?;
            hashing.update(&chunk)?;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);

        let blob = hashing.finish();
        let dest = self.blob_path(&blob.sha256)?;
        if fs::try_exists(&dest).await? {
            // Same hash, same bytes: keep the existing blob; `temp` drops.
            return Ok(blob);
        }
        let parent = dest.parent().expect("blob path has a parent");
        let new_dirs = !fs::try_exists(parent).await?;
        if new_dirs {
            fs::create_dir_all(parent).await?;
        }
        // Atomic: readers see the whole blob or none. A concurrent upload of
        // the same bytes may win the race; replacing it with identical bytes
        // is harmless.
        fs::rename(temp.path(), &dest).await?;
        temp.disarm();
        sync_dir(parent).await?;
        if new_dirs {
            // New `ab/` or `ab/cd/` entries must be durable too.
            let fan_out = parent.parent().expect("fan-out folder has a parent");
            sync_dir(fan_out).await?;
            sync_dir(&self.root).await?;
        }
        Ok(blob)
    }

    async fn get(&self, sha256: &str) -> Result<Blob, BlobError> {
        let path = self.blob_path(sha256)?;
        let file = match File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        let stream = ReaderStream::with_capacity(file, 64 * 1024)
            .map_err(BlobError::Io)
            .boxed();
        Ok(Blob { size, stream })
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        let path = self.blob_path(sha256)?;
        Ok(fs::try_exists(&path).await?)
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        let path = self.blob_path(sha256)?;
        match fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
