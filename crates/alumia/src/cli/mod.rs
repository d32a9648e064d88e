//! The terminal client (spec 05): one module per noun, all over the REST API
//! through alumia-client. This module holds what they share: the global
//! flags, credential resolution, output and the exit codes of spec 05 §1.

pub mod agents;
pub mod chat;
pub mod credentials;
pub mod keys;
pub mod login;
pub mod models;
pub mod projects;
pub mod sessions;
pub mod whoami;

use std::io::Write;
use std::process::ExitCode;

use alumia_client::{Client, ClientError, Reply};
use alumia_types::Page;
use serde_json::{Value, json};

use crate::config::ClientEnv;
use credentials::Credentials;

pub const DEFAULT_URL: &str = "http://127.0.0.1:7420";

/// Where the server is and which org to name (also taken by `mcp --stdio`).
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// Server base URL; overrides the stored one [default: http://127.0.0.1:7420].
    #[arg(long, env = "ALUMIA_URL", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Send `X-Alumia-Org: SLUG` (a key only works in its own org).
    #[arg(long, global = true, value_name = "SLUG")]
    pub org: Option<String>,
}

/// The flags every client command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    #[command(flatten)]
    pub conn: Connection,
    /// Print the API's `data` as one JSON document on stdout; errors are the
    /// API's error envelope on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress output on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub quiet: bool,
}

impl Out {
    pub fn of(global: &GlobalArgs) -> Out {
        Out {
            json: global.json,
            quiet: global.quiet,
        }
    }

    /// Progress and notes on stderr, unless `-q`.
    pub fn progress(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    /// One JSON document on stdout.
    pub fn json(&self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        println!("{text}");
    }
}

/// Why a command failed; each maps to one exit code.
#[derive(Debug)]
pub enum CliError {
    Client(ClientError),
    /// Exit 3.
    NotLoggedIn(String),
    /// Exit 2.
    Usage(String),
    /// Exit 1.
    Failed(String),
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Client(e)
    }
}

pub type CliResult<T = ExitCode> = Result<T, CliError>;

pub const NOT_LOGGED_IN: &str =
    "not logged in: run `alumia login --device` (or set ALUMIA_API_KEY)";

/// Spec 05 §1: 3 for 401/403, 4 for 404, 5 for 409/422, 6 for 402/429,
/// 1 for anything else (400, 5xx, …).
pub fn exit_code_for_status(status: u16) -> u8 {
    match status {
        401 | 403 => 3,
        404 => 4,
        409 | 422 => 5,
        402 | 429 => 6,
        _ => 1,
    }
}

/// Prints a failure on stderr and picks the exit code.
pub fn finish(out: Out, result: CliResult) -> ExitCode {
    let error = match result {
        Ok(code) => return code,
        Err(e) => e,
    };
    let (code, line) = match error {
        CliError::Client(ClientError::Api {
            status,
            code,
            reason,
            message,
            body,
        }) => {
            let status = status.as_u16();
            let line = if out.json {
                body.to_string()
            } else {
                let mut line = format!(
                    "alumia: {message} ({status}, {})",
                    reason.as_deref().unwrap_or(&code)
                );
                if status == 401 {
                    line.push_str("\nrun `alumia login --device` to sign in again");
                }
                line
            };
            (exit_code_for_status(status), line)
        }
        CliError::Client(ClientError::Device(e)) => (3, format!("alumia: device login: {e}")),
        CliError::Client(ClientError::InvalidInput(m)) => (2, format!("alumia: {m}")),
        CliError::Client(e) => (1, format!("alumia: {e}")),
        CliError::NotLoggedIn(m) => (3, format!("alumia: {m}")),
        CliError::Usage(m) => (2, format!("alumia: {m}")),
        CliError::Failed(m) => (1, format!("alumia: {m}")),
    };
    let _ = std::io::stdout().flush();
    eprintln!("{line}");
    ExitCode::from(code)
}

/// A client for a command that needs credentials (spec 05 §2):
/// `ALUMIA_API_KEY` first (URL from `--url`/`ALUMIA_URL`, the stored one,
/// or the default), then the stored file (URL overridable).
pub fn resolve(global: &Connection, env: &ClientEnv) -> CliResult<Client> {
    let path = credentials::path(env);
    let client = if let Some(key) = &env.api_key {
        let url = match &global.url {
            Some(url) => url.clone(),
            // The stored URL only matters here; a broken file is no reason to fail.
            None => path
                .as_deref()
                .and_then(|p| credentials::load(p).ok().flatten())
                .map(|c| c.url)
                .unwrap_or_else(|| DEFAULT_URL.to_string()),
        };
        Client::new(&url, Some(key.clone()))?
    } else {
        let stored: Option<Credentials> = match path.as_deref() {
            Some(p) => credentials::load(p)?,
            None => None,
        };
        let Some(stored) = stored else {
            return Err(CliError::NotLoggedIn(NOT_LOGGED_IN.into()));
        };
        let url = global.url.clone().unwrap_or(stored.url);
        Client::new(&url, Some(stored.api_key))?
    };
    Ok(match &global.org {
        Some(org) => client.org(org.clone()),
        None => client,
    })
}

/// Runs a command that needs a resolved client.
pub async fn with_client<F, Fut>(global: GlobalArgs, run: F) -> ExitCode
where
    F: FnOnce(Client, Out) -> Fut,
    Fut: Future<Output = CliResult>,
{
    let out = Out::of(&global);
    let env = ClientEnv::load();
    let result = match resolve(&global.conn, &env) {
        Ok(client) => run(client, out).await,
        Err(e) => Err(e),
    };
    finish(out, result)
}

/// A `list` command's pages: one page, or with `all` every page by
/// following cursors. With `--json` the pages are printed here as the API
/// sent them (all pages as one) and `None` comes back; else the rows.
pub async fn list_pages<T, F, Fut>(out: Out, all: bool, mut fetch: F) -> CliResult<Option<Vec<T>>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Reply<Page<T>>, ClientError>>,
{
    let mut items: Vec<Value> = Vec::new();
    let mut rows: Vec<T> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = fetch(cursor.take()).await?;
        if out.json && !all {
            out.json(&page.data);
            return Ok(None);
        }
        if let Some(raw) = page.data["items"].as_array() {
            items.extend(raw.iter().cloned());
        }
        let page = page.into_value();
        rows.extend(page.items);
        match page.next_cursor {
            Some(next) if all && page.has_more => cursor = Some(next),
            _ => break,
        }
    }
    if out.json {
        out.json(&json!({"items": items, "nextCursor": null, "hasMore": false}));
        return Ok(None);
    }
    Ok(Some(rows))
}

/// Prints aligned columns on stdout; an empty header prints none.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    if !header.is_empty() {
        table.set_header(header.to_vec());
    }
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// `-` for a missing value.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => "-".into(),
    }
}

/// The first line of `text`, cut to `max` characters with an ellipsis.
pub fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max || text.lines().nth(1).is_some() {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_spec_exit_codes() {
        for (status, code) in [
            (400, 1),
            (401, 3),
            (402, 6),
            (403, 3),
            (404, 4),
            (409, 5),
            (422, 5),
            (429, 6),
            (500, 1),
            (503, 1),
        ] {
            assert_eq!(exit_code_for_status(status), code, "{status}");
        }
    }

    #[test]
    fn short_cuts_long_and_multiline_text() {
        assert_eq!(short("hello", 10), "hello");
        assert_eq!(short("hello world", 6), "hello…");
        assert_eq!(short("one\ntwo", 10), "one…");
        assert_eq!(short("", 10), "");
    }
}
