use alumia_core::DomainError;
use alumia_core::clock::to_millis;
use alumia_core::model::Role;
use axum::extract::State;
use axum::response::Response;

use crate::error::ApiResult;
use crate::extract::{ApiQuery, Auth};
use crate::routes::{ListQuery, finish_page};
use crate::state::AppState;
use crate::views;

/// `GET /api/v1/audit-events`: admins, newest first.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    p.require_role(Role::Admin)?;
    let filter = format!("audit:{}", p.org.org_id());
    let (request, limit) = q.page_request(&filter)?;
    let rows = state
        .store
        .list_audit(&p.org, request)
        .await
        .map_err(DomainError::from)?;
    let (rows, next) = finish_page(rows, limit, &filter, |e| (to_millis(e.created_at), e.id));
    Ok(views::page(
        rows.iter().map(views::audit_event).collect(),
        next,
    ))
}
