//! Contract tests of [`ChatStore`]: messages, turns and their event logs,
//! idempotency records, BYOK provider keys and peer messages.
//!
//! `fail_stale_turns` and `prune_turn_events` act on the whole store; their
//! tests put their turns days in the past, far from the other tests' clocks.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Ctx, expect_conflict, expect_not_found, make_org, make_user, ok};
use crate::chat_store::*;
use crate::clock::format_ts;
use crate::error::StoreError;
use crate::model::{ChatSession, NewOrg, Participant};
use crate::new_id;
use crate::scope::OrgScope;
use crate::store::{Store, StoreResult};

const DAY: i64 = 86_400;

// --- fixtures -----------------------------------------------------------------

/// An owner with two orgs: `scope` is the one under test, `other` the
/// stranger whose scope must see and change nothing of it.
struct Fixture {
    ctx: Ctx,
    owner: Uuid,
    scope: OrgScope,
    org: NewOrg,
    other: OrgScope,
    other_org: NewOrg,
}

impl Fixture {
    async fn new(store: &dyn Store, label: &str) -> Fixture {
        let ctx = Ctx::new();
        let owner = make_user(store, &ctx, label).await;
        let (scope, org) = make_org(store, &ctx, label, owner).await;
        let (other, other_org) = make_org(store, &ctx, &format!("{label}-other"), owner).await;
        Fixture {
            ctx,
            owner,
            scope,
            org,
            other,
            other_org,
        }
    }

    /// The org's default agent (Ala), which runs the turns.
    fn agent(&self) -> Uuid {
        self.org.default_agent.id
    }

    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.ctx.at(secs)
    }

    /// An idle session of the org under test with the owner as participant.
    async fn session(&self, store: &dyn Store, label: &str) -> ChatSession {
        self.session_in(store, &self.scope, &self.org, label).await
    }

    async fn session_in(
        &self,
        store: &dyn Store,
        scope: &OrgScope,
        org: &NewOrg,
        label: &str,
    ) -> ChatSession {
        let session = ChatSession {
            id: new_id(),
            org_id: scope.org_id(),
            workspace_id: org.default_workspace_id,
            project_id: None,
            agent_id: Some(org.default_agent.id),
            user_id: self.owner,
            label: label.into(),
            status: "idle".into(),
            relationship: "direct".into(),
            running_turn: None,
            metadata: json!({}),
            message_count: 0,
            last_message_at: None,
            created_at: self.ctx.t0,
            updated_at: self.ctx.t0,
        };
        let owner = Participant {
            kind: "user".into(),
            id: self.owner,
            joined_at: self.ctx.t0,
        };
        ok(
            store.create_chat_session(scope, &session, &[owner]).await,
            format!("create_chat_session({label})"),
        );
        session
    }

    async fn reread(&self, store: &dyn Store, session: Uuid) -> ChatSession {
        ok(
            store.get_chat_session(&self.scope, session).await,
            "get_chat_session",
        )
        .expect("the session is live")
    }

    fn user_message(&self, id: &str, at: DateTime<Utc>) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            session_id: Uuid::nil(),
            seq: 0,
            role: "user".into(),
            parts: json!([{ "type": "text", "text": format!("say {id}") }]),
            text: format!("say {id}"),
            author_kind: "user".into(),
            author_id: Some(self.owner),
            status: "complete".into(),
            model: None,
            finish_reason: None,
            usage: None,
            metadata: json!({ "client": id }),
            created_at: at,
            updated_at: at,
        }
    }

    /// The empty, streaming message a turn starts with.
    fn assistant_message(&self, id: &str, agent: Uuid, at: DateTime<Utc>) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            session_id: Uuid::nil(),
            seq: 0,
            role: "assistant".into(),
            parts: json!([]),
            text: String::new(),
            author_kind: "agent".into(),
            author_id: Some(agent),
            status: "streaming".into(),
            model: Some("dev/echo".into()),
            finish_reason: None,
            usage: None,
            metadata: json!({}),
            created_at: at,
            updated_at: at,
        }
    }

    /// A turn as `start_turn` takes it and `get_turn` then returns it.
    fn turn(&self, session: Uuid, agent: Uuid, message_id: &str, at: DateTime<Utc>) -> Turn {
        Turn {
            id: new_id(),
            session_id: session,
            agent_id: agent,
            message_id: message_id.into(),
            model: "dev/echo".into(),
            status: "running".into(),
            finish_reason: None,
            stop_requested: false,
            started_at: at,
            heartbeat_at: at,
            ended_at: None,
            last_seq: -1,
        }
    }

    /// Starts a turn with one user message (`u-{label}`) and the assistant
    /// message (`a-{label}`); panics unless it starts.
    async fn start(
        &self,
        store: &dyn Store,
        scope: &OrgScope,
        session: Uuid,
        agent: Uuid,
        label: &str,
        at: DateTime<Utc>,
    ) -> (Turn, Vec<ChatMessage>) {
        let user = self.user_message(&format!("u-{label}"), at);
        let assistant = self.assistant_message(&format!("a-{label}"), agent, at);
        let turn = self.turn(session, agent, &assistant.id, at);
        let started = ok(
            store
                .start_turn(scope, &turn, std::slice::from_ref(&user), &assistant, agent)
                .await,
            format!("start_turn({label})"),
        );
        match started {
            Ok(stored) => (turn, stored),
            Err(e) => panic!("start_turn({label}) on an idle session: refused with {e:?}"),
        }
    }

    async fn message(&self, store: &dyn Store, session: Uuid, id: &str) -> Option<ChatMessage> {
        ok(
            store.get_message(&self.scope, session, id).await,
            format!("get_message({id})"),
        )
    }

    async fn get_turn(&self, store: &dyn Store, id: Uuid) -> Turn {
        ok(store.get_turn(&self.scope, id).await, "get_turn").expect("the turn exists")
    }
}

fn event(seq: i64) -> TurnEvent {
    TurnEvent {
        seq,
        data: format!(r#"{{"type":"text-delta","delta":"d{seq}"}}"#),
    }
}

fn progress(text: &str, status: &str) -> MessageProgress {
    MessageProgress {
        parts: json!([{ "type": "text", "text": text }]),
        text: text.into(),
        status: status.into(),
        model: Some("dev/echo".into()),
        finish_reason: None,
        usage: None,
    }
}

/// A normal end: message `complete` with usage, session `idle`.
fn end(text: &str, events: Vec<TurnEvent>) -> TurnEnd {
    TurnEnd {
        status: "complete".into(),
        finish_reason: "stop".into(),
        message: MessageProgress {
            finish_reason: Some("stop".into()),
            usage: Some(json!({ "inputTokens": 3, "outputTokens": 2 })),
            ..progress(text, "complete")
        },
        session_status: "idle".into(),
        events,
    }
}

fn seqs(messages: &[ChatMessage]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

fn message_ids(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

fn event_seqs(events: &[TurnEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

/// The `running_turn` JSON a session holds while `turn` runs.
fn running_json(turn: &Turn) -> Value {
    json!({
        "id": turn.id.to_string(),
        "startedAt": format_ts(turn.started_at),
        "agentId": turn.agent_id.to_string(),
    })
}

fn agent_participants(participants: &[Participant], agent: Uuid) -> usize {
    participants
        .iter()
        .filter(|p| p.kind == "agent" && p.id == agent)
        .count()
}

/// Polls all futures together (on one task) and returns their outputs in
/// order: concurrent calls into the store without needing `'static`.
pub(super) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

// --- messages -----------------------------------------------------------------

/// Appends get seq 1..n in order and bump the session's count and last
/// message time; a batch with a duplicate id stores nothing; the same id in
/// another session is fine; another org's, unknown and deleted sessions are
/// not found; `require_idle` refuses while a turn runs.
pub async fn chat_messages_append_in_order_and_atomically(store: &dyn Store) {
    let f = Fixture::new(store, "append").await;
    let s = f.session(store, "s").await;

    let batch = [
        f.user_message("m1", f.at(1)),
        f.user_message("m2", f.at(2)),
        f.assistant_message("m3", f.agent(), f.at(3)),
    ];
    let stored = ok(
        store.append_messages(&f.scope, s.id, &batch, true).await,
        "append m1..m3",
    );
    assert_eq!(seqs(&stored), [1, 2, 3], "seq 1..n in the order given");
    assert_eq!(message_ids(&stored), ["m1", "m2", "m3"]);
    for (got, sent) in stored.iter().zip(&batch) {
        let want = ChatMessage {
            session_id: s.id,
            seq: got.seq,
            ..sent.clone()
        };
        assert_eq!(
            got, &want,
            "append returns the message with its session and seq"
        );
        assert_eq!(
            f.message(store, s.id, &got.id).await.as_ref(),
            Some(&want),
            "get_message returns every field as appended"
        );
    }
    let session = f.reread(store, s.id).await;
    assert_eq!(
        (session.message_count, session.last_message_at),
        (3, Some(f.at(3))),
        "append bumps message_count and last_message_at"
    );

    let next = ok(
        store
            .append_messages(&f.scope, s.id, &[f.user_message("m4", f.at(4))], true)
            .await,
        "append m4",
    );
    assert_eq!(seqs(&next), [4], "a second append continues the seq");
    let session = f.reread(store, s.id).await;
    assert_eq!(
        (session.message_count, session.last_message_at),
        (4, Some(f.at(4)))
    );

    // A duplicate id refuses the whole batch.
    let with_duplicate = [f.user_message("m5", f.at(5)), f.user_message("m2", f.at(6))];
    expect_conflict(
        store
            .append_messages(&f.scope, s.id, &with_duplicate, false)
            .await,
        "duplicate_message",
        "append of a batch repeating m2",
    );
    assert!(
        f.message(store, s.id, "m5").await.is_none(),
        "a refused batch stores none of its messages"
    );
    assert_eq!(
        f.message(store, s.id, "m2")
            .await
            .map(|m| (m.seq, m.created_at)),
        Some((2, f.at(2))),
        "the duplicate does not overwrite the stored message"
    );
    let twice = [f.user_message("m6", f.at(7)), f.user_message("m6", f.at(8))];
    expect_conflict(
        store.append_messages(&f.scope, s.id, &twice, false).await,
        "duplicate_message",
        "append of a batch with one id twice",
    );
    assert!(f.message(store, s.id, "m6").await.is_none());
    let session = f.reread(store, s.id).await;
    assert_eq!(
        (session.message_count, session.last_message_at),
        (4, Some(f.at(4))),
        "refused batches leave the session's count and time alone"
    );
    let after = ok(
        store
            .append_messages(&f.scope, s.id, &[f.user_message("m7", f.at(9))], true)
            .await,
        "append m7",
    );
    assert_eq!(seqs(&after), [5], "refused batches leave no gap in the seq");

    // The same id in another session is another message.
    let s2 = f.session(store, "s2").await;
    let mut elsewhere = f.user_message("m1", f.at(10));
    elsewhere.text = "another m1".into();
    let in_s2 = ok(
        store
            .append_messages(&f.scope, s2.id, &[elsewhere], true)
            .await,
        "append m1 to s2",
    );
    assert_eq!(seqs(&in_s2), [1], "seq counts per session");
    assert_eq!(
        f.message(store, s.id, "m1").await.map(|m| m.text),
        Some("say m1".to_string()),
        "s's m1 is untouched by s2's"
    );

    // Not found: another org's scope, an unknown session.
    expect_not_found(
        store
            .append_messages(&f.other, s.id, &[f.user_message("m8", f.at(11))], false)
            .await,
        "append through another org's scope",
    );
    expect_not_found(
        store
            .append_messages(&f.scope, new_id(), &[f.user_message("m8", f.at(11))], false)
            .await,
        "append to an unknown session",
    );
    assert!(f.message(store, s.id, "m8").await.is_none());
    assert_eq!(f.reread(store, s.id).await.message_count, 5);

    // require_idle while a turn runs.
    let (_, started) = f
        .start(store, &f.scope, s2.id, f.agent(), "t", f.at(20))
        .await;
    assert_eq!(seqs(&started), [2, 3]);
    expect_conflict(
        store
            .append_messages(&f.scope, s2.id, &[f.user_message("m9", f.at(21))], true)
            .await,
        "turn_in_progress",
        "append requiring idle while a turn runs",
    );
    assert!(f.message(store, s2.id, "m9").await.is_none());
    assert_eq!(f.reread(store, s2.id).await.message_count, 3);
    let queued = ok(
        store
            .append_messages(&f.scope, s2.id, &[f.user_message("m9", f.at(21))], false)
            .await,
        "append not requiring idle while a turn runs",
    );
    assert_eq!(seqs(&queued), [4]);

    // A deleted session takes nothing.
    ok(
        store.delete_chat_session(&f.scope, s.id, f.at(30)).await,
        "delete s",
    );
    for require_idle in [true, false] {
        expect_not_found(
            store
                .append_messages(
                    &f.scope,
                    s.id,
                    &[f.user_message("m10", f.at(31))],
                    require_idle,
                )
                .await,
            format!("append to a deleted session (require_idle {require_idle})"),
        );
    }
}

/// `list_messages` pages by seq both ways; `get_message` finds by session
/// and id; another org's scope sees nothing.
pub async fn chat_messages_list_in_seq_pages_and_scoped(store: &dyn Store) {
    let f = Fixture::new(store, "list").await;
    let s = f.session(store, "s").await;
    let batch: Vec<ChatMessage> = (1..=5)
        .map(|i| f.user_message(&format!("m{i}"), f.at(i)))
        .collect();
    let stored = ok(
        store.append_messages(&f.scope, s.id, &batch, true).await,
        "append m1..m5",
    );
    let s2 = f.session(store, "s2").await;
    ok(
        store
            .append_messages(&f.scope, s2.id, &[f.user_message("x1", f.at(6))], true)
            .await,
        "append to s2",
    );

    let list = |after: Option<i64>, descending: bool, limit: u32| {
        store.list_messages(&f.scope, s.id, after, descending, limit)
    };
    let all = ok(list(None, false, 100).await, "list all");
    assert_eq!(
        all, stored,
        "list returns every field, oldest first, this session only"
    );

    let cases: [(Option<i64>, bool, u32, Vec<i64>); 10] = [
        (None, false, 2, vec![1, 2]),
        (Some(2), false, 2, vec![3, 4]),
        (Some(4), false, 2, vec![5]),
        (Some(5), false, 2, vec![]),
        (Some(0), false, 1, vec![1]),
        (None, true, 2, vec![5, 4]),
        (Some(4), true, 2, vec![3, 2]),
        (Some(2), true, 2, vec![1]),
        (Some(1), true, 2, vec![]),
        (Some(100), true, 3, vec![5, 4, 3]),
    ];
    for (after, descending, limit, want) in cases {
        assert_eq!(
            seqs(&ok(list(after, descending, limit).await, "list")),
            want,
            "list_messages(after {after:?}, descending {descending}, limit {limit})"
        );
    }
    assert_eq!(
        message_ids(&ok(
            store.list_messages(&f.scope, s2.id, None, false, 100).await,
            "list s2"
        )),
        ["x1"]
    );

    assert_eq!(
        f.message(store, s.id, "m3").await.as_ref(),
        Some(&stored[2])
    );
    assert!(f.message(store, s.id, "x1").await.is_none(), "x1 is s2's");
    assert!(f.message(store, s2.id, "m3").await.is_none(), "m3 is s's");
    assert!(f.message(store, s.id, "nope").await.is_none());

    for descending in [false, true] {
        assert!(
            ok(
                store
                    .list_messages(&f.other, s.id, None, descending, 100)
                    .await,
                "list through another org's scope"
            )
            .is_empty(),
            "another org's scope lists none of s's messages"
        );
    }
    assert!(
        ok(
            store.get_message(&f.other, s.id, "m1").await,
            "get_message through another org's scope"
        )
        .is_none()
    );
}

// --- turns --------------------------------------------------------------------

/// A turn claims an idle session once: it appends its messages, records the
/// turn, marks the session `active` with its `running_turn`, and adds the
/// agent as a participant once. A refused start (turn in progress, unknown,
/// foreign or deleted session, duplicate message) stores nothing and leaves
/// the session unclaimed.
pub async fn turns_start_once_and_refusals_store_nothing(store: &dyn Store) {
    let f = Fixture::new(store, "start").await;
    let agent = f.agent();
    let s = f.session(store, "s").await;
    ok(
        store
            .append_messages(&f.scope, s.id, &[f.user_message("m0", f.at(1))], true)
            .await,
        "append m0",
    );

    let (turn, started) = f.start(store, &f.scope, s.id, agent, "1", f.at(10)).await;
    assert_eq!(message_ids(&started), ["u-1", "a-1"]);
    assert_eq!(
        seqs(&started),
        [2, 3],
        "the turn's messages follow the session's"
    );
    let assistant = f.message(store, s.id, "a-1").await.expect("a-1 stored");
    assert_eq!(assistant, started[1]);
    assert_eq!(
        (assistant.status.as_str(), assistant.role.as_str()),
        ("streaming", "assistant")
    );
    let session = f.reread(store, s.id).await;
    assert_eq!(
        session.running_turn,
        Some(running_json(&turn)),
        "the session names its running turn"
    );
    assert_eq!(
        session.status, "active",
        "a started turn makes the session active"
    );
    assert_eq!(
        (session.message_count, session.last_message_at),
        (3, Some(f.at(10)))
    );
    assert_eq!(
        ok(store.get_turn(&f.scope, turn.id).await, "get_turn"),
        Some(turn.clone()),
        "the turn is stored running, with every field"
    );
    assert_eq!(
        ok(store.running_turn(&f.scope, s.id).await, "running_turn"),
        Some(turn.clone())
    );
    let participants = ok(
        store.list_participants(&f.scope, s.id).await,
        "list_participants",
    );
    assert_eq!(
        agent_participants(&participants, agent),
        1,
        "the agent joins the session: {participants:?}"
    );

    // A second turn is refused and stores nothing.
    let u2 = f.user_message("u-2", f.at(20));
    let a2 = f.assistant_message("a-2", agent, f.at(20));
    let second = f.turn(s.id, agent, "a-2", f.at(20));
    assert_eq!(
        ok(
            store
                .start_turn(&f.scope, &second, std::slice::from_ref(&u2), &a2, agent)
                .await,
            "second start_turn"
        ),
        Err(StartTurnError::TurnInProgress)
    );
    assert!(f.message(store, s.id, "u-2").await.is_none());
    assert!(f.message(store, s.id, "a-2").await.is_none());
    assert!(ok(store.get_turn(&f.scope, second.id).await, "get_turn").is_none());
    let session = f.reread(store, s.id).await;
    assert_eq!(session.running_turn, Some(running_json(&turn)));
    assert_eq!(session.message_count, 3);

    // Unknown, foreign and deleted sessions are not found.
    let nowhere = f.turn(new_id(), agent, "a-2", f.at(20));
    assert_eq!(
        ok(
            store
                .start_turn(&f.scope, &nowhere, std::slice::from_ref(&u2), &a2, agent)
                .await,
            "start_turn on an unknown session"
        ),
        Err(StartTurnError::SessionNotFound)
    );
    let idle = f.session(store, "idle").await;
    let foreign = f.turn(idle.id, agent, "a-2", f.at(20));
    assert_eq!(
        ok(
            store
                .start_turn(&f.other, &foreign, std::slice::from_ref(&u2), &a2, agent)
                .await,
            "start_turn through another org's scope"
        ),
        Err(StartTurnError::SessionNotFound)
    );
    let untouched = f.reread(store, idle.id).await;
    assert_eq!(
        (
            untouched.running_turn,
            untouched.status.as_str(),
            untouched.message_count
        ),
        (None, "idle", 0),
        "another org's start_turn leaves the session alone"
    );
    assert!(ok(store.get_turn(&f.other, foreign.id).await, "get_turn").is_none());
    let gone = f.session(store, "gone").await;
    ok(
        store.delete_chat_session(&f.scope, gone.id, f.at(21)).await,
        "delete gone",
    );
    let deleted = f.turn(gone.id, agent, "a-2", f.at(22));
    assert_eq!(
        ok(
            store
                .start_turn(&f.scope, &deleted, std::slice::from_ref(&u2), &a2, agent)
                .await,
            "start_turn on a deleted session"
        ),
        Err(StartTurnError::SessionNotFound)
    );

    // A duplicate message id refuses the start and leaves the session idle.
    let s2 = f.session(store, "s2").await;
    ok(
        store
            .append_messages(&f.scope, s2.id, &[f.user_message("m0", f.at(1))], true)
            .await,
        "append m0 to s2",
    );
    let u3 = f.user_message("u-3", f.at(30));
    let a3 = f.assistant_message("a-3", agent, f.at(30));
    let dup_user = f.turn(s2.id, agent, "a-3", f.at(30));
    assert_eq!(
        ok(
            store
                .start_turn(
                    &f.scope,
                    &dup_user,
                    &[u3.clone(), f.user_message("m0", f.at(30))],
                    &a3,
                    agent
                )
                .await,
            "start_turn repeating m0"
        ),
        Err(StartTurnError::DuplicateMessage("m0".into()))
    );
    let dup_assistant = f.turn(s2.id, agent, "m0", f.at(31));
    assert_eq!(
        ok(
            store
                .start_turn(
                    &f.scope,
                    &dup_assistant,
                    std::slice::from_ref(&u3),
                    &f.assistant_message("m0", agent, f.at(31)),
                    agent
                )
                .await,
            "start_turn with the assistant message repeating m0"
        ),
        Err(StartTurnError::DuplicateMessage("m0".into()))
    );
    for id in ["u-3", "a-3"] {
        assert!(
            f.message(store, s2.id, id).await.is_none(),
            "a start refused for a duplicate stores none of its messages ({id})"
        );
    }
    for t in [&dup_user, &dup_assistant] {
        assert!(ok(store.get_turn(&f.scope, t.id).await, "get_turn").is_none());
    }
    let s2_now = f.reread(store, s2.id).await;
    assert_eq!(
        (
            s2_now.running_turn,
            s2_now.status.as_str(),
            s2_now.message_count
        ),
        (None, "idle", 1),
        "a start refused for a duplicate leaves the session unclaimed"
    );
    assert!(ok(store.running_turn(&f.scope, s2.id).await, "running_turn").is_none());
    assert_eq!(
        agent_participants(
            &ok(
                store.list_participants(&f.scope, s2.id).await,
                "participants"
            ),
            agent
        ),
        0,
        "a refused start adds no participant"
    );
    let (_, retried) = f.start(store, &f.scope, s2.id, agent, "3", f.at(32)).await;
    assert_eq!(
        seqs(&retried),
        [2, 3],
        "the session is free after the refusal"
    );

    // Finished, then started again: the agent is still listed once.
    ok(
        store
            .finish_turn(&f.scope, &turn, &end("done", vec![]), f.at(40))
            .await,
        "finish_turn",
    );
    let (again, _) = f.start(store, &f.scope, s.id, agent, "4", f.at(41)).await;
    assert_eq!(
        f.reread(store, s.id).await.running_turn,
        Some(running_json(&again))
    );
    assert_eq!(
        agent_participants(
            &ok(
                store.list_participants(&f.scope, s.id).await,
                "participants"
            ),
            agent
        ),
        1,
        "the agent joins once however many turns it runs"
    );

    // A deleted session has no running turn, though its turn still ends.
    ok(
        store.delete_chat_session(&f.scope, s.id, f.at(42)).await,
        "delete s",
    );
    assert!(
        ok(store.running_turn(&f.scope, s.id).await, "running_turn").is_none(),
        "running_turn is of a live session only"
    );
    ok(
        store
            .finish_turn(&f.scope, &again, &end("done", vec![]), f.at(43))
            .await,
        "finish_turn in a deleted session",
    );
    assert_eq!(f.get_turn(store, again.id).await.status, "complete");
}

/// Eight turns started at once on one session: exactly one wins.
pub async fn turns_start_concurrently_admits_one(store: &dyn Store) {
    let f = Fixture::new(store, "race").await;
    let agent = f.agent();
    let s = f.session(store, "s").await;
    let attempts: Vec<(Turn, ChatMessage, ChatMessage)> = (0..8)
        .map(|i| {
            let at = f.at(10 + i);
            let assistant = f.assistant_message(&format!("a-{i}"), agent, at);
            (
                f.turn(s.id, agent, &assistant.id, at),
                f.user_message(&format!("u-{i}"), at),
                assistant,
            )
        })
        .collect();
    let results = join_all(
        attempts
            .iter()
            .map(|(turn, user, assistant)| {
                store.start_turn(&f.scope, turn, std::slice::from_ref(user), assistant, agent)
            })
            .collect(),
    )
    .await;
    let results: Vec<Result<Vec<ChatMessage>, StartTurnError>> = results
        .into_iter()
        .map(|r| ok(r, "concurrent start_turn"))
        .collect();
    let winners: Vec<usize> = (0..8).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent start_turn wins: {results:?}"
    );
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e, &StartTurnError::TurnInProgress);
        }
    }
    let (turn, user, assistant) = &attempts[winners[0]];
    let session = f.reread(store, s.id).await;
    assert_eq!(session.running_turn, Some(running_json(turn)));
    assert_eq!(session.message_count, 2, "only the winner's messages count");
    let listed = ok(
        store.list_messages(&f.scope, s.id, None, false, 100).await,
        "list_messages",
    );
    assert_eq!(
        message_ids(&listed),
        [user.id.as_str(), assistant.id.as_str()],
        "only the winner's messages are stored"
    );
    assert_eq!(
        ok(store.running_turn(&f.scope, s.id).await, "running_turn").map(|t| t.id),
        Some(turn.id)
    );
    assert_eq!(
        agent_participants(
            &ok(
                store.list_participants(&f.scope, s.id).await,
                "participants"
            ),
            agent
        ),
        1
    );
}

/// An append that requires an idle session, racing a turn's start, either
/// lands wholly before the turn (lower seq) or is refused: never inside it.
pub async fn idle_appends_never_land_inside_a_running_turn(store: &dyn Store) {
    let f = Fixture::new(store, "idle-race").await;
    for round in 0..16 {
        let s = f.session(store, &format!("s{round}")).await;
        let at = f.at(round);
        let user = f.user_message("u", at);
        let assistant = f.assistant_message("a", f.agent(), at);
        let turn = f.turn(s.id, f.agent(), "a", at);
        let queued = [f.user_message("q", at)];
        let (started, appended) = tokio::join!(
            store.start_turn(
                &f.scope,
                &turn,
                std::slice::from_ref(&user),
                &assistant,
                f.agent()
            ),
            store.append_messages(&f.scope, s.id, &queued, true),
        );
        let started = match ok(started, "start_turn") {
            Ok(stored) => stored,
            Err(e) => panic!("round {round}: start_turn refused with {e:?}"),
        };
        match appended {
            Ok(stored) => assert!(
                stored[0].seq < started[0].seq,
                "round {round}: an append requiring idle got seq {} after the turn's first \
                 message (seq {}): it landed while the turn ran",
                stored[0].seq,
                started[0].seq
            ),
            Err(StoreError::Conflict("turn_in_progress")) => {}
            Err(e) => panic!("round {round}: append requiring idle failed with {e:?}"),
        }
    }
}

/// Progress saves write the message and the log and beat the heartbeat;
/// `request_stop` flags the running turn; `finish_turn` ends the turn and
/// the message and releases the session. Another org changes nothing.
pub async fn turns_save_progress_stop_and_finish(store: &dyn Store) {
    let f = Fixture::new(store, "progress").await;
    let s = f.session(store, "s").await;
    let (turn, started) = f
        .start(store, &f.scope, s.id, f.agent(), "1", f.at(10))
        .await;
    let before = started[1].clone();

    let stop = ok(
        store
            .save_turn_progress(
                &f.scope,
                &turn,
                &progress("Hel", "streaming"),
                &[event(0), event(1)],
                f.at(11),
            )
            .await,
        "save_turn_progress",
    );
    assert!(!stop, "no stop was requested");
    let message = f.message(store, s.id, "a-1").await.expect("a-1");
    assert_eq!(
        message,
        ChatMessage {
            parts: json!([{ "type": "text", "text": "Hel" }]),
            text: "Hel".into(),
            updated_at: f.at(11),
            ..before.clone()
        },
        "a progress save writes parts, text and updated_at, nothing else"
    );
    let saved = f.get_turn(store, turn.id).await;
    assert_eq!(
        (saved.heartbeat_at, saved.last_seq, saved.status.as_str()),
        (f.at(11), 1, "running"),
        "a progress save beats the heartbeat and records the last event seq"
    );
    assert_eq!(
        ok(
            store.turn_events(&f.scope, turn.id, -1).await,
            "turn_events"
        ),
        vec![event(0), event(1)],
        "the log holds the events as written"
    );
    assert_eq!(
        event_seqs(&ok(
            store.turn_events(&f.scope, turn.id, 0).await,
            "turn_events"
        )),
        [1]
    );
    assert!(ok(store.turn_events(&f.scope, turn.id, 1).await, "turn_events").is_empty());
    assert!(
        ok(
            store.turn_events(&f.other, turn.id, -1).await,
            "turn_events through another org's scope"
        )
        .is_empty(),
        "another org's scope reads none of the log"
    );
    assert!(ok(store.get_turn(&f.other, turn.id).await, "get_turn").is_none());
    assert!(ok(store.running_turn(&f.other, s.id).await, "running_turn").is_none());

    // A save without events keeps last_seq.
    assert!(!ok(
        store
            .save_turn_progress(
                &f.scope,
                &turn,
                &progress("Hello", "streaming"),
                &[],
                f.at(12)
            )
            .await,
        "save_turn_progress"
    ));
    let saved = f.get_turn(store, turn.id).await;
    assert_eq!((saved.heartbeat_at, saved.last_seq), (f.at(12), 1));
    assert_eq!(
        f.message(store, s.id, "a-1").await.map(|m| m.text),
        Some("Hello".into())
    );

    // Another org's scope writes nothing: not the message, the log, the
    // heartbeat, the turn or the session.
    let foreign_save = store
        .save_turn_progress(
            &f.other,
            &turn,
            &progress("hijacked", "complete"),
            &[event(50)],
            f.at(13),
        )
        .await;
    assert!(
        matches!(foreign_save, Ok(true) | Err(StoreError::NotFound)),
        "save_turn_progress through another org's scope: {foreign_save:?}"
    );
    let foreign_finish = store
        .finish_turn(&f.other, &turn, &end("hijacked", vec![event(51)]), f.at(13))
        .await;
    assert!(
        matches!(foreign_finish, Ok(()) | Err(StoreError::NotFound)),
        "finish_turn through another org's scope: {foreign_finish:?}"
    );
    assert_eq!(
        f.message(store, s.id, "a-1").await.map(|m| m.text),
        Some("Hello".into()),
        "another org's scope cannot write the message"
    );
    assert_eq!(
        event_seqs(&ok(
            store.turn_events(&f.scope, turn.id, -1).await,
            "turn_events"
        )),
        [0, 1],
        "another org's scope cannot write the log"
    );
    let saved = f.get_turn(store, turn.id).await;
    assert_eq!(
        (
            saved.status.as_str(),
            saved.heartbeat_at,
            saved.last_seq,
            saved.ended_at
        ),
        ("running", f.at(12), 1, None),
        "another org's scope cannot beat or end the turn"
    );
    assert_eq!(
        f.reread(store, s.id).await.running_turn,
        Some(running_json(&turn))
    );

    // Stop.
    assert_eq!(
        ok(store.request_stop(&f.other, s.id).await, "request_stop"),
        None,
        "another org cannot stop the turn"
    );
    assert!(!f.get_turn(store, turn.id).await.stop_requested);
    assert_eq!(
        ok(store.request_stop(&f.scope, s.id).await, "request_stop"),
        Some(turn.id),
        "request_stop names the running turn"
    );
    assert!(f.get_turn(store, turn.id).await.stop_requested);
    assert!(
        ok(store.running_turn(&f.scope, s.id).await, "running_turn")
            .expect("still running")
            .stop_requested
    );
    assert!(
        ok(
            store
                .save_turn_progress(
                    &f.scope,
                    &turn,
                    &progress("Hello w", "streaming"),
                    &[event(2)],
                    f.at(13)
                )
                .await,
            "save_turn_progress"
        ),
        "the next save after request_stop says stop"
    );

    // Finish.
    let finished = end("Hello world", vec![event(3)]);
    ok(
        store
            .finish_turn(&f.scope, &turn, &finished, f.at(14))
            .await,
        "finish_turn",
    );
    let message = f.message(store, s.id, "a-1").await.expect("a-1");
    assert_eq!(
        message,
        ChatMessage {
            parts: finished.message.parts.clone(),
            text: "Hello world".into(),
            status: "complete".into(),
            model: Some("dev/echo".into()),
            finish_reason: Some("stop".into()),
            usage: Some(json!({ "inputTokens": 3, "outputTokens": 2 })),
            updated_at: f.at(14),
            ..before.clone()
        },
        "finish_turn writes the final message"
    );
    let ended = f.get_turn(store, turn.id).await;
    assert_eq!(
        (
            ended.status.as_str(),
            ended.finish_reason.as_deref(),
            ended.ended_at,
            ended.last_seq
        ),
        ("complete", Some("stop"), Some(f.at(14)), 3),
        "finish_turn ends the turn"
    );
    let session = f.reread(store, s.id).await;
    assert_eq!(
        (session.running_turn, session.status.as_str()),
        (None, "idle"),
        "finish_turn releases the session with the status given"
    );
    assert!(ok(store.running_turn(&f.scope, s.id).await, "running_turn").is_none());
    assert_eq!(
        ok(store.request_stop(&f.scope, s.id).await, "request_stop"),
        None,
        "nothing to stop once the turn ended"
    );
    assert_eq!(
        ok(store.turn_events(&f.scope, turn.id, 1).await, "turn_events"),
        vec![event(2), event(3)],
        "the log keeps every event in order, the final ones included"
    );
    assert_eq!(
        f.message(store, s.id, "u-1").await.as_ref(),
        Some(&started[0]),
        "the turn's user message is untouched"
    );
    ok(
        store
            .append_messages(&f.scope, s.id, &[f.user_message("m2", f.at(15))], true)
            .await,
        "append requiring idle after the turn",
    );
}

/// An old turn that finishes after a later turn claimed the session (it was
/// failed as stale in between) must not release the later turn's claim.
pub async fn finishing_a_turn_leaves_a_later_turns_claim(store: &dyn Store) {
    let f = Fixture::new(store, "later").await;
    let base = -20 * DAY;
    let s = f.session(store, "s").await;
    let (old, _) = f
        .start(store, &f.scope, s.id, f.agent(), "old", f.at(base))
        .await;
    ok(
        store
            .fail_stale_turns(f.at(base + 60), f.at(base + 61))
            .await,
        "fail_stale_turns",
    );
    let session = f.reread(store, s.id).await;
    assert_eq!(
        (session.running_turn, session.status.as_str()),
        (None, "paused"),
        "the stale turn was failed and the session released"
    );
    let (later, _) = f
        .start(store, &f.scope, s.id, f.agent(), "new", f.at(10))
        .await;

    ok(
        store
            .finish_turn(&f.scope, &old, &end("late", vec![]), f.at(20))
            .await,
        "finish_turn of the old turn",
    );
    let session = f.reread(store, s.id).await;
    assert_eq!(
        (session.running_turn, session.status.as_str()),
        (Some(running_json(&later)), "active"),
        "finishing the old turn leaves the later turn's claim and status"
    );
    assert_eq!(
        ok(store.running_turn(&f.scope, s.id).await, "running_turn").map(|t| t.id),
        Some(later.id)
    );
    ok(
        store
            .finish_turn(&f.scope, &later, &end("ok", vec![]), f.at(30))
            .await,
        "finish_turn of the later turn",
    );
    let session = f.reread(store, s.id).await;
    assert_eq!(
        (session.running_turn, session.status.as_str()),
        (None, "idle")
    );
}

/// Only running turns whose heartbeat stopped before the cutoff fail: their
/// message becomes `error`, their session `paused` and free. Any org's.
pub async fn stale_turns_fail_and_release_their_sessions(store: &dyn Store) {
    let f = Fixture::new(store, "stale").await;
    let base = -30 * DAY;
    let agent = f.agent();
    let s1 = f.session(store, "s1").await;
    let s2 = f.session(store, "s2").await;
    let s3 = f.session(store, "s3").await;
    let s4 = f.session_in(store, &f.other, &f.other_org, "s4").await;
    // A streaming message the stale turn does not own (say, one a client
    // imported): failing the turn leaves it alone.
    ok(
        store
            .append_messages(
                &f.scope,
                s1.id,
                &[f.assistant_message("other-stream", agent, f.at(base - 10))],
                true,
            )
            .await,
        "append a streaming message",
    );
    let (stale, _) = f
        .start(store, &f.scope, s1.id, agent, "stale", f.at(base))
        .await;
    let (fresh, _) = f
        .start(store, &f.scope, s2.id, agent, "fresh", f.at(base))
        .await;
    assert!(!ok(
        store
            .save_turn_progress(
                &f.scope,
                &fresh,
                &progress("x", "streaming"),
                &[],
                f.at(base + 100)
            )
            .await,
        "heartbeat of the fresh turn"
    ));
    let (ended, _) = f
        .start(store, &f.scope, s3.id, agent, "ended", f.at(base))
        .await;
    ok(
        store
            .finish_turn(&f.scope, &ended, &end("done", vec![]), f.at(base + 5))
            .await,
        "finish_turn",
    );
    let (foreign, _) = f
        .start(
            store,
            &f.other,
            s4.id,
            f.other_org.default_agent.id,
            "foreign",
            f.at(base),
        )
        .await;

    assert_eq!(
        ok(
            store
                .fail_stale_turns(f.at(base + 50), f.at(base + 200))
                .await,
            "fail_stale_turns"
        ),
        2,
        "the two running turns silent since before the cutoff fail, in any org"
    );

    let failed = f.get_turn(store, stale.id).await;
    assert_eq!(
        (failed.status.as_str(), failed.ended_at),
        ("error", Some(f.at(base + 200)))
    );
    assert_eq!(
        f.message(store, s1.id, "a-stale").await.map(|m| m.status),
        Some("error".into()),
        "the stale turn's message is marked error"
    );
    assert_eq!(
        f.message(store, s1.id, "u-stale").await.map(|m| m.status),
        Some("complete".into()),
        "only the turn's own message is marked"
    );
    assert_eq!(
        f.message(store, s1.id, "other-stream")
            .await
            .map(|m| m.status),
        Some("streaming".into()),
        "only the turn's own streaming message is marked"
    );
    let session = f.reread(store, s1.id).await;
    assert_eq!(
        (session.running_turn, session.status.as_str()),
        (None, "paused")
    );
    assert!(ok(store.running_turn(&f.scope, s1.id).await, "running_turn").is_none());

    let failed = ok(store.get_turn(&f.other, foreign.id).await, "get_turn").expect("foreign");
    assert_eq!(failed.status, "error");
    let session = ok(store.get_chat_session(&f.other, s4.id).await, "get").expect("s4");
    assert_eq!(
        (session.running_turn, session.status.as_str()),
        (None, "paused")
    );

    let alive = f.get_turn(store, fresh.id).await;
    assert_eq!(
        (alive.status.as_str(), alive.ended_at),
        ("running", None),
        "a turn with a recent heartbeat is untouched"
    );
    assert_eq!(
        f.message(store, s2.id, "a-fresh").await.map(|m| m.status),
        Some("streaming".into())
    );
    let session = f.reread(store, s2.id).await;
    assert_eq!(
        (session.running_turn, session.status.as_str()),
        (Some(running_json(&fresh)), "active")
    );

    let done = f.get_turn(store, ended.id).await;
    assert_eq!(
        (done.status.as_str(), done.ended_at),
        ("complete", Some(f.at(base + 5))),
        "an ended turn is not failed"
    );
    assert_eq!(
        f.message(store, s3.id, "a-ended").await.map(|m| m.status),
        Some("complete".into())
    );
    assert_eq!(f.reread(store, s3.id).await.status, "idle");

    assert_eq!(
        ok(
            store
                .fail_stale_turns(f.at(base + 50), f.at(base + 201))
                .await,
            "fail_stale_turns again"
        ),
        0
    );
    assert_eq!(
        ok(
            store
                .fail_stale_turns(f.at(base + 100), f.at(base + 202))
                .await,
            "fail_stale_turns at the heartbeat"
        ),
        0,
        "a heartbeat at the cutoff is not before it"
    );
    assert_eq!(
        ok(
            store
                .fail_stale_turns(f.at(base + 101), f.at(base + 203))
                .await,
            "fail_stale_turns after the heartbeat"
        ),
        1
    );
    assert_eq!(f.get_turn(store, fresh.id).await.status, "error");
}

/// Pruning deletes the logs of turns that ended before the cutoff, and only
/// those; the turns themselves stay.
pub async fn prune_turn_events_only_of_turns_ended_before(store: &dyn Store) {
    let f = Fixture::new(store, "prune").await;
    let base = -40 * DAY;
    let agent = f.agent();
    let mut turns = Vec::new();
    for (label, ended_after) in [("early", Some(10)), ("late", Some(100)), ("running", None)] {
        let s = f.session(store, label).await;
        let (turn, _) = f
            .start(store, &f.scope, s.id, agent, label, f.at(base))
            .await;
        ok(
            store
                .save_turn_progress(
                    &f.scope,
                    &turn,
                    &progress("x", "streaming"),
                    &[event(0), event(1)],
                    f.at(base + 1),
                )
                .await,
            "save_turn_progress",
        );
        if let Some(secs) = ended_after {
            ok(
                store
                    .finish_turn(
                        &f.scope,
                        &turn,
                        &end("x", vec![event(2)]),
                        f.at(base + secs),
                    )
                    .await,
                "finish_turn",
            );
        }
        turns.push(turn);
    }
    let log = |turn: Uuid| store.turn_events(&f.scope, turn, -1);

    assert_eq!(
        ok(
            store.prune_turn_events(f.at(base + 50)).await,
            "prune_turn_events"
        ),
        3,
        "the early turn's three events are pruned"
    );
    assert!(ok(log(turns[0].id).await, "log").is_empty());
    assert_eq!(event_seqs(&ok(log(turns[1].id).await, "log")), [0, 1, 2]);
    assert_eq!(event_seqs(&ok(log(turns[2].id).await, "log")), [0, 1]);
    assert_eq!(
        f.get_turn(store, turns[0].id).await.last_seq,
        2,
        "pruning keeps the turn"
    );

    assert_eq!(
        ok(
            store.prune_turn_events(f.at(base + 50)).await,
            "prune again"
        ),
        0
    );
    assert_eq!(
        ok(
            store.prune_turn_events(f.at(base + 100)).await,
            "prune at the late end"
        ),
        0,
        "a turn that ended at the cutoff is not pruned"
    );
    assert_eq!(
        ok(
            store.prune_turn_events(f.at(base + 101)).await,
            "prune after the late end"
        ),
        3
    );
    assert!(ok(log(turns[1].id).await, "log").is_empty());
    assert_eq!(
        event_seqs(&ok(log(turns[2].id).await, "log")),
        [0, 1],
        "a running turn's log is never pruned"
    );
}

// --- idempotency ----------------------------------------------------------------

/// A key is claimed once; repeats are in flight, mismatched or replayed;
/// release frees it; expired records are replaced; keys are per org.
pub async fn idempotency_keys_claim_replay_release_and_expire(store: &dyn Store) {
    let f = Fixture::new(store, "idem").await;
    let long_ago = f.at(-DAY);
    let claim = |scope: &OrgScope,
                 key: &str,
                 fingerprint: &str,
                 secs: i64,
                 expired_before: DateTime<Utc>| {
        let (scope, key, fingerprint) = (*scope, key.to_string(), fingerprint.to_string());
        let at = f.at(secs);
        async move {
            ok(
                store
                    .claim_idempotency(&scope, &key, &fingerprint, at, expired_before)
                    .await,
                format!("claim_idempotency({key}, {fingerprint})"),
            )
        }
    };

    assert_eq!(
        claim(&f.scope, "k1", "fp-a", 1, long_ago).await,
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-a", 2, long_ago).await,
        IdempotencyClaim::InFlight,
        "the same request while the first runs"
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-b", 2, long_ago).await,
        IdempotencyClaim::Mismatch,
        "another request under the same key"
    );
    let response = StoredResponse {
        status: 201,
        body: r#"{"id":"x"}"#.into(),
        location: Some("/api/v1/things/x".into()),
    };
    ok(
        store.complete_idempotency(&f.scope, "k1", &response).await,
        "complete_idempotency",
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-a", 3, long_ago).await,
        IdempotencyClaim::Done(response.clone()),
        "a completed key replays its response"
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-b", 3, long_ago).await,
        IdempotencyClaim::Mismatch
    );
    ok(
        store.release_idempotency(&f.scope, "k1").await,
        "release_idempotency of a done key",
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-a", 4, long_ago).await,
        IdempotencyClaim::Done(response.clone()),
        "release forgets only in-flight claims"
    );

    // Release lets a retry run.
    assert_eq!(
        claim(&f.scope, "k2", "fp-a", 1, long_ago).await,
        IdempotencyClaim::Claimed
    );
    ok(
        store.release_idempotency(&f.scope, "k2").await,
        "release_idempotency",
    );
    assert_eq!(
        claim(&f.scope, "k2", "fp-a", 2, long_ago).await,
        IdempotencyClaim::Claimed,
        "a released key can be claimed again"
    );
    let plain = StoredResponse {
        status: 200,
        body: String::new(),
        location: None,
    };
    ok(
        store.complete_idempotency(&f.scope, "k2", &plain).await,
        "complete_idempotency",
    );
    assert_eq!(
        claim(&f.scope, "k2", "fp-a", 3, long_ago).await,
        IdempotencyClaim::Done(plain)
    );

    // Expiry: records created before `expired_before` are forgotten.
    assert_eq!(
        claim(&f.scope, "k1", "fp-c", 7200, f.at(1)).await,
        IdempotencyClaim::Mismatch,
        "a record created at the expiry cutoff is still valid"
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-c", 7200, f.at(3601)).await,
        IdempotencyClaim::Claimed,
        "an expired record is replaced by a new claim"
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-c", 7201, f.at(3601)).await,
        IdempotencyClaim::InFlight,
        "the replacing claim is in flight, not the old done record"
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-a", 7201, f.at(3601)).await,
        IdempotencyClaim::Mismatch,
        "the replacing claim carries its own fingerprint"
    );

    // Another org's keys are independent.
    assert_eq!(
        claim(&f.other, "k2", "fp-z", 5, long_ago).await,
        IdempotencyClaim::Claimed,
        "the same key in another org is another record"
    );
    ok(
        store.release_idempotency(&f.other, "k1").await,
        "release through another org's scope",
    );
    ok(
        store.complete_idempotency(&f.other, "k1", &response).await,
        "complete through another org's scope",
    );
    assert_eq!(
        claim(&f.scope, "k1", "fp-c", 7202, f.at(3601)).await,
        IdempotencyClaim::InFlight,
        "another org cannot release or complete this org's claim"
    );
    assert_eq!(
        claim(&f.scope, "k2", "fp-a", 6, long_ago).await,
        IdempotencyClaim::Done(StoredResponse {
            status: 200,
            body: String::new(),
            location: None,
        }),
        "another org's claim leaves this org's record alone"
    );
}

/// Eight claims of one fresh key at once: exactly one is `Claimed`.
pub async fn idempotency_concurrent_claims_admit_one(store: &dyn Store) {
    let f = Fixture::new(store, "idem-race").await;
    let long_ago = f.at(-DAY);
    // A fresh key, and an expired one whose replacement is raced too.
    ok(
        store
            .claim_idempotency(&f.scope, "old", "fp", f.at(-2 * DAY), long_ago)
            .await,
        "claim old",
    );
    for key in ["fresh", "old"] {
        let results = join_all(
            (0..8)
                .map(|i| store.claim_idempotency(&f.scope, key, "fp", f.at(i), long_ago))
                .collect(),
        )
        .await;
        let results: Vec<IdempotencyClaim> = results
            .into_iter()
            .map(|r| ok(r, "concurrent claim_idempotency"))
            .collect();
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == IdempotencyClaim::Claimed)
                .count(),
            1,
            "exactly one concurrent claim of {key:?} wins: {results:?}"
        );
        assert!(
            results
                .iter()
                .all(|r| matches!(r, IdempotencyClaim::Claimed | IdempotencyClaim::InFlight)),
            "the losers see the claim in flight: {results:?}"
        );
    }
}

// --- provider keys --------------------------------------------------------------

fn provider_key(f: &Fixture, provider: &str, secs: i64) -> ProviderKey {
    ProviderKey {
        id: new_id(),
        provider: provider.into(),
        label: format!("{provider} key"),
        key_sealed: format!("sealed-{provider}-{}", new_id().simple()),
        key_hint: "abcd".into(),
        base_url: (provider == "openai").then(|| "https://api.example.test/v1".into()),
        created_by: f.owner,
        created_at: f.at(secs),
        last_used_at: None,
    }
}

/// One key per provider and org, found by provider, listed and deleted
/// only through the org's own scope.
pub async fn provider_keys_one_per_provider_and_scoped(store: &dyn Store) {
    let f = Fixture::new(store, "byok").await;
    let openai = provider_key(&f, "openai", 1);
    let anthropic = provider_key(&f, "anthropic", 2);
    ok(
        store.create_provider_key(&f.scope, &openai).await,
        "create openai",
    );
    ok(
        store.create_provider_key(&f.scope, &anthropic).await,
        "create anthropic",
    );
    let sorted = |mut keys: Vec<ProviderKey>| {
        keys.sort_by(|a, b| a.provider.cmp(&b.provider));
        keys
    };
    assert_eq!(
        sorted(ok(store.list_provider_keys(&f.scope).await, "list")),
        vec![anthropic.clone(), openai.clone()],
        "list returns both keys with every field"
    );
    assert_eq!(
        ok(store.find_provider_key(&f.scope, "openai").await, "find"),
        Some(openai.clone())
    );
    assert_eq!(
        ok(store.find_provider_key(&f.scope, "mistral").await, "find"),
        None
    );

    let second = provider_key(&f, "openai", 3);
    expect_conflict(
        store.create_provider_key(&f.scope, &second).await,
        "provider_key",
        "a second openai key",
    );
    assert_eq!(
        ok(store.find_provider_key(&f.scope, "openai").await, "find"),
        Some(openai.clone()),
        "the refused key replaces nothing"
    );
    assert_eq!(
        ok(store.list_provider_keys(&f.scope).await, "list").len(),
        2
    );

    // Another org sees none of them and has its own.
    assert!(ok(store.list_provider_keys(&f.other).await, "list other").is_empty());
    assert!(
        ok(
            store.find_provider_key(&f.other, "openai").await,
            "find other"
        )
        .is_none()
    );
    ok(
        store.create_provider_key(&f.other, &second).await,
        "the same provider in another org",
    );
    assert_eq!(
        ok(store.list_provider_keys(&f.other).await, "list other"),
        vec![second.clone()]
    );
    assert_eq!(
        ok(store.find_provider_key(&f.scope, "openai").await, "find"),
        Some(openai.clone())
    );
    expect_not_found(
        store.delete_provider_key(&f.other, openai.id).await,
        "delete through another org's scope",
    );
    assert_eq!(
        ok(store.find_provider_key(&f.scope, "openai").await, "find"),
        Some(openai.clone()),
        "another org cannot delete the key"
    );

    ok(
        store.delete_provider_key(&f.scope, openai.id).await,
        "delete openai",
    );
    assert!(ok(store.find_provider_key(&f.scope, "openai").await, "find").is_none());
    assert_eq!(
        ok(store.list_provider_keys(&f.scope).await, "list"),
        vec![anthropic.clone()]
    );
    expect_not_found(
        store.delete_provider_key(&f.scope, openai.id).await,
        "delete twice",
    );
    expect_not_found(
        store.delete_provider_key(&f.scope, new_id()).await,
        "delete an unknown key",
    );
    assert_eq!(
        ok(store.list_provider_keys(&f.other).await, "list other"),
        vec![second],
        "deleting this org's key leaves the other org's"
    );
    let replacement = provider_key(&f, "openai", 4);
    ok(
        store.create_provider_key(&f.scope, &replacement).await,
        "a new openai key after the delete",
    );
    assert_eq!(
        ok(store.find_provider_key(&f.scope, "openai").await, "find"),
        Some(replacement)
    );
}

// --- peer messages --------------------------------------------------------------

fn peer_message(session: Uuid, from: Uuid, to: Uuid, text: &str, at: DateTime<Utc>) -> PeerMessage {
    PeerMessage {
        id: new_id(),
        session_id: session,
        from_agent_id: from,
        to_agent_id: to,
        text: text.into(),
        created_at: at,
        read_at: None,
    }
}

async fn unread(store: &dyn Store, scope: &OrgScope, agent: Uuid) -> i64 {
    ok(
        store.count_unread_peer_messages(scope, agent).await,
        "count_unread_peer_messages",
    )
}

/// Lists hold sent and received messages newest first; a take returns the
/// unread ones oldest first and marks them read; all per org.
pub async fn peer_messages_list_take_and_count(store: &dyn Store) {
    let f = Fixture::new(store, "peers").await;
    let (a, b, c) = (f.agent(), new_id(), new_id());
    let s = f.session(store, "peer").await;
    let m1 = peer_message(s.id, a, b, "one", f.at(1));
    let m2 = peer_message(s.id, c, b, "two", f.at(2));
    let m3 = peer_message(s.id, b, a, "three", f.at(3));
    let m4 = peer_message(s.id, a, b, "four", f.at(4));
    // Inserted out of order: the lists order by time, not insertion.
    for m in [&m4, &m1, &m3, &m2] {
        ok(
            store.insert_peer_message(&f.scope, m).await,
            format!("insert {}", m.text),
        );
    }
    let list = |agent: Uuid, limit: u32| store.list_peer_messages(&f.scope, agent, limit);
    assert_eq!(
        ok(list(b, 10).await, "list b"),
        vec![m4.clone(), m3.clone(), m2.clone(), m1.clone()],
        "sent and received, newest first, every field"
    );
    assert_eq!(ok(list(b, 2).await, "list b"), vec![m4.clone(), m3.clone()]);
    assert_eq!(
        ok(list(a, 10).await, "list a"),
        vec![m4.clone(), m3.clone(), m1.clone()]
    );
    assert_eq!(ok(list(c, 10).await, "list c"), vec![m2.clone()]);
    assert_eq!(unread(store, &f.scope, b).await, 3);
    assert_eq!(unread(store, &f.scope, a).await, 1);
    assert_eq!(unread(store, &f.scope, c).await, 0);

    // Another org's scope sees and takes nothing.
    assert!(ok(store.list_peer_messages(&f.other, b, 10).await, "list").is_empty());
    assert_eq!(unread(store, &f.other, b).await, 0);
    assert!(
        ok(
            store.take_unread_peer_messages(&f.other, b, f.at(5)).await,
            "take through another org's scope"
        )
        .is_empty()
    );
    assert_eq!(
        unread(store, &f.scope, b).await,
        3,
        "another org's take marks nothing read"
    );

    let taken = ok(
        store.take_unread_peer_messages(&f.scope, b, f.at(6)).await,
        "take b",
    );
    let read = |m: &PeerMessage| PeerMessage {
        read_at: Some(f.at(6)),
        ..m.clone()
    };
    assert_eq!(
        taken,
        vec![read(&m1), read(&m2), read(&m4)],
        "a take returns the unread messages to the agent, oldest first, marked read"
    );
    assert!(
        ok(
            store.take_unread_peer_messages(&f.scope, b, f.at(7)).await,
            "take b again"
        )
        .is_empty(),
        "a second take finds nothing"
    );
    assert_eq!(unread(store, &f.scope, b).await, 0);
    assert_eq!(
        unread(store, &f.scope, a).await,
        1,
        "b's take leaves a's unread message"
    );
    assert_eq!(
        ok(list(b, 10).await, "list b"),
        vec![read(&m4), m3.clone(), read(&m2), read(&m1)],
        "taken messages list as read"
    );

    let m5 = peer_message(s.id, c, b, "five", f.at(8));
    ok(
        store.insert_peer_message(&f.scope, &m5).await,
        "insert five",
    );
    assert_eq!(unread(store, &f.scope, b).await, 1);
    let taken = ok(
        store.take_unread_peer_messages(&f.scope, b, f.at(9)).await,
        "take b",
    );
    assert_eq!(
        taken.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m5.id],
        "a later take returns only what arrived since"
    );
}

/// Takes racing for one agent's inbox never hand out a message twice.
pub async fn peer_messages_concurrent_takes_never_share(store: &dyn Store) {
    let f = Fixture::new(store, "peer-race").await;
    let (from, to) = (f.agent(), new_id());
    let s = f.session(store, "peer").await;
    let sent: Vec<PeerMessage> = (0..12)
        .map(|i| peer_message(s.id, from, to, &format!("m{i}"), f.at(i)))
        .collect();
    for m in &sent {
        ok(store.insert_peer_message(&f.scope, m).await, "insert");
    }
    let takes: Vec<StoreResult<Vec<PeerMessage>>> = join_all(
        (0..8)
            .map(|i| store.take_unread_peer_messages(&f.scope, to, f.at(100 + i)))
            .collect(),
    )
    .await;
    let mut taken: Vec<Uuid> = takes
        .into_iter()
        .flat_map(|r| ok(r, "concurrent take"))
        .map(|m| m.id)
        .collect();
    taken.sort();
    let mut want: Vec<Uuid> = sent.iter().map(|m| m.id).collect();
    want.sort();
    assert_eq!(
        taken, want,
        "concurrent takes hand out every message exactly once"
    );
    assert_eq!(
        ok(
            store.count_unread_peer_messages(&f.scope, to).await,
            "count"
        ),
        0
    );
}

/// A chat without `sessionId` creates its session with the first turn, in
/// one transaction: a refused start leaves no session behind.
pub async fn turns_start_in_a_new_session_atomically(store: &dyn Store) {
    let f = Fixture::new(store, "newsess").await;
    let fresh = |label: &str| ChatSession {
        id: new_id(),
        org_id: f.scope.org_id(),
        workspace_id: f.org.default_workspace_id,
        project_id: None,
        agent_id: Some(f.agent()),
        user_id: f.owner,
        label: label.into(),
        status: "active".into(),
        relationship: "direct".into(),
        running_turn: None,
        metadata: json!({}),
        message_count: 0,
        last_message_at: None,
        created_at: f.at(1),
        updated_at: f.at(1),
    };
    let owner = [Participant {
        kind: "user".into(),
        id: f.owner,
        joined_at: f.at(1),
    }];

    // Started: the session exists, claimed, with both messages and both participants.
    let s = fresh("ok");
    let turn = f.turn(s.id, f.agent(), "a-1", f.at(1));
    let started = ok(
        store
            .start_turn_in_new_session(
                &f.scope,
                &s,
                &owner,
                &turn,
                &[f.user_message("u-1", f.at(1))],
                &f.assistant_message("a-1", f.agent(), f.at(1)),
                f.agent(),
            )
            .await,
        "start_turn_in_new_session",
    );
    assert_eq!(seqs(&started.expect("starts")), [1, 2]);
    let stored = f.reread(store, s.id).await;
    assert_eq!(stored.message_count, 2);
    assert_eq!(stored.running_turn, Some(running_json(&turn)));
    let participants = ok(
        store.list_participants(&f.scope, s.id).await,
        "list_participants",
    );
    assert_eq!(participants.len(), 2, "{participants:?}");
    assert_eq!(agent_participants(&participants, f.agent()), 1);

    // Refused (a repeated message id): no session, no messages, no turn.
    let s2 = fresh("dup");
    let turn2 = f.turn(s2.id, f.agent(), "dup", f.at(2));
    let refused = ok(
        store
            .start_turn_in_new_session(
                &f.scope,
                &s2,
                &owner,
                &turn2,
                &[f.user_message("dup", f.at(2))],
                &f.assistant_message("dup", f.agent(), f.at(2)),
                f.agent(),
            )
            .await,
        "start_turn_in_new_session(dup)",
    );
    assert_eq!(refused, Err(StartTurnError::DuplicateMessage("dup".into())));
    assert!(
        ok(
            store.get_chat_session(&f.scope, s2.id).await,
            "get_chat_session"
        )
        .is_none()
    );
    assert!(ok(store.get_turn(&f.scope, turn2.id).await, "get_turn").is_none());
}
