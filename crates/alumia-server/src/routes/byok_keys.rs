//! `/api/v1/billing/byok-keys`: an org's own provider keys (spec 09 §5).
//! Sealed with the server secret at once; only the last four characters
//! are ever shown again.

use alumia_core::chat_store::ProviderKey;
use alumia_core::clock::format_ts;
use alumia_core::model::Role;
use alumia_core::{DomainError, new_id, validate};
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, parse_id};
use crate::state::AppState;
use crate::views;

fn view(k: &ProviderKey) -> Value {
    json!({
        "id": k.id, "provider": k.provider, "label": k.label, "keyHint": k.key_hint,
        "baseUrl": k.base_url, "createdAt": format_ts(k.created_at),
        "lastUsedAt": k.last_used_at.map(format_ts),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ByokRequest {
    pub provider: String,
    pub api_key: String,
    pub label: Option<String>,
    pub base_url: Option<String>,
}

/// `GET /api/v1/billing/byok-keys` (admin).
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    p.require_role(Role::Admin)?;
    let keys = state
        .store
        .list_provider_keys(&p.org)
        .await
        .map_err(DomainError::from)?;
    Ok(views::page(keys.iter().map(view).collect(), None))
}

/// `POST /api/v1/billing/byok-keys` (admin, browser session + step-up) → 201.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<ByokRequest>,
) -> ApiResult<Response> {
    p.require_role(Role::Admin)?;
    let now = state.clock.now();
    p.require_step_up(now, state.settings.auth.step_up_window_secs)?;
    let providers = state.runtime.catalog.providers();
    let kind = match req.provider.as_str() {
        "openai" => Some(alumia_runtime::catalog::ProviderKind::OpenAi),
        "anthropic" => Some(alumia_runtime::catalog::ProviderKind::Anthropic),
        other => providers.iter().find(|c| c.id == other).map(|c| c.kind),
    };
    let mut checks = vec![validate::text("apiKey", &req.api_key, 8, 1000)];
    if kind.is_none() {
        checks.push(Err(DomainError::invalid(
            "provider",
            "must be openai, anthropic or a configured provider id",
        )));
    }
    if let Some(label) = &req.label {
        checks.push(validate::text("label", label, 0, 255));
    }
    if let Some(url) = &req.base_url {
        if kind != Some(alumia_runtime::catalog::ProviderKind::OpenAi) {
            checks.push(Err(DomainError::invalid(
                "baseUrl",
                "only OpenAI-compatible providers take a base URL",
            )));
        } else if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
            checks.push(Err(DomainError::invalid(
                "baseUrl",
                "must be an http(s) URL",
            )));
        }
    }
    validate::all(checks)?;
    let hint: String = req
        .api_key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let key = ProviderKey {
        id: new_id(),
        provider: req.provider.clone(),
        label: req.label.unwrap_or_else(|| req.provider.clone()),
        key_sealed: state.identity.secret().seal(req.api_key.as_bytes()),
        key_hint: hint,
        base_url: req.base_url.map(|u| u.trim_end_matches('/').to_string()),
        created_by: p.user_id,
        created_at: now,
        last_used_at: None,
    };
    state
        .store
        .create_provider_key(&p.org, &key)
        .await
        .map_err(|e| match e {
            alumia_core::StoreError::Conflict(_) => DomainError::conflict(
                "byok_key_exists",
                "the org already has a key for this provider; delete it first",
            ),
            other => other.into(),
        })?;
    Ok(views::created(view(&key)))
}

/// `DELETE /api/v1/billing/byok-keys/:id` (admin, browser session + step-up).
pub async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    p.require_role(Role::Admin)?;
    p.require_step_up(state.clock.now(), state.settings.auth.step_up_window_secs)?;
    let id = parse_id(&id)?;
    state
        .store
        .delete_provider_key(&p.org, id)
        .await
        .map_err(DomainError::from)?;
    Ok(views::ok(json!({"id": id, "deleted": true})))
}
