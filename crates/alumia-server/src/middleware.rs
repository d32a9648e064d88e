//! Layers every request passes: request id, response hygiene and logging
//! (outermost), then authentication + traffic limits on `/api/v1` routes.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use alumia_core::Principal;
use alumia_core::limits::Bucket;
use alumia_core::principal::PrincipalKind;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use futures::FutureExt;
use serde_json::json;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::error::{ApiError, InternalCause};
use crate::limiter::{charge, rate_limit_headers};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "alumia_session";

/// Header names as constants: a `&str` name is parsed again on every use.
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_ALUMIA_ORG: HeaderName = HeaderName::from_static("x-alumia-org");
static X_CSRF_TOKEN: HeaderName = HeaderName::from_static("x-csrf-token");

/// The request id: the client's `X-Request-Id` when valid, else a fresh
/// UUIDv7 (32 hex digits). Kept as the header value it is echoed in.
#[derive(Clone, Debug)]
pub struct RequestId(HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        // Only ever built from visible ASCII (see `valid_request_id`).
        self.0.to_str().unwrap_or_default()
    }
}

fn valid_request_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn new_request_id() -> HeaderValue {
    thread_local! {
        // `Uuid::now_v7` orders ids through one process-wide mutex; request
        // ids only need to be unique, so each thread keeps its own counter.
        static CONTEXT: uuid::ContextV7 = const { uuid::ContextV7::new() };
    }
    let id = CONTEXT.with(|context| uuid::Uuid::new_v7(uuid::Timestamp::now(context)));
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    HeaderValue::from_str(id.simple().encode_lower(&mut buf))
        .expect("hex digits are a valid header value")
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// One of the middlewares below as a tower service around `inner`.
///
/// Hand-written rather than `axum::middleware::from_fn` (and tower-http's
/// `CatchPanicLayer`): those box the inner service, its future and the
/// response body once more per layer and request, and these two run on
/// every request.
pub struct Middleware<S> {
    state: AppState,
    inner: S,
    run: fn(AppState, Request, S) -> ResponseFuture,
}

impl<S: Clone> Clone for Middleware<S> {
    fn clone(&self) -> Self {
        Middleware {
            state: self.state.clone(),
            inner: self.inner.clone(),
            run: self.run,
        }
    }
}

impl<S> Middleware<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    /// `request_context` around the whole router.
    pub fn request_context(state: AppState, inner: S) -> Self {
        Middleware {
            state,
            inner,
            run: |state, req, inner| Box::pin(request_context(state, req, inner).map(Ok)),
        }
    }
}

impl<S> Service<Request> for Middleware<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // Call the instance that was polled ready; keep a fresh clone here.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        (self.run)(self.state.clone(), req, inner)
    }
}

/// `authenticate` as a layer, for `Router::route_layer`.
#[derive(Clone)]
pub struct AuthenticateLayer(pub AppState);

impl Layer<Route> for AuthenticateLayer {
    type Service = Middleware<Route>;

    fn layer(&self, inner: Route) -> Middleware<Route> {
        Middleware {
            state: self.0.clone(),
            inner,
            run: |state, req, inner| Box::pin(authenticate(state, req, inner).map(Ok)),
        }
    }
}

/// Request id in and out, `nosniff`, `no-store` and HSTS (over https),
/// panics turned into 500s, generic 5xx bodies with the cause only in the
/// log, and one log line per request. Never logs headers, so credentials
/// cannot reach the log.
async fn request_context<S>(state: AppState, mut req: Request, mut inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    let request_id = RequestId(
        req.headers()
            .get(&X_REQUEST_ID)
            .filter(|v| valid_request_id(v.as_bytes()))
            .cloned()
            .unwrap_or_else(new_request_id),
    );
    req.extensions_mut().insert(request_id.clone());
    let method = req.method().clone();
    // A `Uri` clone shares the request's bytes; only the log reads it.
    let uri = req.uri().clone();

    // A panic in the router or a handler becomes a 500 with its message as
    // the (logged, never sent) cause, like any other internal error.
    let response = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    let mut response = match response {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(panic) => panic_response(panic),
    };

    if let Some(InternalCause(cause)) = response.extensions_mut().remove::<InternalCause>() {
        let status = response.status();
        tracing::error!(request_id = %request_id.as_str(), %method, path = %uri.path(), status = status.as_u16(), cause = %cause, "request failed");
        // Rebuild the generic body so it carries the request id.
        let mut error = if status.as_u16() == 503 {
            ApiError::unavailable(String::new())
        } else {
            ApiError::internal(String::new())
        };
        error.cause = None;
        error = error.details(json!({ "requestId": request_id.as_str() }));
        let headers = response.headers().clone();
        response = error.into_response();
        for (name, value) in headers.iter() {
            if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }

    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID.clone(), request_id.0.clone());
    if state.settings.is_https() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // Field values are only evaluated when a subscriber wants this event.
    let principal = response.extensions().get::<LogPrincipal>().map(|p| &*p.0);
    tracing::info!(
        request_id = %request_id.as_str(),
        %method,
        path = %uri.path(),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        org = principal.map_or("-", |p| p.org_slug.as_str()),
        principal = principal.map_or("-", |p| p.kind_name()),
        key_prefix = principal.and_then(key_prefix).unwrap_or("-"),
        "request"
    );
    response
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}

/// What the access log may say about the caller (org slug, principal kind,
/// key prefix; never the credential). Shares the request's principal.
#[derive(Clone, Debug)]
struct LogPrincipal(Arc<Principal>);

fn key_prefix(p: &Principal) -> Option<&str> {
    match &p.kind {
        PrincipalKind::ApiKey { prefix, .. } => Some(prefix),
        PrincipalKind::Session { .. } => None,
    }
}

pub fn cookie_value<'a>(req_headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    req_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `Origin`, when present, must be our public origin (cookie-setting routes too).
pub fn check_origin(state: &AppState, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN) {
        None => Ok(()),
        Some(origin) if origin.as_bytes() == state.settings.public_origin().as_bytes() => Ok(()),
        Some(_) => Err(csrf_failed()),
    }
}

fn csrf_failed() -> ApiError {
    alumia_core::DomainError::forbidden("csrf_failed", "the CSRF check failed").into()
}

/// Authenticates by Bearer key or session cookie, checks CSRF on cookie
/// writes, charges the traffic bucket, and attaches the [`Principal`].
/// Failed authentication spends no bucket tokens. Handlers that need the
/// client's address and user agent take [`crate::extract::Client`].
async fn authenticate(state: AppState, mut req: Request, mut inner: Route) -> Response {
    let principal = match resolve_principal(&state, req.method(), req.headers()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (bucket, id) = match &principal.kind {
        PrincipalKind::ApiKey { key_id, .. } => (Bucket::ApiKey, *key_id),
        PrincipalKind::Session { session_id, .. } => (Bucket::Session, *session_id),
    };
    // An MCP tool's call: its `/mcp` request already took the token.
    if req.extensions().get::<crate::mcp::InProcess>().is_some() {
        req.extensions_mut().insert(principal);
        let Ok(response) = inner.call(req).await;
        return response;
    }
    // The bucket key is the id's usual hyphenated form, written on the stack.
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let bucket_key = id.hyphenated().encode_lower(&mut buf);
    let decision = match charge(&state, bucket, bucket_key).await {
        Ok(d) => d,
        Err(e) => {
            let denied = alumia_core::limits::Decision {
                allowed: false,
                remaining: 0,
                retry_after_secs: e.retry_after.unwrap_or(1),
                reset_secs: e.retry_after.unwrap_or(1),
            };
            let mut response = e.into_response();
            rate_limit_headers(&state, bucket, &denied, response.headers_mut());
            return response;
        }
    };
    let log = LogPrincipal(principal.clone());
    req.extensions_mut().insert(principal);
    let Ok(mut response) = inner.call(req).await;
    rate_limit_headers(&state, bucket, &decision, response.headers_mut());
    response.extensions_mut().insert(log);
    response
}

async fn resolve_principal(
    state: &AppState,
    method: &Method,
    headers: &axum::http::HeaderMap,
) -> Result<Arc<Principal>, ApiError> {
    let org_header = headers.get(&X_ALUMIA_ORG).and_then(|v| v.to_str().ok());
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        // When a Bearer header is present the cookie is ignored.
        let token = auth
            .to_str()
            .ok()
            .filter(|v| v.len() <= 1024)
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .unwrap_or_default();
        return Ok(state.identity.authenticate_key(token, org_header).await?);
    }
    if let Some(token) = cookie_value(headers, SESSION_COOKIE) {
        let principal = state
            .identity
            .authenticate_session(token, org_header)
            .await?;
        if is_unsafe(method) {
            let PrincipalKind::Session { csrf_token, .. } = &principal.kind else {
                return Err(csrf_failed());
            };
            let sent = headers
                .get(&X_CSRF_TOKEN)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if sent.is_empty() || !bool::from(sent.ct_eq(csrf_token.as_bytes())) {
                return Err(csrf_failed());
            }
            check_origin(state, headers)?;
        }
        return Ok(Arc::new(principal));
    }
    Err(alumia_core::DomainError::unauthorized(
        "missing_credentials",
        "send an API key (Authorization: Bearer …) or sign in",
    )
    .into())
}

#[cfg(test)]
mod tests {
    use std::future::ready;

    use alumia_core::SystemClock;
    use alumia_core::crypto::SecretKey;
    use alumia_core::identity::{AuthSettings, Identity};
    use alumia_core::keys::KeyEnv;
    use alumia_core::limits::Limits;
    use alumia_store::{ConnectOptions, DbUrl};
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use crate::ServerSettings;
    use crate::limiter::MemoryLimiter;

    async fn state() -> AppState {
        let url = DbUrl::parse("sqlite::memory:").unwrap();
        let store = alumia_store::connect(&url, &ConnectOptions::default())
            .await
            .unwrap();
        let clock: Arc<dyn alumia_core::Clock> = Arc::new(SystemClock);
        let identity = Identity::new(
            store.clone(),
            clock.clone(),
            SecretKey::generate(),
            KeyEnv::Test,
            AuthSettings::default(),
        );
        AppState::new(
            store,
            Arc::new(identity),
            Arc::new(MemoryLimiter::new(Limits::default())),
            clock,
            ServerSettings::new("http://127.0.0.1:7420", KeyEnv::Test),
        )
    }

    /// A panic while calling the inner service or while polling its future
    /// is a generic 500 with the request id, and the message stays out of it.
    #[tokio::test]
    async fn panics_become_internal_errors_with_the_request_id() {
        let state = state().await;
        let in_future = tower::service_fn(|_: Request| async {
            if true {
                panic!("secret detail");
            }
            Ok::<Response, Infallible>(Response::new(Body::empty()))
        });
        let in_call = tower::service_fn(
            |_: Request| -> std::future::Ready<Result<Response, Infallible>> {
                panic!("secret detail")
            },
        );
        let ok = tower::service_fn(|_: Request| ready(Ok(Response::new(Body::empty()))));
        let responses = [
            Middleware::request_context(state.clone(), in_future)
                .oneshot(Request::new(Body::empty()))
                .await,
            Middleware::request_context(state.clone(), in_call)
                .oneshot(Request::new(Body::empty()))
                .await,
        ];
        for response in responses {
            let response = response.unwrap();
            assert_eq!(response.status(), 500);
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
            assert_eq!(response.headers()["cache-control"], "no-store");
            let id = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(id.len(), 32);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["details"]["requestId"], id.as_str());
            assert!(!body.to_string().contains("secret detail"), "{body}");
        }
        // The service stays usable after a panic elsewhere.
        let response = Middleware::request_context(state, ok)
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    #[test]
    fn request_ids_are_fresh_uuid_v7_in_simple_form() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let a = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(a.get_version_num(), 7);
        assert!(valid_request_id(b.as_bytes()));
    }
}
