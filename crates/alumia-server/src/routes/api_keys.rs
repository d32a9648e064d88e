//! `/api/v1/api-keys`: list, mint (browser session + step-up), revoke.

use alumia_core::DomainError;
use alumia_core::clock::to_millis;
use alumia_core::identity::{ClientInfo, MintInput};
use alumia_core::limits::Bucket;
use alumia_types::dto::{CreateApiKeyRequest, CreatedApiKeyView};
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Auth, Client, parse_id};
use crate::limiter::charge;
use crate::routes::{ListQuery, finish_page};
use crate::state::AppState;
use crate::views::{self, ok};

/// `GET /api/v1/api-keys`: the caller's own non-revoked keys here, newest first.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let filter = format!("api-keys:{}:{}", p.org.org_id(), p.user_id);
    let (request, limit) = q.page_request(&filter)?;
    let keys = state.identity.list_keys(&p, request).await?;
    let (keys, next) = finish_page(keys, limit, &filter, |k| (to_millis(k.created_at), k.id));
    Ok(views::page(keys.iter().map(views::api_key).collect(), next))
}

/// `POST /api/v1/api-keys`: browser session with a fresh step-up, then the
/// `key-mint` bucket (user + client IP), then the mint. The plaintext is in
/// this response and nowhere else.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> ApiResult<Response> {
    let expires_at = match req.expires_at.as_deref() {
        None => None,
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| DomainError::invalid("expiresAt", "must be an ISO-8601 timestamp"))?,
        ),
    };
    let plan = state.identity.prepare_mint(
        &p,
        MintInput {
            name: req.name,
            scopes: req.scopes,
            expires_at,
        },
    )?;
    charge(
        &state,
        Bucket::KeyMint,
        &format!("{}|{}", p.user_id, client_bucket(&client)),
    )
    .await?;
    let (key, plaintext) = state.identity.mint_key(&p, plan, &client).await?;
    let view = views::api_key(&key);
    Ok(views::created(CreatedApiKeyView {
        id: view.id,
        name: view.name,
        prefix: view.prefix,
        key: plaintext,
        scopes: view.scopes,
        expires_at: view.expires_at,
        created_at: view.created_at,
    }))
}

/// The client-IP part of `(user, client IP)` bucket keys (IPv6 per /64).
pub(crate) fn client_bucket(client: &ClientInfo) -> String {
    client
        .ip
        .parse()
        .map(|ip| crate::client_ip::ClientIp(ip).bucket_key())
        .unwrap_or_else(|_| client.ip.clone())
}

/// `DELETE /api/v1/api-keys/:id`: any principal of the same user; effective
/// on the very next request (keys are checked against the database each time).
pub async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let key = state.identity.revoke_key(&p, id, &client).await?;
    Ok(ok(json!({
        "id": key.id.to_string(),
        "revokedAt": key.revoked_at.map(alumia_core::clock::format_ts),
    })))
}
