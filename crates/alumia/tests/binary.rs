//! End-to-end tests of the real `alumia` binary: each test runs it as a child
//! process in its own temporary directory, talks to it over a real socket
//! and checks exit codes and output.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_alumia");
const PASSWORD: &str = "correct horse battery";
const POLL: Duration = Duration::from_millis(50);
const START_DEADLINE: Duration = Duration::from_secs(20);

// --- helpers -----------------------------------------------------------------

/// A command for the binary with a clean `ALUMIA_*` environment, the given
/// working directory and `ALUMIA_ENV=development`.
fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ALUMIA_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir).env("ALUMIA_ENV", "development");
    cmd
}

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

fn run_with(mut cmd: Command, args: &[&str]) -> Ran {
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the alumia binary");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `alumia <args>` to completion in `dir`.
fn alumia(dir: &Path, args: &[&str]) -> Ran {
    run_with(command(dir), args)
}

/// A port nothing listens on right now.
fn free_port(host: &str) -> u16 {
    let listener = TcpListener::bind((host, 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// A running `alumia serve`; killed (and its log shown on failure) on drop.
struct Server {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// `alumia serve --listen <host>:<free port> <extra…>` in `dir`.
    fn start(dir: &Path, host: &str, extra: &[&str]) -> Server {
        Self::start_with(command(dir), host, extra)
    }

    fn start_with(mut cmd: Command, host: &str, extra: &[&str]) -> Server {
        let port = free_port(host);
        let listen = format!("{host}:{port}");
        let mut child = cmd
            .arg("serve")
            .args(["--listen", &listen])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn alumia serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Server {
            child,
            port,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Polls `/healthz` until it answers 200; fails early if the process exits.
    async fn wait_healthy(&mut self) {
        let http = client();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                panic!("alumia serve exited early with {status}:\n{}", self.log());
            }
            if let Ok(r) = http.get(self.url("/healthz")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "alumia serve not healthy after {START_DEADLINE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until stderr contains `needle`, returns the line holding it.
    async fn wait_log_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line containing {needle:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "alumia serve still running after {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends SIGTERM through `kill(1)` (the crate forbids unsafe code).
    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- alumia serve stderr ---\n{}", self.log());
        }
    }
}

fn setup_body() -> Value {
    json!({
        "email": "ada@example.com",
        "password": PASSWORD,
        "orgSlug": "acme",
        "orgName": "Acme",
    })
}

async fn login(server: &Server, email: &str, password: &str) -> reqwest::StatusCode {
    client()
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login request")
        .status()
}

fn is_test_key(s: &str) -> bool {
    s.strip_prefix("alm_test_").is_some_and(|rest| {
        rest.len() == 48
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn json_line(ran: &Ran) -> Value {
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line of JSON: {ran:?}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {ran:?}"))
}

fn connection_refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Reads from `stream` until `buf` contains `needle`.
fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        let n = stream.read(&mut chunk).expect("read from the server");
        assert!(
            n > 0,
            "connection closed before {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

// --- tests -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_defaults_creates_the_sqlite_file_in_wal_mode_and_answers_health_and_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path(), "127.0.0.1", &[]);
    server.wait_healthy().await;
    let http = client();

    let data = tmp.path().join("alumia-data");
    let db = data.join("alumia.db");
    assert!(db.is_file(), "{} missing", db.display());

    let setup = http
        .post(server.url("/api/v1/setup"))
        .json(&setup_body())
        .send()
        .await
        .unwrap();
    assert_eq!(setup.status(), 201, "{:?}", setup.text().await);
    assert!(
        data.join("alumia.db-wal").is_file(),
        "no WAL file after a write"
    );
    // SQLite header bytes 18 and 19 are 2 in WAL mode.
    let header = std::fs::read(&db).unwrap();
    assert_eq!(&header[18..20], &[2, 2], "the database is not in WAL mode");

    let secret_path = data.join("secret.key");
    let meta = std::fs::metadata(&secret_path).expect("secret.key exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "secret.key mode");
    }
    let secret = std::fs::read_to_string(&secret_path).unwrap();
    let secret = secret.trim();
    assert!(secret.len() >= 32, "secret.key looks empty: {secret:?}");

    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);

    let startup = server.wait_log_line("listening on").await;
    assert!(startup.contains("database=sqlite"), "{startup}");
    assert!(
        startup.contains(&format!("127.0.0.1:{}", server.port)),
        "{startup}"
    );
    assert!(
        !server.log().contains(secret),
        "the secret key leaked into stderr"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path(), "127.0.0.1", &[]);
    server.wait_healthy().await;
    let setup = client()
        .post(server.url("/api/v1/setup"))
        .json(&setup_body())
        .send()
        .await
        .unwrap();
    assert_eq!(setup.status(), 201);

    // Headers first; `Expect: 100-continue` makes the server tell us when the
    // handler starts reading the body, so the request is surely in flight.
    let body = json!({ "email": "ada@example.com", "password": PASSWORD }).to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        server.port,
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    let mut buf = Vec::new();
    read_until(&mut stream, &mut buf, b"\r\n\r\n");
    assert!(
        buf.starts_with(b"HTTP/1.1 100"),
        "expected 100 Continue, got {:?}",
        String::from_utf8_lossy(&buf)
    );

    server.sigterm();
    server.wait_log_line("shutting down").await;
    // The listener closes once shutdown has begun: new connections fail.
    let deadline = Instant::now() + START_DEADLINE;
    while !connection_refused(server.port) {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(POLL).await;
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    // The rest of the request arrives during the shutdown: it is answered.
    stream.write_all(body.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight login not answered normally: {response}"
    );
    assert!(response.contains("\"success\":true"), "{response}");

    let status = server.wait_exit(Duration::from_secs(35)).await;
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(connection_refused(server.port), "port open after exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_bootstrap_is_idempotent_and_never_changes_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db_url = format!("sqlite://{}", dir.join("a.db").display());
    let data_dir = dir.to_str().unwrap();
    let bootstrap = |email: &str, password: &str| {
        alumia(
            dir,
            &[
                "admin",
                "bootstrap",
                "--email",
                email,
                "--password",
                password,
                "--org-slug",
                "acme",
                "--org-name",
                "Acme",
                "--database-url",
                &db_url,
                "--data-dir",
                data_dir,
            ],
        )
    };

    let first = bootstrap("a@x.io", PASSWORD);
    assert_eq!(first.code, Some(0), "{first:?}");
    let first_json = json_line(&first);
    assert_eq!(first_json["created"], json!(true), "{first:?}");
    assert!(first_json["userId"].is_string() && first_json["orgId"].is_string());

    let second = bootstrap("a@x.io", PASSWORD);
    assert_eq!(second.code, Some(0), "{second:?}");
    let second_json = json_line(&second);
    assert_eq!(second_json["created"], json!(false), "{second:?}");
    assert_eq!(second_json["userId"], first_json["userId"]);
    assert_eq!(second_json["orgId"], first_json["orgId"]);

    let third = bootstrap("a@x.io", "a different password entirely");
    assert_eq!(third.code, Some(0), "{third:?}");
    assert_eq!(json_line(&third)["created"], json!(false));

    let other = bootstrap("someone@else.io", PASSWORD);
    assert_eq!(other.code, Some(5), "{other:?}");

    let mut server = Server::start(
        dir,
        "127.0.0.1",
        &["--database-url", &db_url, "--data-dir", data_dir],
    );
    server.wait_healthy().await;
    assert_eq!(
        login(&server, "a@x.io", "a different password entirely").await,
        401
    );
    assert_eq!(login(&server, "a@x.io", PASSWORD).await, 200);
    // The refused bootstrap left no user behind.
    assert_eq!(login(&server, "someone@else.io", PASSWORD).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_key_prints_only_the_key_and_it_authenticates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db_url = format!("sqlite://{}", dir.join("a.db").display());
    let data_dir = dir.to_str().unwrap().to_string();
    let common = ["--database-url", &db_url, "--data-dir", &data_dir];
    let admin = |args: &[&str]| {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        all.extend_from_slice(&common);
        alumia(dir, &all)
    };

    let boot = admin(&[
        "bootstrap",
        "--email",
        "a@x.io",
        "--password",
        PASSWORD,
        "--org-slug",
        "acme",
        "--org-name",
        "Acme",
    ]);
    assert_eq!(boot.code, Some(0), "{boot:?}");

    let key_args = [
        "create-key",
        "--email",
        "a@x.io",
        "--org-slug",
        "acme",
        "--name",
        "ci",
    ];
    let minted = admin(&key_args);
    assert_eq!(minted.code, Some(0), "{minted:?}");
    let key = minted.stdout.strip_suffix('\n').unwrap_or(&minted.stdout);
    assert!(
        is_test_key(key) && !key.contains('\n'),
        "stdout must be exactly one key line: {minted:?}"
    );

    let mut as_json = key_args.to_vec();
    as_json.push("--json");
    let minted_json = admin(&as_json);
    assert_eq!(minted_json.code, Some(0), "{minted_json:?}");
    let v = json_line(&minted_json);
    let mut fields: Vec<&String> = v.as_object().expect("an object").keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["expiresAt", "id", "key", "prefix", "scopes"],
        "{v}"
    );
    let json_key = v["key"].as_str().unwrap();
    assert!(is_test_key(json_key), "{v}");
    assert!(json_key.starts_with(v["prefix"].as_str().unwrap()), "{v}");
    assert_eq!(v["scopes"], json!(["models:read"]));
    assert_eq!(v["expiresAt"], Value::Null);
    assert_ne!(json_key, key);

    let mut terminal = key_args.to_vec();
    terminal.extend_from_slice(&["--scopes", "terminal"]);
    let refused = admin(&terminal);
    assert_eq!(refused.code, Some(5), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");

    let unknown = admin(&[
        "create-key",
        "--email",
        "nobody@x.io",
        "--org-slug",
        "acme",
        "--name",
        "ci",
    ]);
    assert_eq!(unknown.code, Some(4), "{unknown:?}");
    assert!(unknown.stdout.is_empty(), "{unknown:?}");

    let user_args = [
        "create-user",
        "--email",
        "b@x.io",
        "--password",
        PASSWORD,
        "--org-slug",
        "acme",
        "--role",
        "member",
    ];
    let created = admin(&user_args);
    assert_eq!(created.code, Some(0), "{created:?}");
    let again = admin(&user_args);
    assert_eq!(again.code, Some(5), "{again:?}");

    let mut server = Server::start(dir, "127.0.0.1", &common);
    server.wait_healthy().await;
    let http = client();
    for k in [key, json_key] {
        let models = http
            .get(server.url("/api/v1/models"))
            .bearer_auth(k)
            .send()
            .await
            .unwrap();
        assert_eq!(models.status(), 200);
        let text = models.text().await.unwrap();
        assert!(text.contains("dev/echo"), "{text}");
    }
    let anonymous = http.get(server.url("/api/v1/models")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(login(&server, "b@x.io", PASSWORD).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_migrate_applies_migrations_and_is_repeatable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("nested").join("m.db");
    let db_url = format!("sqlite://{}", db.display());
    let args = [
        "admin",
        "migrate",
        "--database-url",
        &db_url,
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    for round in 0..2 {
        let ran = alumia(dir, &args);
        assert_eq!(ran.code, Some(0), "round {round}: {ran:?}");
        assert!(ran.stdout.contains("migrations applied"), "{ran:?}");
    }
    assert!(db.is_file(), "{} missing", db.display());

    // The migrated database serves without migrating again.
    let mut server = Server::start(
        dir,
        "127.0.0.1",
        &[
            "--database-url",
            &db_url,
            "--data-dir",
            dir.to_str().unwrap(),
            "--no-migrate",
        ],
    );
    server.wait_healthy().await;
    let ready = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_exits_with_code_2_and_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let bad_listen = alumia(dir, &["serve", "--listen", "not-an-address"]);
    assert_eq!(bad_listen.code, Some(2), "{bad_listen:?}");
    assert!(bad_listen.stderr.contains("listen"), "{bad_listen:?}");

    let listen = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let mut staging = command(dir);
    staging.env("ALUMIA_ENV", "staging");
    let staging = run_with(staging, &["serve", "--listen", &listen]);
    assert_eq!(staging.code, Some(2), "{staging:?}");
    assert!(staging.stderr.contains("ALUMIA_ENV"), "{staging:?}");

    let mut bad_key = command(dir);
    bad_key.env("ALUMIA_SECRET_KEY", "sekrit-but-not-32-bytes");
    let bad_key = run_with(bad_key, &["serve", "--listen", &listen]);
    assert_eq!(bad_key.code, Some(2), "{bad_key:?}");
    assert!(bad_key.stderr.contains("ALUMIA_SECRET_KEY"), "{bad_key:?}");
    assert!(!bad_key.stderr.contains("sekrit"), "{bad_key:?}");

    let mysql = "mysql://root:hunter2@h/db";
    let serve_mysql = alumia(
        dir,
        &["serve", "--listen", &listen, "--database-url", mysql],
    );
    assert_eq!(serve_mysql.code, Some(2), "{serve_mysql:?}");
    assert!(serve_mysql.stderr.contains("database"), "{serve_mysql:?}");
    assert!(!serve_mysql.stderr.contains("hunter2"), "{serve_mysql:?}");

    let admin_mysql = alumia(dir, &["admin", "migrate", "--database-url", mysql]);
    assert_eq!(admin_mysql.code, Some(2), "{admin_mysql:?}");
    assert!(!admin_mysql.stderr.contains("hunter2"), "{admin_mysql:?}");
    assert!(!admin_mysql.stdout.contains("hunter2"), "{admin_mysql:?}");

    assert!(
        !dir.join("alumia-data").exists(),
        "an invalid configuration must not create the data dir"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_token_is_required_when_listening_beyond_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path(), "0.0.0.0", &[]);
    server.wait_healthy().await;
    let line = server.wait_log_line("setup token").await;
    let token = line
        .split("setup token: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in {line:?}"))
        .to_string();
    assert!(token.len() >= 16, "{line}");

    let http = client();
    let status: Value = http
        .get(server.url("/api/v1/setup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["data"]["tokenRequired"], json!(true), "{status}");

    let without = http
        .post(server.url("/api/v1/setup"))
        .json(&setup_body())
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403);
    let err: Value = without.json().await.unwrap();
    assert_eq!(
        err["error"]["reason"],
        json!("invalid_setup_token"),
        "{err}"
    );

    let mut wrong = setup_body();
    wrong["setupToken"] = json!(format!("{token}x"));
    let wrong = http
        .post(server.url("/api/v1/setup"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);

    let mut body = setup_body();
    body["setupToken"] = json!(token);
    let with = http
        .post(server.url("/api/v1/setup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 201, "{:?}", with.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_server_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path(), "127.0.0.1", &[]);
    server.wait_healthy().await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let res = http
        .post(server.url("/api/v1/setup"))
        .json(&setup_body())
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let session = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("alumia_session=")
        .to_string();
    let body: Value = res.json().await.unwrap();
    let csrf = body["data"]["csrfToken"].as_str().unwrap().to_string();
    let res = http
        .post(server.url("/api/v1/api-keys"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    let key = res.json::<Value>().await.unwrap()["data"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    // Use the key, fail with a wrong one, fail a login: all logged, none with secrets.
    let plain = client();
    assert_eq!(
        plain
            .get(server.url("/api/v1/me"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Change the last hex digit (to one it is not) so the key is well-formed but wrong.
    let last = if key.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    assert_eq!(
        plain
            .get(server.url("/api/v1/me"))
            .bearer_auth(&wrong)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        login(&server, "ada@example.com", "the wrong password!").await,
        401
    );
    let log = server.log();
    assert!(log.contains("/api/v1/me"), "requests are logged: {log}");
    assert!(log.contains(&key[..12]), "the key prefix may be logged");
    for (what, secret) in [
        ("key", &key[12..]),
        ("wrong key", &wrong[12..]),
        ("password", PASSWORD),
        ("wrong password", "the wrong password!"),
        ("session cookie", session.as_str()),
        ("csrf token", csrf.as_str()),
    ] {
        assert!(!log.contains(secret), "the {what} reached the log");
    }
    let secret_key = std::fs::read_to_string(tmp.path().join("alumia-data/secret.key")).unwrap();
    assert!(
        !log.contains(secret_key.trim()),
        "the server secret reached the log"
    );
}

/// A loopback OpenAI-compatible server: `GET /v1/models` lists m1 and m2,
/// every chat completion streams "from the fake". Records Authorization.
async fn fake_openai() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::routing::{get, post};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new()
        .route(
            "/v1/models",
            get(|| async { axum::Json(json!({"object": "list", "data": [{"id": "m1"}, {"id": "m2"}]})) }),
        )
        .route(
            "/v1/chat/completions",
            post(move |headers: axum::http::HeaderMap| {
                let record = record.clone();
                async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    record.lock().unwrap().push(auth.to_string());
                    let chunk = |delta: Value, finish: Value| {
                        format!("data: {}\n\n", json!({"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
                    };
                    let body = [
                        chunk(json!({"role": "assistant", "content": "from "}), Value::Null),
                        chunk(json!({"content": "the fake"}), Value::Null),
                        chunk(json!({}), json!("stop")),
                        "data: [DONE]\n\n".to_string(),
                    ]
                    .concat();
                    ([("content-type", "text/event-stream")], body)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_from_the_environment_and_the_config_file_reach_the_catalogue_and_chat() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (base, seen) = fake_openai().await;
    let config = dir.join("alumia.toml");
    std::fs::write(
        &config,
        "[[providers]]\nid = \"local\"\nkind = \"anthropic\"\napi_key_env = \"LOCAL_LLM_KEY\"\nbase_url = \"http://127.0.0.1:9\"\n[[providers.models]]\nid = \"claude-x\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();

    // A provider whose key variable is unset stops `serve` with a clear message.
    let listen = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let unset = alumia(dir, &["serve", "--listen", &listen, "--config", &config]);
    assert_eq!(unset.code, Some(2), "{unset:?}");
    assert!(unset.stderr.contains("LOCAL_LLM_KEY"), "{unset:?}");

    let boot = alumia(
        dir,
        &[
            "admin",
            "bootstrap",
            "--email",
            "a@x.io",
            "--password",
            PASSWORD,
            "--org-slug",
            "acme",
            "--org-name",
            "Acme",
        ],
    );
    assert_eq!(boot.code, Some(0), "{boot:?}");
    let key = alumia(
        dir,
        &[
            "admin",
            "create-key",
            "--email",
            "a@x.io",
            "--org-slug",
            "acme",
            "--name",
            "ci",
        ],
    );
    let key = key.stdout.trim().to_string();

    let mut cmd = command(dir);
    cmd.env("ALUMIA_OPENAI_BASE_URL", &base)
        .env("ALUMIA_OPENAI_API_KEY", "sk-env-secret-4242")
        .env("LOCAL_LLM_KEY", "sk-file-secret-1717");
    let mut server = Server::start_with(cmd, "127.0.0.1", &["--config", &config]);
    server.wait_healthy().await;
    let line = server.wait_log_line("listening on").await;
    assert!(line.contains("providers=dev,local,openai"), "{line}");
    assert!(line.contains("models=4"), "{line}");

    let http = client();
    let models: Value = http
        .get(server.url("/api/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["dev/echo", "local/claude-x", "openai/m1", "openai/m2"]
    );

    let res = http
        .post(server.url("/api/v1/chat"))
        .bearer_auth(&key)
        .json(&json!({"model": "openai/m2", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("\"delta\":\"from \"") && body.contains("\"delta\":\"the fake\""),
        "{body}"
    );
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["Bearer sk-env-secret-4242"]
    );
    let log = server.log();
    assert!(
        !log.contains("sk-env-secret") && !log.contains("sk-file-secret"),
        "{log}"
    );
}
