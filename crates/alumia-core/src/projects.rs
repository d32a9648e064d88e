//! Projects (spec 06 §1): validation, slugs, visibility through workspaces,
//! and the protected folder every project gets.
//!
//! Visibility: a principal sees a project when its workspace or one of its
//! shared workspaces is reachable (`access::reachable_workspaces`: admins and
//! owners reach all of them) and, for a `private` project, only when the
//! principal's user created it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::agents::{normalise_name, slugify_or};
use crate::error::{DomainError, DomainResult, StoreError};
use crate::principal::Principal;
use crate::scope::OrgScope;
use crate::store::{PageRequest, Store, StoreResult};
use crate::{new_id, validate};

pub const VISIBILITIES: [&str; 2] = ["team", "private"];
pub const STATUSES: [&str; 2] = ["active", "archived"];
pub const FOLDER_SYSTEM_KIND: &str = "projectFolder";
const METADATA_MAX_BYTES: usize = 16 * 1024;
const MAX_TAGS: usize = 20;
const MAX_SHARED_WORKSPACES: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: Uuid,
    pub org_id: Uuid,
    pub workspace_id: Uuid,
    pub shared_workspace_ids: Vec<Uuid>,
    /// The creator.
    pub user_id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub prompt: String,
    pub emoji: String,
    pub visibility: String,
    pub status: String,
    pub tags: Vec<String>,
    pub metadata: Value,
    /// Whether a share token exists (the token itself never leaves the store).
    pub share_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A project by uuid or slug.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectRef {
    Id(Uuid),
    Slug(String),
}

impl ProjectRef {
    pub fn parse(raw: &str) -> ProjectRef {
        match Uuid::parse_str(raw) {
            Ok(id) => ProjectRef::Id(id),
            Err(_) => ProjectRef::Slug(raw.to_string()),
        }
    }
}

/// How a principal reaches a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectAccess {
    /// Through the project's workspaces (and, if private, as its creator).
    Workspace,
    /// Only as an invited member.
    Editor,
    Viewer,
}

/// Who may see what, as the store applies it to lists: the visibility rule,
/// or an invited membership of `user_id`.
#[derive(Debug, Clone, Copy)]
pub struct ProjectViewer<'a> {
    pub user_id: Uuid,
    /// `None`: every workspace (admins, owners).
    pub workspaces: Option<&'a [Uuid]>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectFilter {
    pub workspace_id: Option<Uuid>,
    pub status: Option<String>,
    /// Case-insensitive substring of name or description.
    pub q: Option<String>,
    pub tag: Option<String>,
}

/// A row of `files`; only project folders are written so far.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub id: Uuid,
    pub org_id: Uuid,
    pub project_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub system_kind: Option<String>,
    pub is_protected: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The protected folder created with `project`.
pub fn project_folder(project: &Project) -> FileEntry {
    FileEntry {
        id: new_id(),
        org_id: project.org_id,
        project_id: Some(project.id),
        parent_id: None,
        name: project.name.clone(),
        kind: "folder".into(),
        status: "ready".into(),
        system_kind: Some(FOLDER_SYSTEM_KIND.into()),
        is_protected: true,
        created_by: Some(project.user_id),
        created_at: project.created_at,
        updated_at: project.created_at,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectSpend {
    pub credits_microcredits: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl ProjectSpend {
    /// Sums `usage` JSON objects (`{inputTokens, outputTokens, creditsMicrocredits}`).
    pub fn sum<'a>(usages: impl IntoIterator<Item = &'a Value>) -> ProjectSpend {
        let mut s = ProjectSpend::default();
        let n = |u: &Value, k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
        for u in usages {
            s.credits_microcredits += n(u, "creditsMicrocredits");
            s.input_tokens += n(u, "inputTokens");
            s.output_tokens += n(u, "outputTokens");
        }
        s
    }
}

/// Project rows; every method is scoped by the org.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Inserts the project, its shared workspaces and its folder in one
    /// transaction. `Conflict("project_slug")` when a live project of the org
    /// has the slug.
    async fn create_project(
        &self,
        org: &OrgScope,
        project: &Project,
        folder: &FileEntry,
    ) -> StoreResult<()>;
    /// A live project by id or slug, visible or not.
    async fn get_project(
        &self,
        org: &OrgScope,
        project: &ProjectRef,
    ) -> StoreResult<Option<Project>>;
    /// Live projects `viewer` sees, `updated_at` desc, keyset pages.
    async fn list_projects(
        &self,
        org: &OrgScope,
        viewer: ProjectViewer<'_>,
        filter: &ProjectFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<Project>>;
    /// Writes every mutable field and replaces the shared workspaces.
    /// `NotFound` for a deleted project, `Conflict("project_slug")`.
    async fn update_project(&self, org: &OrgScope, project: &Project) -> StoreResult<()>;
    /// Soft-deletes the project, its files, blocks and sessions, deletes its
    /// edges and session positions, and clears its share token, in one
    /// transaction. `NotFound` when already gone.
    async fn delete_project(&self, org: &OrgScope, id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;
    /// The project's live protected folder.
    async fn get_project_folder(
        &self,
        org: &OrgScope,
        project: Uuid,
    ) -> StoreResult<Option<FileEntry>>;
    /// Which of `projects` have no live protected folder (one read).
    async fn projects_without_folder(
        &self,
        org: &OrgScope,
        projects: &[Uuid],
    ) -> StoreResult<Vec<Uuid>>;
    /// Inserts each folder unless its project has a live one by then.
    async fn create_missing_project_folders(
        &self,
        org: &OrgScope,
        folders: &[FileEntry],
    ) -> StoreResult<()>;
    /// `usage` of the assistant messages in the project's live sessions.
    async fn list_project_usage(&self, org: &OrgScope, project: Uuid) -> StoreResult<Vec<Value>>;
}

/// What a create or an update may set. `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub prompt: Option<String>,
    pub emoji: Option<String>,
    pub visibility: Option<String>,
    pub status: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<Value>,
    pub workspace_id: Option<String>,
    pub shared_workspace_ids: Option<Vec<String>>,
}

/// The dev/echo name rule: the first six words of the description.
pub fn name_from_description(description: &str) -> String {
    let name: String = description
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ");
    let name: String = name.chars().take(255).collect();
    if name.is_empty() {
        "Untitled project".into()
    } else {
        name
    }
}

fn project_slugify(name: &str) -> String {
    slugify_or(name, "project")
}

pub struct Projects<'a> {
    pub store: &'a dyn Store,
    pub now: DateTime<Utc>,
}

impl Projects<'_> {
    /// The visibility rule of the module docs.
    pub fn visible(project: &Project, p: &Principal, reach: &Option<Vec<Uuid>>) -> bool {
        let in_reach = match reach {
            None => true,
            Some(ids) => {
                ids.contains(&project.workspace_id)
                    || project.shared_workspace_ids.iter().any(|w| ids.contains(w))
            }
        };
        in_reach && (project.visibility != "private" || project.user_id == p.user_id)
    }

    pub async fn list(
        &self,
        p: &Principal,
        filter: &ProjectFilter,
        page: PageRequest,
    ) -> DomainResult<Vec<Project>> {
        let reach = crate::access::reachable_workspaces(self.store, p).await?;
        let viewer = ProjectViewer {
            user_id: p.user_id,
            workspaces: reach.as_deref(),
        };
        let projects = self
            .store
            .list_projects(&p.org, viewer, filter, page)
            .await?;
        self.backfill_folders(p, &projects).await?;
        Ok(projects)
    }

    /// Spec 06 §1: listing creates the protected folder of any listed
    /// project that lacks one (projects from before folders existed). A read
    /// first, so a normal list writes nothing.
    async fn backfill_folders(&self, p: &Principal, projects: &[Project]) -> DomainResult<()> {
        let ids: Vec<Uuid> = projects.iter().map(|p| p.id).collect();
        let missing = self.store.projects_without_folder(&p.org, &ids).await?;
        if missing.is_empty() {
            return Ok(());
        }
        let folders: Vec<FileEntry> = projects
            .iter()
            .filter(|p| missing.contains(&p.id))
            .map(project_folder)
            .collect();
        self.store
            .create_missing_project_folders(&p.org, &folders)
            .await?;
        Ok(())
    }

    /// 404 for a missing, deleted, invisible or foreign project.
    pub async fn get(&self, p: &Principal, raw: &str) -> DomainResult<Project> {
        Ok(self.get_with_access(p, raw).await?.0)
    }

    /// The project and how the principal reaches it: through its workspaces,
    /// or only as an invited member (spec 06 §5), who sees it whatever its
    /// visibility and workspaces.
    pub async fn get_with_access(
        &self,
        p: &Principal,
        raw: &str,
    ) -> DomainResult<(Project, ProjectAccess)> {
        let project = self
            .store
            .get_project(&p.org, &ProjectRef::parse(raw))
            .await?
            .ok_or(DomainError::NotFound)?;
        let reach = crate::access::reachable_workspaces(self.store, p).await?;
        if Self::visible(&project, p, &reach) {
            return Ok((project, ProjectAccess::Workspace));
        }
        match self
            .store
            .get_project_member(&p.org, project.id, p.user_id)
            .await?
        {
            Some(m) if m.role == "editor" => Ok((project, ProjectAccess::Editor)),
            Some(_) => Ok((project, ProjectAccess::Viewer)),
            None => Err(DomainError::NotFound),
        }
    }

    /// Like `get`, for changes: a member invited as `viewer` reads only
    /// (`403 project_read_only`).
    pub async fn get_writable(&self, p: &Principal, raw: &str) -> DomainResult<Project> {
        match self.get_with_access(p, raw).await? {
            (_, ProjectAccess::Viewer) => Err(DomainError::forbidden(
                "project_read_only",
                "you were invited to this project as a viewer",
            )),
            (project, _) => Ok(project),
        }
    }

    /// Like `get`, for references in other bodies (`projectId` of a
    /// session or a chat): an unknown project is `422 invalid_reference`.
    pub async fn reference(&self, p: &Principal, raw: &str) -> DomainResult<Project> {
        self.get(p, raw).await.map_err(|e| match e {
            DomainError::NotFound => DomainError::invalid_reference("projectId"),
            other => other,
        })
    }

    pub async fn spend(&self, p: &Principal, project: &Project) -> DomainResult<ProjectSpend> {
        let usage = self.store.list_project_usage(&p.org, project.id).await?;
        Ok(ProjectSpend::sum(usage.iter()))
    }

    /// The field checks of a create or an update.
    pub fn check_input(&self, input: &ProjectInput) -> DomainResult<()> {
        self.check_fields(input)
    }

    /// `name` as a create would take it.
    pub fn check_name(&self, name: &str) -> DomainResult<()> {
        validate::all([validate::text("name", &normalise_name(name), 1, 255)])
    }

    fn check_fields(&self, input: &ProjectInput) -> DomainResult<()> {
        let mut checks = Vec::new();
        if let Some(name) = &input.name {
            checks.push(validate::text("name", &normalise_name(name), 1, 255));
        }
        if let Some(slug) = &input.slug
            && !validate::is_slug(slug, 1, 64)
        {
            checks.push(Err(DomainError::invalid(
                "slug",
                "must be 1-64 characters of a-z, 0-9 and single dashes",
            )));
        }
        if let Some(d) = &input.description {
            checks.push(validate::text("description", d, 0, 5000));
        }
        if let Some(v) = &input.prompt {
            checks.push(validate::text("prompt", v, 0, 12_000));
        }
        if let Some(v) = &input.emoji {
            checks.push(validate::text("emoji", v, 0, 16));
        }
        if let Some(v) = &input.visibility
            && !VISIBILITIES.contains(&v.as_str())
        {
            checks.push(Err(DomainError::invalid(
                "visibility",
                "must be team or private",
            )));
        }
        if let Some(v) = &input.status
            && !STATUSES.contains(&v.as_str())
        {
            checks.push(Err(DomainError::invalid(
                "status",
                "must be active or archived",
            )));
        }
        if let Some(tags) = &input.tags {
            if tags.len() > MAX_TAGS {
                checks.push(Err(DomainError::invalid("tags", "at most 20 tags")));
            } else if tags
                .iter()
                .any(|t| t.trim().is_empty() || validate::char_len(t) > 64)
            {
                checks.push(Err(DomainError::invalid(
                    "tags",
                    "each tag must be 1-64 characters",
                )));
            }
        }
        if let Some(meta) = &input.metadata {
            if !meta.is_object() {
                checks.push(Err(DomainError::invalid("metadata", "must be an object")));
            } else if meta.to_string().len() > METADATA_MAX_BYTES {
                checks.push(Err(DomainError::invalid(
                    "metadata",
                    "must be at most 16 KB",
                )));
            }
        }
        if let Some(ids) = &input.shared_workspace_ids
            && ids.len() > MAX_SHARED_WORKSPACES
        {
            checks.push(Err(DomainError::invalid(
                "sharedWorkspaceIds",
                "at most 50 workspaces",
            )));
        }
        validate::all(checks)
    }

    async fn check_workspace(&self, p: &Principal, field: &str, raw: &str) -> DomainResult<Uuid> {
        let invalid = || DomainError::invalid_reference(field);
        let id = Uuid::parse_str(raw).map_err(|_| invalid())?;
        self.store
            .get_workspace(&p.org, p.user_id, p.role, id)
            .await?
            .ok_or_else(invalid)?;
        Ok(id)
    }

    async fn check_shared(&self, p: &Principal, raw: &[String]) -> DomainResult<Vec<Uuid>> {
        let mut ids = Vec::new();
        for r in raw {
            let id = self.check_workspace(p, "sharedWorkspaceIds", r).await?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn slug_taken() -> DomainError {
        DomainError::conflict("slug_taken", "a project of this org has that slug")
    }

    pub async fn create(&self, p: &Principal, input: ProjectInput) -> DomainResult<Project> {
        let description = input.description.clone().unwrap_or_default();
        let name = match input.name.as_deref().map(normalise_name) {
            Some(name) => name,
            None if !description.trim().is_empty() => name_from_description(&description),
            None => {
                return Err(DomainError::invalid(
                    "name",
                    "a name or a description is required",
                ));
            }
        };
        self.check_fields(&input)?;
        let workspace_id = match input.workspace_id.as_deref() {
            Some(raw) => self.check_workspace(p, "workspaceId", raw).await?,
            None => crate::access::active_or_default_workspace(self.store, p).await?,
        };
        let mut shared = match &input.shared_workspace_ids {
            Some(raw) => self.check_shared(p, raw).await?,
            None => Vec::new(),
        };
        shared.retain(|w| *w != workspace_id);
        let explicit_slug = input.slug.clone();
        let base = explicit_slug
            .clone()
            .unwrap_or_else(|| project_slugify(&name));
        let mut project = Project {
            id: new_id(),
            org_id: p.org.org_id(),
            workspace_id,
            shared_workspace_ids: shared,
            user_id: p.user_id,
            name,
            slug: base.clone(),
            description,
            prompt: input.prompt.unwrap_or_default(),
            emoji: input.emoji.unwrap_or_default(),
            visibility: input.visibility.unwrap_or_else(|| "team".into()),
            status: input.status.unwrap_or_else(|| "active".into()),
            tags: input.tags.unwrap_or_default(),
            metadata: input.metadata.unwrap_or_else(|| json!({})),
            share_enabled: false,
            created_at: self.now,
            updated_at: self.now,
        };
        let folder = project_folder(&project);
        // A derived slug takes -2, -3 … on collision; an explicit one is a 409.
        for n in 1.. {
            match self.store.create_project(&p.org, &project, &folder).await {
                Ok(()) => return Ok(project),
                Err(StoreError::Conflict(_)) if explicit_slug.is_none() && n < 50 => {
                    project.slug = format!("{base}-{}", n + 1);
                }
                Err(StoreError::Conflict(_)) => return Err(Self::slug_taken()),
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns")
    }

    pub async fn update(
        &self,
        p: &Principal,
        raw: &str,
        input: ProjectInput,
    ) -> DomainResult<Project> {
        let mut project = self.get_writable(p, raw).await?;
        self.check_fields(&input)?;
        let governs = input.visibility.is_some()
            || input.workspace_id.is_some()
            || input.shared_workspace_ids.is_some();
        if governs && project.user_id != p.user_id && !p.role.is_admin() {
            return Err(DomainError::forbidden(
                "not_project_creator",
                "only the project's creator or an org admin may change its visibility or workspaces",
            ));
        }
        if let Some(name) = &input.name {
            project.name = normalise_name(name);
        }
        if let Some(v) = input.slug {
            project.slug = v;
        }
        if let Some(v) = input.description {
            project.description = v;
        }
        if let Some(v) = input.prompt {
            project.prompt = v;
        }
        if let Some(v) = input.emoji {
            project.emoji = v;
        }
        if let Some(v) = input.visibility {
            project.visibility = v;
        }
        if let Some(v) = input.status {
            project.status = v;
        }
        if let Some(v) = input.tags {
            project.tags = v;
        }
        if let Some(v) = input.metadata {
            project.metadata = v;
        }
        if let Some(raw_ws) = input.workspace_id.as_deref() {
            project.workspace_id = self.check_workspace(p, "workspaceId", raw_ws).await?;
        }
        if let Some(raw) = &input.shared_workspace_ids {
            project.shared_workspace_ids = self.check_shared(p, raw).await?;
        }
        let primary = project.workspace_id;
        project.shared_workspace_ids.retain(|w| *w != primary);
        project.updated_at = self.now;
        self.store
            .update_project(&p.org, &project)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => Self::slug_taken(),
                other => other.into(),
            })?;
        Ok(project)
    }

    pub async fn delete(&self, p: &Principal, raw: &str) -> DomainResult<Project> {
        let project = self.get_writable(p, raw).await?;
        self.store
            .delete_project(&p.org, project.id, self.now)
            .await?;
        Ok(project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_first_six_words_of_the_description() {
        assert_eq!(
            name_from_description("  Plan the  spring launch of our new product line "),
            "Plan the spring launch of our"
        );
        assert_eq!(name_from_description("Short"), "Short");
        assert_eq!(name_from_description("   "), "Untitled project");
    }

    #[test]
    fn project_slugs_fall_back_to_project() {
        assert_eq!(project_slugify("Q3 Roadmap"), "q3-roadmap");
        assert_eq!(project_slugify("!!!"), "project");
        assert_eq!(project_slugify("Agent"), "agent");
    }

    #[test]
    fn spend_sums_usage_and_ignores_missing_fields() {
        let u = [
            json!({"inputTokens": 3, "outputTokens": 2, "creditsMicrocredits": 10}),
            json!({"inputTokens": 4}),
            json!(null),
        ];
        assert_eq!(
            ProjectSpend::sum(u.iter()),
            ProjectSpend {
                credits_microcredits: 10,
                input_tokens: 7,
                output_tokens: 2
            }
        );
    }
}
