//! One contract, every back end: the same cases run against the folder store
//! and the S3 store, the latter speaking real S3 (HTTP, SigV4, multipart) to
//! an s3s server over a temporary folder on 127.0.0.1.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alumia_blobs::{
    BlobBackend, BlobError, BlobStore, ByteStream, FsBlobStore, S3BlobStore, S3Config,
};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};

/// Everything the back end holds that a blob or a leftover could be: the
/// folder's files, or the bucket's keys plus pending multipart parts.
type Leftovers<'a> =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<String>> + Send + 'a>> + Send + Sync + 'a>;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `bytes` split into uneven chunks (1 byte, 7 KiB, 64 KiB, …).
fn chunked(bytes: &[u8]) -> Vec<Bytes> {
    let sizes = [1, 7 * KIB, 64 * KIB, 3, 200 * KIB];
    let mut chunks = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        chunks.push(Bytes::copy_from_slice(&rest[..n]));
        rest = &rest[n..];
        i += 1;
    }
    chunks
}

fn ok_stream(chunks: Vec<Bytes>) -> ByteStream<'static> {
    stream::iter(chunks.into_iter().map(Ok)).boxed()
}

async fn read_all(store: &dyn BlobStore, sha: &str) -> (u64, Vec<u8>) {
    let blob = store.get(sha).await.expect("get");
    let chunks: Vec<Bytes> = blob.stream.try_collect().await.expect("read blob stream");
    (blob.size, chunks.concat())
}

async fn assert_empty(leftovers: &Leftovers<'_>, case: &str) {
    let left = leftovers().await;
    assert!(left.is_empty(), "{case}: left behind {left:?}");
}

/// Runs every case against `store`. `big` is a size that takes the store's
/// longest path (multipart for the S3 store set up for it).
async fn contract(store: &dyn BlobStore, leftovers: Leftovers<'_>, big: usize) {
    assert_empty(&leftovers, "fresh store").await;

    // Round trips, multi-chunk, from empty to `big`.
    for (len, seed) in [(0, 1), (1, 2), (100 * KIB + 17, 3), (big, 4)] {
        let bytes = data(len, seed);
        let put = store
            .put_stream(ok_stream(chunked(&bytes)), big as u64)
            .await
            .expect("put");
        assert_eq!(put.sha256, sha_hex(&bytes), "len {len}");
        assert_eq!(put.size, len as u64);
        assert!(store.exists(&put.sha256).await.unwrap());
        let (size, read) = read_all(store, &put.sha256).await;
        assert_eq!(size, len as u64);
        assert!(read == bytes, "len {len}: bytes read back differ");
        store.delete(&put.sha256).await.unwrap();
    }
    assert_empty(&leftovers, "after round trips").await;

    // Exactly `max_bytes` is allowed.
    let bytes = data(1000, 5);
    let put = store
        .put_stream(ok_stream(chunked(&bytes)), 1000)
        .await
        .expect("put at the limit");
    store.delete(&put.sha256).await.unwrap();

    // Same content twice: one blob, under its hash, unchanged.
    let bytes = data(150 * KIB, 6);
    let first = store
        .put_stream(ok_stream(chunked(&bytes)), big as u64)
        .await
        .unwrap();
    let second = store
        .put_stream(ok_stream(vec![Bytes::from(bytes.clone())]), big as u64)
        .await
        .unwrap();
    assert_eq!(first, second);
    let left = leftovers().await;
    assert_eq!(
        left.len(),
        1,
        "one blob for the same content twice: {left:?}"
    );
    assert!(
        left[0].ends_with(&first.sha256),
        "stored under its content address: {left:?}"
    );
    assert!(read_all(store, &first.sha256).await.1 == bytes);

    // Delete, then missing; deleting again is fine.
    store.delete(&first.sha256).await.unwrap();
    assert!(!store.exists(&first.sha256).await.unwrap());
    assert!(matches!(
        store.get(&first.sha256).await,
        Err(BlobError::NotFound)
    ));
    store.delete(&first.sha256).await.unwrap();
    assert_empty(&leftovers, "after delete").await;

    // Too large: refused, the stream is not read past the limit, nothing kept.
    let chunk = 64 * KIB;
    let max = big as u64;
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let endless = stream::iter(0..usize::MAX)
        .map(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Bytes::from(vec![i as u8; chunk]))
        })
        .boxed();
    let err = store.put_stream(endless, max).await.unwrap_err();
    assert!(
        matches!(err, BlobError::TooLarge { max_bytes } if max_bytes == max),
        "{err:?}"
    );
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        big / chunk + 1,
        "stops at the first chunk past the limit"
    );
    assert_empty(&leftovers, "after TooLarge").await;

    // A stream that fails midway (after most of `big`): nothing kept.
    let bytes = data(big, 7);
    let mut chunks: Vec<Result<Bytes, std::io::Error>> =
        chunked(&bytes).into_iter().map(Ok).collect();
    chunks.push(Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "client went away",
    )));
    chunks.push(Ok(Bytes::from_static(b"never read")));
    let err = store
        .put_stream(stream::iter(chunks).boxed(), 2 * big as u64)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Upload(_)), "{err:?}");
    assert!(!store.exists(&sha_hex(&bytes)).await.unwrap());
    assert_empty(&leftovers, "after a failed stream").await;

    // An upload whose future is dropped mid-stream (the request was cut off
    // while waiting for more bytes): nothing kept once cleanup has run.
    // The future is dropped once every byte has been read and the store waits
    // for more, so the multipart upload (if any) has surely started.
    let (all_read, waiting) = tokio::sync::oneshot::channel::<()>();
    let head = stream::iter(chunked(&data(big, 8)).into_iter().map(Ok));
    let signal = stream::once(async move {
        let _ = all_read.send(());
    })
    .filter_map(|()| async { None });
    let stalled = head.chain(signal).chain(stream::pending()).boxed();
    tokio::select! {
        result = store.put_stream(stalled, 2 * big as u64) => panic!("a stalled upload finished: {result:?}"),
        _ = waiting => {}
    }
    let mut left = leftovers().await;
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = leftovers().await;
    }
    assert!(
        left.is_empty(),
        "after a dropped upload: left behind {left:?}"
    );

    // Bad hashes are refused before any path or key is built.
    let good = sha_hex(b"x");
    for bad in [
        "../../../../etc/passwd".to_string(),
        good.to_uppercase(),
        good[..63].to_string(),
        format!("{}/{}", &good[..32], &good[33..]),
        format!("tmp/{}", &good[4..]),
        String::new(),
    ] {
        assert!(
            matches!(store.get(&bad).await, Err(BlobError::InvalidHash)),
            "get {bad:?}"
        );
        assert!(
            matches!(store.exists(&bad).await, Err(BlobError::InvalidHash)),
            "exists {bad:?}"
        );
        assert!(
            matches!(store.delete(&bad).await, Err(BlobError::InvalidHash)),
            "delete {bad:?}"
        );
    }

    // A valid hash nobody stored.
    assert!(matches!(store.get(&good).await, Err(BlobError::NotFound)));
    assert!(!store.exists(&good).await.unwrap());
}

/// Every file under `root`, relative.
fn walk(root: &Path) -> Vec<String> {
    fn go(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                go(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn fs_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    let store = BlobBackend::Local { root: root.clone() }
        .open()
        .await
        .unwrap();
    let store = &*store;
    let walk_root = root.clone();
    let leftovers: Leftovers<'_> = Box::new(move || {
        let root = walk_root.clone();
        Box::pin(async move { walk(&root) })
    });
    contract(store, leftovers, 3 * MIB + 5).await;

    // Layout: `<root>/ab/cd/<sha256>`.
    let bytes = b"layout";
    let put = store
        .put_stream(ok_stream(vec![Bytes::from_static(bytes)]), 100)
        .await
        .unwrap();
    let s = &put.sha256;
    assert_eq!(walk(&root), vec![format!("{}/{}/{s}", &s[..2], &s[2..4])]);
}

#[tokio::test]
async fn fs_store_sweeps_only_old_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    std::fs::write(dir.path().join("tmp/crashed.part"), b"partial").unwrap();
    assert_eq!(
        store.sweep_temp(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(store.sweep_temp(Duration::ZERO).await.unwrap(), 1);
    assert!(walk(dir.path()).is_empty());
}

const BUCKET: &str = "alumia-test";
const ACCESS_KEY: &str = "AKIDTEST";
const SECRET_KEY: &str = "test-secret-key";

/// Starts an S3 server (s3s over s3s-fs) on 127.0.0.1:0 serving `root`, with
/// one bucket and SigV4 authentication. It lives as long as the test runtime.
async fn start_s3_server(root: &Path) -> std::net::SocketAddr {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use s3s::auth::SimpleAuth;
    use s3s::service::S3ServiceBuilder;

    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let mut builder = S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    addr
}

fn s3_config(addr: std::net::SocketAddr, prefix: &str) -> S3Config {
    S3Config {
        bucket: BUCKET.into(),
        endpoint: Some(format!("http://{addr}")),
        region: "us-east-1".into(),
        prefix: prefix.into(),
        path_style: true,
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        session_token: None,
    }
}

/// The bucket's keys as the S3 API lists them (through a second client with
/// no prefix), plus multipart uploads the server still holds parts for.
fn s3_leftovers<'a>(lister: &'a S3BlobStore, server_root: &'a Path) -> Leftovers<'a> {
    let root: PathBuf = server_root.to_path_buf();
    Box::new(move || {
        let root = root.clone();
        Box::pin(async move {
            let mut left = lister.list_keys().await.unwrap();
            left.extend(walk(&root).into_iter().filter(|f| f.starts_with(".upload")));
            left
        })
    })
}

#[tokio::test]
async fn s3_store_meets_the_contract_with_single_puts() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_s3_server(dir.path()).await;
    let store = BlobBackend::S3(s3_config(addr, "/alumia/files/"))
        .open()
        .await
        .unwrap();
    let store = &*store;
    let lister = S3BlobStore::new(s3_config(addr, "")).unwrap();
    contract(store, s3_leftovers(&lister, dir.path()), 3 * MIB + 5).await;

    // Keys: `<prefix>/<sha256>`; a store with another prefix doesn't see it.
    let put = store
        .put_stream(ok_stream(vec![Bytes::from_static(b"layout")]), 100)
        .await
        .unwrap();
    assert_eq!(
        lister.list_keys().await.unwrap(),
        vec![format!("alumia/files/{}", put.sha256)]
    );
    let other = S3BlobStore::new(s3_config(addr, "elsewhere")).unwrap();
    assert!(!other.exists(&put.sha256).await.unwrap());
}

#[tokio::test]
async fn s3_store_meets_the_contract_with_multipart_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_s3_server(dir.path()).await;
    // Anything past 64 KiB goes through a multipart upload with 5 MiB parts
    // (the S3 minimum, which the server enforces); `big` spans three parts.
    let store = S3BlobStore::new(s3_config(addr, "mp"))
        .unwrap()
        .with_part_sizes(64 * KIB, 5 * MIB);
    let lister = S3BlobStore::new(s3_config(addr, "")).unwrap();
    contract(&store, s3_leftovers(&lister, dir.path()), 11 * MIB + 3).await;
}

#[tokio::test]
async fn s3_store_reports_a_wrong_secret_as_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_s3_server(dir.path()).await;
    let mut config = s3_config(addr, "");
    config.secret_access_key = Some("wrong".into());
    let store = S3BlobStore::new(config.clone()).unwrap();
    let err = store
        .put_stream(ok_stream(vec![Bytes::from_static(b"x")]), 10)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Backend(_)), "{err:?}");
    assert!(
        !format!("{config:?}").contains("wrong"),
        "Debug hides the secret"
    );
}

#[tokio::test]
async fn s3_store_sweeps_only_old_temporaries() {
    use object_store::{ObjectStoreExt, aws::AmazonS3Builder, path::Path as Key};

    let dir = tempfile::tempdir().unwrap();
    let addr = start_s3_server(dir.path()).await;
    let store = S3BlobStore::new(s3_config(addr, "p")).unwrap();
    // What a crash between completing and deleting a temporary leaves.
    let raw = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(format!("http://{addr}"))
        .with_allow_http(true)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .unwrap();
    raw.put(&Key::from("p/tmp/crashed"), "partial".into())
        .await
        .unwrap();
    let kept = store
        .put_stream(ok_stream(vec![Bytes::from_static(b"kept")]), 10)
        .await
        .unwrap();
    assert_eq!(
        store.sweep_temp(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(store.sweep_temp(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(
        store.list_keys().await.unwrap(),
        vec![format!("p/{}", kept.sha256)]
    );
}
