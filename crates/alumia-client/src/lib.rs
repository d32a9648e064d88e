//! A typed async client of the Alumia REST API (`/api/v1`), used by the
//! CLI, by `alumia mcp --stdio` and by end-to-end tests.
//!
//! Every typed call returns a [`Reply`]: the typed value and the `data`
//! payload exactly as the server sent it (the CLI's `--json` prints that).
//! [`Client::raw`] calls any route. The API key is sent as a sensitive
//! header and never appears in `Debug` output or error messages.

mod error;
mod sse;
mod views;

use std::ops::Deref;
use std::time::Duration;

use alumia_types::Page;
use alumia_types::dto::{
    AgentRequest, AgentView, ApiKeyView, ChatRequest, ModelView, ProjectView, SessionRequest,
    SessionView,
};
use futures::StreamExt;
use reqwest::header::ACCEPT;
use reqwest::{RequestBuilder, Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use alumia_types::device::{DeviceCodeResponse, DeviceTokenResponse};
pub use error::{ClientError, DeviceGrantError};
pub use reqwest::{Method, StatusCode};
pub use sse::{ChatChunk, ChatStream};
pub use views::{MeView, PrincipalView, RevokedKeyView, StopView};

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// The `client_id` of the CLI in the device grant (spec 01 §10).
pub const DEVICE_CLIENT_ID: &str = "alumia-cli";
const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Connecting gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One read of a body may wait this long; the chat stream sends a
/// keep-alive every 15 s, so only a dead connection reaches it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A whole non-streaming request, unless [`Client::timeout`] says otherwise.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An answer's typed value and its `data` payload as sent.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub value: T,
    pub data: Value,
}

impl<T> Reply<T> {
    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> Deref for Reply<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Filters of `GET /api/v1/sessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionFilters {
    /// Project id or slug.
    pub project: Option<String>,
    /// Agent id.
    pub agent: Option<String>,
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A client of one server, with or without an API key, optionally pinned
/// to an org (`X-Alumia-Org`). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    api_key: Option<String>,
    org: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base_url())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("org", &self.org)
            .finish()
    }
}

impl Client {
    /// `base_url` is the server's root, e.g. `http://127.0.0.1:7420`
    /// (a path prefix is kept). Fails only on a URL that is not http(s).
    pub fn new(base_url: &str, api_key: Option<String>) -> Result<Client> {
        let invalid = |why: String| {
            ClientError::InvalidInput(format!("invalid server URL {base_url:?}: {why}"))
        };
        let mut base = Url::parse(base_url.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("it must start with http:// or https://".into()));
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("alumia/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::InvalidInput(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            api_key: api_key.filter(|k| !k.is_empty()),
            org: None,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// Sends `X-Alumia-Org: <slug>` with every request.
    pub fn org(mut self, slug: impl Into<String>) -> Client {
        self.org = Some(slug.into());
        self
    }

    /// The limit for a whole non-streaming request (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The server root without a trailing slash, e.g. `http://127.0.0.1:7420`.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    // --- identity -----------------------------------------------------------

    /// `GET /api/v1/me`.
    pub async fn me(&self) -> Result<Reply<MeView>> {
        self.call(Method::GET, self.endpoint(&["me"]), None).await
    }

    /// `GET /api/v1/api-keys`: one page (up to 100) of the caller's keys.
    pub async fn keys_list(&self, cursor: Option<&str>) -> Result<Reply<Page<ApiKeyView>>> {
        let mut url = self.endpoint(&["api-keys"]);
        query(&mut url, &[("limit", Some("100")), ("cursor", cursor)]);
        self.call(Method::GET, url, None).await
    }

    /// `DELETE /api/v1/api-keys/:id`.
    pub async fn keys_revoke(&self, id: &str) -> Result<Reply<RevokedKeyView>> {
        self.call(
            Method::DELETE,
            self.endpoint(&["api-keys", path_id(id)?]),
            None,
        )
        .await
    }

    // --- catalogue, agents, sessions ------------------------------------------

    /// `GET /api/v1/models`: the whole catalogue in one page.
    pub async fn models_list(&self) -> Result<Reply<Page<ModelView>>> {
        self.call(Method::GET, self.endpoint(&["models"]), None)
            .await
    }

    /// `GET /api/v1/agents`.
    pub async fn agents_list(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
        workspace: Option<&str>,
    ) -> Result<Reply<Page<AgentView>>> {
        let mut url = self.endpoint(&["agents"]);
        let limit = limit.map(|l| l.to_string());
        query(
            &mut url,
            &[
                ("limit", limit.as_deref()),
                ("cursor", cursor),
                ("workspaceId", workspace),
            ],
        );
        self.call(Method::GET, url, None).await
    }

    /// `GET /api/v1/agents/:id` (uuid or slug).
    pub async fn agents_get(&self, id_or_slug: &str) -> Result<Reply<AgentView>> {
        self.call(
            Method::GET,
            self.endpoint(&["agents", path_id(id_or_slug)?]),
            None,
        )
        .await
    }

    /// `GET /api/v1/projects`.
    pub async fn projects_list(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
        q: Option<&str>,
    ) -> Result<Reply<Page<ProjectView>>> {
        let mut url = self.endpoint(&["projects"]);
        let limit = limit.map(|l| l.to_string());
        query(
            &mut url,
            &[("limit", limit.as_deref()), ("cursor", cursor), ("q", q)],
        );
        self.call(Method::GET, url, None).await
    }

    /// `GET /api/v1/projects/:id` (uuid or slug), with workspaces and spend.
    pub async fn projects_get(&self, id_or_slug: &str) -> Result<Reply<ProjectView>> {
        self.call(
            Method::GET,
            self.endpoint(&["projects", path_id(id_or_slug)?]),
            None,
        )
        .await
    }

    /// `GET /api/v1/projects/:id/export`: the checksummed manifest as plain
    /// JSON (its checksum covers the canonical form, so re-serialising keeps
    /// it valid).
    pub async fn projects_export(&self, id_or_slug: &str) -> Result<Reply<Value>> {
        self.call(
            Method::GET,
            self.endpoint(&["projects", path_id(id_or_slug)?, "export"]),
            None,
        )
        .await
    }

    /// `POST /api/v1/agents`.
    pub async fn agents_create(&self, request: &AgentRequest) -> Result<Reply<AgentView>> {
        let body = body_of(request)?;
        self.call(Method::POST, self.endpoint(&["agents"]), Some(body))
            .await
    }

    /// `GET /api/v1/sessions`.
    pub async fn sessions_list(
        &self,
        filters: &SessionFilters,
    ) -> Result<Reply<Page<SessionView>>> {
        let mut url = self.endpoint(&["sessions"]);
        let limit = filters.limit.map(|l| l.to_string());
        query(
            &mut url,
            &[
                ("projectId", filters.project.as_deref()),
                ("agentId", filters.agent.as_deref()),
                ("status", filters.status.as_deref()),
                ("limit", limit.as_deref()),
                ("cursor", filters.cursor.as_deref()),
            ],
        );
        self.call(Method::GET, url, None).await
    }

    /// `POST /api/v1/sessions`.
    pub async fn sessions_create(&self, request: &SessionRequest) -> Result<Reply<SessionView>> {
        let body = body_of(request)?;
        self.call(Method::POST, self.endpoint(&["sessions"]), Some(body))
            .await
    }

    // --- chat -----------------------------------------------------------------

    /// `POST /api/v1/chat`: the turn's UI message stream. Refusals before the
    /// stream starts (404, 409, 422, …) are [`ClientError::Api`].
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let body = body_of(request)?;
        let req = self
            .request(Method::POST, self.endpoint(&["chat"]))
            .header(ACCEPT, "text/event-stream")
            .json(&body);
        let response = self.send(req).await?;
        let response = self.check(response).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let session_id = header("x-alumia-session-id");
        let turn_id = header("x-alumia-turn-id");
        let base = self.base_url().to_string();
        let body = response
            .bytes_stream()
            .map(move |r| r.map_err(|e| error::network_error(&base, e)));
        Ok(ChatStream {
            session_id,
            turn_id,
            chunks: sse::chunks(body),
        })
    }

    /// `POST /api/v1/chat/:sessionId/stop`.
    pub async fn chat_stop(&self, session_id: &str) -> Result<Reply<StopView>> {
        self.call(
            Method::POST,
            self.endpoint(&["chat", path_id(session_id)?, "stop"]),
            None,
        )
        .await
    }

    // --- device login (RFC 8628) ------------------------------------------------

    /// `POST /api/v1/auth/device/code` with `client_id=alumia-cli`.
    pub async fn device_code(
        &self,
        scopes: &[&str],
        device_name: Option<&str>,
    ) -> Result<DeviceCodeResponse> {
        let mut body = json!({"client_id": DEVICE_CLIENT_ID, "scope": scopes.join(" ")});
        if let Some(name) = device_name {
            body["device_name"] = json!(name);
        }
        let value = self.oauth(&["auth", "device", "code"], body).await?;
        serde_json::from_value(value)
            .map_err(|e| ClientError::Decode(format!("device code response: {e}")))
    }

    /// `POST /api/v1/auth/device/token`. Not granted yet, slow down, denied,
    /// expired, … are [`ClientError::Device`].
    pub async fn device_token(&self, device_code: &str) -> Result<DeviceTokenResponse> {
        let body = json!({
            "grant_type": DEVICE_GRANT_TYPE,
            "device_code": device_code,
            "client_id": DEVICE_CLIENT_ID,
        });
        let value = self.oauth(&["auth", "device", "token"], body).await?;
        serde_json::from_value(value)
            .map_err(|e| ClientError::Decode(format!("device token response: {e}")))
    }

    // --- any route ------------------------------------------------------------

    /// Calls any route: `path` from the server root (e.g. `/api/v1/agents`),
    /// `query` pairs, an optional JSON body. Every HTTP answer is `Ok` with
    /// its status and body (JSON, else the text as a string, `null` when
    /// empty); only network failures and bad input are errors.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        query_pairs: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        let path = path.trim_start_matches('/');
        url.set_path(&format!("{prefix}/{path}"));
        if !query_pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(query_pairs);
        }
        let mut req = self
            .request(method, url)
            .timeout(self.timeout)
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = self.send(req).await?;
        let status = response.status();
        let bytes = self.read(response).await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    // --- plumbing ---------------------------------------------------------------

    /// `<base>/api/v1/<segments…>`, each segment percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new(): an http(s) URL has path segments")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let mut req = self.http.request(method, url);
        if let Some(key) = &self.api_key {
            // bearer_auth marks the header sensitive.
            req = req.bearer_auth(key);
        }
        if let Some(org) = &self.org {
            req = req.header("x-alumia-org", org);
        }
        req
    }

    async fn send(&self, req: RequestBuilder) -> Result<Response> {
        req.send()
            .await
            .map_err(|e| error::network_error(self.base_url(), e))
    }

    async fn read(&self, response: Response) -> Result<Vec<u8>> {
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| error::network_error(self.base_url(), e))
    }

    /// A 2xx response as is; anything else as [`ClientError::Api`].
    async fn check(&self, response: Response) -> Result<Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = self.read(response).await?;
        Err(error::api_error(status, &bytes))
    }

    /// An enveloped JSON call: `data` typed and as sent.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<Reply<T>> {
        let mut req = self
            .request(method, url)
            .timeout(self.timeout)
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = self.send(req).await?;
        let response = self.check(response).await?;
        let bytes = self.read(response).await?;
        let data = unwrap_envelope(&bytes)?;
        let value = T::deserialize(&data).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(Reply { value, data })
    }

    /// The device endpoints answer plain RFC 8628 JSON, and take no credential.
    async fn oauth(&self, segments: &[&str], body: Value) -> Result<Value> {
        let req = self
            .http
            .post(self.endpoint(segments))
            .timeout(self.timeout)
            .header(ACCEPT, "application/json")
            .json(&body);
        let response = self.send(req).await?;
        let status = response.status();
        let bytes = self.read(response).await?;
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            let value = parsed.ok_or_else(|| {
                ClientError::Decode("the device endpoint did not answer JSON".into())
            })?;
            // Tolerate an enveloped answer.
            return Ok(match value {
                Value::Object(mut m) if m.get("success") == Some(&Value::Bool(true)) => {
                    m.remove("data").unwrap_or(Value::Null)
                }
                other => other,
            });
        }
        if let Some(grant) = parsed.as_ref().and_then(DeviceGrantError::from_body) {
            return Err(ClientError::Device(grant));
        }
        Err(error::api_error(status, &bytes))
    }
}

/// `{"success": true, "data": …}` → `data`.
fn unwrap_envelope(bytes: &[u8]) -> Result<Value> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ClientError::Decode(format!("the answer is not JSON: {e}")))?;
    match value {
        Value::Object(mut m) if m.get("success") == Some(&Value::Bool(true)) => {
            Ok(m.remove("data").unwrap_or(Value::Null))
        }
        _ => Err(ClientError::Decode(
            "the answer is not a {success, data} envelope".into(),
        )),
    }
}

/// A request DTO as JSON without its `null` members: absent means "not
/// given" on the wire, and the server need not tell null from absent.
fn body_of<T: Serialize>(request: &T) -> Result<Value> {
    let mut value = serde_json::to_value(request)
        .map_err(|e| ClientError::InvalidInput(format!("cannot encode the request: {e}")))?;
    if let Value::Object(m) = &mut value {
        m.retain(|_, v| !v.is_null());
    }
    Ok(value)
}

/// Appends the pairs whose value is present.
fn query(url: &mut Url, pairs: &[(&str, Option<&str>)]) {
    let present: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect();
    if !present.is_empty() {
        url.query_pairs_mut().extend_pairs(present);
    }
}

/// An id or slug as one path segment: `.` and `..` would be dropped or
/// resolved by the URL parser (`agents get ..` would list the agents).
fn path_id(id: &str) -> Result<&str> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(ClientError::InvalidInput(format!(
            "{id:?} is not a valid id"
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_ids_are_refused() {
        for bad in ["", ".", ".."] {
            assert!(matches!(
                super::path_id(bad),
                Err(ClientError::InvalidInput(_))
            ));
        }
        assert_eq!(super::path_id("ala").unwrap(), "ala");
    }

    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let client = Client::new("http://127.0.0.1:7420", Some("alm_test_secret".into())).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("alm_test_secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_segments() {
        let client = Client::new("https://example.com/alumia/", None).unwrap();
        assert_eq!(
            client.endpoint(&["agents", "a b/c"]).as_str(),
            "https://example.com/alumia/api/v1/agents/a%20b%2Fc"
        );
        assert_eq!(client.base_url(), "https://example.com/alumia");
        let plain = Client::new("http://127.0.0.1:7420", None).unwrap();
        let mut url = plain.endpoint(&["sessions"]);
        query(&mut url, &[("agentId", Some("x&y")), ("status", None)]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:7420/api/v1/sessions?agentId=x%26y"
        );
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for bad in ["ftp://x", "127.0.0.1:7420", "mailto:a@b", ""] {
            assert!(
                matches!(Client::new(bad, None), Err(ClientError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn envelopes_unwrap_and_other_json_is_a_decode_error() {
        assert_eq!(
            unwrap_envelope(br#"{"success":true,"data":{"a":1}}"#).unwrap(),
            json!({"a": 1})
        );
        assert!(matches!(
            unwrap_envelope(br#"{"a":1}"#),
            Err(ClientError::Decode(_))
        ));
        assert!(matches!(
            unwrap_envelope(b"<html>"),
            Err(ClientError::Decode(_))
        ));
    }

    #[test]
    fn request_bodies_drop_nulls() {
        let body = body_of(&ChatRequest {
            messages: vec![json!({"role": "user", "content": "hi"})],
            agent_id: Some("ala".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"messages": [{"role": "user", "content": "hi"}], "agentId": "ala"})
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_network_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let base = format!("http://127.0.0.1:{port}");
        let client = Client::new(&base, Some("k".into())).unwrap();
        let err = client.me().await.unwrap_err();
        let ClientError::Network(message) = &err else {
            panic!("not a network error: {err:?}")
        };
        assert!(
            message.starts_with(&format!("cannot reach the server at {base}")),
            "{message}"
        );
        assert!(message.contains("refused"), "{message}");
    }
}
