//! Backend-neutral store contract tests.
//!
//! Every public `async fn` here takes a fresh, migrated `&dyn Store` and
//! panics with a message that names the broken promise. alumia-store runs the
//! same functions on SQLite and PostgreSQL through
//! [`store_contract_tests!`](crate::store_contract_tests):
//!
//! ```ignore
//! async fn with_store(test: alumia_core::testing::ContractTest) {
//!     let store = /* a fresh, empty store */;
//!     test(&store).await;
//! }
//! alumia_core::store_contract_tests!(with_store);
//! ```
//!
//! Only the two `setup_first_owner_*` tests need an empty store; everything
//! else uses emails and slugs suffixed with a random fragment, so a shared
//! database would also do for them.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::clock::{from_millis, to_millis};
use crate::error::StoreError;
use crate::model::*;
use crate::new_id;
use crate::scope::OrgScope;
use crate::store::{PageRequest, Store, StoreResult};

mod blocks;
mod chat;
mod device;
mod files;
mod projects;
mod sharing;
pub use blocks::*;
pub use chat::*;
pub use device::*;
pub use files::*;
pub use projects::*;
pub use sharing::*;

/// One contract test, as a plain function pointer the backends' harnesses call.
pub type ContractTest = for<'a> fn(&'a dyn Store) -> ContractFuture<'a>;
pub type ContractFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Generates one `#[tokio::test]` per contract function, named like it.
///
/// `$harness` is a path to (or a closure returning) an async function taking a
/// [`ContractTest`]: it opens a fresh store, awaits `test(&store)`, and cleans
/// up. The calling crate needs `tokio` with the `macros` and `rt` features.
#[macro_export]
macro_rules! store_contract_tests {
    ($harness:expr) => {
        $crate::__store_contract_tests!(
            $harness;
            setup_first_owner_runs_only_once,
            setup_first_owner_admits_one_of_concurrent_runs,
            users_are_unique_by_case_folded_email,
            passwords_change_and_unknown_users_are_not_found,
            create_org_makes_default_workspace_and_owner_membership,
            list_user_orgs_orders_by_slug_with_roles,
            members_are_added_once_and_removal_drops_key_role,
            workspaces_default_first_and_scoped_to_the_org,
            api_keys_round_trip_and_resolve_by_hash,
            api_keys_list_newest_first_in_keyset_pages,
            api_keys_revoke_once_and_only_own_keys,
            api_keys_touch_and_workspace_binding,
            sessions_create_find_rotate_and_delete,
            totp_pending_enable_steps_and_recovery_codes,
            second_factor_replays_race_to_one_winner,
            audit_events_newest_first_scoped_and_paged,
            agents_are_scoped_soft_deleted_and_ala_comes_with_the_org,
            chat_sessions_keep_participants_filter_and_soft_delete,
            chat_messages_append_in_order_and_atomically,
            chat_messages_list_in_seq_pages_and_scoped,
            turns_start_once_and_refusals_store_nothing,
            turns_start_concurrently_admits_one,
            turns_start_in_a_new_session_atomically,
            idle_appends_never_land_inside_a_running_turn,
            turns_save_progress_stop_and_finish,
            finishing_a_turn_leaves_a_later_turns_claim,
            stale_turns_fail_and_release_their_sessions,
            prune_turn_events_only_of_turns_ended_before,
            idempotency_keys_claim_replay_release_and_expire,
            idempotency_concurrent_claims_admit_one,
            provider_keys_one_per_provider_and_scoped,
            peer_messages_list_take_and_count,
            peer_messages_concurrent_takes_never_share,
            device_codes_round_trip_and_resolve_by_hash_and_user_code,
            device_user_codes_are_unique_among_pending_codes,
            device_codes_expired_for_a_day_are_deleted,
            device_polls_slow_down_and_the_interval_stays_grown,
            device_concurrent_polls_are_serialized,
            device_decisions_happen_once_and_bind_user_and_org,
            device_concurrent_decisions_admit_one,
            device_exchange_mints_one_key_in_the_same_transaction,
            device_concurrent_exchanges_mint_exactly_one_key,
            projects_create_with_folder_and_resolve_by_id_or_slug,
            projects_list_visible_filtered_and_paged,
            projects_update_and_delete_cascade_to_folder_and_sessions,
            share_links_resolve_by_hash_until_cleared_and_are_scoped,
            invites_replace_and_members_see_private_projects,
            blocks_are_scoped_by_org_and_project_and_paged_in_creation_order,
            block_updates_compare_and_set_with_one_winner,
            block_positions_are_all_or_nothing,
            block_revisions_record_agent_writes_and_restore,
            files_org_root_is_made_once_and_lists_are_scoped_and_ordered,
            files_moves_refuse_cycles_and_carry_the_project,
            files_trash_takes_the_subtree_and_purge_releases_blobs,
            files_pending_uploads_complete_once_with_the_declared_size,
            tenant_isolation,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_tests {
    ($harness:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let test: $crate::testing::ContractTest =
                    |store| ::std::boxed::Box::pin($crate::testing::$name(store));
                ($harness)(test).await;
            }
        )+
    };
}

// --- fixtures -----------------------------------------------------------------

/// Names and a time base for one test run.
struct Ctx {
    /// A random fragment: emails and slugs never collide across runs.
    tag: String,
    /// Now, truncated to what the stores keep (milliseconds).
    t0: DateTime<Utc>,
}

impl Ctx {
    fn new() -> Self {
        let simple = new_id().simple().to_string();
        // The tail of a v7 id is random; its head is the clock.
        Ctx {
            tag: simple[simple.len() - 10..].to_string(),
            t0: from_millis(to_millis(Utc::now())),
        }
    }

    /// `t0` plus `secs` seconds.
    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.t0 + Duration::seconds(secs)
    }

    fn email(&self, label: &str) -> String {
        format!("{label}-{}@example.test", self.tag)
    }

    fn slug(&self, label: &str) -> String {
        format!("{label}-{}", self.tag)
    }

    fn new_user(&self, label: &str) -> NewUser {
        NewUser {
            id: new_id(),
            email: self.email(label),
            name: format!("User {label}"),
            password_hash: format!("$argon2id$fake${label}"),
            created_at: self.t0,
        }
    }

    fn new_org(&self, label: &str) -> NewOrg {
        let id = new_id();
        NewOrg {
            default_agent: crate::agents::ala(id, self.t0),
            id,
            slug: self.slug(label),
            name: format!("Org {label}"),
            default_workspace_id: new_id(),
            created_at: self.t0,
        }
    }

    fn new_key(&self, user: Uuid, label: &str, secs: i64) -> NewApiKey {
        NewApiKey {
            id: new_id(),
            user_id: user,
            name: format!("key {label}"),
            prefix: format!("alm_{label}"),
            key_hash: format!("hash-{}-{label}-{}", self.tag, new_id().simple()),
            scopes: vec!["agents:read".into(), "agents:write".into()],
            created_via: KeyOrigin::Dashboard,
            expires_at: None,
            created_at: self.at(secs),
        }
    }

    fn session(&self, user: Uuid) -> BrowserSession {
        BrowserSession {
            id: new_id(),
            user_id: user,
            current_org_id: None,
            active_workspace_id: None,
            csrf_token: format!("csrf-{}", new_id().simple()),
            auth_time: self.t0,
            step_up_at: None,
            amr: vec!["pwd".into()],
            ip: "203.0.113.7".into(),
            user_agent: "contract-test/1".into(),
            last_seen_at: self.t0,
            expires_at: self.at(3600),
        }
    }

    fn event(&self, kind: &str, secs: i64, actor: Option<Uuid>) -> AuditEvent {
        AuditEvent {
            id: new_id(),
            kind: kind.into(),
            actor_kind: "user".into(),
            actor_user_id: actor,
            actor_key_id: None,
            ip: "198.51.100.1".into(),
            target_kind: "org".into(),
            target_id: self.tag.clone(),
            data: json!({ "kind": kind, "n": secs, "nested": { "ok": true } }),
            created_at: self.at(secs),
        }
    }
}

/// Unwraps a store result, naming the call that failed.
#[track_caller]
fn ok<T>(result: StoreResult<T>, what: impl Display) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected store error {e:?}"),
    }
}

#[track_caller]
fn expect_conflict<T: std::fmt::Debug>(result: StoreResult<T>, name: &str, what: impl Display) {
    match result {
        Err(StoreError::Conflict(n)) if n == name => {}
        other => panic!("{what}: expected Err(Conflict({name:?})), got {other:?}"),
    }
}

#[track_caller]
fn expect_not_found<T: std::fmt::Debug>(result: StoreResult<T>, what: impl Display) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected Err(NotFound), got {other:?}"),
    }
}

async fn make_user(store: &dyn Store, ctx: &Ctx, label: &str) -> Uuid {
    let user = ctx.new_user(label);
    ok(
        store.create_user(&user).await,
        format!("create_user({label})"),
    );
    user.id
}

/// Creates an org owned by `owner`; returns its scope and what was inserted.
async fn make_org(store: &dyn Store, ctx: &Ctx, label: &str, owner: Uuid) -> (OrgScope, NewOrg) {
    let org = ctx.new_org(label);
    ok(
        store.create_org(&org, owner).await,
        format!("create_org({label})"),
    );
    (OrgScope::new(org.id), org)
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    rows.iter().map(id).collect()
}

/// Pages through `fetch` `limit` rows at a time until a short page, checking
/// that no page is longer than asked.
async fn page_all<T, F, Fut>(
    limit: u32,
    key: impl Fn(&T) -> (i64, Uuid),
    mut fetch: F,
) -> Vec<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = StoreResult<Vec<T>>>,
{
    let mut pages = Vec::new();
    let mut after = None;
    for _ in 0..100 {
        let page = ok(fetch(PageRequest { limit, after }).await, "page");
        assert!(
            page.len() <= limit as usize,
            "a page of limit {limit} returned {} rows",
            page.len()
        );
        let done = page.len() < limit as usize;
        after = page.last().map(&key);
        pages.push(page);
        if done {
            return pages;
        }
    }
    panic!("paging with limit {limit} did not end after 100 pages: the cursor does not advance");
}

// --- users and orgs -------------------------------------------------------------

/// Needs an empty store. First-run setup creates the owner, the org, its
/// default workspace and the membership; a second run is refused and leaves
/// nothing behind.
pub async fn setup_first_owner_runs_only_once(store: &dyn Store) {
    let ctx = Ctx::new();
    assert!(
        ["sqlite", "postgres"].contains(&store.kind()),
        "kind() is {:?}",
        store.kind()
    );
    ok(store.ping().await, "ping");
    assert_eq!(
        ok(store.count_users().await, "count_users"),
        0,
        "setup_first_owner_runs_only_once needs a fresh, empty store"
    );

    let owner = ctx.new_user("owner");
    let org = ctx.new_org("first");
    ok(
        store.setup_first_owner(&owner, &org).await,
        "first setup_first_owner",
    );
    assert_eq!(
        ok(store.count_users().await, "count_users"),
        1,
        "setup creates exactly one user"
    );
    let user = ok(store.get_user(owner.id).await, "get_user").expect("setup created the owner");
    assert_eq!(user.email, owner.email);
    let stored = ok(store.get_org(org.id).await, "get_org").expect("setup created the org");
    assert_eq!(stored.slug, org.slug);
    let scope = OrgScope::new(org.id);
    assert_eq!(
        ok(store.get_role(&scope, owner.id).await, "get_role"),
        Some(Role::Owner),
        "setup makes the user the org's owner"
    );
    let spaces = ok(
        store.list_workspaces(&scope, owner.id, Role::Owner).await,
        "list_workspaces",
    );
    assert_eq!(
        ids(&spaces, |w| w.id),
        vec![org.default_workspace_id],
        "setup creates the default workspace with the id it was given"
    );
    assert!(
        spaces[0].is_default,
        "the setup workspace is the default one"
    );

    let second_user = ctx.new_user("intruder");
    let second_org = ctx.new_org("second");
    expect_conflict(
        store.setup_first_owner(&second_user, &second_org).await,
        "already_set_up",
        "second setup_first_owner",
    );
    assert_eq!(
        ok(store.count_users().await, "count_users"),
        1,
        "a refused setup must not create its user"
    );
    assert!(
        ok(
            store.find_user_by_email(&second_user.email).await,
            "find_user_by_email"
        )
        .is_none(),
        "a refused setup must not create its user"
    );
    assert!(
        ok(
            store.get_org_by_slug(&second_org.slug).await,
            "get_org_by_slug"
        )
        .is_none(),
        "a refused setup must not create its org"
    );
}

/// Needs an empty store. Four first runs at once: one wins, the others get
/// `Conflict("already_set_up")`, and only the winner's rows exist.
pub async fn setup_first_owner_admits_one_of_concurrent_runs(store: &dyn Store) {
    let ctx = Ctx::new();
    assert_eq!(
        ok(store.count_users().await, "count_users"),
        0,
        "setup_first_owner_admits_one_of_concurrent_runs needs a fresh, empty store"
    );
    let runs: Vec<(NewUser, NewOrg)> = (0..4)
        .map(|i| {
            (
                ctx.new_user(&format!("owner{i}")),
                ctx.new_org(&format!("first{i}")),
            )
        })
        .collect();
    let setup = |i: usize| store.setup_first_owner(&runs[i].0, &runs[i].1);
    let (r0, r1, r2, r3) = tokio::join!(setup(0), setup(1), setup(2), setup(3));
    let results = [r0, r1, r2, r3];
    let winners: Vec<usize> = (0..4).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent setup_first_owner must win: {results:?}"
    );
    for (i, r) in results.iter().enumerate() {
        if let Err(e) = r {
            assert!(
                matches!(e, StoreError::Conflict("already_set_up")),
                "losing setup #{i} must get Conflict(\"already_set_up\"), got {e:?}"
            );
        }
    }
    assert_eq!(
        ok(store.count_users().await, "count_users"),
        1,
        "concurrent setups must leave exactly one user"
    );
    let winner = winners[0];
    for (i, (user, org)) in runs.iter().enumerate() {
        let has_org = ok(store.get_org_by_slug(&org.slug).await, "get_org_by_slug").is_some();
        let has_user = ok(store.get_user(user.id).await, "get_user").is_some();
        assert_eq!(
            (has_user, has_org),
            (i == winner, i == winner),
            "setup #{i}: only the winner's user and org exist"
        );
    }
}

/// Emails are stored case-folded and unique regardless of case.
pub async fn users_are_unique_by_case_folded_email(store: &dyn Store) {
    let ctx = Ctx::new();
    let before = ok(store.count_users().await, "count_users");
    let mut user = ctx.new_user("Alice");
    user.email = user.email.to_uppercase();
    ok(store.create_user(&user).await, "create_user");
    assert_eq!(ok(store.count_users().await, "count_users"), before + 1);

    let stored =
        ok(store.get_user(user.id).await, "get_user").expect("get_user finds the new user");
    assert_eq!(
        stored.email,
        user.email.to_lowercase(),
        "the email is stored case-folded"
    );
    assert_eq!(stored.name, user.name);
    assert_eq!(stored.created_at, user.created_at);
    assert_eq!(
        stored.updated_at, user.created_at,
        "updated_at starts at created_at"
    );
    assert_eq!(stored.preferences, UserPreferences::default());

    for spelling in [
        user.email.clone(),
        user.email.to_lowercase(),
        ctx.email("aLiCe"),
    ] {
        let found = ok(
            store.find_user_by_email(&spelling).await,
            "find_user_by_email",
        )
        .unwrap_or_else(|| panic!("find_user_by_email({spelling}) must ignore case"));
        assert_eq!(found.user.id, user.id);
        assert_eq!(found.password_hash, user.password_hash);
    }

    let mut twin = ctx.new_user("alice");
    twin.email = ctx.email("ALICE");
    expect_conflict(
        store.create_user(&twin).await,
        "user_email",
        "create_user with the same email in another case",
    );
    assert!(
        ok(store.get_user(twin.id).await, "get_user").is_none(),
        "the refused user must not exist"
    );
    assert!(
        ok(
            store.find_user_by_email(&ctx.email("nobody")).await,
            "find_user_by_email"
        )
        .is_none(),
        "an unknown email finds nothing"
    );
}

pub async fn passwords_change_and_unknown_users_are_not_found(store: &dyn Store) {
    let ctx = Ctx::new();
    let user = ctx.new_user("pw");
    ok(store.create_user(&user).await, "create_user");
    assert_eq!(
        ok(store.get_password_hash(user.id).await, "get_password_hash").as_deref(),
        Some(user.password_hash.as_str())
    );
    let later = ctx.at(60);
    ok(
        store
            .set_password_hash(user.id, "$argon2id$new", later)
            .await,
        "set_password_hash",
    );
    assert_eq!(
        ok(store.get_password_hash(user.id).await, "get_password_hash").as_deref(),
        Some("$argon2id$new"),
        "set_password_hash replaces the hash"
    );
    let creds = ok(
        store.find_user_by_email(&user.email).await,
        "find_user_by_email",
    )
    .expect("user exists");
    assert_eq!(creds.password_hash, "$argon2id$new");
    assert_eq!(
        creds.user.updated_at, later,
        "set_password_hash moves updated_at"
    );
    assert_eq!(
        creds.user.created_at, user.created_at,
        "created_at never moves"
    );

    let ghost = new_id();
    expect_not_found(
        store.set_password_hash(ghost, "$argon2id$x", later).await,
        "set_password_hash for an unknown user",
    );
    assert!(ok(store.get_password_hash(ghost).await, "get_password_hash").is_none());
    assert!(ok(store.get_user(ghost).await, "get_user").is_none());
    assert!(ok(store.get_org(ghost).await, "get_org").is_none());
    assert!(
        ok(
            store.get_org_by_slug(&ctx.slug("none")).await,
            "get_org_by_slug"
        )
        .is_none()
    );
    assert!(ok(store.list_user_orgs(ghost).await, "list_user_orgs").is_empty());
}

/// An org comes with its "General" workspace and its owner; a taken slug is a
/// conflict that leaves no half-made org behind.
pub async fn create_org_makes_default_workspace_and_owner_membership(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "acme", owner).await;

    let stored = ok(store.get_org(org.id).await, "get_org").expect("get_org finds the new org");
    assert_eq!(stored.id, org.id);
    assert_eq!(stored.slug, org.slug);
    assert_eq!(stored.name, org.name);
    assert_eq!(stored.settings, OrgSettings::default());
    assert_eq!(stored.created_at, org.created_at);
    assert_eq!(
        ok(store.get_org_by_slug(&org.slug).await, "get_org_by_slug"),
        Some(stored.clone()),
        "get_org_by_slug returns the same org"
    );

    assert_eq!(
        ok(store.get_role(&scope, owner).await, "get_role"),
        Some(Role::Owner)
    );
    let members = ok(store.list_members(&scope).await, "list_members");
    assert_eq!(
        members.len(),
        1,
        "the new org has exactly its owner: {members:?}"
    );
    assert_eq!(members[0].user_id, owner);
    assert_eq!(members[0].role, Role::Owner);
    assert_eq!(members[0].email, ctx.email("owner"));

    let spaces = ok(
        store.list_workspaces(&scope, owner, Role::Owner).await,
        "list_workspaces",
    );
    assert_eq!(spaces.len(), 1, "a new org has one workspace: {spaces:?}");
    let general = &spaces[0];
    assert_eq!(general.id, org.default_workspace_id);
    assert_eq!(general.org_id, org.id);
    assert_eq!(general.name, "General");
    assert_eq!(general.slug, "general");
    assert!(general.is_default);
    assert_eq!(
        general.member_count, 1,
        "the default workspace counts the owner"
    );

    let other = make_user(store, &ctx, "other").await;
    let mut taken = ctx.new_org("acme");
    taken.name = "Another Acme".into();
    expect_conflict(
        store.create_org(&taken, other).await,
        "org_slug",
        "create_org with a taken slug",
    );
    assert!(
        ok(store.get_org(taken.id).await, "get_org").is_none(),
        "the refused org must not exist"
    );
    assert!(
        ok(store.list_user_orgs(other).await, "list_user_orgs").is_empty(),
        "a refused create_org must not leave a membership"
    );
    let refused_scope = OrgScope::new(taken.id);
    assert!(
        ok(
            store
                .list_workspaces(&refused_scope, other, Role::Owner)
                .await,
            "list_workspaces"
        )
        .is_empty(),
        "a refused create_org must not leave a workspace"
    );
    assert_eq!(
        ok(store.get_org_by_slug(&org.slug).await, "get_org_by_slug").map(|o| o.id),
        Some(org.id),
        "the slug still names the first org"
    );

    // The same workspace slug in another org is fine.
    let (_, second) = make_org(store, &ctx, "second", other).await;
    assert_ne!(second.id, org.id);
}

pub async fn list_user_orgs_orders_by_slug_with_roles(store: &dyn Store) {
    let ctx = Ctx::new();
    let user = make_user(store, &ctx, "user").await;
    let boss = make_user(store, &ctx, "boss").await;
    // Created out of slug order, with three different roles.
    let (_, b) = make_org(store, &ctx, "b", user).await;
    let (c_scope, c) = make_org(store, &ctx, "c", boss).await;
    let (a_scope, a) = make_org(store, &ctx, "a", boss).await;
    let (_, _unrelated) = make_org(store, &ctx, "aa", boss).await;
    ok(
        store
            .add_member(&c_scope, user, Role::Member, ctx.at(1))
            .await,
        "add_member(c)",
    );
    ok(
        store
            .add_member(&a_scope, user, Role::Admin, ctx.at(2))
            .await,
        "add_member(a)",
    );

    let orgs = ok(store.list_user_orgs(user).await, "list_user_orgs");
    let got: Vec<(&str, Role)> = orgs.iter().map(|m| (m.org.slug.as_str(), m.role)).collect();
    assert_eq!(
        got,
        vec![
            (a.slug.as_str(), Role::Admin),
            (b.slug.as_str(), Role::Owner),
            (c.slug.as_str(), Role::Member),
        ],
        "list_user_orgs lists only the user's orgs, by slug, with their roles"
    );
    assert_eq!(orgs[0].org.id, a.id);
    assert_eq!(orgs[0].org.name, a.name);
    assert_eq!(
        ok(store.list_user_orgs(boss).await, "list_user_orgs").len(),
        3
    );
}

/// add_member refuses a second membership; remove_member removes the role
/// everywhere it is read, including the role a key grant carries.
pub async fn members_are_added_once_and_removal_drops_key_role(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let bob = make_user(store, &ctx, "bob").await;
    let carol = make_user(store, &ctx, "carol").await;
    let (scope, org) = make_org(store, &ctx, "team", owner).await;
    // Bob also belongs to another org, where he stays an admin.
    let (elsewhere, elsewhere_org) = make_org(store, &ctx, "team-elsewhere", owner).await;
    ok(
        store
            .add_member(&elsewhere, bob, Role::Admin, ctx.at(1))
            .await,
        "add_member(bob elsewhere)",
    );

    ok(
        store.add_member(&scope, bob, Role::Member, ctx.at(1)).await,
        "add_member(bob)",
    );
    ok(
        store
            .add_member(&scope, carol, Role::Admin, ctx.at(2))
            .await,
        "add_member(carol)",
    );
    expect_conflict(
        store.add_member(&scope, bob, Role::Admin, ctx.at(3)).await,
        "membership",
        "add_member twice",
    );
    expect_conflict(
        store
            .add_member(&scope, owner, Role::Member, ctx.at(3))
            .await,
        "membership",
        "add_member for the owner",
    );
    assert_eq!(
        ok(store.get_role(&scope, bob).await, "get_role"),
        Some(Role::Member),
        "a refused add_member must not change the role"
    );
    assert_eq!(
        ok(store.get_role(&scope, carol).await, "get_role"),
        Some(Role::Admin)
    );
    assert_eq!(
        ok(store.get_role(&scope, owner).await, "get_role"),
        Some(Role::Owner)
    );

    let members = ok(store.list_members(&scope).await, "list_members");
    let got: Vec<(Uuid, Role, String)> = members
        .iter()
        .map(|m| (m.user_id, m.role, m.email.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (bob, Role::Member, ctx.email("bob")),
            (carol, Role::Admin, ctx.email("carol")),
            (owner, Role::Owner, ctx.email("owner")),
        ],
        "list_members lists every member by email"
    );
    assert_eq!(members[0].created_at, ctx.at(1));
    assert_eq!(members[0].name, "User bob");

    let key = ctx.new_key(bob, "bob", 5);
    ok(store.create_api_key(&scope, &key).await, "create_api_key");
    let grant = ok(
        store.find_key_grant_by_hash(&key.key_hash).await,
        "find_key_grant_by_hash",
    )
    .expect("grant");
    assert_eq!(
        grant.role,
        Some(Role::Member),
        "a member's key carries the member's role"
    );

    ok(store.remove_member(&scope, bob).await, "remove_member(bob)");
    assert_eq!(
        ok(store.get_role(&scope, bob).await, "get_role"),
        None,
        "a removed member has no role"
    );
    let grant = ok(
        store.find_key_grant_by_hash(&key.key_hash).await,
        "find_key_grant_by_hash",
    )
    .expect("the key row outlives the membership");
    assert_eq!(
        grant.role, None,
        "a removed member's key grant has no role (not his role in another org)"
    );
    assert_eq!(grant.org_slug, org.slug);
    let left: Vec<Uuid> = ok(store.list_user_orgs(bob).await, "list_user_orgs")
        .iter()
        .map(|m| m.org.id)
        .collect();
    assert_eq!(
        left,
        vec![elsewhere_org.id],
        "a removed member no longer lists the org, and keeps his other orgs"
    );
    assert_eq!(
        ok(store.get_role(&elsewhere, bob).await, "get_role"),
        Some(Role::Admin),
        "remove_member leaves the user's other memberships alone"
    );
    assert!(
        !ids(&ok(store.list_members(&scope).await, "list_members"), |m| m
            .user_id)
        .contains(&bob),
        "list_members no longer lists the removed member"
    );
    let general = ok(
        store
            .get_workspace(&scope, owner, Role::Owner, org.default_workspace_id)
            .await,
        "get_workspace",
    )
    .expect("default workspace");
    assert_eq!(
        general.member_count, 2,
        "the default workspace counts the remaining members"
    );
    expect_not_found(
        store.remove_member(&scope, bob).await,
        "remove_member twice",
    );
    expect_not_found(
        store.remove_member(&scope, new_id()).await,
        "remove_member of a stranger",
    );

    // A removed member can be added back with a new role.
    ok(
        store.add_member(&scope, bob, Role::Admin, ctx.at(9)).await,
        "add_member after removal",
    );
    assert_eq!(
        ok(store.get_role(&scope, bob).await, "get_role"),
        Some(Role::Admin)
    );
}

// --- workspaces -------------------------------------------------------------------

pub async fn workspaces_default_first_and_scoped_to_the_org(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let member = make_user(store, &ctx, "member").await;
    let admin = make_user(store, &ctx, "admin").await;
    let (scope, org) = make_org(store, &ctx, "ws", owner).await;
    let (other_scope, other) = make_org(store, &ctx, "ws-other", owner).await;

    ok(
        store
            .add_member(&scope, member, Role::Member, ctx.at(1))
            .await,
        "add_member",
    );
    ok(
        store
            .add_member(&scope, admin, Role::Admin, ctx.at(2))
            .await,
        "add_member",
    );

    for (user, role) in [
        (member, Role::Member),
        (admin, Role::Admin),
        (owner, Role::Owner),
    ] {
        let spaces = ok(
            store.list_workspaces(&scope, user, role).await,
            "list_workspaces",
        );
        assert!(
            !spaces.is_empty(),
            "{role:?} sees at least the default workspace"
        );
        assert!(
            spaces[0].is_default,
            "{role:?}: the default workspace comes first: {spaces:?}"
        );
        assert_eq!(spaces[0].id, org.default_workspace_id);
        assert_eq!(
            spaces[0].member_count, 3,
            "the default workspace counts every org member"
        );
        assert!(
            spaces.iter().all(|w| w.org_id == org.id),
            "{role:?}: list_workspaces leaks another org's workspace: {spaces:?}"
        );
        assert!(
            !spaces.iter().any(|w| w.id == other.default_workspace_id),
            "{role:?} sees another org's default workspace"
        );

        let got = ok(
            store
                .get_workspace(&scope, user, role, org.default_workspace_id)
                .await,
            "get_workspace",
        )
        .unwrap_or_else(|| panic!("{role:?} can get the default workspace"));
        assert_eq!(got, spaces[0], "get_workspace and list_workspaces agree");
        assert!(
            ok(
                store
                    .get_workspace(&scope, user, role, other.default_workspace_id)
                    .await,
                "get_workspace"
            )
            .is_none(),
            "{role:?}: get_workspace with another org's workspace id must find nothing"
        );
        assert!(
            ok(
                store.get_workspace(&scope, user, role, new_id()).await,
                "get_workspace"
            )
            .is_none(),
            "get_workspace of an unknown id finds nothing"
        );
    }

    let theirs = ok(
        store
            .list_workspaces(&other_scope, owner, Role::Owner)
            .await,
        "list_workspaces",
    );
    assert_eq!(ids(&theirs, |w| w.id), vec![other.default_workspace_id]);
    assert_eq!(
        theirs[0].member_count, 1,
        "member_count counts only this org's memberships"
    );

    ok(store.remove_member(&scope, member).await, "remove_member");
    let spaces = ok(
        store.list_workspaces(&scope, owner, Role::Owner).await,
        "list_workspaces",
    );
    assert_eq!(
        spaces[0].member_count, 2,
        "member_count follows remove_member"
    );
}

// --- API keys -----------------------------------------------------------------------

pub async fn api_keys_round_trip_and_resolve_by_hash(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "keys", owner).await;

    let mut new = ctx.new_key(owner, "one", 1);
    new.created_via = KeyOrigin::Device;
    new.expires_at = Some(ctx.at(86_400));
    new.scopes = vec![
        "models:read".into(),
        "agents:run".into(),
        "audit:read".into(),
    ];
    let created = ok(store.create_api_key(&scope, &new).await, "create_api_key");
    let expected = ApiKey {
        id: new.id,
        org_id: org.id,
        user_id: owner,
        name: new.name.clone(),
        prefix: new.prefix.clone(),
        scopes: new.scopes.clone(),
        created_via: KeyOrigin::Device,
        last_used_at: None,
        expires_at: new.expires_at,
        revoked_at: None,
        active_workspace_id: None,
        created_at: new.created_at,
    };
    assert_eq!(created, expected, "create_api_key returns the stored key");
    assert_eq!(
        ok(store.get_api_key(&scope, new.id).await, "get_api_key"),
        Some(expected.clone()),
        "get_api_key returns the same key"
    );

    let grant = ok(
        store.find_key_grant_by_hash(&new.key_hash).await,
        "find_key_grant_by_hash",
    )
    .expect("find_key_grant_by_hash finds the key by its hash");
    assert_eq!(grant.key, expected);
    assert_eq!(grant.key_hash, new.key_hash);
    assert_eq!(grant.org_slug, org.slug);
    assert_eq!(grant.role, Some(Role::Owner));
    assert!(
        ok(
            store
                .find_key_grant_by_hash(&format!("{}x", new.key_hash))
                .await,
            "find_key_grant_by_hash"
        )
        .is_none(),
        "an unknown hash finds nothing"
    );
    assert!(ok(store.get_api_key(&scope, new_id()).await, "get_api_key").is_none());

    for origin in [KeyOrigin::Dashboard, KeyOrigin::AdminCli] {
        let mut k = ctx.new_key(owner, origin.as_str(), 2);
        k.created_via = origin;
        k.scopes = Vec::new();
        let got = ok(store.create_api_key(&scope, &k).await, "create_api_key");
        assert_eq!(got.created_via, origin, "created_via round-trips");
        assert!(
            got.scopes.is_empty(),
            "an empty scope list round-trips: {:?}",
            got.scopes
        );
        assert_eq!(got.expires_at, None);
    }

    let mut dup = ctx.new_key(owner, "dup", 3);
    dup.key_hash = new.key_hash.clone();
    expect_conflict(
        store.create_api_key(&scope, &dup).await,
        "api_key_hash",
        "create_api_key with a used hash",
    );
    assert!(ok(store.get_api_key(&scope, dup.id).await, "get_api_key").is_none());
}

pub async fn api_keys_list_newest_first_in_keyset_pages(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let peer = make_user(store, &ctx, "peer").await;
    let (scope, _) = make_org(store, &ctx, "paging", owner).await;
    let (other_scope, _) = make_org(store, &ctx, "paging-other", owner).await;
    ok(
        store
            .add_member(&scope, peer, Role::Member, ctx.at(0))
            .await,
        "add_member",
    );

    // Five keys with distinct times, created out of order.
    let mut mine = Vec::new();
    for secs in [3, 1, 5, 2, 4] {
        let key = ctx.new_key(owner, &format!("k{secs}"), secs * 10);
        mine.push(ok(
            store.create_api_key(&scope, &key).await,
            "create_api_key",
        ));
    }
    // Noise that must never be listed: a peer's key, a key in another org, a revoked key.
    ok(
        store
            .create_api_key(&scope, &ctx.new_key(peer, "peer", 25))
            .await,
        "create_api_key(peer)",
    );
    ok(
        store
            .create_api_key(&other_scope, &ctx.new_key(owner, "elsewhere", 35))
            .await,
        "create_api_key(other org)",
    );
    let revoked = ok(
        store
            .create_api_key(&scope, &ctx.new_key(owner, "revoked", 45))
            .await,
        "create_api_key",
    );
    ok(
        store
            .revoke_api_key(&scope, owner, revoked.id, ctx.at(46))
            .await,
        "revoke_api_key",
    );

    mine.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    let want = ids(&mine, |k| k.id);

    let all = ok(
        store
            .list_api_keys(
                &scope,
                owner,
                PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await,
        "list_api_keys",
    );
    assert_eq!(
        ids(&all, |k| k.id),
        want,
        "list_api_keys lists the user's live keys in this org, newest first"
    );
    assert_eq!(all, mine, "listed keys equal the created ones");

    let key_cursor = |k: &ApiKey| (to_millis(k.created_at), k.id);
    let pages = page_all(2, key_cursor, |page| {
        store.list_api_keys(&scope, owner, page)
    })
    .await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 1], "5 keys, 2 per page");
    let paged: Vec<Uuid> = pages.iter().flatten().map(|k| k.id).collect();
    assert_eq!(paged, want, "pages of 2 follow on without gaps or repeats");

    let one = ok(
        store
            .list_api_keys(
                &scope,
                owner,
                PageRequest {
                    limit: 1,
                    after: None,
                },
            )
            .await,
        "list_api_keys",
    );
    assert_eq!(ids(&one, |k| k.id), vec![want[0]], "limit is honoured");
    let past_end = ok(
        store
            .list_api_keys(
                &scope,
                owner,
                PageRequest {
                    limit: 10,
                    after: Some(key_cursor(&mine[4])),
                },
            )
            .await,
        "list_api_keys",
    );
    assert!(
        past_end.is_empty(),
        "nothing is older than the oldest key: {past_end:?}"
    );

    // Keys created in the same millisecond still page without loss, by id.
    let mut twins = Vec::new();
    for i in 0..3 {
        let key = ctx.new_key(peer, &format!("twin{i}"), 100);
        twins.push(ok(store.create_api_key(&scope, &key).await, "create_api_key").id);
    }
    twins.sort_by(|a, b| b.cmp(a));
    let pages = page_all(1, key_cursor, |page| {
        store.list_api_keys(&scope, peer, page)
    })
    .await;
    let paged: Vec<Uuid> = pages.iter().flatten().map(|k| k.id).collect();
    assert_eq!(
        paged.len(),
        4,
        "3 twins and the older peer key, one per page: {paged:?}"
    );
    assert_eq!(
        paged[..3],
        twins[..],
        "keys with equal created_at page by id, descending"
    );
}

pub async fn api_keys_revoke_once_and_only_own_keys(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let peer = make_user(store, &ctx, "peer").await;
    let (scope, _) = make_org(store, &ctx, "revoke", owner).await;
    let (other_scope, _) = make_org(store, &ctx, "revoke-other", owner).await;
    ok(
        store.add_member(&scope, peer, Role::Admin, ctx.at(0)).await,
        "add_member",
    );

    let new_key = ctx.new_key(owner, "mine", 1);
    let key = ok(
        store.create_api_key(&scope, &new_key).await,
        "create_api_key",
    );
    let peer_key = ok(
        store
            .create_api_key(&scope, &ctx.new_key(peer, "peer", 2))
            .await,
        "create_api_key",
    );

    expect_not_found(
        store
            .revoke_api_key(&scope, owner, peer_key.id, ctx.at(3))
            .await,
        "revoking another user's key",
    );
    let untouched =
        ok(store.get_api_key(&scope, peer_key.id).await, "get_api_key").expect("peer key");
    assert_eq!(
        untouched.revoked_at, None,
        "a refused revoke must not revoke the key"
    );

    expect_not_found(
        store
            .revoke_api_key(&other_scope, owner, key.id, ctx.at(3))
            .await,
        "revoking the key through another org's scope",
    );
    assert!(
        ok(store.get_api_key(&other_scope, key.id).await, "get_api_key").is_none(),
        "get_api_key through another org's scope must find nothing"
    );
    assert_eq!(
        ok(store.get_api_key(&scope, key.id).await, "get_api_key").and_then(|k| k.revoked_at),
        None,
        "a revoke through another org's scope must not revoke the key"
    );
    expect_not_found(
        store
            .revoke_api_key(&scope, owner, new_id(), ctx.at(3))
            .await,
        "revoking an unknown key",
    );

    let at = ctx.at(4);
    let revoked = ok(
        store.revoke_api_key(&scope, owner, key.id, at).await,
        "revoke_api_key",
    );
    assert_eq!(revoked.id, key.id);
    assert_eq!(
        revoked.revoked_at,
        Some(at),
        "revoke_api_key returns the key with revoked_at set"
    );
    assert_eq!(
        ok(store.get_api_key(&scope, key.id).await, "get_api_key").and_then(|k| k.revoked_at),
        Some(at),
        "get_api_key still shows a revoked key, with revoked_at"
    );
    let grant = ok(
        store.find_key_grant_by_hash(&new_key.key_hash).await,
        "find_key_grant_by_hash",
    );
    assert_eq!(
        grant.and_then(|g| g.key.revoked_at),
        Some(at),
        "find_key_grant_by_hash reports revoked_at so authentication can refuse the key"
    );

    expect_conflict(
        store.revoke_api_key(&scope, owner, key.id, ctx.at(5)).await,
        "already_revoked",
        "revoking twice",
    );
    assert_eq!(
        ok(store.get_api_key(&scope, key.id).await, "get_api_key").and_then(|k| k.revoked_at),
        Some(at),
        "a second revoke must not move revoked_at"
    );
    expect_not_found(
        store.revoke_api_key(&scope, peer, key.id, ctx.at(5)).await,
        "another user revoking an already revoked key",
    );
    assert!(
        ok(
            store
                .list_api_keys(
                    &scope,
                    owner,
                    PageRequest {
                        limit: 10,
                        after: None
                    }
                )
                .await,
            "list_api_keys"
        )
        .is_empty(),
        "revoked keys are not listed"
    );
    assert_eq!(
        ids(
            &ok(
                store
                    .list_api_keys(
                        &scope,
                        peer,
                        PageRequest {
                            limit: 10,
                            after: None
                        }
                    )
                    .await,
                "list_api_keys"
            ),
            |k| k.id
        ),
        vec![peer_key.id],
        "the peer's key is still listed"
    );
}

pub async fn api_keys_touch_and_workspace_binding(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "touch", owner).await;
    let (other_scope, _) = make_org(store, &ctx, "touch-other", owner).await;
    let new = ctx.new_key(owner, "used", 1);
    let key = ok(store.create_api_key(&scope, &new).await, "create_api_key");
    let bystander = ok(
        store
            .create_api_key(&scope, &ctx.new_key(owner, "idle", 2))
            .await,
        "create_api_key",
    );
    assert_eq!(key.last_used_at, None, "a new key was never used");

    ok(
        store.touch_api_key(key.id, ctx.at(10)).await,
        "touch_api_key",
    );
    let got = ok(store.get_api_key(&scope, key.id).await, "get_api_key").expect("key");
    assert_eq!(
        got.last_used_at,
        Some(ctx.at(10)),
        "touch_api_key sets last_used_at"
    );
    ok(
        store.touch_api_key(key.id, ctx.at(20)).await,
        "touch_api_key",
    );
    let grant = ok(
        store.find_key_grant_by_hash(&new.key_hash).await,
        "find_key_grant_by_hash",
    )
    .expect("grant");
    assert_eq!(
        grant.key.last_used_at,
        Some(ctx.at(20)),
        "touch_api_key moves last_used_at"
    );
    assert_eq!(
        ok(store.get_api_key(&scope, bystander.id).await, "get_api_key")
            .and_then(|k| k.last_used_at),
        None,
        "touch_api_key touches only its key"
    );

    ok(
        store
            .set_key_workspace(&scope, key.id, org.default_workspace_id)
            .await,
        "set_key_workspace",
    );
    assert_eq!(
        ok(store.get_api_key(&scope, key.id).await, "get_api_key")
            .and_then(|k| k.active_workspace_id),
        Some(org.default_workspace_id),
        "set_key_workspace binds the key to the workspace"
    );
    let grant = ok(
        store.find_key_grant_by_hash(&new.key_hash).await,
        "find_key_grant_by_hash",
    )
    .expect("grant");
    assert_eq!(
        grant.key.active_workspace_id,
        Some(org.default_workspace_id)
    );

    let elsewhere = new_id();
    expect_not_found(
        store
            .set_key_workspace(&other_scope, key.id, elsewhere)
            .await,
        "set_key_workspace through another org's scope",
    );
    expect_not_found(
        store
            .set_key_workspace(&scope, new_id(), org.default_workspace_id)
            .await,
        "set_key_workspace of an unknown key",
    );
    assert_eq!(
        ok(store.get_api_key(&scope, key.id).await, "get_api_key")
            .and_then(|k| k.active_workspace_id),
        Some(org.default_workspace_id),
        "a refused set_key_workspace must not change the binding"
    );
}

// --- browser sessions -------------------------------------------------------------------

#[track_caller]
fn assert_session(got: &BrowserSession, want: &BrowserSession, what: &str) {
    let fields = |s: &BrowserSession| {
        format!(
            "id={} user={} org={:?} ws={:?} csrf={} auth={} step_up={:?} amr={:?} ip={} ua={} seen={} exp={}",
            s.id,
            s.user_id,
            s.current_org_id,
            s.active_workspace_id,
            s.csrf_token,
            s.auth_time,
            s.step_up_at,
            s.amr,
            s.ip,
            s.user_agent,
            s.last_seen_at,
            s.expires_at
        )
    };
    assert_eq!(fields(got), fields(want), "{what}");
}

pub async fn sessions_create_find_rotate_and_delete(store: &dyn Store) {
    let ctx = Ctx::new();
    let user = make_user(store, &ctx, "user").await;
    let other = make_user(store, &ctx, "other").await;
    let (_, org) = make_org(store, &ctx, "sess", user).await;
    let (_, org2) = make_org(store, &ctx, "sess2", user).await;

    let tok = |label: &str| format!("tok-{}-{label}", ctx.tag);
    let mut session = ctx.session(user);
    session.current_org_id = Some(org.id);
    ok(
        store.create_session(&tok("a"), &session).await,
        "create_session",
    );
    let found = ok(
        store.find_session_by_hash(&tok("a")).await,
        "find_session_by_hash",
    )
    .expect("find_session_by_hash finds the new session");
    assert_session(&found, &session, "a session round-trips");
    assert!(
        ok(
            store.find_session_by_hash(&tok("nope")).await,
            "find_session_by_hash"
        )
        .is_none(),
        "an unknown token finds nothing"
    );
    expect_conflict(
        store.create_session(&tok("a"), &ctx.session(other)).await,
        "session_token",
        "create_session with a used token hash",
    );

    // Step-up rotates the token: the old cookie stops working.
    let step_up = ctx.at(30);
    let amr = vec!["pwd".to_string(), "otp".to_string()];
    ok(
        store
            .rotate_session(session.id, &tok("b"), step_up, &amr)
            .await,
        "rotate_session",
    );
    assert!(
        ok(
            store.find_session_by_hash(&tok("a")).await,
            "find_session_by_hash"
        )
        .is_none(),
        "after rotate_session the old token hash must not find the session"
    );
    let rotated = ok(
        store.find_session_by_hash(&tok("b")).await,
        "find_session_by_hash",
    )
    .expect("after rotate_session the new token hash finds the session");
    assert_eq!(rotated.id, session.id, "rotation keeps the session row");
    assert_eq!(
        rotated.step_up_at,
        Some(step_up),
        "rotate_session records step_up_at"
    );
    assert_eq!(rotated.amr, amr, "rotate_session records the amr");
    assert_eq!(
        rotated.auth_time, session.auth_time,
        "rotation does not move auth_time"
    );
    assert_eq!(rotated.csrf_token, session.csrf_token);
    assert_eq!(rotated.current_org_id, Some(org.id));
    expect_not_found(
        store
            .rotate_session(new_id(), &tok("c"), step_up, &amr)
            .await,
        "rotate_session of an unknown session",
    );

    ok(
        store
            .set_session_context(session.id, Some(org2.id), Some(org2.default_workspace_id))
            .await,
        "set_session_context",
    );
    let s = ok(
        store.find_session_by_hash(&tok("b")).await,
        "find_session_by_hash",
    )
    .expect("session");
    assert_eq!(
        s.current_org_id,
        Some(org2.id),
        "set_session_context sets the org"
    );
    assert_eq!(
        s.active_workspace_id,
        Some(org2.default_workspace_id),
        "set_session_context sets the workspace"
    );
    ok(
        store
            .set_session_context(session.id, Some(org.id), None)
            .await,
        "set_session_context",
    );
    let s = ok(
        store.find_session_by_hash(&tok("b")).await,
        "find_session_by_hash",
    )
    .expect("session");
    assert_eq!(
        s.current_org_id,
        Some(org.id),
        "set_session_context switches the org"
    );
    assert_eq!(
        s.active_workspace_id, None,
        "set_session_context clears the workspace"
    );

    ok(
        store.touch_session(session.id, ctx.at(90)).await,
        "touch_session",
    );
    let s = ok(
        store.find_session_by_hash(&tok("b")).await,
        "find_session_by_hash",
    )
    .expect("session");
    assert_eq!(
        s.last_seen_at,
        ctx.at(90),
        "touch_session moves last_seen_at"
    );
    assert_eq!(
        s.expires_at, session.expires_at,
        "touch_session does not move expires_at"
    );

    // Sign out everywhere else.
    let second = ctx.session(user);
    let third = ctx.session(user);
    let theirs = ctx.session(other);
    ok(
        store.create_session(&tok("second"), &second).await,
        "create_session",
    );
    ok(
        store.create_session(&tok("third"), &third).await,
        "create_session",
    );
    ok(
        store.create_session(&tok("theirs"), &theirs).await,
        "create_session",
    );
    assert_eq!(
        ok(
            store.delete_user_sessions(user, Some(session.id)).await,
            "delete_user_sessions"
        ),
        2,
        "delete_user_sessions(except) deletes the user's other sessions"
    );
    assert!(
        ok(
            store.find_session_by_hash(&tok("b")).await,
            "find_session_by_hash"
        )
        .is_some(),
        "delete_user_sessions keeps the excepted session"
    );
    for gone in ["second", "third"] {
        assert!(
            ok(
                store.find_session_by_hash(&tok(gone)).await,
                "find_session_by_hash"
            )
            .is_none(),
            "delete_user_sessions deletes session {gone}"
        );
    }
    assert!(
        ok(
            store.find_session_by_hash(&tok("theirs")).await,
            "find_session_by_hash"
        )
        .is_some(),
        "delete_user_sessions must not touch another user's session"
    );
    assert_eq!(
        ok(
            store.delete_user_sessions(user, None).await,
            "delete_user_sessions"
        ),
        1,
        "delete_user_sessions(None) deletes all the user's sessions"
    );
    assert!(
        ok(
            store.find_session_by_hash(&tok("b")).await,
            "find_session_by_hash"
        )
        .is_none()
    );

    ok(store.delete_session(theirs.id).await, "delete_session");
    assert!(
        ok(
            store.find_session_by_hash(&tok("theirs")).await,
            "find_session_by_hash"
        )
        .is_none(),
        "delete_session deletes the session"
    );
    ok(
        store.delete_session(theirs.id).await,
        "delete_session of a deleted session",
    );
    assert_eq!(
        ok(
            store.delete_user_sessions(other, None).await,
            "delete_user_sessions"
        ),
        0
    );
}

// --- second factors -----------------------------------------------------------------

pub async fn totp_pending_enable_steps_and_recovery_codes(store: &dyn Store) {
    let ctx = Ctx::new();
    let user = make_user(store, &ctx, "totp").await;
    let other = make_user(store, &ctx, "other").await;
    assert!(
        ok(store.get_totp(user).await, "get_totp").is_none(),
        "no TOTP before enrolment"
    );
    assert!(
        store
            .enable_totp(user, &["x".to_string()], ctx.at(1))
            .await
            .is_err(),
        "enable_totp without a pending secret must fail"
    );
    assert_eq!(
        ok(
            store.recovery_codes_remaining(user).await,
            "recovery_codes_remaining"
        ),
        0
    );

    ok(
        store.set_totp_pending(user, "sealed-1").await,
        "set_totp_pending",
    );
    let t = ok(store.get_totp(user).await, "get_totp").expect("pending TOTP");
    assert_eq!(
        (t.secret_enc.as_str(), t.enabled, t.last_step),
        ("sealed-1", false, None)
    );
    ok(
        store.set_totp_pending(user, "sealed-2").await,
        "set_totp_pending again",
    );
    let t = ok(store.get_totp(user).await, "get_totp").expect("pending TOTP");
    assert_eq!(
        t.secret_enc, "sealed-2",
        "a new pending secret replaces the pending one"
    );
    assert!(!t.enabled);

    // Confirming reads a code first, then enables.
    assert!(
        ok(
            store.accept_totp_step(user, 1_000).await,
            "accept_totp_step"
        ),
        "the first step is accepted"
    );
    let codes: Vec<String> = (0..3).map(|i| format!("mac-{}-{i}", ctx.tag)).collect();
    ok(
        store.enable_totp(user, &codes, ctx.at(2)).await,
        "enable_totp",
    );
    let t = ok(store.get_totp(user).await, "get_totp").expect("enabled TOTP");
    assert!(t.enabled, "enable_totp enables");
    assert_eq!(t.secret_enc, "sealed-2");
    assert_eq!(t.last_step, Some(1_000));
    assert_eq!(
        ok(
            store.recovery_codes_remaining(user).await,
            "recovery_codes_remaining"
        ),
        3
    );

    ok(
        store.set_totp_pending(user, "sealed-evil").await,
        "set_totp_pending while enabled",
    );
    let t = ok(store.get_totp(user).await, "get_totp").expect("enabled TOTP");
    assert_eq!(
        (t.secret_enc.as_str(), t.enabled),
        ("sealed-2", true),
        "set_totp_pending must not replace an enabled secret"
    );

    // Replay guard: only strictly newer steps pass.
    let steps = [
        (1_000, false, "the same step twice"),
        (999, false, "an older step"),
        (1_001, true, "a newer step"),
        (1_001, false, "the newer step replayed"),
        (1_000, false, "an older step after a newer one"),
        (1_005, true, "a step further ahead"),
    ];
    for (step, accepted, what) in steps {
        assert_eq!(
            ok(store.accept_totp_step(user, step).await, "accept_totp_step"),
            accepted,
            "accept_totp_step({step}): {what}"
        );
    }
    assert_eq!(
        ok(store.get_totp(user).await, "get_totp").and_then(|t| t.last_step),
        Some(1_005)
    );
    assert!(
        !ok(store.accept_totp_step(other, 5).await, "accept_totp_step"),
        "a user without TOTP has no step to accept"
    );

    // Recovery codes work once each, and only for their user.
    assert!(
        !ok(
            store.use_recovery_code(other, &codes[0], ctx.at(3)).await,
            "use_recovery_code"
        ),
        "another user's recovery code must not match"
    );
    assert!(ok(
        store.use_recovery_code(user, &codes[0], ctx.at(3)).await,
        "use_recovery_code"
    ));
    assert!(
        !ok(
            store.use_recovery_code(user, &codes[0], ctx.at(4)).await,
            "use_recovery_code"
        ),
        "a recovery code works once"
    );
    assert!(
        !ok(
            store
                .use_recovery_code(user, "mac-unknown", ctx.at(4))
                .await,
            "use_recovery_code"
        ),
        "an unknown recovery code does not match"
    );
    assert_eq!(
        ok(
            store.recovery_codes_remaining(user).await,
            "recovery_codes_remaining"
        ),
        2
    );
    assert_eq!(
        ok(
            store.recovery_codes_remaining(other).await,
            "recovery_codes_remaining"
        ),
        0
    );

    ok(store.disable_totp(user).await, "disable_totp");
    assert!(
        ok(store.get_totp(user).await, "get_totp").is_none(),
        "disable_totp clears TOTP"
    );
    assert_eq!(
        ok(
            store.recovery_codes_remaining(user).await,
            "recovery_codes_remaining"
        ),
        0,
        "disable_totp clears the recovery codes"
    );
    assert!(
        !ok(
            store.use_recovery_code(user, &codes[1], ctx.at(5)).await,
            "use_recovery_code"
        ),
        "recovery codes stop working after disable_totp"
    );

    // Re-enrolling starts over, and enable_totp replaces the old codes.
    ok(
        store.set_totp_pending(user, "sealed-3").await,
        "set_totp_pending after disable",
    );
    let t = ok(store.get_totp(user).await, "get_totp").expect("pending TOTP");
    assert_eq!(
        (t.secret_enc.as_str(), t.enabled, t.last_step),
        ("sealed-3", false, None)
    );
    let fresh = vec![format!("fresh-{}", ctx.tag)];
    ok(
        store.enable_totp(user, &fresh, ctx.at(6)).await,
        "enable_totp again",
    );
    assert_eq!(
        ok(
            store.recovery_codes_remaining(user).await,
            "recovery_codes_remaining"
        ),
        1
    );
    assert!(!ok(
        store.use_recovery_code(user, &codes[2], ctx.at(7)).await,
        "use_recovery_code"
    ));
    assert!(ok(
        store.use_recovery_code(user, &fresh[0], ctx.at(7)).await,
        "use_recovery_code"
    ));
}

/// The same TOTP step or recovery code presented four times at once is
/// accepted once: the compare-and-set happens in the database.
pub async fn second_factor_replays_race_to_one_winner(store: &dyn Store) {
    let ctx = Ctx::new();
    let user = make_user(store, &ctx, "racer").await;
    ok(
        store.set_totp_pending(user, "sealed").await,
        "set_totp_pending",
    );
    let codes = vec![format!("mac-{}", ctx.tag)];
    ok(
        store.enable_totp(user, &codes, ctx.at(1)).await,
        "enable_totp",
    );

    let step = || store.accept_totp_step(user, 77);
    let (a, b, c, d) = tokio::join!(step(), step(), step(), step());
    let accepted: Vec<bool> = [a, b, c, d]
        .into_iter()
        .map(|r| ok(r, "accept_totp_step"))
        .collect();
    assert_eq!(
        accepted.iter().filter(|&&x| x).count(),
        1,
        "one TOTP step presented concurrently must be accepted exactly once: {accepted:?}"
    );

    let redeem = || store.use_recovery_code(user, &codes[0], ctx.at(2));
    let (a, b, c, d) = tokio::join!(redeem(), redeem(), redeem(), redeem());
    let used: Vec<bool> = [a, b, c, d]
        .into_iter()
        .map(|r| ok(r, "use_recovery_code"))
        .collect();
    assert_eq!(
        used.iter().filter(|&&x| x).count(),
        1,
        "one recovery code redeemed concurrently must work exactly once: {used:?}"
    );
    assert_eq!(
        ok(
            store.recovery_codes_remaining(user).await,
            "recovery_codes_remaining"
        ),
        0
    );
}

// --- audit ----------------------------------------------------------------------------

pub async fn audit_events_newest_first_scoped_and_paged(store: &dyn Store) {
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, _) = make_org(store, &ctx, "audit", owner).await;
    let (other_scope, _) = make_org(store, &ctx, "audit-other", owner).await;
    let (quiet_scope, _) = make_org(store, &ctx, "audit-quiet", owner).await;

    let mut events = Vec::new();
    for secs in [30, 10, 50, 20, 40, 60, 60] {
        let mut e = ctx.event(&format!("test.event{secs}"), secs, Some(owner));
        if secs == 20 {
            e.actor_kind = "key".into();
            e.actor_user_id = None;
            e.actor_key_id = Some(new_id());
        }
        ok(store.record_audit(&scope, &e).await, "record_audit");
        events.push(e);
    }
    let foreign = ctx.event("test.foreign", 45, Some(owner));
    ok(
        store.record_audit(&other_scope, &foreign).await,
        "record_audit(other org)",
    );

    events.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
    let all = ok(
        store
            .list_audit(
                &scope,
                PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await,
        "list_audit",
    );
    assert_eq!(
        ids(&all, |e| e.id),
        ids(&events, |e| e.id),
        "list_audit lists this org's events newest first (ties by id, descending)"
    );
    assert_eq!(all, events, "audit events round-trip field by field");

    let cursor = |e: &AuditEvent| (to_millis(e.created_at), e.id);
    let pages = page_all(2, cursor, |page| store.list_audit(&scope, page)).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 2, 1], "7 events, 2 per page");
    let paged: Vec<Uuid> = pages.iter().flatten().map(|e| e.id).collect();
    assert_eq!(
        paged,
        ids(&events, |e| e.id),
        "audit pages follow on without gaps or repeats"
    );

    assert_eq!(
        ok(
            store
                .list_audit(
                    &other_scope,
                    PageRequest {
                        limit: 100,
                        after: None
                    }
                )
                .await,
            "list_audit"
        ),
        vec![foreign],
        "another org sees only its own events"
    );
    assert!(
        ok(
            store
                .list_audit(
                    &quiet_scope,
                    PageRequest {
                        limit: 100,
                        after: None
                    }
                )
                .await,
            "list_audit"
        )
        .is_empty(),
        "an org without events sees none"
    );
}

// --- tenant isolation ------------------------------------------------------------------

/// Two orgs with one owner each: every scoped read or write through org B's
/// scope sees nothing of org A, and changes nothing there.
pub async fn agents_are_scoped_soft_deleted_and_ala_comes_with_the_org(store: &dyn Store) {
    use crate::model::{Agent, AgentRef};
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "agents", owner).await;
    let (other, _) = make_org(store, &ctx, "agents-other", owner).await;

    let ala = ok(
        store.get_agent(&scope, &AgentRef::Slug("ala".into())).await,
        "get ala",
    )
    .expect("Ala is created with the org");
    assert!(ala.is_default && ala.workspace_id.is_none() && ala.model.is_none());
    assert_eq!(ala.id, org.default_agent.id);

    let make = |slug: &str, secs: i64| Agent {
        id: new_id(),
        org_id: scope.org_id(),
        workspace_id: Some(org.default_workspace_id),
        name: slug.to_string(),
        slug: slug.to_string(),
        description: String::new(),
        avatar: String::new(),
        model: Some("dev/echo".into()),
        system_prompt: "be brief".into(),
        allowed_tools: vec!["echo".into()],
        allowed_peers: vec!["*".into()],
        allowed_connectors: vec![],
        skills: vec![],
        shared_workspace_ids: vec![],
        settings: serde_json::json!({"temperature": 0.5}),
        is_default: false,
        is_active: true,
        created_by: Some(owner),
        created_at: ctx.t0 + chrono::Duration::seconds(secs),
        updated_at: ctx.t0 + chrono::Duration::seconds(secs),
    };
    let a = make("writer", 10);
    let b = make("editor", 20);
    ok(store.create_agent(&scope, &a).await, "create a");
    ok(store.create_agent(&scope, &b).await, "create b");
    let dup = make("writer", 30);
    assert!(matches!(
        store.create_agent(&scope, &dup).await,
        Err(StoreError::Conflict("agent_slug"))
    ));
    // Another org may use the same slug.
    let mut theirs = make("writer", 30);
    theirs.org_id = other.org_id();
    theirs.workspace_id = None;
    ok(
        store.create_agent(&other, &theirs).await,
        "same slug in another org",
    );

    let got = ok(
        store.get_agent(&scope, &AgentRef::Id(a.id)).await,
        "get by id",
    )
    .expect("a");
    assert_eq!(got, a, "round trip keeps every field");
    assert!(
        ok(
            store.get_agent(&other, &AgentRef::Id(a.id)).await,
            "foreign"
        )
        .is_none()
    );

    let page = |limit| PageRequest { limit, after: None };
    let listed = ok(store.list_agents(&scope, None, page(10)).await, "list");
    let slugs: Vec<&str> = listed.iter().map(|x| x.slug.as_str()).collect();
    assert_eq!(slugs, ["editor", "writer", "ala"], "updated_at desc");
    let only_ala = ok(
        store.list_agents(&scope, Some(&[]), page(10)).await,
        "no workspaces",
    );
    assert_eq!(
        only_ala.iter().map(|x| x.slug.as_str()).collect::<Vec<_>>(),
        ["ala"]
    );
    let reach = [org.default_workspace_id];
    assert_eq!(
        ok(
            store.list_agents(&scope, Some(&reach), page(10)).await,
            "reach"
        )
        .len(),
        3
    );
    let first = ok(store.list_agents(&scope, None, page(1)).await, "page 1");
    let after = Some((crate::clock::to_millis(first[0].updated_at), first[0].id));
    let second = ok(
        store
            .list_agents(&scope, None, PageRequest { limit: 1, after })
            .await,
        "page 2",
    );
    assert_eq!(second[0].slug, "writer");

    let mut renamed = a.clone();
    renamed.name = "Writer Two".into();
    renamed.slug = "editor".into();
    assert!(matches!(
        store.update_agent(&scope, &renamed).await,
        Err(StoreError::Conflict("agent_slug"))
    ));
    renamed.slug = "writer-two".into();
    renamed.updated_at = ctx.t0 + chrono::Duration::seconds(40);
    ok(store.update_agent(&scope, &renamed).await, "update");
    assert!(matches!(
        store.update_agent(&other, &renamed).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        ok(
            store
                .get_agent(&scope, &AgentRef::Slug("writer-two".into()))
                .await,
            "by new slug"
        )
        .map(|x| x.name),
        Some("Writer Two".to_string())
    );

    assert!(matches!(
        store.delete_agent(&other, a.id, ctx.t0).await,
        Err(StoreError::NotFound)
    ));
    ok(store.delete_agent(&scope, a.id, ctx.t0).await, "delete");
    assert!(
        ok(
            store.get_agent(&scope, &AgentRef::Id(a.id)).await,
            "deleted"
        )
        .is_none()
    );
    assert!(matches!(
        store.delete_agent(&scope, a.id, ctx.t0).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        matches!(
            store.delete_agent(&scope, ala.id, ctx.t0).await,
            Err(StoreError::NotFound)
        ),
        "Ala is never deleted"
    );
    // The slug of a deleted agent is free again.
    ok(
        store.create_agent(&scope, &make("writer-two", 50)).await,
        "reuse slug",
    );
}

pub async fn chat_sessions_keep_participants_filter_and_soft_delete(store: &dyn Store) {
    use crate::model::{ChatSession, Participant, SessionFilter};
    let ctx = Ctx::new();
    let owner = make_user(store, &ctx, "owner").await;
    let (scope, org) = make_org(store, &ctx, "chat", owner).await;
    let (other, _) = make_org(store, &ctx, "chat-other", owner).await;
    let agent = org.default_agent.id;
    let make = |label: &str, secs: i64, with_agent: bool, status: &str| ChatSession {
        id: new_id(),
        org_id: scope.org_id(),
        workspace_id: org.default_workspace_id,
        project_id: None,
        agent_id: with_agent.then_some(agent),
        user_id: owner,
        label: label.into(),
        status: status.into(),
        relationship: "direct".into(),
        running_turn: None,
        metadata: serde_json::json!({"k": label}),
        message_count: 0,
        last_message_at: None,
        created_at: ctx.t0 + chrono::Duration::seconds(secs),
        updated_at: ctx.t0 + chrono::Duration::seconds(secs),
    };
    let joined = |kind: &str, id: Uuid| Participant {
        kind: kind.into(),
        id,
        joined_at: ctx.t0,
    };
    let a = make("a", 10, true, "active");
    let b = make("b", 20, false, "active");
    let c = make("c", 30, true, "archived");
    ok(
        store
            .create_chat_session(&scope, &a, &[joined("user", owner), joined("agent", agent)])
            .await,
        "create a",
    );
    ok(
        store
            .create_chat_session(&scope, &b, &[joined("user", owner)])
            .await,
        "create b",
    );
    ok(
        store
            .create_chat_session(&scope, &c, &[joined("user", owner)])
            .await,
        "create c",
    );

    assert_eq!(
        ok(store.get_chat_session(&scope, a.id).await, "get").as_ref(),
        Some(&a)
    );
    assert!(ok(store.get_chat_session(&other, a.id).await, "foreign get").is_none());
    assert_eq!(
        ok(store.list_participants(&scope, a.id).await, "participants").len(),
        2
    );
    assert!(
        ok(
            store.list_participants(&other, a.id).await,
            "foreign participants"
        )
        .is_empty()
    );

    let page = PageRequest {
        limit: 10,
        after: None,
    };
    let labels = |v: Vec<ChatSession>| v.into_iter().map(|s| s.label).collect::<Vec<_>>();
    let all = ok(
        store
            .list_chat_sessions(&scope, None, &SessionFilter::default(), page)
            .await,
        "list",
    );
    assert_eq!(labels(all), ["b", "a"], "archived hidden, updated desc");
    let by_agent = SessionFilter {
        agent_id: Some(agent),
        ..SessionFilter::default()
    };
    assert_eq!(
        labels(ok(
            store
                .list_chat_sessions(&scope, None, &by_agent, page)
                .await,
            "agent"
        )),
        ["a"]
    );
    let archived = SessionFilter {
        status: Some("archived".into()),
        include_archived: true,
        ..SessionFilter::default()
    };
    assert_eq!(
        labels(ok(
            store
                .list_chat_sessions(&scope, None, &archived, page)
                .await,
            "archived"
        )),
        ["c"]
    );
    assert!(
        ok(
            store
                .list_chat_sessions(&scope, Some(&[]), &SessionFilter::default(), page)
                .await,
            "no reach"
        )
        .is_empty()
    );
    assert!(
        ok(
            store
                .list_chat_sessions(&other, None, &SessionFilter::default(), page)
                .await,
            "other org"
        )
        .is_empty()
    );

    let mut renamed = b.clone();
    renamed.label = "b2".into();
    renamed.status = "idle".into();
    renamed.updated_at = ctx.t0 + chrono::Duration::seconds(40);
    assert!(matches!(
        store.update_chat_session(&other, &renamed).await,
        Err(StoreError::NotFound)
    ));
    ok(store.update_chat_session(&scope, &renamed).await, "update");
    assert_eq!(
        ok(store.get_chat_session(&scope, b.id).await, "reread").map(|s| (s.label, s.status)),
        Some(("b2".into(), "idle".into()))
    );

    assert!(matches!(
        store.delete_chat_session(&other, b.id, ctx.t0).await,
        Err(StoreError::NotFound)
    ));
    ok(
        store.delete_chat_session(&scope, b.id, ctx.t0).await,
        "delete",
    );
    assert!(ok(store.get_chat_session(&scope, b.id).await, "deleted").is_none());
    assert!(matches!(
        store.delete_chat_session(&scope, b.id, ctx.t0).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn tenant_isolation(store: &dyn Store) {
    let ctx = Ctx::new();
    let alice = make_user(store, &ctx, "alice").await;
    let bob = make_user(store, &ctx, "bob").await;
    let (a, org_a) = make_org(store, &ctx, "tenant-a", alice).await;
    let (b, org_b) = make_org(store, &ctx, "tenant-b", bob).await;
    let page = PageRequest {
        limit: 100,
        after: None,
    };

    let a_key_new = ctx.new_key(alice, "alice", 1);
    let a_key = ok(
        store.create_api_key(&a, &a_key_new).await,
        "create_api_key(A)",
    );
    let b_key = ok(
        store.create_api_key(&b, &ctx.new_key(bob, "bob", 1)).await,
        "create_api_key(B)",
    );
    let a_event = ctx.event("test.a", 1, Some(alice));
    ok(store.record_audit(&a, &a_event).await, "record_audit(A)");
    ok(
        store
            .record_audit(&b, &ctx.event("test.b", 1, Some(bob)))
            .await,
        "record_audit(B)",
    );

    // Reads through B's scope.
    assert_eq!(
        ok(store.get_role(&b, alice).await, "get_role"),
        None,
        "alice has no role in B"
    );
    assert_eq!(
        ids(&ok(store.list_members(&b).await, "list_members"), |m| m
            .user_id),
        vec![bob],
        "B's members are B's only"
    );
    for role in [Role::Member, Role::Admin, Role::Owner] {
        for user in [alice, bob] {
            let spaces = ok(
                store.list_workspaces(&b, user, role).await,
                "list_workspaces",
            );
            assert_eq!(
                ids(&spaces, |w| w.id),
                vec![org_b.default_workspace_id],
                "list_workspaces through B's scope lists B's workspaces only ({role:?})"
            );
            assert!(
                ok(
                    store
                        .get_workspace(&b, user, role, org_a.default_workspace_id)
                        .await,
                    "get_workspace"
                )
                .is_none(),
                "get_workspace through B's scope must not find A's workspace ({role:?})"
            );
        }
    }
    assert!(
        ok(store.list_api_keys(&b, alice, page).await, "list_api_keys").is_empty(),
        "list_api_keys through B's scope must not list alice's A keys"
    );
    assert!(
        ok(store.get_api_key(&b, a_key.id).await, "get_api_key").is_none(),
        "get_api_key through B's scope must not find A's key"
    );
    let b_audit = ok(store.list_audit(&b, page).await, "list_audit");
    assert_eq!(
        b_audit.len(),
        1,
        "B's audit log holds B's event only: {b_audit:?}"
    );
    assert_ne!(b_audit[0].id, a_event.id);

    // Writes through B's scope.
    expect_not_found(
        store.revoke_api_key(&b, alice, a_key.id, ctx.at(2)).await,
        "revoke_api_key through B's scope",
    );
    expect_not_found(
        store
            .set_key_workspace(&b, a_key.id, org_b.default_workspace_id)
            .await,
        "set_key_workspace through B's scope",
    );
    expect_not_found(
        store.remove_member(&b, alice).await,
        "remove_member of alice through B's scope",
    );
    ok(
        store.add_member(&b, alice, Role::Member, ctx.at(3)).await,
        "add_member(alice to B)",
    );

    // A is unchanged.
    assert_eq!(
        ok(store.get_role(&a, alice).await, "get_role"),
        Some(Role::Owner)
    );
    assert_eq!(
        ok(store.get_role(&a, bob).await, "get_role"),
        None,
        "joining B must not grant A"
    );
    assert_eq!(
        ok(store.get_api_key(&a, a_key.id).await, "get_api_key"),
        Some(a_key.clone()),
        "A's key is untouched by writes through B's scope"
    );
    assert_eq!(
        ids(
            &ok(store.list_api_keys(&a, alice, page).await, "list_api_keys"),
            |k| k.id
        ),
        vec![a_key.id]
    );
    assert!(
        ok(store.list_api_keys(&b, alice, page).await, "list_api_keys").is_empty(),
        "membership in B does not bring alice's A keys into B"
    );
    assert!(ok(store.get_api_key(&a, b_key.id).await, "get_api_key").is_none());
    assert_eq!(
        ok(store.list_audit(&a, page).await, "list_audit"),
        vec![a_event]
    );
    let grant = ok(
        store.find_key_grant_by_hash(&a_key_new.key_hash).await,
        "find_key_grant_by_hash",
    )
    .expect("grant");
    assert_eq!(
        (grant.key.org_id, grant.org_slug.as_str(), grant.role),
        (org_a.id, org_a.slug.as_str(), Some(Role::Owner)),
        "a key grant names the key's own org and the role there, not another org's"
    );
    let a_general = ok(
        store.list_workspaces(&a, alice, Role::Owner).await,
        "list_workspaces",
    );
    assert_eq!(
        a_general[0].member_count, 1,
        "B's members are not counted in A's default workspace"
    );
}
