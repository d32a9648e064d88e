//! Hosted MCP at `/mcp` (spec 04 §1): Streamable HTTP through rmcp,
//! stateless (any replica answers; no `Mcp-Session-Id` is issued or
//! trusted), JSON responses. Before rmcp sees a request this module checks
//! the method, `Host`, `Origin`, the body size and the Bearer key, and takes
//! one token of the key's `api-key` bucket. Tools then call the REST router
//! in-process with the same key, so every REST rule applies unchanged.

use std::sync::Arc;

use alumia_core::limits::Bucket;
use alumia_core::principal::PrincipalKind;
use alumia_mcp::{AlumiaMcp, Caller, Rest, RestReply};
use alumia_types::ErrorCode;
use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tower::ServiceExt;

use crate::error::{ApiError, InternalCause};
use crate::limiter::{charge, rate_limit_headers};
use crate::middleware::X_ALUMIA_ORG;
use crate::state::AppState;

/// Spec 04 §1 "Guards".
pub const MAX_BODY: usize = 1024 * 1024;

/// Marks a request made by an MCP tool on behalf of an `/mcp` request that
/// already took its token: `authenticate` does not charge it again.
#[derive(Clone, Copy, Debug)]
pub struct InProcess;

/// The REST router, called in-process by the tools.
struct InProcessRest {
    router: Router,
}

#[async_trait]
impl Rest for InProcessRest {
    async fn send(
        &self,
        caller: &Caller,
        method: &str,
        path: &str,
        body: Option<Value>,
        sse: bool,
    ) -> Result<RestReply, String> {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?)
            .uri(path)
            .header(
                header::ACCEPT,
                if sse {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            );
        if let Some(auth) = &caller.authorization {
            req = req.header(header::AUTHORIZATION, auth);
        }
        if let Some(org) = &caller.org {
            req = req.header(&X_ALUMIA_ORG, org);
        }
        if let Some(ua) = &caller.user_agent {
            req = req.header(header::USER_AGENT, ua);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).map_err(|e| e.to_string())?;
        // The client's address and the request id, as the handlers expect.
        *req.extensions_mut() = caller.extensions.clone();
        req.extensions_mut().insert(InProcess);
        let Ok(mut response) = self.router.clone().oneshot(req).await;
        // `request_context` logs internal causes for outer requests; these
        // bypass it, so log here (the tool result carries only the envelope).
        if let Some(InternalCause(cause)) = response.extensions_mut().remove::<InternalCause>() {
            tracing::error!(path, status = response.status().as_u16(), cause = %cause, "MCP tool call failed");
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(RestReply {
            status: response.status().as_u16(),
            session_id: header("x-alumia-session-id"),
            turn_id: header("x-alumia-turn-id"),
            body: response
                .into_body()
                .into_data_stream()
                .map_err(|e| e.to_string())
                .boxed(),
        })
    }
}

/// `/mcp` as a service: the checks, then rmcp.
#[derive(Clone)]
pub struct McpEndpoint {
    state: AppState,
    rmcp: StreamableHttpService<AlumiaMcp, NeverSessionManager>,
}

impl McpEndpoint {
    /// `rest` is the REST router (with its state) the tools call.
    pub fn new(state: AppState, rest: Router) -> Self {
        let handler = AlumiaMcp::hosted(Arc::new(InProcessRest { router: rest }));
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_max_request_body_bytes(MAX_BODY)
            // Host and Origin are checked here, with our envelope.
            .disable_allowed_hosts()
            .disable_allowed_origins();
        let rmcp = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(NeverSessionManager::default()),
            config,
        );
        McpEndpoint { state, rmcp }
    }

    pub async fn handle(self, mut req: Request) -> Response {
        if req.method() != Method::POST {
            let mut response = ApiError::new(
                ErrorCode::MethodNotAllowed,
                "POST JSON-RPC to /mcp; this server keeps no streams or sessions",
            )
            .reason("method_not_allowed")
            .into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        // HTTP/2 carries the host in `:authority`, not `Host`.
        let authority = req.uri().authority().map(|a| a.as_str().to_string());
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or(authority);
        if !host_allowed(&self.state, host.as_deref()) {
            return forbidden("host_not_allowed", "this Host is not served here");
        }
        if let Some(origin) = req.headers().get(header::ORIGIN)
            && !origin_allowed(&self.state, origin)
        {
            return forbidden("origin_not_allowed", "this Origin may not call /mcp");
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            return too_large();
        }

        // A Bearer key, and nothing else: cookies and query keys are ignored.
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 1024)
            .map(str::to_string);
        let token = authorization
            .as_deref()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_string());
        let org = req
            .headers()
            .get(&X_ALUMIA_ORG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let principal = match token {
            None => return invalid_token("send an API key: Authorization: Bearer alm_…"),
            Some(token) => match self
                .state
                .identity
                .authenticate_key(&token, org.as_deref())
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    let mut response = ApiError::from(e).into_response();
                    if response.status() == StatusCode::UNAUTHORIZED {
                        set_www_authenticate(&mut response);
                    }
                    return response;
                }
            },
        };
        let PrincipalKind::ApiKey { key_id, .. } = &principal.kind else {
            return invalid_token("an API key is required");
        };
        let bucket_key = key_id.hyphenated().to_string();
        let decision = match charge(&self.state, Bucket::ApiKey, &bucket_key).await {
            Ok(d) => d,
            Err(e) => return e.into_response(),
        };

        // rmcp enforces the cap too, but answers a cut-off read less clearly.
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return too_large(),
        };
        // Malformed JSON-RPC gets a JSON-RPC error (rmcp would answer text).
        match serde_json::from_slice::<Value>(&bytes) {
            Err(_) => return rpc_error(-32700, "Parse error: the body is not JSON"),
            Ok(Value::Object(m)) if m.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {}
            Ok(_) => {
                return rpc_error(
                    -32600,
                    "Invalid Request: send one JSON-RPC 2.0 message object",
                );
            }
        }
        req = Request::from_parts(parts, Body::from(bytes));
        // A client-sent session id never means anything here.
        req.headers_mut().remove("mcp-session-id");
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let extensions = req.extensions().clone();
        req.extensions_mut().insert(Caller {
            scopes: Some(principal.scopes.iter().map(|s| s.to_string()).collect()),
            authorization,
            org,
            extensions,
            user_agent,
        });
        let Ok(response) = self.rmcp.clone().oneshot(req).await;
        let mut response = response.map(Body::new);
        rate_limit_headers(
            &self.state,
            Bucket::ApiKey,
            &decision,
            response.headers_mut(),
        );
        response
    }
}

/// A JSON-RPC error without a request id (HTTP 400).
fn rpc_error(code: i64, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        })),
    )
        .into_response()
}

fn forbidden(reason: &'static str, message: &str) -> Response {
    ApiError::new(ErrorCode::Forbidden, message)
        .reason(reason)
        .into_response()
}

fn too_large() -> Response {
    ApiError::new(ErrorCode::PayloadTooLarge, "the body exceeds 1 MB")
        .reason("body_too_large")
        .into_response()
}

fn invalid_token(message: &str) -> Response {
    let mut response = ApiError::new(ErrorCode::Unauthorized, message)
        .reason("invalid_token")
        .into_response();
    set_www_authenticate(&mut response);
    response
}

fn set_www_authenticate(response: &mut Response) {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"alumia-mcp\", error=\"invalid_token\""),
    );
}

/// `host[:port]` of a URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Spec 04 §1: the public host or the listen address (DNS rebinding).
fn host_allowed(state: &AppState, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let public = authority(&state.settings.public_url).to_ascii_lowercase();
    let default_port = if state.settings.is_https() {
        ":443"
    } else {
        ":80"
    };
    if host == public || host.strip_suffix(default_port) == Some(public.as_str()) {
        return true;
    }
    state.settings.listen_authorities.contains(&host)
}

fn origin_allowed(state: &AppState, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    origin == state.settings.public_origin()
        || state
            .settings
            .mcp_allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
}
