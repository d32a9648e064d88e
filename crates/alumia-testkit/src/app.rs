use std::net::SocketAddr;
use std::sync::Arc;

use alumia_core::crypto::SecretKey;
use alumia_core::identity::{AuthSettings, Identity};
use alumia_core::keys::KeyEnv;
use alumia_core::limits::{Limits, RateLimiter};
use alumia_core::{Clock, ManualClock, Store};
use alumia_runtime::catalog::{Catalog, ProviderConfig};
use alumia_runtime::fanout::RedisFanout;
use alumia_runtime::{Runtime, TurnLimits};
use alumia_server::fanout::{RedisKeyBus, spawn_key_invalidation_listener};
use alumia_server::limiter::{MemoryLimiter, RedisLimiter};
use alumia_server::{AppState, ServerSettings};
use alumia_store::{ConnectOptions, DbUrl};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Which database a [`TestApp`] runs on.
#[derive(Clone, Debug)]
pub enum TestDb {
    /// A fresh SQLite file in a temporary folder (the default).
    SqliteTemp,
    /// Any URL, e.g. a fresh PostgreSQL database or a proxy in front of one.
    Url(String),
}

/// Where a [`TestApp`] keeps file bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TestStorage {
    /// A folder of its own (the default).
    #[default]
    Local,
    /// A loopback S3 server (s3s over a folder of its own).
    S3,
}

pub struct TestAppBuilder {
    storage: TestStorage,
    extra_mime_types: Vec<String>,
    db: TestDb,
    limits: Limits,
    redis: Option<(String, String)>,
    auth: AuthSettings,
    public_url: Option<String>,
    setup_token: Option<String>,
    trusted_proxies: Vec<String>,
    secret: Option<SecretKey>,
    clock: Option<Arc<ManualClock>>,
    providers: Vec<ProviderConfig>,
    default_model: Option<String>,
    turn_limits: TurnLimits,
}

/// A real server on a loopback socket, with the real store and limiter.
pub struct TestApp {
    pub addr: SocketAddr,
    pub url: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub secret: SecretKey,
    pub runtime: Arc<Runtime>,
    /// A client without cookies, for API-key calls.
    pub http: reqwest::Client,
    /// The database URL the server runs on (for fixtures the API cannot make).
    pub db_url: String,
    /// The file blob store the server uses.
    pub blobs: Arc<dyn alumia_blobs::BlobStore>,
    /// Everything the blob store writes lives under this folder (the blob
    /// folder, or the S3 server's folder), for leftover checks.
    pub blob_dir: std::path::PathBuf,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    _dir: Option<TempDirGuard>,
    _blob_dir: TempDirGuard,
}

struct TempDirGuard(std::path::PathBuf);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestAppBuilder {
    /// File types allowed besides the built-in list (`[files] extra_mime_types`).
    pub fn extra_mime_types(mut self, types: &[&str]) -> Self {
        self.extra_mime_types = types.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn storage(mut self, storage: TestStorage) -> Self {
        self.storage = storage;
        self
    }
    pub fn db(mut self, db: TestDb) -> Self {
        self.db = db;
        self
    }
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    pub fn redis(mut self, url: &str, prefix: &str) -> Self {
        self.redis = Some((url.to_string(), prefix.to_string()));
        self
    }
    pub fn auth(mut self, auth: AuthSettings) -> Self {
        self.auth = auth;
        self
    }
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_string());
        self
    }
    pub fn setup_token(mut self, token: &str) -> Self {
        self.setup_token = Some(token.to_string());
        self
    }
    pub fn trusted_proxies(mut self, cidrs: &[&str]) -> Self {
        self.trusted_proxies = cidrs.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Share the server secret between replicas.
    pub fn secret(mut self, secret: SecretKey) -> Self {
        self.secret = Some(secret);
        self
    }
    /// Share one clock between replicas.
    pub fn clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Model providers besides `dev/echo` (e.g. a loopback fake).
    pub fn providers(mut self, providers: Vec<ProviderConfig>) -> Self {
        self.providers = providers;
        self
    }
    pub fn default_model(mut self, model: &str) -> Self {
        self.default_model = Some(model.to_string());
        self
    }
    pub fn turn_limits(mut self, limits: TurnLimits) -> Self {
        self.turn_limits = limits;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let (url, dir) = match &self.db {
            TestDb::SqliteTemp => {
                let dir = std::env::temp_dir()
                    .join(format!("alumia-test-{}", uuid::Uuid::now_v7().simple()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                (
                    format!("sqlite://{}/alumia.db", dir.display()),
                    Some(TempDirGuard(dir)),
                )
            }
            TestDb::Url(url) => (url.clone(), None),
        };
        let db_url = DbUrl::parse(&url).expect("test database URL");
        let store = alumia_store::connect(&db_url, &ConnectOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot open the test database {db_url}: {e}"));
        let limiter: Arc<dyn RateLimiter> = match &self.redis {
            Some((url, prefix)) => {
                Arc::new(RedisLimiter::new(url, prefix, self.limits.clone()).expect("Redis URL"))
            }
            None => Arc::new(MemoryLimiter::new(self.limits.clone())),
        };
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(ManualClock::new(chrono::Utc::now())));
        let secret = self.secret.unwrap_or_else(SecretKey::generate);
        let identity = Arc::new(Identity::new(
            store.clone(),
            clock.clone() as Arc<dyn Clock>,
            secret.clone(),
            KeyEnv::Test,
            self.auth.clone(),
        ));

        let shutdown = CancellationToken::new();
        if let Some((url, prefix)) = &self.redis {
            identity
                .set_invalidation_bus(Arc::new(RedisKeyBus::new(url, prefix).expect("Redis URL")));
            spawn_key_invalidation_listener(
                url.clone(),
                prefix.clone(),
                identity.clone(),
                shutdown.clone(),
            );
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let public = self.public_url.unwrap_or_else(|| format!("http://{addr}"));
        let mut settings = ServerSettings::new(&public, KeyEnv::Test);
        settings.auth = self.auth;
        settings.setup_token = self.setup_token;
        settings.file_mimes = alumia_core::files::MimePolicy::with_extra(&self.extra_mime_types);
        settings.trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|c| c.parse().expect("CIDR"))
            .collect();
        let catalog = Arc::new(Catalog::new(self.providers, self.default_model));
        catalog.refresh().await;
        let fanout = self
            .redis
            .as_ref()
            .map(|(url, prefix)| RedisFanout::new(url, prefix).expect("Redis URL"));
        let runtime = Runtime::new(
            store.clone(),
            clock.clone() as Arc<dyn Clock>,
            catalog,
            secret.clone(),
            self.turn_limits,
            fanout,
        );
        let state = AppState::with_runtime(
            store.clone(),
            identity,
            limiter,
            clock.clone(),
            settings,
            runtime.clone(),
        );
        let blob_dir =
            std::env::temp_dir().join(format!("alumia-blobs-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&blob_dir).expect("blob dir");
        let backend = match self.storage {
            TestStorage::Local => alumia_blobs::BlobBackend::Local {
                root: blob_dir.clone(),
            },
            TestStorage::S3 => {
                let addr = crate::s3::start_s3_server(&blob_dir).await;
                alumia_blobs::BlobBackend::S3(crate::s3::s3_config(addr, "files"))
            }
        };
        let blobs = backend.open().await.expect("open the blob store");
        let state = state.with_blobs(blobs.clone());
        let handle = tokio::spawn(alumia_server::serve(listener, state, shutdown.clone()));
        TestApp {
            addr,
            url: format!("http://{addr}"),
            store,
            clock,
            secret,
            runtime,
            http: reqwest::Client::new(),
            db_url: url,
            blobs,
            _blob_dir: TempDirGuard(blob_dir.clone()),
            blob_dir,
            shutdown,
            handle: Some(handle),
            _dir: dir,
        }
    }
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            storage: TestStorage::Local,
            extra_mime_types: Vec::new(),
            db: TestDb::SqliteTemp,
            limits: Limits::default(),
            redis: None,
            auth: AuthSettings::default(),
            public_url: None,
            setup_token: None,
            trusted_proxies: Vec::new(),
            secret: None,
            clock: None,
            providers: Vec::new(),
            default_model: None,
            turn_limits: TurnLimits::default(),
        }
    }

    /// SQLite in a temp folder, default limits, no Redis.
    pub async fn spawn() -> TestApp {
        TestApp::builder().spawn().await
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// GET with a Bearer key.
    pub async fn get_with_key(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(self.at(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    /// Adds a (non-default) workspace to `org` with `members`, straight in
    /// the database: the API has no route that creates workspaces yet.
    pub async fn add_workspace(
        &self,
        org: uuid::Uuid,
        name: &str,
        members: &[uuid::Uuid],
    ) -> uuid::Uuid {
        let id = uuid::Uuid::now_v7();
        let at = alumia_core::clock::to_millis(self.clock.now());
        let slug = format!("{}-{}", name.to_lowercase().replace(' ', "-"), id.simple());
        let mut statements = vec![(
            "INSERT INTO workspaces (id, org_id, name, slug, description, is_default, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, '', FALSE, $5, $5)",
            vec![id.to_string(), org.to_string(), name.to_string(), slug],
        )];
        for m in members {
            statements.push((
                "INSERT INTO workspace_members (workspace_id, org_id, user_id, added_at) VALUES ($1, $2, $3, $4)",
                vec![id.to_string(), org.to_string(), m.to_string()],
            ));
        }
        macro_rules! run {
            ($pool:expr) => {{
                let pool = $pool;
                for (sql, binds) in statements {
                    let mut q = sqlx::query(sql);
                    for b in binds {
                        q = q.bind(b);
                    }
                    q.bind(at)
                        .execute(&pool)
                        .await
                        .expect("insert a workspace fixture");
                }
                pool.close().await;
            }};
        }
        if self.db_url.starts_with("sqlite:") {
            run!(
                sqlx::SqlitePool::connect(&self.db_url)
                    .await
                    .expect("open the test SQLite file")
            );
        } else {
            run!(
                sqlx::PgPool::connect(&self.db_url)
                    .await
                    .expect("open the test database")
            );
        }
        id
    }

    /// `(system_kind, is_protected, deleted)` of the project's folder rows,
    /// read straight from the database: there is no files API yet.
    pub async fn project_folders(&self, project: uuid::Uuid) -> Vec<(Option<String>, bool, bool)> {
        let sql = "SELECT system_kind, is_protected, deleted_at IS NOT NULL FROM files \
                   WHERE project_id = $1 AND kind = 'folder' ORDER BY created_at, id";
        macro_rules! run {
            ($pool:expr) => {{
                let pool = $pool;
                let rows: Vec<(Option<String>, bool, bool)> = sqlx::query_as(sql)
                    .bind(project.to_string())
                    .fetch_all(&pool)
                    .await
                    .expect("read project folders");
                pool.close().await;
                rows
            }};
        }
        if self.db_url.starts_with("sqlite:") {
            run!(
                sqlx::SqlitePool::connect(&self.db_url)
                    .await
                    .expect("open the test SQLite file")
            )
        } else {
            run!(
                sqlx::PgPool::connect(&self.db_url)
                    .await
                    .expect("open the test database")
            )
        }
    }

    /// Runs one statement straight on the database: for states the API
    /// cannot make (rows from before a migration, say). Returns rows affected.
    pub async fn execute_sql(&self, sql: &str) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        if self.db_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.db_url)
                .await
                .expect("open the test SQLite file");
            let done = sqlx::query(sql).execute(&pool).await.expect("execute");
            pool.close().await;
            done.rows_affected()
        } else {
            let pool = sqlx::PgPool::connect(&self.db_url)
                .await
                .expect("open the test database");
            let done = sqlx::query(sql).execute(&pool).await.expect("execute");
            pool.close().await;
            done.rows_affected()
        }
    }

    /// A new browser (cookie jar) pointed at this app.
    pub fn browser(&self) -> crate::Browser {
        crate::Browser::new(&self.url)
    }

    /// Graceful stop: waits for in-flight requests.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.runtime
            .shutdown(std::time::Duration::from_secs(5))
            .await;
        self.store.close().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
