//! PostgreSQL and Redis for the `pg::` / `redis::` suites. They never skip:
//! if a service is down the test fails and names the command that starts it.

use sqlx::{Connection, Executor};
use uuid::Uuid;

pub fn pg_url() -> String {
    std::env::var("ALUMIA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("ALUMIA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

const PG_DOWN: &str = "PostgreSQL is not reachable at ALUMIA_TEST_PG_URL (default 127.0.0.1:5432); \
    start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

/// A database created for one test and dropped by [`PgDatabase::drop_db`].
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

fn url_for(base: &str, db: &str) -> String {
    let (head, tail) = base.rsplit_once('/').expect("a database URL with a path");
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{head}/{db}{query}")
}

/// `CREATE DATABASE alumia_t_<uuid>`; migrations run when a store connects.
pub async fn fresh_pg_database() -> PgDatabase {
    let mut admin = sqlx::PgConnection::connect(&pg_url()).await.expect(PG_DOWN);
    let name = format!("alumia_t_{}", Uuid::now_v7().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .await
        .expect("CREATE DATABASE");
    let _ = admin.close().await;
    PgDatabase {
        url: url_for(&pg_url(), &name),
        name,
    }
}

impl PgDatabase {
    pub async fn drop_db(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&pg_url()).await {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                    self.name
                )))
                .await;
            let _ = admin.close().await;
        }
    }
}

/// A Redis key prefix for one test; [`RedisPrefix::cleanup`] unlinks its keys.
pub struct RedisPrefix {
    pub prefix: String,
}

impl RedisPrefix {
    pub async fn new() -> RedisPrefix {
        let client = redis::Client::open(redis_url()).expect("Redis URL");
        let mut conn = client.get_multiplexed_async_connection().await.expect(
            "Redis is not reachable at ALUMIA_TEST_REDIS_URL (default 127.0.0.1:6379); start it with: \
             redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no",
        );
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .expect("Redis PING");
        RedisPrefix {
            prefix: format!("alumia:t:{}:", Uuid::now_v7().simple()),
        }
    }

    /// `SCAN MATCH <prefix>*` + `UNLINK`; never FLUSHDB on a shared server.
    pub async fn cleanup(&self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
            else {
                return;
            };
            if !keys.is_empty() {
                let _: Result<i64, _> =
                    redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await;
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}
