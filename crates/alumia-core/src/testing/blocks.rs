//! Contract tests of [`BlockStore`]: scoping by org and project, keyset
//! pages, the compare-and-set update, atomic positions, edges, revisions
//! and the project delete cascade.

use serde_json::json;
use uuid::Uuid;

use super::{Ctx, expect_not_found, make_org, make_user, ok};
use crate::blocks::*;
use crate::clock::to_millis;
use crate::model::{ChatSession, Participant};
use crate::new_id;
use crate::projects::{Project, project_folder};
use crate::scope::OrgScope;
use crate::store::{PageRequest, Store};

fn page(limit: u32, after: Option<(i64, Uuid)>) -> PageRequest {
    PageRequest { limit, after }
}

async fn make_project(
    store: &dyn Store,
    ctx: &Ctx,
    scope: &OrgScope,
    owner: Uuid,
    ws: Uuid,
    slug: &str,
) -> Project {
    let p = Project {
        id: new_id(),
        org_id: scope.org_id(),
        workspace_id: ws,
        shared_workspace_ids: Vec::new(),
        user_id: owner,
        name: slug.into(),
        slug: slug.into(),
        description: String::new(),
        prompt: String::new(),
        emoji: String::new(),
        visibility: "team".into(),
        status: "active".into(),
        tags: Vec::new(),
        metadata: json!({}),
        share_enabled: false,
        created_at: ctx.at(0),
        updated_at: ctx.at(0),
    };
    ok(
        store.create_project(scope, &p, &project_folder(&p)).await,
        "create project",
    );
    p
}

fn block(ctx: &Ctx, scope: &OrgScope, project: Option<Uuid>, owner: Uuid, secs: i64) -> Block {
    Block {
        id: new_id(),
        org_id: scope.org_id(),
        project_id: project,
        block_type: "document".into(),
        title: format!("b{secs}"),
        data: json!({"content": format!("c{secs}")}),
        position: Position {
            x: 0,
            y: 0,
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
        },
        created_by: CreatedBy {
            kind: "user".into(),
            id: owner,
            session_id: None,
            turn_id: None,
        },
        created_at: ctx.at(secs),
        updated_at: ctx.at(secs),
    }
}

async fn session(
    store: &dyn Store,
    ctx: &Ctx,
    scope: &OrgScope,
    owner: Uuid,
    ws: Uuid,
    project: Option<Uuid>,
) -> ChatSession {
    let s = ChatSession {
        id: new_id(),
        org_id: scope.org_id(),
        workspace_id: ws,
        project_id: project,
        agent_id: None,
        user_id: owner,
        label: "s".into(),
        status: "idle".into(),
        relationship: "direct".into(),
        running_turn: None,
        metadata: json!({}),
        message_count: 0,
        last_message_at: None,
        created_at: ctx.at(1),
        updated_at: ctx.at(1),
    };
    let who = [Participant {
        kind: "user".into(),
        id: owner,
        joined_at: ctx.at(1),
    }];
    ok(
        store.create_chat_session(scope, &s, &who).await,
        "create session",
    );
    s
}

pub async fn blocks_are_scoped_by_org_and_project_and_paged_in_creation_order(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "blk", owner).await;
    let (other, _) = make_org(store, &ctx, "blk-other", owner).await;
    let ws = org.default_workspace_id;
    let p = make_project(store, &ctx, &scope, owner, ws, &ctx.slug("p")).await;
    let q = make_project(store, &ctx, &scope, owner, ws, &ctx.slug("q")).await;

    // Created out of order; the list is by created_at, then id.
    let mut ids = Vec::new();
    for secs in [3, 1, 2, 5, 4] {
        let mut b = block(&ctx, &scope, Some(p.id), owner, secs);
        if secs == 2 {
            b.block_type = "data".into();
            b.data = json!({"type": "markdown", "markdown": "m"});
        }
        ok(store.create_block(&scope, &b, None).await, "create block");
        ids.push((secs, b.id));
    }
    ids.sort();
    let want: Vec<Uuid> = ids.iter().map(|(_, id)| *id).collect();
    let in_q = block(&ctx, &scope, Some(q.id), owner, 0);
    ok(store.create_block(&scope, &in_q, None).await, "block of q");
    let org_ctx = block(&ctx, &scope, None, owner, 0);
    ok(
        store.create_block(&scope, &org_ctx, None).await,
        "org-context block",
    );

    let all = ok(
        store
            .list_blocks(&scope, Some(p.id), None, page(100, None))
            .await,
        "list",
    );
    assert_eq!(
        all.iter().map(|b| b.id).collect::<Vec<_>>(),
        want,
        "createdAt asc, project only"
    );
    let read = ok(store.get_block(&scope, want[0]).await, "get").expect("the block");
    assert_eq!(read, all[0], "a block reads back as listed");
    assert_eq!(read.data, json!({"content": "c1"}));

    // Keyset pages of two.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let rows = ok(
            store
                .list_blocks(&scope, Some(p.id), None, page(2, after))
                .await,
            "page",
        );
        if rows.is_empty() {
            break;
        }
        let last = rows.last().unwrap();
        after = Some((to_millis(last.created_at), last.id));
        seen.extend(rows.iter().map(|b| b.id));
    }
    assert_eq!(
        seen, want,
        "pages continue after the cursor with no gap or repeat"
    );

    let data = ok(
        store
            .list_blocks(&scope, Some(p.id), Some("data"), page(10, None))
            .await,
        "type",
    );
    assert_eq!(data.len(), 1, "the type filter");
    let org_list = ok(
        store.list_blocks(&scope, None, None, page(10, None)).await,
        "org ctx",
    );
    assert_eq!(
        org_list.iter().map(|b| b.id).collect::<Vec<_>>(),
        [org_ctx.id],
        "org-context blocks are their own list"
    );

    // Another org sees and changes nothing.
    assert!(
        ok(store.get_block(&other, want[0]).await, "foreign get").is_none(),
        "get is scoped"
    );
    assert!(
        ok(
            store
                .list_blocks(&other, Some(p.id), None, page(10, None))
                .await,
            "foreign list"
        )
        .is_empty()
    );
    assert!(
        ok(
            store.list_blocks(&other, None, None, page(10, None)).await,
            "foreign org ctx"
        )
        .is_empty()
    );
    let patch = BlockPatch {
        title: Some("x".into()),
        ..BlockPatch::default()
    };
    expect_not_found(
        store
            .update_block(&other, want[0], &patch, None, ctx.at(9), None)
            .await,
        "foreign update",
    );
    expect_not_found(
        store.delete_block(&other, want[0], ctx.at(9), None).await,
        "foreign delete",
    );

    // Soft delete: gone from reads, a second delete is NotFound.
    ok(
        store.delete_block(&scope, want[0], ctx.at(9), None).await,
        "delete",
    );
    assert!(ok(store.get_block(&scope, want[0]).await, "deleted").is_none());
    expect_not_found(
        store.delete_block(&scope, want[0], ctx.at(9), None).await,
        "twice",
    );
    expect_not_found(
        store
            .update_block(&scope, want[0], &patch, None, ctx.at(9), None)
            .await,
        "update deleted",
    );

    // Deleting the project takes its blocks, edges and session positions.
    let s = session(store, &ctx, &scope, owner, ws, Some(p.id)).await;
    let edge = Edge {
        id: new_id(),
        org_id: scope.org_id(),
        project_id: p.id,
        from: NodeRef {
            kind: "block".into(),
            id: want[1],
        },
        to: NodeRef {
            kind: "session".into(),
            id: s.id,
        },
        label: "feeds".into(),
        created_by: CreatedBy {
            kind: "user".into(),
            id: owner,
            session_id: None,
            turn_id: None,
        },
        created_at: ctx.at(6),
    };
    ok(store.create_edge(&scope, &edge).await, "edge");
    assert_eq!(
        ok(store.list_edges(&scope, p.id).await, "edges"),
        std::slice::from_ref(&edge)
    );
    assert!(ok(store.list_edges(&other, p.id).await, "foreign edges").is_empty());
    ok(
        store.delete_project(&scope, p.id, ctx.at(20)).await,
        "delete project",
    );
    assert!(
        ok(
            store
                .list_blocks(&scope, Some(p.id), None, page(10, None))
                .await,
            "after"
        )
        .is_empty(),
        "blocks go with the project"
    );
    assert!(
        ok(store.list_edges(&scope, p.id).await, "edges after").is_empty(),
        "edges go with the project"
    );
    assert_eq!(
        ok(
            store
                .list_blocks(&scope, Some(q.id), None, page(10, None))
                .await,
            "q"
        )
        .len(),
        1,
        "other projects keep theirs"
    );
}

pub async fn block_updates_compare_and_set_with_one_winner(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, _) = make_org(store, &ctx, "cas", owner).await;
    let b = block(&ctx, &scope, None, owner, 0);
    ok(store.create_block(&scope, &b, None).await, "create");
    let v0 = to_millis(b.updated_at);

    // Same millisecond: the revision still moves forward.
    let patch = BlockPatch {
        title: Some("one".into()),
        ..BlockPatch::default()
    };
    let one = match ok(
        store
            .update_block(&scope, b.id, &patch, Some(v0), b.updated_at, None)
            .await,
        "first",
    ) {
        UpdateOutcome::Updated(x) => x,
        other => panic!("a fresh revision updates: {other:?}"),
    };
    assert_eq!(
        to_millis(one.updated_at),
        v0 + 1,
        "updatedAt strictly increases within one millisecond"
    );
    assert_eq!(one.title, "one");
    assert_eq!(one.data, b.data, "fields left out are kept");
    // The old revision is stale now, and nothing changes.
    let stale = BlockPatch {
        title: Some("late".into()),
        ..BlockPatch::default()
    };
    assert_eq!(
        ok(
            store
                .update_block(&scope, b.id, &stale, Some(v0), ctx.at(5), None)
                .await,
            "stale"
        ),
        UpdateOutcome::Stale(v0 + 1),
        "a stale revision reports the current one"
    );
    assert_eq!(
        ok(store.get_block(&scope, b.id).await, "read")
            .unwrap()
            .title,
        "one",
        "a stale write changes nothing"
    );
    // Without an expected revision the last write wins.
    let later = ctx.at(10);
    match ok(
        store
            .update_block(&scope, b.id, &stale, None, later, None)
            .await,
        "blind",
    ) {
        UpdateOutcome::Updated(x) => assert_eq!(to_millis(x.updated_at), to_millis(later)),
        other => panic!("a blind write wins: {other:?}"),
    }

    // Racing writers holding the same revision: exactly one wins.
    let mut wins = 0;
    let mut stales = 0;
    for round in 0..5 {
        let current = to_millis(
            ok(store.get_block(&scope, b.id).await, "read")
                .unwrap()
                .updated_at,
        );
        let sc = &scope;
        let id = b.id;
        let futs = (0..4).map(|i| {
            let patch = BlockPatch {
                title: Some(format!("r{round}-{i}")),
                ..BlockPatch::default()
            };
            let at = ctx.at(20 + round);
            async move {
                store
                    .update_block(sc, id, &patch, Some(current), at, None)
                    .await
            }
        });
        let results = super::chat::join_all(futs.collect()).await;
        let round_wins = results
            .iter()
            .filter(|r| matches!(r, Ok(UpdateOutcome::Updated(_))))
            .count();
        assert_eq!(
            round_wins, 1,
            "exactly one of four racing writers wins: {results:?}"
        );
        wins += round_wins;
        stales += results
            .iter()
            .filter(|r| matches!(r, Ok(UpdateOutcome::Stale(_))))
            .count();
    }
    assert_eq!((wins, stales), (5, 15));
}

pub async fn block_positions_are_all_or_nothing(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "pos", owner).await;
    let (other, other_org) = make_org(store, &ctx, "pos-other", owner).await;
    let ws = org.default_workspace_id;
    let p = make_project(store, &ctx, &scope, owner, ws, &ctx.slug("p")).await;
    let q = make_project(store, &ctx, &scope, owner, ws, &ctx.slug("q")).await;
    let a = block(&ctx, &scope, Some(p.id), owner, 1);
    let in_q = block(&ctx, &scope, Some(q.id), owner, 2);
    let gone = block(&ctx, &scope, Some(p.id), owner, 3);
    for b in [&a, &in_q, &gone] {
        ok(store.create_block(&scope, b, None).await, "create");
    }
    ok(
        store.delete_block(&scope, gone.id, ctx.at(4), None).await,
        "delete",
    );
    let s = session(store, &ctx, &scope, owner, ws, Some(p.id)).await;
    let foreign_p = make_project(
        store,
        &ctx,
        &other,
        owner,
        other_org.default_workspace_id,
        &ctx.slug("f"),
    )
    .await;
    let foreign = block(&ctx, &other, Some(foreign_p.id), owner, 1);
    ok(store.create_block(&other, &foreign, None).await, "foreign");

    let mv = |kind: &str, id: Uuid, x: i64| PositionUpdate {
        kind: kind.into(),
        id,
        x,
        y: 48,
        width: None,
        height: Some(96),
    };
    // One bad id among good ones: nothing moves, every bad id is named.
    for bad in [in_q.id, gone.id, foreign.id, new_id()] {
        let invalid = ok(
            store
                .set_positions(
                    &scope,
                    p.id,
                    &[
                        mv("block", a.id, 240),
                        mv("session", s.id, 24),
                        mv("block", bad, 0),
                    ],
                    ctx.at(5),
                )
                .await,
            "mixed",
        );
        assert_eq!(invalid, [bad], "the id outside the project is reported");
        let read = ok(store.get_block(&scope, a.id).await, "a").unwrap();
        assert_eq!(read.position, a.position, "an invalid batch moves nothing");
        assert_eq!(read.updated_at, a.updated_at);
    }
    assert!(
        ok(store.list_session_nodes(&scope, p.id).await, "nodes")[0]
            .position
            .is_none(),
        "an invalid batch stores no session position"
    );
    // A block id sent as a session (and the reverse) is not valid either.
    assert_eq!(
        ok(
            store
                .set_positions(&scope, p.id, &[mv("session", a.id, 0)], ctx.at(5))
                .await,
            "kind"
        ),
        [a.id]
    );

    // All valid: everything moves; sizes left out are kept.
    let invalid = ok(
        store
            .set_positions(
                &scope,
                p.id,
                &[mv("block", a.id, 240), mv("session", s.id, 24)],
                ctx.at(6),
            )
            .await,
        "valid",
    );
    assert!(invalid.is_empty());
    let read = ok(store.get_block(&scope, a.id).await, "a").unwrap();
    assert_eq!(
        read.position,
        Position {
            x: 240,
            y: 48,
            width: DEFAULT_WIDTH,
            height: 96
        }
    );
    assert!(read.updated_at > a.updated_at, "a move is a new revision");
    let nodes = ok(store.list_session_nodes(&scope, p.id).await, "nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0].position,
        Some(Position {
            x: 24,
            y: 48,
            width: DEFAULT_WIDTH,
            height: 96
        })
    );
    // Another org cannot move this project's nodes.
    assert_eq!(
        ok(
            store
                .set_positions(&other, p.id, &[mv("block", a.id, 0)], ctx.at(7))
                .await,
            "foreign"
        ),
        [a.id]
    );
    assert!(
        ok(
            store.list_session_nodes(&other, p.id).await,
            "foreign nodes"
        )
        .is_empty()
    );
}

pub async fn block_revisions_record_agent_writes_and_restore(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "rev", owner).await;
    let (other, _) = make_org(store, &ctx, "rev-other", owner).await;
    let ws = org.default_workspace_id;
    let p = make_project(store, &ctx, &scope, owner, ws, &ctx.slug("p")).await;
    let s = session(store, &ctx, &scope, owner, ws, Some(p.id)).await;
    let run = RunRef {
        turn_id: new_id(),
        session_id: s.id,
    };

    let kept = block(&ctx, &scope, Some(p.id), owner, 1);
    let removed = block(&ctx, &scope, Some(p.id), owner, 2);
    ok(store.create_block(&scope, &kept, None).await, "kept");
    ok(store.create_block(&scope, &removed, None).await, "removed");
    let made = block(&ctx, &scope, Some(p.id), owner, 3);
    ok(
        store.create_block(&scope, &made, Some(run)).await,
        "made by the run",
    );
    let patch = BlockPatch {
        title: Some("agent".into()),
        ..BlockPatch::default()
    };
    ok(
        store
            .update_block(&scope, kept.id, &patch, None, ctx.at(4), Some(run))
            .await,
        "update",
    );
    ok(
        store
            .update_block(&scope, kept.id, &patch, None, ctx.at(5), Some(run))
            .await,
        "update again",
    );
    ok(
        store
            .delete_block(&scope, removed.id, ctx.at(6), Some(run))
            .await,
        "delete",
    );

    let revs = ok(
        store.list_turn_revisions(&scope, run.turn_id).await,
        "revisions",
    );
    assert_eq!(revs.len(), 4, "one revision per agent write");
    assert_eq!(revs[0].block_id, made.id);
    assert!(revs[0].before.is_none(), "a created block has no before");
    assert_eq!(
        revs[1].before.as_ref(),
        Some(&kept),
        "the first update keeps the block as it was"
    );
    assert_eq!(revs[3].before.as_ref(), Some(&removed));
    assert!(
        ok(
            store.list_turn_revisions(&other, run.turn_id).await,
            "foreign"
        )
        .is_empty(),
        "revisions are scoped"
    );

    let (restored, deleted) = ok(
        store
            .restore_blocks(
                &scope,
                run.turn_id,
                &[kept.clone(), removed.clone()],
                &[made.id],
                ctx.at(7),
            )
            .await,
        "restore",
    );
    assert_eq!((restored, deleted), (2, 1));
    let back = ok(store.get_block(&scope, kept.id).await, "kept").unwrap();
    assert_eq!(
        back.title, kept.title,
        "restored to its state before the turn"
    );
    assert!(back.updated_at > ctx.at(5), "a restore is a new revision");
    assert!(
        ok(store.get_block(&scope, removed.id).await, "removed").is_some(),
        "a deleted block comes back"
    );
    assert!(
        ok(store.get_block(&scope, made.id).await, "made").is_none(),
        "a created block is deleted"
    );
    assert!(
        ok(
            store.list_turn_revisions(&scope, run.turn_id).await,
            "after"
        )
        .is_empty(),
        "a restored turn's revisions are spent: a second restore changes nothing"
    );
    assert_eq!(
        ok(
            store.latest_failed_turn(&scope, p.id).await,
            "no failed turn"
        ),
        None
    );
}
