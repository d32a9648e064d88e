//! Contract tests of [`FileStore`]: the org root, folder listings, scoping,
//! moves and cycles, subtree trash and purge, and blob reference counts.

use serde_json::json;
use uuid::Uuid;

use super::{Ctx, expect_conflict, expect_not_found, make_org, make_user, ok};
use crate::files::*;
use crate::new_id;
use crate::scope::OrgScope;
use crate::store::Store;

fn row(ctx: &Ctx, scope: &OrgScope, parent: Option<Uuid>, name: &str, kind: &str) -> StoredFile {
    StoredFile {
        id: new_id(),
        org_id: scope.org_id(),
        project_id: None,
        parent_id: parent,
        name: name.into(),
        kind: kind.into(),
        mime_type: (kind == "file").then(|| "text/plain".into()),
        size: 0,
        sha256: None,
        status: "ready".into(),
        system_kind: None,
        is_protected: false,
        target_file_id: None,
        tags: vec!["t".into()],
        metadata: json!({"k": 1}),
        created_by: None,
        created_at: ctx.t0,
        updated_at: ctx.t0,
        deleted_at: None,
    }
}

fn root(ctx: &Ctx, scope: &OrgScope) -> StoredFile {
    let mut r = row(ctx, scope, None, "Files", "folder");
    r.system_kind = Some(ROOT_SYSTEM_KIND.into());
    r.is_protected = true;
    r.tags = Vec::new();
    r.metadata = json!({});
    r
}

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn names(files: &[StoredFile]) -> Vec<&str> {
    files.iter().map(|f| f.name.as_str()).collect()
}

async fn children(store: &dyn Store, scope: &OrgScope, parent: Uuid) -> Vec<StoredFile> {
    let q = FileListQuery {
        parent_id: parent,
        search: None,
        offset: 0,
        limit: 100,
    };
    ok(store.list_files(scope, &q).await, "list_files")
}

async fn upload(
    store: &dyn Store,
    ctx: &Ctx,
    scope: &OrgScope,
    parent: Uuid,
    name: &str,
    blob: u8,
) -> StoredFile {
    let file = row(ctx, scope, Some(parent), name, "file");
    let blob = BlobRef {
        sha256: sha(blob),
        size: 3,
    };
    ok(
        store
            .create_uploaded_file(scope, &file, &blob, ctx.t0)
            .await,
        format!("create_uploaded_file({name})"),
    );
    ok(store.get_file(scope, file.id, false).await, "get").expect("uploaded file reads back")
}

pub async fn files_org_root_is_made_once_and_lists_are_scoped_and_ordered(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, _) = make_org(store, &ctx, "files", owner).await;
    let (other, _) = make_org(store, &ctx, "files-other", owner).await;

    let first = ok(
        store.ensure_org_root(&scope, &root(&ctx, &scope)).await,
        "root",
    );
    let again = ok(
        store.ensure_org_root(&scope, &root(&ctx, &scope)).await,
        "root again",
    );
    assert_eq!(first.id, again.id, "one root per org");
    assert!(first.is_protected);
    let other_root = ok(
        store.ensure_org_root(&other, &root(&ctx, &other)).await,
        "other root",
    );
    assert_ne!(first.id, other_root.id, "each org has its own root");

    for (name, kind) in [
        ("b.txt", "file"),
        ("Zeta", "folder"),
        ("a.txt", "file"),
        ("alpha", "folder"),
    ] {
        ok(
            store
                .create_file(&scope, &row(&ctx, &scope, Some(first.id), name, kind))
                .await,
            name,
        );
    }
    let listed = children(store, &scope, first.id).await;
    assert_eq!(
        names(&listed),
        ["alpha", "Zeta", "a.txt", "b.txt"],
        "folders first, then by name (case-insensitive)"
    );
    let f = &listed[2];
    assert_eq!(f.tags, vec!["t".to_string()]);
    assert_eq!(f.metadata, json!({"k": 1}));
    assert_eq!(f.created_at, ctx.t0);

    let q = FileListQuery {
        parent_id: first.id,
        search: Some("A.T".into()),
        offset: 0,
        limit: 10,
    };
    assert_eq!(
        names(&ok(store.list_files(&scope, &q).await, "search")),
        ["a.txt"]
    );
    let q = FileListQuery {
        parent_id: first.id,
        search: Some("%".into()),
        offset: 0,
        limit: 10,
    };
    assert!(
        ok(store.list_files(&scope, &q).await, "search %").is_empty(),
        "LIKE wildcards in a search are literal"
    );
    let q = FileListQuery {
        parent_id: first.id,
        search: None,
        offset: 1,
        limit: 2,
    };
    assert_eq!(
        names(&ok(store.list_files(&scope, &q).await, "page")),
        ["Zeta", "a.txt"]
    );

    // Another org sees none of it, by id or by parent.
    assert!(children(store, &other, first.id).await.is_empty());
    assert!(ok(store.get_file(&other, f.id, true).await, "foreign get").is_none());
    expect_not_found(
        store.trash_file(&other, f.id, ctx.at(1)).await,
        "foreign trash",
    );
    expect_not_found(
        store.purge_file(&other, f.id, false, ctx.at(1)).await,
        "foreign purge",
    );
    expect_not_found(
        store
            .move_file(&other, f.id, other_root.id, None, ctx.at(1))
            .await,
        "foreign move",
    );
    let mut renamed = f.clone();
    renamed.name = "evil".into();
    expect_not_found(store.update_file(&other, &renamed).await, "foreign update");
    assert_eq!(
        ok(store.get_file(&scope, f.id, false).await, "get")
            .unwrap()
            .name,
        "a.txt"
    );
    // The signed-URL lookup is the one unscoped read, and sees live rows only.
    assert_eq!(
        ok(store.find_file_for_signed_url(f.id).await, "signed").map(|r| r.org_id),
        Some(scope.org_id())
    );
}

pub async fn files_moves_refuse_cycles_and_carry_the_project(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, _) = make_org(store, &ctx, "files-mv", owner).await;
    let top = ok(
        store.ensure_org_root(&scope, &root(&ctx, &scope)).await,
        "root",
    );
    let a = row(&ctx, &scope, Some(top.id), "a", "folder");
    let b = row(&ctx, &scope, Some(a.id), "b", "folder");
    let c = row(&ctx, &scope, Some(b.id), "c.txt", "file");
    let other = row(&ctx, &scope, Some(top.id), "other", "folder");
    for f in [&a, &b, &c, &other] {
        ok(store.create_file(&scope, f).await, &f.name);
    }
    expect_conflict(
        store.move_file(&scope, a.id, b.id, None, ctx.at(1)).await,
        "cycle",
        "a folder into its child",
    );
    expect_conflict(
        store.move_file(&scope, a.id, a.id, None, ctx.at(1)).await,
        "cycle",
        "a folder into itself",
    );
    expect_not_found(
        store
            .move_file(&scope, other.id, c.id, None, ctx.at(1))
            .await,
        "into a file",
    );
    expect_conflict(
        store
            .move_file(&scope, top.id, other.id, None, ctx.at(1))
            .await,
        "cycle",
        "the root into its own subtree",
    );
    // A protected folder outside the root (a project folder) never moves.
    let mut guarded = row(&ctx, &scope, None, "project folder", "folder");
    guarded.is_protected = true;
    ok(store.create_file(&scope, &guarded).await, "guarded");
    expect_not_found(
        store
            .move_file(&scope, guarded.id, other.id, None, ctx.at(1))
            .await,
        "a protected folder",
    );
    let project = new_id();
    ok(
        store
            .move_file(&scope, a.id, other.id, Some(project), ctx.at(2))
            .await,
        "a into other",
    );
    let moved = ok(store.get_file(&scope, a.id, false).await, "a").unwrap();
    assert_eq!(moved.parent_id, Some(other.id));
    for id in [a.id, b.id, c.id] {
        let f = ok(store.get_file(&scope, id, false).await, "sub").unwrap();
        assert_eq!(f.project_id, Some(project), "the subtree takes the project");
    }
    assert_eq!(
        ok(store.get_file(&scope, other.id, false).await, "other")
            .unwrap()
            .project_id,
        None,
        "the new parent is untouched"
    );
}

pub async fn files_trash_takes_the_subtree_and_purge_releases_blobs(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, _) = make_org(store, &ctx, "files-rm", owner).await;
    let (other, _) = make_org(store, &ctx, "files-rm-o", owner).await;
    let top = ok(
        store.ensure_org_root(&scope, &root(&ctx, &scope)).await,
        "root",
    );
    let other_top = ok(
        store.ensure_org_root(&other, &root(&ctx, &other)).await,
        "root",
    );
    let dir = row(&ctx, &scope, Some(top.id), "dir", "folder");
    ok(store.create_file(&scope, &dir).await, "dir");
    // Blob 1: twice inside dir, once outside, once in another org.
    let x = upload(store, &ctx, &scope, dir.id, "x", 1).await;
    let y = upload(store, &ctx, &scope, dir.id, "y", 1).await;
    let z = upload(store, &ctx, &scope, top.id, "z", 1).await;
    let w = upload(store, &ctx, &other, other_top.id, "w", 1).await;
    let _only = upload(store, &ctx, &scope, dir.id, "only", 2).await;
    assert_eq!(x.status, "ready");
    assert_eq!(x.sha256.as_deref(), Some(sha(1).as_str()));
    assert_eq!(ok(store.blob_refs(&sha(1)).await, "refs"), Some((4, false)));

    expect_conflict(
        store.purge_file(&scope, dir.id, true, ctx.at(1)).await,
        "not_trashed",
        "purge of a live folder",
    );
    expect_conflict(
        store.purge_file(&scope, top.id, false, ctx.at(1)).await,
        "protected_file",
        "purge of the root",
    );
    expect_not_found(
        store.trash_file(&scope, top.id, ctx.at(1)).await,
        "trash the root",
    );
    let n = ok(
        store.trash_file(&scope, dir.id, ctx.at(1)).await,
        "trash dir",
    );
    assert_eq!(n, 4, "the folder and its three files");
    assert!(ok(store.get_file(&scope, y.id, false).await, "y").is_none());
    assert!(ok(store.find_file_for_signed_url(y.id).await, "signed y").is_none());
    assert_eq!(
        ok(store.get_file(&scope, y.id, true).await, "y trashed").and_then(|f| f.deleted_at),
        Some(ctx.at(1))
    );
    expect_not_found(
        store.trash_file(&scope, dir.id, ctx.at(2)).await,
        "trash twice",
    );
    assert_eq!(names(&children(store, &scope, top.id).await), ["z"]);

    let purged = ok(
        store.purge_file(&scope, dir.id, true, ctx.at(2)).await,
        "purge dir",
    );
    assert_eq!(purged.removed, 4);
    assert_eq!(
        purged.orphaned_blobs,
        vec![sha(2)],
        "blob 2 lost its only reference"
    );
    assert_eq!(ok(store.blob_refs(&sha(1)).await, "refs"), Some((2, false)));
    assert_eq!(ok(store.blob_refs(&sha(2)).await, "refs"), Some((0, true)));
    assert!(ok(store.get_file(&scope, x.id, true).await, "x").is_none());

    // A deleting blob takes no new reference until the delete finishes.
    let late = row(&ctx, &scope, Some(top.id), "late", "file");
    let blob2 = BlobRef {
        sha256: sha(2),
        size: 3,
    };
    expect_conflict(
        store
            .create_uploaded_file(&scope, &late, &blob2, ctx.at(3))
            .await,
        "blob_deleting",
        "upload onto a deleting blob",
    );
    assert!(
        ok(store.get_file(&scope, late.id, true).await, "late").is_none(),
        "nothing kept"
    );
    ok(store.finish_blob_delete(&sha(2)).await, "finish");
    assert_eq!(ok(store.blob_refs(&sha(2)).await, "refs"), None);
    ok(
        store
            .create_uploaded_file(&scope, &late, &blob2, ctx.at(4))
            .await,
        "upload after the delete",
    );
    assert_eq!(ok(store.blob_refs(&sha(2)).await, "refs"), Some((1, false)));

    // The last references: z here, w in the other org.
    ok(store.trash_file(&scope, z.id, ctx.at(5)).await, "trash z");
    let purged = ok(
        store.purge_file(&scope, z.id, true, ctx.at(5)).await,
        "purge z",
    );
    assert!(
        purged.orphaned_blobs.is_empty(),
        "the other org still holds blob 1"
    );
    ok(store.trash_file(&other, w.id, ctx.at(5)).await, "trash w");
    let purged = ok(
        store.purge_file(&other, w.id, true, ctx.at(5)).await,
        "purge w",
    );
    assert_eq!(purged.orphaned_blobs, vec![sha(1)]);

    // Bytes an upload stored but kept no row for.
    assert!(ok(
        store.release_unreferenced_blob(&sha(3), 3, ctx.at(6)).await,
        "orphan"
    ));
    assert!(
        !ok(
            store.release_unreferenced_blob(&sha(2), 3, ctx.at(6)).await,
            "referenced"
        ),
        "a referenced blob is not released"
    );
    assert_eq!(ok(store.blob_refs(&sha(2)).await, "refs"), Some((1, false)));
}

pub async fn files_pending_uploads_complete_once_with_the_declared_size(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, _) = make_org(store, &ctx, "files-up", owner).await;
    let (other, _) = make_org(store, &ctx, "files-up-o", owner).await;
    let top = ok(
        store.ensure_org_root(&scope, &root(&ctx, &scope)).await,
        "root",
    );
    let mut pending = row(&ctx, &scope, Some(top.id), "p.txt", "file");
    pending.status = "pending".into();
    pending.size = 3;
    ok(store.create_file(&scope, &pending).await, "pending");
    let blob = |size| BlobRef {
        sha256: sha(9),
        size,
    };
    expect_conflict(
        store
            .complete_upload(&scope, pending.id, &blob(4), ctx.at(1))
            .await,
        "size_mismatch",
        "wrong size",
    );
    assert_eq!(
        ok(store.blob_refs(&sha(9)).await, "refs"),
        None,
        "no reference kept"
    );
    expect_not_found(
        store
            .complete_upload(&other, pending.id, &blob(3), ctx.at(1))
            .await,
        "foreign complete",
    );
    let done = ok(
        store
            .complete_upload(&scope, pending.id, &blob(3), ctx.at(1))
            .await,
        "complete",
    );
    assert_eq!(
        (done.status.as_str(), done.sha256.as_deref()),
        ("ready", Some(sha(9).as_str()))
    );
    expect_conflict(
        store
            .complete_upload(&scope, pending.id, &blob(3), ctx.at(2))
            .await,
        "not_pending",
        "a second completion",
    );
    assert_eq!(ok(store.blob_refs(&sha(9)).await, "refs"), Some((1, false)));
    let read = ok(store.get_file(&scope, pending.id, false).await, "read").unwrap();
    assert_eq!(read.status, "ready");
}
