//! The typed configuration. Only this module reads the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alumia_blobs::{BlobBackend, S3Config};
use alumia_core::crypto::SecretKey;
use alumia_core::identity::AuthSettings;
use alumia_core::keys::KeyEnv;
use alumia_core::limits::{Bucket, Limits, Quota};
use alumia_store::{DbUrl, Synchronous};
use serde::Deserialize;

use alumia_models::{ApiSecret, CallPolicy};
use alumia_runtime::TurnLimits;
use alumia_runtime::catalog::{ModelSpec, ProviderConfig, ProviderKind};

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
    #[serde(default)]
    agents: FileAgents,
    #[serde(default)]
    providers: Vec<FileProvider>,
    #[serde(default)]
    mcp: FileMcp,
    #[serde(default)]
    files: FileFiles,
    #[serde(default)]
    storage: FileStorage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFiles {
    /// MIME types allowed besides the built-in list (spec 06 §3).
    #[serde(default)]
    extra_mime_types: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    /// `local` (default: `<data-dir>/files`) or `s3`.
    kind: Option<String>,
    /// For `local`: another folder.
    path: Option<PathBuf>,
    s3: Option<FileS3>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileS3 {
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
    path_style: Option<bool>,
    /// Credentials are named by their environment variables, never inline.
    access_key_env: Option<String>,
    secret_key_env: Option<String>,
    session_token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMcp {
    /// Browser origins besides the public one that may call `/mcp`.
    #[serde(default)]
    allowed_origins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAgents {
    default_model: Option<String>,
    max_steps: Option<u32>,
    max_turn_secs: Option<u64>,
    max_output_tokens: Option<u64>,
    max_concurrent_turns: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvider {
    id: String,
    kind: String,
    base_url: Option<String>,
    /// The key is named by its environment variable, never written inline.
    api_key_env: Option<String>,
    models: Option<Vec<FileModel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    id: String,
    context_window: Option<u64>,
    max_output_tokens: Option<u64>,
    supports_tools: Option<bool>,
    supports_reasoning: Option<bool>,
    fast_sibling: Option<String>,
    pricing: Option<FilePricing>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePricing {
    input_microcredits_per_mtok: u64,
    output_microcredits_per_mtok: u64,
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
    /// `[mcp] allowed_origins` / `ALUMIA_MCP_ALLOWED_ORIGINS` (comma-separated).
    pub mcp_allowed_origins: Vec<String>,
    pub setup_token: Option<String>,
    pub sqlite_synchronous: Synchronous,
    pub log_filter: String,
    pub log_json: bool,
    pub providers: Vec<ProviderConfig>,
    pub default_model: Option<String>,
    pub turn_limits: TurnLimits,
    /// Where file bytes go (`[storage]`, `ALUMIA_STORAGE_*`, `ALUMIA_S3_*`).
    pub storage: BlobBackend,
    /// `[files] extra_mime_types` / `ALUMIA_FILES_EXTRA_MIME_TYPES` (comma-separated).
    pub extra_mime_types: Vec<String>,
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
        let mcp_allowed_origins: Vec<String> = match env("ALUMIA_MCP_ALLOWED_ORIGINS") {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file.mcp.allowed_origins.clone(),
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

        let providers = providers(file.providers)?;
        let defaults = TurnLimits::default();
        let turn_limits = TurnLimits {
            max_steps: file
                .agents
                .max_steps
                .unwrap_or(defaults.max_steps)
                .clamp(1, 100),
            max_turn: file
                .agents
                .max_turn_secs
                .map_or(defaults.max_turn, std::time::Duration::from_secs),
            max_output_tokens: file
                .agents
                .max_output_tokens
                .unwrap_or(defaults.max_output_tokens),
            max_concurrent_turns: file
                .agents
                .max_concurrent_turns
                .unwrap_or(defaults.max_concurrent_turns)
                .max(1),
            ..defaults
        };

        let storage = storage_backend(&file.storage, &data_dir)?;
        let extra_mime_types = match env("ALUMIA_FILES_EXTRA_MIME_TYPES") {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file.files.extra_mime_types.clone(),
        };
        for m in &extra_mime_types {
            let ok = m.split_once('/').is_some_and(|(t, st)| {
                !t.is_empty() && !st.is_empty() && !m.contains(char::is_whitespace)
            });
            if !ok {
                return Err(ConfigError(format!(
                    "[files] extra_mime_types: {m:?} is not a type/subtype"
                )));
            }
        }

        Ok(Config {
            storage,
            extra_mime_types,
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
            mcp_allowed_origins,
            setup_token,
            sqlite_synchronous,
            log_filter: env("ALUMIA_LOG").unwrap_or_else(|| "info".into()),
            log_json: env("ALUMIA_LOG_FORMAT").as_deref() == Some("json"),
            providers,
            default_model: env("ALUMIA_DEFAULT_MODEL").or(file.agents.default_model),
            turn_limits,
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
/// `[storage]` with `ALUMIA_STORAGE_KIND`, `ALUMIA_STORAGE_PATH` and
/// `ALUMIA_S3_*` over it. S3 credentials: `ALUMIA_S3_ACCESS_KEY_ID` /
/// `ALUMIA_S3_SECRET_ACCESS_KEY` / `ALUMIA_S3_SESSION_TOKEN`, or the variables
/// `access_key_env` / `secret_key_env` / `session_token_env` name; neither:
/// object_store's own chain (instance metadata, web identity).
fn storage_backend(file: &FileStorage, data_dir: &Path) -> Result<BlobBackend, ConfigError> {
    let kind = env("ALUMIA_STORAGE_KIND")
        .or(file.kind.clone())
        .unwrap_or_else(|| "local".into());
    match kind.as_str() {
        "local" => Ok(BlobBackend::Local {
            root: env("ALUMIA_STORAGE_PATH")
                .map(PathBuf::from)
                .or(file.path.clone())
                .unwrap_or_else(|| data_dir.join("files")),
        }),
        "s3" => {
            let empty = FileS3::default();
            let s3 = file.s3.as_ref().unwrap_or(&empty);
            let named =
                |name: &Option<String>, what: &str| -> Result<Option<String>, ConfigError> {
                    match name {
                        None => Ok(None),
                        Some(var) => env(var).map(Some).ok_or_else(|| {
                            ConfigError(format!("[storage.s3] {what}: {var} is not set"))
                        }),
                    }
                };
            let bucket = env("ALUMIA_S3_BUCKET")
                .or(s3.bucket.clone())
                .ok_or_else(|| {
                    ConfigError("[storage] kind = \"s3\" needs a bucket (ALUMIA_S3_BUCKET)".into())
                })?;
            let endpoint = env("ALUMIA_S3_ENDPOINT").or(s3.endpoint.clone());
            let path_style = match env("ALUMIA_S3_PATH_STYLE") {
                Some(v) => v == "true" || v == "1",
                // Self-hosted S3 servers at an explicit endpoint mostly need it.
                None => s3.path_style.unwrap_or(endpoint.is_some()),
            };
            let access_key_id = match env("ALUMIA_S3_ACCESS_KEY_ID") {
                Some(v) => Some(v),
                None => named(&s3.access_key_env, "access_key_env")?,
            };
            let secret_access_key = match env("ALUMIA_S3_SECRET_ACCESS_KEY") {
                Some(v) => Some(v),
                None => named(&s3.secret_key_env, "secret_key_env")?,
            };
            if access_key_id.is_some() != secret_access_key.is_some() {
                return Err(ConfigError(
                    "[storage.s3] needs both an access key id and a secret access key, or neither"
                        .into(),
                ));
            }
            let session_token = match env("ALUMIA_S3_SESSION_TOKEN") {
                Some(v) => Some(v),
                None => named(&s3.session_token_env, "session_token_env")?,
            };
            Ok(BlobBackend::S3(S3Config {
                bucket,
                endpoint,
                region: env("ALUMIA_S3_REGION")
                    .or(s3.region.clone())
                    .unwrap_or_else(|| "us-east-1".into()),
                prefix: env("ALUMIA_S3_PREFIX")
                    .or(s3.prefix.clone())
                    .unwrap_or_default(),
                path_style,
                access_key_id,
                secret_access_key,
                session_token,
            }))
        }
        other => Err(ConfigError(format!(
            "[storage] kind {other:?} is not \"local\" or \"s3\""
        ))),
    }
}

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

/// `[[providers]]`, then the `ALUMIA_OPENAI_*` / `ALUMIA_ANTHROPIC_*`
/// variables, which add `openai` / `anthropic` or replace the same id.
fn providers(file: Vec<FileProvider>) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut out: Vec<ProviderConfig> = Vec::new();
    for p in file {
        let kind = match p.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "anthropic" => ProviderKind::Anthropic,
            other => {
                return Err(ConfigError(format!(
                    "[[providers]] {}: kind {other:?} must be openai or anthropic",
                    p.id
                )));
            }
        };
        if p.id.is_empty()
            || p.id == "dev"
            || !p
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError(format!(
                "[[providers]] id {:?} must be letters, digits, - or _, and not \"dev\"",
                p.id
            )));
        }
        let api_key = match &p.api_key_env {
            Some(name) => Some(ApiSecret::new(env(name).ok_or_else(|| {
                ConfigError(format!(
                    "[[providers]] {}: the variable {name} is not set",
                    p.id
                ))
            })?)),
            None => None,
        };
        let base_url = p.base_url.unwrap_or_else(|| match kind {
            ProviderKind::OpenAi => "https://api.openai.com/v1".into(),
            ProviderKind::Anthropic => "https://api.anthropic.com".into(),
        });
        let models = p.models.map(|list| {
            list.into_iter()
                .map(|m| {
                    let base = ModelSpec::discovered(&m.id);
                    ModelSpec {
                        context_window: m.context_window.unwrap_or(base.context_window),
                        max_output_tokens: m.max_output_tokens.unwrap_or(base.max_output_tokens),
                        supports_tools: m.supports_tools.unwrap_or(base.supports_tools),
                        supports_reasoning: m.supports_reasoning.unwrap_or(base.supports_reasoning),
                        fast_sibling: m.fast_sibling,
                        input_microcredits_per_mtok: m
                            .pricing
                            .as_ref()
                            .map_or(0, |p| p.input_microcredits_per_mtok),
                        output_microcredits_per_mtok: m
                            .pricing
                            .as_ref()
                            .map_or(0, |p| p.output_microcredits_per_mtok),
                        ..base
                    }
                })
                .collect()
        });
        out.push(ProviderConfig {
            id: p.id,
            kind,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            models,
            policy: CallPolicy::default(),
        });
    }
    let openai_key = env("ALUMIA_OPENAI_API_KEY");
    let openai_url = env("ALUMIA_OPENAI_BASE_URL");
    if openai_key.is_some() || openai_url.is_some() {
        let models = env("ALUMIA_OPENAI_MODELS").map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(ModelSpec::discovered)
                .collect()
        });
        upsert(
            &mut out,
            ProviderConfig {
                id: "openai".into(),
                kind: ProviderKind::OpenAi,
                base_url: openai_url
                    .unwrap_or_else(|| "https://api.openai.com/v1".into())
                    .trim_end_matches('/')
                    .to_string(),
                api_key: openai_key.map(ApiSecret::new),
                models,
                policy: CallPolicy::default(),
            },
        );
    }
    if let Some(key) = env("ALUMIA_ANTHROPIC_API_KEY") {
        let models = env("ALUMIA_ANTHROPIC_MODELS").map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(|m| ModelSpec {
                    supports_reasoning: true,
                    context_window: 200_000,
                    ..ModelSpec::discovered(m)
                })
                .collect()
        });
        upsert(
            &mut out,
            ProviderConfig {
                id: "anthropic".into(),
                kind: ProviderKind::Anthropic,
                base_url: env("ALUMIA_ANTHROPIC_BASE_URL")
                    .unwrap_or_else(|| "https://api.anthropic.com".into())
                    .trim_end_matches('/')
                    .to_string(),
                api_key: Some(ApiSecret::new(key)),
                models,
                policy: CallPolicy::default(),
            },
        );
    }
    Ok(out)
}

fn upsert(list: &mut Vec<ProviderConfig>, provider: ProviderConfig) {
    match list.iter_mut().find(|p| p.id == provider.id) {
        Some(existing) => *existing = provider,
        None => list.push(provider),
    }
}

/// What the terminal client reads from the environment (spec 05 §1–2).
/// `ALUMIA_URL` arrives through clap, merged with `--url`.
pub struct ClientEnv {
    /// `ALUMIA_API_KEY`: used instead of stored credentials.
    pub api_key: Option<String>,
    /// `$XDG_CONFIG_HOME` (when absolute), else `~/.config`.
    pub config_home: Option<PathBuf>,
    /// An X11 or Wayland display, or macOS: a browser can be opened.
    pub has_display: bool,
}

impl ClientEnv {
    pub fn load() -> ClientEnv {
        let config_home = env("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                env("HOME")
                    .map(PathBuf::from)
                    .or_else(std::env::home_dir)
                    .map(|home| home.join(".config"))
            });
        ClientEnv {
            api_key: env("ALUMIA_API_KEY").map(|k| k.trim().to_string()),
            config_home,
            has_display: cfg!(target_os = "macos")
                || env("DISPLAY").is_some()
                || env("WAYLAND_DISPLAY").is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(toml_text: &str) -> Result<BlobBackend, String> {
        let file: FileConfig = toml::from_str(toml_text).expect("toml");
        storage_backend(&file.storage, Path::new("/data")).map_err(|e| e.0)
    }

    #[test]
    fn storage_defaults_to_the_data_dir_and_reads_s3_settings() {
        match storage("").unwrap() {
            BlobBackend::Local { root } => assert_eq!(root, Path::new("/data/files")),
            other => panic!("{other:?}"),
        }
        let s3 = storage(
            "[storage]\nkind = \"s3\"\n[storage.s3]\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\nprefix = \"files\"",
        )
        .unwrap();
        match s3 {
            BlobBackend::S3(c) => {
                assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("b", "files"));
                assert!(c.path_style, "an explicit endpoint defaults to path style");
                assert_eq!(c.region, "us-east-1");
                assert!(c.access_key_id.is_none() && c.secret_access_key.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn storage_refuses_incomplete_or_unknown_settings() {
        assert!(storage("[storage]\nkind = \"s3\"").is_err(), "no bucket");
        assert!(storage("[storage]\nkind = \"ftp\"").is_err());
        assert!(
            storage("[storage]\nkind = \"s3\"\n[storage.s3]\nbucket = \"b\"\naccess_key_env = \"ALUMIA_TEST_UNSET_VAR_7\"").is_err(),
            "a named variable that is not set"
        );
        assert!(
            toml::from_str::<FileConfig>("[storage.s3]\nsecret = \"x\"").is_err(),
            "inline secrets are not a field"
        );
    }
}
