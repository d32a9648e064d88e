//! `/api/v1/projects`: list, create, read, update, soft delete (spec 06 §1);
//! navigator, duplicate, export and restore (§2, §4).

use std::collections::HashMap;

use alumia_core::DomainError;
use alumia_core::clock::{format_ts, to_millis};
use alumia_core::model::Role;
use alumia_core::portability::{MAX_MANIFEST_BYTES, Portability, outcome_json};
use alumia_core::projects::{
    Project, ProjectFilter, ProjectInput, ProjectSpend, Projects, STATUSES,
};
use alumia_types::dto::{ProjectRequest, ProjectSpendView, ProjectView, ProjectWorkspaceView};
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiJsonRaw, ApiQuery, Auth, LargeJson};
use crate::idempotency::{self, IdempotencyKey};
use crate::routes::{ListQuery, finish_page};
use crate::state::AppState;
use crate::views::{self, ok};

pub(crate) fn service(state: &AppState) -> Projects<'_> {
    Projects {
        store: state.store.as_ref(),
        now: state.clock.now(),
    }
}

pub(crate) fn view(p: &Project) -> ProjectView {
    ProjectView {
        id: p.id.to_string(),
        org_id: p.org_id.to_string(),
        workspace_id: p.workspace_id.to_string(),
        shared_workspace_ids: p
            .shared_workspace_ids
            .iter()
            .map(|w| w.to_string())
            .collect(),
        user_id: p.user_id.to_string(),
        name: p.name.clone(),
        slug: p.slug.clone(),
        description: p.description.clone(),
        prompt: p.prompt.clone(),
        emoji: p.emoji.clone(),
        visibility: p.visibility.clone(),
        status: p.status.clone(),
        tags: p.tags.clone(),
        metadata: p.metadata.clone(),
        share_enabled: p.share_enabled,
        created_at: format_ts(p.created_at),
        updated_at: format_ts(p.updated_at),
        workspaces: None,
        spend: None,
    }
}

fn spend_view(s: ProjectSpend) -> ProjectSpendView {
    ProjectSpendView {
        credits_microcredits: s.credits_microcredits,
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
    }
}

fn input(req: ProjectRequest) -> ProjectInput {
    ProjectInput {
        name: req.name,
        slug: req.slug,
        description: req.description,
        prompt: req.prompt,
        emoji: req.emoji,
        visibility: req.visibility,
        status: req.status,
        tags: req.tags,
        metadata: req.metadata,
        workspace_id: req.workspace_id,
        shared_workspace_ids: req.shared_workspace_ids,
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProjectQuery {
    #[serde(flatten)]
    pub page: ListQuery,
    pub workspace_id: Option<String>,
    pub status: Option<String>,
    pub q: Option<String>,
    pub tag: Option<String>,
}

/// `GET /api/v1/projects`: visible projects, `updatedAt` desc.
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ProjectQuery>,
) -> ApiResult<Response> {
    if let Some(status) = &q.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(DomainError::invalid("status", "must be active or archived").into());
    }
    let workspace_id = match q.workspace_id.as_deref() {
        Some(raw) => Some(
            Uuid::parse_str(raw)
                .map_err(|_| DomainError::invalid("workspaceId", "must be a uuid"))?,
        ),
        None => None,
    };
    let filter = ProjectFilter {
        workspace_id,
        status: q.status.clone(),
        q: q.q.clone().filter(|s| !s.trim().is_empty()),
        tag: q.tag.clone(),
    };
    let key = format!(
        "projects:{}:{}:{:?}",
        p.org.org_id(),
        p.user_id,
        (&filter.workspace_id, &filter.status, &filter.q, &filter.tag)
    );
    let (request, limit) = q.page.page_request(&key)?;
    let rows = service(&state).list(&p, &filter, request).await?;
    let (rows, next) = finish_page(rows, limit, &key, |r| (to_millis(r.updated_at), r.id));
    Ok(views::page(rows.iter().map(view).collect(), next))
}

/// `POST /api/v1/projects` → 201, with its protected folder.
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    IdempotencyKey(key): IdempotencyKey,
    ApiJsonRaw(req, raw): ApiJsonRaw<ProjectRequest>,
) -> ApiResult<Response> {
    let fingerprint = idempotency::fingerprint("POST", "/api/v1/projects", &[], &raw);
    idempotency::run(&state, &p, key, &fingerprint, || async {
        let project = service(&state).create(&p, input(req)).await?;
        Ok(views::created(view(&project)))
    })
    .await
}

/// `GET /api/v1/projects/:id` (uuid or slug), with `workspaces` and `spend`.
pub async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let projects = service(&state);
    let project = projects.get(&p, &id).await?;
    let spend = projects.spend(&p, &project).await?;
    let mut workspaces = Vec::new();
    let ids = std::iter::once(project.workspace_id).chain(project.shared_workspace_ids.clone());
    for ws in ids {
        // Names of every workspace the project is in, reachable or not
        // (scoped to the org; the ids are in the project already).
        if let Some(w) = state
            .store
            .get_workspace(&p.org, p.user_id, Role::Owner, ws)
            .await
            .map_err(DomainError::from)?
        {
            workspaces.push(ProjectWorkspaceView {
                id: w.id.to_string(),
                name: w.name,
                is_primary: w.id == project.workspace_id,
            });
        }
    }
    let mut v = view(&project);
    v.workspaces = Some(workspaces);
    v.spend = Some(spend_view(spend));
    Ok(ok(v))
}

/// `PATCH /api/v1/projects/:id`: partial; visibility and workspaces need
/// the creator or an org admin.
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ProjectRequest>,
) -> ApiResult<Response> {
    let project = service(&state).update(&p, &id, input(req)).await?;
    Ok(ok(view(&project)))
}

/// `DELETE /api/v1/projects/:id`: soft-deletes it, its files and sessions.
pub async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let project = service(&state).delete(&p, &id).await?;
    Ok(ok(
        json!({ "id": project.id.to_string(), "deletedAt": format_ts(state.clock.now()) }),
    ))
}

fn portability(state: &AppState) -> Portability<'_> {
    Portability {
        store: state.store.as_ref(),
        now: state.clock.now(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuplicateRequest {
    pub name: Option<String>,
}

/// `POST /api/v1/projects/:id/duplicate` `{name?}` → 201: blocks with new
/// ids and their edges; no sessions, share links or members.
pub async fn duplicate(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: Option<ApiJson<DuplicateRequest>>,
) -> ApiResult<Response> {
    let name = body.and_then(|ApiJson(b)| b.name);
    let copy = portability(&state).duplicate(&p, &id, name).await?;
    Ok(views::created(view(&copy)))
}

/// `GET /api/v1/projects/:id/export`: the checksummed manifest.
pub async fn export(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(portability(&state).export(&p, &id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    pub manifest: serde_json::Value,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreQuery {
    pub dry_run: Option<bool>,
}

/// `POST /api/v1/projects/:id/restore` `{manifest, dryRun?}` (or
/// `?dryRun=true`), up to 8 MB.
pub async fn restore(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RestoreQuery>,
    LargeJson(req): LargeJson<RestoreRequest, MAX_MANIFEST_BYTES>,
) -> ApiResult<Response> {
    let dry_run = req.dry_run || q.dry_run.unwrap_or(false);
    let outcome = portability(&state)
        .restore(&p, &id, &req.manifest, dry_run)
        .await?;
    Ok(ok(outcome_json(&outcome)))
}

/// `GET /api/v1/projects/:id/navigator`: the project folder's tree (folders
/// to depth 4, with how many files each holds), block counts by type, and
/// the project's sessions.
pub async fn navigator(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let project = service(&state).get(&p, &id).await?;
    let tools = portability(&state);
    let tree = tools.project_tree(&p.org, &project).await?;
    let root = state
        .store
        .get_project_folder(&p.org, project.id)
        .await
        .map_err(DomainError::from)?;
    let folders = root.map(|root| {
        // Children by parent, in listing order (folders first, then names).
        let mut children: HashMap<Uuid, Vec<&alumia_core::files::StoredFile>> = HashMap::new();
        for (_, f) in &tree {
            if let Some(parent) = f.parent_id {
                children.entry(parent).or_default().push(f);
            }
        }
        fn node(
            id: Uuid,
            name: &str,
            children: &HashMap<Uuid, Vec<&alumia_core::files::StoredFile>>,
        ) -> serde_json::Value {
            let kids = children.get(&id).map(Vec::as_slice).unwrap_or_default();
            json!({
                "id": id.to_string(),
                "name": name,
                "fileCount": kids.iter().filter(|f| !f.is_folder()).count(),
                "folders": kids
                    .iter()
                    .filter(|f| f.is_folder())
                    .map(|f| node(f.id, &f.name, children))
                    .collect::<Vec<_>>(),
            })
        }
        node(root.id, &root.name, &children)
    });
    let canvas = crate::routes::blocks::canvas_parts(&state, &p.org, &project).await?;
    let mut by_type: std::collections::BTreeMap<String, usize> = Default::default();
    for b in &canvas.blocks {
        *by_type.entry(b.block_type.clone()).or_default() += 1;
    }
    Ok(ok(json!({
        "project": view(&project),
        "folders": folders,
        "blocksByType": by_type,
        "sessions": canvas.agent_nodes,
    })))
}
