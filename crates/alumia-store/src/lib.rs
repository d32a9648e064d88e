//! sqlx stores behind `alumia_core::Store`: [`SqliteStore`] (the embedded
//! default) and [`PgStore`] (scale-out). Both run the same SQL text —
//! `$N` placeholders, integer-millisecond timestamps, UUID text ids — from
//! one macro, so the engines cannot drift; only connecting, transactions and
//! error classification differ.

mod db_url;
mod errors;
mod postgres;
mod rows;
mod sql_block;
mod sql_chat;
mod sql_device;
mod sql_file;
mod sql_portability;
mod sql_project;
mod sql_share;
mod sql_store;
mod sqlite;
mod write_lane;

use std::sync::Arc;
use std::time::Duration;

use alumia_core::{Store, StoreError};

pub use db_url::{DbKind, DbUrl};
pub use postgres::PgStore;
pub use sqlite::{SqliteStore, Synchronous};

/// How to open the database, beyond its URL.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Apply pending migrations on connect (`serve` does unless `--no-migrate`).
    pub migrate: bool,
    pub max_connections: u32,
    /// How long a request waits for a connection before it gets a 503.
    pub acquire_timeout: Duration,
    pub sqlite_synchronous: Synchronous,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            migrate: true,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            sqlite_synchronous: Synchronous::Full,
        }
    }
}

/// Opens the store the URL names.
pub async fn connect(url: &DbUrl, options: &ConnectOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url.kind() {
        DbKind::Sqlite => Arc::new(SqliteStore::connect(url.expose(), options).await?),
        DbKind::Postgres => Arc::new(PgStore::connect(url.expose(), options).await?),
    })
}

/// Applies migrations and returns the names applied, for `alumia admin migrate`.
pub async fn migrate(url: &DbUrl) -> Result<(), StoreError> {
    let options = ConnectOptions {
        migrate: true,
        max_connections: 2,
        ..ConnectOptions::default()
    };
    let store = connect(url, &options).await?;
    store.close().await;
    Ok(())
}

/// The migration file names of one engine, for the drift test.
pub fn migration_names(kind: DbKind) -> Vec<String> {
    let migrator = match kind {
        DbKind::Sqlite => &sqlite::MIGRATOR,
        DbKind::Postgres => &postgres::MIGRATOR,
    };
    migrator
        .iter()
        .map(|m| format!("{}_{}", m.version, m.description))
        .collect()
}
