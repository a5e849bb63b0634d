//! The ingest state's saved form ([`crate::store::Saved::Ingest`]), encoded on two threads.
//!
//! A flush encodes a website's ingest state under the ingest lock, so every write waits
//! meanwhile (see [`crate::checkpoint`]); most of that time goes into the visitor map, whose
//! entries point to session ids and attributes spread over the heap. [`encode_ingest_state`]
//! gives the same bytes as `postcard::to_stdvec` of the state, in parts (a test holds them
//! equal, so the saved files and their reading are unchanged), with the visitor map's entries
//! encoded in pieces by two threads at once. Postcard frames nothing but a map's length, so
//! the pieces' bytes put one after the other are the map's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::ser::{Serialize, SerializeTuple, Serializer};

use crate::error::{Error, Result};
use crate::ingest::IngestState;

/// Visitors below which one thread encodes the map: a thread costs more than it saves.
const PARALLEL_FROM_VISITORS: usize = 50_000;

/// Pieces the visitor map is cut into, which the two threads take in turn as they finish
/// the one before: the halves of the map, or the map and the fields after it, took unequal
/// times, and the faster thread waited.
const PIECES: usize = 16;

/// `postcard::to_stdvec(state)`, in parts to be written one after the other: the visitor map
/// encoded on two threads when it is large. The parts are left apart so that joining them (a
/// copy of the whole) happens when they are written, after the ingest lock is released.
pub(crate) fn encode_ingest_state(state: &IngestState) -> Result<Vec<Vec<u8>>> {
    let visitors = state.sessions.visitor_entries();
    if visitors.len() < PARALLEL_FROM_VISITORS {
        return Ok(vec![postcard::to_stdvec(state).map_err(failed)?]);
    }
    let pieces: Vec<&[(&_, &_)]> = visitors.chunks(visitors.len().div_ceil(PIECES)).collect();
    // Job 0 is the fields after the map; job i > 0 is piece i - 1.
    let next = AtomicUsize::new(0);
    let work = || -> std::result::Result<Vec<(usize, Vec<u8>)>, postcard::Error> {
        let mut done = Vec::new();
        loop {
            let job = next.fetch_add(1, Ordering::Relaxed);
            let bytes = match job {
                0 => postcard::to_stdvec(&state.after_visitors())?,
                j if j <= pieces.len() => postcard::to_stdvec(&Entries(pieces[j - 1]))?,
                _ => return Ok(done),
            };
            done.push((job, bytes));
        }
    };
    let (theirs, ours) = std::thread::scope(|scope| {
        let theirs = scope.spawn(work);
        let ours = work();
        (theirs.join(), ours)
    });
    let theirs =
        theirs.map_err(|_| Error::Internal("encoding the ingest state panicked".into()))?;
    let mut jobs = theirs.map_err(failed)?;
    jobs.extend(ours.map_err(failed)?);
    jobs.sort_unstable_by_key(|(job, _)| *job);
    let mut jobs = jobs.into_iter().map(|(_, bytes)| bytes);
    let after = jobs.next().unwrap_or_default();
    // The map's length, as postcard writes it before the entries, then the pieces in order.
    let mut parts = vec![postcard::to_stdvec(&visitors.len()).map_err(failed)?];
    parts.extend(jobs);
    parts.push(after);
    Ok(parts)
}

/// [`encode_ingest_state`] of `site`'s `state`, and how long it took (a flush's writes wait
/// that long; the debug log has it, with the state's size).
pub(crate) fn encode_timed(site: &str, state: &IngestState) -> Result<(Vec<Vec<u8>>, Duration)> {
    let started = Instant::now();
    let parts = encode_ingest_state(state)?;
    let took = started.elapsed();
    tracing::debug!(
        site,
        visitors = state.sessions.visitors(),
        bytes = parts.iter().map(Vec::len).sum::<usize>(),
        ms = took.as_secs_f64() * 1e3,
        "ingest state encoded"
    );
    Ok((parts, took))
}

fn failed(e: postcard::Error) -> Error {
    Error::Internal(format!("encoding the saved ingest state: {e}"))
}

/// Map entries, serialized one after the other with no length (a tuple, for postcard).
struct Entries<'a, K, V>(&'a [(&'a K, &'a V)]);

impl<K: Serialize, V: Serialize> Serialize for Entries<'_, K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len() * 2)?;
        for (key, value) in self.0 {
            tuple.serialize_element(key)?;
            tuple.serialize_element(value)?;
        }
        tuple.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SessionAttrs;
    use crate::ingest::{StateLimits, VisitorProfile};
    use crate::session::EventKey;

    /// A state of `visitors` visitors: sessions with and without attributes, transaction ids,
    /// profiles, and some visitors and ids evicted.
    fn state(visitors: usize) -> IngestState {
        let mut state = IngestState::default();
        for v in 0..visitors {
            let id = format!("visitor-{v}");
            let key = EventKey {
                visitor_id: &id,
                session_id: (v % 3 == 0).then_some("tracker-session"),
                ts_us: 1_700_000_000_000_000 + v as i64 * 60_000_000,
                is_pageview: v % 5 != 0,
            };
            state.sessions.assign_key(key, || SessionAttrs {
                country_code: Some("US".into()),
                city: (v % 2 == 0).then(|| "Springfield".into()),
                ..SessionAttrs::default()
            });
            if v % 7 == 0 {
                state.transactions.insert(&format!("tx-{v}"));
                let profile = VisitorProfile {
                    customer_name: Some(format!("Customer {v}")),
                    ..VisitorProfile::default()
                };
                state.profiles.insert(id, profile);
            }
        }
        state.sessions.forget_idle_attrs(visitors / 2);
        state.next_event_seq = 42;
        let limits = StateLimits {
            visitors: visitors - visitors / 20,
            transactions: visitors / 20,
        };
        state.evict_past(limits);
        state
    }

    #[test]
    fn the_saved_bytes_are_postcards_whether_one_thread_or_two_encode_them() {
        for visitors in [0, 10, PARALLEL_FROM_VISITORS * 3 / 2] {
            let state = state(visitors);
            if visitors > 10 {
                // Some were evicted, and enough are left for two threads.
                assert!(state.sessions.visitors() < visitors);
                assert!(state.sessions.visitors() >= PARALLEL_FROM_VISITORS);
            }
            let plain = postcard::to_stdvec(&state).unwrap();
            let encoded = encode_ingest_state(&state).unwrap().concat();
            assert!(encoded == plain, "{visitors} visitors: other bytes");
            // And they read back (a map's order is its own, so compared by what it holds).
            let back: IngestState = postcard::from_bytes(&encoded).unwrap();
            assert_eq!(back.sessions.visitors(), state.sessions.visitors());
            assert_eq!(back.profiles, state.profiles);
            assert_eq!(back.next_event_seq, 42);
        }
    }
}
