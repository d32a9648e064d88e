//! The identity service: first-run setup, admin bootstrap, login, browser
//! sessions and step-up, TOTP, and API keys. It is the only place a
//! credential turns into a [`Principal`] with an [`OrgScope`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::{SecretKey, random_token, sha256_hex};
use crate::error::{DomainError, DomainResult, StoreError};
use crate::keys::{self, KeyEnv};
use crate::model::*;
use crate::principal::{
    MINTABLE_SCOPES, Principal, PrincipalKind, SCOPE_MACHINE_CHARGE, SCOPE_MODELS_READ, role_scopes,
};
use crate::scope::OrgScope;
use crate::store::{PageRequest, Store};
use crate::{new_id, password, totp, validate};

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub step_up_window_secs: i64,
    pub session_max_age_secs: i64,
    pub session_idle_secs: i64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            step_up_window_secs: 600,
            session_max_age_secs: 30 * 24 * 3600,
            session_idle_secs: 7 * 24 * 3600,
        }
    }
}

/// Where a request came from, for sessions and audit events.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

/// A new browser session: the cookie value (shown to the browser once) and the row.
#[derive(Clone)]
pub struct SessionStart {
    pub token: String,
    pub session: BrowserSession,
}

impl std::fmt::Debug for SessionStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStart")
            .field("session_id", &self.session.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct SignupInput {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    pub org_slug: String,
    pub org_name: String,
}

#[derive(Debug, Clone)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
    pub org_slug: Option<String>,
}

#[derive(Debug)]
pub struct LoginOutcome {
    pub user: User,
    pub orgs: Vec<OrgMembership>,
    pub current_org_id: Option<Uuid>,
    pub start: SessionStart,
}

#[derive(Debug, Clone)]
pub struct MintInput {
    pub name: String,
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A validated mint request, ready once the rate limiter agrees.
#[derive(Debug, Clone)]
pub struct MintPlan {
    name: String,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapOutcome {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub created: bool,
}

pub enum StepUpFactor {
    Password(String),
    Totp(String),
}

/// What the key cache must forget, on this replica and (through the bus) on the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyInvalidation {
    /// A key was revoked or rebound to another workspace.
    Key { id: Uuid },
    /// A member was removed: all their keys in that org.
    Member { org: Uuid, user: Uuid },
}

/// Carries key-cache invalidations to other replicas (Redis pub/sub).
#[async_trait::async_trait]
pub trait KeyInvalidationBus: Send + Sync + 'static {
    async fn publish(&self, invalidation: KeyInvalidation);
}

/// How long a key lookup is reused. Revocation is immediate on the replica
/// that handles it and, with Redis, on the others; this TTL bounds the rest.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// At most this many keys are cached (a bound on memory, not a tuning knob:
/// entries live for [`KEY_CACHE_TTL`] only).
const KEY_CACHE_CAPACITY: usize = 100_000;

/// A cached key lookup and the principal it yields. `touched_ms` keeps
/// `lastUsedAt` writes to one a minute.
struct CachedGrant {
    grant: KeyGrant,
    /// Built once per lookup, shared by every request the entry serves
    /// (`None` when the key's user is no longer a member).
    principal: Option<Arc<Principal>>,
    touched_ms: std::sync::atomic::AtomicI64,
    cached_at: Instant,
}

impl CachedGrant {
    fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.cached_at) < KEY_CACHE_TTL
    }
}

/// Key digest → grant, with a TTL, invalidation by predicate and a size bound.
///
/// Deliberately small: a hit on the request path is one uncontended read
/// lock and one hash lookup. Expired entries are ignored on read and swept
/// when a shard fills up. Shards keep the read locks of different keys on
/// different cache lines when many threads authenticate at once.
struct KeyCache {
    shards: Box<[RwLock<Shard>]>,
    /// Bumped by every invalidation. A lookup that started before one does
    /// not cache what it read, so a revocation racing a cache miss cannot
    /// leave the revoked key cached for another TTL.
    generation: AtomicU64,
}

/// Digest (SHA-256 hex) → entry.
type Shard = HashMap<String, Arc<CachedGrant>>;

const KEY_CACHE_SHARDS: usize = 16;

impl KeyCache {
    fn new() -> Self {
        KeyCache {
            shards: (0..KEY_CACHE_SHARDS).map(|_| Default::default()).collect(),
            generation: AtomicU64::new(0),
        }
    }

    fn shard(&self, digest: &str) -> &RwLock<Shard> {
        // A digest's last hex digit is uniform over 0..16, one per shard.
        let last = digest.chars().next_back().and_then(|c| c.to_digit(16));
        &self.shards[last.unwrap_or_default() as usize % KEY_CACHE_SHARDS]
    }

    fn get(&self, digest: &str, now: Instant) -> Option<Arc<CachedGrant>> {
        let shard = self
            .shard(digest)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(digest).filter(|e| e.fresh(now)).cloned()
    }

    /// The generation to hand to [`KeyCache::insert`], read before the store.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn insert(&self, digest: String, entry: Arc<CachedGrant>, generation: u64) {
        let mut shard = self
            .shard(&digest)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Checked under the shard lock: an invalidation either bumped the
        // generation before this (skip) or sweeps this shard after (removed).
        if self.generation() != generation {
            return;
        }
        let per_shard = KEY_CACHE_CAPACITY / KEY_CACHE_SHARDS;
        if shard.len() >= per_shard && !shard.contains_key(&digest) {
            shard.retain(|_, e| e.fresh(entry.cached_at));
            if shard.len() >= per_shard {
                // Still full of live keys: drop a tenth (they are read from
                // the store again on next use), so the sweep stays rare.
                let victims: Vec<String> = shard.keys().take(per_shard / 10 + 1).cloned().collect();
                for victim in victims {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(digest, entry);
    }

    fn invalidate_if(&self, forget: impl Fn(&KeyGrant) -> bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, e| !forget(&e.grant));
        }
    }
}

pub struct Identity {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    secret: SecretKey,
    key_env: KeyEnv,
    settings: AuthSettings,
    key_cache: KeyCache,
    bus: std::sync::OnceLock<Arc<dyn KeyInvalidationBus>>,
}

impl Identity {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        secret: SecretKey,
        key_env: KeyEnv,
        settings: AuthSettings,
    ) -> Self {
        Identity {
            store,
            clock,
            secret,
            key_env,
            settings,
            key_cache: KeyCache::new(),
            bus: std::sync::OnceLock::new(),
        }
    }

    /// The server secret, for other services that seal third-party secrets.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// Connects the key cache to the other replicas (set once, at start-up).
    pub fn set_invalidation_bus(&self, bus: Arc<dyn KeyInvalidationBus>) {
        let _ = self.bus.set(bus);
    }

    /// Forgets cached keys on this replica only (the bus subscriber calls this).
    pub fn apply_invalidation(&self, invalidation: KeyInvalidation) {
        match invalidation {
            KeyInvalidation::Key { id } => self.key_cache.invalidate_if(|g| g.key.id == id),
            KeyInvalidation::Member { org, user } => self
                .key_cache
                .invalidate_if(|g| g.key.org_id == org && g.key.user_id == user),
        }
    }

    /// Forgets here at once, then tells the other replicas.
    pub async fn invalidate_keys(&self, invalidation: KeyInvalidation) {
        self.apply_invalidation(invalidation);
        if let Some(bus) = self.bus.get() {
            bus.publish(invalidation).await;
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn key_env(&self) -> KeyEnv {
        self.key_env
    }

    // --- first run and host-side administration -------------------------------

    pub async fn setup_required(&self) -> DomainResult<bool> {
        Ok(self.store.count_users().await? == 0)
    }

    /// Checks every field (all failures in one 422); returns the case-folded email.
    fn validate_signup(input: &SignupInput) -> DomainResult<String> {
        let email = validate::email("email", &input.email);
        validate::all([
            email.as_ref().map(|_| ()).map_err(clone_fields),
            validate::password("password", &input.password),
            validate::org_slug("orgSlug", &input.org_slug),
            validate::text("orgName", &input.org_name, 1, 120),
            input
                .name
                .as_deref()
                .map_or(Ok(()), |n| validate::text("name", n, 0, 120)),
        ])?;
        email
    }

    fn new_user(&self, email: String, name: Option<String>, password_hash: String) -> NewUser {
        let name = name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
        NewUser {
            id: new_id(),
            email,
            name,
            password_hash,
            created_at: self.now(),
        }
    }

    fn new_org(&self, slug: &str, name: &str) -> NewOrg {
        let id = new_id();
        NewOrg {
            default_agent: crate::agents::ala(id, self.now()),
            id,
            slug: slug.to_string(),
            name: name.trim().to_string(),
            default_workspace_id: new_id(),
            created_at: self.now(),
        }
    }

    /// `POST /api/v1/setup`: the first owner and org, signed in at once.
    pub async fn setup(
        &self,
        input: SignupInput,
        client: &ClientInfo,
    ) -> DomainResult<(User, Vec<OrgMembership>, SessionStart)> {
        let email = Self::validate_signup(&input)?;
        if !self.setup_required().await? {
            return Err(already_set_up());
        }
        let hash = password::hash(input.password.clone()).await;
        let user = self.new_user(email, input.name.clone(), hash);
        let org = self.new_org(&input.org_slug, &input.org_name);
        self.store
            .setup_first_owner(&user, &org)
            .await
            .map_err(|e| match e {
                StoreError::Conflict("already_set_up") | StoreError::Conflict("user_email") => {
                    already_set_up()
                }
                StoreError::Conflict(_) => slug_taken(),
                other => other.into(),
            })?;
        let stored = self
            .store
            .get_user(user.id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let orgs = self.store.list_user_orgs(user.id).await?;
        let start = self
            .start_session(user.id, Some(org.id), vec!["pwd".into()], client)
            .await?;
        self.audit(
            &OrgScope::new(org.id),
            "org.setup",
            ("user", Some(user.id), None),
            &client.ip,
            ("org", org.id.to_string()),
            json!({}),
        )
        .await;
        Ok((stored, orgs, start))
    }

    /// `alumia admin bootstrap`: creates whatever is missing; never changes an
    /// existing password or role.
    pub async fn bootstrap(&self, input: SignupInput) -> DomainResult<BootstrapOutcome> {
        let email = Self::validate_signup(&input)?;
        let existing_user = self
            .store
            .find_user_by_email(&email)
            .await?
            .map(|c| c.user.id);
        let existing_org = self.store.get_org_by_slug(&input.org_slug).await?;
        // Decide before writing anything: a refused bootstrap leaves no user behind.
        if let Some(org) = &existing_org {
            let owner = match existing_user {
                Some(user) => {
                    self.store.get_role(&OrgScope::new(org.id), user).await? == Some(Role::Owner)
                }
                None => false,
            };
            if !owner {
                return Err(DomainError::conflict(
                    "org_owned_elsewhere",
                    "that org exists and this user is not its owner",
                ));
            }
        }
        let mut created = false;
        let user_id = match existing_user {
            Some(id) => id,
            None => {
                let hash = password::hash(input.password.clone()).await;
                let user = self.new_user(email, input.name.clone(), hash);
                self.store.create_user(&user).await?;
                created = true;
                user.id
            }
        };
        let org_id = match existing_org {
            Some(org) => org.id,
            None => {
                let org = self.new_org(&input.org_slug, &input.org_name);
                self.store
                    .create_org(&org, user_id)
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict(_) => slug_taken(),
                        other => other.into(),
                    })?;
                created = true;
                org.id
            }
        };
        Ok(BootstrapOutcome {
            user_id,
            org_id,
            created,
        })
    }

    /// `alumia admin create-user`: the user if needed, plus the membership.
    pub async fn admin_create_user(
        &self,
        email: &str,
        password_plain: &str,
        name: Option<String>,
        org_slug: &str,
        role: Role,
    ) -> DomainResult<Uuid> {
        let email = validate::email("email", email)?;
        let org = self
            .store
            .get_org_by_slug(org_slug)
            .await?
            .ok_or(DomainError::NotFound)?;
        let user_id = match self.store.find_user_by_email(&email).await? {
            Some(existing) => existing.user.id,
            None => {
                validate::password("password", password_plain)?;
                let hash = password::hash(password_plain.to_string()).await;
                let user = self.new_user(email, name, hash);
                self.store.create_user(&user).await?;
                user.id
            }
        };
        self.store
            .add_member(&OrgScope::new(org.id), user_id, role, self.now())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    DomainError::conflict("already_member", "the user is already a member")
                }
                other => other.into(),
            })?;
        Ok(user_id)
    }

    /// `alumia admin create-key`: a key for automation on the host.
    pub async fn admin_create_key(
        &self,
        email: &str,
        org_slug: &str,
        input: MintInput,
    ) -> DomainResult<(ApiKey, String)> {
        let email = validate::email("email", email)?;
        let user = self
            .store
            .find_user_by_email(&email)
            .await?
            .ok_or(DomainError::NotFound)?;
        let org = self
            .store
            .get_org_by_slug(org_slug)
            .await?
            .ok_or(DomainError::NotFound)?;
        let scope = OrgScope::new(org.id);
        let role = self
            .store
            .get_role(&scope, user.user.id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let plan = self.plan_mint(role, input)?;
        self.insert_key(&scope, user.user.id, plan, KeyOrigin::AdminCli)
            .await
    }

    /// `POST /api/v1/orgs`: a new org owned by the signed-in user.
    pub async fn create_org(
        &self,
        p: &Principal,
        slug: &str,
        name: &str,
        client: &ClientInfo,
    ) -> DomainResult<Org> {
        p.require_browser_session()?;
        validate::all([
            validate::org_slug("slug", slug),
            validate::text("name", name, 1, 120),
        ])?;
        let org = self.new_org(slug, name);
        self.store
            .create_org(&org, p.user_id)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => slug_taken(),
                other => other.into(),
            })?;
        self.audit(
            &OrgScope::new(org.id),
            "org.created",
            actor(p),
            &client.ip,
            ("org", org.id.to_string()),
            json!({ "slug": org.slug }),
        )
        .await;
        self.store
            .get_org(org.id)
            .await?
            .ok_or(DomainError::NotFound)
    }

    // --- browser sessions -------------------------------------------------------

    async fn start_session(
        &self,
        user_id: Uuid,
        current_org_id: Option<Uuid>,
        amr: Vec<String>,
        client: &ClientInfo,
    ) -> DomainResult<SessionStart> {
        let now = self.now();
        let token = random_token();
        let session = BrowserSession {
            id: new_id(),
            user_id,
            current_org_id,
            active_workspace_id: None,
            csrf_token: random_token(),
            auth_time: now,
            step_up_at: Some(now),
            amr,
            ip: client.ip.clone(),
            user_agent: client.user_agent.chars().take(512).collect(),
            last_seen_at: now,
            expires_at: now + Duration::seconds(self.settings.session_max_age_secs),
        };
        self.store
            .create_session(&sha256_hex(token.as_bytes()), &session)
            .await?;
        Ok(SessionStart { token, session })
    }

    /// Email + password (+ second factor). Unknown emails cost the same as
    /// known ones and get the same answer.
    pub async fn login(
        &self,
        input: LoginInput,
        client: &ClientInfo,
    ) -> DomainResult<LoginOutcome> {
        let email = input.email.trim().to_lowercase();
        let found = self.store.find_user_by_email(&email).await?;
        let (hash, user) = match &found {
            Some(c) => (c.password_hash.clone(), Some(c.user.clone())),
            None => (password::dummy_hash().to_string(), None),
        };
        let ok = password::verify(input.password.clone(), hash).await;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => return Err(invalid_credentials()),
        };
        let mut amr = vec!["pwd".to_string()];
        if let Some(totp_state) = self.store.get_totp(user.id).await?.filter(|t| t.enabled) {
            if let Some(code) = input.totp_code.as_deref() {
                self.check_totp(user.id, &totp_state, code).await?;
                amr.push("otp".into());
            } else if let Some(code) = input.recovery_code.as_deref() {
                let mac = self.recovery_mac(code);
                if !self
                    .store
                    .use_recovery_code(user.id, &mac, self.now())
                    .await?
                {
                    return Err(invalid_credentials());
                }
                amr.push("recovery".into());
            } else {
                return Err(DomainError::unauthorized(
                    "second_factor_required",
                    "this account needs a TOTP or recovery code",
                ));
            }
        }
        let orgs = self.store.list_user_orgs(user.id).await?;
        let current = match input.org_slug.as_deref() {
            Some(slug) => Some(
                orgs.iter()
                    .find(|m| m.org.slug == slug)
                    .ok_or_else(org_mismatch)?
                    .org
                    .id,
            ),
            None => orgs.first().map(|m| m.org.id),
        };
        let start = self.start_session(user.id, current, amr, client).await?;
        if let Some(org_id) = current {
            self.audit(
                &OrgScope::new(org_id),
                "auth.login",
                ("user", Some(user.id), None),
                &client.ip,
                ("session", start.session.id.to_string()),
                json!({ "amr": start.session.amr }),
            )
            .await;
        }
        Ok(LoginOutcome {
            user,
            orgs,
            current_org_id: current,
            start,
        })
    }

    /// The `alumia_session` cookie → a principal in the requested or current org.
    pub async fn authenticate_session(
        &self,
        token: &str,
        org_header: Option<&str>,
    ) -> DomainResult<Principal> {
        let invalid = || DomainError::unauthorized("invalid_session", "the session is not valid");
        if token.is_empty() || token.len() > 128 {
            return Err(invalid());
        }
        let session = self
            .store
            .find_session_by_hash(&sha256_hex(token.as_bytes()))
            .await?
            .ok_or_else(invalid)?;
        let now = self.now();
        if session.expires_at <= now
            || now - session.last_seen_at > Duration::seconds(self.settings.session_idle_secs)
        {
            return Err(invalid());
        }
        let orgs = self.store.list_user_orgs(session.user_id).await?;
        let chosen = match org_header {
            Some(h) => orgs.iter().find(|m| org_matches(&m.org, h)),
            None => session
                .current_org_id
                .and_then(|id| orgs.iter().find(|m| m.org.id == id))
                .or_else(|| if orgs.len() == 1 { orgs.first() } else { None }),
        }
        .ok_or_else(org_mismatch)?;
        if now - session.last_seen_at > Duration::seconds(60) {
            self.store.touch_session(session.id, now).await?;
        }
        Ok(Principal {
            kind: PrincipalKind::Session {
                session_id: session.id,
                csrf_token: session.csrf_token.clone(),
                step_up_at: session.step_up_at,
            },
            user_id: session.user_id,
            org: OrgScope::new(chosen.org.id),
            org_slug: chosen.org.slug.clone(),
            role: chosen.role,
            scopes: role_scopes(chosen.role)
                .iter()
                .map(|s| s.to_string())
                .collect(),
            active_workspace_id: session.active_workspace_id,
        })
    }

    pub async fn logout(&self, p: &Principal) -> DomainResult<()> {
        let id = p.require_browser_session()?;
        self.store.delete_session(id).await?;
        Ok(())
    }

    /// Switches the session's current org (by slug or id).
    pub async fn switch_org(&self, p: &Principal, org: &str) -> DomainResult<Org> {
        let id = p.require_browser_session()?;
        let orgs = self.store.list_user_orgs(p.user_id).await?;
        let m = orgs
            .into_iter()
            .find(|m| org_matches(&m.org, org))
            .ok_or_else(org_mismatch)?;
        self.store
            .set_session_context(id, Some(m.org.id), None)
            .await?;
        Ok(m.org)
    }

    /// Re-checks a factor, records the step-up and rotates the session id.
    /// The caller has already charged the `step-up` bucket.
    pub async fn step_up(
        &self,
        p: &Principal,
        factor: StepUpFactor,
        client: &ClientInfo,
    ) -> DomainResult<(String, DateTime<Utc>)> {
        let session_id = p.require_browser_session()?;
        let method = match factor {
            StepUpFactor::Password(pw) => {
                let hash = self
                    .store
                    .get_password_hash(p.user_id)
                    .await?
                    .ok_or(DomainError::NotFound)?;
                if !password::verify(pw, hash).await {
                    return Err(step_up_failed());
                }
                "pwd"
            }
            StepUpFactor::Totp(code) => {
                let state = self
                    .store
                    .get_totp(p.user_id)
                    .await?
                    .filter(|t| t.enabled)
                    .ok_or_else(|| {
                        DomainError::invalid_with_reason(
                            "factor_not_enrolled",
                            "totpCode",
                            "TOTP is not enabled for this account",
                        )
                    })?;
                self.check_totp(p.user_id, &state, &code)
                    .await
                    .map_err(|_| step_up_failed())?;
                "otp"
            }
        };
        let now = self.now();
        let token = random_token();
        self.store
            .rotate_session(
                session_id,
                &sha256_hex(token.as_bytes()),
                now,
                &["pwd".to_string(), method.to_string()],
            )
            .await?;
        self.audit(
            &p.org,
            "auth.step_up",
            actor(p),
            &client.ip,
            ("session", session_id.to_string()),
            json!({ "method": method }),
        )
        .await;
        Ok((
            token,
            now + Duration::seconds(self.settings.step_up_window_secs),
        ))
    }

    // --- TOTP ---------------------------------------------------------------------

    async fn check_totp(&self, user: Uuid, state: &TotpState, code: &str) -> DomainResult<()> {
        let secret_b32 = self
            .secret
            .open(&state.secret_enc)
            .map_err(|_| DomainError::Internal("TOTP secret cannot be opened".into()))?;
        let secret = totp::base32_decode(&String::from_utf8_lossy(&secret_b32))
            .ok_or_else(|| DomainError::Internal("stored TOTP secret is not base32".into()))?;
        let step = totp::matching_step(&secret, code, self.now().timestamp())
            .ok_or_else(invalid_credentials)?;
        // Compare-and-set: a code for the same or an earlier step is refused.
        if !self.store.accept_totp_step(user, step).await? {
            return Err(invalid_credentials());
        }
        Ok(())
    }

    pub async fn totp_enroll(&self, p: &Principal) -> DomainResult<(String, String)> {
        p.require_step_up(self.now(), self.settings.step_up_window_secs)?;
        let user = self
            .store
            .get_user(p.user_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        if self
            .store
            .get_totp(p.user_id)
            .await?
            .is_some_and(|t| t.enabled)
        {
            return Err(DomainError::conflict(
                "totp_already_enabled",
                "TOTP is already enabled; disable it first",
            ));
        }
        let secret_b32 = totp::base32_encode(&totp::generate_secret());
        self.store
            .set_totp_pending(p.user_id, &self.secret.seal(secret_b32.as_bytes()))
            .await?;
        let url = totp::otpauth_url(&secret_b32, &user.email);
        Ok((secret_b32, url))
    }

    /// Enables a pending secret after one valid code; returns 10 recovery codes, once.
    pub async fn totp_confirm(
        &self,
        p: &Principal,
        code: &str,
        client: &ClientInfo,
    ) -> DomainResult<Vec<String>> {
        p.require_step_up(self.now(), self.settings.step_up_window_secs)?;
        let state = self
            .store
            .get_totp(p.user_id)
            .await?
            .filter(|t| !t.enabled)
            .ok_or_else(|| {
                DomainError::conflict("totp_not_pending", "start TOTP enrolment first")
            })?;
        self.check_totp(p.user_id, &state, code)
            .await
            .map_err(|_| DomainError::invalid("code", "the code does not match"))?;
        let codes: Vec<String> = (0..10)
            .map(|_| {
                let raw = hex::encode(crate::crypto::random_bytes::<5>());
                format!("{}-{}", &raw[..5], &raw[5..])
            })
            .collect();
        let macs: Vec<String> = codes.iter().map(|c| self.recovery_mac(c)).collect();
        self.store.enable_totp(p.user_id, &macs, self.now()).await?;
        self.audit(
            &p.org,
            "auth.totp_enabled",
            actor(p),
            &client.ip,
            ("user", p.user_id.to_string()),
            json!({}),
        )
        .await;
        Ok(codes)
    }

    pub async fn totp_disable(&self, p: &Principal, client: &ClientInfo) -> DomainResult<()> {
        p.require_step_up(self.now(), self.settings.step_up_window_secs)?;
        self.store.disable_totp(p.user_id).await?;
        self.audit(
            &p.org,
            "auth.totp_disabled",
            actor(p),
            &client.ip,
            ("user", p.user_id.to_string()),
            json!({}),
        )
        .await;
        Ok(())
    }

    pub async fn security_summary(&self, user: Uuid) -> DomainResult<(bool, i64)> {
        let enabled = self.store.get_totp(user).await?.is_some_and(|t| t.enabled);
        let remaining = if enabled {
            self.store.recovery_codes_remaining(user).await?
        } else {
            0
        };
        Ok((enabled, remaining))
    }

    fn recovery_mac(&self, code: &str) -> String {
        let normal: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        self.secret.mac_hex(normal.as_bytes())
    }

    // --- API keys -----------------------------------------------------------------

    /// The bearer path: format check first (no lookup for a malformed key),
    /// then the digest, then revocation, membership and expiry. The principal
    /// is shared with the key cache, so a cache hit copies nothing.
    pub async fn authenticate_key(
        &self,
        token: &str,
        org_header: Option<&str>,
    ) -> DomainResult<Arc<Principal>> {
        let invalid = || DomainError::unauthorized("invalid_api_key", "the API key is not valid");
        let digest = keys::parse(token, self.key_env).ok_or_else(invalid)?;
        let cached = match self.key_cache.get(&digest, Instant::now()) {
            // Entries are stored under their digest only after the
            // constant-time check below, so a hit needs no second comparison.
            Some(hit) => hit,
            None => {
                let generation = self.key_cache.generation();
                // Unknown keys are not cached: guesses cannot fill the cache.
                let grant = self
                    .store
                    .find_key_grant_by_hash(&digest)
                    .await?
                    .ok_or_else(invalid)?;
                if !keys::digests_equal(&grant.key_hash, &digest) {
                    return Err(invalid());
                }
                let touched = grant
                    .key
                    .last_used_at
                    .map_or(i64::MIN, crate::clock::to_millis);
                let principal = grant.role.map(|role| {
                    Arc::new(Principal {
                        kind: PrincipalKind::ApiKey {
                            key_id: grant.key.id,
                            prefix: grant.key.prefix.clone(),
                        },
                        user_id: grant.key.user_id,
                        org: OrgScope::new(grant.key.org_id),
                        org_slug: grant.org_slug.clone(),
                        role,
                        scopes: grant.key.scopes.clone(),
                        active_workspace_id: grant.key.active_workspace_id,
                    })
                });
                let entry = Arc::new(CachedGrant {
                    grant,
                    principal,
                    touched_ms: std::sync::atomic::AtomicI64::new(touched),
                    cached_at: Instant::now(),
                });
                self.key_cache.insert(digest, entry.clone(), generation);
                entry
            }
        };
        let grant = &cached.grant;
        if grant.key.revoked_at.is_some() {
            return Err(invalid());
        }
        let principal = cached.principal.clone().ok_or_else(invalid)?;
        let now = self.now();
        if grant.key.expires_at.is_some_and(|at| at <= now) {
            return Err(DomainError::unauthorized(
                "expired_api_key",
                "the API key has expired",
            ));
        }
        if let Some(h) = org_header
            && h != grant.org_slug
            && h != grant.key.org_id.to_string()
        {
            return Err(org_mismatch());
        }
        // lastUsedAt: at most once a minute per key, off the request path.
        let now_ms = crate::clock::to_millis(now);
        let seen = cached.touched_ms.load(std::sync::atomic::Ordering::Relaxed);
        if now_ms.saturating_sub(seen) >= 60_000
            && cached
                .touched_ms
                .compare_exchange(
                    seen,
                    now_ms,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            let store = self.store.clone();
            let id = grant.key.id;
            tokio::spawn(async move {
                let _ = store.touch_api_key(id, now).await;
            });
        }
        Ok(principal)
    }

    fn plan_mint(&self, role: Role, input: MintInput) -> DomainResult<MintPlan> {
        validate::text("name", &input.name, 1, 120)?;
        let mut scopes = input
            .scopes
            .unwrap_or_else(|| vec![SCOPE_MODELS_READ.to_string()]);
        // Validate in the caller's order, so `scopes.<i>` points at their entry.
        for (i, s) in scopes.iter().enumerate() {
            if !MINTABLE_SCOPES.contains(&s.as_str()) {
                return Err(DomainError::invalid(
                    &format!("scopes.{i}"),
                    format!("must be one of {}", MINTABLE_SCOPES.join(", ")),
                ));
            }
        }
        scopes.sort();
        scopes.dedup();
        if scopes.iter().any(|s| s == SCOPE_MACHINE_CHARGE) && !role.is_admin() {
            return Err(DomainError::Forbidden {
                reason: "insufficient_role",
                message: "only owners and admins can mint billing:machine:charge keys".into(),
                details: Some(json!({ "requiredRole": "admin" })),
            });
        }
        if input.expires_at.is_some_and(|at| at <= self.now()) {
            return Err(DomainError::invalid("expiresAt", "must be in the future"));
        }
        Ok(MintPlan {
            name: input.name.trim().to_string(),
            scopes,
            expires_at: input.expires_at,
        })
    }

    /// Checks a dashboard mint: browser session, fresh step-up, valid fields.
    pub fn prepare_mint(&self, p: &Principal, input: MintInput) -> DomainResult<MintPlan> {
        p.require_step_up(self.now(), self.settings.step_up_window_secs)?;
        self.plan_mint(p.role, input)
    }

    pub async fn mint_key(
        &self,
        p: &Principal,
        plan: MintPlan,
        client: &ClientInfo,
    ) -> DomainResult<(ApiKey, String)> {
        let (key, plaintext) = self
            .insert_key(&p.org, p.user_id, plan, KeyOrigin::Dashboard)
            .await?;
        self.audit(
            &p.org,
            "api_key.created",
            actor(p),
            &client.ip,
            ("api_key", key.id.to_string()),
            json!({ "prefix": key.prefix, "scopes": key.scopes }),
        )
        .await;
        Ok((key, plaintext))
    }

    async fn insert_key(
        &self,
        scope: &OrgScope,
        user_id: Uuid,
        plan: MintPlan,
        origin: KeyOrigin,
    ) -> DomainResult<(ApiKey, String)> {
        let (row, plaintext) =
            self.new_key_row(user_id, plan.name, plan.scopes, plan.expires_at, origin);
        let key = self.store.create_api_key(scope, &row).await?;
        Ok((key, plaintext))
    }

    /// A fresh key for `user_id` and the row that stores it (hash and prefix
    /// only): every way of minting (dashboard, admin CLI, device login) goes
    /// through here. Returns the plaintext, which is shown once.
    pub(crate) fn new_key_row(
        &self,
        user_id: Uuid,
        name: String,
        scopes: Vec<String>,
        expires_at: Option<DateTime<Utc>>,
        origin: KeyOrigin,
    ) -> (NewApiKey, String) {
        let minted = keys::mint(self.key_env);
        let row = NewApiKey {
            id: new_id(),
            user_id,
            name,
            prefix: minted.prefix.clone(),
            key_hash: minted.hash.clone(),
            scopes,
            created_via: origin,
            expires_at,
            created_at: self.now(),
        };
        (row, minted.plaintext)
    }

    pub async fn list_keys(&self, p: &Principal, page: PageRequest) -> DomainResult<Vec<ApiKey>> {
        Ok(self.store.list_api_keys(&p.org, p.user_id, page).await?)
    }

    pub async fn revoke_key(
        &self,
        p: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> DomainResult<ApiKey> {
        let key = self
            .store
            .revoke_api_key(&p.org, p.user_id, id, self.now())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    DomainError::conflict("already_revoked", "the key is already revoked")
                }
                other => other.into(),
            })?;
        self.invalidate_keys(KeyInvalidation::Key { id: key.id })
            .await;
        self.audit(
            &p.org,
            "api_key.revoked",
            actor(p),
            &client.ip,
            ("api_key", key.id.to_string()),
            json!({ "prefix": key.prefix }),
        )
        .await;
        Ok(key)
    }

    // --- audit ----------------------------------------------------------------------

    /// Audit writes never fail the request they describe; a failure is logged by the store.
    pub(crate) async fn audit(
        &self,
        scope: &OrgScope,
        kind: &str,
        actor: (&str, Option<Uuid>, Option<Uuid>),
        ip: &str,
        target: (&str, String),
        data: serde_json::Value,
    ) {
        let event = AuditEvent {
            id: new_id(),
            kind: kind.to_string(),
            actor_kind: actor.0.to_string(),
            actor_user_id: actor.1,
            actor_key_id: actor.2,
            ip: ip.to_string(),
            target_kind: target.0.to_string(),
            target_id: target.1,
            data,
            created_at: self.now(),
        };
        let _ = self.store.record_audit(scope, &event).await;
    }
}

pub(crate) fn actor(p: &Principal) -> (&'static str, Option<Uuid>, Option<Uuid>) {
    (p.kind_name(), Some(p.user_id), p.key_id())
}

fn org_matches(org: &Org, wanted: &str) -> bool {
    org.slug == wanted || org.id.to_string() == wanted
}

fn clone_fields(e: &DomainError) -> DomainError {
    match e {
        DomainError::Validation { reason, fields } => DomainError::Validation {
            reason: *reason,
            fields: fields.clone(),
        },
        other => DomainError::Internal(other.to_string()),
    }
}

pub fn invalid_credentials() -> DomainError {
    DomainError::unauthorized("invalid_credentials", "wrong email, password or code")
}

pub fn org_mismatch() -> DomainError {
    DomainError::forbidden(
        "org_mismatch",
        "that org is not available to this credential",
    )
}

fn already_set_up() -> DomainError {
    DomainError::conflict("already_set_up", "this server is already set up")
}

fn slug_taken() -> DomainError {
    DomainError::conflict("slug_taken", "that org slug is taken")
}

fn step_up_failed() -> DomainError {
    DomainError::forbidden("step_up_failed", "that factor did not match")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: Uuid, org: Uuid, user: Uuid, cached_at: Instant) -> Arc<CachedGrant> {
        let now = Utc::now();
        Arc::new(CachedGrant {
            grant: KeyGrant {
                key: ApiKey {
                    id,
                    org_id: org,
                    user_id: user,
                    name: "k".into(),
                    prefix: "alm_test_abc".into(),
                    scopes: vec![SCOPE_MODELS_READ.into()],
                    created_via: KeyOrigin::Dashboard,
                    last_used_at: None,
                    expires_at: None,
                    revoked_at: None,
                    active_workspace_id: None,
                    created_at: now,
                },
                key_hash: String::new(),
                org_slug: "acme".into(),
                role: Some(Role::Member),
            },
            principal: None,
            touched_ms: std::sync::atomic::AtomicI64::new(0),
            cached_at,
        })
    }

    fn digest(i: usize) -> String {
        format!("{i:064x}")
    }

    #[test]
    fn entries_are_reused_for_the_ttl_only() {
        let cache = KeyCache::new();
        let t0 = Instant::now();
        let (id, org, user) = (new_id(), new_id(), new_id());
        cache.insert(digest(1), entry(id, org, user, t0), cache.generation());
        assert!(cache.get(&digest(1), t0).is_some());
        assert!(cache.get(&digest(1), t0 + KEY_CACHE_TTL / 2).is_some());
        assert!(cache.get(&digest(1), t0 + KEY_CACHE_TTL).is_none());
        assert!(cache.get(&digest(2), t0).is_none());
    }

    #[test]
    fn invalidation_forgets_a_key_or_all_keys_of_a_member() {
        let cache = KeyCache::new();
        let t0 = Instant::now();
        let (org, other_org, user, other_user) = (new_id(), new_id(), new_id(), new_id());
        let ids: Vec<Uuid> = (0..4).map(|_| new_id()).collect();
        let owners = [
            (org, user),
            (org, user),
            (other_org, user),
            (org, other_user),
        ];
        for (i, (id, (o, u))) in ids.iter().zip(owners).enumerate() {
            cache.insert(digest(i), entry(*id, o, u, t0), cache.generation());
        }
        cache.invalidate_if(|g| g.key.id == ids[0]);
        assert!(cache.get(&digest(0), t0).is_none());
        assert!(cache.get(&digest(1), t0).is_some());
        cache.invalidate_if(|g| g.key.org_id == org && g.key.user_id == user);
        assert!(cache.get(&digest(1), t0).is_none());
        // The same user in another org, and another user in the org, stay.
        assert!(cache.get(&digest(2), t0).is_some());
        assert!(cache.get(&digest(3), t0).is_some());
    }

    #[test]
    fn a_lookup_that_raced_an_invalidation_is_not_cached() {
        let cache = KeyCache::new();
        let t0 = Instant::now();
        let before = cache.generation();
        // A revocation lands while the lookup is reading the store.
        cache.invalidate_if(|_| true);
        cache.insert(digest(1), entry(new_id(), new_id(), new_id(), t0), before);
        assert!(cache.get(&digest(1), t0).is_none());
        cache.insert(
            digest(1),
            entry(new_id(), new_id(), new_id(), t0),
            cache.generation(),
        );
        assert!(cache.get(&digest(1), t0).is_some());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = KeyCache::new();
        let t0 = Instant::now();
        let total = KEY_CACHE_CAPACITY + KEY_CACHE_CAPACITY / 4;
        for i in 0..total {
            cache.insert(
                digest(i),
                entry(new_id(), new_id(), new_id(), t0),
                cache.generation(),
            );
        }
        let len: usize = cache.shards.iter().map(|s| s.read().unwrap().len()).sum();
        assert!(len <= KEY_CACHE_CAPACITY, "{len} entries");
        // The newest entry is always kept.
        assert!(cache.get(&digest(total - 1), t0).is_some());
    }

    #[test]
    fn a_full_shard_sweeps_expired_entries_before_dropping_live_ones() {
        let cache = KeyCache::new();
        let t0 = Instant::now();
        let per_shard = KEY_CACHE_CAPACITY / KEY_CACHE_SHARDS;
        // Same last digit, same shard.
        let digest = |i: usize| format!("{i:063x}0");
        for i in 0..per_shard {
            cache.insert(
                digest(i),
                entry(new_id(), new_id(), new_id(), t0),
                cache.generation(),
            );
        }
        let later = t0 + KEY_CACHE_TTL;
        cache.insert(
            digest(per_shard),
            entry(new_id(), new_id(), new_id(), later),
            cache.generation(),
        );
        let shard = cache.shard(&digest(0)).read().unwrap();
        assert_eq!(shard.len(), 1);
        assert!(shard.contains_key(&digest(per_shard)));
    }
}
