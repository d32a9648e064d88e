//! The two implementations of `alumia_core::limits::RateLimiter`: in-process
//! (governor, the default) and Redis (one atomic Lua script per decision),
//! plus the helper that charges a bucket and turns "no" into a 429.

mod memory;
mod redis;

pub use memory::MemoryLimiter;
pub use redis::RedisLimiter;

use alumia_core::limits::{Bucket, Decision, Limits};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::ApiError;
use crate::state::AppState;

/// Takes a token or answers 429 (or 503 when a fail-closed bucket's shared
/// limiter is unreachable).
pub async fn charge(state: &AppState, bucket: Bucket, key: &str) -> Result<Decision, ApiError> {
    let decision = state
        .limiter
        .check(bucket, key)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if decision.allowed {
        Ok(decision)
    } else {
        Err(ApiError::rate_limited(
            bucket.name(),
            decision.retry_after_secs,
        ))
    }
}

/// The `RateLimit-Policy` value of every bucket, rendered once: quotas are
/// fixed for the life of a limiter.
pub struct RateLimitPolicies(Vec<(Bucket, HeaderValue)>);

impl RateLimitPolicies {
    pub fn new(limits: &Limits) -> Self {
        RateLimitPolicies(
            Bucket::ALL
                .into_iter()
                .filter_map(|bucket| {
                    let policy = format!(
                        "\"{}\";q={};w=60",
                        bucket.name(),
                        limits.get(bucket).per_minute_rate()
                    );
                    Some((bucket, HeaderValue::try_from(policy).ok()?))
                })
                .collect(),
        )
    }

    fn get(&self, bucket: Bucket) -> Option<&HeaderValue> {
        self.0.iter().find(|(b, _)| *b == bucket).map(|(_, v)| v)
    }
}

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `RateLimit-Policy` and `RateLimit` (IETF draft) for traffic buckets.
pub fn rate_limit_headers(
    state: &AppState,
    bucket: Bucket,
    decision: &Decision,
    headers: &mut HeaderMap,
) {
    if let Some(policy) = state.rate_limit_policies.get(bucket) {
        headers.insert(RATELIMIT_POLICY.clone(), policy.clone());
    }
    // `"<bucket>";r=<remaining>;t=<reset>`, built by hand into a buffer of
    // the exact size, which the header then owns as is: this runs on every
    // authenticated request, and `format!` plus a copy cost several times more.
    let (mut remaining, mut reset) = ([0u8; 20], [0u8; 20]);
    let parts = [
        b"\"".as_slice(),
        bucket.name().as_bytes(),
        b"\";r=",
        decimal(u64::from(decision.remaining), &mut remaining),
        b";t=",
        decimal(decision.reset_secs, &mut reset),
    ];
    let mut value = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        value.extend_from_slice(part);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
        headers.insert(RATELIMIT.clone(), v);
    }
}

/// `n` in decimal, written to the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_match_display() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
        }
    }
}
