use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiResult;
use crate::state::AppState;
use crate::views::ok;

/// The OpenAPI 3.1 document of every route (kept equal to the router by a test).
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /api/v1/meta`
pub async fn meta(State(state): State<AppState>) -> ApiResult<Response> {
    let setup_required = state.identity.setup_required().await?;
    Ok(ok(json!({
        "version": state.settings.version,
        "env": match state.settings.key_env {
            alumia_core::keys::KeyEnv::Live => "production",
            alumia_core::keys::KeyEnv::Test => "development",
        },
        "publicUrl": state.settings.public_url,
        "setupRequired": setup_required,
        "features": {
            "redis": state.limiter.kind() == "redis",
            "billing": false,
            "payments": false,
            "embeddings": false,
        },
    })))
}

/// `GET /api/v1/openapi.json` (not wrapped in the envelope).
pub async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
