use std::num::NonZeroU32;

use alumia_core::limits::{
    Bucket, Decision, LimiterUnavailable, Limits, Quota, RateLimiter, ceil_secs,
};
use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

type Keyed = governor::RateLimiter<
    LimitKey,
    DefaultKeyedStateStore<LimitKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// A limiter key. governor looks keys up by `&K`, so a `String` key would
/// cost an allocation per decision; the usual keys (a UUID, an IP, a user id
/// and an IP) fit inline. Equality and hashing are by content.
#[derive(Clone)]
enum LimitKey {
    Inline {
        len: u8,
        bytes: [u8; LimitKey::INLINE],
    },
    Heap(Box<str>),
}

impl LimitKey {
    const INLINE: usize = 64;

    fn new(key: &str) -> Self {
        if key.len() > Self::INLINE {
            return LimitKey::Heap(key.into());
        }
        let mut bytes = [0u8; Self::INLINE];
        bytes[..key.len()].copy_from_slice(key.as_bytes());
        LimitKey::Inline {
            len: key.len() as u8,
            bytes,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            LimitKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            LimitKey::Heap(s) => s.as_bytes(),
        }
    }
}

impl PartialEq for LimitKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for LimitKey {}

impl std::hash::Hash for LimitKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// One bucket's quota and its keyed GCRA limiter.
struct Slot {
    bucket: Bucket,
    quota: Quota,
    limiter: Engine,
}

/// governor for most buckets; our own GCRA where a token can be given back
/// (governor has no refund), see [`Bucket::refundable`].
enum Engine {
    Governor(Keyed),
    Refundable(RefundableGcra),
}

/// GCRA (the same arithmetic as the Redis script) over a map of theoretical
/// arrival times, in nanoseconds since `origin`. Only low-traffic buckets
/// use it (failed user-code guesses), so one mutex is plenty.
struct RefundableGcra {
    interval: u64,
    tolerance: u64,
    origin: std::time::Instant,
    tats: std::sync::Mutex<std::collections::HashMap<LimitKey, u64>>,
}

impl RefundableGcra {
    fn new(quota: Quota) -> Self {
        let interval = (quota.refill_every.as_nanos() as u64).max(1);
        RefundableGcra {
            interval,
            tolerance: interval * u64::from(quota.capacity.max(1)),
            origin: std::time::Instant::now(),
            tats: Default::default(),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn tats(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<LimitKey, u64>> {
        self.tats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check(&self, key: &str) -> Decision {
        let now = self.now();
        let key = LimitKey::new(key);
        let mut tats = self.tats();
        let tat = tats.get(&key).copied().unwrap_or(now).max(now);
        let new_tat = tat + self.interval;
        let allow_at = new_tat.saturating_sub(self.tolerance);
        let ms = |nanos: u64| nanos / 1_000_000;
        if allow_at > now {
            return Decision {
                allowed: false,
                remaining: 0,
                retry_after_secs: ceil_secs(ms(allow_at - now).max(1)),
                reset_secs: ceil_secs(ms(tat - now)),
            };
        }
        tats.insert(key, new_tat);
        Decision {
            allowed: true,
            remaining: ((self.tolerance - (new_tat - now)) / self.interval) as u32,
            retry_after_secs: 0,
            reset_secs: ceil_secs(ms(new_tat - now)),
        }
    }

    /// Steps the arrival time back by one interval: the last token returns.
    fn refund(&self, key: &str) {
        let now = self.now();
        let key = LimitKey::new(key);
        let mut tats = self.tats();
        if let Some(tat) = tats.get_mut(&key) {
            *tat = tat.saturating_sub(self.interval);
            if *tat <= now {
                tats.remove(&key);
            }
        }
    }

    fn retain_recent(&self) {
        let now = self.now();
        self.tats().retain(|_, tat| *tat > now);
    }
}

/// One keyed GCRA limiter per bucket, in this process.
pub struct MemoryLimiter {
    limits: Limits,
    /// In `Bucket::ALL` order; found by a scan of a handful of entries,
    /// cheaper than hashing the bucket.
    slots: Vec<Slot>,
    clock: DefaultClock,
}

impl MemoryLimiter {
    pub fn new(limits: Limits) -> Self {
        let slots = Bucket::ALL
            .into_iter()
            .map(|bucket| {
                let q = limits.get(bucket);
                let limiter = if bucket.refundable() {
                    Engine::Refundable(RefundableGcra::new(q))
                } else {
                    let quota = governor::Quota::with_period(q.refill_every)
                        .expect("a non-zero refill period")
                        .allow_burst(NonZeroU32::new(q.capacity.max(1)).expect("non-zero"));
                    Engine::Governor(
                        governor::RateLimiter::keyed(quota)
                            .with_middleware::<StateInformationMiddleware>(),
                    )
                };
                Slot {
                    bucket,
                    quota: q,
                    limiter,
                }
            })
            .collect();
        MemoryLimiter {
            limits,
            slots,
            clock: DefaultClock::default(),
        }
    }

    /// Forgets keys whose buckets are full again, so memory stays bounded.
    pub fn retain_recent(&self) {
        for slot in &self.slots {
            match &slot.limiter {
                Engine::Governor(limiter) => limiter.retain_recent(),
                Engine::Refundable(gcra) => gcra.retain_recent(),
            }
        }
    }

    fn slot(&self, bucket: Bucket) -> &Slot {
        self.slots
            .iter()
            .find(|s| s.bucket == bucket)
            .expect("every bucket has a slot")
    }

    /// Returns the token the last `decide` of a refundable bucket took.
    pub fn give_back(&self, bucket: Bucket, key: &str) {
        if let Engine::Refundable(gcra) = &self.slot(bucket).limiter {
            gcra.refund(key);
        }
    }

    pub fn decide(&self, bucket: Bucket, key: &str) -> Decision {
        let Slot { quota, limiter, .. } = self.slot(bucket);
        let limiter = match limiter {
            Engine::Governor(limiter) => limiter,
            Engine::Refundable(gcra) => return gcra.check(key),
        };
        let per_token_ms = quota.refill_every.as_millis() as u64;
        match limiter.check_key(&LimitKey::new(key)) {
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

    async fn refund(&self, bucket: Bucket, key: &str) -> Result<(), LimiterUnavailable> {
        self.give_back(bucket, key);
        Ok(())
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
        // So do keys too long to be kept inline, even with a common prefix.
        let long = |c: char| format!("{}{c}", "k".repeat(LimitKey::INLINE));
        for _ in 0..5 {
            assert!(limiter.decide(Bucket::KeyMint, &long('a')).allowed);
        }
        assert!(!limiter.decide(Bucket::KeyMint, &long('a')).allowed);
        assert!(limiter.decide(Bucket::KeyMint, &long('b')).allowed);
        // Buckets are independent.
        assert!(limiter.decide(Bucket::Login, "u1|ip").allowed);
    }

    #[test]
    fn refundable_buckets_count_like_the_others_and_take_tokens_back() {
        let mut limits = Limits::default();
        limits.set(Bucket::UserCodeGuess, Quota::per_secs(5, 180));
        let limiter = MemoryLimiter::new(limits);
        let decide = || limiter.decide(Bucket::UserCodeGuess, "u1|ip");
        let first: Vec<_> = (0..5).map(|_| decide()).collect();
        assert!(first.iter().all(|d| d.allowed), "{first:?}");
        assert_eq!(
            first.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [4, 3, 2, 1, 0]
        );
        let denied = decide();
        assert!(!denied.allowed);
        assert!((170..=180).contains(&denied.retry_after_secs), "{denied:?}");
        // A refused decision took nothing, so a refund returns an earlier token.
        limiter.give_back(Bucket::UserCodeGuess, "u1|ip");
        let again = decide();
        assert!(again.allowed && again.remaining == 0, "{again:?}");
        assert!(!decide().allowed);
        // Taking and returning many times costs nothing.
        for _ in 0..20 {
            assert!(limiter.decide(Bucket::UserCodeGuess, "u2|ip").allowed);
            limiter.give_back(Bucket::UserCodeGuess, "u2|ip");
        }
        assert_eq!(limiter.decide(Bucket::UserCodeGuess, "u2|ip").remaining, 4);
        // Refunds of other buckets do nothing.
        for _ in 0..5 {
            assert!(limiter.decide(Bucket::KeyMint, "k").allowed);
        }
        limiter.give_back(Bucket::KeyMint, "k");
        assert!(!limiter.decide(Bucket::KeyMint, "k").allowed);
        // Full buckets are forgotten.
        limiter.give_back(Bucket::UserCodeGuess, "u2|ip");
        limiter.retain_recent();
        let Engine::Refundable(gcra) = &limiter.slot(Bucket::UserCodeGuess).limiter else {
            panic!("user-code-guess is refundable");
        };
        assert_eq!(gcra.tats().len(), 1, "only u1 is still counted");
    }
}
