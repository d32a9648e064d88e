//! `GET /api/v1/models`: the catalogue of the runtime (spec 03 §4).

use std::sync::{Arc, RwLock};

use alumia_core::principal::SCOPE_MODELS_READ;
use alumia_runtime::catalog::ModelEntry;
use alumia_types::dto::{ModelPricing, ModelView};
use alumia_types::{Envelope, Page};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use crate::error::ApiResult;
use crate::extract::Auth;
use crate::state::AppState;
use crate::views;

pub fn view(e: &ModelEntry, default_model: &str) -> ModelView {
    ModelView {
        id: e.id.clone(),
        provider: e.provider.clone(),
        name: if e.provider == "dev" {
            "Echo (built-in development model)".into()
        } else {
            e.model.clone()
        },
        context_window: e.spec.context_window,
        max_output_tokens: e.spec.max_output_tokens,
        supports_tools: e.spec.supports_tools,
        supports_reasoning: e.spec.supports_reasoning,
        byok: false,
        pricing: ModelPricing {
            input_microcredits_per_mtok: e.spec.input_microcredits_per_mtok,
            output_microcredits_per_mtok: e.spec.output_microcredits_per_mtok,
        },
        is_default: e.id == default_model,
    }
}

/// The page changes only when the catalogue does (a refresh swaps its
/// `Arc`), so it is serialized once per catalogue, not per request; the
/// request path takes only a shared read lock.
type CachedPage = Option<(Arc<[ModelEntry]>, Bytes)>;
static PAGE: RwLock<CachedPage> = RwLock::new(None);

fn page_bytes(state: &AppState) -> Bytes {
    let entries = state.runtime.catalog.entries();
    if let Some((seen, bytes)) = PAGE.read().unwrap_or_else(|e| e.into_inner()).as_ref()
        && Arc::ptr_eq(seen, &entries)
    {
        return bytes.clone();
    }
    let default_model = state.runtime.catalog.default_model();
    let page = Envelope::ok(Page {
        has_more: false,
        items: entries
            .iter()
            .map(|e| view(e, &default_model))
            .collect::<Vec<_>>(),
        next_cursor: None,
    });
    let bytes: Bytes = serde_json::to_vec(&page)
        .expect("the catalogue serializes")
        .into();
    *PAGE.write().unwrap_or_else(|e| e.into_inner()) = Some((entries, bytes.clone()));
    bytes
}

/// `GET /api/v1/models`: needs `models:read`; a catalogue, so one page.
pub async fn list(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    p.require_scope(SCOPE_MODELS_READ)?;
    Ok(views::json_bytes(page_bytes(&state)))
}
