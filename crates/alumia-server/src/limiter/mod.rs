//! The two implementations of `alumia_core::limits::RateLimiter`: in-process
//! (governor, the default) and Redis (one atomic Lua script per decision),
//! plus the helper that charges a bucket and turns "no" into a 429.

mod memory;
mod redis;

pub use memory::MemoryLimiter;
pub use redis::RedisLimiter;

use alumia_core::limits::{Bucket, Decision};
use axum::http::{HeaderMap, HeaderValue};

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

/// `RateLimit-Policy` and `RateLimit` (IETF draft) for traffic buckets.
pub fn rate_limit_headers(
    state: &AppState,
    bucket: Bucket,
    decision: &Decision,
    headers: &mut HeaderMap,
) {
    let quota = state.limiter.limits().get(bucket);
    let name = bucket.name();
    let policy = format!("\"{name}\";q={};w=60", quota.per_minute_rate());
    let current = format!(
        "\"{name}\";r={};t={}",
        decision.remaining, decision.reset_secs
    );
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&current) {
        headers.insert("ratelimit", v);
    }
}
