use std::collections::HashMap;
use std::num::NonZeroU32;

use alumia_core::limits::{Bucket, Decision, LimiterUnavailable, Limits, RateLimiter, ceil_secs};
use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

type Keyed = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// One keyed GCRA limiter per bucket, in this process.
pub struct MemoryLimiter {
    limits: Limits,
    buckets: HashMap<Bucket, Keyed>,
    clock: DefaultClock,
}

impl MemoryLimiter {
    pub fn new(limits: Limits) -> Self {
        let buckets = Bucket::ALL
            .into_iter()
            .map(|bucket| {
                let q = limits.get(bucket);
                let quota = governor::Quota::with_period(q.refill_every)
                    .expect("a non-zero refill period")
                    .allow_burst(NonZeroU32::new(q.capacity.max(1)).expect("non-zero"));
                let limiter = governor::RateLimiter::keyed(quota)
                    .with_middleware::<StateInformationMiddleware>();
                (bucket, limiter)
            })
            .collect();
        MemoryLimiter {
            limits,
            buckets,
            clock: DefaultClock::default(),
        }
    }

    /// Forgets keys whose buckets are full again, so memory stays bounded.
    pub fn retain_recent(&self) {
        for limiter in self.buckets.values() {
            limiter.retain_recent();
        }
    }

    pub fn decide(&self, bucket: Bucket, key: &str) -> Decision {
        let quota = self.limits.get(bucket);
        let per_token_ms = quota.refill_every.as_millis() as u64;
        match self.buckets[&bucket].check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    retry_after_secs: 0,
                    reset_secs: ceil_secs(
                        u64::from(quota.capacity - remaining.min(quota.capacity)) * per_token_ms,
                    )
                    .min(u64::from(quota.capacity) * per_token_ms / 1000 + 1),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    allowed: false,
                    remaining: 0,
                    retry_after_secs: ceil_secs(wait.as_millis() as u64),
                    reset_secs: ceil_secs(u64::from(quota.capacity) * per_token_ms),
                }
            }
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn check(&self, bucket: Bucket, key: &str) -> Result<Decision, LimiterUnavailable> {
        Ok(self.decide(bucket, key))
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alumia_core::limits::Quota;

    #[test]
    fn exactly_the_capacity_is_admitted_per_key() {
        let mut limits = Limits::default();
        limits.set(Bucket::KeyMint, Quota::per_secs(5, 60));
        let limiter = MemoryLimiter::new(limits);
        let admitted: Vec<_> = (0..8)
            .map(|_| limiter.decide(Bucket::KeyMint, "u1|ip"))
            .collect();
        assert_eq!(admitted.iter().filter(|d| d.allowed).count(), 5);
        assert_eq!(admitted[0].remaining, 4);
        assert_eq!(admitted[4].remaining, 0);
        let denied = admitted[5];
        assert!(!denied.allowed);
        assert!((50..=60).contains(&denied.retry_after_secs), "{denied:?}");
        // Another key has its own bucket.
        assert!(limiter.decide(Bucket::KeyMint, "u2|ip").allowed);
        // Buckets are independent.
        assert!(limiter.decide(Bucket::Login, "u1|ip").allowed);
    }
}
