//! Workspace access shared by every workspace-owned resource (spec 02 §2):
//! admins and owners reach every workspace; members reach the default one
//! and those they belong to.

use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::principal::Principal;
use crate::store::Store;

/// The workspaces `p` reaches; `None` means all of them (admins, owners).
pub async fn reachable_workspaces(
    store: &dyn Store,
    p: &Principal,
) -> DomainResult<Option<Vec<Uuid>>> {
    if p.role.is_admin() {
        return Ok(None);
    }
    let ws = store.list_workspaces(&p.org, p.user_id, p.role).await?;
    Ok(Some(ws.into_iter().map(|w| w.id).collect()))
}

/// Where a create lands without a `workspaceId`: the principal's active
/// workspace, else the org's default one.
pub async fn active_or_default_workspace(store: &dyn Store, p: &Principal) -> DomainResult<Uuid> {
    if let Some(id) = p.active_workspace_id {
        return Ok(id);
    }
    store
        .list_workspaces(&p.org, p.user_id, p.role)
        .await?
        .into_iter()
        .find(|w| w.is_default)
        .map(|w| w.id)
        .ok_or(DomainError::NotFound)
}
