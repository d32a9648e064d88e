//! Device login (RFC 8628; spec 01 §10): `alumia login --device` asks for a
//! code, the user approves it in a signed-in browser, and the CLI's poll
//! turns the approval into a new API key (`createdVia: device`).
//!
//! - The `device_code` (256 random bits) is stored only as its SHA-256.
//! - The `user_code` is 8 letters of [`USER_CODE_ALPHABET`], drawn by
//!   rejection sampling, unique among pending codes (a partial unique index).
//! - A code belongs to no org until it is approved: the approval binds it to
//!   the approver's user and current org, and the key is minted there.
//! - Approve, deny and the exchange flip the row with one conditional
//!   `UPDATE … WHERE status = …`; the exchange inserts the key in the same
//!   transaction, so a `device_code` yields at most one key, even under
//!   concurrent polls.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::clock::to_millis;
use crate::crypto::{random_bytes, random_token, sha256_hex};
use crate::error::{DomainError, DomainResult, StoreError};
use crate::identity::{ClientInfo, Identity, actor};
use crate::model::{ApiKey, KeyOrigin, NewApiKey};
use crate::new_id;
use crate::principal::{
    Principal, SCOPE_MCP_READ, SCOPE_MCP_WRITE, SCOPE_MODELS_READ, SCOPE_TERMINAL,
};
use crate::scope::OrgScope;
use crate::store::StoreResult;

/// The only client allowed to ask for device codes.
pub const CLIENT_ID: &str = "alumia-cli";
/// How the approval page and `lookup` name that client.
pub const CLIENT_NAME: &str = "Alumia CLI";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// A code's life, seconds from issue.
pub const EXPIRES_IN_SECS: i64 = 900;
/// The first polling interval, seconds.
pub const INTERVAL_SECS: i64 = 5;
/// What every `slow_down` adds to the code's interval, for good.
pub const SLOW_DOWN_STEP_SECS: i64 = 5;
/// `device_name`, in Unicode scalar values.
pub const DEVICE_NAME_MAX: usize = 64;
/// 20 consonants without vowels (no words) and without look-alikes of digits.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const USER_CODE_LEN: usize = 8;
/// Every scope the CLI may ask for. `terminal` and `models:read` are always
/// granted; the MCP scopes only when requested and left ticked on the page.
pub const DEVICE_SCOPES: [&str; 4] = [
    SCOPE_TERMINAL,
    SCOPE_MODELS_READ,
    SCOPE_MCP_READ,
    SCOPE_MCP_WRITE,
];
const ALWAYS_GRANTED: [&str; 2] = [SCOPE_TERMINAL, SCOPE_MODELS_READ];
/// Creating a code retries this often when its user code is taken.
const USER_CODE_ATTEMPTS: usize = 5;
/// Stores delete rows this long after they expired (when a new code is created).
pub const KEEP_EXPIRED_FOR_SECS: i64 = 24 * 3600;

// --- codes --------------------------------------------------------------------

/// One user-code letter per byte below 240 (= 12 × 20, so `b % 20` is
/// uniform); bytes from 240 up are discarded. `None` when `bytes` runs out.
pub fn user_code_from_bytes(bytes: impl IntoIterator<Item = u8>) -> Option<String> {
    let alphabet = USER_CODE_ALPHABET.len() as u8;
    let limit = 256 - 256 % u16::from(alphabet);
    let code: String = bytes
        .into_iter()
        .filter(|b| u16::from(*b) < limit)
        .map(|b| char::from(USER_CODE_ALPHABET[usize::from(b % alphabet)]))
        .take(USER_CODE_LEN)
        .collect();
    (code.len() == USER_CODE_LEN).then_some(code)
}

/// A fresh user code (8 letters, no dash) from the OS random source.
pub fn generate_user_code() -> String {
    loop {
        // 32 bytes nearly always hold 8 acceptable ones (P(fail) < 1e-12).
        if let Some(code) = user_code_from_bytes(random_bytes::<32>()) {
            return code;
        }
    }
}

/// What the user typed, as stored: case, dashes and whitespace ignored.
/// `None` unless it is exactly 8 letters of the alphabet.
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid =
        code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// `WDJBMJHT` → `WDJB-MJHT`.
pub fn display_user_code(code: &str) -> String {
    if code.len() == USER_CODE_LEN && code.is_ascii() {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_string()
    }
}

/// A device code's shape: 32 bytes in unpadded base64url (43 characters).
/// Anything else cannot be one, and is refused without a lookup.
pub fn looks_like_device_code(code: &str) -> bool {
    code.len() == 43
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The requested scope string → the scopes asked for, in canonical order,
/// always with `terminal` and `models:read`. `None` for an unknown scope.
pub fn parse_scope(scope: Option<&str>) -> Option<Vec<String>> {
    let words: Vec<&str> = scope.unwrap_or_default().split_whitespace().collect();
    if words.iter().any(|w| !DEVICE_SCOPES.contains(w)) {
        return None;
    }
    Some(
        DEVICE_SCOPES
            .iter()
            .filter(|s| ALWAYS_GRANTED.contains(s) || words.contains(s))
            .map(|s| s.to_string())
            .collect(),
    )
}

/// What an approval grants: `terminal`, `models:read`, and each MCP scope
/// that was requested and (when the page sent its ticks) left ticked.
pub fn granted_scopes(requested: &[String], ticked: Option<&[String]>) -> Vec<String> {
    DEVICE_SCOPES
        .iter()
        .filter(|s| {
            ALWAYS_GRANTED.contains(s)
                || (requested.iter().any(|r| r == *s)
                    && ticked.is_none_or(|t| t.iter().any(|g| g == *s)))
        })
        .map(|s| s.to_string())
        .collect()
}

// --- storage --------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// Approved; the next poll exchanges it for a key.
    Approved,
    /// Denied; polls get `access_denied`.
    Denied,
    /// Exchanged for a key; polls get `invalid_grant`.
    Exchanged,
    /// A pending code past its expiry whose user code was needed again.
    Expired,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Exchanged => "exchanged",
            DeviceStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "exchanged" => DeviceStatus::Exchanged,
            "expired" => DeviceStatus::Expired,
            _ => return None,
        })
    }
}

/// A stored device authorization (never its device code, nor that code's hash).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCode {
    pub id: Uuid,
    /// Normalized: 8 letters, no dash.
    pub user_code: String,
    pub client_id: String,
    /// Requested scopes, canonical order (always with terminal, models:read).
    pub scopes: Vec<String>,
    pub device_name: Option<String>,
    pub request_ip: String,
    pub status: DeviceStatus,
    /// Current polling interval; grows by 5 s with every `slow_down`.
    pub interval_secs: i64,
    pub last_polled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set by the approval or denial: who decided, in which org.
    pub user_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    /// What the approval granted (empty until then).
    pub granted_scopes: Vec<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The key the exchange minted.
    pub api_key_id: Option<Uuid>,
    pub exchanged_at: Option<DateTime<Utc>>,
}

impl DeviceCode {
    /// Past its life (`expires_at` itself is still valid). Compared in
    /// whole milliseconds, as the stores keep time and compare it in SQL.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        to_millis(now) > to_millis(self.expires_at)
    }
}

/// A code to insert as `pending`.
#[derive(Clone)]
pub struct NewDeviceCode {
    pub id: Uuid,
    /// SHA-256 hex of the device code.
    pub device_code_hash: String,
    pub user_code: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub device_name: Option<String>,
    pub request_ip: String,
    pub interval_secs: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewDeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDeviceCode")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a poll of a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// Still pending, polled no sooner than its interval.
    Pending { interval_secs: i64 },
    /// Still pending, polled too soon: the interval grew to this.
    SlowDown { interval_secs: i64 },
    /// No longer pending (decided meanwhile): read it again.
    NotPending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceDecision {
    Approve { scopes: Vec<String> },
    Deny,
}

/// The storage contract of device login. A supertrait of [`crate::Store`].
/// Codes belong to no org until approved, so the lookups are unscoped and
/// named for what they find; the decision and the exchange take the scope
/// the code is bound to.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Inserts a pending code. `Conflict("user_code")` when a live pending
    /// code has the same user code (the caller draws another). In the same
    /// transaction: an expired pending code with that user code is marked
    /// `expired`, and rows expired for over a day are deleted.
    async fn create_device_code(&self, code: &NewDeviceCode) -> StoreResult<()>;

    /// Unscoped by design: how the token endpoint finds its code.
    async fn find_device_code_by_hash(&self, hash: &str) -> StoreResult<Option<DeviceCode>>;

    /// The code a user typed: the pending one live at `now` if any, else the
    /// newest with that user code.
    async fn find_device_code_by_user_code(
        &self,
        user_code: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DeviceCode>>;

    /// Records a poll of a pending code at `at`. Sooner than its interval
    /// after the previous poll: the interval grows by `step_secs` (and stays
    /// grown). Polls of one code are serialized.
    async fn poll_device_code(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        step_secs: i64,
    ) -> StoreResult<PollOutcome>;

    /// Pending and live at `at` → approved or denied by `user` in `org`.
    /// False (nothing written) when the code is not pending or has expired.
    async fn decide_device_code(
        &self,
        org: &OrgScope,
        id: Uuid,
        user: Uuid,
        decision: &DeviceDecision,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// In one transaction: an approved, live code of `org` and `key.user_id`
    /// becomes `exchanged`, and `key` is inserted. `None` (nothing written)
    /// when the code is not approved any more, e.g. a concurrent poll won.
    async fn exchange_device_code(
        &self,
        org: &OrgScope,
        id: Uuid,
        key: &NewApiKey,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<ApiKey>>;
}

// --- the flow -------------------------------------------------------------------

/// An RFC 6749 §5.2 / RFC 8628 §3.5 error: HTTP 400 `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    InvalidRequest(&'static str),
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
    AuthorizationPending,
    SlowDown { interval_secs: i64 },
    AccessDenied,
    ExpiredToken,
    InvalidGrant(&'static str),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::AuthorizationPending => "authorization_pending",
            OAuthError::SlowDown { .. } => "slow_down",
            OAuthError::AccessDenied => "access_denied",
            OAuthError::ExpiredToken => "expired_token",
            OAuthError::InvalidGrant(_) => "invalid_grant",
        }
    }

    /// A human sentence; never contains a code or a key.
    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidRequest(why) | OAuthError::InvalidGrant(why) => why.to_string(),
            OAuthError::InvalidClient => format!("client_id must be {CLIENT_ID}"),
            OAuthError::InvalidScope => format!("scope may only list {}", DEVICE_SCOPES.join(", ")),
            OAuthError::UnsupportedGrantType => format!("grant_type must be {GRANT_TYPE}"),
            OAuthError::AuthorizationPending => "the user has not decided yet".into(),
            OAuthError::SlowDown { interval_secs } => {
                format!("polled too soon; poll at most every {interval_secs} s")
            }
            OAuthError::AccessDenied => "the user denied the request".into(),
            OAuthError::ExpiredToken => "the device code has expired; start again".into(),
        }
    }
}

/// The token and code endpoints answer RFC errors, or (for outages and
/// bugs) the usual envelope.
#[derive(Debug)]
pub enum DeviceFlowError {
    OAuth(OAuthError),
    Domain(DomainError),
}

impl From<OAuthError> for DeviceFlowError {
    fn from(e: OAuthError) -> Self {
        DeviceFlowError::OAuth(e)
    }
}

impl From<DomainError> for DeviceFlowError {
    fn from(e: DomainError) -> Self {
        DeviceFlowError::Domain(e)
    }
}

impl From<StoreError> for DeviceFlowError {
    fn from(e: StoreError) -> Self {
        DeviceFlowError::Domain(e.into())
    }
}

/// Why a typed user code cannot be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCodeError {
    /// Unknown, malformed or expired: `404 invalid_user_code`, a failed guess.
    Unknown,
    /// Approved, denied or exchanged already: `409 already_decided`.
    AlreadyDecided,
}

/// `POST /api/v1/auth/device/code`, as sent (form or JSON).
#[derive(Debug, Clone, Default)]
pub struct DeviceStart {
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub device_name: Option<String>,
}

/// What the CLI is told: the device code appears here and nowhere else.
#[derive(Clone)]
pub struct IssuedDeviceCode {
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub expires_in: i64,
    pub interval: i64,
}

impl std::fmt::Debug for IssuedDeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedDeviceCode")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/auth/device/token`, as sent (form or JSON).
#[derive(Clone, Default)]
pub struct DeviceTokenRequest {
    pub grant_type: Option<String>,
    pub device_code: Option<String>,
    pub client_id: Option<String>,
}

impl std::fmt::Debug for DeviceTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A successful exchange: the new key and its plaintext (shown once).
#[derive(Clone)]
pub struct DeviceToken {
    pub key: ApiKey,
    pub access_token: String,
    /// Space-separated, canonical order.
    pub scope: String,
}

impl std::fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceToken")
            .field("key_prefix", &self.key.prefix)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn check_client(client_id: Option<String>) -> Result<(), OAuthError> {
    match present(client_id).as_deref() {
        None => Err(OAuthError::InvalidRequest("client_id is required")),
        Some(CLIENT_ID) => Ok(()),
        Some(_) => Err(OAuthError::InvalidClient),
    }
}

/// `device_name`: trimmed, at most 64 characters, no control characters;
/// empty means none.
fn parse_device_name(raw: Option<String>) -> Result<Option<String>, OAuthError> {
    let Some(name) = raw.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if crate::validate::char_len(&name) > DEVICE_NAME_MAX {
        return Err(OAuthError::InvalidRequest(
            "device_name must be at most 64 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(OAuthError::InvalidRequest(
            "device_name must not contain control characters",
        ));
    }
    Ok(Some(name))
}

impl Identity {
    /// `POST /api/v1/auth/device/code`: a new pending code (the caller has
    /// charged the `device-code` bucket).
    pub async fn device_start(
        &self,
        input: DeviceStart,
        request_ip: &str,
    ) -> Result<IssuedDeviceCode, DeviceFlowError> {
        check_client(input.client_id)?;
        let scopes = parse_scope(input.scope.as_deref()).ok_or(OAuthError::InvalidScope)?;
        let device_name = parse_device_name(input.device_name)?;
        let device_code = random_token();
        let now = self.now();
        let mut code = NewDeviceCode {
            id: new_id(),
            device_code_hash: sha256_hex(device_code.as_bytes()),
            user_code: generate_user_code(),
            client_id: CLIENT_ID.to_string(),
            scopes,
            device_name,
            request_ip: request_ip.to_string(),
            interval_secs: INTERVAL_SECS,
            created_at: now,
            expires_at: now + Duration::seconds(EXPIRES_IN_SECS),
        };
        let mut attempts = 0;
        loop {
            match self.store().create_device_code(&code).await {
                Ok(()) => break,
                // Another pending code holds this user code: draw again.
                Err(StoreError::Conflict("user_code")) if attempts + 1 < USER_CODE_ATTEMPTS => {
                    attempts += 1;
                    code.user_code = generate_user_code();
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(IssuedDeviceCode {
            device_code,
            user_code: display_user_code(&code.user_code),
            expires_in: EXPIRES_IN_SECS,
            interval: INTERVAL_SECS,
        })
    }

    /// `POST /api/v1/auth/device/token`: one poll (the caller has charged
    /// the `device-token` bucket).
    pub async fn device_token(
        &self,
        input: DeviceTokenRequest,
    ) -> Result<DeviceToken, DeviceFlowError> {
        match present(input.grant_type).as_deref() {
            None => return Err(OAuthError::InvalidRequest("grant_type is required").into()),
            Some(GRANT_TYPE) => {}
            Some(_) => return Err(OAuthError::UnsupportedGrantType.into()),
        }
        check_client(input.client_id)?;
        let device_code = present(input.device_code)
            .ok_or(OAuthError::InvalidRequest("device_code is required"))?;
        let unknown = OAuthError::InvalidGrant("the device code is not valid");
        if !looks_like_device_code(&device_code) {
            return Err(unknown.into());
        }
        let hash = sha256_hex(device_code.as_bytes());
        // A poll that races a decision or another poll reads the row again;
        // the second read sees the settled state.
        for _ in 0..3 {
            let code = self
                .store()
                .find_device_code_by_hash(&hash)
                .await?
                .ok_or_else(|| unknown.clone())?;
            let now = self.now();
            match code.status {
                DeviceStatus::Exchanged => {
                    return Err(OAuthError::InvalidGrant("the device code was already used").into());
                }
                DeviceStatus::Denied => return Err(OAuthError::AccessDenied.into()),
                DeviceStatus::Expired => return Err(OAuthError::ExpiredToken.into()),
                _ if code.is_expired(now) => return Err(OAuthError::ExpiredToken.into()),
                DeviceStatus::Approved => {
                    if let Some(token) = self.exchange_device_code(&code, now).await? {
                        return Ok(token);
                    }
                }
                DeviceStatus::Pending => {
                    match self
                        .store()
                        .poll_device_code(code.id, now, SLOW_DOWN_STEP_SECS)
                        .await?
                    {
                        PollOutcome::Pending { .. } => {
                            return Err(OAuthError::AuthorizationPending.into());
                        }
                        PollOutcome::SlowDown { interval_secs } => {
                            return Err(OAuthError::SlowDown { interval_secs }.into());
                        }
                        PollOutcome::NotPending => {}
                    }
                }
            }
        }
        Err(DomainError::Unavailable("the device code kept changing; retry".into()).into())
    }

    /// Mints the key of an approved code; `None` when another poll won.
    async fn exchange_device_code(
        &self,
        code: &DeviceCode,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceToken>, DeviceFlowError> {
        let (Some(org_id), Some(user_id)) = (code.org_id, code.user_id) else {
            return Err(
                DomainError::Internal("an approved device code has no owner".into()).into(),
            );
        };
        let scope = OrgScope::new(org_id);
        // The approver left the org since: no key for them there.
        if self.store().get_role(&scope, user_id).await?.is_none() {
            return Err(OAuthError::AccessDenied.into());
        }
        let name = format!(
            "{CLIENT_NAME} ({})",
            code.device_name.as_deref().unwrap_or(&code.request_ip)
        );
        let (row, plaintext) = self.new_key_row(
            user_id,
            name,
            code.granted_scopes.clone(),
            None,
            KeyOrigin::Device,
        );
        let Some(key) = self
            .store()
            .exchange_device_code(&scope, code.id, &row, now)
            .await?
        else {
            return Ok(None);
        };
        self.audit(
            &scope,
            "api_key.created",
            ("device", Some(user_id), None),
            &code.request_ip,
            ("api_key", key.id.to_string()),
            json!({ "prefix": key.prefix, "scopes": key.scopes, "createdVia": "device" }),
        )
        .await;
        Ok(Some(DeviceToken {
            scope: key.scopes.join(" "),
            key,
            access_token: plaintext,
        }))
    }

    /// Checks `grantScopes` of an approval: known device scopes only (422).
    pub fn device_check_grant(grant_scopes: Option<&[String]>) -> DomainResult<()> {
        for (i, s) in grant_scopes.unwrap_or_default().iter().enumerate() {
            if !DEVICE_SCOPES.contains(&s.as_str()) {
                return Err(DomainError::invalid(
                    &format!("grantScopes.{i}"),
                    format!("must be one of {}", DEVICE_SCOPES.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The code a signed-in user typed (lookup, approve, deny). The caller
    /// charges `user-code-guess` for [`UserCodeError::Unknown`].
    pub async fn device_find(
        &self,
        p: &Principal,
        typed: &str,
    ) -> DomainResult<Result<DeviceCode, UserCodeError>> {
        p.require_browser_session()?;
        let Some(user_code) = normalize_user_code(typed) else {
            return Ok(Err(UserCodeError::Unknown));
        };
        let now = self.now();
        let Some(code) = self
            .store()
            .find_device_code_by_user_code(&user_code, now)
            .await?
        else {
            return Ok(Err(UserCodeError::Unknown));
        };
        Ok(
            if code.is_expired(now) || code.status == DeviceStatus::Expired {
                Err(UserCodeError::Unknown)
            } else if code.status != DeviceStatus::Pending {
                Err(UserCodeError::AlreadyDecided)
            } else {
                Ok(code)
            },
        )
    }

    /// Approves `code` for the user in their current org, granting the
    /// requested MCP scopes that are in `ticked` (all of them when `None`).
    /// Needs a fresh step-up. Returns the granted scopes.
    pub async fn device_approve(
        &self,
        p: &Principal,
        code: &DeviceCode,
        ticked: Option<&[String]>,
        client: &ClientInfo,
    ) -> DomainResult<Result<Vec<String>, UserCodeError>> {
        p.require_step_up(self.now(), self.settings().step_up_window_secs)?;
        let scopes = granted_scopes(&code.scopes, ticked);
        let decision = DeviceDecision::Approve {
            scopes: scopes.clone(),
        };
        if let Err(e) = self.decide(p, code, &decision, client).await? {
            return Ok(Err(e));
        }
        Ok(Ok(scopes))
    }

    /// Denies `code`: its polls get `access_denied` from now on.
    pub async fn device_deny(
        &self,
        p: &Principal,
        code: &DeviceCode,
        client: &ClientInfo,
    ) -> DomainResult<Result<(), UserCodeError>> {
        p.require_browser_session()?;
        self.decide(p, code, &DeviceDecision::Deny, client).await
    }

    async fn decide(
        &self,
        p: &Principal,
        code: &DeviceCode,
        decision: &DeviceDecision,
        client: &ClientInfo,
    ) -> DomainResult<Result<(), UserCodeError>> {
        let now = self.now();
        let decided = self
            .store()
            .decide_device_code(&p.org, code.id, p.user_id, decision, now)
            .await?;
        if !decided {
            // Decided or expired since the lookup: say which.
            let again = self
                .store()
                .find_device_code_by_user_code(&code.user_code, now)
                .await?
                .filter(|c| c.id == code.id);
            return Ok(Err(match again {
                Some(c) if !c.is_expired(now) && c.status != DeviceStatus::Expired => {
                    UserCodeError::AlreadyDecided
                }
                _ => UserCodeError::Unknown,
            }));
        }
        let (kind, data) = match decision {
            DeviceDecision::Approve { scopes } => ("device.approved", json!({ "scopes": scopes })),
            DeviceDecision::Deny => ("device.denied", json!({})),
        };
        let mut data = data;
        data["deviceName"] = json!(code.device_name);
        data["requestIp"] = json!(code.request_ip);
        self.audit(
            &p.org,
            kind,
            actor(p),
            &client.ip,
            ("device_code", code.id.to_string()),
            data,
        )
        .await;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_only_the_alphabet_and_discard_biased_bytes() {
        // Bytes from 240 up are skipped; below, `b % 20` picks the letter.
        let bytes = [0u8, 19, 20, 239, 240, 255, 250, 1, 2, 3, 4];
        assert_eq!(user_code_from_bytes(bytes).as_deref(), Some("BZBZCDFG"));
        assert_eq!(user_code_from_bytes([240u8; 32]), None, "all discarded");
        assert_eq!(user_code_from_bytes([0u8; 7]), None, "too few bytes");
        for _ in 0..1000 {
            let code = generate_user_code();
            assert_eq!(code.len(), 8, "{code}");
            assert!(
                code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)),
                "{code}"
            );
        }
    }

    /// 800,000 letters over 20 letters: a modulo bias (bytes ≥ 240 kept)
    /// would give a chi-square near 800; uniform letters stay far below 60
    /// (19 degrees of freedom: P(χ² > 60) ≈ 4·10⁻⁶).
    #[test]
    fn user_code_letters_are_uniform() {
        let mut counts = [0u64; 20];
        for _ in 0..100_000 {
            for b in generate_user_code().bytes() {
                let i = USER_CODE_ALPHABET.iter().position(|a| *a == b).unwrap();
                counts[i] += 1;
            }
        }
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / 20.0;
        let chi2: f64 = counts
            .iter()
            .map(|c| (*c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 60.0, "chi-square {chi2:.1}: {counts:?}");
    }

    #[test]
    fn typed_codes_ignore_case_dashes_and_spaces() {
        for typed in [
            "WDJB-MJHT",
            "wdjbmjht",
            " wdjb mjht ",
            "Wd-Jb-Mj-Ht",
            "WDJB\tMJHT",
        ] {
            assert_eq!(
                normalize_user_code(typed).as_deref(),
                Some("WDJBMJHT"),
                "{typed:?}"
            );
        }
        for typed in [
            "",
            "WDJB-MJH",
            "WDJB-MJHTB",
            "WDJA-MJHT",
            "WDJB-MJH1",
            "WDJB_MJHT",
            "ŴDJB-MJHT",
        ] {
            assert_eq!(normalize_user_code(typed), None, "{typed:?}");
        }
        assert_eq!(display_user_code("WDJBMJHT"), "WDJB-MJHT");
    }

    #[test]
    fn device_codes_have_one_shape() {
        let code = random_token();
        assert!(looks_like_device_code(&code), "{code}");
        assert!(!looks_like_device_code(&code[1..]));
        assert!(!looks_like_device_code(&format!("{}=", &code[1..])));
        assert!(!looks_like_device_code(""));
    }

    #[test]
    fn scopes_are_known_canonical_and_always_include_terminal_and_models_read() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_scope(None), Some(s(&["terminal", "models:read"])));
        assert_eq!(
            parse_scope(Some("mcp:write  terminal mcp:read")),
            Some(s(&["terminal", "models:read", "mcp:read", "mcp:write"]))
        );
        assert_eq!(parse_scope(Some("mcp:read admin")), None);
        assert_eq!(parse_scope(Some("billing:machine:charge")), None);

        let requested = s(&["terminal", "models:read", "mcp:read"]);
        assert_eq!(
            granted_scopes(&requested, None),
            s(&["terminal", "models:read", "mcp:read"])
        );
        assert_eq!(
            granted_scopes(&requested, Some(&s(&["mcp:read", "mcp:write"]))),
            s(&["terminal", "models:read", "mcp:read"]),
            "an unrequested scope is never granted"
        );
        assert_eq!(
            granted_scopes(&requested, Some(&[])),
            s(&["terminal", "models:read"]),
            "an unticked scope is not granted"
        );
    }

    #[test]
    fn device_names_are_bounded_and_printable() {
        assert_eq!(parse_device_name(None), Ok(None));
        assert_eq!(parse_device_name(Some("  ".into())), Ok(None));
        assert_eq!(
            parse_device_name(Some(" laptop ".into())),
            Ok(Some("laptop".into()))
        );
        assert!(parse_device_name(Some("é".repeat(64))).is_ok());
        assert!(parse_device_name(Some("é".repeat(65))).is_err());
        assert!(parse_device_name(Some("a\nb".into())).is_err());
    }
}
