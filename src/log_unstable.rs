//! The unstable part of the log: entries and a snapshot that the node has accepted but the
//! application has not yet confirmed as persisted.
//!
//! Entries move through three stages here. They are *next* (not yet handed out in a Ready or a
//! `MsgStorageAppend`), then *in progress* (handed out, the write under way: indexes in
//! `[offset, offset_in_progress)`), then *stable*, when the write is confirmed by
//! [`Unstable::stable_to`] and they leave this structure for the application's `Storage`.
//!
//! No logging, IO, clock or global state: callers log the outcomes these methods report.

use std::cmp;

use crate::error::{Error, Result, StorageError};
use crate::lazy_vec::LazyVec;
use crate::raftpb::{Entry, EntryType, Snapshot};
use bytes::Bytes;

/// What [`Unstable::stable_to`] did with a persistence acknowledgement. Everything but
/// [`StableOutcome::Stabilized`] means the acknowledgement was ignored; the caller may log why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StableOutcome {
    /// The entries up to the acknowledged index left the unstable log.
    Stabilized,
    /// No unstable entry (or unstable snapshot) has that index.
    Missing,
    /// The index is the unstable snapshot's, not an unstable entry's.
    MatchedSnapshot,
    /// The unstable entry at that index has another term: the log was rewritten after the write
    /// started (the ABA case of asynchronous writes), so the write covered other entries.
    TermMismatch {
        /// The term of the entry now in the unstable log.
        existing: u64,
    },
}

/// Entries and a snapshot not yet persisted to `Storage`.
///
/// Invariants: `entries[k].index == offset + k`; `offset <= offset_in_progress <= offset +
/// entries.len()`; when a snapshot is present, its index is below `offset`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unstable {
    /// The incoming snapshot, if any, not yet persisted.
    /// Boxed: it is rare, and an idle group should not carry its size.
    pub snapshot: Option<Box<PendingSnapshot>>,
    /// Entries not yet persisted; the first has index `offset`.
    pub entries: LazyVec<Entry>,
    /// The index of `entries[0]` (the index the next unstable entry would get when empty).
    pub offset: u64,
    /// Entries with indexes in `[offset, offset_in_progress)` have been handed out for
    /// persisting and are not returned by [`Unstable::next_entries`] again.
    pub offset_in_progress: u64,
}

/// An incoming snapshot and whether it has been handed out for persisting (the flag lives in
/// the box: a bool beside the box would pad every idle group's log by 8 bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingSnapshot {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// True once the snapshot has been handed out for persisting.
    pub in_progress: bool,
}

impl PendingSnapshot {
    /// `s`, not yet handed out.
    pub fn new(s: Snapshot) -> Box<PendingSnapshot> {
        Box::new(PendingSnapshot {
            snapshot: s,
            in_progress: false,
        })
    }
}

impl Unstable {
    /// The unstable snapshot, if any.
    pub fn snap(&self) -> Option<&Snapshot> {
        self.snapshot.as_deref().map(|p| &p.snapshot)
    }

    /// An empty unstable log whose first entry will have index `offset`.
    pub fn new(offset: u64) -> Unstable {
        Unstable {
            snapshot: None,
            entries: LazyVec::default(),
            offset,
            offset_in_progress: offset,
        }
    }

    /// One past the index of the last unstable entry (`offset` when there are none).
    #[inline]
    fn end(&self) -> u64 {
        self.offset.saturating_add(self.entries.len() as u64)
    }

    /// The first index of the log if it is known here: one past the unstable snapshot.
    pub fn maybe_first_index(&self) -> Option<u64> {
        self.snap().map(|s| s.index().saturating_add(1))
    }

    /// The last index of the log if it is known here: the last unstable entry, else the unstable
    /// snapshot.
    pub fn maybe_last_index(&self) -> Option<u64> {
        match self.entries.as_slice().last() {
            Some(e) => Some(e.index),
            None => self.snap().map(|s| s.index()),
        }
    }

    /// The term of entry `i` if it is known here (an unstable entry, or the unstable snapshot's
    /// index).
    pub fn maybe_term(&self, i: u64) -> Option<u64> {
        self.entry_term(i).or_else(|| self.snapshot_term(i))
    }

    /// The term of the unstable entry at index `i`, if there is one.
    fn entry_term(&self, i: u64) -> Option<u64> {
        let k = usize::try_from(i.checked_sub(self.offset)?).ok()?;
        self.entries.as_slice().get(k).map(|e| e.term)
    }

    /// The term of the unstable snapshot, if there is one at index `i`.
    fn snapshot_term(&self, i: u64) -> Option<u64> {
        self.snap().filter(|s| s.index() == i).map(|s| s.term())
    }

    /// The entries not yet handed out for persisting.
    pub fn next_entries(&self) -> &[Entry] {
        let in_progress = self.offset_in_progress.saturating_sub(self.offset);
        let k = usize::try_from(in_progress)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        &self.entries.as_slice()[k..]
    }

    /// Moves the payloads of the entries not yet handed out into `out` (index, term and type
    /// are copied and stay here; the payloads left here are empty).
    pub fn take_next_entries(&mut self, out: &mut Vec<Entry>) {
        let in_progress = self.offset_in_progress.saturating_sub(self.offset);
        let k = usize::try_from(in_progress)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        let next = &mut self.entries.as_mut_slice()[k..];
        out.reserve(next.len());
        out.extend(next.iter_mut().map(|e| Entry {
            r#type: e.r#type,
            term: e.term,
            index: e.index,
            data: std::mem::take(&mut e.data),
        }));
    }

    /// The snapshot, if one is present and not yet handed out for persisting.
    pub fn next_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot
            .as_deref()
            .filter(|p| !p.in_progress)
            .map(|p| &p.snapshot)
    }

    /// Marks every current entry and the snapshot as handed out for persisting, so
    /// `next_entries` and `next_snapshot` no longer return them.
    pub fn accept_in_progress(&mut self) {
        if !self.entries.is_empty() {
            self.offset_in_progress = self.end();
        }
        if let Some(p) = self.snapshot.as_deref_mut() {
            p.in_progress = true;
        }
    }

    /// The entries up to `(index, term)` have been persisted: drop them from the unstable log.
    ///
    /// The acknowledgement is ignored (and the reason returned) unless an unstable entry has
    /// exactly that index and term. The term check guards against the ABA race of asynchronous
    /// writes: entries written at an index may have been replaced in the unstable log by
    /// entries of a newer term while the write was under way; the acknowledgement of the old
    /// write must not mark the new entries stable.
    pub fn stable_to(&mut self, index: u64, term: u64) -> StableOutcome {
        let Some(found) = self.entry_term(index) else {
            if self.snapshot_term(index).is_some() {
                return StableOutcome::MatchedSnapshot;
            }
            return StableOutcome::Missing;
        };
        if found != term {
            return StableOutcome::TermMismatch { existing: found };
        }
        // `entry_term` found entry `index`, so `index - offset < entries.len()`.
        let n = (index - self.offset) as usize + 1;
        self.entries.vec_mut().drain(..n);
        self.offset = index.saturating_add(1);
        self.offset_in_progress = cmp::max(self.offset_in_progress, self.offset);
        self.shrink_entries(n);
        StableOutcome::Stabilized
    }

    /// Trims the entry vector after `stabilized` entries left it. A vector this batch filled at
    /// least half of is kept (emptied) for the next batch: a busy node reuses one buffer
    /// instead of growing a new one through five reallocations per Ready. Otherwise an empty
    /// vector is released and a mostly unused one trimmed, so a burst does not pin memory;
    /// [`Unstable::release_buffers`] frees what a quiet node kept.
    fn shrink_entries(&mut self, stabilized: usize) {
        let v = self.entries.vec_mut();
        if v.is_empty() {
            if v.capacity() > 2 * stabilized {
                *v = Vec::new();
            }
        } else if v.len() * 2 < v.capacity() {
            v.shrink_to_fit();
        }
    }

    /// Frees an empty entry vector's memory (a node going quiet keeps nothing it does not use).
    pub fn release_buffers(&mut self) {
        self.entries.release();
    }

    /// The unstable snapshot at index `i` has been persisted: drop it. Any other index is
    /// ignored.
    pub fn stable_snap_to(&mut self, i: u64) {
        if self.snap().is_some_and(|s| s.index() == i) {
            self.snapshot = None;
        }
    }

    /// Replaces the unstable state with snapshot `s`: no entries, offset right after it.
    ///
    /// The caller rejects a snapshot at index `u64::MAX` (no entry could follow it); if one gets
    /// here the offset saturates instead of wrapping.
    pub fn restore(&mut self, s: Snapshot) {
        self.offset = s.index().saturating_add(1);
        self.offset_in_progress = self.offset;
        self.entries = LazyVec::default();
        self.snapshot = Some(PendingSnapshot::new(s));
    }

    /// Appends `ents` (contiguous indexes), first discarding any unstable entries at or after
    /// the index of `ents[0]`:
    /// - right after the last unstable entry: a plain append;
    /// - at or before `offset`: the unstable entries are replaced and `offset` moves to
    ///   `ents[0].index` (the stable entries from there on are superseded too);
    /// - inside the unstable entries: the suffix from `ents[0].index` is truncated, then `ents`
    ///   appended.
    ///
    /// Entries in progress that were truncated are no longer in progress. An append that would
    /// leave a gap after the last unstable entry is an error and changes nothing.
    pub fn truncate_and_append(&mut self, ents: Vec<Entry>) -> Result<()> {
        let Some(from) = ents.first().map(|e| e.index) else {
            return Ok(());
        };
        let end = self.end();
        if from == end {
            let v = self.entries.vec_mut();
            if v.is_empty() {
                *v = ents;
            } else {
                v.extend(ents);
            }
        } else if from <= self.offset {
            *self.entries.vec_mut() = ents;
            self.offset = from;
            self.offset_in_progress = from;
        } else if from < end {
            let v = self.entries.vec_mut();
            v.truncate((from - self.offset) as usize);
            v.extend(ents);
            self.offset_in_progress = cmp::min(self.offset_in_progress, from);
        } else {
            return Err(StorageError::Other(format!(
                "unstable append at index {from} leaves a gap after index {}",
                end.saturating_sub(1)
            ))
            .into());
        }
        Ok(())
    }

    /// Appends a normal entry of `term` carrying `data` right after the last one (the leader's
    /// proposals; no vector is built per entry) and returns its index.
    #[inline]
    pub fn push_next(&mut self, term: u64, data: Bytes) -> u64 {
        let index = self.end();
        self.entries.push(Entry {
            term,
            index,
            r#type: EntryType::EntryNormal as i32,
            data,
        });
        index
    }

    /// The unstable entries with indexes in `[lo, hi)`. `Compacted` if `lo < offset`,
    /// `Unavailable` if `hi` is past the last unstable entry + 1, `Other` if `lo > hi`.
    pub fn slice(&self, lo: u64, hi: u64) -> Result<&[Entry]> {
        if lo > hi {
            return Err(invalid_range("unstable.slice", lo, hi));
        }
        if lo < self.offset {
            return Err(StorageError::Compacted.into());
        }
        if hi > self.end() {
            return Err(StorageError::Unavailable.into());
        }
        // Both bounds are within [offset, offset + len], so the differences fit a usize.
        Ok(&self.entries.as_slice()[(lo - self.offset) as usize..(hi - self.offset) as usize])
    }
}

/// The error for a range whose low end is above its high end.
pub(crate) fn invalid_range(what: &str, lo: u64, hi: u64) -> Error {
    StorageError::Other(format!("invalid {what} range [{lo}, {hi})")).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftpb::SnapshotMetadata;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn ents(from: u64, terms: &[u64]) -> Vec<Entry> {
        terms
            .iter()
            .enumerate()
            .map(|(k, &t)| ent(from + k as u64, t))
            .collect()
    }

    fn snap(index: u64, term: u64) -> Snapshot {
        Snapshot {
            data: Default::default(),
            metadata: Some(SnapshotMetadata {
                conf_state: None,
                index,
                term,
            }),
        }
    }

    fn unstable(snapshot: Option<Snapshot>, entries: Vec<Entry>, offset: u64) -> Unstable {
        Unstable {
            snapshot: snapshot.map(PendingSnapshot::new),
            entries: entries.into(),
            offset,
            offset_in_progress: offset,
        }
    }

    #[test]
    fn maybe_first_index() {
        // (snapshot, entries, offset, want)
        let cases = [
            (None, ents(5, &[1]), 5, None),
            (None, vec![], 0, None),
            (Some(snap(4, 1)), ents(5, &[1]), 5, Some(5)),
            (Some(snap(4, 1)), vec![], 5, Some(5)),
        ];
        for (i, (s, e, off, want)) in cases.into_iter().enumerate() {
            let u = unstable(s, e, off);
            assert_eq!(u.maybe_first_index(), want, "case {i}");
        }
    }

    #[test]
    fn maybe_last_index() {
        let cases = [
            (None, ents(5, &[1]), 5, Some(5)),
            (Some(snap(4, 1)), ents(5, &[1]), 5, Some(5)),
            (Some(snap(4, 1)), vec![], 5, Some(4)),
            (None, vec![], 0, None),
        ];
        for (i, (s, e, off, want)) in cases.into_iter().enumerate() {
            let u = unstable(s, e, off);
            assert_eq!(u.maybe_last_index(), want, "case {i}");
        }
    }

    #[test]
    fn maybe_term() {
        // (snapshot, entries, offset, index, want)
        let cases = [
            (None, ents(5, &[1]), 5, 5, Some(1)),
            (None, ents(5, &[1]), 5, 6, None),
            (None, ents(5, &[1]), 5, 4, None),
            (Some(snap(4, 1)), ents(5, &[1]), 5, 5, Some(1)),
            (Some(snap(4, 1)), ents(5, &[1]), 5, 6, None),
            (Some(snap(4, 1)), ents(5, &[1]), 5, 4, Some(1)),
            (Some(snap(4, 1)), ents(5, &[1]), 5, 3, None),
            (Some(snap(4, 1)), vec![], 5, 5, None),
            (Some(snap(4, 1)), vec![], 5, 4, Some(1)),
            (None, vec![], 0, 5, None),
            (None, ents(5, &[1]), 5, u64::MAX, None),
            (Some(snap(4, 1)), vec![], 5, u64::MAX, None),
        ];
        for (i, (s, e, off, idx, want)) in cases.into_iter().enumerate() {
            let u = unstable(s, e, off);
            assert_eq!(u.maybe_term(idx), want, "case {i}");
        }
    }

    #[test]
    fn restore() {
        let mut u = Unstable {
            snapshot: Some(Box::new(PendingSnapshot {
                snapshot: snap(4, 1),
                in_progress: true,
            })),
            entries: ents(5, &[1]).into(),
            offset: 5,
            offset_in_progress: 6,
        };
        let s = snap(6, 2);
        u.restore(s.clone());
        assert_eq!(u.offset, 7);
        assert_eq!(u.offset_in_progress, 7);
        assert!(u.entries.is_empty());
        assert_eq!(u.snap(), Some(&s));
        assert!(!u.snapshot.as_ref().unwrap().in_progress);
        // A hostile snapshot index does not wrap the offset.
        u.restore(snap(u64::MAX, 3));
        assert_eq!(u.offset, u64::MAX);
        assert_eq!(u.maybe_first_index(), Some(u64::MAX));
        assert_eq!(u.maybe_last_index(), Some(u64::MAX));
        assert_eq!(u.maybe_term(u64::MAX), Some(3));
        assert!(u.next_entries().is_empty());
    }

    #[test]
    fn next_entries() {
        // (entries, offset, offset_in_progress, want)
        let cases = [
            // Nothing in progress.
            (ents(5, &[1, 1]), 5, 5, ents(5, &[1, 1])),
            // Partially in progress.
            (ents(5, &[1, 1]), 5, 6, ents(6, &[1])),
            // Everything in progress.
            (ents(5, &[1, 1]), 5, 7, vec![]),
            (vec![], 5, 5, vec![]),
        ];
        for (i, (e, off, oip, want)) in cases.into_iter().enumerate() {
            let mut u = unstable(None, e, off);
            u.offset_in_progress = oip;
            assert_eq!(u.next_entries(), &want[..], "case {i}");
        }
    }

    #[test]
    fn next_snapshot() {
        let s = snap(4, 1);
        let mut u = unstable(None, vec![], 5);
        assert_eq!(u.next_snapshot(), None);
        u.snapshot = Some(PendingSnapshot::new(s.clone()));
        assert_eq!(u.next_snapshot(), Some(&s));
        u.snapshot.as_mut().unwrap().in_progress = true;
        assert_eq!(u.next_snapshot(), None);
    }

    #[test]
    fn accept_in_progress() {
        // (entries, snapshot, offset_in_progress, snap in progress, want oip, want snap ip)
        let s = || Some(snap(4, 1));
        let cases = [
            (vec![], None, 5, false, 5, false),
            (ents(5, &[1]), None, 5, false, 6, false),
            (ents(5, &[1, 1]), None, 5, false, 7, false),
            (ents(5, &[1, 1]), None, 6, false, 7, false),
            (ents(5, &[1, 1]), None, 7, false, 7, false),
            (vec![], s(), 5, false, 5, true),
            (ents(5, &[1]), s(), 5, false, 6, true),
            (ents(5, &[1, 1]), s(), 6, true, 7, true),
            (vec![], s(), 5, true, 5, true),
        ];
        for (i, (e, sn, oip, sip, want_oip, want_sip)) in cases.into_iter().enumerate() {
            let mut u = unstable(sn, e, 5);
            u.offset_in_progress = oip;
            if let Some(p) = u.snapshot.as_mut() {
                p.in_progress = sip;
            }
            u.accept_in_progress();
            assert_eq!(u.offset_in_progress, want_oip, "case {i}");
            let sip_now = u.snapshot.as_ref().is_some_and(|p| p.in_progress);
            assert_eq!(sip_now, want_sip, "case {i}");
        }
    }

    #[test]
    fn stable_to() {
        use StableOutcome::*;
        // (entries, offset, offset_in_progress, snapshot, index, term,
        //  want outcome, want offset, want oip, want len)
        let s = || Some(snap(4, 1));
        let cases = [
            (vec![], 0, 0, None, 5, 1, Missing, 0, 0, 0),
            // Stable to the first entry.
            (ents(5, &[1]), 5, 6, None, 5, 1, Stabilized, 6, 6, 0),
            (ents(5, &[1, 1]), 5, 6, None, 5, 1, Stabilized, 6, 6, 1),
            (ents(5, &[1, 1]), 5, 7, None, 5, 1, Stabilized, 6, 7, 1),
            // Stable to the first entry, with in-progress offset behind: it catches up.
            (ents(6, &[2]), 6, 6, None, 6, 2, Stabilized, 7, 7, 0),
            // Term mismatch: the ABA guard.
            (
                ents(6, &[2]),
                6,
                7,
                None,
                6,
                1,
                TermMismatch { existing: 2 },
                6,
                7,
                1,
            ),
            // Stable to an old entry.
            (ents(5, &[1]), 5, 6, None, 4, 1, Missing, 5, 6, 1),
            (ents(5, &[1]), 5, 6, None, 4, 2, Missing, 5, 6, 1),
            // Past the end.
            (ents(5, &[1]), 5, 6, None, 6, 1, Missing, 5, 6, 1),
            (ents(5, &[1]), 5, 6, None, u64::MAX, 1, Missing, 5, 6, 1),
            // With a snapshot.
            (ents(5, &[1]), 5, 6, s(), 5, 1, Stabilized, 6, 6, 0),
            (ents(5, &[1, 1]), 5, 6, s(), 5, 1, Stabilized, 6, 6, 1),
            (ents(5, &[1, 1]), 5, 7, s(), 5, 1, Stabilized, 6, 7, 1),
            (
                ents(6, &[2]),
                6,
                7,
                s(),
                6,
                1,
                TermMismatch { existing: 2 },
                6,
                7,
                1,
            ),
            (ents(5, &[1]), 5, 6, s(), 4, 1, MatchedSnapshot, 5, 6, 1),
            (
                ents(5, &[2]),
                5,
                6,
                Some(snap(4, 2)),
                4,
                1,
                MatchedSnapshot,
                5,
                6,
                1,
            ),
        ];
        for (i, (e, off, oip, sn, idx, term, want, w_off, w_oip, w_len)) in
            cases.into_iter().enumerate()
        {
            let mut u = unstable(sn, e, off);
            u.offset_in_progress = oip;
            assert_eq!(u.stable_to(idx, term), want, "case {i}");
            assert_eq!(u.offset, w_off, "case {i}");
            assert_eq!(u.offset_in_progress, w_oip, "case {i}");
            assert_eq!(u.entries.len(), w_len, "case {i}");
        }
    }

    #[test]
    fn stable_to_keeps_or_trims_the_buffer_at_its_exact_bounds() {
        let with_cap = |n: u64, cap: usize| {
            let mut v = Vec::with_capacity(cap);
            v.extend(ents(1, &vec![1; n as usize]));
            assert_eq!(v.capacity(), cap);
            let mut u = unstable(None, v, 1);
            u.accept_in_progress();
            u
        };
        // Emptied by a batch of 3: a buffer of 6 (twice the batch) is kept, one of 7 released.
        let mut u = with_cap(3, 6);
        u.stable_to(3, 1);
        assert!(u.entries.is_empty());
        assert_eq!(u.entries.capacity(), 6);
        let mut u = with_cap(3, 7);
        u.stable_to(3, 1);
        assert_eq!(u.entries.capacity(), 0);
        // 4 of 8 left in a buffer of 8: exactly half used, kept; 3 of 8 left: trimmed.
        let mut u = with_cap(8, 8);
        u.stable_to(4, 1);
        assert_eq!(u.entries.len(), 4);
        assert_eq!(u.entries.capacity(), 8);
        u.stable_to(5, 1);
        assert_eq!(u.entries.len(), 3);
        assert!(u.entries.capacity() < 8);
    }

    #[test]
    fn stable_to_frees_memory() {
        let mut u = unstable(None, ents(1, &[1; 100]), 1);
        u.accept_in_progress();
        assert!(u.entries.capacity() >= 100);
        u.stable_to(90, 1);
        assert_eq!(u.entries.len(), 10);
        assert!(
            u.entries.capacity() < 20,
            "capacity {}",
            u.entries.capacity()
        );
        assert_eq!(u.entries.as_slice()[0].index, 91);
        // The last 10 filled at least half of what is left: the buffer is kept for the next
        // batch, until the node releases it.
        u.stable_to(100, 1);
        assert!(u.entries.is_empty());
        assert!(u.entries.capacity() > 0);
        assert_eq!(u.offset, 101);
        assert_eq!(u.offset_in_progress, 101);
        u.release_buffers();
        assert_eq!(u.entries.capacity(), 0);
        // One entry in a large buffer: released at once.
        let mut v = unstable(None, Vec::with_capacity(64), 1);
        v.entries.vec_mut().extend(ents(1, &[1]));
        v.accept_in_progress();
        v.stable_to(1, 1);
        assert_eq!(v.entries.capacity(), 0);
    }

    #[test]
    fn push_next_numbers_entries_after_the_last() {
        let mut u = unstable(Some(snap(4, 1)), vec![], 5);
        assert_eq!(u.push_next(2, Bytes::from_static(b"a")), 5);
        assert_eq!(u.push_next(2, Bytes::new()), 6);
        assert_eq!(u.maybe_last_index(), Some(6));
        assert_eq!(u.maybe_term(5), Some(2));
        let mut v = unstable(None, ents(7, &[3]), 7);
        assert_eq!(v.push_next(3, Bytes::new()), 8);
        assert_eq!(
            v.entries.as_slice()[1].r#type,
            EntryType::EntryNormal as i32
        );
    }

    #[test]
    fn stable_snap_to() {
        let mut u = unstable(Some(snap(4, 1)), vec![], 5);
        u.snapshot.as_mut().unwrap().in_progress = true;
        u.stable_snap_to(3);
        assert!(u.snapshot.is_some());
        u.stable_snap_to(5);
        assert!(u.snapshot.is_some());
        u.stable_snap_to(4);
        assert!(u.snapshot.is_none());
        u.stable_snap_to(4);
        assert!(u.snapshot.is_none());
    }

    #[test]
    fn truncate_and_append() {
        // (entries, offset, offset_in_progress, to append, want entries, want offset, want oip)
        let cases = [
            // Append to the end.
            (
                ents(5, &[1]),
                5,
                5,
                ents(6, &[1, 1]),
                ents(5, &[1, 1, 1]),
                5,
                5,
            ),
            (
                ents(5, &[1]),
                5,
                6,
                ents(6, &[1, 1]),
                ents(5, &[1, 1, 1]),
                5,
                6,
            ),
            // Replace the unstable entries.
            (
                ents(5, &[1]),
                5,
                5,
                ents(5, &[2, 2]),
                ents(5, &[2, 2]),
                5,
                5,
            ),
            (
                ents(5, &[1]),
                5,
                5,
                ents(4, &[2, 2, 2]),
                ents(4, &[2, 2, 2]),
                4,
                4,
            ),
            (
                ents(5, &[1]),
                5,
                6,
                ents(5, &[2, 2]),
                ents(5, &[2, 2]),
                5,
                5,
            ),
            // Truncate the existing entries and append.
            (
                ents(5, &[1, 1, 1]),
                5,
                5,
                ents(6, &[2]),
                ents(5, &[1, 2]),
                5,
                5,
            ),
            (
                ents(5, &[1, 1, 1]),
                5,
                5,
                ents(7, &[2, 2]),
                ents(5, &[1, 1, 2, 2]),
                5,
                5,
            ),
            (
                ents(5, &[1, 1, 1]),
                5,
                6,
                ents(6, &[2]),
                ents(5, &[1, 2]),
                5,
                6,
            ),
            (
                ents(5, &[1, 1, 1]),
                5,
                7,
                ents(6, &[2]),
                ents(5, &[1, 2]),
                5,
                6,
            ),
            (
                ents(5, &[1, 1, 1]),
                5,
                8,
                ents(6, &[2]),
                ents(5, &[1, 2]),
                5,
                6,
            ),
            // Appending nothing changes nothing.
            (ents(5, &[1]), 5, 6, vec![], ents(5, &[1]), 5, 6),
            // Into an empty unstable log.
            (vec![], 5, 5, ents(5, &[1]), ents(5, &[1]), 5, 5),
        ];
        for (i, (e, off, oip, app, want, w_off, w_oip)) in cases.into_iter().enumerate() {
            let mut u = unstable(None, e, off);
            u.offset_in_progress = oip;
            u.truncate_and_append(app).unwrap();
            assert_eq!(u.entries.as_slice(), want, "case {i}");
            assert_eq!(u.offset, w_off, "case {i}");
            assert_eq!(u.offset_in_progress, w_oip, "case {i}");
        }
    }

    #[test]
    fn truncate_and_append_gap_is_an_error() {
        let mut u = unstable(None, ents(5, &[1]), 5);
        let before = u.clone();
        assert!(u.truncate_and_append(ents(7, &[1])).is_err());
        assert_eq!(u, before);
        let mut u = unstable(None, vec![], 5);
        assert!(u.truncate_and_append(ents(6, &[1])).is_err());
        assert!(u.truncate_and_append(ents(u64::MAX - 1, &[1, 1])).is_err());
    }

    #[test]
    fn slice() {
        let u = unstable(None, ents(5, &[1, 2, 3]), 5);
        assert_eq!(u.slice(5, 8).unwrap(), &ents(5, &[1, 2, 3])[..]);
        assert_eq!(u.slice(6, 7).unwrap(), &ents(6, &[2])[..]);
        assert_eq!(u.slice(8, 8).unwrap(), &[][..]);
        assert_eq!(u.slice(5, 5).unwrap(), &[][..]);
        assert_eq!(
            u.slice(4, 6).unwrap_err(),
            Error::Store(StorageError::Compacted)
        );
        assert_eq!(
            u.slice(5, 9).unwrap_err(),
            Error::Store(StorageError::Unavailable)
        );
        assert_eq!(
            u.slice(6, u64::MAX).unwrap_err(),
            Error::Store(StorageError::Unavailable)
        );
        assert!(matches!(
            u.slice(7, 6).unwrap_err(),
            Error::Store(StorageError::Other(_))
        ));
        assert!(u.slice(0, u64::MAX).is_err());
    }
}
