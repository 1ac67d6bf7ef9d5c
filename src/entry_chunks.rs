//! `EntryChunks`: `MemStorage`'s log, held in chunks of at most `CHUNK_ENTRIES` entries.
//!
//! Why not one vector: a log that grows as one vector is copied whole each time it outgrows
//! its capacity, and every byte of its new capacity is memory the process has not touched
//! before (page faults: one per 4 KiB, ~70 entries). A chunk is an ordinary allocation of at
//! most 14 KiB, which the allocator serves from memory freed a moment ago (the vectors of the
//! messages the entries arrived in). An append moves its entries once; the entries already
//! stored never move again. Compaction drops whole chunks and moves at most one chunk's
//! remainder, where a vector moved every entry after the compaction point.
//!
//! Costs: an index is found with a shift and a mask (chunks are full except the first and the
//! last), and a range of entries is handed out as up to a few slices instead of one.
//! An empty log costs 8 bytes inline and no heap, as `LazyVec` does.

use std::collections::VecDeque;

use crate::raftpb::Entry;

/// Entries per chunk: 256 entries of 56 bytes, 14 KiB, below every allocator's threshold for
/// mapping memory of its own (glibc's starts at 128 KiB).
pub(crate) const CHUNK_ENTRIES: usize = 256;
const CHUNK_SHIFT: u32 = CHUNK_ENTRIES.trailing_zeros();
const _: () = assert!(CHUNK_ENTRIES.is_power_of_two());

/// A log of entries in chunks; see the module documentation. `None` while empty.
#[derive(Clone, Debug, Default)]
// The box keeps an empty log at 8 bytes: an idle group's storage holds no entries.
#[allow(clippy::box_collection)]
pub(crate) struct EntryChunks(Option<Box<Chunks>>);

/// Invariants: every chunk but the last is full, the first counting `head` slots it no longer
/// holds (`chunks[0].len() + head == CHUNK_ENTRIES` when there are two chunks or more; at most
/// that with one); no chunk is empty; `len` is the sum of the chunks' lengths.
#[derive(Clone, Debug, Default)]
struct Chunks {
    chunks: VecDeque<Vec<Entry>>,
    /// Slots of the first chunk before its first entry (entries compacted away).
    head: usize,
    len: usize,
}

impl Chunks {
    /// The chunk and the position in it of entry `k` (`k < len`).
    #[inline]
    fn locate(&self, k: usize) -> (usize, usize) {
        let q = k + self.head;
        let c = q >> CHUNK_SHIFT;
        let off = q & (CHUNK_ENTRIES - 1);
        if c == 0 {
            (0, off - self.head)
        } else {
            (c, off)
        }
    }

    /// Room left in the last chunk.
    fn room(&self) -> usize {
        match self.chunks.len() {
            0 => 0,
            1 => CHUNK_ENTRIES - self.head - self.chunks[0].len(),
            n => CHUNK_ENTRIES - self.chunks[n - 1].len(),
        }
    }

    /// The last chunk (a new one when it is full) and how many entries it takes now: at least
    /// one, at most `want` and the room it has, within its capacity. A chunk grows as a vector
    /// does, up to `CHUNK_ENTRIES`: a log of a few entries does not pay for a whole chunk.
    fn tail_for(&mut self, want: usize) -> (&mut Vec<Entry>, usize) {
        if self.room() == 0 {
            // The first chunk starts at the size asked for; later ones at a whole chunk (the
            // log is long by then).
            let cap = if self.chunks.is_empty() {
                want.clamp(4, CHUNK_ENTRIES)
            } else {
                CHUNK_ENTRIES
            };
            self.chunks.push_back(Vec::with_capacity(cap));
        }
        let room = self.room();
        let last = self.chunks.back_mut().expect("a chunk was just ensured");
        let need = want.min(room);
        if last.capacity() - last.len() < need {
            // Double as a vector would, but never past the chunk's size.
            let target = (last.capacity() * 2)
                .max(last.len() + need)
                .min(last.len() + room);
            last.reserve_exact(target - last.len());
        }
        let take = need.min(last.capacity() - last.len());
        debug_assert!(take > 0 || want == 0);
        (last, take)
    }

    fn check(&self) {
        debug_assert_eq!(
            self.len,
            self.chunks.iter().map(Vec::len).sum::<usize>(),
            "chunk lengths"
        );
        debug_assert!(self.chunks.iter().all(|c| !c.is_empty()), "an empty chunk");
        debug_assert!(self.chunks.len() <= 1 || self.chunks[0].len() + self.head == CHUNK_ENTRIES);
        debug_assert!(self.head < CHUNK_ENTRIES);
    }
}

impl EntryChunks {
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |c| c.len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `k` (0-based), if there is one.
    #[inline]
    pub(crate) fn get(&self, k: usize) -> Option<&Entry> {
        let c = self.0.as_deref()?;
        if k >= c.len {
            return None;
        }
        let (i, off) = c.locate(k);
        Some(&c.chunks[i][off])
    }

    /// The entries `[lo, hi)` as consecutive slices (none when the range is empty).
    /// `hi <= len()`.
    pub(crate) fn slices(&self, lo: usize, hi: usize) -> Slices<'_> {
        debug_assert!(
            lo <= hi && hi <= self.len(),
            "range {lo}..{hi} of {}",
            self.len()
        );
        Slices {
            chunks: self.0.as_deref(),
            at: lo,
            end: hi.min(self.len()),
        }
    }

    /// Every entry, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.slices(0, self.len()).flatten()
    }

    /// Keeps the first `n` entries.
    pub(crate) fn truncate(&mut self, n: usize) {
        let Some(c) = self.0.as_deref_mut() else {
            return;
        };
        if n >= c.len {
            return;
        }
        if n == 0 {
            self.0 = None;
            return;
        }
        let (i, off) = c.locate(n);
        c.chunks.truncate(i + 1);
        let last = c.chunks.back_mut().expect("entry n - 1 is kept");
        last.truncate(off);
        if last.is_empty() {
            c.chunks.pop_back();
        }
        c.len = n;
        c.check();
    }

    /// Drops the first `n` entries (`n <= len()`).
    pub(crate) fn drop_front(&mut self, n: usize) {
        let Some(c) = self.0.as_deref_mut() else {
            return;
        };
        debug_assert!(n <= c.len);
        if n >= c.len {
            self.0 = None;
            return;
        }
        let (i, off) = c.locate(n);
        c.chunks.drain(..i);
        let first = &mut c.chunks[0];
        // The remainder of one chunk moves, no more.
        first.drain(..off);
        c.head = if i == 0 { c.head + off } else { off };
        c.len -= n;
        if c.chunks.len() == 1 {
            // A lone chunk has no slots to keep aligned: its head is free room again. A log
            // compacted to a few entries does not keep a whole chunk for them.
            c.head = 0;
            let lone = &mut c.chunks[0];
            if lone.len() * 2 < lone.capacity() {
                lone.shrink_to_fit();
            }
        }
        c.check();
    }

    /// Moves every entry of `src` to the end (`src` is left empty, with its capacity).
    pub(crate) fn append_from(&mut self, src: &mut Vec<Entry>) {
        self.push_with(src.len(), |tail, k| {
            if k == src.len() {
                // The usual case: one block move.
                tail.append(src);
            } else {
                tail.extend(src.drain(..k));
            }
        });
    }

    /// Clones `src` onto the end.
    pub(crate) fn extend_from_slice(&mut self, src: &[Entry]) {
        let mut rest = src;
        self.push_with(src.len(), |tail, k| {
            tail.extend_from_slice(&rest[..k]);
            rest = &rest[k..];
        });
    }

    /// Adds `n` entries at the end, chunk by chunk: `put(chunk, k)` moves or clones the next
    /// `k` of them onto the last chunk.
    fn push_with(&mut self, n: usize, mut put: impl FnMut(&mut Vec<Entry>, usize)) {
        if n == 0 {
            return;
        }
        let c = self.0.get_or_insert_with(Default::default);
        c.len += n;
        let mut left = n;
        while left > 0 {
            let (tail, take) = c.tail_for(left);
            put(tail, take);
            left -= take;
        }
        c.check();
    }

    /// Heap bytes held (chunk capacity), for tests of what compaction frees.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.0
            .as_deref()
            .map_or(0, |c| c.chunks.iter().map(Vec::capacity).sum())
    }
}

impl PartialEq for EntryChunks {
    /// The same entries, however they are chunked.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl From<Vec<Entry>> for EntryChunks {
    fn from(mut v: Vec<Entry>) -> Self {
        let mut c = EntryChunks::default();
        c.append_from(&mut v);
        c
    }
}

/// The slices of a range of entries, one per chunk it touches.
#[derive(Clone)]
pub(crate) struct Slices<'a> {
    chunks: Option<&'a Chunks>,
    at: usize,
    end: usize,
}

impl<'a> Iterator for Slices<'a> {
    type Item = &'a [Entry];

    #[inline]
    fn next(&mut self) -> Option<&'a [Entry]> {
        if self.at >= self.end {
            return None;
        }
        let c = self.chunks?;
        let (i, off) = c.locate(self.at);
        let chunk = &c.chunks[i];
        let n = (chunk.len() - off).min(self.end - self.at);
        self.at += n;
        Some(&chunk[off..off + n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ent(index: u64) -> Entry {
        Entry {
            index,
            term: index / 7 + 1,
            ..Default::default()
        }
    }

    fn flat(c: &EntryChunks) -> Vec<u64> {
        c.iter().map(|e| e.index).collect()
    }

    /// Operations on a log, checked against a plain vector.
    #[derive(Debug, Clone)]
    enum Op {
        Append(usize),
        Extend(usize),
        Truncate(usize),
        DropFront(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..700).prop_map(Op::Append),
            (0usize..300).prop_map(Op::Extend),
            (0usize..2000).prop_map(Op::Truncate),
            (0usize..2000).prop_map(Op::DropFront),
        ]
    }

    proptest! {
        #[test]
        fn chunks_hold_what_a_vector_holds(ops in prop::collection::vec(op(), 1..40)) {
            let mut c = EntryChunks::default();
            let mut v: Vec<Entry> = Vec::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let mut src: Vec<Entry> = (next..next + n as u64).map(ent).collect();
                        next += n as u64;
                        v.extend(src.iter().cloned());
                        c.append_from(&mut src);
                        prop_assert!(src.is_empty());
                    }
                    Op::Extend(n) => {
                        let src: Vec<Entry> = (next..next + n as u64).map(ent).collect();
                        next += n as u64;
                        v.extend(src.iter().cloned());
                        c.extend_from_slice(&src);
                    }
                    Op::Truncate(n) => {
                        v.truncate(n);
                        c.truncate(n);
                    }
                    Op::DropFront(n) => {
                        let n = n.min(v.len());
                        v.drain(..n);
                        c.drop_front(n);
                    }
                }
                prop_assert_eq!(c.len(), v.len());
                let want: Vec<u64> = v.iter().map(|e| e.index).collect();
                prop_assert_eq!(flat(&c), want.clone());
                for (k, e) in v.iter().enumerate() {
                    prop_assert_eq!(c.get(k).map(|e| e.index), Some(e.index));
                }
                prop_assert!(c.get(v.len()).is_none());
                // Every sub-range, as slices, is the vector's sub-range.
                let len = v.len();
                for (lo, hi) in [(0, len), (len / 3, len / 2), (len / 2, len), (len, len)] {
                    let got: Vec<u64> = c.slices(lo, hi).flatten().map(|e| e.index).collect();
                    prop_assert_eq!(&got[..], &want[lo..hi]);
                    prop_assert!(c.slices(lo, hi).all(|s| !s.is_empty()));
                }
                // No more heap than the entries need, give or take a chunk being filled and
                // the slots compaction left at the front of the first.
                prop_assert!(c.capacity() <= v.len() + 2 * CHUNK_ENTRIES);
            }
        }
    }

    #[test]
    fn a_long_log_is_chunked_and_compacts_by_whole_chunks() {
        let mut c = EntryChunks::default();
        let mut src: Vec<Entry> = (1..=1000).map(ent).collect();
        c.append_from(&mut src);
        let sizes: Vec<usize> = c.slices(0, 1000).map(<[Entry]>::len).collect();
        assert_eq!(sizes, vec![256, 256, 256, 232]);
        c.drop_front(300);
        assert_eq!(c.get(0).map(|e| e.index), Some(301));
        let sizes: Vec<usize> = c.slices(0, 700).map(<[Entry]>::len).collect();
        assert_eq!(sizes, vec![212, 256, 232]);
        assert!(
            c.capacity() <= 3 * CHUNK_ENTRIES,
            "the chunk compacted away is freed"
        );
        c.drop_front(700);
        assert!(c.is_empty());
        assert_eq!(c.capacity(), 0);
    }

    #[test]
    fn a_short_log_takes_no_whole_chunk() {
        let mut c = EntryChunks::default();
        c.extend_from_slice(&[ent(1), ent(2)]);
        assert!(c.capacity() < 16, "capacity {}", c.capacity());
        assert_eq!(flat(&c), vec![1, 2]);
    }

    #[test]
    fn equality_ignores_the_chunking() {
        let mut a = EntryChunks::default();
        let mut b = EntryChunks::default();
        for i in 1..=600 {
            a.extend_from_slice(&[ent(i)]);
        }
        b.append_from(&mut (0..=600).map(ent).collect());
        assert_ne!(a, b);
        b.drop_front(1);
        assert_eq!(a, b);
    }
}
