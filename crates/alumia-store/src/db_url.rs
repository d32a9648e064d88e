use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

/// A database URL whose `Debug`/`Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    raw: String,
    kind: DbKind,
}

impl DbUrl {
    pub fn parse(raw: &str) -> Result<DbUrl, String> {
        let kind = if raw.starts_with("sqlite:") {
            DbKind::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            DbKind::Postgres
        } else {
            return Err(format!(
                "unsupported database URL scheme in {}: use sqlite://… or postgres://…",
                mask(raw)
            ));
        };
        Ok(DbUrl {
            raw: raw.to_string(),
            kind,
        })
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// The URL with its password; only for the driver.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// For a SQLite URL, the file path it names (None for `:memory:`).
    pub fn sqlite_path(&self) -> Option<&str> {
        if self.kind != DbKind::Sqlite {
            return None;
        }
        let rest = self
            .raw
            .trim_start_matches("sqlite:")
            .trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.contains(":memory:")).then_some(path)
    }
}

fn mask(raw: &str) -> String {
    // scheme://user:password@host → scheme://user:***@host
    if let Some((scheme, rest)) = raw.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
        && let Some((user, _)) = creds.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    raw.to_string()
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", mask(&self.raw))
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_debug_or_display() {
        let url = DbUrl::parse("postgres://alumia:s3cret@db:5432/alumia").unwrap();
        assert_eq!(url.kind(), DbKind::Postgres);
        assert!(!format!("{url:?}{url}").contains("s3cret"));
        assert!(url.expose().contains("s3cret"));
    }

    #[test]
    fn only_sqlite_and_postgres_urls_are_accepted() {
        assert_eq!(
            DbUrl::parse("sqlite://./alumia-data/alumia.db")
                .unwrap()
                .kind(),
            DbKind::Sqlite
        );
        assert_eq!(
            DbUrl::parse("sqlite://./alumia-data/alumia.db")
                .unwrap()
                .sqlite_path(),
            Some("./alumia-data/alumia.db")
        );
        assert!(DbUrl::parse("postgresql://h/db").is_ok());
        let err = DbUrl::parse("mysql://root:pw@h/db").unwrap_err();
        assert!(!err.contains("pw@"), "{err}");
    }
}
