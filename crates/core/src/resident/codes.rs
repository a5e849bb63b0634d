//! [`Codes`]: a chunk's column of small numbers (dictionary codes, campaign combinations) kept
//! in the narrowest unsigned width that holds its largest value.
//!
//! Most dimensions have few distinct values (devices, countries, browsers), so one byte a row
//! holds them. A kernel reads a column once per query, and at tens of millions of rows what it
//! reads no longer fits in the caches: a quarter of the bytes is a quarter of the memory
//! traffic, and of the resident memory. Kernels work on one block of rows at a time, widened to
//! `u32` into a small buffer ([`Codes::widen_into`]) or tested in place ([`Codes::and_pass`]).

/// A column of numbers in one of three widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Codes {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Default for Codes {
    fn default() -> Self {
        Codes::U8(Vec::new())
    }
}

impl Codes {
    /// `wide` in the narrowest width that holds its largest value.
    pub(crate) fn narrowed(wide: Vec<u32>) -> Codes {
        let max = wide.iter().copied().max().unwrap_or(0);
        if max <= u32::from(u8::MAX) {
            Codes::U8(wide.into_iter().map(|c| c as u8).collect())
        } else if max <= u32::from(u16::MAX) {
            Codes::U16(wide.into_iter().map(|c| c as u16).collect())
        } else {
            Codes::U32(wide)
        }
    }

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Codes::U8(v) => v.capacity(),
            Codes::U16(v) => v.capacity() * 2,
            Codes::U32(v) => v.capacity() * 4,
        }
    }

    /// The number of row `r`.
    #[inline]
    pub(crate) fn get(&self, r: usize) -> u32 {
        match self {
            Codes::U8(v) => u32::from(v[r]),
            Codes::U16(v) => u32::from(v[r]),
            Codes::U32(v) => v[r],
        }
    }

    /// `out[i] = f(number of row first + i)`.
    #[inline]
    pub(crate) fn map_into(&self, first: usize, out: &mut [u32], f: impl Fn(u32) -> u32) {
        let n = out.len();
        match self {
            Codes::U8(v) => map_slice(&v[first..first + n], out, f),
            Codes::U16(v) => map_slice(&v[first..first + n], out, f),
            Codes::U32(v) => map_slice(&v[first..first + n], out, f),
        }
    }

    /// The numbers of rows `first..first + out.len()`, widened.
    pub(crate) fn widen_into(&self, first: usize, out: &mut [u32]) {
        self.map_into(first, out, |c| c);
    }

    /// `ok[i] &= pass[number of row first + i]` (false past the end of `pass`).
    #[inline]
    pub(crate) fn and_pass(&self, first: usize, ok: &mut [u8], pass: &[bool]) {
        let n = ok.len();
        match self {
            Codes::U8(v) => and_pass_slice(&v[first..first + n], ok, pass),
            Codes::U16(v) => and_pass_slice(&v[first..first + n], ok, pass),
            Codes::U32(v) => and_pass_slice(&v[first..first + n], ok, pass),
        }
    }
}

#[inline]
fn map_slice<T: Copy + Into<u32>>(codes: &[T], out: &mut [u32], f: impl Fn(u32) -> u32) {
    for (o, c) in out.iter_mut().zip(codes) {
        *o = f((*c).into());
    }
}

#[inline]
fn and_pass_slice<T: Copy + Into<u32>>(codes: &[T], ok: &mut [u8], pass: &[bool]) {
    for (o, c) in ok.iter_mut().zip(codes) {
        let c: u32 = (*c).into();
        *o &= u8::from(pass.get(c as usize).copied().unwrap_or(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_width_holds_its_numbers_and_reads_them_back() {
        for (max, width) in [(0u32, 1), (255, 1), (256, 2), (65_535, 2), (65_536, 4)] {
            let wide = vec![max, 0, max / 2, 1];
            let codes = Codes::narrowed(wide.clone());
            let got_width = match &codes {
                Codes::U8(_) => 1,
                Codes::U16(_) => 2,
                Codes::U32(_) => 4,
            };
            assert_eq!(got_width, width, "max {max}");
            assert_eq!((0..4).map(|r| codes.get(r)).collect::<Vec<_>>(), wide);
            let mut out = [7u32; 2];
            codes.widen_into(1, &mut out);
            assert_eq!(out, [0, max / 2]);
            let mut ok = [1u8; 4];
            let mut pass = vec![false; max as usize + 1];
            pass[max as usize] = true;
            codes.and_pass(0, &mut ok, &pass);
            assert_eq!(ok, [1, u8::from(max == 0), u8::from(max / 2 == max), 0]);
        }
    }
}
