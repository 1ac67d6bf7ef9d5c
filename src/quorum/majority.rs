//! A simple-majority voter set.

use super::{AckedIndexer, VoteResult};
use std::fmt::{self, Write as _};

/// Voter counts up to this size are handled on the stack by [`MajorityConfig::committed_index`].
const STACK_VOTERS: usize = 16;

/// A set of voters that decides by simple majority. Ids are kept sorted and unique, so
/// iteration order is always ascending.
///
/// Every idle group holds four of these (the voters, the outgoing voters, the learners and the
/// staged learners) and nearly all hold three voters or none: up to three ids that fit in 32
/// bits are kept inline, without a heap allocation (an allocation costs an idle group more
/// than the ids it holds). Other sets are a boxed slice behind a second box, which keeps the
/// set at 16 bytes. A membership change (the only writer) is rare enough to rebuild either.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MajorityConfig {
    voters: Ids,
}

/// How many ids are kept inline.
const INLINE: usize = 3;

/// The ids of a set, in the one form the set's contents decide (so the derived equality and
/// hash are the sets'): inline when there are at most `INLINE` ids and all fit in 32 bits
/// (unused slots 0), boxed otherwise.
#[derive(Clone, PartialEq, Eq, Hash)]
// The double box is the point: a thin pointer keeps the enum at 16 bytes.
#[allow(clippy::redundant_allocation)]
enum Ids {
    Inline { len: u8, ids: [u32; INLINE] },
    Heap(Box<Box<[u64]>>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Inline {
            len: 0,
            ids: [0; INLINE],
        }
    }
}

impl fmt::Debug for Ids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; INLINE];
        f.debug_list().entries(self.slice(&mut buf)).finish()
    }
}

impl Ids {
    /// The set holding `v` (sorted and unique).
    fn from_sorted(v: Vec<u64>) -> Ids {
        debug_assert!(v.windows(2).all(|w| w[0] < w[1]));
        if v.len() <= INLINE && v.iter().all(|&id| id <= u64::from(u32::MAX)) {
            let mut ids = [0; INLINE];
            for (slot, &id) in ids.iter_mut().zip(&v) {
                // Checked just above.
                *slot = id as u32;
            }
            Ids::Inline {
                len: v.len() as u8,
                ids,
            }
        } else {
            Ids::Heap(Box::new(v.into_boxed_slice()))
        }
    }

    /// The ids as a sorted slice: the boxed one, or the inline ones widened into `buf`.
    fn slice<'a>(&'a self, buf: &'a mut [u64; INLINE]) -> &'a [u64] {
        match self {
            Ids::Inline { len, ids } => {
                let n = usize::from(*len);
                for (slot, &id) in buf.iter_mut().zip(&ids[..n]) {
                    *slot = u64::from(id);
                }
                &buf[..n]
            }
            Ids::Heap(b) => b,
        }
    }

    fn len(&self) -> usize {
        match self {
            Ids::Inline { len, .. } => usize::from(*len),
            Ids::Heap(b) => b.len(),
        }
    }

    fn to_vec(&self) -> Vec<u64> {
        let mut buf = [0; INLINE];
        self.slice(&mut buf).to_vec()
    }
}

/// The ids of a [`MajorityConfig`] in ascending order.
#[derive(Debug, Clone)]
pub struct VoterIter<'a>(IterRepr<'a>);

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Inline(std::iter::Take<std::array::IntoIter<u32, INLINE>>),
    Heap(std::slice::Iter<'a, u64>),
}

impl Iterator for VoterIter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        match &mut self.0 {
            IterRepr::Inline(it) => it.next().map(u64::from),
            IterRepr::Heap(it) => it.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Inline(it) => it.size_hint(),
            IterRepr::Heap(it) => it.size_hint(),
        }
    }
}

impl DoubleEndedIterator for VoterIter<'_> {
    fn next_back(&mut self) -> Option<u64> {
        match &mut self.0 {
            IterRepr::Inline(it) => it.next_back().map(u64::from),
            IterRepr::Heap(it) => it.next_back().copied(),
        }
    }
}

impl ExactSizeIterator for VoterIter<'_> {}

impl MajorityConfig {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `id`; returns false if it was already present.
    pub fn insert(&mut self, id: u64) -> bool {
        let mut v = self.voters.to_vec();
        match v.binary_search(&id) {
            Ok(_) => false,
            Err(pos) => {
                v.insert(pos, id);
                self.voters = Ids::from_sorted(v);
                true
            }
        }
    }

    /// Removes `id`; returns false if it was absent.
    pub fn remove(&mut self, id: u64) -> bool {
        let mut v = self.voters.to_vec();
        match v.binary_search(&id) {
            Ok(pos) => {
                v.remove(pos);
                self.voters = Ids::from_sorted(v);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `id` is in the set.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        match &self.voters {
            Ids::Inline { len, ids } => {
                u32::try_from(id).is_ok_and(|id| ids[..usize::from(*len)].contains(&id))
            }
            Ids::Heap(b) => b.binary_search(&id).is_ok(),
        }
    }

    /// Number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether the set has no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.len() == 0
    }

    /// Removes every voter.
    pub fn clear(&mut self) {
        self.voters = Ids::default();
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> VoterIter<'_> {
        VoterIter(match &self.voters {
            Ids::Inline { len, ids } => {
                IterRepr::Inline((*ids).into_iter().take(usize::from(*len)))
            }
            Ids::Heap(b) => IterRepr::Heap(b.iter()),
        })
    }

    /// The ids as a sorted vector (etcd's `Slice`).
    pub fn to_vec(&self) -> Vec<u64> {
        self.voters.to_vec()
    }

    /// The number of voters that make a quorum.
    fn quorum(&self) -> usize {
        self.len() / 2 + 1
    }

    /// The largest index acknowledged by a quorum of the voters. Voters without a known index
    /// count as having acknowledged 0. An empty set returns `u64::MAX`, so that it never holds
    /// back the other half of a joint configuration.
    ///
    /// Up to 16 voters this does not allocate.
    pub fn committed_index(&self, l: &impl AckedIndexer) -> u64 {
        let mut buf = [0; INLINE];
        let voters = self.voters.slice(&mut buf);
        let n = voters.len();
        if n == 0 {
            return u64::MAX;
        }
        // With the acks in ascending order, the one at n - quorum is the largest index that a
        // quorum (it and everyone above it) has reached.
        let k = n - self.quorum();
        let ack = |id: u64| l.acked_index(id).unwrap_or(0);
        if n <= STACK_VOTERS {
            let mut acks = [0u64; STACK_VOTERS];
            for (slot, &id) in acks.iter_mut().zip(voters) {
                *slot = ack(id);
            }
            *acks[..n].select_nth_unstable(k).1
        } else {
            let mut acks: Vec<u64> = voters.iter().map(|&id| ack(id)).collect();
            *acks.select_nth_unstable(k).1
        }
    }

    /// The result of an election given the votes cast so far (`Some(true)` granted,
    /// `Some(false)` rejected, `None` not heard from). An empty set wins.
    pub fn vote_result<F: Fn(u64) -> Option<bool>>(&self, votes: &F) -> VoteResult {
        if self.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0usize, 0usize);
        for id in self.iter() {
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
        let n = self.len();
        if n == 0 {
            return "<empty majority quorum>".to_string();
        }
        // (index, id, known, position in id order), ranked by (index, id).
        let mut ranked: Vec<(u64, u64, bool, usize)> = self
            .iter()
            .enumerate()
            .map(|(pos, id)| {
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
        for (pos, id) in self.iter().enumerate() {
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
            voters: Ids::from_sorted(voters),
        }
    }
}

impl Extend<u64> for MajorityConfig {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, iter: I) {
        let mut v = self.voters.to_vec();
        v.extend(iter);
        v.sort_unstable();
        v.dedup();
        self.voters = Ids::from_sorted(v);
    }
}

impl From<Vec<u64>> for MajorityConfig {
    fn from(v: Vec<u64>) -> Self {
        v.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a MajorityConfig {
    type Item = u64;
    type IntoIter = VoterIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// `(1 2 3)`: the ids in ascending order, in lower-case hex.
impl fmt::Display for MajorityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, id) in self.iter().enumerate() {
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
        assert_eq!(c.to_vec(), [1, 2, 3]);
        assert!(!c.insert(2));
        assert!(c.insert(10));
        assert!(c.remove(1));
        assert!(!c.remove(1));
        assert_eq!(c.to_string(), "(2 3 a)");
        assert!(c.contains(10) && !c.contains(1));
        assert_eq!(MajorityConfig::new().to_string(), "()");
    }

    /// Small sets of 32-bit ids are inline, others boxed; either way a set is one value: the
    /// form follows the contents through every change, so equality and hashing are the sets'.
    #[test]
    fn inline_and_boxed_forms_hold_the_same_sets() {
        assert_eq!(std::mem::size_of::<MajorityConfig>(), 16);
        let big = u64::from(u32::MAX) + 1;
        let mut c: MajorityConfig = [7, 3, 5].into_iter().collect();
        assert!(matches!(c.voters, Ids::Inline { len: 3, .. }));
        assert!(c.insert(9), "a fourth id");
        assert!(matches!(c.voters, Ids::Heap(_)));
        assert_eq!(c.to_vec(), [3, 5, 7, 9]);
        assert_eq!(c.iter().rev().collect::<Vec<_>>(), [9, 7, 5, 3]);
        assert!(c.remove(9));
        assert!(
            matches!(c.voters, Ids::Inline { len: 3, .. }),
            "back inline"
        );
        assert_eq!(c, [3, 5, 7].into_iter().collect());
        assert!(!c.contains(big + 3) && !c.contains(4) && c.contains(5));
        assert!(c.insert(big));
        assert!(
            matches!(c.voters, Ids::Heap(_)),
            "an id above 32 bits is boxed"
        );
        assert!(c.contains(big) && c.contains(3));
        assert_eq!(c.iter().len(), 4);
        assert!(c.remove(3) && c.remove(5) && c.remove(7));
        assert_eq!(c.to_vec(), [big]);
        assert!(c.remove(big));
        assert_eq!(c, MajorityConfig::new(), "an emptied set equals a new one");
        let ack = |id: u64| Some(id * 10);
        let boxed: MajorityConfig = [1, 2, 3, big].into_iter().collect();
        let inline: MajorityConfig = [1, 2, 3].into_iter().collect();
        assert_eq!(inline.committed_index(&ack), 20);
        assert_eq!(boxed.committed_index(&ack), 20);
        assert_eq!(
            format!("{inline:?}"),
            "MajorityConfig { voters: [1, 2, 3] }"
        );
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
