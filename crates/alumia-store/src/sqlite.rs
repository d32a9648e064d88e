//! The embedded default: one SQLite file in WAL mode.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::ConnectOptions;
use crate::sql_block::impl_block_store;
use crate::sql_chat::impl_chat_store;
use crate::sql_device::impl_device_store;
use crate::sql_file::impl_file_store;
use crate::sql_portability::impl_portability_store;
use crate::sql_project::impl_project_store;
use crate::sql_share::impl_share_store;
use crate::sql_store::{EngineDb, impl_sql_store};
use crate::write_lane::{BoxFuture, Finish, Priority, WriteLane};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// `synchronous` for the SQLite file: FULL fsyncs every commit (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for write transactions: writers queue here, in
    /// order, instead of sleeping in SQLite's busy handler while they hold
    /// pooled connections (which made tail latency grow with concurrency).
    writer: SqlitePool,
    /// Turn claims, progress and ends: grouped into shared transactions on
    /// the writer, off the request runtime (see `write_lane`).
    lane: WriteLane,
}

impl EngineDb for SqliteStore {
    type Db = sqlx::Sqlite;
    const KIND: &'static str = "sqlite";
    const SETUP_LOCK: Option<&'static str> = None;
}

impl SqliteStore {
    /// Opens (creating the file and its folder if missing) and migrates.
    pub async fn connect(
        url: &str,
        options: &ConnectOptions,
    ) -> Result<Self, alumia_core::StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(crate::errors::err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.sqlite_synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(parent) = std::path::Path::new(connect.get_filename()).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                alumia_core::StoreError::Unavailable(format!(
                    "cannot create {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(crate::errors::err)?;
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            // Queued writers wait their turn; a write is a few milliseconds.
            .acquire_timeout(options.acquire_timeout.max(Duration::from_secs(10)))
            .connect_with(connect)
            .await
            .map_err(crate::errors::err)?;
        if options.migrate {
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| alumia_core::StoreError::Other(format!("migration failed: {e}")))?;
        }
        let lane = WriteLane::start(writer.clone()).map_err(|e| {
            alumia_core::StoreError::Other(format!("cannot start the write lane: {e}"))
        })?;
        Ok(SqliteStore { pool, writer, lane })
    }

    /// Writes start with `BEGIN IMMEDIATE`, so a transaction never upgrades
    /// from reader to writer and fails with SQLITE_BUSY halfway.
    async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, alumia_core::StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(crate::errors::err)
    }
}

impl SqliteStore {
    /// A hot write, batched with others by the lane.
    async fn write<R, F>(&self, priority: Priority, job: F) -> alumia_core::store::StoreResult<R>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut sqlx::SqliteConnection,
            ) -> BoxFuture<'c, alumia_core::store::StoreResult<Finish<R>>>
            + Send
            + 'static,
    {
        self.lane.run(priority, job).await
    }

    async fn close_pools(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

impl_sql_store!(SqliteStore);
impl_chat_store!(SqliteStore);
impl_device_store!(SqliteStore);
impl_project_store!(SqliteStore);
impl_portability_store!(SqliteStore);
impl_share_store!(SqliteStore);
impl_block_store!(SqliteStore);
impl_file_store!(SqliteStore);
