use std::time::Duration;

use alumia_core::limits::{Bucket, Decision, LimiterUnavailable, Limits, RateLimiter, ceil_secs};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::MemoryLimiter;

/// GCRA on Redis: one atomic script, one clock (Redis `TIME`) for every
/// replica. The key holds the theoretical arrival time (ms) and expires when
/// the bucket would be full again.
const GCRA: &str = r#"
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local tolerance = capacity * interval
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return {1, math.floor((tolerance - (new_tat - now)) / interval), 0, new_tat - now}
"#;

/// Gives one token back: the arrival time steps back one interval (the key
/// goes when the bucket is full again). Atomic like [`GCRA`], same clock.
const REFUND: &str = r#"
local interval = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local new_tat = tat - interval
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
end
return 1
"#;

/// Buckets shared by every replica through Redis. Traffic buckets fall back
/// to in-process limits when Redis is unreachable; auth buckets fail closed.
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: redis::Script,
    refund: redis::Script,
    prefix: String,
    fallback: MemoryLimiter,
    limits: Limits,
}

impl RedisLimiter {
    /// Connects lazily, so a server can start while Redis is still coming up.
    pub fn new(url: &str, prefix: &str, limits: Limits) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisLimiter {
            conn,
            script: redis::Script::new(GCRA),
            refund: redis::Script::new(REFUND),
            prefix: prefix.to_string(),
            fallback: MemoryLimiter::new(limits.clone()),
            limits,
        })
    }

    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
    }

    fn key(&self, bucket: Bucket, key: &str) -> String {
        format!("{}rl:{}:{}", self.prefix, bucket.name(), key)
    }

    async fn shared(&self, bucket: Bucket, key: &str) -> Result<Decision, redis::RedisError> {
        let quota = self.limits.get(bucket);
        let interval_ms = (quota.refill_every.as_millis() as u64).max(1);
        let mut conn = self.conn.clone();
        let (allowed, remaining, retry_ms, reset_ms): (i64, i64, i64, i64) = self
            .script
            .key(self.key(bucket, key))
            .arg(interval_ms)
            .arg(quota.capacity)
            .invoke_async(&mut conn)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u32,
            retry_after_secs: if allowed == 1 {
                0
            } else {
                ceil_secs(retry_ms.max(0) as u64)
            },
            reset_secs: ceil_secs(reset_ms.max(0) as u64),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, bucket: Bucket, key: &str) -> Result<Decision, LimiterUnavailable> {
        match self.shared(bucket, key).await {
            Ok(decision) => Ok(decision),
            Err(e) if bucket.fails_closed() => Err(LimiterUnavailable(format!("redis: {e}"))),
            Err(e) => {
                tracing::warn!(error = %e, bucket = bucket.name(), "redis limiter unreachable; using in-process limits");
                Ok(self.fallback.decide(bucket, key))
            }
        }
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn refund(&self, bucket: Bucket, key: &str) -> Result<(), LimiterUnavailable> {
        if !bucket.refundable() {
            return Ok(());
        }
        let interval_ms = (self.limits.get(bucket).refill_every.as_millis() as u64).max(1);
        let mut conn = self.conn.clone();
        let refunded: Result<i64, _> = self
            .refund
            .key(self.key(bucket, key))
            .arg(interval_ms)
            .invoke_async(&mut conn)
            .await;
        match refunded {
            Ok(_) => Ok(()),
            // The check this undoes fell back to the in-process limiter.
            Err(_) if !bucket.fails_closed() => {
                self.fallback.give_back(bucket, key);
                Ok(())
            }
            Err(e) => Err(LimiterUnavailable(format!("redis: {e}"))),
        }
    }

    async fn ready(&self) -> Result<(), LimiterUnavailable> {
        self.ping()
            .await
            .map_err(|e| LimiterUnavailable(format!("redis: {e}")))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
