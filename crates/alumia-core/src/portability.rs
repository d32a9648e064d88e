//! Project export manifests (spec 06 §4): their format, the checksum, and
//! the plan a restore follows. Pure functions; the service that reads and
//! writes the store lives with the blocks.
//!
//! Format (our decision): `{format: "alumia.project-export", version: 1,
//! exportedAt, orgId, project, blocks, edges, files, checksum}` where
//! `checksum` is the SHA-256 hex of the canonical JSON (keys sorted, no
//! whitespace) of everything else. `orgId` lets a restore refuse another
//! org's manifest before it writes anything.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::crypto::sha256_hex;
use crate::error::DomainError;

pub const FORMAT: &str = "alumia.project-export";
pub const VERSION: u64 = 1;
/// `POST …/restore` bodies up to this size.
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

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
