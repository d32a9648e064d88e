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
    DeviceCode,
    DeviceToken,
    UserCodeGuess,
    PublicShare,
}

impl Bucket {
    pub const ALL: [Bucket; 11] = [
        Bucket::KeyMint,
        Bucket::ApiKey,
        Bucket::Session,
        Bucket::Login,
        Bucket::LoginAccount,
        Bucket::Setup,
        Bucket::StepUp,
        Bucket::DeviceCode,
        Bucket::DeviceToken,
        Bucket::UserCodeGuess,
        Bucket::PublicShare,
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
            Bucket::DeviceCode => "device-code",
            Bucket::DeviceToken => "device-token",
            Bucket::UserCodeGuess => "user-code-guess",
            Bucket::PublicShare => "public-share",
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
            Bucket::DeviceCode => "device_code",
            Bucket::DeviceToken => "device_token",
            Bucket::UserCodeGuess => "user_code_guess",
            Bucket::PublicShare => "public_share",
        }
    }

    /// Auth buckets fail closed (503) when the shared limiter is unreachable;
    /// traffic buckets fall back to the in-process limiter.
    pub fn fails_closed(self) -> bool {
        !matches!(self, Bucket::ApiKey | Bucket::Session | Bucket::PublicShare)
    }

    /// Buckets whose token can be given back ([`RateLimiter::refund`]):
    /// `user-code-guess` is charged before a user code is looked up, so a
    /// locked-out user learns nothing, and refunded when the code was real,
    /// so only failed guesses cost.
    pub fn refundable(self) -> bool {
        matches!(self, Bucket::UserCodeGuess)
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
        m.insert(Bucket::DeviceCode, Quota::per_secs(10, 60));
        m.insert(Bucket::DeviceToken, Quota::per_secs(30, 2));
        m.insert(Bucket::UserCodeGuess, Quota::per_secs(5, 180));
        m.insert(Bucket::PublicShare, Quota::per_minute(60, 120));
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
    /// Gives back the token a `check` of a [`Bucket::refundable`] bucket
    /// took (it is as if that check never happened); a no-op elsewhere.
    /// Limiters that never deny need not implement it.
    async fn refund(&self, bucket: Bucket, key: &str) -> Result<(), LimiterUnavailable> {
        let _ = (bucket, key);
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_has_a_unique_name_config_key_and_a_default_quota() {
        let limits = Limits::default();
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for bucket in Bucket::ALL {
            assert!(names.insert(bucket.name()), "{bucket:?}");
            assert!(keys.insert(bucket.config_key()), "{bucket:?}");
            assert_eq!(bucket.config_key(), bucket.name().replace('-', "_"));
            assert!(limits.get(bucket).capacity > 0, "{bucket:?}");
        }
    }

    #[test]
    fn device_buckets_have_the_spec_quotas_and_fail_closed() {
        let limits = Limits::default();
        let cases = [
            (Bucket::DeviceCode, "device-code", Quota::per_secs(10, 60)),
            (Bucket::DeviceToken, "device-token", Quota::per_secs(30, 2)),
            (
                Bucket::UserCodeGuess,
                "user-code-guess",
                Quota::per_secs(5, 180),
            ),
            (Bucket::KeyMint, "key-mint", Quota::per_secs(5, 60)),
        ];
        for (bucket, name, quota) in cases {
            assert_eq!(bucket.name(), name);
            assert_eq!(limits.get(bucket), quota, "{name}");
            assert!(bucket.fails_closed(), "{name} is an auth bucket");
        }
        assert!(Bucket::UserCodeGuess.refundable());
        assert!(!Bucket::KeyMint.refundable() && !Bucket::DeviceToken.refundable());
    }
}
