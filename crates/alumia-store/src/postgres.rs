//! Scale-out: PostgreSQL 14+, shared by every replica.

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::ConnectOptions;
use crate::sql_block::impl_block_store;
use crate::sql_chat::impl_chat_store;
use crate::sql_device::impl_device_store;
use crate::sql_file::impl_file_store;
use crate::sql_portability::impl_portability_store;
use crate::sql_project::impl_project_store;
use crate::sql_share::impl_share_store;
use crate::sql_store::{EngineDb, impl_sql_store};
use crate::write_lane::{BoxFuture, Finish, Priority};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl EngineDb for PgStore {
    type Db = sqlx::Postgres;
    const KIND: &'static str = "postgres";
    const SETUP_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(74200001)");
}

impl PgStore {
    /// Connects and migrates; sqlx takes an advisory lock so concurrent
    /// replicas migrate one at a time.
    pub async fn connect(
        url: &str,
        options: &ConnectOptions,
    ) -> Result<Self, alumia_core::StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await
            .map_err(crate::errors::err)?;
        if options.migrate {
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| alumia_core::StoreError::Other(format!("migration failed: {e}")))?;
        }
        Ok(PgStore { pool })
    }

    async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, alumia_core::StoreError> {
        self.pool.begin().await.map_err(crate::errors::err)
    }
}

impl PgStore {
    /// A hot write: its own transaction (PostgreSQL has many writers, so
    /// nothing to group; the signature matches `SqliteStore::write`).
    async fn write<R, F>(&self, _priority: Priority, job: F) -> alumia_core::store::StoreResult<R>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut sqlx::PgConnection,
            ) -> BoxFuture<'c, alumia_core::store::StoreResult<Finish<R>>>
            + Send
            + 'static,
    {
        let mut tx = self.begin_write().await?;
        match job(&mut tx).await? {
            Finish::Commit(r) => {
                tx.commit().await.map_err(crate::errors::err)?;
                Ok(r)
            }
            // Dropping the transaction rolls it back.
            Finish::Rollback(r) => Ok(r),
        }
    }

    async fn close_pools(&self) {
        self.pool.close().await;
    }
}

impl_sql_store!(PgStore);
impl_chat_store!(PgStore);
impl_device_store!(PgStore);
impl_project_store!(PgStore);
impl_portability_store!(PgStore);
impl_share_store!(PgStore);
impl_block_store!(PgStore);
impl_file_store!(PgStore);
