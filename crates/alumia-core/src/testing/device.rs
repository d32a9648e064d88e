//! Contract tests of [`DeviceStore`]: device codes, their polls, decisions
//! and the one-time exchange for a key.
//!
//! `create_device_code` deletes rows expired for over a day, store-wide;
//! every other test keeps its codes near now and uses random user codes, so
//! a shared database would do too.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::chat::join_all;
use super::{Ctx, expect_conflict, make_org, make_user, ok};
use crate::device::*;
use crate::model::{ApiKey, KeyOrigin, NewApiKey};
use crate::new_id;
use crate::scope::OrgScope;
use crate::store::{PageRequest, Store};

// --- fixtures -----------------------------------------------------------------

/// A user with two orgs: `scope` approves codes, `other` is the stranger.
struct Fixture {
    ctx: Ctx,
    user: Uuid,
    scope: OrgScope,
    other: OrgScope,
}

impl Fixture {
    async fn new(store: &dyn Store, label: &str) -> Fixture {
        let ctx = Ctx::new();
        let user = make_user(store, &ctx, label).await;
        let (scope, _) = make_org(store, &ctx, label, user).await;
        let (other, _) = make_org(store, &ctx, &format!("{label}-other"), user).await;
        Fixture {
            ctx,
            user,
            scope,
            other,
        }
    }

    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.ctx.at(secs)
    }

    /// A pending code created `secs` after t0, living 900 s, with a fresh
    /// random user code and hash.
    fn code(&self, secs: i64) -> NewDeviceCode {
        NewDeviceCode {
            id: new_id(),
            device_code_hash: format!("device-hash-{}", new_id().simple()),
            user_code: generate_user_code(),
            client_id: CLIENT_ID.into(),
            scopes: vec!["terminal".into(), "models:read".into(), "mcp:read".into()],
            device_name: Some("laptop".into()),
            request_ip: "203.0.113.9".into(),
            interval_secs: INTERVAL_SECS,
            created_at: self.at(secs),
            expires_at: self.at(secs + EXPIRES_IN_SECS),
        }
    }

    async fn create(&self, store: &dyn Store, secs: i64) -> NewDeviceCode {
        let code = self.code(secs);
        ok(store.create_device_code(&code).await, "create_device_code");
        code
    }

    fn key(&self, label: &str, secs: i64) -> NewApiKey {
        NewApiKey {
            id: new_id(),
            user_id: self.user,
            name: format!("Alumia CLI ({label})"),
            prefix: "alm_test_dev".into(),
            key_hash: format!("key-hash-{}", new_id().simple()),
            scopes: vec!["terminal".into(), "models:read".into()],
            created_via: KeyOrigin::Device,
            expires_at: None,
            created_at: self.at(secs),
        }
    }

    fn approve() -> DeviceDecision {
        DeviceDecision::Approve {
            scopes: vec!["terminal".into(), "models:read".into()],
        }
    }

    async fn approved(&self, store: &dyn Store, secs: i64) -> NewDeviceCode {
        let code = self.create(store, secs).await;
        assert!(
            ok(
                store
                    .decide_device_code(
                        &self.scope,
                        code.id,
                        self.user,
                        &Self::approve(),
                        self.at(secs + 1)
                    )
                    .await,
                "decide_device_code(approve)"
            ),
            "a fresh pending code can be approved"
        );
        code
    }

    async fn device_keys(&self, store: &dyn Store) -> Vec<ApiKey> {
        let page = PageRequest {
            limit: 100,
            after: None,
        };
        ok(
            store.list_api_keys(&self.scope, self.user, page).await,
            "list_api_keys",
        )
        .into_iter()
        .filter(|k| k.created_via == KeyOrigin::Device)
        .collect()
    }
}

async fn by_hash(store: &dyn Store, code: &NewDeviceCode) -> Option<DeviceCode> {
    ok(
        store.find_device_code_by_hash(&code.device_code_hash).await,
        "find_device_code_by_hash",
    )
}

async fn stored(store: &dyn Store, code: &NewDeviceCode) -> DeviceCode {
    by_hash(store, code)
        .await
        .unwrap_or_else(|| panic!("code {} is stored", code.id))
}

// --- create and find ----------------------------------------------------------------

pub async fn device_codes_round_trip_and_resolve_by_hash_and_user_code(store: &dyn Store) {
    let f = Fixture::new(store, "device-rt").await;
    let mut new = f.code(0);
    new.device_name = None;
    new.scopes = DEVICE_SCOPES.iter().map(|s| s.to_string()).collect();
    ok(store.create_device_code(&new).await, "create_device_code");
    let expected = DeviceCode {
        id: new.id,
        user_code: new.user_code.clone(),
        client_id: CLIENT_ID.into(),
        scopes: new.scopes.clone(),
        device_name: None,
        request_ip: new.request_ip.clone(),
        status: DeviceStatus::Pending,
        interval_secs: INTERVAL_SECS,
        last_polled_at: None,
        created_at: new.created_at,
        expires_at: new.expires_at,
        user_id: None,
        org_id: None,
        granted_scopes: Vec::new(),
        decided_at: None,
        api_key_id: None,
        exchanged_at: None,
    };
    assert_eq!(
        stored(store, &new).await,
        expected,
        "a new code is pending and belongs to nobody"
    );
    assert_eq!(
        ok(
            store
                .find_device_code_by_user_code(&new.user_code, f.at(1))
                .await,
            "find_device_code_by_user_code"
        ),
        Some(expected),
        "the user code finds the same code"
    );
    let with_name = f.create(store, 1).await;
    assert_eq!(
        stored(store, &with_name).await.device_name.as_deref(),
        Some("laptop")
    );

    let mut unknown = f.code(0);
    unknown.device_code_hash.push('x');
    assert!(
        by_hash(store, &unknown).await.is_none(),
        "an unknown hash finds nothing"
    );
    assert!(
        ok(
            store
                .find_device_code_by_user_code(&generate_user_code(), f.at(1))
                .await,
            "find_device_code_by_user_code"
        )
        .is_none_or(|c| c.id != new.id && c.id != with_name.id),
        "another user code does not find these codes"
    );
}

pub async fn device_user_codes_are_unique_among_pending_codes(store: &dyn Store) {
    let f = Fixture::new(store, "device-uniq").await;
    let first = f.create(store, 0).await;

    // The same user code while the first is pending and live: refused, nothing stored.
    let mut twin = f.code(1);
    twin.user_code = first.user_code.clone();
    expect_conflict(
        store.create_device_code(&twin).await,
        "user_code",
        "a second pending code with the same user code",
    );
    assert!(
        by_hash(store, &twin).await.is_none(),
        "the refused code is not stored"
    );

    // Once the first is decided, the user code is free again.
    assert!(ok(
        store
            .decide_device_code(&f.scope, first.id, f.user, &DeviceDecision::Deny, f.at(2))
            .await,
        "deny"
    ));
    ok(
        store.create_device_code(&twin).await,
        "create after the first was decided",
    );
    let found = ok(
        store
            .find_device_code_by_user_code(&first.user_code, f.at(3))
            .await,
        "find_device_code_by_user_code",
    )
    .expect("found");
    assert_eq!(
        found.id, twin.id,
        "the pending code wins over the decided one"
    );

    // A live pending code wins even over a newer decided one.
    let mut newer = f.code(20);
    let mut older = f.code(10);
    older.user_code = newer.user_code.clone();
    newer.created_at = f.at(20);
    ok(store.create_device_code(&newer).await, "create newer");
    assert!(ok(
        store
            .decide_device_code(&f.scope, newer.id, f.user, &DeviceDecision::Deny, f.at(21))
            .await,
        "deny newer"
    ));
    ok(
        store.create_device_code(&older).await,
        "create older (pending)",
    );
    let found = ok(
        store
            .find_device_code_by_user_code(&newer.user_code, f.at(22))
            .await,
        "find_device_code_by_user_code",
    )
    .expect("found");
    assert_eq!(
        found.id, older.id,
        "the live pending code is the one a user means"
    );
    // Past its expiry, the newest row is returned instead.
    let found = ok(
        store
            .find_device_code_by_user_code(&newer.user_code, f.at(10 + EXPIRES_IN_SECS + 1))
            .await,
        "find_device_code_by_user_code",
    )
    .expect("found");
    assert_eq!(found.id, newer.id);

    // An expired pending code does not hold its user code: it becomes `expired`.
    let stale = f.create(store, -EXPIRES_IN_SECS - 10).await;
    let mut fresh = f.code(0);
    fresh.user_code = stale.user_code.clone();
    ok(
        store.create_device_code(&fresh).await,
        "create over an expired pending code",
    );
    assert_eq!(stored(store, &stale).await.status, DeviceStatus::Expired);
    assert_eq!(stored(store, &fresh).await.status, DeviceStatus::Pending);
}

pub async fn device_codes_expired_for_a_day_are_deleted(store: &dyn Store) {
    let f = Fixture::new(store, "device-gc").await;
    let day = KEEP_EXPIRED_FOR_SECS;
    let ancient = f.create(store, -day - EXPIRES_IN_SECS - 60).await;
    let recent = f.create(store, -day - EXPIRES_IN_SECS + 60).await;
    assert!(by_hash(store, &ancient).await.is_some());
    f.create(store, 0).await;
    assert!(
        by_hash(store, &ancient).await.is_none(),
        "a code expired over a day ago is deleted when a new one is created"
    );
    assert!(
        by_hash(store, &recent).await.is_some(),
        "a code expired less than a day ago stays"
    );
}

// --- polls --------------------------------------------------------------------

pub async fn device_polls_slow_down_and_the_interval_stays_grown(store: &dyn Store) {
    let f = Fixture::new(store, "device-poll").await;
    let code = f.create(store, 0).await;
    let poll = |secs: i64| store.poll_device_code(code.id, f.at(secs), SLOW_DOWN_STEP_SECS);
    let steps = [
        // (when, outcome): the first poll is never too soon.
        (1, PollOutcome::Pending { interval_secs: 5 }),
        (3, PollOutcome::SlowDown { interval_secs: 10 }),
        // 5 s after the last poll, but the interval is 10 s now.
        (8, PollOutcome::SlowDown { interval_secs: 15 }),
        (23, PollOutcome::Pending { interval_secs: 15 }),
        // Exactly the interval is soon enough; the interval never shrinks.
        (38, PollOutcome::Pending { interval_secs: 15 }),
        (40, PollOutcome::SlowDown { interval_secs: 20 }),
    ];
    for (secs, want) in steps {
        assert_eq!(
            ok(poll(secs).await, "poll_device_code"),
            want,
            "poll at t0+{secs}s"
        );
    }
    let row = stored(store, &code).await;
    assert_eq!(
        (row.interval_secs, row.last_polled_at),
        (20, Some(f.at(40)))
    );
    assert_eq!(row.status, DeviceStatus::Pending, "polls do not decide");

    // A decided code is not polled: nothing is written.
    assert!(ok(
        store
            .decide_device_code(&f.scope, code.id, f.user, &Fixture::approve(), f.at(41))
            .await,
        "approve"
    ));
    assert_eq!(ok(poll(100).await, "poll"), PollOutcome::NotPending);
    assert_eq!(stored(store, &code).await.last_polled_at, Some(f.at(40)));
    assert_eq!(
        ok(
            store
                .poll_device_code(new_id(), f.at(1), SLOW_DOWN_STEP_SECS)
                .await,
            "poll unknown"
        ),
        PollOutcome::NotPending
    );
}

pub async fn device_concurrent_polls_are_serialized(store: &dyn Store) {
    let f = Fixture::new(store, "device-poll-race").await;
    let code = f.create(store, 0).await;
    let outcomes: Vec<PollOutcome> = join_all(
        (0..8)
            .map(|_| store.poll_device_code(code.id, f.at(1), SLOW_DOWN_STEP_SECS))
            .collect(),
    )
    .await
    .into_iter()
    .map(|r| ok(r, "concurrent poll_device_code"))
    .collect();
    let pending = outcomes
        .iter()
        .filter(|o| matches!(o, PollOutcome::Pending { .. }))
        .count();
    assert_eq!(
        pending, 1,
        "one of eight simultaneous polls is on time: {outcomes:?}"
    );
    assert_eq!(
        stored(store, &code).await.interval_secs,
        5 + 7 * SLOW_DOWN_STEP_SECS,
        "each of the seven others slowed the code down: {outcomes:?}"
    );
}

// --- decisions ----------------------------------------------------------------

pub async fn device_decisions_happen_once_and_bind_user_and_org(store: &dyn Store) {
    let f = Fixture::new(store, "device-decide").await;
    let code = f.create(store, 0).await;
    let granted = vec![
        "terminal".to_string(),
        "models:read".into(),
        "mcp:read".into(),
    ];
    let approve = DeviceDecision::Approve {
        scopes: granted.clone(),
    };
    assert!(ok(
        store
            .decide_device_code(&f.scope, code.id, f.user, &approve, f.at(10))
            .await,
        "approve"
    ));
    let row = stored(store, &code).await;
    assert_eq!(
        (
            row.status,
            row.org_id,
            row.user_id,
            row.granted_scopes.clone(),
            row.decided_at
        ),
        (
            DeviceStatus::Approved,
            Some(f.scope.org_id()),
            Some(f.user),
            granted,
            Some(f.at(10))
        ),
        "the approval binds the code to the approver and their org"
    );
    for (decision, what) in [
        (&approve, "approve again"),
        (&DeviceDecision::Deny, "deny after approve"),
    ] {
        assert!(
            !ok(
                store
                    .decide_device_code(&f.other, code.id, f.user, decision, f.at(11))
                    .await,
                what
            ),
            "{what}: a decided code cannot be decided again"
        );
    }
    assert_eq!(
        stored(store, &code).await,
        row,
        "a refused decision writes nothing"
    );

    let denied = f.create(store, 0).await;
    assert!(ok(
        store
            .decide_device_code(&f.scope, denied.id, f.user, &DeviceDecision::Deny, f.at(5))
            .await,
        "deny"
    ));
    let row = stored(store, &denied).await;
    assert_eq!(
        (row.status, row.org_id, row.granted_scopes.len()),
        (DeviceStatus::Denied, Some(f.scope.org_id()), 0)
    );

    // Past its expiry a pending code cannot be decided; at the last instant it can.
    let late = f.create(store, 0).await;
    assert!(!ok(
        store
            .decide_device_code(
                &f.scope,
                late.id,
                f.user,
                &approve,
                f.at(EXPIRES_IN_SECS + 1)
            )
            .await,
        "approve expired"
    ));
    assert_eq!(stored(store, &late).await.status, DeviceStatus::Pending);
    assert!(ok(
        store
            .decide_device_code(&f.scope, late.id, f.user, &approve, f.at(EXPIRES_IN_SECS))
            .await,
        "approve at the expiry instant"
    ));
    assert!(!ok(
        store
            .decide_device_code(&f.scope, new_id(), f.user, &approve, f.at(1))
            .await,
        "decide an unknown code"
    ));
}

pub async fn device_concurrent_decisions_admit_one(store: &dyn Store) {
    let f = Fixture::new(store, "device-decide-race").await;
    let code = f.create(store, 0).await;
    let decisions: Vec<DeviceDecision> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                Fixture::approve()
            } else {
                DeviceDecision::Deny
            }
        })
        .collect();
    let won: Vec<bool> = join_all(
        decisions
            .iter()
            .map(|d| store.decide_device_code(&f.scope, code.id, f.user, d, f.at(1)))
            .collect(),
    )
    .await
    .into_iter()
    .map(|r| ok(r, "concurrent decide_device_code"))
    .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let winner = won.iter().position(|w| *w).expect("a winner");
    let want = if winner % 2 == 0 {
        DeviceStatus::Approved
    } else {
        DeviceStatus::Denied
    };
    assert_eq!(
        stored(store, &code).await.status,
        want,
        "the winner's decision is stored"
    );
}

// --- the exchange ---------------------------------------------------------------

pub async fn device_exchange_mints_one_key_in_the_same_transaction(store: &dyn Store) {
    let f = Fixture::new(store, "device-exchange").await;

    // Not approved yet: nothing happens.
    let pending = f.create(store, 0).await;
    let key = f.key("pending", 2);
    assert!(
        ok(
            store
                .exchange_device_code(&f.scope, pending.id, &key, f.at(2))
                .await,
            "exchange pending"
        )
        .is_none()
    );
    assert!(ok(store.get_api_key(&f.scope, key.id).await, "get_api_key").is_none());

    let code = f.approved(store, 0).await;
    // Another org, or another user, than the approval's: nothing happens.
    let stranger = f.key("other-org", 2);
    assert!(
        ok(
            store
                .exchange_device_code(&f.other, code.id, &stranger, f.at(2))
                .await,
            "exchange in another org"
        )
        .is_none()
    );
    let mut other_user = f.key("other-user", 2);
    other_user.user_id = make_user(store, &f.ctx, "device-exchange-stranger").await;
    assert!(
        ok(
            store
                .exchange_device_code(&f.scope, code.id, &other_user, f.at(2))
                .await,
            "exchange for another user"
        )
        .is_none()
    );
    assert!(
        ok(
            store.get_api_key(&f.other, stranger.id).await,
            "get_api_key"
        )
        .is_none()
    );
    assert!(
        ok(
            store.get_api_key(&f.scope, other_user.id).await,
            "get_api_key"
        )
        .is_none()
    );

    // A key insert that fails rolls the exchange back: the code stays approved.
    let mut clash = f.key("clash", 3);
    let mut existing = f.key("existing", 3);
    existing.created_via = KeyOrigin::Dashboard;
    ok(
        store.create_api_key(&f.scope, &existing).await,
        "create_api_key",
    );
    clash.key_hash = existing.key_hash.clone();
    expect_conflict(
        store
            .exchange_device_code(&f.scope, code.id, &clash, f.at(3))
            .await,
        "api_key_hash",
        "an exchange whose key cannot be inserted",
    );
    assert_eq!(
        stored(store, &code).await.status,
        DeviceStatus::Approved,
        "the failed key insert and the code change are one transaction"
    );

    let key = f.key("laptop", 4);
    let minted = ok(
        store
            .exchange_device_code(&f.scope, code.id, &key, f.at(4))
            .await,
        "exchange",
    )
    .expect("an approved code is exchanged once");
    assert_eq!(
        (
            minted.id,
            minted.org_id,
            minted.user_id,
            minted.created_via,
            minted.scopes.clone()
        ),
        (
            key.id,
            f.scope.org_id(),
            f.user,
            KeyOrigin::Device,
            key.scopes.clone()
        )
    );
    let row = stored(store, &code).await;
    assert_eq!(
        (row.status, row.api_key_id, row.exchanged_at),
        (DeviceStatus::Exchanged, Some(key.id), Some(f.at(4)))
    );
    assert_eq!(
        ok(
            store.find_key_grant_by_hash(&key.key_hash).await,
            "find_key_grant_by_hash"
        )
        .map(|g| g.key.id),
        Some(key.id),
        "the minted key authenticates"
    );

    let again = f.key("again", 5);
    assert!(
        ok(
            store
                .exchange_device_code(&f.scope, code.id, &again, f.at(5))
                .await,
            "second exchange"
        )
        .is_none()
    );
    assert!(ok(store.get_api_key(&f.scope, again.id).await, "get_api_key").is_none());
    assert_eq!(
        f.device_keys(store)
            .await
            .iter()
            .map(|k| k.id)
            .collect::<Vec<_>>(),
        vec![key.id],
        "one code, one key"
    );

    // Approved but expired: no key.
    let stale = f.approved(store, 0).await;
    let late = f.key("late", EXPIRES_IN_SECS + 1);
    assert!(
        ok(
            store
                .exchange_device_code(&f.scope, stale.id, &late, f.at(EXPIRES_IN_SECS + 1))
                .await,
            "exchange expired"
        )
        .is_none()
    );
    assert_eq!(stored(store, &stale).await.status, DeviceStatus::Approved);
}

pub async fn device_concurrent_exchanges_mint_exactly_one_key(store: &dyn Store) {
    let f = Fixture::new(store, "device-exchange-race").await;
    let code = f.approved(store, 0).await;
    let keys: Vec<NewApiKey> = (0..8).map(|i| f.key(&format!("racer {i}"), 2)).collect();
    let minted: Vec<Option<ApiKey>> = join_all(
        keys.iter()
            .map(|k| store.exchange_device_code(&f.scope, code.id, k, f.at(2)))
            .collect(),
    )
    .await
    .into_iter()
    .map(|r| ok(r, "concurrent exchange_device_code"))
    .collect();
    let winners: Vec<&ApiKey> = minted.iter().flatten().collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of eight concurrent exchanges mints"
    );
    let stored_keys = f.device_keys(store).await;
    assert_eq!(
        stored_keys.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![winners[0].id],
        "the losers left no key behind"
    );
    assert_eq!(stored(store, &code).await.api_key_id, Some(winners[0].id));
}
