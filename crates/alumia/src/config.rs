//! The typed configuration. Only this module reads the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alumia_core::crypto::SecretKey;
use alumia_core::identity::AuthSettings;
use alumia_core::keys::KeyEnv;
use alumia_core::limits::{Bucket, Limits, Quota};
use alumia_store::{DbUrl, Synchronous};
use serde::Deserialize;

pub const DEFAULT_CONFIG: &str = include_str!("../alumia.example.toml");

/// Flags shared by `serve` and `admin`.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// `sqlite://…` (created if missing) or `postgres://…`.
    #[arg(long, env = "ALUMIA_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "ALUMIA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Holds the SQLite file, `secret.key` and `files/`.
    #[arg(long, env = "ALUMIA_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    limits: std::collections::HashMap<String, FileQuota>,
    #[serde(default)]
    sqlite: FileSqlite,
    #[serde(default)]
    database_url: Option<String>,
    #[serde(default)]
    redis_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct FileServer {
    listen: Option<String>,
    public_url: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct FileAuth {
    step_up_window_secs: Option<i64>,
    session_max_age_secs: Option<i64>,
    session_idle_secs: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuota {
    capacity: u32,
    per_minute: Option<u32>,
    refill_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct FileSqlite {
    synchronous: Option<String>,
}

/// Everything `serve` and `admin` need, resolved and validated.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    /// True when neither env nor file set it (serve warns on a public listen).
    pub public_url_defaulted: bool,
    pub database_url: DbUrl,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub data_dir: PathBuf,
    pub key_env: KeyEnv,
    pub auth: AuthSettings,
    pub limits: Limits,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub setup_token: Option<String>,
    pub sqlite_synchronous: Synchronous,
    pub log_filter: String,
    pub log_json: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub struct ConfigError(pub String);

impl Config {
    /// `listen` and `redis_url` come from `serve` flags (already merged with env by clap).
    pub fn load(
        common: &CommonArgs,
        listen_flag: Option<String>,
        redis_flag: Option<String>,
    ) -> Result<Config, ConfigError> {
        let file: FileConfig = match &common.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => FileConfig::default(),
        };

        let listen_raw = listen_flag
            .or(file.server.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:7420".into());
        let listen: SocketAddr = listen_raw.parse().map_err(|_| {
            ConfigError(format!(
                "--listen {listen_raw:?} is not a socket address like 127.0.0.1:7420"
            ))
        })?;

        // Listening on 0.0.0.0/[::] says nothing about the URL browsers use;
        // default to loopback and let `serve` warn that it should be set.
        let public_url = env("ALUMIA_PUBLIC_URL")
            .or(file.server.public_url.clone())
            .unwrap_or_else(|| {
                if listen.ip().is_unspecified() {
                    format!("http://127.0.0.1:{}", listen.port())
                } else {
                    format!("http://{listen}")
                }
            });
        let public_url_defaulted =
            env("ALUMIA_PUBLIC_URL").is_none() && file.server.public_url.is_none();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "ALUMIA_PUBLIC_URL {public_url:?} must start with http:// or https://"
            )));
        }

        let data_dir = common
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./alumia-data"));
        let db_raw = common
            .database_url
            .clone()
            .or(file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("alumia.db").display()));
        let database_url = DbUrl::parse(&db_raw).map_err(ConfigError)?;

        let key_env = match env("ALUMIA_ENV").as_deref().unwrap_or("production") {
            "production" => KeyEnv::Live,
            "development" => KeyEnv::Test,
            other => {
                return Err(ConfigError(format!(
                    "ALUMIA_ENV {other:?} must be production or development"
                )));
            }
        };

        let defaults = AuthSettings::default();
        let auth = AuthSettings {
            step_up_window_secs: file
                .auth
                .step_up_window_secs
                .unwrap_or(defaults.step_up_window_secs),
            session_max_age_secs: file
                .auth
                .session_max_age_secs
                .unwrap_or(defaults.session_max_age_secs),
            session_idle_secs: file
                .auth
                .session_idle_secs
                .unwrap_or(defaults.session_idle_secs),
        };
        if auth.step_up_window_secs <= 0
            || auth.session_max_age_secs <= 0
            || auth.session_idle_secs <= 0
        {
            return Err(ConfigError("[auth] durations must be positive".into()));
        }

        let mut limits = Limits::default();
        for (name, q) in &file.limits {
            let bucket = Bucket::ALL
                .into_iter()
                .find(|b| b.config_key() == name)
                .ok_or_else(|| ConfigError(format!("[limits] has no bucket named {name:?}")))?;
            let quota = match (q.per_minute, q.refill_secs) {
                (Some(per_minute), None) if per_minute > 0 => {
                    Quota::per_minute(q.capacity, per_minute)
                }
                (None, Some(secs)) if secs > 0 => Quota::per_secs(q.capacity, secs),
                _ => {
                    return Err(ConfigError(format!(
                        "[limits] {name}: give capacity and exactly one of per_minute or refill_secs (positive)"
                    )));
                }
            };
            if q.capacity == 0 {
                return Err(ConfigError(format!(
                    "[limits] {name}: capacity must be at least 1"
                )));
            }
            limits.set(bucket, quota);
        }

        let trusted_raw: Vec<String> = match env("ALUMIA_TRUSTED_PROXIES") {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file.server.trusted_proxies.clone(),
        };
        let trusted_proxies = trusted_raw
            .iter()
            .map(|c| {
                c.parse()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(Into::into))
                    .map_err(|_| ConfigError(format!("trusted proxy {c:?} is not a CIDR")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        // The setup token is required when listening beyond loopback.
        let setup_token = match env("ALUMIA_SETUP_TOKEN") {
            Some(t) => Some(t),
            None if !listen.ip().is_loopback() => Some(alumia_core::crypto::random_token()),
            None => None,
        };

        let sqlite_synchronous = match file.sqlite.synchronous.as_deref().unwrap_or("full") {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            other => {
                return Err(ConfigError(format!(
                    "[sqlite] synchronous {other:?} must be full or normal"
                )));
            }
        };

        Ok(Config {
            listen,
            public_url,
            public_url_defaulted,
            database_url,
            redis_url: redis_flag.or(file.redis_url.clone()),
            redis_prefix: env("ALUMIA_REDIS_PREFIX").unwrap_or_else(|| "alumia:".into()),
            data_dir,
            key_env,
            auth,
            limits,
            trusted_proxies,
            setup_token,
            sqlite_synchronous,
            log_filter: env("ALUMIA_LOG").unwrap_or_else(|| "info".into()),
            log_json: env("ALUMIA_LOG_FORMAT").as_deref() == Some("json"),
        })
    }

    /// `ALUMIA_SECRET_KEY`, else `<data-dir>/secret.key`, generated (0600)
    /// on first run. Returns the key and where it came from (never the key).
    pub fn secret_key(&self) -> Result<(SecretKey, String), ConfigError> {
        let previous = match env("ALUMIA_SECRET_KEY_PREVIOUS") {
            Some(v) => Some(
                SecretKey::parse(&v)
                    .map_err(|e| ConfigError(format!("ALUMIA_SECRET_KEY_PREVIOUS: {e}")))?,
            ),
            None => None,
        };
        if let Some(v) = env("ALUMIA_SECRET_KEY") {
            let key =
                SecretKey::parse(&v).map_err(|e| ConfigError(format!("ALUMIA_SECRET_KEY: {e}")))?;
            return Ok((SecretKey::new(key, previous), "ALUMIA_SECRET_KEY".into()));
        }
        let path = self.data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = SecretKey::parse(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                return Ok((SecretKey::new(key, previous), path.display().to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
        }
        let key = alumia_core::crypto::random_bytes::<32>();
        write_private(&path, &hex::encode(key))
            .map_err(|e| ConfigError(format!("cannot write {}: {e}", path.display())))?;
        Ok((
            SecretKey::new(key, previous),
            format!("{} (generated)", path.display()),
        ))
    }
}

/// Creates the file with mode 0600 (and its folder) before writing the secret.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
