//! A simple-majority voter set.

use super::{AckedIndexer, VoteResult};
use std::fmt::{self, Write as _};

/// Voter counts up to this size are handled on the stack by [`MajorityConfig::committed_index`].
const STACK_VOTERS: usize = 16;

/// A set of voters that decides by simple majority. Ids are kept sorted and unique in a small
/// boxed slice, so iteration order is always ascending and lookups are a binary search. A
/// boxed slice rather than a vector: every idle group holds four of these, and a membership
/// change (the only writer) is rare enough to rebuild the slice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MajorityConfig {
    voters: Box<[u64]>,
}

impl MajorityConfig {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `id`; returns false if it was already present.
    pub fn insert(&mut self, id: u64) -> bool {
        match self.voters.binary_search(&id) {
            Ok(_) => false,
            Err(pos) => {
                let mut v = std::mem::take(&mut self.voters).into_vec();
                v.insert(pos, id);
                self.voters = v.into_boxed_slice();
                true
            }
        }
    }

    /// Removes `id`; returns false if it was absent.
    pub fn remove(&mut self, id: u64) -> bool {
        match self.voters.binary_search(&id) {
            Ok(pos) => {
                let mut v = std::mem::take(&mut self.voters).into_vec();
                v.remove(pos);
                self.voters = v.into_boxed_slice();
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u64) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// Number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether the set has no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Removes every voter.
    pub fn clear(&mut self) {
        self.voters = Box::default();
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = u64> + DoubleEndedIterator + '_ {
        self.voters.iter().copied()
    }

    /// The ids as a sorted slice.
    pub fn as_slice(&self) -> &[u64] {
        &self.voters
    }

    /// The ids as a sorted vector (etcd's `Slice`).
    pub fn to_vec(&self) -> Vec<u64> {
        self.voters.to_vec()
    }

    /// The number of voters that make a quorum.
    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest index acknowledged by a quorum of the voters. Voters without a known index
    /// count as having acknowledged 0. An empty set returns `u64::MAX`, so that it never holds
    /// back the other half of a joint configuration.
    ///
    /// Up to 16 voters this does not allocate.
    pub fn committed_index(&self, l: &impl AckedIndexer) -> u64 {
        let n = self.voters.len();
        if n == 0 {
            return u64::MAX;
        }
        // With the acks in ascending order, the one at n - quorum is the largest index that a
        // quorum (it and everyone above it) has reached.
        let k = n - self.quorum();
        let ack = |id: u64| l.acked_index(id).unwrap_or(0);
        if n <= STACK_VOTERS {
            let mut acks = [0u64; STACK_VOTERS];
            for (slot, &id) in acks.iter_mut().zip(&self.voters) {
                *slot = ack(id);
            }
            *acks[..n].select_nth_unstable(k).1
        } else {
            let mut acks: Vec<u64> = self.voters.iter().map(|&id| ack(id)).collect();
            *acks.select_nth_unstable(k).1
        }
    }

    /// The result of an election given the votes cast so far (`Some(true)` granted,
    /// `Some(false)` rejected, `None` not heard from). An empty set wins.
    pub fn vote_result<F: Fn(u64) -> Option<bool>>(&self, votes: &F) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0usize, 0usize);
        for &id in &self.voters {
            match votes(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.quorum();
        if granted >= q {
            VoteResult::Won
        } else if granted + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }

    /// A bar chart of the acknowledged indexes, one line per voter in id order, as etcd's
    /// quorum tests print it. Each bar's length is the voter's rank among the acks (equal acks
    /// share a rank); `?` marks a voter whose index is unknown.
    pub fn describe(&self, l: &impl AckedIndexer) -> String {
        let n = self.voters.len();
        if n == 0 {
            return "<empty majority quorum>".to_string();
        }
        // (index, id, known, position in id order), ranked by (index, id).
        let mut ranked: Vec<(u64, u64, bool, usize)> = self
            .voters
            .iter()
            .enumerate()
            .map(|(pos, &id)| {
                let idx = l.acked_index(id);
                (idx.unwrap_or(0), id, idx.is_some(), pos)
            })
            .collect();
        ranked.sort_unstable();
        let mut bars = vec![0usize; n];
        for i in 1..n {
            let bar = if ranked[i].0 == ranked[i - 1].0 {
                bars[ranked[i - 1].3]
            } else {
                i
            };
            bars[ranked[i].3] = bar;
        }
        let mut rows: Vec<(u64, bool)> = vec![(0, false); n];
        for &(idx, _, known, pos) in &ranked {
            rows[pos] = (idx, known);
        }

        let mut out = String::new();
        out.push_str(&" ".repeat(n));
        out.push_str("    idx\n");
        for (pos, &id) in self.voters.iter().enumerate() {
            let (idx, known) = rows[pos];
            if known {
                let bar = bars[pos];
                out.push_str(&"x".repeat(bar));
                out.push('>');
                out.push_str(&" ".repeat(n - bar));
            } else {
                out.push('?');
                out.push_str(&" ".repeat(n));
            }
            // Writing to a String cannot fail.
            let _ = writeln!(out, " {idx:>5}    (id={id:x})");
        }
        out
    }
}

impl FromIterator<u64> for MajorityConfig {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut voters: Vec<u64> = iter.into_iter().collect();
        voters.sort_unstable();
        voters.dedup();
        MajorityConfig {
            voters: voters.into_boxed_slice(),
        }
    }
}

impl Extend<u64> for MajorityConfig {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
        let mut v = std::mem::take(&mut self.voters).into_vec();
        v.extend(iter);
        v.sort_unstable();
        v.dedup();
        self.voters = v.into_boxed_slice();
    }
}

impl From<Vec<u64>> for MajorityConfig {
    fn from(v: Vec<u64>) -> Self {
        v.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a MajorityConfig {
    type Item = u64;
    type IntoIter = std::iter::Copied<std::slice::Iter<'a, u64>>;

    fn into_iter(self) -> Self::IntoIter {
        self.voters.iter().copied()
    }
}

/// `(1 2 3)`: the ids in ascending order, in lower-case hex.
impl fmt::Display for MajorityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, id) in self.voters.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{id:x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(pairs: &[(u64, u64)]) -> impl Fn(u64) -> Option<u64> + '_ {
        move |id| pairs.iter().find(|p| p.0 == id).map(|p| p.1)
    }

    #[test]
    fn set_operations_keep_order() {
        let mut c: MajorityConfig = [3, 1, 2, 3].into_iter().collect();
        assert_eq!(c.as_slice(), &[1, 2, 3]);
        assert!(!c.insert(2));
        assert!(c.insert(10));
        assert!(c.remove(1));
        assert!(!c.remove(1));
        assert_eq!(c.to_string(), "(2 3 a)");
        assert!(c.contains(10) && !c.contains(1));
        assert_eq!(MajorityConfig::new().to_string(), "()");
    }

    #[test]
    fn committed_index_small_and_large() {
        let c: MajorityConfig = (1..=3).collect();
        assert_eq!(c.committed_index(&acks(&[(1, 12), (2, 5)])), 5);
        assert_eq!(c.committed_index(&acks(&[(1, 12), (2, 5), (3, 6)])), 6);
        assert_eq!(MajorityConfig::new().committed_index(&acks(&[])), u64::MAX);
        // 21 voters: the 11th largest ack wins.
        let big: MajorityConfig = (1..=21).collect();
        let l = |id: u64| Some(id * 10);
        assert_eq!(big.committed_index(&l), 110);
    }

    #[test]
    fn votes() {
        let c: MajorityConfig = [4, 8].into_iter().collect();
        assert_eq!(c.vote_result(&|_| None), VoteResult::Pending);
        assert_eq!(
            c.vote_result(&|id| (id == 4).then_some(false)),
            VoteResult::Lost
        );
        assert_eq!(c.vote_result(&|_| Some(true)), VoteResult::Won);
        assert_eq!(
            MajorityConfig::new().vote_result(&|_| None),
            VoteResult::Won
        );
    }

    #[test]
    fn describe_shares_bars_for_equal_acks() {
        let c: MajorityConfig = (1..=5).collect();
        let got = c.describe(&acks(&[(1, 101), (2, 104), (3, 103), (4, 103)]));
        let want = "         idx\n\
                    x>       101    (id=1)\n\
                    xxxx>    104    (id=2)\n\
                    xx>      103    (id=3)\n\
                    xx>      103    (id=4)\n\
                    ?          0    (id=5)\n";
        assert_eq!(got, want);
        assert_eq!(
            MajorityConfig::new().describe(&acks(&[])),
            "<empty majority quorum>"
        );
    }
}
