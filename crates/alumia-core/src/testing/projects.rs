//! Contract tests of [`ProjectStore`]: projects, their shared workspaces,
//! their protected folder, visibility in lists, and the soft-delete cascade.

use serde_json::json;
use uuid::Uuid;

use super::{Ctx, expect_conflict, expect_not_found, make_org, make_user, ok};
use crate::model::{ChatSession, Participant, SessionFilter};
use crate::new_id;
use crate::projects::*;
use crate::scope::OrgScope;
use crate::store::{PageRequest, Store};

pub(super) fn project(
    ctx: &Ctx,
    scope: &OrgScope,
    user: Uuid,
    ws: Uuid,
    slug: &str,
    secs: i64,
) -> Project {
    Project {
        id: new_id(),
        org_id: scope.org_id(),
        workspace_id: ws,
        shared_workspace_ids: Vec::new(),
        user_id: user,
        name: format!("Project {slug}"),
        slug: slug.into(),
        description: String::new(),
        prompt: String::new(),
        emoji: String::new(),
        visibility: "team".into(),
        status: "active".into(),
        tags: Vec::new(),
        metadata: json!({}),
        share_enabled: false,
        created_at: ctx.at(secs),
        updated_at: ctx.at(secs),
    }
}

pub(super) async fn create(store: &dyn Store, scope: &OrgScope, p: &Project) {
    ok(
        store.create_project(scope, p, &project_folder(p)).await,
        format!("create_project({})", p.slug),
    );
}

fn page(limit: u32) -> PageRequest {
    PageRequest { limit, after: None }
}

fn slugs(projects: &[Project]) -> Vec<&str> {
    projects.iter().map(|p| p.slug.as_str()).collect()
}

pub async fn projects_create_with_folder_and_resolve_by_id_or_slug(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "proj", owner).await;
    let (other, other_org) = make_org(store, &ctx, "proj-other", owner).await;
    let ws = org.default_workspace_id;
    let shared = new_id();

    let mut p = project(&ctx, &scope, owner, ws, "alpha", 0);
    p.shared_workspace_ids = vec![shared];
    p.tags = vec!["red".into(), "blue".into()];
    p.metadata = json!({"k": [1, 2]});
    p.prompt = "be brief".into();
    p.emoji = "🚀".into();
    create(store, &scope, &p).await;

    let by_id = ok(
        store.get_project(&scope, &ProjectRef::Id(p.id)).await,
        "by id",
    );
    assert_eq!(by_id.as_ref(), Some(&p), "a project reads back as written");
    let by_slug = ok(
        store
            .get_project(&scope, &ProjectRef::Slug("alpha".into()))
            .await,
        "by slug",
    );
    assert_eq!(by_slug.as_ref(), Some(&p), "a project resolves by slug");
    assert!(!p.share_enabled, "no share token on create");

    let folder = ok(store.get_project_folder(&scope, p.id).await, "folder")
        .expect("the project folder is created with the project");
    assert_eq!(folder.system_kind.as_deref(), Some(FOLDER_SYSTEM_KIND));
    assert!(folder.is_protected, "the project folder is protected");
    assert_eq!(folder.kind, "folder");
    assert_eq!(folder.project_id, Some(p.id));
    assert_eq!(folder.created_by, Some(owner));

    // Slugs are unique per org among live projects.
    let dup = project(&ctx, &scope, owner, ws, "alpha", 1);
    expect_conflict(
        store
            .create_project(&scope, &dup, &project_folder(&dup))
            .await,
        "project_slug",
        "a second live project with the slug",
    );
    assert!(
        ok(store.get_project_folder(&scope, dup.id).await, "dup folder").is_none(),
        "a refused create leaves no folder behind"
    );
    // Another org may use it, and sees nothing of this org.
    let theirs = project(
        &ctx,
        &other,
        owner,
        other_org.default_workspace_id,
        "alpha",
        2,
    );
    create(store, &other, &theirs).await;
    assert_eq!(
        ok(
            store.get_project(&other, &ProjectRef::Id(p.id)).await,
            "foreign id"
        ),
        None,
        "another org's scope never reads this project"
    );
    assert_eq!(
        ok(
            store
                .get_project(&other, &ProjectRef::Slug("alpha".into()))
                .await,
            "their slug"
        )
        .map(|x| x.id),
        Some(theirs.id),
        "a slug resolves inside the org only"
    );
    assert!(
        ok(
            store.get_project_folder(&other, p.id).await,
            "foreign folder"
        )
        .is_none(),
        "folders are scoped"
    );
    assert!(
        ok(store.list_project_usage(&scope, p.id).await, "usage").is_empty(),
        "no usage without sessions"
    );
}

pub async fn projects_list_visible_filtered_and_paged(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let member = make_user(store, &ctx, "member").await;
    let (scope, org) = make_org(store, &ctx, "plist", owner).await;
    let (other, other_org) = make_org(store, &ctx, "plist-other", owner).await;
    let (a, b, c) = (org.default_workspace_id, new_id(), new_id());

    let mut p1 = project(&ctx, &scope, owner, a, "one", 1);
    p1.tags = vec!["red".into()];
    p1.description = "The Launch plan".into();
    let mut p2 = project(&ctx, &scope, owner, b, "two", 2);
    p2.shared_workspace_ids = vec![c];
    p2.status = "archived".into();
    let mut p3 = project(&ctx, &scope, owner, a, "three", 3);
    p3.visibility = "private".into();
    p3.tags = vec!["reddish".into()];
    let mut p4 = project(&ctx, &scope, member, a, "four", 4);
    p4.visibility = "private".into();
    for p in [&p1, &p2, &p3, &p4] {
        create(store, &scope, p).await;
    }
    create(
        store,
        &other,
        &project(
            &ctx,
            &other,
            owner,
            other_org.default_workspace_id,
            "foreign",
            5,
        ),
    )
    .await;

    let scope2 = scope;
    let list = async |viewer: ProjectViewer<'_>, filter: ProjectFilter, page: PageRequest| {
        ok(
            store.list_projects(&scope2, viewer, &filter, page).await,
            "list",
        )
    };
    let everyone = ProjectViewer {
        user_id: owner,
        workspaces: None,
    };
    assert_eq!(
        slugs(&list(everyone, ProjectFilter::default(), page(10)).await),
        ["three", "two", "one"],
        "all workspaces: the owner's own private project, never another user's, updated desc, no foreign org"
    );
    let only_a = [a];
    let member_a = ProjectViewer {
        user_id: member,
        workspaces: Some(&only_a),
    };
    assert_eq!(
        slugs(&list(member_a, ProjectFilter::default(), page(10)).await),
        ["four", "one"],
        "workspace A: team projects and the member's own private one"
    );
    let only_c = [c];
    let member_c = ProjectViewer {
        user_id: member,
        workspaces: Some(&only_c),
    };
    let seen = list(member_c, ProjectFilter::default(), page(10)).await;
    assert_eq!(slugs(&seen), ["two"], "a shared workspace makes it visible");
    assert_eq!(
        seen[0].shared_workspace_ids,
        vec![c],
        "shared ids are loaded"
    );
    let none: [Uuid; 0] = [];
    let nowhere = ProjectViewer {
        user_id: owner,
        workspaces: Some(&none),
    };
    assert!(
        list(nowhere, ProjectFilter::default(), page(10))
            .await
            .is_empty(),
        "no reachable workspace, no project"
    );

    let cases: Vec<(ProjectFilter, Vec<&str>, &str)> = vec![
        (
            ProjectFilter {
                workspace_id: Some(c),
                ..Default::default()
            },
            vec!["two"],
            "workspaceId matches shared workspaces",
        ),
        (
            ProjectFilter {
                workspace_id: Some(a),
                ..Default::default()
            },
            vec!["three", "one"],
            "workspaceId matches the primary workspace",
        ),
        (
            ProjectFilter {
                status: Some("archived".into()),
                ..Default::default()
            },
            vec!["two"],
            "status",
        ),
        (
            ProjectFilter {
                q: Some("launch".into()),
                ..Default::default()
            },
            vec!["one"],
            "q matches the description case-insensitively",
        ),
        (
            ProjectFilter {
                q: Some("PROJECT T".into()),
                ..Default::default()
            },
            vec!["three", "two"],
            "q matches the name",
        ),
        (
            ProjectFilter {
                tag: Some("red".into()),
                ..Default::default()
            },
            vec!["one"],
            "tag matches one whole tag",
        ),
    ];
    for (filter, want, what) in cases {
        assert_eq!(
            slugs(&list(everyone, filter, page(10)).await),
            want,
            "{what}"
        );
    }

    // Keyset pages: (updated_at, id) of the last row.
    let first = list(everyone, ProjectFilter::default(), page(2)).await;
    assert_eq!(slugs(&first), ["three", "two"]);
    let last = first.last().unwrap();
    let next = PageRequest {
        limit: 2,
        after: Some((crate::clock::to_millis(last.updated_at), last.id)),
    };
    assert_eq!(
        slugs(&list(everyone, ProjectFilter::default(), next).await),
        ["one"],
        "the second page continues after the cursor"
    );
}

pub async fn projects_update_and_delete_cascade_to_folder_and_sessions(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "pdel", owner).await;
    let (other, _) = make_org(store, &ctx, "pdel-other", owner).await;
    let ws = org.default_workspace_id;
    let mut p = project(&ctx, &scope, owner, ws, "gamma", 0);
    p.shared_workspace_ids = vec![new_id()];
    create(store, &scope, &p).await;
    let q = project(&ctx, &scope, owner, ws, "delta", 1);
    create(store, &scope, &q).await;

    // Update writes the fields and replaces the shared workspaces.
    let shared = vec![new_id(), new_id()];
    p.name = "Renamed".into();
    p.slug = "gamma-2".into();
    p.visibility = "private".into();
    p.status = "archived".into();
    p.tags = vec!["x".into()];
    p.metadata = json!({"a": 1});
    p.shared_workspace_ids = shared.clone();
    p.updated_at = ctx.at(10);
    ok(store.update_project(&scope, &p).await, "update");
    let read = ok(
        store.get_project(&scope, &ProjectRef::Id(p.id)).await,
        "read",
    )
    .expect("still there");
    assert_eq!(read, p, "every mutable field is written");
    let mut taken = p.clone();
    taken.slug = "delta".into();
    expect_conflict(
        store.update_project(&scope, &taken).await,
        "project_slug",
        "renaming onto a live slug",
    );
    expect_not_found(
        store.update_project(&other, &p).await,
        "another org cannot update it",
    );

    // A session in the project, one outside it.
    let session = |project_id: Option<Uuid>| ChatSession {
        id: new_id(),
        org_id: scope.org_id(),
        workspace_id: ws,
        project_id,
        agent_id: None,
        user_id: owner,
        label: "s".into(),
        status: "active".into(),
        relationship: "direct".into(),
        running_turn: None,
        metadata: json!({}),
        message_count: 0,
        last_message_at: None,
        created_at: ctx.at(5),
        updated_at: ctx.at(5),
    };
    let inside = session(Some(p.id));
    let outside = session(None);
    for s in [&inside, &outside] {
        let who = [Participant {
            kind: "user".into(),
            id: owner,
            joined_at: ctx.at(5),
        }];
        ok(
            store.create_chat_session(&scope, s, &who).await,
            "create session",
        );
    }
    let in_project = SessionFilter {
        project_id: Some(p.id),
        ..SessionFilter::default()
    };
    let listed = ok(
        store
            .list_chat_sessions(&scope, None, &in_project, page(10))
            .await,
        "sessions of the project",
    );
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        [inside.id],
        "projectId filters sessions"
    );

    expect_not_found(
        store.delete_project(&other, p.id, ctx.at(20)).await,
        "another org cannot delete it",
    );
    ok(
        store.delete_project(&scope, p.id, ctx.at(20)).await,
        "delete",
    );
    assert!(
        ok(
            store.get_project(&scope, &ProjectRef::Id(p.id)).await,
            "gone"
        )
        .is_none(),
        "a deleted project is not read"
    );
    assert!(
        ok(store.get_project_folder(&scope, p.id).await, "folder").is_none(),
        "its folder is soft-deleted"
    );
    assert!(
        ok(store.get_chat_session(&scope, inside.id).await, "inside").is_none(),
        "its sessions are soft-deleted"
    );
    assert!(
        ok(store.get_chat_session(&scope, outside.id).await, "outside").is_some(),
        "other sessions stay"
    );
    let everyone = ProjectViewer {
        user_id: owner,
        workspaces: None,
    };
    assert_eq!(
        slugs(&ok(
            store
                .list_projects(&scope, everyone, &ProjectFilter::default(), page(10))
                .await,
            "list"
        )),
        ["delta"],
        "lists skip deleted projects"
    );
    expect_not_found(
        store.delete_project(&scope, p.id, ctx.at(21)).await,
        "deleting twice",
    );
    expect_not_found(
        store.update_project(&scope, &p).await,
        "updating a deleted project",
    );
    // Its slug is free again.
    create(
        store,
        &scope,
        &project(&ctx, &scope, owner, ws, "gamma-2", 30),
    )
    .await;
}
