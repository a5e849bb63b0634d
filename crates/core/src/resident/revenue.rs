//! [`VisitorSums`]: per visitor, a total of some of their payments, sorted by visitor number.
//!
//! A breakdown needs, for each group, the revenue of its distinct visitors; the overview, the
//! revenue of the selected visitors. Summing into a hash
//! table cost a random access per payment and another per paying member, which at millions of
//! visitors misses every cache. Sorted by visitor (a radix sort), the sums are built in a few
//! sequential passes and read back in step with the groups' bitsets and sorted member lists.

/// Visitor numbers (ascending, distinct) and the total of each.
#[derive(Debug, Clone)]
pub(crate) struct VisitorSums<T = f64> {
    visitors: Vec<u32>,
    sums: Vec<T>,
}

impl<T> Default for VisitorSums<T> {
    fn default() -> Self {
        VisitorSums {
            visitors: Vec::new(),
            sums: Vec::new(),
        }
    }
}

impl<T: Default> VisitorSums<T> {
    /// The totals of `pairs` of (visitor, item), each visitor's items folded into its total by
    /// `add` in the order given.
    pub(crate) fn fold<I: Copy>(mut pairs: Vec<(u32, I)>, add: impl Fn(&mut T, I)) -> Self {
        // A stable sort: each visitor's items keep their order, so sums round alike.
        radsort::sort_by_key(&mut pairs, |p| p.0);
        let mut out = VisitorSums {
            visitors: Vec::with_capacity(pairs.len()),
            sums: Vec::with_capacity(pairs.len()),
        };
        for (who, item) in pairs {
            if out.visitors.last() != Some(&who) {
                out.visitors.push(who);
                out.sums.push(T::default());
            }
            if let Some(total) = out.sums.last_mut() {
                add(total, item);
            }
        }
        out
    }

    /// The total of `who`, if they have one.
    pub(crate) fn total(&self, who: u32) -> Option<&T> {
        self.visitors
            .binary_search(&who)
            .ok()
            .map(|i| &self.sums[i])
    }

    /// Each visitor with a total, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        self.visitors.iter().copied().zip(self.sums.iter())
    }

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.visitors.capacity() * 4 + self.sums.capacity() * std::mem::size_of::<T>()
    }
}

impl VisitorSums<f64> {
    /// The sums of `pairs` of (visitor, amount).
    pub(crate) fn from_pairs(pairs: Vec<(u32, f64)>) -> Self {
        Self::fold(pairs, |sum, amount| *sum += amount)
    }

    /// The sum of `who` (0 without payments).
    pub(crate) fn get(&self, who: u32) -> f64 {
        self.total(who).copied().unwrap_or(0.0)
    }

    /// The total over the visitors whose bit is set in `words`, where bit `i` stands for
    /// visitor `base + i`.
    pub(crate) fn sum_in_bits(&self, words: &[u64], base: u32) -> f64 {
        let end = u64::from(base) + words.len() as u64 * 64;
        let lo = self.visitors.partition_point(|&v| v < base);
        let hi = self.visitors.partition_point(|&v| u64::from(v) < end);
        let mut total = 0.0;
        for (who, sum) in self.visitors[lo..hi].iter().zip(&self.sums[lo..hi]) {
            let bit = (who - base) as usize;
            if words[bit / 64] >> (bit % 64) & 1 == 1 {
                total += sum;
            }
        }
        total
    }

    /// The total over `ids` (ascending, distinct): the shorter list is walked and each of its
    /// numbers searched for in what is left of the other.
    pub(crate) fn sum_of_sorted(&self, ids: &[u32]) -> f64 {
        let mut total = 0.0;
        if ids.len() <= self.visitors.len() {
            let mut at = 0;
            for id in ids {
                at += self.visitors[at..].partition_point(|v| v < id);
                match self.visitors.get(at) {
                    Some(v) if v == id => total += self.sums[at],
                    Some(_) => {}
                    None => break,
                }
            }
        } else {
            let mut rest = ids;
            for (who, sum) in self.visitors.iter().zip(&self.sums) {
                rest = &rest[rest.partition_point(|id| id < who)..];
                match rest.first() {
                    Some(id) if id == who => total += sum,
                    Some(_) => {}
                    None => break,
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums() -> VisitorSums {
        VisitorSums::from_pairs(vec![(70, 1.0), (3, 2.0), (70, 4.0), (130, 8.0), (3, 16.0)])
    }

    #[test]
    fn each_visitor_sums_its_amounts_and_others_have_none() {
        let s = sums();
        let all: Vec<(u32, f64)> = s.iter().map(|(v, x)| (v, *x)).collect();
        assert_eq!(all, [(3, 18.0), (70, 5.0), (130, 8.0)]);
        assert_eq!((s.get(70), s.get(4)), (5.0, 0.0));
    }

    #[test]
    fn totals_over_bits_and_sorted_ids_count_only_members() {
        let s = sums();
        // Visitors 64..192 as bits: 70 and 130 set, and 100 (who has no payments).
        let mut words = [0u64; 2];
        for who in [70u32, 100, 130] {
            let bit = (who - 64) as usize;
            words[bit / 64] |= 1 << (bit % 64);
        }
        assert_eq!(s.sum_in_bits(&words, 64), 13.0);
        assert_eq!(s.sum_of_sorted(&[3, 100, 130]), 26.0);
        // More ids than payers: the other walk.
        assert_eq!(s.sum_of_sorted(&[1, 2, 3, 4, 5, 69, 71, 129]), 18.0);
        assert_eq!(s.sum_of_sorted(&[]), 0.0);
    }
}
