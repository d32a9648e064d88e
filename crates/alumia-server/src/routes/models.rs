use alumia_core::principal::SCOPE_MODELS_READ;
use alumia_types::dto::ModelView;
use axum::response::Response;

use crate::error::ApiResult;
use crate::extract::Auth;
use crate::views::page;

/// The built-in development model: deterministic, no network.
pub fn catalog() -> Vec<ModelView> {
    vec![ModelView {
        id: "dev/echo".into(),
        provider: "dev".into(),
        name: "Echo (built-in development model)".into(),
        context_window: 131_072,
        supports_tools: true,
    }]
}

/// `GET /api/v1/models`: needs `models:read`; a catalogue, so one page.
pub async fn list(Auth(p): Auth) -> ApiResult<Response> {
    p.require_scope(SCOPE_MODELS_READ)?;
    Ok(page(catalog(), None))
}
