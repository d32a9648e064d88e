use std::sync::LazyLock;

use alumia_core::principal::SCOPE_MODELS_READ;
use alumia_types::dto::ModelView;
use alumia_types::{Envelope, Page};
use axum::body::Bytes;
use axum::response::Response;

use crate::error::ApiResult;
use crate::extract::Auth;
use crate::views;

/// Ids of the catalogue, for checks such as an agent's `model`.
pub const CATALOG_IDS: [&str; 1] = ["dev/echo"];

/// The built-in development model: deterministic, no network.
pub fn catalog() -> Vec<ModelView> {
    vec![ModelView {
        id: CATALOG_IDS[0].into(),
        provider: "dev".into(),
        name: "Echo (built-in development model)".into(),
        context_window: 131_072,
        supports_tools: true,
    }]
}

/// The catalogue is constant, so its page (exactly what `views::page` would
/// write) is serialized once, not on every request.
static CATALOG_PAGE: LazyLock<Bytes> = LazyLock::new(|| {
    let page = Envelope::ok(Page {
        has_more: false,
        items: catalog(),
        next_cursor: None,
    });
    serde_json::to_vec(&page)
        .expect("the catalogue serializes")
        .into()
});

/// `GET /api/v1/models`: needs `models:read`; a catalogue, so one page.
pub async fn list(Auth(p): Auth) -> ApiResult<Response> {
    p.require_scope(SCOPE_MODELS_READ)?;
    Ok(views::json_bytes(CATALOG_PAGE.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cached_page_is_what_views_page_writes() {
        let fresh = views::page(catalog(), None);
        let cached = views::json_bytes(CATALOG_PAGE.clone());
        assert_eq!(fresh.status(), cached.status());
        assert_eq!(fresh.headers(), cached.headers());
        let body = |r: Response| axum::body::to_bytes(r.into_body(), usize::MAX);
        assert_eq!(body(fresh).await.unwrap(), body(cached).await.unwrap());
    }
}
