//! The store contract (`alumia_core::testing`) on both engines.
//!
//! - `sqlite::*`: a fresh temp-file database per test; needs nothing.
//! - `pg::*`: a fresh database per test on `ALUMIA_TEST_PG_URL`
//!   (default `postgres://postgres@127.0.0.1:5432/test`); fails, never skips,
//!   when PostgreSQL is down. Leave it out with `cargo test -- --skip pg::`.

use alumia_store::{DbKind, migration_names};

#[test]
fn both_engines_have_the_same_migration_names() {
    let sqlite = migration_names(DbKind::Sqlite);
    let postgres = migration_names(DbKind::Postgres);
    assert!(!sqlite.is_empty(), "no SQLite migrations found");
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres must hold the same files: add the missing one to the other folder"
    );
}

mod sqlite {
    use alumia_core::testing::ContractTest;
    use alumia_store::{ConnectOptions, SqliteStore};

    /// A fresh SQLite file in a temp folder, removed when the test ends.
    async fn with_store(test: ContractTest) {
        let dir = tempfile::tempdir().expect("create a temp folder for the SQLite file");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqliteStore::connect(&url, &ConnectOptions::default())
            .await
            .unwrap_or_else(|e| panic!("open and migrate {url}: {e}"));
        test(&store).await;
        alumia_core::Store::close(&store).await;
    }

    alumia_core::store_contract_tests!(with_store);
}

mod pg {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use alumia_core::Store;
    use alumia_core::testing::ContractTest;
    use alumia_store::{ConnectOptions, PgStore};
    use sqlx::postgres::{PgPool, PgPoolOptions};
    use uuid::Uuid;

    const START: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
    const PREFIX: &str = "alumia_t_";
    /// Databases a crashed run left behind are dropped after this long.
    const STALE_AFTER: Duration = Duration::from_secs(3600);

    static SWEPT: AtomicBool = AtomicBool::new(false);

    fn pg_url() -> String {
        std::env::var("ALUMIA_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
    }

    /// The admin URL with its database replaced by `name` (query kept).
    fn url_for(admin: &str, name: &str) -> String {
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (admin, None),
        };
        let host_start = base.find("://").map_or(0, |i| i + 3);
        let server = match base[host_start..].find('/') {
            Some(slash) => &base[..host_start + slash],
            None => base,
        };
        match query {
            Some(q) => format!("{server}/{name}?{q}"),
            None => format!("{server}/{name}"),
        }
    }

    async fn admin_pool() -> PgPool {
        let url = pg_url();
        let shown =
            alumia_store::DbUrl::parse(&url).map_or_else(|_| url.clone(), |u| u.to_string());
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at ALUMIA_TEST_PG_URL ({shown}): {e}\n\
                     start it with: {START}\n\
                     or leave these tests out with: cargo test -- --skip pg::"
                )
            })
    }

    /// Drops `alumia_t_*` databases whose v7 timestamp is over an hour old:
    /// what crashed runs left behind. Once per test binary; failures only warn.
    async fn sweep_stale(admin: &PgPool) {
        if SWEPT.swap(true, Ordering::SeqCst) {
            return;
        }
        let names: Vec<(String,)> = match sqlx::query_as(
            "SELECT datname::TEXT FROM pg_database WHERE starts_with(datname, $1)",
        )
        .bind(PREFIX)
        .fetch_all(admin)
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("warning: cannot list leftover test databases: {e}");
                return;
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        for (name,) in names {
            // Only names we made: the prefix and a v7 uuid, so safe to quote.
            let Some(ts) = name
                .strip_prefix(PREFIX)
                .and_then(|id| Uuid::try_parse(id).ok())
                .and_then(|id| id.get_timestamp())
            else {
                continue;
            };
            let (secs, _) = ts.to_unix();
            if now.saturating_sub(secs) > STALE_AFTER.as_secs() {
                let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(admin).await {
                    eprintln!("warning: cannot drop leftover test database {name}: {e}");
                }
            }
        }
    }

    /// A fresh database, migrated by `PgStore::connect`, dropped afterwards
    /// even when the test panics.
    async fn with_store(test: ContractTest) {
        let admin = admin_pool().await;
        sweep_stale(&admin).await;
        let name = format!("{PREFIX}{}", Uuid::now_v7().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));

        let options = ConnectOptions {
            max_connections: 4,
            ..ConnectOptions::default()
        };
        let outcome = match PgStore::connect(&url_for(&pg_url(), &name), &options).await {
            Ok(store) => {
                let store = Arc::new(store);
                let run = Arc::clone(&store);
                let outcome = tokio::spawn(async move { test(&*run).await }).await;
                store.close().await;
                outcome.map_err(|e| {
                    if e.is_panic() {
                        e.into_panic()
                    } else {
                        Box::new(format!("contract test task failed: {e}"))
                    }
                })
            }
            Err(e) => Err(Box::new(format!("connect and migrate {name}: {e}"))
                as Box<dyn std::any::Any + Send>),
        };

        let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await {
            eprintln!("warning: cannot drop test database {name}: {e}");
        }
        admin.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    #[test]
    fn url_for_replaces_only_the_database() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/db",
            ),
            (
                "postgres://u:p@h/test?sslmode=disable",
                "postgres://u:p@h/db?sslmode=disable",
            ),
            ("postgresql://h:5432", "postgresql://h:5432/db"),
            (
                "postgres://h?application_name=x",
                "postgres://h/db?application_name=x",
            ),
        ];
        for (admin, want) in cases {
            assert_eq!(url_for(admin, "db"), want, "url_for({admin:?})");
        }
    }

    alumia_core::store_contract_tests!(with_store);
}
