//! The credentials file (spec 05 §2): `$XDG_CONFIG_HOME/alumia/credentials.json`,
//! else `~/.config/alumia/credentials.json`; the file 0600, its folder 0700.

use std::path::{Path, PathBuf};

use alumia_client::MeView;
use serde::{Deserialize, Serialize};

use super::{CliError, CliResult};
use crate::config::ClientEnv;

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub url: String,
    pub api_key: String,
    pub key_id: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub org: OrgRef,
    pub user: UserRef,
    pub created_at: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("prefix", &self.prefix)
            .field("org", &self.org.slug)
            .field("user", &self.user.email)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgRef {
    pub id: String,
    pub slug: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRef {
    pub id: String,
    pub email: String,
}

impl Credentials {
    /// What `GET /me` says about a key, stored with the key itself.
    pub fn from_me(url: &str, api_key: String, me: &MeView) -> CliResult<Credentials> {
        let (Some(key_id), Some(prefix)) = (&me.principal.key_id, &me.principal.key_prefix) else {
            return Err(CliError::Failed(
                "the server did not describe this credential as an API key".into(),
            ));
        };
        Ok(Credentials {
            url: url.to_string(),
            api_key,
            key_id: key_id.clone(),
            prefix: prefix.clone(),
            scopes: me.principal.scopes.clone(),
            org: OrgRef {
                id: me.org.id.clone(),
                slug: me.org.slug.clone(),
            },
            user: UserRef {
                id: me.user.id.clone(),
                email: me.user.email.clone(),
            },
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
    }
}

/// The file's path, when a home or XDG folder is known.
pub fn path(env: &ClientEnv) -> Option<PathBuf> {
    env.config_home
        .as_ref()
        .map(|home| home.join("alumia").join("credentials.json"))
}

/// `None` when there is no file. Warns on stderr when the file or its
/// folder can be read by others.
pub fn load(path: &Path) -> CliResult<Option<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::Failed(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    warn_if_loose(path);
    serde_json::from_str(&text).map(Some).map_err(|e| {
        CliError::NotLoggedIn(format!(
            "{} is not a valid credentials file ({e}): run `alumia login --device`",
            path.display()
        ))
    })
}

/// Writes the file atomically (a 0600 temp file renamed over it), creating
/// the folder 0700 (and tightening it if it was looser).
pub fn save(path: &Path, credentials: &Credentials) -> CliResult<()> {
    let fail = |what: &str, e: std::io::Error| CliError::Failed(format!("cannot {what}: {e}"));
    let dir = path
        .parent()
        .ok_or_else(|| CliError::Failed(format!("{} has no folder", path.display())))?;
    create_private_dir(dir).map_err(|e| fail(&format!("create {}", dir.display()), e))?;
    let text = serde_json::to_string_pretty(credentials)
        .map_err(|e| CliError::Failed(format!("cannot encode the credentials: {e}")))?;
    // A fresh random name, created exclusively: a planted file or symlink
    // under a predictable name can never be written through.
    let tmp = dir.join(format!(
        ".credentials.json.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    write_private(&tmp, format!("{text}\n").as_bytes())
        .map_err(|e| fail(&format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(&format!("write {}", path.display()), e)
    })
}

/// Deletes the file; `false` when there was none.
pub fn remove(path: &Path) -> CliResult<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::Failed(format!(
            "cannot delete {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(unix)]
fn warn_if_loose(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode_of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    };
    if let Some(mode) = mode_of(path).filter(|m| m & 0o077 != 0) {
        eprintln!(
            "alumia: warning: {} has mode {mode:04o}, readable by others; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    if let Some(dir) = path.parent()
        && let Some(mode) = mode_of(dir).filter(|m| m & 0o077 != 0)
    {
        eprintln!(
            "alumia: warning: {} has mode {mode:04o}; run `chmod 700 {}`",
            dir.display(),
            dir.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_loose(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            url: "http://127.0.0.1:7420".into(),
            api_key: "alm_test_0123".into(),
            key_id: "k1".into(),
            prefix: "alm_test_012".into(),
            scopes: vec!["terminal".into(), "models:read".into()],
            org: OrgRef {
                id: "o1".into(),
                slug: "acme".into(),
            },
            user: UserRef {
                id: "u1".into(),
                email: "a@example.com".into(),
            },
            created_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn the_file_uses_the_spec_field_names() {
        let v = serde_json::to_value(sample()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "apiKey",
                "createdAt",
                "keyId",
                "org",
                "prefix",
                "scopes",
                "url",
                "user"
            ]
        );
        assert_eq!(v["org"], serde_json::json!({"id": "o1", "slug": "acme"}));
        assert_eq!(
            v["user"],
            serde_json::json!({"id": "u1", "email": "a@example.com"})
        );
        assert!(!format!("{:?}", sample()).contains("alm_test_0123"));
    }

    #[cfg(unix)]
    #[test]
    fn save_writes_0600_in_a_0700_folder_and_load_reads_it_back() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("alumia-creds-{}", uuid::Uuid::now_v7()));
        let path = root.join("alumia").join("credentials.json");
        save(&path, &sample()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(load(&path).unwrap(), Some(sample()));
        // Overwriting a loosened file tightens it again.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        save(&path, &sample()).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        assert_eq!(load(&path).unwrap(), None);
        std::fs::remove_dir_all(root).unwrap();
    }
}
