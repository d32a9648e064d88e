//! Duplicate, export and restore a project (spec 06 §4): the manifest
//! format, its checksum, the plan a restore follows, and the service.
//!
//! Format (our decision): `{format: "alumia.project-export", version: 1,
//! exportedAt, orgId, project, blocks, edges, files, checksum}` where
//! `checksum` is the SHA-256 hex of the canonical JSON (keys sorted, no
//! whitespace) of everything else. `orgId` lets a restore refuse another
//! org's manifest before it writes anything.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::blocks::{Block, CreatedBy, Edge, MAX_UNPAGED, NodeRef, Position};
use crate::clock::format_ts;
use crate::crypto::sha256_hex;
use crate::error::{DomainError, DomainResult};
use crate::files::{BlobRef, FileListQuery, StoredFile};
use crate::principal::Principal;
use crate::projects::{FileEntry, Project, ProjectInput, Projects, project_folder};
use crate::scope::OrgScope;
use crate::store::{PageRequest, Store, StoreResult};

pub const FORMAT: &str = "alumia.project-export";
pub const VERSION: u64 = 1;
/// `POST …/restore` bodies up to this size.
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;
/// Folder levels a manifest, a copy and the navigator walk below the
/// project folder.
pub const MAX_TREE_DEPTH: usize = 4;

/// Keys sorted at every level, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                let mut out = serde_json::Map::new();
                for (k, v) in ordered {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json writes a map in its iteration order; `sorted` rebuilt each
    // map in key order, which both map flavours keep.
    sorted(value).to_string()
}

/// The checksum of a manifest: over every member except `checksum`.
pub fn checksum(manifest: &Value) -> String {
    let mut body = manifest.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("checksum");
    }
    sha256_hex(canonical_json(&body).as_bytes())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestPosition {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestProject {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub prompt: String,
    pub emoji: String,
    pub visibility: String,
    pub status: String,
    pub tags: Vec<String>,
    pub metadata: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestBlock {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub block_type: String,
    pub title: String,
    pub data: Value,
    pub position: ManifestPosition,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestNode {
    pub kind: String,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestEdge {
    pub id: Uuid,
    pub from: ManifestNode,
    pub to: ManifestNode,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestFile {
    pub id: Uuid,
    /// Folder path under the project folder, e.g. `docs/spec.pdf`.
    pub path: String,
    pub name: String,
    pub mime_type: Option<String>,
    pub size: i64,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u64,
    pub exported_at: String,
    pub org_id: Uuid,
    pub project: ManifestProject,
    pub blocks: Vec<ManifestBlock>,
    pub edges: Vec<ManifestEdge>,
    pub files: Vec<ManifestFile>,
    pub checksum: String,
}

impl Manifest {
    /// The manifest as JSON with its checksum filled in.
    pub fn sealed(mut self) -> Value {
        self.checksum = String::new();
        let mut value = serde_json::to_value(&self).expect("a manifest serialises");
        let sum = checksum(&value);
        value["checksum"] = Value::String(sum);
        value
    }
}

/// A manifest read back: typed, with whether its checksum holds.
#[derive(Debug, Clone)]
pub struct ReadManifest {
    pub manifest: Manifest,
    pub checksum_valid: bool,
}

/// Reads a manifest: `422 unsupported_manifest` for another format or
/// version, `422 invalid_manifest` (with the path) for any other shape.
/// The checksum is reported, not enforced: a dry run shows it.
pub fn read(value: &Value) -> Result<ReadManifest, DomainError> {
    let format = value.get("format").and_then(Value::as_str);
    let version = value.get("version").and_then(Value::as_u64);
    if format != Some(FORMAT) || version != Some(VERSION) {
        return Err(DomainError::invalid_with_reason(
            "unsupported_manifest",
            "manifest",
            format!("only {FORMAT} version {VERSION} manifests can be restored"),
        ));
    }
    let manifest: Manifest = serde_path_to_error::deserialize(value).map_err(|e| {
        DomainError::invalid_with_reason(
            "invalid_manifest",
            "manifest",
            format!("{}: {}", e.path(), e.inner()),
        )
    })?;
    let checksum_valid = checksum(value) == manifest.checksum;
    Ok(ReadManifest {
        manifest,
        checksum_valid,
    })
}

/// What a restore does to blocks. Ids in the manifest that name a block of
/// another project (or org) get new ids; `ids` maps every manifest block id
/// to the id it is written under.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestorePlan {
    pub create: Vec<Uuid>,
    pub update: Vec<Uuid>,
    pub delete: Vec<Uuid>,
    pub ids: HashMap<Uuid, Uuid>,
}

/// `live`: the project's live blocks. `taken`: manifest ids already used by
/// any other block row (another project, another org, or deleted elsewhere).
/// `fresh` makes new ids.
pub fn plan_restore(
    manifest: &Manifest,
    live: &HashSet<Uuid>,
    taken: &HashSet<Uuid>,
    mut fresh: impl FnMut() -> Uuid,
) -> RestorePlan {
    let mut plan = RestorePlan::default();
    for block in &manifest.blocks {
        if plan.ids.contains_key(&block.id) {
            continue;
        }
        if live.contains(&block.id) {
            plan.update.push(block.id);
            plan.ids.insert(block.id, block.id);
        } else if taken.contains(&block.id) {
            let id = fresh();
            plan.create.push(id);
            plan.ids.insert(block.id, id);
        } else {
            plan.create.push(block.id);
            plan.ids.insert(block.id, block.id);
        }
    }
    let kept: HashSet<Uuid> = plan.ids.values().copied().collect();
    let mut delete: Vec<Uuid> = live.difference(&kept).copied().collect();
    delete.sort();
    plan.delete = delete;
    plan
}

/// The writes of duplicate and restore, each in one transaction.
#[async_trait]
pub trait PortabilityStore: Send + Sync {
    /// `(id, org_id, project_id)` of every block row (any org, live or not)
    /// with one of `ids`: a restore re-issues ids that live elsewhere.
    async fn find_block_owners(&self, ids: &[Uuid])
    -> StoreResult<Vec<(Uuid, Uuid, Option<Uuid>)>>;
    /// Applies a restore; `NotFound` when the project is gone.
    async fn apply_project_restore(
        &self,
        org: &OrgScope,
        writes: &RestoreWrites,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The size of a blob some file row of the org (live or trashed) still
    /// references, if any: restore re-links files to such blobs.
    async fn org_blob_size(&self, org: &OrgScope, sha256: &str) -> StoreResult<Option<i64>>;
    /// The new project with its folder, blocks and edges.
    /// `Conflict("project_slug")` when the slug is taken.
    async fn create_project_copy(
        &self,
        org: &OrgScope,
        project: &Project,
        folder: &FileEntry,
        blocks: &[Block],
        edges: &[Edge],
    ) -> StoreResult<()>;
}

/// The writes of one restore: the project's fields, blocks rewritten (and
/// revived) in place, blocks inserted, blocks soft-deleted, and the stored
/// edges that replace the project's.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreWrites {
    pub project: Project,
    pub update: Vec<Block>,
    pub create: Vec<Block>,
    pub delete: Vec<Uuid>,
    pub edges: Vec<Edge>,
}

/// What `POST …/restore` did, or with `dryRun` would do.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreOutcome {
    pub checksum_valid: bool,
    pub dry_run: bool,
    pub create: Vec<Uuid>,
    pub update: Vec<Uuid>,
    pub delete: Vec<Uuid>,
    /// Manifest files whose bytes this org no longer has.
    pub missing_files: Vec<ManifestFile>,
    /// Manifest files re-linked to a blob the org holds: with `dry_run`
    /// their manifest ids, else the ids of the new rows.
    pub relinked_files: Vec<Uuid>,
    /// Manifest edges dropped because an end is not on the restored canvas.
    pub skipped_edges: Vec<Uuid>,
}

pub struct Portability<'a> {
    pub store: &'a dyn Store,
    pub now: DateTime<Utc>,
}

impl Portability<'_> {
    fn projects(&self) -> Projects<'_> {
        Projects {
            store: self.store,
            now: self.now,
        }
    }

    async fn all_blocks(&self, org: &OrgScope, project: Uuid) -> DomainResult<Vec<Block>> {
        let page = PageRequest {
            limit: MAX_UNPAGED,
            after: None,
        };
        Ok(self
            .store
            .list_blocks(org, Some(project), None, page)
            .await?)
    }

    /// The self-contained manifest of a project the principal sees.
    pub async fn export(&self, p: &Principal, raw: &str) -> DomainResult<Value> {
        let project = self.projects().get(p, raw).await?;
        let blocks = self.all_blocks(&p.org, project.id).await?;
        let edges = self.store.list_edges(&p.org, project.id).await?;
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            exported_at: format_ts(self.now),
            org_id: p.org.org_id(),
            project: ManifestProject {
                id: project.id,
                name: project.name.clone(),
                slug: project.slug.clone(),
                description: project.description.clone(),
                prompt: project.prompt.clone(),
                emoji: project.emoji.clone(),
                visibility: project.visibility.clone(),
                status: project.status.clone(),
                tags: project.tags.clone(),
                metadata: project.metadata.clone(),
            },
            blocks: blocks.iter().map(manifest_block).collect(),
            edges: edges.iter().map(manifest_edge).collect(),
            files: self.manifest_files(p, &project).await?,
            checksum: String::new(),
        };
        Ok(manifest.sealed())
    }

    /// The live rows under the project's folder, folders before their
    /// contents, each with its path below the folder (depth-limited).
    pub async fn project_tree(
        &self,
        org: &OrgScope,
        project: &Project,
    ) -> DomainResult<Vec<(String, StoredFile)>> {
        let Some(root) = self.store.get_project_folder(org, project.id).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([(root.id, String::new(), 0usize)]);
        while let Some((folder, prefix, depth)) = queue.pop_front() {
            let mut offset = 0;
            loop {
                let q = FileListQuery {
                    parent_id: folder,
                    search: None,
                    offset,
                    limit: 500,
                };
                let page = self.store.list_files(org, &q).await?;
                let n = page.len() as i64;
                for f in page {
                    let path = format!("{prefix}{}", f.name);
                    if f.is_folder() && depth + 1 < MAX_TREE_DEPTH {
                        queue.push_back((f.id, format!("{path}/"), depth + 1));
                    }
                    out.push((path, f));
                }
                if n < 500 {
                    break;
                }
                offset += n;
            }
        }
        Ok(out)
    }

    /// The project's stored files, for the manifest (bytes are downloaded
    /// separately).
    async fn manifest_files(
        &self,
        p: &Principal,
        project: &Project,
    ) -> DomainResult<Vec<ManifestFile>> {
        Ok(self
            .project_tree(&p.org, project)
            .await?
            .into_iter()
            .filter(|(_, f)| f.kind == "file" && f.status == "ready")
            .map(|(path, f)| ManifestFile {
                id: f.id,
                path,
                name: f.name,
                mime_type: f.mime_type,
                size: f.size,
                sha256: f.sha256,
            })
            .collect())
    }

    /// Copies the source's folder tree into the copy's folder: new rows,
    /// the same blobs (each copy takes a reference). A blob being deleted
    /// at that moment is skipped rather than referenced.
    async fn copy_files(
        &self,
        p: &Principal,
        source: &Project,
        copy: &Project,
    ) -> DomainResult<()> {
        let Some(target_root) = self.store.get_project_folder(&p.org, copy.id).await? else {
            return Ok(());
        };
        let source_root = self.store.get_project_folder(&p.org, source.id).await?;
        let mut folders: HashMap<Uuid, Uuid> = HashMap::new();
        if let Some(root) = source_root {
            folders.insert(root.id, target_root.id);
        }
        let tree = self.project_tree(&p.org, source).await?;
        let mut links = Vec::new();
        let mut ids: HashMap<Uuid, Uuid> = HashMap::new();
        for (_, f) in tree {
            let Some(parent) = f.parent_id.and_then(|id| folders.get(&id).copied()) else {
                continue;
            };
            let row = StoredFile {
                id: crate::new_id(),
                project_id: Some(copy.id),
                parent_id: Some(parent),
                is_protected: false,
                system_kind: None,
                created_by: Some(p.user_id),
                created_at: self.now,
                updated_at: self.now,
                deleted_at: None,
                ..f.clone()
            };
            ids.insert(f.id, row.id);
            match f.kind.as_str() {
                "folder" => {
                    self.store.create_file(&p.org, &row).await?;
                    folders.insert(f.id, row.id);
                }
                "link" => links.push(row),
                _ => {
                    // Pending uploads have no bytes to share.
                    if let (Some(sha), "ready") = (&f.sha256, f.status.as_str()) {
                        let blob = BlobRef {
                            sha256: sha.clone(),
                            size: f.size,
                        };
                        match self
                            .store
                            .create_uploaded_file(&p.org, &row, &blob, self.now)
                            .await
                        {
                            Ok(()) | Err(crate::StoreError::Conflict(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
        }
        for mut link in links {
            if let Some(target) = link.target_file_id.and_then(|t| ids.get(&t)) {
                link.target_file_id = Some(*target);
            }
            self.store.create_file(&p.org, &link).await?;
        }
        Ok(())
    }

    /// A copy of the project: blocks with new ids and edges remapped to
    /// them. Sessions, share links, members and memories stay behind.
    pub async fn duplicate(
        &self,
        p: &Principal,
        raw: &str,
        name: Option<String>,
    ) -> DomainResult<Project> {
        let source = self.projects().get(p, raw).await?;
        let name = match name {
            Some(n) => n,
            None => format!("{} (copy)", source.name)
                .chars()
                .take(255)
                .collect(),
        };
        self.projects().check_name(&name)?;
        let blocks = self.all_blocks(&p.org, source.id).await?;
        let edges = self.store.list_edges(&p.org, source.id).await?;
        // The copy lands where the caller may work: the source's workspaces
        // they reach (an invited member may reach none of them), else their
        // active or default workspace.
        let reach = crate::access::reachable_workspaces(self.store, p).await?;
        let reachable = |w: &Uuid| reach.as_ref().is_none_or(|ids| ids.contains(w));
        let workspace_id = if reachable(&source.workspace_id) {
            source.workspace_id
        } else {
            crate::access::active_or_default_workspace(self.store, p).await?
        };
        let shared_workspace_ids = source
            .shared_workspace_ids
            .iter()
            .copied()
            .filter(|w| reachable(w) && *w != workspace_id)
            .collect();
        let mut copy = Project {
            id: crate::new_id(),
            workspace_id,
            shared_workspace_ids,
            user_id: p.user_id,
            name: crate::agents::normalise_name(&name),
            share_enabled: false,
            created_at: self.now,
            updated_at: self.now,
            ..source.clone()
        };
        let base = crate::agents::slugify_or(&copy.name, "project");
        copy.slug = base.clone();
        let folder = project_folder(&copy);
        let creator = CreatedBy {
            kind: "user".into(),
            id: p.user_id,
            session_id: None,
            turn_id: None,
        };
        let mut ids = HashMap::new();
        let new_blocks: Vec<Block> = blocks
            .iter()
            .map(|b| {
                let id = crate::new_id();
                ids.insert(b.id, id);
                Block {
                    id,
                    project_id: Some(copy.id),
                    created_by: creator.clone(),
                    created_at: self.now,
                    updated_at: self.now,
                    ..b.clone()
                }
            })
            .collect();
        // Edges between blocks come along; edges to sessions cannot.
        let new_edges: Vec<Edge> = edges
            .iter()
            .filter_map(|e| {
                let from = *ids.get(&e.from.id).filter(|_| e.from.kind == "block")?;
                let to = *ids.get(&e.to.id).filter(|_| e.to.kind == "block")?;
                Some(Edge {
                    id: crate::new_id(),
                    project_id: copy.id,
                    from: NodeRef {
                        kind: "block".into(),
                        id: from,
                    },
                    to: NodeRef {
                        kind: "block".into(),
                        id: to,
                    },
                    created_by: creator.clone(),
                    created_at: self.now,
                    ..e.clone()
                })
            })
            .collect();
        for n in 1.. {
            match self
                .store
                .create_project_copy(&p.org, &copy, &folder, &new_blocks, &new_edges)
                .await
            {
                Ok(()) => {
                    self.copy_files(p, &source, &copy).await?;
                    return Ok(copy);
                }
                Err(crate::StoreError::Conflict(_)) if n < 50 => {
                    copy.slug = format!("{base}-{}", n + 1);
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns")
    }

    /// Makes the project's fields, blocks and edges equal the manifest, or
    /// with `dry_run` says what that would do. Nothing is written unless
    /// the manifest is this org's, its checksum holds and every block in it
    /// is valid.
    pub async fn restore(
        &self,
        p: &Principal,
        raw: &str,
        manifest: &Value,
        dry_run: bool,
    ) -> DomainResult<RestoreOutcome> {
        let project = self.projects().get_writable(p, raw).await?;
        let read = read(manifest)?;
        let m = &read.manifest;
        if m.org_id != p.org.org_id() {
            return Err(DomainError::invalid_with_reason(
                "foreign_manifest",
                "manifest",
                "this manifest was exported from another organization",
            ));
        }
        if !dry_run && !read.checksum_valid {
            return Err(DomainError::invalid_with_reason(
                "checksum_mismatch",
                "manifest.checksum",
                "the manifest does not match its checksum",
            ));
        }
        let restored = self.restored_fields(p, &project, &m.project)?;
        for (i, b) in m.blocks.iter().enumerate() {
            check_manifest_block(i, b)?;
        }

        let current = self.all_blocks(&p.org, project.id).await?;
        let mut ours: HashSet<Uuid> = current.iter().map(|b| b.id).collect();
        let mut taken = HashSet::new();
        let wanted: Vec<Uuid> = m.blocks.iter().map(|b| b.id).collect();
        for (id, org, owner) in self.store.find_block_owners(&wanted).await? {
            if org == p.org.org_id() && owner == Some(project.id) {
                // A deleted block of this project comes back under its id.
                ours.insert(id);
            } else {
                taken.insert(id);
            }
        }
        let live: HashSet<Uuid> = current.iter().map(|b| b.id).collect();
        let plan = plan_restore(m, &ours, &taken, crate::new_id);
        // Only live blocks are deleted; `ours` may hold deleted ones.
        let delete: Vec<Uuid> = plan
            .delete
            .iter()
            .copied()
            .filter(|id| live.contains(id))
            .collect();

        let sessions: HashSet<Uuid> = self
            .store
            .list_session_nodes(&p.org, project.id)
            .await?
            .iter()
            .map(|s| s.session_id)
            .collect();
        let creator = CreatedBy {
            kind: "user".into(),
            id: p.user_id,
            session_id: None,
            turn_id: None,
        };
        let node = |n: &ManifestNode| -> Option<NodeRef> {
            let id = match n.kind.as_str() {
                "block" => *plan.ids.get(&n.id)?,
                "session" if sessions.contains(&n.id) => n.id,
                _ => return None,
            };
            Some(NodeRef {
                kind: n.kind.clone(),
                id,
            })
        };
        let mut edges = Vec::new();
        let mut skipped_edges = Vec::new();
        for e in &m.edges {
            match (node(&e.from), node(&e.to)) {
                (Some(from), Some(to)) => edges.push(Edge {
                    id: crate::new_id(),
                    org_id: p.org.org_id(),
                    project_id: project.id,
                    from,
                    to,
                    label: e.label.clone(),
                    created_by: creator.clone(),
                    created_at: self.now,
                }),
                _ => skipped_edges.push(e.id),
            }
        }
        let mut outcome = RestoreOutcome {
            checksum_valid: read.checksum_valid,
            dry_run,
            create: plan.create.clone(),
            update: plan.update.clone(),
            delete: delete.clone(),
            missing_files: Vec::new(),
            relinked_files: Vec::new(),
            skipped_edges,
        };
        let (relink, missing) = self.file_plan(p, &project, m).await?;
        outcome.missing_files = missing;
        if dry_run {
            outcome.relinked_files = relink.iter().map(|(f, _)| f.id).collect();
            return Ok(outcome);
        }

        let existing: HashMap<Uuid, &Block> = current.iter().map(|b| (b.id, b)).collect();
        let mut update = Vec::new();
        let mut create = Vec::new();
        let mut seen = HashSet::new();
        for b in &m.blocks {
            let id = plan.ids[&b.id];
            if !seen.insert(id) {
                continue;
            }
            let position = Position {
                x: b.position.x,
                y: b.position.y,
                width: b.position.width,
                height: b.position.height,
            };
            if plan.update.contains(&id) {
                let created_by = existing
                    .get(&id)
                    .map_or(creator.clone(), |b| b.created_by.clone());
                update.push(Block {
                    id,
                    org_id: p.org.org_id(),
                    project_id: Some(project.id),
                    block_type: b.block_type.clone(),
                    title: b.title.clone(),
                    data: b.data.clone(),
                    position,
                    created_by,
                    created_at: self.now,
                    updated_at: self.now,
                });
            } else {
                create.push(Block {
                    id,
                    org_id: p.org.org_id(),
                    project_id: Some(project.id),
                    block_type: b.block_type.clone(),
                    title: b.title.clone(),
                    data: b.data.clone(),
                    position,
                    created_by: creator.clone(),
                    created_at: self.now,
                    updated_at: self.now,
                });
            }
        }
        let writes = RestoreWrites {
            project: restored,
            update,
            create,
            delete,
            edges,
        };
        self.store
            .apply_project_restore(&p.org, &writes, self.now)
            .await?;
        // Files follow the canvas: each re-link is its own write, and one
        // that fails leaves the restored canvas in place.
        outcome.relinked_files = self.relink_files(p, &project, &relink).await?;
        Ok(outcome)
    }

    /// The project as the manifest has it (its slug and workspaces stay).
    fn restored_fields(
        &self,
        p: &Principal,
        project: &Project,
        m: &ManifestProject,
    ) -> DomainResult<Project> {
        let input = ProjectInput {
            name: Some(m.name.clone()),
            description: Some(m.description.clone()),
            prompt: Some(m.prompt.clone()),
            emoji: Some(m.emoji.clone()),
            visibility: Some(m.visibility.clone()),
            status: Some(m.status.clone()),
            tags: Some(m.tags.clone()),
            metadata: Some(m.metadata.clone()),
            ..ProjectInput::default()
        };
        self.projects().check_input(&input)?;
        if m.visibility != project.visibility && project.user_id != p.user_id && !p.role.is_admin()
        {
            return Err(DomainError::forbidden(
                "not_project_creator",
                "only the project's creator or an org admin may change its visibility",
            ));
        }
        Ok(Project {
            name: crate::agents::normalise_name(&m.name),
            description: m.description.clone(),
            prompt: m.prompt.clone(),
            emoji: m.emoji.clone(),
            visibility: m.visibility.clone(),
            status: m.status.clone(),
            tags: m.tags.clone(),
            metadata: m.metadata.clone(),
            updated_at: self.now,
            ..project.clone()
        })
    }

    /// Splits the manifest's files the project lacks (by path and bytes):
    /// those to re-link to a blob the org still holds, and those whose
    /// bytes are gone from the org.
    async fn file_plan(
        &self,
        p: &Principal,
        project: &Project,
        m: &Manifest,
    ) -> DomainResult<(Vec<(ManifestFile, i64)>, Vec<ManifestFile>)> {
        let present: HashSet<(String, String)> = self
            .project_tree(&p.org, project)
            .await?
            .into_iter()
            .filter_map(|(path, f)| Some((path, f.sha256?)))
            .collect();
        let (mut relink, mut missing) = (Vec::new(), Vec::new());
        for f in &m.files {
            let Some(sha) = &f.sha256 else {
                missing.push(f.clone());
                continue;
            };
            if present.contains(&(f.path.clone(), sha.clone())) {
                continue;
            }
            match self.store.org_blob_size(&p.org, sha).await? {
                Some(size) => relink.push((f.clone(), size)),
                None => missing.push(f.clone()),
            }
        }
        Ok((relink, missing))
    }

    /// Re-links files to the org's blobs, at the top of the project folder
    /// (their folders are not re-created); the new rows' ids.
    async fn relink_files(
        &self,
        p: &Principal,
        project: &Project,
        relink: &[(ManifestFile, i64)],
    ) -> DomainResult<Vec<Uuid>> {
        let Some(root) = self.store.get_project_folder(&p.org, project.id).await? else {
            return Ok(Vec::new());
        };
        let mut made = Vec::new();
        for (f, size) in relink {
            let Some(sha) = &f.sha256 else { continue };
            let row = StoredFile {
                id: crate::new_id(),
                org_id: p.org.org_id(),
                project_id: Some(project.id),
                parent_id: Some(root.id),
                name: f.name.clone(),
                kind: "file".into(),
                mime_type: f.mime_type.clone(),
                size: *size,
                sha256: Some(sha.clone()),
                status: "ready".into(),
                system_kind: None,
                is_protected: false,
                target_file_id: None,
                tags: Vec::new(),
                metadata: json!({}),
                created_by: Some(p.user_id),
                created_at: self.now,
                updated_at: self.now,
                deleted_at: None,
            };
            let blob = BlobRef {
                sha256: sha.clone(),
                size: *size,
            };
            match self
                .store
                .create_uploaded_file(&p.org, &row, &blob, self.now)
                .await
            {
                Ok(()) => made.push(row.id),
                Err(crate::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(made)
    }
}

fn manifest_block(b: &Block) -> ManifestBlock {
    ManifestBlock {
        id: b.id,
        block_type: b.block_type.clone(),
        title: b.title.clone(),
        data: b.data.clone(),
        position: ManifestPosition {
            x: b.position.x,
            y: b.position.y,
            width: b.position.width,
            height: b.position.height,
        },
        created_at: format_ts(b.created_at),
        updated_at: format_ts(b.updated_at),
    }
}

fn manifest_edge(e: &Edge) -> ManifestEdge {
    ManifestEdge {
        id: e.id,
        from: ManifestNode {
            kind: e.from.kind.clone(),
            id: e.from.id,
        },
        to: ManifestNode {
            kind: e.to.kind.clone(),
            id: e.to.id,
        },
        label: e.label.clone(),
    }
}

/// A manifest block must pass the checks a create would: type, title, data
/// and a position on the grid.
fn check_manifest_block(i: usize, b: &ManifestBlock) -> DomainResult<()> {
    let at = |e: DomainError| match e {
        DomainError::Validation { reason, fields } => DomainError::Validation {
            reason: reason.or(Some("invalid_manifest")),
            fields: fields
                .into_iter()
                .map(|(k, v)| (format!("manifest.blocks[{i}].{k}"), v))
                .collect(),
        },
        other => other,
    };
    crate::blocks::check_type(&b.block_type).map_err(at)?;
    crate::blocks::check_title(&b.title).map_err(at)?;
    crate::blocks::check_data(&b.block_type, &b.data).map_err(at)?;
    let snapped = crate::blocks::grid_position(
        "position",
        b.position.x as f64,
        b.position.y as f64,
        Some(b.position.width as f64),
        Some(b.position.height as f64),
    )
    .map_err(at)?;
    if snapped
        != (
            b.position.x,
            b.position.y,
            Some(b.position.width),
            Some(b.position.height),
        )
    {
        return Err(at(DomainError::invalid(
            "position",
            "must be on the 24 px grid",
        )));
    }
    Ok(())
}

/// The JSON of a restore outcome.
pub fn outcome_json(o: &RestoreOutcome) -> Value {
    let ids = |v: &[Uuid]| v.iter().map(Uuid::to_string).collect::<Vec<_>>();
    json!({
        "checksumValid": o.checksum_valid,
        "dryRun": o.dry_run,
        "create": ids(&o.create),
        "update": ids(&o.update),
        "delete": ids(&o.delete),
        "missingFiles": o.missing_files,
        "relinkedFiles": ids(&o.relinked_files),
        "skippedEdges": ids(&o.skipped_edges),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            exported_at: "2026-12-03T00:00:00.000Z".into(),
            org_id: Uuid::nil(),
            project: ManifestProject {
                id: Uuid::nil(),
                name: "P".into(),
                slug: "p".into(),
                description: String::new(),
                prompt: String::new(),
                emoji: String::new(),
                visibility: "team".into(),
                status: "active".into(),
                tags: vec![],
                metadata: json!({"b": 1, "a": [ {"z": 1, "y": 2} ]}),
            },
            blocks: vec![],
            edges: vec![],
            files: vec![],
            checksum: String::new(),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level_without_whitespace() {
        let v = json!({"b": {"d": 1, "c": [{"f": true, "e": null}]}, "a": "x y"});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"x y","b":{"c":[{"e":null,"f":true}],"d":1}}"#
        );
    }

    #[test]
    fn sealed_manifests_verify_and_any_change_breaks_the_checksum() {
        let sealed = manifest().sealed();
        let read_back = read(&sealed).expect("reads");
        assert!(read_back.checksum_valid);
        assert_eq!(sealed["checksum"].as_str().unwrap().len(), 64);
        // Key order does not matter; content does.
        let reordered: Value =
            serde_json::from_str(&canonical_json(&sealed)).expect("canonical is JSON");
        assert!(read(&reordered).unwrap().checksum_valid);
        let mut changed = sealed.clone();
        changed["project"]["name"] = json!("Q");
        assert!(!read(&changed).unwrap().checksum_valid);
    }

    #[test]
    fn other_formats_versions_and_shapes_are_refused() {
        let sealed = manifest().sealed();
        for (path, value) in [("format", json!("zip")), ("version", json!(2))] {
            let mut m = sealed.clone();
            m[path] = value;
            let err = read(&m).unwrap_err();
            assert!(
                matches!(
                    err,
                    DomainError::Validation {
                        reason: Some("unsupported_manifest"),
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        let mut m = sealed.clone();
        m["blocks"] = json!([{"id": "not-a-uuid"}]);
        let err = read(&m).unwrap_err();
        assert!(
            matches!(
                err,
                DomainError::Validation {
                    reason: Some("invalid_manifest"),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(read(&json!([])).is_err());
        let mut m = sealed;
        m["extra"] = json!(1);
        assert!(read(&m).is_err(), "unknown members are refused");
    }

    #[test]
    fn plans_update_live_blocks_create_new_ones_reissue_taken_ids_and_delete_the_rest() {
        let ids: Vec<Uuid> = (0..5).map(|_| crate::new_id()).collect();
        let block = |id: Uuid| ManifestBlock {
            id,
            block_type: "document".into(),
            title: String::new(),
            data: json!({}),
            position: ManifestPosition {
                x: 0,
                y: 0,
                width: 24,
                height: 24,
            },
            created_at: String::new(),
            updated_at: String::new(),
        };
        let mut m = manifest();
        m.blocks = vec![block(ids[0]), block(ids[1]), block(ids[2]), block(ids[0])];
        let live: HashSet<Uuid> = [ids[0], ids[3]].into();
        let taken: HashSet<Uuid> = [ids[2]].into();
        let plan = plan_restore(&m, &live, &taken, || ids[4]);
        assert_eq!(plan.update, vec![ids[0]]);
        assert_eq!(plan.create, vec![ids[1], ids[4]]);
        assert_eq!(plan.delete, vec![ids[3]]);
        assert_eq!(plan.ids[&ids[2]], ids[4], "a taken id is re-issued");
        assert_eq!(plan.ids.len(), 3, "a repeated id counts once");
    }
}
