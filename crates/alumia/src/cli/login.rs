//! `alumia login [--device]` and `alumia logout` (spec 05 §4).

use std::io::{IsTerminal, Read, Write};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alumia_client::{Client, ClientError, DeviceGrantError};
use serde_json::json;

use super::credentials::{self, Credentials};
use super::{CliError, CliResult, DEFAULT_URL, GlobalArgs, Out, finish};
use crate::config::ClientEnv;

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Sign in in a browser (device authorization); without it, an API key
    /// is read from stdin.
    #[arg(long)]
    pub device: bool,
    /// Also grant an MCP scope to the new key (repeatable).
    #[arg(
        long = "scope",
        value_name = "SCOPE",
        value_parser = ["mcp:read", "mcp:write"],
        requires = "device"
    )]
    pub scopes: Vec<String>,
    /// Do not open a browser; only print the link and the code.
    #[arg(long, requires = "device")]
    pub no_browser: bool,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// Only delete the stored credentials; do not revoke the key.
    #[arg(long)]
    pub local_only: bool,
}

pub async fn login(args: LoginArgs, global: GlobalArgs) -> ExitCode {
    let out = Out::of(&global);
    let env = ClientEnv::load();
    finish(out, run_login(args, &global, &env, out).await)
}

pub async fn logout(args: LogoutArgs, global: GlobalArgs) -> ExitCode {
    let out = Out::of(&global);
    let env = ClientEnv::load();
    finish(out, run_logout(args, &global, &env, out).await)
}

fn credentials_path(env: &ClientEnv) -> CliResult<std::path::PathBuf> {
    credentials::path(env).ok_or_else(|| {
        CliError::Failed(
            "cannot tell where to keep credentials: set HOME or XDG_CONFIG_HOME".into(),
        )
    })
}

async fn run_login(args: LoginArgs, global: &GlobalArgs, env: &ClientEnv, out: Out) -> CliResult {
    let path = credentials_path(env)?;
    let url = match &global.conn.url {
        Some(url) => url.clone(),
        None => credentials::load(&path)
            .ok()
            .flatten()
            .map(|c| c.url)
            .unwrap_or_else(|| DEFAULT_URL.to_string()),
    };
    // Fail on a bad URL before asking for anything.
    let anonymous = Client::new(&url, None)?;
    let key = if args.device {
        device_flow(&anonymous, &args, env, out).await?
    } else {
        read_key()?
    };
    let mut client = Client::new(&url, Some(key.clone()))?;
    if let Some(org) = &global.conn.org {
        client = client.org(org.clone());
    }
    let me = client.me().await?;
    let stored = Credentials::from_me(client.base_url(), key, &me)?;
    credentials::save(&path, &stored)?;
    if out.json {
        out.json(&me.data);
    } else {
        println!(
            "Logged in as {} to {} ({})",
            stored.user.email,
            stored.org.slug,
            client.base_url()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The key from stdin: a hidden prompt on a terminal, else all of stdin.
fn read_key() -> CliResult<String> {
    let stdin = std::io::stdin();
    let raw = if stdin.is_terminal() {
        rpassword::prompt_password("API key: ")
            .map_err(|e| CliError::Failed(format!("cannot read the API key: {e}")))?
    } else {
        let mut s = String::new();
        stdin
            .lock()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Failed(format!("cannot read the API key from stdin: {e}")))?;
        s
    };
    let key = raw.trim();
    if key.is_empty() {
        return Err(CliError::Usage(
            "no API key on stdin (or use `alumia login --device`)".into(),
        ));
    }
    Ok(key.to_string())
}

/// RFC 8628 from the device side: ask for a code, show it, poll until the
/// user decides. Returns the new key.
async fn device_flow(
    client: &Client,
    args: &LoginArgs,
    env: &ClientEnv,
    out: Out,
) -> CliResult<String> {
    let mut scopes = vec!["terminal", "models:read"];
    for scope in &args.scopes {
        if !scopes.contains(&scope.as_str()) {
            scopes.push(scope);
        }
    }
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let device_name: String = host.chars().take(64).collect();
    let device_name = (!device_name.is_empty()).then_some(device_name);
    let code = client.device_code(&scopes, device_name.as_deref()).await?;

    // The code is the point of this command: shown even with -q.
    eprintln!(
        "To sign in, open {} and enter the code: {}",
        code.verification_uri, code.user_code
    );
    if !args.no_browser && env.has_display && open_browser(&code.verification_uri_complete) {
        out.progress("A browser window was opened for you.");
    }

    let _spinner = (!out.quiet && std::io::stderr().is_terminal())
        .then(|| Spinner::start("Waiting for approval in the browser…"));
    let mut interval = u64::try_from(code.interval).unwrap_or(0).max(1);
    let deadline =
        Instant::now() + Duration::from_secs(u64::try_from(code.expires_in).unwrap_or(0).max(1));
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        match client.device_token(&code.device_code).await {
            Ok(token) => return Ok(token.access_token),
            Err(ClientError::Device(DeviceGrantError::AuthorizationPending)) => {}
            Err(ClientError::Device(DeviceGrantError::SlowDown)) => interval += 5,
            // The per-IP token bucket: back off the same way.
            Err(ClientError::Api { status, .. }) if status.as_u16() == 429 => interval += 5,
            Err(ClientError::Device(e)) => {
                return Err(CliError::NotLoggedIn(format!("device login failed: {e}")));
            }
            Err(ClientError::Api { message, .. }) => {
                return Err(CliError::NotLoggedIn(format!(
                    "device login failed: {message}"
                )));
            }
            Err(other) => return Err(other.into()),
        }
        if Instant::now() >= deadline {
            return Err(CliError::NotLoggedIn(
                "device login failed: the code expired before it was approved".into(),
            ));
        }
    }
}

/// `open` on macOS, `xdg-open` elsewhere; detached, output discarded.
fn open_browser(url: &str) -> bool {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reap it whenever it ends.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

/// A one-line spinner on stderr, erased when dropped.
struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start(message: &str) -> Spinner {
        const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let message = message.to_string();
        let thread = std::thread::spawn(move || {
            let mut stderr = std::io::stderr();
            for frame in FRAMES.iter().cycle() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let _ = write!(stderr, "\r{frame} {message}");
                let _ = stderr.flush();
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        });
        Spinner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run_logout(args: LogoutArgs, global: &GlobalArgs, env: &ClientEnv, out: Out) -> CliResult {
    let path = credentials_path(env)?;
    let Some(stored) = credentials::load(&path)? else {
        out.progress(format!(
            "Not logged in ({} does not exist).",
            path.display()
        ));
        if out.json {
            out.json(&json!({"loggedOut": false, "revoked": false}));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let url = global
        .conn
        .url
        .clone()
        .unwrap_or_else(|| stored.url.clone());
    let mut revoked = false;
    if !args.local_only {
        // Errors are ignored (spec 05 §4): the file goes either way.
        match Client::new(&url, Some(stored.api_key.clone())) {
            Ok(client) => match client.keys_revoke(&stored.key_id).await {
                Ok(_) => {
                    revoked = true;
                    out.progress(format!("Revoked key {}.", stored.prefix));
                }
                Err(e) => out.progress(format!("Could not revoke key {}: {e}", stored.prefix)),
            },
            Err(e) => out.progress(format!("Could not revoke key {}: {e}", stored.prefix)),
        }
    }
    credentials::remove(&path)?;
    if out.json {
        out.json(&json!({"loggedOut": true, "revoked": revoked, "keyId": stored.key_id}));
    } else {
        println!("Logged out of {} ({url})", stored.org.slug);
    }
    Ok(ExitCode::SUCCESS)
}
