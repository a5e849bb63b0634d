//! Keyed rate limits (governor): per API key, and on the unauthenticated tracker route per
//! client address and per website.
//!
//! A quota of N a minute refills steadily and allows bursts of a sixth of it (ten seconds'
//! worth), not a whole minute's at once. Every limiter forgets keys it has not seen for a while
//! once it holds [`MAX_KEYS`], so that a flood of distinct addresses cannot grow it without end.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::HttpError;

/// Keys a limiter remembers before it drops those whose quota is full again.
pub const MAX_KEYS: usize = 100_000;

/// Requests of one key (an API key, an address, a website) against its quota.
pub struct Keyed<K: Hash + Eq + Clone> {
    inner: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>,
    per_minute: u32,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Keyed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyed")
            .field("per_minute", &self.per_minute)
            .field("keys", &self.inner.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    /// `per_minute` requests a minute per key, in bursts of up to a sixth of that.
    pub fn per_minute(per_minute: u32) -> Arc<Self> {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new((per_minute / 6).max(1)).unwrap_or(NonZeroU32::MIN);
        Arc::new(Keyed {
            inner: RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst)),
            per_minute,
        })
    }

    /// Counts one request of `key`: a 429 in the envelope, with `Retry-After`, naming `what`
    /// and the limit, when its quota is spent.
    pub fn check(&self, key: &K, what: &str) -> Result<(), HttpError> {
        if self.inner.len() >= MAX_KEYS {
            self.inner.retain_recent();
            self.inner.shrink_to_fit();
        }
        self.inner.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut e = HttpError::new(
                429,
                format!(
                    "Rate limit exceeded: {} requests a minute per {what}; retry later",
                    self.per_minute
                ),
            );
            e.retry_after = Some(wait.as_secs().max(1));
            e
        })
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_a_sixth_of_the_minute_and_keys_are_apart() {
        let l = Keyed::<u32>::per_minute(60);
        for _ in 0..10 {
            l.check(&1, "address").unwrap();
        }
        let e = l.check(&1, "address").unwrap_err();
        assert_eq!(e.api.status, 429);
        assert!(
            e.api.message.contains("60 requests a minute per address"),
            "{}",
            e.api.message
        );
        assert!(e.retry_after.is_some());
        l.check(&2, "address").unwrap();
    }

    #[test]
    fn a_flood_of_keys_does_not_grow_the_limiter_without_end() {
        let l = Keyed::<u32>::per_minute(600);
        for k in 0..(MAX_KEYS as u32 + 10) {
            let _ = l.check(&k, "address");
        }
        assert!(l.len() <= MAX_KEYS + 10);
    }
}
