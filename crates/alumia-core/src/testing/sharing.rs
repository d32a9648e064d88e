//! Contract tests of [`ShareStore`]: share links by hash, invites, members,
//! and members seeing projects in lists whatever their visibility.

use chrono::Duration;

use super::projects::{create, project};
use super::{Ctx, expect_not_found, make_org, make_user, ok};
use crate::projects::{ProjectFilter, ProjectViewer};
use crate::sharing::*;
use crate::store::{PageRequest, Store};

pub async fn share_links_resolve_by_hash_until_cleared_and_are_scoped(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "share").await;
    let (scope, org) = make_org(store, &ctx, "share", owner).await;
    let (other, _) = make_org(store, &ctx, "share-other", owner).await;
    let p = project(&ctx, &scope, owner, org.default_workspace_id, "shared", 0);
    create(store, &scope, &p).await;
    let hash = token_hash(&new_token());
    let link = ShareLink {
        sealed_token: "sealed".into(),
        created_at: ctx.at(5),
    };

    expect_not_found(
        store.set_share_link(&other, p.id, &hash, &link).await,
        "another org cannot set the link",
    );
    assert_eq!(
        ok(store.get_share_link(&scope, p.id).await, "no link yet"),
        None
    );
    ok(
        store.set_share_link(&scope, p.id, &hash, &link).await,
        "set",
    );
    assert_eq!(
        ok(store.get_share_link(&scope, p.id).await, "get"),
        Some(link.clone())
    );
    assert_eq!(
        ok(store.get_share_link(&other, p.id).await, "other org"),
        None,
        "the link is scoped by org"
    );
    let found = ok(store.find_project_by_share_hash(&hash).await, "find");
    assert_eq!(found.map(|f| (f.id, f.share_enabled)), Some((p.id, true)));
    assert!(
        ok(
            store.find_project_by_share_hash(&token_hash("x")).await,
            "miss"
        )
        .is_none(),
        "an unknown hash finds nothing"
    );

    expect_not_found(
        store.clear_share_link(&other, p.id).await,
        "another org cannot clear it",
    );
    ok(store.clear_share_link(&scope, p.id).await, "clear");
    assert!(ok(store.find_project_by_share_hash(&hash).await, "after clear").is_none());
    assert!(ok(store.get_share_link(&scope, p.id).await, "after clear").is_none());

    // Deleting the project clears its link too.
    ok(
        store.set_share_link(&scope, p.id, &hash, &link).await,
        "set again",
    );
    ok(
        store.delete_project(&scope, p.id, ctx.at(9)).await,
        "delete",
    );
    assert!(ok(store.find_project_by_share_hash(&hash).await, "deleted").is_none());
    expect_not_found(
        store.set_share_link(&scope, p.id, &hash, &link).await,
        "a deleted project cannot be shared",
    );
}

pub async fn invites_replace_and_members_see_private_projects(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "inv-owner").await;
    let bob = make_user(store, &ctx, "inv-bob").await;
    let (scope, org) = make_org(store, &ctx, "inv", owner).await;
    let mut p = project(&ctx, &scope, owner, org.default_workspace_id, "private", 0);
    p.visibility = "private".into();
    create(store, &scope, &p).await;

    let invite = |hash: &str, role: &str| ProjectInvite {
        project_id: p.id,
        org_id: scope.org_id(),
        token_hash: hash.into(),
        role: role.into(),
        created_by: owner,
        expires_at: ctx.at(0) + Duration::days(7),
        created_at: ctx.at(0),
    };
    let (first, second) = (token_hash(&new_token()), token_hash(&new_token()));
    ok(
        store
            .replace_invite(&scope, &invite(&first, "viewer"))
            .await,
        "first",
    );
    ok(
        store
            .replace_invite(&scope, &invite(&second, "editor"))
            .await,
        "second",
    );
    assert!(
        ok(store.find_invite_by_hash(&first).await, "first").is_none(),
        "a new invite replaces the old one"
    );
    assert_eq!(
        ok(store.find_invite_by_hash(&second).await, "second"),
        Some(invite(&second, "editor"))
    );

    let viewer = ProjectViewer {
        user_id: bob,
        workspaces: Some(&[]),
    };
    let list = |viewer| async move {
        ok(
            store
                .list_projects(
                    &scope,
                    viewer,
                    &ProjectFilter::default(),
                    PageRequest {
                        limit: 10,
                        after: None,
                    },
                )
                .await,
            "list",
        )
        .into_iter()
        .map(|p| p.id)
        .collect::<Vec<_>>()
    };
    assert!(list(viewer).await.is_empty(), "not a member yet");
    let member = ProjectMember {
        project_id: p.id,
        user_id: bob,
        org_id: scope.org_id(),
        role: "viewer".into(),
        created_at: ctx.at(1),
    };
    ok(store.upsert_project_member(&scope, &member).await, "member");
    ok(
        store
            .upsert_project_member(
                &scope,
                &ProjectMember {
                    role: "editor".into(),
                    created_at: ctx.at(2),
                    ..member.clone()
                },
            )
            .await,
        "upsert",
    );
    let got = ok(store.get_project_member(&scope, p.id, bob).await, "get");
    assert_eq!(
        got.map(|m| (m.role, m.created_at)),
        Some(("editor".to_string(), ctx.at(1))),
        "a second accept changes the role only"
    );
    assert_eq!(list(viewer).await, vec![p.id], "a member sees it in lists");
}
