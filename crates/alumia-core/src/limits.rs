//! Rate-limit buckets (spec 02 §7) and the one limiter interface, implemented
//! in-process (governor) and on Redis (a Lua GCRA) by alumia-server.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    KeyMint,
    ApiKey,
    Session,
    Login,
    LoginAccount,
    Setup,
    StepUp,
}

impl Bucket {
    pub const ALL: [Bucket; 7] = [
        Bucket::KeyMint,
        Bucket::ApiKey,
        Bucket::Session,
        Bucket::Login,
        Bucket::LoginAccount,
        Bucket::Setup,
        Bucket::StepUp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bucket::KeyMint => "key-mint",
            Bucket::ApiKey => "api-key",
            Bucket::Session => "session",
            Bucket::Login => "login",
            Bucket::LoginAccount => "login-account",
            Bucket::Setup => "setup",
            Bucket::StepUp => "step-up",
        }
    }

    /// The config-file key: `[limits] api_key = {…}`.
    pub fn config_key(self) -> &'static str {
        match self {
            Bucket::KeyMint => "key_mint",
            Bucket::ApiKey => "api_key",
            Bucket::Session => "session",
            Bucket::Login => "login",
            Bucket::LoginAccount => "login_account",
            Bucket::Setup => "setup",
            Bucket::StepUp => "step_up",
        }
    }

    /// Auth buckets fail closed (503) when the shared limiter is unreachable;
    /// traffic buckets fall back to the in-process limiter.
    pub fn fails_closed(self) -> bool {
        !matches!(self, Bucket::ApiKey | Bucket::Session)
    }
}

/// `capacity` tokens, one more every `refill_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub capacity: u32,
    pub refill_every: Duration,
}

impl Quota {
    pub const fn per_secs(capacity: u32, secs: u64) -> Quota {
        Quota {
            capacity,
            refill_every: Duration::from_secs(secs),
        }
    }

    pub fn per_minute(capacity: u32, per_minute: u32) -> Quota {
        Quota {
            capacity,
            refill_every: Duration::from_micros(60_000_000 / u64::from(per_minute.max(1))),
        }
    }

    /// Tokens per minute, for `RateLimit-Policy`.
    pub fn per_minute_rate(&self) -> u64 {
        (60_000_000 / self.refill_every.as_micros().max(1) as u64).max(1)
    }
}

/// The quotas of every bucket; defaults are the spec's numbers.
#[derive(Debug, Clone)]
pub struct Limits(HashMap<Bucket, Quota>);

impl Default for Limits {
    fn default() -> Self {
        let mut m = HashMap::new();
        m.insert(Bucket::KeyMint, Quota::per_secs(5, 60));
        m.insert(Bucket::ApiKey, Quota::per_minute(200, 1200));
        m.insert(Bucket::Session, Quota::per_minute(200, 1200));
        m.insert(Bucket::Login, Quota::per_secs(10, 30));
        m.insert(Bucket::LoginAccount, Quota::per_secs(10, 90));
        m.insert(Bucket::Setup, Quota::per_secs(5, 60));
        m.insert(Bucket::StepUp, Quota::per_secs(5, 180));
        Limits(m)
    }
}

impl Limits {
    pub fn get(&self, bucket: Bucket) -> Quota {
        self.0[&bucket]
    }
    pub fn set(&mut self, bucket: Bucket, quota: Quota) {
        self.0.insert(bucket, quota);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Tokens left after this request.
    pub remaining: u32,
    /// When denied: whole seconds until one token is back (at least 1).
    pub retry_after_secs: u64,
    /// Whole seconds until the bucket is full again.
    pub reset_secs: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimiterUnavailable(pub String);

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Takes one token from `bucket` for `key` if there is one.
    async fn check(&self, bucket: Bucket, key: &str) -> Result<Decision, LimiterUnavailable>;
    fn limits(&self) -> &Limits;
    /// For `/readyz`: can the limiter reach its shared store (if any)?
    async fn ready(&self) -> Result<(), LimiterUnavailable> {
        Ok(())
    }
    /// `"memory"` or `"redis"`.
    fn kind(&self) -> &'static str;
}

/// Rounds milliseconds up to whole seconds, at least 1 (`Retry-After`).
pub fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}
