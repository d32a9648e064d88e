//! A real S3-protocol server on loopback (s3s over s3s-fs, a folder), so
//! the S3 blob store is tested over HTTP with SigV4 like against a bucket.

use std::net::SocketAddr;
use std::path::Path;

use alumia_blobs::S3Config;

pub const S3_BUCKET: &str = "alumia-test";
const ACCESS_KEY: &str = "AKIDTEST";
const SECRET_KEY: &str = "test-secret-key";

/// Starts the server on 127.0.0.1:0 over `root` (one bucket, SigV4 auth).
/// It lives as long as the test runtime.
pub async fn start_s3_server(root: &Path) -> SocketAddr {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use s3s::auth::SimpleAuth;
    use s3s::service::S3ServiceBuilder;

    std::fs::create_dir_all(root.join(S3_BUCKET)).expect("bucket folder");
    let mut builder =
        S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).expect("s3s-fs over the folder"));
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the S3 server");
    let addr = listener.local_addr().expect("local addr");
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

/// Settings for the store against [`start_s3_server`].
pub fn s3_config(addr: SocketAddr, prefix: &str) -> S3Config {
    S3Config {
        bucket: S3_BUCKET.into(),
        endpoint: Some(format!("http://{addr}")),
        region: "us-east-1".into(),
        prefix: prefix.into(),
        path_style: true,
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        session_token: None,
    }
}
