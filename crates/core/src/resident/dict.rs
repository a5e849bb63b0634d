//! Append-only dictionaries of one website: strings to small codes, and the 64-bit visitor and
//! session hashes to dense numbers.
//!
//! String codes never change once given, so a chunk decoded today stays valid as the
//! dictionaries grow. Code 0 of a string dictionary stands for "no value" (null). Visitor
//! numbers are given again once, when a website's columns are first loaded
//! (`resident::cluster`), before any query reads them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::Xxh3Builder;

/// The code of a missing value.
pub(crate) const NULL: u32 = 0;

/// Strings of one column, each with a code (`1..`).
#[derive(Debug)]
pub(crate) struct StrDict {
    codes: HashMap<Box<str>, u32, Xxh3Builder>,
    values: Vec<Box<str>>,
    bytes: usize,
}

impl Default for StrDict {
    fn default() -> Self {
        StrDict {
            codes: HashMap::default(),
            values: vec![Box::from("")],
            bytes: 0,
        }
    }
}

impl StrDict {
    /// The code of `s`, given now if it had none.
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&c) = self.codes.get(s) {
            return c;
        }
        let code = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(Box::from(s));
        self.codes.insert(Box::from(s), code);
        self.bytes += 2 * s.len() + 48;
        code
    }

    /// The code of `s` if it has one.
    pub(crate) fn code(&self, s: &str) -> Option<u32> {
        self.codes.get(s).copied()
    }

    /// The string of `code` (`None` for [`NULL`]).
    pub(crate) fn value(&self, code: u32) -> Option<&str> {
        if code == NULL {
            return None;
        }
        self.values.get(code as usize).map(|s| &**s)
    }

    /// Number of codes, [`NULL`] included: every code is below it.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Every `(code, value)` pair, [`NULL`] excluded.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.values
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, s)| (i as u32, &**s))
    }

    /// Approximate heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A hasher for keys that are already uniform 64-bit hashes (xxh3 of the ids).
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A hasher for small integer keys: one multiply spreads them over the table.
#[derive(Default)]
pub(crate) struct Mix64(u64);

impl Hasher for Mix64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Eight bytes at a time: keys of several codes (campaign fields) hash in a few steps.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.write_u64(u64::from_le_bytes(b));
        }
        for b in words.remainder() {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// 64-bit hashes numbered `0..` in order of first sight (or as [`DenseIds::renumber`] says).
#[derive(Debug, Default)]
pub(crate) struct DenseIds {
    ids: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
}

impl DenseIds {
    /// The number of `hash`, given now if it had none.
    pub(crate) fn id(&mut self, hash: u64) -> u32 {
        let next = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        *self.ids.entry(hash).or_insert(next)
    }

    /// Gives each hash the number `renumber[old number]` (a permutation of `0..len`).
    pub(crate) fn renumber(&mut self, renumber: &[u32]) {
        for n in self.ids.values_mut() {
            *n = renumber[*n as usize];
        }
    }

    /// How many numbers were given: every number is below it.
    pub(crate) fn len(&self) -> u32 {
        u32::try_from(self.ids.len()).unwrap_or(u32::MAX)
    }

    /// Approximate heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.ids.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_start_after_null() {
        let mut d = StrDict::default();
        assert_eq!(d.intern("US"), 1);
        assert_eq!(d.intern("FR"), 2);
        assert_eq!(d.intern("US"), 1);
        assert_eq!(d.value(2), Some("FR"));
        assert_eq!(d.value(NULL), None);
        assert_eq!(d.code("DE"), None);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn dense_ids_number_in_order_of_first_sight() {
        let mut ids = DenseIds::default();
        assert_eq!(ids.id(0xdead), 0);
        assert_eq!(ids.id(0xbeef), 1);
        assert_eq!(ids.id(0xdead), 0);
        assert_eq!(ids.len(), 2);
    }
}
