//! Dev-only helpers: a real server on `127.0.0.1:0` ([`TestApp`]), a browser
//! with a cookie jar ([`Browser`]), fresh PostgreSQL databases and Redis
//! prefixes, and a TCP proxy that can cut a backend off ([`TcpProxy`]).

mod app;
mod browser;
mod proxy;
mod s3;
mod services;

pub use app::{TestApp, TestAppBuilder, TestDb, TestStorage};
pub use browser::{Browser, TEST_PASSWORD};
pub use proxy::TcpProxy;
pub use s3::{S3_BUCKET, s3_config, start_s3_server};
pub use services::{PgDatabase, RedisPrefix, fresh_pg_database, pg_url, redis_url};

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or panics after `timeout` with the
/// last value seen. Tests never sleep to wait.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("condition not met within {timeout:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}
