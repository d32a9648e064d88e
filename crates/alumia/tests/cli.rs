//! The terminal client (spec 05) end to end: the real `alumia` binary as a
//! child process against a real server on loopback ([`TestApp`]), each test
//! with its own temporary `XDG_CONFIG_HOME`. Checks stdout, stderr, exit
//! codes and the credentials file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use alumia_testkit::{Browser, TEST_PASSWORD, TestApp, eventually};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_alumia");
const EMAIL: &str = "owner@example.com";
const ORG: &str = "acme";
/// Generous: a CLI run is a process start and one or two requests.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

// --- helpers -----------------------------------------------------------------

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Ran {
    /// stdout as one JSON document.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "a panic: {self:?}"
        );
        self
    }
}

/// The CLI in a sandbox: its own config folder (as both `XDG_CONFIG_HOME`
/// and `HOME`), no inherited `ALUMIA_*`, no display, optionally a key and URL
/// in the environment.
struct Cli {
    home: tempfile::TempDir,
    url: Option<String>,
    key: Option<String>,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            home: tempfile::tempdir().unwrap(),
            url: None,
            key: None,
        }
    }

    /// `ALUMIA_URL` and `ALUMIA_API_KEY` set.
    fn with_key(url: &str, key: &str) -> Cli {
        Cli {
            url: Some(url.to_string()),
            key: Some(key.to_string()),
            ..Cli::new()
        }
    }

    fn credentials_path(&self) -> PathBuf {
        self.home.path().join("alumia").join("credentials.json")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ALUMIA_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("XDG_CONFIG_HOME", self.home.path())
            .env("HOME", self.home.path())
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .current_dir(self.home.path())
            .kill_on_drop(true);
        if let Some(url) = &self.url {
            cmd.env("ALUMIA_URL", url);
        }
        if let Some(key) = &self.key {
            cmd.env("ALUMIA_API_KEY", key);
        }
        cmd
    }

    async fn run(&self, args: &[&str]) -> Ran {
        self.run_stdin(args, None).await
    }

    /// Runs to completion, with `stdin` as standard input (else none).
    async fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Ran {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn alumia");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let out = tokio::time::timeout(RUN_DEADLINE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("alumia {args:?} still running after {RUN_DEADLINE:?}"))
            .expect("wait for alumia");
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Started with piped stdout and stderr, not waited for.
    fn spawn(&self, args: &[&str]) -> Child {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn alumia")
    }
}

/// A server with its owner signed in (fresh step-up) and a key minted with
/// the default scope.
async fn app_with_key() -> (TestApp, Browser, String) {
    let app = TestApp::spawn().await;
    let mut browser = app.browser();
    browser.setup(EMAIL, ORG).await;
    let (key, _) = browser.mint_key("cli tests", None).await;
    (app, browser, key)
}

/// `GET` with a key; the envelope's `data`.
async fn api_get(app: &TestApp, key: &str, path: &str) -> Value {
    let res = app.get_with_key(path, key).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    body["data"].clone()
}

/// The uuid after `Session: ` on stderr.
fn session_id_in(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find_map(|l| l.split("Session: ").nth(1))
        .unwrap_or_else(|| panic!("no session id on stderr: {stderr}"));
    let id = line.trim().to_string();
    assert_eq!(id.len(), 36, "not a uuid: {id:?}");
    id
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A `XXXX-XXXX` user code anywhere in `line`.
fn user_code_in(line: &str) -> Option<String> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| {
            w.len() == 9
                && w.as_bytes()[4] == b'-'
                && w.chars()
                    .enumerate()
                    .all(|(i, c)| i == 4 || c.is_ascii_uppercase())
        })
        .map(str::to_string)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// --- read commands, human and --json -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_prints_url_email_org_role_prefix_and_scopes() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["whoami"]).await;
    ran.assert_code(0);
    for needle in [&app.url, EMAIL, ORG, "owner", &key[..12], "models:read"] {
        assert!(ran.stdout.contains(needle), "{needle:?} missing: {ran:?}");
    }
    assert!(!ran.stdout.contains(&key), "the key was printed: {ran:?}");

    let ran = cli.run(&["whoami", "--json"]).await;
    ran.assert_code(0);
    let me = ran.json();
    assert_eq!(me["user"]["email"], EMAIL);
    assert_eq!(me["org"]["slug"], ORG);
    assert_eq!(me["role"], "owner");
    assert_eq!(me["principal"]["kind"], "api_key");
    assert_eq!(me["principal"]["keyPrefix"], &key[..12]);
    // Verbatim: exactly what the API's `data` holds.
    assert_eq!(me, api_get(&app, &key, "/api/v1/me").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_shows_dev_echo_as_a_table_and_as_the_page() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["models", "list"]).await;
    ran.assert_code(0);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{ran:?}");
    assert!(lines[0].contains("DEFAULT"), "{ran:?}");
    let echo = lines
        .iter()
        .find(|l| l.starts_with("dev/echo"))
        .expect("dev/echo row");
    assert!(echo.ends_with("yes"), "dev/echo is the default: {ran:?}");
    // Aligned: the second column starts at the same offset on every line.
    let col = lines[0].find("NAME").unwrap();
    assert_eq!(&echo[col..col + 4], "Echo", "{ran:?}");

    let ran = cli.run(&["models", "list", "--json"]).await;
    ran.assert_code(0);
    let page = ran.json();
    assert_eq!(page["hasMore"], false);
    assert!(page["nextCursor"].is_null());
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "dev/echo"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_list_get_and_create_in_both_modes() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["agents", "list"]).await;
    ran.assert_code(0);
    assert!(
        ran.stdout.lines().next().unwrap().starts_with("ID"),
        "{ran:?}"
    );
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.contains(" ala ") && l.contains("Ala")),
        "{ran:?}"
    );

    let ran = cli
        .run(&[
            "agents",
            "create",
            "--name",
            "Helper Bot",
            "--description",
            "helps",
            "--system-prompt",
            "Be brief.",
        ])
        .await;
    ran.assert_code(0);
    assert!(
        ran.stdout.starts_with("Created agent helper-bot ("),
        "{ran:?}"
    );

    let prompt = cli.home.path().join("prompt.txt");
    std::fs::write(&prompt, "From a file.\nSecond line.").unwrap();
    let ran = cli
        .run(&[
            "agents",
            "create",
            "--json",
            "--name",
            "Filer",
            "--slug",
            "filer",
            "--model",
            "dev/echo",
            "--system-prompt-file",
            prompt.to_str().unwrap(),
        ])
        .await;
    ran.assert_code(0);
    let created = ran.json();
    assert_eq!(created["slug"], "filer");
    assert_eq!(created["model"], "dev/echo");
    assert_eq!(created["systemPrompt"], "From a file.\nSecond line.");

    let ran = cli.run(&["agents", "get", "helper-bot"]).await;
    ran.assert_code(0);
    for needle in ["Helper Bot", "helper-bot", "helps", "Be brief.", "dev/echo"] {
        assert!(ran.stdout.contains(needle), "{needle:?} missing: {ran:?}");
    }
    let ran = cli
        .run(&["agents", "get", created["id"].as_str().unwrap(), "--json"])
        .await;
    ran.assert_code(0);
    assert_eq!(ran.json(), created);

    // One page of one, then every page.
    let ran = cli.run(&["agents", "list", "--limit", "1", "--json"]).await;
    ran.assert_code(0);
    let page = ran.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["hasMore"], true);
    assert!(page["nextCursor"].is_string());
    let ran = cli
        .run(&["agents", "list", "--limit", "1", "--all", "--json"])
        .await;
    ran.assert_code(0);
    let all = ran.json();
    let mut slugs: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    slugs.sort();
    assert_eq!(slugs, ["ala", "filer", "helper-bot"]);
    assert_eq!(all["hasMore"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_create_and_list_with_filters() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["sessions", "list"]).await;
    ran.assert_code(0);
    assert_eq!(ran.stdout.trim(), "No sessions.", "{ran:?}");

    let ran = cli
        .run(&["sessions", "create", "--agent", "ala", "--label", "Notes"])
        .await;
    ran.assert_code(0);
    assert!(ran.stdout.starts_with("Created session "), "{ran:?}");
    let ran = cli
        .run(&["sessions", "create", "--label", "Plain", "--json"])
        .await;
    ran.assert_code(0);
    let plain = ran.json();
    assert_eq!(plain["label"], "Plain");
    assert!(plain["agentId"].is_null());

    let ran = cli.run(&["sessions", "list"]).await;
    ran.assert_code(0);
    let notes = ran
        .stdout
        .lines()
        .find(|l| l.contains("Notes"))
        .unwrap_or_else(|| panic!("{ran:?}"));
    assert!(notes.contains("Ala") && notes.contains("active"), "{ran:?}");
    assert!(ran.stdout.contains("Plain"), "{ran:?}");

    let ran = cli
        .run(&["sessions", "list", "--agent", "ala", "--json"])
        .await;
    ran.assert_code(0);
    let page = ran.json();
    let labels: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Notes"]);
    assert_eq!(page["hasMore"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_list_and_revoke() {
    let (app, browser, key) = app_with_key().await;
    let (other, other_view) = browser.mint_key("to revoke", None).await;
    let other_id = other_view["id"].as_str().unwrap();
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["keys", "list"]).await;
    ran.assert_code(0);
    assert!(
        ran.stdout.lines().next().unwrap().starts_with("ID"),
        "{ran:?}"
    );
    for needle in [
        "cli tests",
        "to revoke",
        &key[..12],
        &other[..12],
        "dashboard",
    ] {
        assert!(ran.stdout.contains(needle), "{needle:?} missing: {ran:?}");
    }

    let ran = cli.run(&["keys", "revoke", other_id]).await;
    ran.assert_code(0);
    assert!(
        ran.stdout.starts_with(&format!("Revoked key {other_id}")),
        "{ran:?}"
    );
    let res = app.get_with_key("/api/v1/me", &other).await;
    assert_eq!(res.status(), 401, "the revoked key still works");

    let ran = cli.run(&["keys", "list", "--json"]).await;
    ran.assert_code(0);
    let page = ran.json();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{page}");
    assert!(!ids.contains(&other_id));

    // Again: 409 already_revoked → exit 5, the envelope on stderr with --json.
    let ran = cli.run(&["keys", "revoke", other_id, "--json"]).await;
    ran.assert_code(5);
    let envelope: Value = serde_json::from_str(ran.stderr.trim()).expect("envelope on stderr");
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["error"]["code"], "CONFLICT");
    assert_eq!(ran.stdout, "");
}

// --- chat ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_the_answer_to_stdout_and_the_session_id_to_stderr() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["chat", "--agent", "ala", "hello"]).await;
    ran.assert_code(0);
    assert_eq!(ran.stdout, "echo: hello\n", "{ran:?}");
    let session = session_id_in(&ran.stderr);
    let messages = api_get(&app, &key, &format!("/api/v1/sessions/{session}/messages")).await;
    let texts: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello", "echo: hello"]);

    // The same session again, the message from stdin.
    let ran = cli
        .run_stdin(&["chat", "--session", &session], Some("second turn\n"))
        .await;
    ran.assert_code(0);
    assert_eq!(ran.stdout, "echo: second turn\n", "{ran:?}");
    assert_eq!(session_id_in(&ran.stderr), session);

    // --json waits for the end of the turn.
    let ran = cli.run(&["chat", "--json", "hello", "there"]).await;
    ran.assert_code(0);
    let turn = ran.json();
    assert_eq!(turn["text"], "echo: hello there");
    assert_eq!(turn["finishReason"], "stop");
    assert_eq!(turn["usage"]["outputTokens"], 3, "{turn}");
    assert!(turn["sessionId"].is_string() && turn["sessionId"] != session.as_str());
    let message_id = turn["messageId"].as_str().unwrap();
    let messages = api_get(
        &app,
        &key,
        &format!(
            "/api/v1/sessions/{}/messages",
            turn["sessionId"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(messages["items"][1]["id"], message_id);

    // -q: nothing on stderr.
    let ran = cli.run(&["chat", "-q", "quiet"]).await;
    ran.assert_code(0);
    assert_eq!(ran.stdout, "echo: quiet\n");
    assert_eq!(ran.stderr, "", "{ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_writes_each_delta_as_it_arrives() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);
    // One delta per word, 400 ms apart: about 2.5 s in all.
    let mut child = cli.spawn(&["chat", "/delay 400\none two three four five six"]);
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(20), stdout.read(&mut buf))
        .await
        .expect("no output within 20 s")
        .unwrap();
    seen.extend_from_slice(&buf[..n]);
    let early = String::from_utf8_lossy(&seen).into_owned();
    assert!(early.starts_with("echo:"), "{early:?}");
    assert!(!early.contains("six"), "everything came at once: {early:?}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the process ended before the turn"
    );
    stdout.read_to_end(&mut seen).await.unwrap();
    let status = child.wait().await.unwrap();
    assert!(status.success());
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "echo: one two three four five six\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_shows_tool_activity_on_stderr_and_an_error_chunk_exits_1() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["chat", "/tool no_such_tool\nhi"]).await;
    ran.assert_code(0);
    assert!(ran.stderr.contains("→ tool no_such_tool"), "{ran:?}");
    assert!(ran.stderr.contains("← error"), "{ran:?}");
    assert!(ran.stdout.starts_with("echo: hi"), "{ran:?}");
    assert!(
        !ran.stdout.contains('→'),
        "tool activity on stdout: {ran:?}"
    );

    let ran = cli.run(&["chat", "/error boom"]).await;
    ran.assert_code(1);
    assert!(ran.stderr.contains("dev/echo error: boom"), "{ran:?}");
    session_id_in(&ran.stderr);

    let ran = cli.run(&["chat", "--json", "/error boom"]).await;
    ran.assert_code(1);
    assert_eq!(ran.json()["finishReason"], "error");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_turn_on_the_server_and_exits_130() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);
    let mut child = cli.spawn(&["chat", "/delay 500\na b c d e f g h i j"]);
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(20), stdout.read(&mut buf))
        .await
        .expect("no output within 20 s")
        .unwrap();
    assert!(n > 0);
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("still running after SIGINT")
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let session = session_id_in(&stderr);
    let data = api_get(&app, &key, &format!("/api/v1/sessions/{session}")).await;
    assert_eq!(data["status"], "paused", "{data}");
    let messages = api_get(&app, &key, &format!("/api/v1/sessions/{session}/messages")).await;
    assert_eq!(messages["items"][1]["status"], "cancelled", "{messages}");
}

// --- credentials ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_key_on_stdin_writes_a_private_credentials_file_used_afterwards() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::new();

    let ran = cli
        .run_stdin(&["login", "--url", &app.url], Some(&format!("{key}\n")))
        .await;
    ran.assert_code(0);
    assert_eq!(
        ran.stdout.trim(),
        format!("Logged in as {EMAIL} to {ORG} ({})", app.url)
    );

    let path = cli.credentials_path();
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600, "credentials.json mode");
        assert_eq!(mode(path.parent().unwrap()), 0o700, "alumia/ mode");
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let me = api_get(&app, &key, "/api/v1/me").await;
    assert_eq!(stored["url"], app.url.as_str());
    assert_eq!(stored["apiKey"], key.as_str());
    assert_eq!(stored["keyId"], me["principal"]["keyId"]);
    assert_eq!(stored["prefix"], &key[..12]);
    assert_eq!(stored["scopes"], json!(["models:read"]));
    assert_eq!(stored["org"], json!({"id": me["org"]["id"], "slug": ORG}));
    assert_eq!(
        stored["user"],
        json!({"id": me["user"]["id"], "email": EMAIL})
    );
    assert!(stored["createdAt"].is_string());

    // No key or URL in the environment: the file supplies both.
    let ran = cli.run(&["whoami"]).await;
    ran.assert_code(0);
    assert!(
        ran.stdout.contains(&app.url) && ran.stdout.contains(EMAIL),
        "{ran:?}"
    );
    assert!(!ran.stderr.contains("warning"), "{ran:?}");
    let ran = cli.run(&["chat", "hello"]).await;
    ran.assert_code(0);
    assert_eq!(ran.stdout, "echo: hello\n");

    // --url overrides the stored URL.
    let port = closed_port();
    let ran = cli
        .run(&["whoami", "--url", &format!("http://127.0.0.1:{port}")])
        .await;
    ran.assert_code(1);

    // A looser mode is warned about, and still works.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let ran = cli.run(&["whoami"]).await;
        ran.assert_code(0);
        assert!(
            ran.stderr.contains("warning") && ran.stderr.contains("chmod 600"),
            "{ran:?}"
        );
    }

    // A bad key is refused before anything is stored.
    let other = Cli::new();
    let ran = other
        .run_stdin(
            &["login", "--url", &app.url],
            Some("alm_test_000000000000000000000000000000000000000000000000"),
        )
        .await;
    ran.assert_code(3);
    assert!(!other.credentials_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_stored_key_and_deletes_the_file() {
    let (app, browser, key) = app_with_key().await;
    let cli = Cli::new();
    cli.run_stdin(&["login", "--url", &app.url], Some(&key))
        .await
        .assert_code(0);

    let ran = cli.run(&["logout"]).await;
    ran.assert_code(0);
    assert!(!cli.credentials_path().exists());
    assert!(ran.stdout.contains("Logged out"), "{ran:?}");

    // The key itself no longer works: 401 → exit 3.
    let with_key = Cli::with_key(&app.url, &key);
    let ran = with_key.run(&["whoami"]).await;
    ran.assert_code(3);
    assert!(ran.stderr.contains("alumia login --device"), "{ran:?}");
    // And without the file there are no credentials at all.
    let ran = cli.run(&["whoami"]).await;
    ran.assert_code(3);

    // --local-only leaves the key valid.
    let (second, _) = browser.mint_key("second", None).await;
    cli.run_stdin(&["login", "--url", &app.url], Some(&second))
        .await
        .assert_code(0);
    cli.run(&["logout", "--local-only"]).await.assert_code(0);
    assert!(!cli.credentials_path().exists());
    Cli::with_key(&app.url, &second)
        .run(&["whoami"])
        .await
        .assert_code(0);
}

// --- exit codes -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let cli = Cli::with_key("http://127.0.0.1:9", "alm_test_x");
    for args in [
        &["agents", "bogus"][..],
        &["chat", "--bogus", "hi"],
        &["agents", "create"],
        &["agents", "list", "--limit", "0"],
        &["login", "--scope", "admin", "--device"],
        &[
            "agents",
            "create",
            "--name",
            "x",
            "--system-prompt",
            "a",
            "--system-prompt-file",
            "b",
        ],
        &["mcp"],
        &["nope"],
    ] {
        let ran = cli.run(args).await;
        ran.assert_code(2);
        assert!(!ran.stderr.is_empty(), "{args:?}: {ran:?}");
    }
    // No message in the arguments and none on stdin.
    cli.run_stdin(&["chat"], Some("")).await.assert_code(2);
    // A URL that is not http(s).
    cli.run(&["whoami", "--url", "ftp://x"])
        .await
        .assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_exit_3_and_name_device_login() {
    let cli = Cli::new();
    for args in [
        &["whoami"][..],
        &["agents", "list"],
        &["chat", "hi"],
        &["mcp", "--stdio"],
    ] {
        let ran = cli.run(args).await;
        ran.assert_code(3);
        assert!(
            ran.stderr.contains("run `alumia login --device`"),
            "{ran:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_map_to_exit_codes_4_5_and_3() {
    let (app, _browser, key) = app_with_key().await;
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["agents", "get", "no-such-agent"]).await;
    ran.assert_code(4);
    assert!(ran.stderr.contains("404"), "{ran:?}");
    let ran = cli
        .run(&["sessions", "list", "--agent", "no-such-agent"])
        .await;
    ran.assert_code(4);

    // 422 reserved_name.
    let ran = cli.run(&["agents", "create", "--name", "Ala"]).await;
    ran.assert_code(5);
    assert!(ran.stderr.contains("reserved_name"), "{ran:?}");
    // 422 unknown_model, as the envelope with --json.
    let ran = cli
        .run(&[
            "agents",
            "create",
            "--name",
            "X",
            "--model",
            "nope/nope",
            "--json",
        ])
        .await;
    ran.assert_code(5);
    let envelope: Value = serde_json::from_str(ran.stderr.trim()).expect("envelope on stderr");
    assert_eq!(envelope["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(envelope["error"]["reason"], "unknown_model");
    // 409 slug_taken.
    cli.run(&["agents", "create", "--name", "Dup", "--slug", "dup"])
        .await
        .assert_code(0);
    let ran = cli
        .run(&["agents", "create", "--name", "Dup two", "--slug", "dup"])
        .await;
    ran.assert_code(5);
    assert!(ran.stderr.contains("slug_taken"), "{ran:?}");

    // 403 org_mismatch.
    let ran = cli.run(&["whoami", "--org", "someone-else"]).await;
    ran.assert_code(3);
    assert!(ran.stderr.contains("org_mismatch"), "{ran:?}");
    cli.run(&["whoami", "--org", ORG]).await.assert_code(0);

    // 400 invalid_reference (an unknown agent in a chat) is "other": 1.
    cli.run(&["chat", "--agent", "nobody", "hi"])
        .await
        .assert_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_exits_1_with_one_clear_line() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let cli = Cli::with_key(&url, "alm_test_x");
    for args in [
        &["whoami"][..],
        &["chat", "hi"],
        &["agents", "list", "--json"],
    ] {
        let ran = cli.run(args).await;
        ran.assert_code(1);
        assert_eq!(
            ran.stderr.trim(),
            format!("alumia: cannot reach the server at {url}: connection refused"),
            "{args:?}"
        );
        assert_eq!(ran.stdout, "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_500_exits_1_with_a_clear_message() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "database on fire",
        )
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let cli = Cli::with_key(&url, "alm_test_x");
    for args in [&["whoami"][..], &["chat", "hi"], &["models", "list"]] {
        let ran = cli.run(args).await;
        ran.assert_code(1);
        assert_eq!(ran.stderr.lines().count(), 1, "{ran:?}");
        assert!(
            ran.stderr.contains("500") && ran.stderr.contains("database on fire"),
            "{ran:?}"
        );
    }
    // With --json the error is still an envelope.
    let ran = cli.run(&["whoami", "--json"]).await;
    ran.assert_code(1);
    let envelope: Value = serde_json::from_str(ran.stderr.trim()).expect("envelope on stderr");
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["error"]["code"], "INTERNAL_ERROR");
    server.abort();
}

// --- device login (spec 01 §10, 05 §4) ---------------------------------------------

/// `alumia login --device --no-browser`, the user code read from its stderr;
/// returns the child and the code, with stderr drained in the background.
async fn start_device_login(
    cli: &Cli,
    url: &str,
) -> (Child, String, tokio::task::JoinHandle<String>) {
    let mut child = cli.spawn(&["login", "--device", "--no-browser", "--url", url]);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let code = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let line = lines.next_line().await.unwrap()?;
            seen.push_str(&line);
            seen.push('\n');
            if let Some(code) = user_code_in(&line) {
                return Some(code);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no user code on stderr within 20 s: {seen}"))
    .unwrap_or_else(|| panic!("stderr ended without a user code: {seen}"));
    let rest = tokio::spawn(async move {
        let mut rest = seen;
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    (child, code, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_end_to_end_then_chat_with_the_stored_key() {
    let app = TestApp::spawn().await;
    let mut browser = app.browser();
    browser.setup(EMAIL, ORG).await;
    let cli = Cli::new();

    let (mut child, code, stderr) = start_device_login(&cli, &app.url).await;
    let step_up = browser.step_up(TEST_PASSWORD).await;
    assert_eq!(step_up.status(), 200, "{:?}", step_up.text().await);
    let res = browser
        .post("/api/v1/auth/device/approve", json!({"userCode": code}))
        .await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "approve: {body}");
    assert_eq!(body["data"]["approved"], true);

    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("login still running 60 s after approval")
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let stderr = stderr.await.unwrap();
    assert!(exit.success(), "exit {exit}\n{stdout}\n{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("Logged in as {EMAIL} to {ORG} ({})", app.url)
    );
    assert!(stderr.contains("/device"), "no verification URI: {stderr}");

    let path = cli.credentials_path();
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let scopes = stored["scopes"].as_array().unwrap();
    assert!(scopes.contains(&json!("terminal")), "{stored}");
    assert!(scopes.contains(&json!("models:read")), "{stored}");
    let keys = eventually(Duration::from_secs(5), || async {
        let res = browser.get("/api/v1/api-keys").await;
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        Ok::<Value, String>(body["data"]["items"].clone())
    })
    .await;
    let key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == stored["keyId"])
        .unwrap_or_else(|| panic!("the device key is not listed: {keys}"));
    assert_eq!(key["createdVia"], "device");

    let ran = cli.run(&["chat", "--agent", "ala", "hello"]).await;
    ran.assert_code(0);
    assert!(ran.stdout.contains("echo: hello"), "{ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_denied_exits_3_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let mut browser = app.browser();
    browser.setup(EMAIL, ORG).await;
    let cli = Cli::new();

    let (mut child, code, stderr) = start_device_login(&cli, &app.url).await;
    let res = browser
        .post("/api/v1/auth/device/deny", json!({"userCode": code}))
        .await;
    assert_eq!(res.status(), 200, "deny: {:?}", res.text().await);
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("login still running 60 s after denial")
        .unwrap();
    let stderr = stderr.await.unwrap();
    assert_eq!(exit.code(), Some(3), "{stderr}");
    assert!(stderr.contains("denied"), "{stderr}");
    assert!(!cli.credentials_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_list_get_and_export_a_verifiable_manifest() {
    let (app, _browser, key) = app_with_key().await;
    let res = app
        .http
        .post(app.at("/api/v1/projects"))
        .bearer_auth(&key)
        .json(&json!({"name": "Launch", "emoji": "🚀", "tags": ["q3"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cli = Cli::with_key(&app.url, &key);

    let ran = cli.run(&["projects", "list"]).await;
    ran.assert_code(0);
    assert!(ran.stdout.starts_with("ID"), "{ran:?}");
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.contains(" launch ") && l.contains("Launch")),
        "{ran:?}"
    );
    let ran = cli.run(&["projects", "get", "launch", "--json"]).await;
    ran.assert_code(0);
    assert_eq!(ran.json()["tags"], json!(["q3"]));
    assert!(ran.json()["spend"].is_object(), "get carries spend");
    cli.run(&["projects", "get", "nope"]).await.assert_code(4);

    let path = cli.home.path().join("launch.json");
    let ran = cli
        .run(&[
            "projects",
            "export",
            "launch",
            "--output",
            path.to_str().unwrap(),
        ])
        .await;
    ran.assert_code(0);
    assert_eq!(mode(&path), 0o600, "the manifest is private");
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(manifest["format"], "alumia.project-export");
    assert_eq!(manifest["project"]["name"], "Launch");
    let read = alumia_core::portability::read(&manifest).expect("a manifest");
    assert!(read.checksum_valid, "the written manifest verifies");
    // To stdout without --output.
    let ran = cli.run(&["projects", "export", "launch"]).await;
    ran.assert_code(0);
    assert_eq!(ran.json()["project"], manifest["project"]);
}
