//! When a flush saves a website's ingest state (see [`crate::Engine::flush`]).
//!
//! The state is encoded under the ingest lock, so every write waits meanwhile: about 0.2 µs a
//! visitor on two threads ([`crate::state_encoding`]; 0.33–0.41 µs on one, which took 60–210
//! ms at 4M events, 480k visitors, and 1.5 s at 40M, 5M visitors). A flush
//! therefore saves it only while that wait is estimated to stay within
//! [`crate::EngineConfig::checkpoint_max_pause`], and at most once per twenty times the last
//! encoding took. A state too large for that is saved at a clean stop only, and rebuilt from
//! the stored events after a crash.
//!
//! The estimate is the last encoding's time a visitor, and an encoding slowed by other work
//! (the start-up's decoding of resident columns, a heavy query) would otherwise stop the
//! checkpoints for good, since a refused one measures nothing. So each flush that refuses one
//! lowers the estimate by [`DECAY_ON_REFUSAL`], never below [`FIRST_ESTIMATE_PER_VISITOR`]:
//! the checkpoint is tried again after some flushes, and a state truly too slow to encode
//! costs one wait past the budget every so many flushes, not one at every flush.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How many times its own encoding time a website's next checkpoint waits: writes spend at
/// most a twentieth of their time waiting for checkpoints.
const SPACING: u32 = 20;

/// Encoding time a visitor is assumed to cost before one was measured (measured on two
/// threads: 0.15–0.18 µs at 412k visitors, 0.27–0.42 µs at 875k; on one, 0.13–0.44 µs at 4M events, 0.29 µs at
/// 40M). At the default pause, a state of up to a million visitors (the default number held
/// in memory) is then saved at flushes.
const FIRST_ESTIMATE_PER_VISITOR: Duration = Duration::from_nanos(250);

/// What a refused checkpoint leaves of the website's per-visitor estimate (5 % less a
/// refusal: an estimate 1.5 times the budget fits again after eight refused flushes).
const DECAY_ON_REFUSAL: f64 = 0.95;

/// The checkpoints taken so far, per website.
#[derive(Debug, Default)]
pub(crate) struct Checkpoints {
    sites: HashMap<String, Taken>,
}

#[derive(Debug, Clone, Copy)]
struct Taken {
    next: Instant,
    per_visitor: Duration,
}

impl Checkpoints {
    /// Whether a flush now should save `site`'s ingest state of `visitors` visitors, writes
    /// waiting for at most `max_pause` meanwhile. A refusal for the estimated wait lowers the
    /// estimate (see the module docs).
    pub fn due(&mut self, site: &str, visitors: usize, max_pause: Duration) -> bool {
        let last = self.sites.get_mut(site);
        let per_visitor = last
            .as_ref()
            .map_or(FIRST_ESTIMATE_PER_VISITOR, |t| t.per_visitor);
        let estimate = per_visitor.saturating_mul(u32::try_from(visitors).unwrap_or(u32::MAX));
        let spaced = last.as_ref().is_none_or(|t| t.next <= Instant::now());
        if spaced && estimate > max_pause {
            if let Some(t) = last {
                t.per_visitor = t
                    .per_visitor
                    .mul_f64(DECAY_ON_REFUSAL)
                    .max(FIRST_ESTIMATE_PER_VISITOR);
            }
            return false;
        }
        spaced
    }

    /// Records that encoding `site`'s state of `visitors` visitors took `took`.
    pub fn taken(&mut self, site: &str, visitors: usize, took: Duration) {
        let per_visitor = took / u32::try_from(visitors.max(1)).unwrap_or(u32::MAX);
        let next = Instant::now() + took * SPACING;
        self.sites
            .insert(site.to_owned(), Taken { next, per_visitor });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_too_large_to_encode_in_the_pause_is_not_saved_at_flushes() {
        let pause = Duration::from_millis(250);
        let mut c = Checkpoints::default();
        // 250 ns a visitor: a million visitors fit in 250 ms, 1.01 million do not.
        assert!(c.due("w", 1_000_000, pause));
        assert!(!c.due("w", 1_010_000, pause));
        assert!(!c.due(
            "w",
            1,
            Duration::ZERO.saturating_add(Duration::from_nanos(1))
        ));
        // Measured: 1 µs a visitor; and the next waits twenty times the encoding.
        c.taken("w", 100_000, Duration::from_millis(100));
        assert!(!c.due("w", 100_000, pause), "2 s have not passed");
        c.sites.get_mut("w").unwrap().next = Instant::now();
        assert!(c.due("w", 250_000, pause));
        assert!(!c.due("w", 260_000, pause));
        assert!(c.due("other", 1_000_000, pause), "each website on its own");
    }

    #[test]
    fn a_slow_encoding_is_tried_again_after_some_refused_flushes() {
        let pause = Duration::from_millis(250);
        let mut c = Checkpoints::default();
        // 400 ms for a million visitors: over the budget.
        c.taken("w", 1_000_000, Duration::from_millis(400));
        c.sites.get_mut("w").unwrap().next = Instant::now();
        let refusals = (0..20).take_while(|_| !c.due("w", 500_000, pause)).count();
        // 0.4 µs × 500k = 200 ms fits at once; a million visitors needs the estimate lowered.
        assert_eq!(refusals, 0);
        let refusals = (0..20)
            .take_while(|_| !c.due("w", 1_000_000, pause))
            .count();
        assert!((1..20).contains(&refusals), "{refusals} refusals");
        // Never below the first estimate: 1.2M visitors at 0.25 µs is over the budget for good.
        assert!((0..100).all(|_| !c.due("w", 1_200_000, pause)));
        // A flush before the spacing has passed refuses without lowering anything.
        c.taken("w", 1_000_000, Duration::from_millis(400));
        let before = c.sites["w"].per_visitor;
        assert!(!c.due("w", 1_000_000, pause));
        assert_eq!(c.sites["w"].per_visitor, before);
    }
}
