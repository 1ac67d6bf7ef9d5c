//! `RaftLog`: the node's view of the log, made of the application's stable [`Storage`] and the
//! [`Unstable`] tail not yet persisted, with the commit and apply cursors.
//!
//! ```text
//!   snapshot/first_index ......... applied ... applying ... committed ... last_index
//!   |<-------- Storage (stable) -------->|<------ Unstable (not yet persisted) ------>|
//! ```
//!
//! Remote input reaches this type only through [`RaftLog::maybe_append`] (entries, the previous
//! index/term and the leader's commit index of a `MsgApp`), [`RaftLog::find_conflict_by_term`]
//! and [`RaftLog::is_up_to_date`]; they validate what they are given and never panic on it.
//! Everything else is driven by the local node, whose misuse is caught by `debug_assert!`s.
//!
//! No logging, IO, clock or global state: callers log the outcomes these methods report.

use std::cmp;
use std::fmt;

use crate::config::NO_LIMIT;
use crate::error::{Error, Result, StorageError};
use crate::log_unstable::{invalid_range, StableOutcome, Unstable};
use crate::raftpb::{Entry, Snapshot};
use crate::storage::{entry_size, limit_len, Storage};
use bytes::Bytes;

/// The log of one Raft node: stable storage plus the unstable tail, and the cursors
/// `applied <= applying <= committed <= last_index()`.
#[derive(Debug, Clone)]
pub struct RaftLog<S: Storage> {
    /// The stable part of the log, written by the application.
    pub store: S,
    /// Entries and a snapshot not yet persisted.
    pub unstable: Unstable,
    /// The highest index known to be committed (replicated on a quorum).
    pub committed: u64,
    /// The highest index handed out to the application for applying. Always `>= applied`;
    /// the same as `applied` when nothing is outstanding.
    pub applying: u64,
    /// The highest index the application has applied.
    pub applied: u64,
    /// The limit on the encoded bytes of entries handed out for applying and not yet applied.
    max_applying_ents_size: u64,
    /// The encoded bytes of entries handed out for applying and not yet applied.
    applying_ents_size: u64,
    /// True when no more committed entries are handed out until some are applied.
    applying_ents_paused: bool,
    /// The payloads of the entries handed out for persisting (the unstable entries in
    /// progress, `[unstable.offset, unstable.offset_in_progress)`) are moved into the Ready
    /// rather than cloned ([`Config::hand_over_entries`](crate::Config::hand_over_entries)):
    /// the entries stay here for their index and term, and reads of them go to the storage,
    /// checked entry by entry against the terms kept here. Set from the configuration.
    pub handed_over: bool,
}

/// The leading `unstable` entries that fit after stored entries of `size` encoded bytes under
/// `max_size` (all of them without a limit). Unlike `limit_len`'s, the first entry is not
/// kept when it does not fit: the batch already holds the storage's entries.
fn fit_after(unstable: &[Entry], size: u64, max_size: u64) -> &[Entry] {
    if max_size == NO_LIMIT {
        return unstable;
    }
    if size >= max_size {
        return &[];
    }
    let n = limit_len(unstable, max_size - size);
    if n == 1 && size.saturating_add(entry_size(&unstable[0])) > max_size {
        return &[];
    }
    &unstable[..n]
}

impl<S: Storage> RaftLog<S> {
    /// A log over `store`, with everything in the storage taken as stable and the commit and
    /// apply cursors at the storage's snapshot (`first_index - 1`). The commit index of the
    /// stored HardState is applied later by the node.
    ///
    /// `max_applying_ents_size` bounds the encoded bytes of committed entries handed out and
    /// not yet applied (etcd's `MaxCommittedSizePerReady`). 0 hands out one entry at a time.
    ///
    /// `Error::CorruptState` if the storage's indexes are inconsistent (first index 0, first
    /// index past last index + 1, last index `u64::MAX`); storage errors are returned as is.
    pub fn new(store: S, max_applying_ents_size: u64) -> Result<RaftLog<S>> {
        let first = store.first_index()?;
        let last = store.last_index()?;
        if first == 0 {
            return Err(Error::CorruptState(
                "storage first index is 0 (it is at least 1)".to_string(),
            ));
        }
        let Some(offset) = last.checked_add(1) else {
            return Err(Error::CorruptState(format!(
                "storage last index {last} out of range"
            )));
        };
        if first > offset {
            return Err(Error::CorruptState(format!(
                "storage first index {first} is past its last index {last} + 1"
            )));
        }
        Ok(RaftLog {
            store,
            unstable: Unstable::new(offset),
            committed: first - 1,
            applying: first - 1,
            applied: first - 1,
            max_applying_ents_size,
            applying_ents_size: 0,
            handed_over: false,
            applying_ents_paused: false,
        })
    }

    #[cfg(test)]
    /// The encoded bytes of the entries handed out for applying and not yet applied.
    pub fn applying_ents_size(&self) -> u64 {
        self.applying_ents_size
    }

    #[cfg(test)]
    /// True while handing out committed entries is paused by the size limit.
    pub fn applying_ents_paused(&self) -> bool {
        self.applying_ents_paused
    }

    /// The index of the first entry that may be read (one past the latest snapshot).
    ///
    /// # Panics
    /// If the storage fails to report its first index (a broken local storage).
    pub fn first_index(&self) -> u64 {
        if let Some(i) = self.unstable.maybe_first_index() {
            return i;
        }
        self.store
            .first_index()
            .expect("Storage::first_index failed: the local storage is broken")
    }

    /// The index of the last entry (the snapshot index when the log is empty).
    ///
    /// # Panics
    /// If the storage fails to report its last index (a broken local storage).
    pub fn last_index(&self) -> u64 {
        if let Some(i) = self.unstable.maybe_last_index() {
            return i;
        }
        self.store
            .last_index()
            .expect("Storage::last_index failed: the local storage is broken")
    }

    /// The term of the last entry.
    ///
    /// # Panics
    /// If the term of the last index cannot be read (a broken local storage: that term is
    /// always in the valid range).
    pub fn last_term(&self) -> u64 {
        self.last_entry_id().0
    }

    /// The `(term, index)` of the last entry.
    ///
    /// # Panics
    /// As [`RaftLog::last_term`].
    pub fn last_entry_id(&self) -> (u64, u64) {
        let index = self.last_index();
        let term = self
            .term(index)
            .expect("the term of the last index is readable unless the local storage is broken");
        (term, index)
    }

    /// The term of entry `i`, valid for `[first_index() - 1, last_index()]`: `Compacted`
    /// below, `Unavailable` above. The unstable part is asked first, then the storage.
    pub fn term(&self, i: u64) -> Result<u64> {
        // Anything the unstable part knows is in the valid range.
        if let Some(t) = self.unstable.maybe_term(i) {
            return Ok(t);
        }
        // The term at first_index - 1 (the snapshot) stays known for matching appends.
        if i.saturating_add(1) < self.first_index() {
            return Err(StorageError::Compacted.into());
        }
        if i > self.last_index() {
            return Err(StorageError::Unavailable.into());
        }
        self.store.term(i)
    }

    /// True if entry `i` exists with term `t`.
    pub fn match_term(&self, i: u64, t: u64) -> bool {
        self.term(i).is_ok_and(|x| x == t)
    }

    /// The index of the first of `ents` (contiguous indexes) that is not in the log with the
    /// same term: an entry with a different term (a conflict), or the first new entry. 0 if
    /// all of `ents` are already in the log.
    pub fn find_conflict(&self, ents: &[Entry]) -> u64 {
        ents.iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map_or(0, |e| e.index)
    }

    /// A best guess at where this log stops matching another log of which only one entry,
    /// `(index, term)`, is known: the largest index `g <= index` whose term is at most `term`
    /// or unknown (compacted, or past the end), with its term (0 when unknown). Followers use
    /// it to hint rejections, leaders to skip a whole term per probe.
    ///
    /// It walks down from `index`, stops at the first index whose term is not readable (at the
    /// latest just below `first_index() - 1`, whose term is known), never errs, and answers
    /// `(0, 0)` when it reaches 0. The arguments may come from the network.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut index = index;
        while index > 0 {
            match self.term(index) {
                Err(_) => return (index, 0),
                Ok(t) if t <= term => return (index, t),
                Ok(_) => index -= 1,
            }
        }
        (0, 0)
    }

    /// Handles the entries of an append message: `ents` follow entry `(prev_index, prev_term)`
    /// in the leader's log, and `committed` is the leader's commit index.
    ///
    /// The message is validated first; every rule it breaks is an `Error::InvalidMessage` and
    /// leaves the log untouched: the entry indexes must be `prev_index+1, prev_index+2, ...`
    /// (without overflow), the terms at least 1, non-decreasing and at least `prev_term`, and
    /// no entry may conflict with a committed one.
    ///
    /// `Ok(None)` if the log has no entry `(prev_index, prev_term)` (the append must be
    /// rejected). Otherwise the entries not yet in the log are appended (truncating a
    /// conflicting suffix), the commit index moves to `min(committed, last new index)` (so a
    /// commit index past what is known to match is clamped), and the last new index is
    /// returned.
    pub fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        committed: u64,
        mut ents: Vec<Entry>,
    ) -> Result<Option<u64>> {
        // The gate checked this shape for messages; the log asserts it as its own invariant.
        let last_new = crate::raft::append_shape(prev_index, prev_term, &ents)
            .map_err(Error::InvalidMessage)?;
        if !self.match_term(prev_index, prev_term) {
            return Ok(None);
        }
        let conflict = self.find_conflict(&ents);
        if conflict != 0 {
            if conflict <= self.committed {
                return Err(Error::InvalidMessage(crate::Reason::RewritesCommitted));
            }
            // `conflict` is the index of one of `ents`, which start at prev_index + 1.
            let skip = (conflict - prev_index - 1) as usize;
            ents.drain(..skip);
            self.try_append(ents)?;
        }
        self.commit_to(cmp::min(committed, last_new));
        Ok(Some(last_new))
    }

    /// Appends local entries that already carry their indexes and terms (a leader's
    /// proposals), truncating any unstable suffix they replace. Returns the new last index.
    ///
    /// The entries must be contiguous, start at most one past the last index and after the
    /// commit index; this is a local invariant, checked by `debug_assert!`. In a release build
    /// a violating append is dropped and the log is left as it was.
    pub fn append(&mut self, ents: Vec<Entry>) -> u64 {
        match self.try_append(ents) {
            Ok(last) => last,
            Err(e) => {
                debug_assert!(false, "invalid local append: {e}");
                self.last_index()
            }
        }
    }

    /// Appends a normal entry of `term` carrying `data` after the last one (the leader's
    /// proposals) and returns its index. The unstable log numbers it: its next index is
    /// `last_index() + 1` (the log's invariant, asserted in debug builds), so the hot path
    /// neither asks for the last index nor checks the entry's.
    #[inline]
    pub fn append_next(&mut self, term: u64, data: Bytes) -> u64 {
        #[cfg(debug_assertions)]
        let want = self.last_index() + 1;
        let index = self.unstable.push_next(term, data);
        #[cfg(debug_assertions)]
        {
            debug_assert_eq!(index, want, "unstable log out of step with the log");
            debug_assert!(
                index > self.committed,
                "append at or below the commit index"
            );
        }
        index
    }

    /// [`RaftLog::append`], reporting a violating append as an error (`StorageError::Other`)
    /// instead; the log is then unchanged.
    pub fn try_append(&mut self, ents: Vec<Entry>) -> Result<u64> {
        let Some(from) = ents.first().map(|e| e.index) else {
            return Ok(self.last_index());
        };
        if from <= self.committed {
            return Err(StorageError::Other(format!(
                "append at index {from} rewrites committed entries [committed({})]",
                self.committed
            ))
            .into());
        }
        let last = self.last_index();
        if from > last.saturating_add(1) {
            return Err(StorageError::Other(format!(
                "append at index {from} leaves a gap after the last index {last}"
            ))
            .into());
        }
        let contiguous = ents
            .iter()
            .zip(from..u64::MAX)
            .filter(|(e, i)| e.index == *i)
            .count()
            == ents.len();
        if !contiguous {
            return Err(StorageError::Other(format!(
                "append of non-contiguous entries from index {from}"
            ))
            .into());
        }
        self.unstable.truncate_and_append(ents)?;
        Ok(self.last_index())
    }

    /// Moves the commit index up to `to`; it never decreases. `to` must not exceed the last
    /// index (a local invariant, `debug_assert!`ed; a release build clamps it).
    pub fn commit_to(&mut self, to: u64) {
        if self.committed < to {
            let last = self.last_index();
            debug_assert!(
                to <= last,
                "tocommit({to}) is out of range [lastIndex({last})]"
            );
            self.committed = cmp::max(self.committed, cmp::min(to, last));
        }
    }

    /// Commits up to `index` if it is past the commit index and the log has `(index, term)`
    /// with a non-zero term. Returns whether the commit index moved.
    pub fn maybe_commit(&mut self, index: u64, term: u64) -> bool {
        if term != 0 && index > self.committed && self.match_term(index, term) {
            self.commit_to(index);
            true
        } else {
            false
        }
    }

    /// True when the outstanding applying bytes keep entries from being handed out. A limit of
    /// 0 pauses only while something is outstanding.
    #[inline]
    fn applying_limit_reached(&self) -> bool {
        self.applying_ents_size >= self.max_applying_ents_size && self.applying_ents_size > 0
    }

    /// The application has applied everything up to `i`; `size` is the encoded size of the
    /// entries this acknowledges (released from the outstanding applying bytes).
    ///
    /// `i` must be in `[applied, committed]` (`debug_assert!`ed; a release build never moves
    /// `applied` backwards nor past `committed`).
    pub fn applied_to(&mut self, i: u64, size: u64) {
        debug_assert!(
            self.applied <= i && i <= self.committed,
            "applied({i}) is out of range [prevApplied({}), committed({})]",
            self.applied,
            self.committed
        );
        self.applied = cmp::max(self.applied, cmp::min(i, self.committed));
        self.applying = cmp::max(self.applying, self.applied);
        self.applying_ents_size = self.applying_ents_size.saturating_sub(size);
        self.applying_ents_paused = self.applying_limit_reached();
    }

    /// The entries up to `i`, of encoded size `size`, have been handed out for applying.
    /// Handing out pauses while the outstanding bytes reach the limit, and also when `i` is
    /// below what could be applied (the batch was cut by the size limit, so the next entry
    /// would cross it).
    ///
    /// `i` must not exceed `committed` (`debug_assert!`ed; clamped in a release build).
    pub fn accept_applying(&mut self, i: u64, size: u64, allow_unstable: bool) {
        debug_assert!(
            i <= self.committed,
            "applying({i}) is out of range [prevApplying({}), committed({})]",
            self.applying,
            self.committed
        );
        self.applying = cmp::min(i, self.committed);
        self.applying_ents_size = self.applying_ents_size.saturating_add(size);
        self.applying_ents_paused =
            self.applying_limit_reached() || i < self.max_appliable_index(allow_unstable);
    }

    /// The highest index that may be handed out for applying: `committed`, and without
    /// `allow_unstable` also no entry that is not yet stable locally.
    pub fn max_appliable_index(&self, allow_unstable: bool) -> u64 {
        let hi = self.committed;
        if allow_unstable {
            hi
        } else {
            cmp::min(hi, self.unstable.offset.saturating_sub(1))
        }
    }

    /// True if committed entries are ready to be handed out for applying (a cheap check: no
    /// entries are read). Nothing is handed out while paused or while a snapshot is pending.
    pub fn has_next_committed_ents(&self, allow_unstable: bool) -> bool {
        if self.applying_ents_paused || self.has_pending_snapshot() {
            return false;
        }
        self.applying < self.max_appliable_index(allow_unstable)
    }

    /// The committed entries to hand out for applying next: those in
    /// `(applying, max_appliable_index]`, limited to the room left under the applying size
    /// limit (always at least one entry when there are any). Empty while paused or while a
    /// snapshot is pending.
    ///
    /// A storage failure (the entries are in range, so the storage is broken) is a
    /// `debug_assert!` and an empty result.
    #[cfg(test)]
    pub fn next_committed_ents(&self, allow_unstable: bool) -> Vec<Entry> {
        let mut out = Vec::new();
        self.next_committed_ents_into(allow_unstable, &mut out);
        out
    }

    /// [`RaftLog::next_committed_ents`], appended to `out` (a buffer the caller reuses).
    pub fn next_committed_ents_into(&self, allow_unstable: bool, out: &mut Vec<Entry>) {
        if let Some((lo, hi, room)) = self.next_committed_bounds(allow_unstable) {
            if let Err(e) = self.slice_into(lo, hi, room, out) {
                self.committed_read_failed(lo, &e);
            }
        }
    }

    /// Nothing is handed out to apply this time. Entries handed over and not yet written
    /// back to the storage wait for it; any other failure is a broken storage (the entries
    /// are in range).
    fn committed_read_failed(&self, lo: u64, e: &Error) {
        debug_assert!(
            self.waits_for_handed_over(lo, e),
            "unexpected error when getting unapplied entries: {e}"
        );
    }

    /// The unstable entries not yet handed out for persisting.
    pub fn next_unstable_ents(&self) -> &[Entry] {
        self.unstable.next_entries()
    }

    /// True if some unstable entries are not yet handed out for persisting.
    pub fn has_next_unstable_ents(&self) -> bool {
        !self.next_unstable_ents().is_empty()
    }

    /// True if some entries are unstable, handed out for persisting or not.
    pub fn has_next_or_in_progress_unstable_ents(&self) -> bool {
        !self.unstable.entries.is_empty()
    }

    /// The unstable snapshot, if not yet handed out for persisting.
    pub fn next_unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.next_snapshot()
    }

    /// True if there is an unstable snapshot not yet handed out for persisting.
    pub fn has_next_unstable_snapshot(&self) -> bool {
        self.unstable.next_snapshot().is_some()
    }

    /// True if a snapshot is unstable (waiting to be persisted or being persisted). Committed
    /// entries are not handed out meanwhile.
    pub fn has_pending_snapshot(&self) -> bool {
        self.unstable.snapshot.is_some()
    }

    /// Marks the current unstable entries and snapshot as handed out for persisting.
    pub fn accept_unstable(&mut self) {
        self.unstable.accept_in_progress();
    }

    /// The entries up to `(index, term)` are persisted. Ignored unless an unstable entry has
    /// that index and term (see [`Unstable::stable_to`]); the outcome says which.
    pub fn stable_to(&mut self, index: u64, term: u64) -> StableOutcome {
        self.unstable.stable_to(index, term)
    }

    /// The unstable snapshot at index `i` is persisted.
    pub fn stable_snap_to(&mut self, i: u64) {
        self.unstable.stable_snap_to(i);
    }

    /// The latest snapshot: the unstable one if any, else the storage's.
    pub fn snapshot(&self) -> Result<Snapshot> {
        match self.unstable.snap() {
            Some(s) => Ok(s.clone()),
            None => self.store.snapshot(),
        }
    }

    /// The entries from `i` to the end of the log, limited to `max_size` encoded bytes (at
    /// least one entry). Empty if `i` is past the last index; `Compacted` if below the first.
    pub fn entries(&self, i: u64, max_size: u64) -> Result<Vec<Entry>> {
        let last = self.last_index();
        if i > last {
            return Ok(Vec::new());
        }
        self.slice(i, last + 1, max_size)
    }

    #[cfg(test)]
    /// Every entry of the log.
    pub fn all_entries(&self) -> Result<Vec<Entry>> {
        self.entries(self.first_index(), NO_LIMIT)
    }

    /// Checks that `[lo, hi)` lies within `[first_index(), last_index() + 1)`.
    fn check_out_of_bounds(&self, lo: u64, hi: u64) -> Result<()> {
        if lo > hi {
            return Err(invalid_range("log slice", lo, hi));
        }
        if lo < self.first_index() {
            return Err(StorageError::Compacted.into());
        }
        if hi > self.last_index().saturating_add(1) {
            return Err(StorageError::Unavailable.into());
        }
        Ok(())
    }

    /// The entries in `[lo, hi)`, from storage and the unstable part, limited to `max_size`
    /// encoded bytes but at least one entry if the range is not empty. `Compacted` if `lo` is
    /// below the first index, `Unavailable` if `hi` is past the last index + 1, `Other` if
    /// `lo > hi`; storage errors are passed on. Entries are clones sharing their payloads.
    pub fn slice(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.slice_into(lo, hi, max_size, &mut out)?;
        Ok(out)
    }

    /// [`RaftLog::slice`], appending to `out` (a buffer the caller reuses). On error `out`
    /// holds what it held before.
    pub fn slice_into(&self, lo: u64, hi: u64, max_size: u64, out: &mut Vec<Entry>) -> Result<()> {
        self.check_out_of_bounds(lo, hi)?;
        if lo == hi {
            return Ok(());
        }
        let offset = self.payload_offset();
        if lo >= offset {
            let ents = self.unstable.slice(lo, hi)?;
            out.extend_from_slice(&ents[..limit_len(ents, max_size)]);
            return Ok(());
        }
        let cut = cmp::min(hi, offset);
        self.check_handed_over(lo, cut)?;
        let start = out.len();
        self.store.entries_into(lo, cut, max_size, out)?;
        let stored = &out[start..];
        if hi <= offset || (stored.len() as u64) < cut - lo {
            // All in storage, or the storage already cut the batch at the size limit.
            return Ok(());
        }
        let unstable = match self.unstable.slice(offset, hi) {
            Ok(u) => u,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        let size = if max_size == NO_LIMIT {
            0
        } else {
            stored
                .iter()
                .fold(0u64, |acc, e| acc.saturating_add(entry_size(e)))
        };
        out.extend_from_slice(fit_after(unstable, size, max_size));
        Ok(())
    }

    /// Where reads of payloads go from the storage to the unstable log: its first entry, or,
    /// with handed-over entries, its first entry not handed out.
    #[inline]
    fn payload_offset(&self) -> u64 {
        if self.handed_over {
            self.unstable.offset_in_progress
        } else {
            self.unstable.offset
        }
    }

    /// Before a read of the storage up to `cut`: whether it already holds the handed-over
    /// entries below `cut` (the terms kept here are the check: until the application writes
    /// them, the storage may hold older entries at those indexes, or none). `Unavailable`
    /// if it does not: the read waits for the write ([`RaftLog::waits_for_handed_over`]).
    fn check_handed_over(&self, lo: u64, cut: u64) -> Result<()> {
        if !self.handed_over {
            return Ok(());
        }
        for i in lo.max(self.unstable.offset)..cut {
            if self.store.term(i).ok() != self.unstable.maybe_term(i) {
                return Err(StorageError::Unavailable.into());
            }
        }
        Ok(())
    }

    /// Whether a read from `lo` on failed with `e` because it reached entries handed over to
    /// the application and not yet written back to the storage (`Unavailable`, with handed-over
    /// entries at or past `lo`): a reader waits for `advance` instead of treating the storage
    /// as broken. A compacted entry is never a wait.
    pub fn waits_for_handed_over(&self, lo: u64, e: &Error) -> bool {
        self.handed_over
            && matches!(e, Error::Store(StorageError::Unavailable))
            && self.unstable.offset < self.unstable.offset_in_progress
            && lo < self.unstable.offset_in_progress
    }

    /// Moves the payloads of the unstable entries not yet handed out into `out` (the rest of
    /// each entry is copied): the Ready takes them without a clone
    /// ([`Config::hand_over_entries`](crate::Config::hand_over_entries)). The caller then
    /// accepts them as in progress.
    pub fn hand_over_next_ents(&mut self, out: &mut Vec<Entry>) {
        debug_assert!(
            self.handed_over,
            "handing over entries in a log that reads its own"
        );
        self.unstable.take_next_entries(out);
    }

    /// [`RaftLog::slice`], lent to `f` in consecutive slices instead of cloned: the same
    /// entries, cut at the same size limit. Errors come before any entry is visited (but the
    /// storage's own, which it may return after visiting some).
    pub fn visit_slice(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        f: &mut dyn FnMut(&[Entry]),
    ) -> Result<()> {
        self.check_out_of_bounds(lo, hi)?;
        if lo == hi {
            return Ok(());
        }
        let offset = self.payload_offset();
        if lo >= offset {
            let ents = self.unstable.slice(lo, hi)?;
            f(&ents[..limit_len(ents, max_size)]);
            return Ok(());
        }
        let cut = cmp::min(hi, offset);
        self.check_handed_over(lo, cut)?;
        let unstable = if hi > offset {
            self.unstable.slice(offset, hi)?
        } else {
            &[]
        };
        // The stored entries' size matters only to cut unstable ones after them.
        let limited = max_size != NO_LIMIT && hi > offset;
        let (mut stored, mut size) = (0u64, 0u64);
        self.store
            .visit_entries(lo, cut, max_size, &mut |s: &[Entry]| {
                stored += s.len() as u64;
                if limited {
                    size = s
                        .iter()
                        .fold(size, |acc, e| acc.saturating_add(entry_size(e)));
                }
                f(s);
            })?;
        if hi <= offset || stored < cut - lo {
            // All in storage, or the storage already cut the batch at the size limit.
            return Ok(());
        }
        let rest = fit_after(unstable, size, max_size);
        if !rest.is_empty() {
            f(rest);
        }
        Ok(())
    }

    /// [`RaftLog::next_committed_ents_into`], each entry lent to `f` instead of cloned.
    /// False when the entries could not be read (what `f` saw then is to be discarded).
    pub fn visit_next_committed_ents(
        &self,
        allow_unstable: bool,
        f: &mut dyn FnMut(&[Entry]),
    ) -> bool {
        let Some((lo, hi, room)) = self.next_committed_bounds(allow_unstable) else {
            return true;
        };
        match self.visit_slice(lo, hi, room, f) {
            Ok(()) => true,
            Err(e) => {
                self.committed_read_failed(lo, &e);
                false
            }
        }
    }

    /// The range `[lo, hi)` of committed entries to hand out next and the size room for them,
    /// or `None` when there are none (paused, a snapshot pending, nothing new).
    fn next_committed_bounds(&self, allow_unstable: bool) -> Option<(u64, u64, u64)> {
        if self.applying_ents_paused || self.has_pending_snapshot() {
            return None;
        }
        let hi = self.max_appliable_index(allow_unstable);
        if self.applying >= hi {
            return None;
        }
        let room = self
            .max_applying_ents_size
            .saturating_sub(self.applying_ents_size);
        // applying < hi <= committed <= last_index < u64::MAX, so neither bound overflows.
        Some((self.applying + 1, hi + 1, room))
    }

    /// Visits the entries in `[lo, hi)` in pages of at most `page_size` encoded bytes (a page
    /// holds at least one entry), in order. Stops at the first error, from reading the log or
    /// returned by `f`; the range must exist, or an error comes (perhaps after some pages).
    pub fn scan(
        &self,
        mut lo: u64,
        hi: u64,
        page_size: u64,
        mut f: impl FnMut(&[Entry]) -> Result<()>,
    ) -> Result<()> {
        while lo < hi {
            let ents = self.slice(lo, hi, page_size)?;
            if ents.is_empty() {
                return Err(StorageError::Other(format!("got 0 entries in [{lo}, {hi})")).into());
            }
            f(&ents)?;
            lo = lo.saturating_add(ents.len() as u64);
        }
        Ok(())
    }

    /// True if a log whose last entry is `(term, last_index)` is at least as up to date as this
    /// one: a higher last term, or the same last term and at least as long.
    pub fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let (our_term, our_index) = self.last_entry_id();
        term > our_term || (term == our_term && last_index >= our_index)
    }

    /// Restores the log to snapshot `s`: it becomes the unstable snapshot, the unstable
    /// entries are dropped and the commit index moves to the snapshot's index. The caller has
    /// checked that the snapshot is newer than the commit index (and is not at `u64::MAX`).
    pub fn restore(&mut self, s: Snapshot) {
        self.committed = s.index();
        self.unstable.restore(s);
    }
}

impl<S: Storage> fmt::Display for RaftLog<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "committed={}, applied={}, applying={}, unstable.offset={}, \
             unstable.offsetInProgress={}, len(unstable.Entries)={}",
            self.committed,
            self.applied,
            self.applying,
            self.unstable.offset,
            self.unstable.offset_in_progress,
            self.unstable.entries.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftpb::{ConfState, SnapshotMetadata};
    use crate::storage::MemStorage;
    use bytes::Bytes;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    /// Entries from index `from` with the given terms.
    fn ents(from: u64, terms: &[u64]) -> Vec<Entry> {
        terms
            .iter()
            .enumerate()
            .map(|(k, &t)| ent(from + k as u64, t))
            .collect()
    }

    fn data_ent(index: u64, term: u64, len: usize) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from(vec![b'x'; len]),
            ..Default::default()
        }
    }

    fn snap(index: u64, term: u64) -> Snapshot {
        Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState::default()),
                index,
                term,
            }),
        }
    }

    /// A log over an empty storage.
    fn new_log() -> RaftLog<MemStorage> {
        RaftLog::new(MemStorage::new(), NO_LIMIT).unwrap()
    }

    /// A log whose storage holds a snapshot at (index, term) and then `stable` entries.
    fn log_with(snap_index: u64, snap_term: u64, stable: &[Entry]) -> RaftLog<MemStorage> {
        let mut s = MemStorage::new();
        if snap_index > 0 {
            s.apply_snapshot(snap(snap_index, snap_term)).unwrap();
        }
        s.append(stable).unwrap();
        RaftLog::new(s, NO_LIMIT).unwrap()
    }

    const COMPACTED: Error = Error::Store(StorageError::Compacted);
    const UNAVAILABLE: Error = Error::Store(StorageError::Unavailable);

    /// Persists what the log hands out, as an application would.
    fn persist(l: &mut RaftLog<MemStorage>) {
        let snapshot = l.next_unstable_snapshot().cloned();
        let ents = l.next_unstable_ents().to_vec();
        l.accept_unstable();
        if let Some(s) = snapshot {
            l.store.apply_snapshot(s.clone()).unwrap();
            l.stable_snap_to(s.index());
        }
        l.store.append(&ents).unwrap();
        if let Some(e) = ents.last() {
            assert_eq!(l.stable_to(e.index, e.term), StableOutcome::Stabilized);
        }
    }

    #[test]
    fn new_log_cursors() {
        let l = log_with(10, 3, &ents(11, &[3, 4]));
        assert_eq!(l.first_index(), 11);
        assert_eq!(l.last_index(), 12);
        assert_eq!(l.committed, 10);
        assert_eq!(l.applying, 10);
        assert_eq!(l.applied, 10);
        assert_eq!(l.unstable.offset, 13);
        assert_eq!(l.unstable.offset_in_progress, 13);
        assert_eq!(l.last_entry_id(), (4, 12));
        assert_eq!(l.last_term(), 4);
    }

    /// A storage whose answers are set by the test.
    struct FakeStorage {
        first: u64,
        last: u64,
    }

    impl Storage for FakeStorage {
        fn initial_state(&self) -> Result<crate::storage::RaftState> {
            Ok(Default::default())
        }
        fn entries(&self, _: u64, _: u64, _: u64) -> Result<Vec<Entry>> {
            Err(StorageError::Other("broken".into()).into())
        }
        fn term(&self, _: u64) -> Result<u64> {
            Err(StorageError::Other("broken".into()).into())
        }
        fn first_index(&self) -> Result<u64> {
            Ok(self.first)
        }
        fn last_index(&self) -> Result<u64> {
            Ok(self.last)
        }
        fn snapshot(&self) -> Result<Snapshot> {
            Err(StorageError::SnapshotTemporarilyUnavailable.into())
        }
    }

    #[test]
    fn new_rejects_inconsistent_storage() {
        let bad = [(0, 0), (5, 3), (1, u64::MAX), (u64::MAX, 1)];
        for (first, last) in bad {
            let r = RaftLog::new(FakeStorage { first, last }, NO_LIMIT);
            assert!(
                matches!(r, Err(Error::CorruptState(_))),
                "first {first} last {last}"
            );
        }
        let l = RaftLog::new(FakeStorage { first: 5, last: 4 }, NO_LIMIT).unwrap();
        assert_eq!(l.committed, 4);
        // Storage errors are passed on, not panicked on.
        assert!(matches!(
            l.snapshot(),
            Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable))
        ));
        let l = RaftLog::new(FakeStorage { first: 1, last: 4 }, NO_LIMIT).unwrap();
        assert!(matches!(
            l.term(2),
            Err(Error::Store(StorageError::Other(_)))
        ));
        assert!(!l.match_term(2, 0));
        assert!(l.slice(1, 3, NO_LIMIT).is_err());
        assert_eq!(l.find_conflict_by_term(3, 1), (3, 0));
    }

    #[test]
    fn find_conflict() {
        let prev = ents(1, &[1, 2, 3]);
        // (entries, want)
        let cases = [
            // No conflict, empty entries.
            (vec![], 0),
            // No conflict.
            (ents(1, &[1, 2, 3]), 0),
            (ents(2, &[2, 3]), 0),
            (ents(3, &[3]), 0),
            // No conflict, but new entries.
            (ents(1, &[1, 2, 3, 4, 4]), 4),
            (ents(2, &[2, 3, 4, 5]), 4),
            (ents(3, &[3, 4, 4]), 4),
            (ents(4, &[4, 4]), 4),
            // Conflicts with existing entries.
            (ents(1, &[4, 4]), 1),
            (ents(2, &[1, 4, 4]), 2),
            (ents(3, &[1, 2, 4, 4]), 3),
        ];
        for (i, (e, want)) in cases.into_iter().enumerate() {
            let mut l = new_log();
            l.append(prev.clone());
            assert_eq!(l.find_conflict(&e), want, "case {i}");
        }
    }

    #[test]
    fn find_conflict_by_term() {
        // (snapshot (index, term), stable entries after it, index, term, want)
        type Case = ((u64, u64), Vec<u64>, u64, u64, (u64, u64));
        let cases: Vec<Case> = vec![
            // Log at terms [2 2 5 5 5] after a dummy at (0, 0).
            ((0, 0), vec![2, 2, 5, 5, 5], 100, 2, (100, 0)), // Past the end: unknown term.
            ((0, 0), vec![2, 2, 5, 5, 5], 5, 6, (5, 5)),
            ((0, 0), vec![2, 2, 5, 5, 5], 5, 5, (5, 5)),
            ((0, 0), vec![2, 2, 5, 5, 5], 5, 4, (2, 2)),
            ((0, 0), vec![2, 2, 5, 5, 5], 5, 2, (2, 2)),
            ((0, 0), vec![2, 2, 5, 5, 5], 5, 1, (0, 0)),
            ((0, 0), vec![2, 2, 5, 5, 5], 1, 2, (1, 2)),
            ((0, 0), vec![2, 2, 5, 5, 5], 1, 1, (0, 0)),
            ((0, 0), vec![2, 2, 5, 5, 5], 0, 0, (0, 0)),
            ((0, 0), vec![2, 2, 5, 5, 5], u64::MAX, 0, (u64::MAX, 0)),
            // A compacted log, snapshot at (10, 3), then terms [3 3 3 4 4 4].
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 30, 3, (30, 0)),
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 14, 9, (14, 4)),
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 14, 4, (14, 4)),
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 14, 3, (13, 3)),
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 14, 2, (9, 0)), // Stops below the snapshot.
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 11, 2, (9, 0)),
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 10, 2, (9, 0)),
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 10, 3, (10, 3)),
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 10, 0, (9, 0)),
            ((10, 3), vec![3, 3, 3, 4, 4, 4], 5, 0, (5, 0)), // Compacted: unknown.
        ];
        for (i, ((si, st), terms, index, term, want)) in cases.into_iter().enumerate() {
            let l = log_with(si, st, &ents(si + 1, &terms));
            assert_eq!(l.find_conflict_by_term(index, term), want, "case {i}");
            // The same with the entries in the unstable log.
            let mut l = log_with(si, st, &[]);
            l.append(ents(si + 1, &terms));
            assert_eq!(
                l.find_conflict_by_term(index, term),
                want,
                "case {i} unstable"
            );
        }
    }

    #[test]
    fn is_up_to_date() {
        let mut l = new_log();
        l.append(ents(1, &[1, 2, 3]));
        // (last_index, term, want)
        let cases = [
            // A greater term wins whatever the index.
            (2, 4, true),
            (3, 4, true),
            (4, 4, true),
            (u64::MAX, 4, true),
            // A smaller term loses whatever the index.
            (2, 2, false),
            (3, 2, false),
            (4, 2, false),
            (u64::MAX, 0, false),
            // The same term: the longer (or equal) log wins.
            (2, 3, false),
            (3, 3, true),
            (4, 3, true),
        ];
        for (index, term, want) in cases {
            assert_eq!(l.is_up_to_date(index, term), want, "({index}, {term})");
        }
    }

    #[test]
    fn append_local() {
        let prev = ents(1, &[1, 2]);
        // (entries, want last index, want log, want unstable offset)
        let cases = [
            (vec![], 2, ents(1, &[1, 2]), 3),
            (ents(3, &[2]), 3, ents(1, &[1, 2, 2]), 3),
            // Conflicts with index 1.
            (ents(1, &[2]), 1, ents(1, &[2]), 1),
            // Conflicts with index 2.
            (ents(2, &[3, 3]), 3, ents(1, &[1, 3, 3]), 2),
        ];
        for (i, (app, want_last, want_log, want_off)) in cases.into_iter().enumerate() {
            let mut l = log_with(0, 0, &prev);
            assert_eq!(l.append(app), want_last, "case {i}");
            assert_eq!(l.all_entries().unwrap(), want_log, "case {i}");
            assert_eq!(l.unstable.offset, want_off, "case {i}");
        }
    }

    #[test]
    fn try_append_rejects_bad_local_appends() {
        let mut l = log_with(0, 0, &ents(1, &[1, 2, 3]));
        l.commit_to(2);
        let before = l.all_entries().unwrap();
        let bad = [
            ents(2, &[4]),              // Rewrites a committed entry.
            ents(1, &[4]),              // Same.
            ents(0, &[4]),              // Index 0.
            ents(5, &[4]),              // A gap.
            vec![ent(4, 4), ent(6, 4)], // Not contiguous.
            vec![ent(4, 4), ent(4, 4)], // Same.
        ];
        for (i, b) in bad.into_iter().enumerate() {
            assert!(l.try_append(b).is_err(), "case {i}");
            assert_eq!(l.all_entries().unwrap(), before, "case {i}");
            assert_eq!(l.committed, 2);
        }
        assert_eq!(l.try_append(ents(3, &[4])).unwrap(), 3);
        assert_eq!(l.last_entry_id(), (4, 3));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "invalid local append")]
    fn append_below_commit_is_a_debug_assertion() {
        let mut l = log_with(0, 0, &ents(1, &[1, 2, 3]));
        l.commit_to(2);
        l.append(ents(2, &[4]));
    }

    #[test]
    fn maybe_append() {
        let prev = ents(1, &[1, 2, 3]);
        let (last_index, last_term, commit) = (3u64, 3u64, 1u64);
        // (prev index, prev term, committed, entries, want result, want commit, want log)
        type Case = (u64, u64, u64, Vec<Entry>, Option<u64>, u64, Vec<Entry>);
        let cases: Vec<Case> = vec![
            // No match: term mismatch.
            (
                last_index,
                last_term - 1,
                last_index,
                ents(last_index + 1, &[4]),
                None,
                commit,
                prev.clone(),
            ),
            // No match: index past the end.
            (
                last_index + 1,
                last_term,
                last_index,
                ents(last_index + 2, &[4]),
                None,
                commit,
                prev.clone(),
            ),
            // Match with the last entry.
            (
                last_index,
                last_term,
                last_index,
                vec![],
                Some(last_index),
                last_index,
                prev.clone(),
            ),
            // The commit index moves up to the last new entry only.
            (
                last_index,
                last_term,
                last_index + 1,
                vec![],
                Some(last_index),
                last_index,
                prev.clone(),
            ),
            // It never moves back.
            (
                last_index,
                last_term,
                commit - 1,
                vec![],
                Some(last_index),
                commit,
                prev.clone(),
            ),
            (
                last_index,
                last_term,
                0,
                vec![],
                Some(last_index),
                commit,
                prev.clone(),
            ),
            (0, 0, last_index, vec![], Some(0), commit, prev.clone()),
            (
                last_index,
                last_term,
                last_index,
                ents(last_index + 1, &[4]),
                Some(last_index + 1),
                last_index,
                ents(1, &[1, 2, 3, 4]),
            ),
            (
                last_index,
                last_term,
                last_index + 1,
                ents(last_index + 1, &[4]),
                Some(last_index + 1),
                last_index + 1,
                ents(1, &[1, 2, 3, 4]),
            ),
            (
                last_index,
                last_term,
                last_index + 2,
                ents(last_index + 1, &[4]),
                Some(last_index + 1),
                last_index + 1,
                ents(1, &[1, 2, 3, 4]),
            ),
            (
                last_index,
                last_term,
                last_index + 2,
                ents(last_index + 1, &[4, 4]),
                Some(last_index + 2),
                last_index + 2,
                ents(1, &[1, 2, 3, 4, 4]),
            ),
            // Match with an entry in the middle.
            (
                last_index - 1,
                last_term - 1,
                last_index,
                ents(last_index, &[4]),
                Some(last_index),
                last_index,
                ents(1, &[1, 2, 4]),
            ),
            (
                last_index - 2,
                last_term - 2,
                last_index,
                ents(last_index - 1, &[4]),
                Some(last_index - 1),
                last_index - 1,
                ents(1, &[1, 4]),
            ),
            (
                last_index - 2,
                last_term - 2,
                last_index,
                ents(last_index - 1, &[4, 4]),
                Some(last_index),
                last_index,
                ents(1, &[1, 4, 4]),
            ),
            // Entries already in the log: nothing is truncated.
            (0, 0, last_index, ents(1, &[1, 2]), Some(2), 2, prev.clone()),
        ];
        for (i, (pi, pt, c, e, want, want_commit, want_log)) in cases.into_iter().enumerate() {
            let mut l = new_log();
            l.append(prev.clone());
            l.committed = commit;
            assert_eq!(l.maybe_append(pi, pt, c, e).unwrap(), want, "case {i}");
            assert_eq!(l.committed, want_commit, "case {i}");
            assert_eq!(l.all_entries().unwrap(), want_log, "case {i}");
        }
    }

    #[test]
    fn maybe_append_truncates_stable_entries() {
        let mut l = log_with(0, 0, &ents(1, &[1, 1, 1, 1]));
        l.commit_to(1);
        assert_eq!(l.maybe_append(1, 1, 1, ents(2, &[2, 2])).unwrap(), Some(3));
        assert_eq!(l.all_entries().unwrap(), ents(1, &[1, 2, 2]));
        assert_eq!(l.unstable.offset, 2);
        assert_eq!(l.next_unstable_ents(), &ents(2, &[2, 2])[..]);
        persist(&mut l);
        assert_eq!(l.store.last_index().unwrap(), 3);
        assert_eq!(l.store.term(3).unwrap(), 2);
    }

    /// Every malformed append of HOSTILE-INPUT.md class 4 is an error or a rejection, never a
    /// panic, and leaves the log as it was.
    #[test]
    fn maybe_append_hostile() {
        let base = || {
            let mut l = log_with(5, 2, &ents(6, &[2, 3, 3]));
            l.append(ents(9, &[4, 4]));
            l.commit_to(7);
            l
        };
        // Log: snapshot (5, 2), stable 6..8 at [2 3 3], unstable 9..10 at [4 4]; committed 7.
        let max = u64::MAX;
        type Case = (u64, u64, u64, Vec<Entry>, &'static str);
        let errs: Vec<Case> = vec![
            (8, 3, 10, vec![ent(10, 4)], "index skips"),
            (8, 3, 10, vec![ent(9, 4), ent(11, 4)], "gap inside"),
            (8, 3, 10, vec![ent(9, 4), ent(9, 4)], "repeated index"),
            (8, 3, 10, vec![ent(9, 4), ent(8, 4)], "index goes back"),
            (8, 3, 10, vec![ent(8, 4)], "index at prev"),
            (8, 3, 10, vec![ent(0, 4)], "index 0"),
            (0, 0, 10, vec![ent(0, 1)], "index 0 after 0"),
            (8, 3, 10, vec![ent(9, 5), ent(10, 4)], "terms decrease"),
            (8, 3, 10, vec![ent(9, 2)], "term below prev term"),
            (8, 3, 10, vec![ent(9, 0)], "term 0"),
            (0, 0, 10, vec![ent(1, 0)], "term 0 at 1"),
            (max - 1, 3, max, vec![ent(max, 4)], "index u64::MAX"),
            (max, 3, max, vec![ent(0, 4)], "index wraps"),
            (max, 0, max, vec![ent(max, 4)], "index after u64::MAX"),
            (max - 2, 3, 0, ents(max - 1, &[3, 3]), "last index u64::MAX"),
            // Matching prev, but rewriting committed entries.
            (5, 2, 10, ents(6, &[9, 9]), "rewrites committed 6"),
            (6, 2, 10, ents(7, &[9]), "rewrites committed 7"),
        ];
        for (pi, pt, c, e, what) in errs {
            let mut l = base();
            let r = l.maybe_append(pi, pt, c, e);
            assert!(matches!(r, Err(Error::InvalidMessage(_))), "{what}: {r:?}");
            assert_eq!(
                l.all_entries().unwrap(),
                base().all_entries().unwrap(),
                "{what}"
            );
            assert_eq!(l.committed, 7, "{what}");
            assert_eq!(l.unstable, base().unstable, "{what}");
        }
        let rejects: Vec<Case> = vec![
            (11, 0, 20, vec![], "log term 0 past the end"),
            (11, 4, 20, ents(12, &[4]), "prev past the end"),
            (max, 0, max, vec![], "prev at u64::MAX, term 0"),
            (max, 4, max, vec![], "prev at u64::MAX"),
            (max - 1, 0, max, ents(max, &[]), "prev near u64::MAX"),
            (4, 1, 20, ents(5, &[2]), "prev compacted"),
            (0, 0, 20, ents(1, &[1]), "prev 0 on a compacted log"),
            (10, 3, 20, ents(11, &[4]), "prev term mismatch"),
            (10, 0, max, vec![], "prev term 0"),
        ];
        for (pi, pt, c, e, what) in rejects {
            let mut l = base();
            assert_eq!(l.maybe_append(pi, pt, c, e).unwrap(), None, "{what}");
            assert_eq!(
                l.all_entries().unwrap(),
                base().all_entries().unwrap(),
                "{what}"
            );
            assert_eq!(l.committed, 7, "{what}");
        }
        // A commit index past the log is clamped to what is known to match.
        let mut l = base();
        assert_eq!(l.maybe_append(8, 3, max, vec![]).unwrap(), Some(8));
        assert_eq!(l.committed, 8);
        assert_eq!(l.maybe_append(10, 4, max, vec![]).unwrap(), Some(10));
        assert_eq!(l.committed, 10);
        // Re-sending committed entries unchanged is fine.
        let mut l = base();
        assert_eq!(l.maybe_append(5, 2, 3, ents(6, &[2, 3])).unwrap(), Some(7));
        assert_eq!(l.committed, 7);
        assert_eq!(l.all_entries().unwrap(), base().all_entries().unwrap());
    }

    #[test]
    fn commit_to() {
        let mut l = new_log();
        l.append(ents(1, &[1, 2, 3]));
        l.committed = 2;
        l.commit_to(3);
        assert_eq!(l.committed, 3);
        // Never decreases.
        l.commit_to(1);
        assert_eq!(l.committed, 3);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out of range")]
    fn commit_past_last_index_is_a_debug_assertion() {
        let mut l = new_log();
        l.append(ents(1, &[1, 2, 3]));
        l.commit_to(4);
    }

    #[test]
    fn maybe_commit() {
        let mut l = new_log();
        l.append(ents(1, &[1, 2, 3]));
        assert!(!l.maybe_commit(2, 1)); // Term mismatch.
        assert!(!l.maybe_commit(2, 0)); // Term 0.
        assert!(!l.maybe_commit(4, 3)); // Past the end.
        assert!(!l.maybe_commit(u64::MAX, 3));
        assert_eq!(l.committed, 0);
        assert!(l.maybe_commit(2, 2));
        assert_eq!(l.committed, 2);
        assert!(!l.maybe_commit(2, 2)); // Not past the commit index.
        assert!(!l.maybe_commit(1, 1));
        assert!(l.maybe_commit(3, 3));
        assert_eq!(l.committed, 3);
    }

    #[test]
    fn compaction_and_term_errors() {
        // Storage: snapshot at (3, 3), entries 4..=6 at [4 5 6]; unstable 7 at term 6.
        let mut l = log_with(3, 3, &ents(4, &[4, 5, 6]));
        l.append(ents(7, &[6]));
        let cases = [
            (0, Err(COMPACTED)),
            (2, Err(COMPACTED)),
            (3, Ok(3)),
            (4, Ok(4)),
            (6, Ok(6)),
            (7, Ok(6)),
            (8, Err(UNAVAILABLE)),
            (u64::MAX, Err(UNAVAILABLE)),
        ];
        for (i, want) in cases.clone() {
            assert_eq!(l.term(i), want, "term({i})");
        }
        // Compacting the storage moves the first index; older terms become errors.
        persist(&mut l);
        l.commit_to(7);
        l.applied_to(5, 0);
        l.store.compact(5).unwrap();
        assert_eq!(l.first_index(), 6);
        assert_eq!(l.term(4), Err(COMPACTED));
        assert_eq!(l.term(5), Ok(5));
        assert_eq!(l.slice(5, 7, NO_LIMIT), Err(COMPACTED));
        assert_eq!(l.entries(4, NO_LIMIT), Err(COMPACTED));
        assert_eq!(l.slice(6, 8, NO_LIMIT).unwrap(), ents(6, &[6, 6]));
        assert_eq!(l.all_entries().unwrap(), ents(6, &[6, 6]));
        assert!(!l.match_term(4, 4));
        assert_eq!(l.find_conflict_by_term(7, 4), (4, 0));
    }

    #[test]
    fn term_with_unstable_snapshot() {
        // Storage snapshot at (5, 2) with no entries; unstable snapshot at (8, 3).
        let mut l = log_with(5, 2, &[]);
        l.restore(snap(8, 3));
        assert_eq!(l.committed, 8);
        assert_eq!(l.first_index(), 9);
        assert_eq!(l.last_index(), 8);
        assert_eq!(l.term(8), Ok(3));
        assert_eq!(l.term(5), Err(COMPACTED)); // Below the unstable snapshot.
        assert_eq!(l.term(7), Err(COMPACTED));
        assert_eq!(l.term(9), Err(UNAVAILABLE));
        assert!(l.has_pending_snapshot());
        assert!(l.has_next_unstable_snapshot());
        assert_eq!(l.snapshot().unwrap(), snap(8, 3));
        assert_eq!(l.entries(9, NO_LIMIT).unwrap(), vec![]);
        l.accept_unstable();
        assert!(!l.has_next_unstable_snapshot());
        assert!(l.has_pending_snapshot());
    }

    #[test]
    fn restore() {
        let mut l = log_with(0, 0, &ents(1, &[1, 1]));
        l.append(ents(3, &[2]));
        l.restore(snap(100, 5));
        assert_eq!(l.committed, 100);
        assert_eq!(l.first_index(), 101);
        assert_eq!(l.last_index(), 100);
        assert_eq!(l.last_entry_id(), (5, 100));
        assert_eq!(l.unstable.offset, 101);
        assert!(l.unstable.entries.is_empty());
        assert_eq!(l.term(100), Ok(5));
        // Nothing to apply until the snapshot is persisted.
        assert!(!l.has_next_committed_ents(true));
        // Appends continue after the snapshot.
        assert_eq!(
            l.maybe_append(100, 5, 101, ents(101, &[5])).unwrap(),
            Some(101)
        );
        assert_eq!(l.committed, 101);
        persist(&mut l);
        assert!(!l.has_pending_snapshot());
        assert_eq!(l.store.first_index().unwrap(), 101);
        assert_eq!(l.store.last_index().unwrap(), 101);
        l.applied_to(100, 0);
        assert_eq!(l.next_committed_ents(true), ents(101, &[5]));
    }

    #[test]
    fn unstable_ents_through_the_log() {
        let mut l = log_with(0, 0, &ents(1, &[1, 2]));
        assert!(!l.has_next_unstable_ents());
        assert!(!l.has_next_or_in_progress_unstable_ents());
        l.append(ents(3, &[3, 3]));
        assert_eq!(l.next_unstable_ents(), &ents(3, &[3, 3])[..]);
        assert!(l.has_next_unstable_ents());
        l.accept_unstable();
        assert!(!l.has_next_unstable_ents());
        assert!(l.has_next_or_in_progress_unstable_ents());
        l.append(ents(5, &[3]));
        assert_eq!(l.next_unstable_ents(), &ents(5, &[3])[..]);
        assert_eq!(l.stable_to(4, 3), StableOutcome::Stabilized);
        assert_eq!(l.unstable.offset, 5);
        assert_eq!(l.next_unstable_ents(), &ents(5, &[3])[..]);
        assert_eq!(l.to_string(), "committed=0, applied=0, applying=0, unstable.offset=5, unstable.offsetInProgress=5, len(unstable.Entries)=1");
    }

    /// The ABA race of asynchronous writes: entries are handed out, then replaced by entries
    /// of a newer term at the same indexes before the write completes. The old write's
    /// acknowledgement must not mark the new entries stable.
    #[test]
    fn stable_to_aba_guard() {
        let mut l = new_log();
        l.append(ents(1, &[1, 1]));
        l.accept_unstable();
        // A new leader overwrites index 2 (and adds 3) at term 2, not yet handed out.
        assert_eq!(l.maybe_append(1, 1, 0, ents(2, &[2, 2])).unwrap(), Some(3));
        assert_eq!(l.unstable.offset_in_progress, 2);
        assert_eq!(l.next_unstable_ents(), &ents(2, &[2, 2])[..]);
        // The old write of (2, 1) completes: ignored.
        assert_eq!(
            l.stable_to(2, 1),
            StableOutcome::TermMismatch { existing: 2 }
        );
        assert_eq!(l.unstable.offset, 1);
        assert_eq!(l.next_unstable_ents(), &ents(2, &[2, 2])[..]);
        // The write of index 1 alone is fine.
        assert_eq!(l.stable_to(1, 1), StableOutcome::Stabilized);
        assert_eq!(l.unstable.offset, 2);
        // The rest is written and acknowledged.
        l.accept_unstable();
        assert_eq!(l.stable_to(3, 2), StableOutcome::Stabilized);
        assert!(!l.has_next_or_in_progress_unstable_ents());
        assert_eq!(l.stable_to(3, 2), StableOutcome::Missing);
    }

    #[test]
    fn stable_to_with_snapshot() {
        let (si, st) = (5, 2);
        // (stable entries, new entries, stable_to index, term, want offset)
        type Case = (Vec<Entry>, Vec<Entry>, u64, u64, u64);
        let cases: Vec<Case> = vec![
            (vec![], vec![], si + 1, st, si + 1),
            (vec![], vec![], si, st, si + 1),
            (vec![], vec![], si - 1, st, si + 1),
            (vec![], vec![], si + 1, st + 1, si + 1),
            (vec![], vec![], si, st + 1, si + 1),
            (vec![], vec![], si - 1, st + 1, si + 1),
            (ents(si + 1, &[st]), vec![], si + 1, st, si + 2),
            (ents(si + 1, &[st]), vec![], si, st, si + 2),
            (ents(si + 1, &[st]), vec![], si - 1, st, si + 2),
            (ents(si + 1, &[st]), vec![], si + 1, st + 1, si + 2),
            (vec![], ents(si + 1, &[st]), si + 1, st, si + 2),
            (vec![], ents(si + 1, &[st]), si, st, si + 1),
            (vec![], ents(si + 1, &[st]), si - 1, st, si + 1),
            (vec![], ents(si + 1, &[st]), si + 1, st + 1, si + 1),
        ];
        for (i, (stable, new, idx, term, want)) in cases.into_iter().enumerate() {
            let mut l = log_with(si, st, &stable);
            l.append(new);
            l.stable_to(idx, term);
            assert_eq!(l.unstable.offset, want, "case {i}");
        }
    }

    #[test]
    fn stable_snap_to() {
        let mut l = log_with(5, 2, &[]);
        l.restore(snap(8, 3));
        l.accept_unstable();
        l.stable_snap_to(7);
        assert!(l.has_pending_snapshot());
        l.stable_snap_to(8);
        assert!(!l.has_pending_snapshot());
    }

    #[test]
    fn has_and_next_committed_ents() {
        // Storage: snapshot (3, 1), entries 4..=5; unstable 6. Committed 5, applied 3.
        // (applied, applying, allow_unstable, paused, snapshot, want)
        let cases = [
            (3, 3, true, false, false, ents(4, &[1, 1])),
            (3, 4, true, false, false, ents(5, &[1])),
            (3, 5, true, false, false, vec![]),
            (4, 4, true, false, false, ents(5, &[1])),
            (4, 5, true, false, false, vec![]),
            (5, 5, true, false, false, vec![]),
            // Don't allow unstable entries: the same here (6 is not committed).
            (3, 3, false, false, false, ents(4, &[1, 1])),
            (4, 4, false, false, false, ents(5, &[1])),
            (5, 5, false, false, false, vec![]),
            // Paused.
            (3, 3, true, true, false, vec![]),
            // A pending snapshot blocks applying.
            (3, 3, true, false, true, vec![]),
        ];
        for (i, (applied, applying, allow, paused, with_snap, want)) in
            cases.into_iter().enumerate()
        {
            let mut l = log_with(3, 1, &ents(4, &[1, 1]));
            l.append(ents(6, &[1]));
            l.maybe_commit(5, 1);
            l.applied_to(applied, 0);
            l.accept_applying(applying, 0, allow);
            l.applying_ents_paused = paused;
            if with_snap {
                l.restore(snap(4, 1));
                l.committed = 5;
            }
            assert_eq!(l.next_committed_ents(allow), want, "case {i}");
            assert_eq!(
                l.has_next_committed_ents(allow),
                !want.is_empty(),
                "case {i}"
            );
        }
    }

    #[test]
    fn committed_unstable_ents_need_allow_unstable() {
        let mut l = log_with(0, 0, &ents(1, &[1]));
        l.append(ents(2, &[1, 1]));
        l.commit_to(3);
        assert_eq!(l.max_appliable_index(true), 3);
        assert_eq!(l.max_appliable_index(false), 1);
        assert_eq!(l.next_committed_ents(false), ents(1, &[1]));
        assert_eq!(l.next_committed_ents(true), ents(1, &[1, 1, 1]));
        l.accept_applying(1, 0, false);
        assert!(!l.has_next_committed_ents(false));
        assert!(l.has_next_committed_ents(true));
        persist(&mut l);
        assert_eq!(l.next_committed_ents(false), ents(2, &[1, 1]));
    }

    #[test]
    fn next_committed_ents_paging() {
        // Ten entries of the same size; the limit fits 2.5 of them.
        let e: Vec<Entry> = (1..=10).map(|i| data_ent(i, 1, 100)).collect();
        let sz = entry_size(&e[0]);
        let mut s = MemStorage::new();
        s.append(&e[..6]).unwrap();
        let mut l = RaftLog::new(s, sz * 5 / 2).unwrap();
        l.append(e[6..].to_vec());
        l.commit_to(10);

        // First batch: 2 entries (a third would cross the limit), then pause.
        let b = l.next_committed_ents(true);
        assert_eq!(b, e[0..2].to_vec());
        l.accept_applying(2, 2 * sz, true);
        assert!(l.applying_ents_paused());
        assert_eq!(l.applying_ents_size(), 2 * sz);
        assert!(!l.has_next_committed_ents(true));
        assert!(l.next_committed_ents(true).is_empty());

        // Applying the first entry frees room for the rest of the limit: 1 entry fits
        // (sz/2 + ... a second would not).
        l.applied_to(1, sz);
        assert!(!l.applying_ents_paused());
        assert_eq!(l.next_committed_ents(true), e[2..3].to_vec());
        l.accept_applying(3, sz, true);
        assert!(l.applying_ents_paused());
        assert_eq!(l.applying_ents_size(), 2 * sz);

        // Everything applied: a full page again, crossing into the unstable entries.
        l.applied_to(3, 2 * sz);
        assert_eq!(l.applying_ents_size(), 0);
        assert_eq!(l.next_committed_ents(true), e[3..5].to_vec());
        l.accept_applying(5, 2 * sz, true);
        l.applied_to(5, 2 * sz);
        assert_eq!(l.next_committed_ents(true), e[5..7].to_vec());
        l.accept_applying(7, 2 * sz, true);
        l.applied_to(7, 2 * sz);
        assert_eq!(l.next_committed_ents(true), e[7..9].to_vec());
        l.accept_applying(9, 2 * sz, true);
        assert!(l.applying_ents_paused());
        l.applied_to(9, 2 * sz);
        // The last page is not cut by the limit: no pause after it.
        assert_eq!(l.next_committed_ents(true), e[9..10].to_vec());
        l.accept_applying(10, sz, true);
        assert!(!l.applying_ents_paused());
        assert!(!l.has_next_committed_ents(true));
        l.applied_to(10, sz);
        assert_eq!(l.applied, 10);
        assert_eq!(l.applying, 10);
    }

    #[test]
    fn next_committed_ents_limit_zero_hands_out_one_at_a_time() {
        let e: Vec<Entry> = (1..=3).map(|i| data_ent(i, 1, 10)).collect();
        let mut l = RaftLog::new(MemStorage::new(), 0).unwrap();
        l.append(e.clone());
        l.commit_to(3);
        for (k, want) in e.iter().enumerate() {
            let i = k as u64 + 1;
            let b = l.next_committed_ents(true);
            assert_eq!(b, vec![want.clone()]);
            let sz = entry_size(want);
            l.accept_applying(i, sz, true);
            assert!(!l.has_next_committed_ents(true));
            l.applied_to(i, sz);
        }
        assert!(!l.has_next_committed_ents(true));
        assert!(!l.applying_ents_paused());
    }

    #[test]
    fn accept_applying_pauses() {
        let max = 100;
        // (index, size, allow_unstable, want paused)
        let cases = [
            (3, max - 1, true, true), // Cut below what could be applied.
            (3, max - 1, false, true),
            (3, max, true, true),
            (3, max, false, true),
            (4, max - 1, true, true),
            (4, max - 1, false, false),
            (4, max, true, true),
            (4, max, false, true),
            (5, max - 1, true, false),
            (5, max - 1, false, false),
            (5, max, true, true),
            (5, max, false, true),
        ];
        for (i, (index, size, allow, paused)) in cases.into_iter().enumerate() {
            // Storage: snapshot (3, 1), entries 4..=5 stable? Only 4 stable, 5..=6 unstable.
            let mut l = RaftLog::new(
                {
                    let mut s = MemStorage::new();
                    s.apply_snapshot(snap(3, 1)).unwrap();
                    s.append(&ents(4, &[1])).unwrap();
                    s
                },
                max,
            )
            .unwrap();
            l.append(ents(5, &[1, 1]));
            l.maybe_commit(5, 1);
            l.accept_applying(index, size, allow);
            assert_eq!(l.applying_ents_paused(), paused, "case {i}");
        }
    }

    #[test]
    fn applied_to_releases_size() {
        let max = 100;
        let over = 150;
        // (index, size, want applying size, want paused)
        let cases = [
            (4, over - 1, 1, false),
            (4, over + 1, 0, false),
            (4, over, 0, false),
            (4, over - max + 1, max - 1, false),
            (4, over - max, max, true),
            (4, over - max - 1, max + 1, true),
        ];
        for (i, (index, size, want_size, want_paused)) in cases.into_iter().enumerate() {
            let mut l = RaftLog::new(
                {
                    let mut s = MemStorage::new();
                    s.apply_snapshot(snap(3, 1)).unwrap();
                    s.append(&ents(4, &[1, 1])).unwrap();
                    s
                },
                max,
            )
            .unwrap();
            l.append(ents(6, &[1]));
            l.maybe_commit(5, 1);
            l.accept_applying(5, over, false);
            l.applied_to(index, size);
            assert_eq!(l.applied, index, "case {i}");
            assert_eq!(l.applying, 5, "case {i}");
            assert_eq!(l.applying_ents_size(), want_size, "case {i}");
            assert_eq!(l.applying_ents_paused(), want_paused, "case {i}");
        }
    }

    #[test]
    fn slice_across_storage_and_unstable() {
        // Storage: snapshot at (offset-1), entries [offset, half); unstable [half, last].
        // Indexes and terms all take two bytes, so all entries have the same size.
        let offset = 200u64;
        let num = 100u64;
        let half = offset + num / 2;
        let last = offset + num - 1;
        let e = |i: u64| data_ent(i, i, 8);
        let range = |lo: u64, hi: u64| (lo..hi).map(e).collect::<Vec<_>>();
        let mut s = MemStorage::new();
        s.apply_snapshot(snap(offset - 1, offset - 1)).unwrap();
        s.append(&range(offset, half)).unwrap();
        let mut l = RaftLog::new(s, NO_LIMIT).unwrap();
        l.append(range(half, last + 1));
        let sz = entry_size(&e(half));
        assert_eq!(entry_size(&e(offset)), sz);

        // (lo, hi, max_size, want)
        let cases: Vec<(u64, u64, u64, Result<Vec<Entry>>)> = vec![
            // Out of bounds.
            (offset - 1, offset + 1, NO_LIMIT, Err(COMPACTED)),
            (offset, last + 2, NO_LIMIT, Err(UNAVAILABLE)),
            (last, u64::MAX, NO_LIMIT, Err(UNAVAILABLE)),
            (0, 0, NO_LIMIT, Err(COMPACTED)),
            // No limit.
            (offset, offset, NO_LIMIT, Ok(vec![])),
            (last + 1, last + 1, NO_LIMIT, Ok(vec![])),
            (offset, half, NO_LIMIT, Ok(range(offset, half))),
            (offset, half + 1, NO_LIMIT, Ok(range(offset, half + 1))),
            (offset, last + 1, NO_LIMIT, Ok(range(offset, last + 1))),
            (half, half + 1, NO_LIMIT, Ok(range(half, half + 1))),
            (half - 1, half + 1, NO_LIMIT, Ok(range(half - 1, half + 1))),
            (half, last + 1, NO_LIMIT, Ok(range(half, last + 1))),
            // With a limit: at least one entry.
            (half - 1, half + 1, 0, Ok(range(half - 1, half))),
            (half - 1, half + 1, sz + 1, Ok(range(half - 1, half))),
            (half - 2, half + 1, sz + 1, Ok(range(half - 2, half - 1))),
            (half - 1, half + 1, 2 * sz, Ok(range(half - 1, half + 1))),
            (half - 1, half + 2, 3 * sz, Ok(range(half - 1, half + 2))),
            (half, half + 2, sz, Ok(range(half, half + 1))),
            (half, half + 3, 2 * sz, Ok(range(half, half + 2))),
            // The storage part exactly fills the limit.
            (half - 2, half + 2, 2 * sz, Ok(range(half - 2, half))),
            // One unstable entry fits in the room left, a second does not.
            (
                half - 2,
                half + 2,
                3 * sz + 1,
                Ok(range(half - 2, half + 1)),
            ),
        ];
        for (lo, hi, max, want) in cases {
            assert_eq!(l.slice(lo, hi, max), want, "slice({lo}, {hi}, {max})");
            assert_eq!(
                visited(&l, lo, hi, max),
                want,
                "visit_slice({lo}, {hi}, {max})"
            );
        }
        assert!(matches!(
            l.slice(half, half - 1, NO_LIMIT),
            Err(Error::Store(StorageError::Other(_)))
        ));
        // entries(i, ..) is a slice to the end.
        assert_eq!(l.entries(last + 1, NO_LIMIT).unwrap(), vec![]);
        assert_eq!(l.entries(u64::MAX, NO_LIMIT).unwrap(), vec![]);
        assert_eq!(l.entries(last, NO_LIMIT).unwrap(), range(last, last + 1));
        assert_eq!(
            l.entries(half - 1, 2 * sz).unwrap(),
            range(half - 1, half + 1)
        );
        assert_eq!(l.entries(offset - 1, NO_LIMIT), Err(COMPACTED));
    }

    #[test]
    fn slice_stops_where_the_storage_cut_even_if_unstable_entries_would_fit() {
        // Storage: 10 (small), 11 (large); unstable: 12 (small). A limit that holds 10 and 12
        // but not 11: the slice ends at 10 (no gap where 11 is).
        let mut s = MemStorage::new();
        s.apply_snapshot(snap(9, 9)).unwrap();
        s.append(&[data_ent(10, 10, 8), data_ent(11, 11, 200)])
            .unwrap();
        let mut l = RaftLog::new(s, NO_LIMIT).unwrap();
        l.append(vec![data_ent(12, 12, 8)]);
        let small = entry_size(&data_ent(10, 10, 8));
        assert_eq!(small, entry_size(&data_ent(12, 12, 8)));
        assert_eq!(l.slice(10, 13, 2 * small), Ok(vec![data_ent(10, 10, 8)]));
        assert_eq!(
            visited(&l, 10, 13, 2 * small),
            Ok(vec![data_ent(10, 10, 8)])
        );
        assert_eq!(l.slice(10, 13, NO_LIMIT).unwrap().len(), 3);
    }

    /// What `visit_slice` lends, cloned.
    fn visited(l: &RaftLog<MemStorage>, lo: u64, hi: u64, max: u64) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        l.visit_slice(lo, hi, max, &mut |s: &[Entry]| {
            assert!(!s.is_empty(), "an empty slice lent");
            out.extend_from_slice(s);
        })?;
        Ok(out)
    }

    #[test]
    fn handed_over_entries_are_read_back_from_the_storage_once_written() {
        let mut s = MemStorage::new();
        s.apply_snapshot(snap(9, 1)).unwrap();
        s.append(&[data_ent(10, 1, 3)]).unwrap();
        let mut l = RaftLog::new(s, NO_LIMIT).unwrap();
        l.handed_over = true;
        let ents = vec![data_ent(11, 1, 4), data_ent(12, 1, 5)];
        l.append(ents.clone());
        assert!(
            !l.waits_for_handed_over(10, &UNAVAILABLE),
            "nothing handed over yet"
        );
        assert_eq!(
            l.slice(11, 13, NO_LIMIT),
            Ok(ents.clone()),
            "not handed over yet: read here"
        );
        let mut out = Vec::new();
        l.hand_over_next_ents(&mut out);
        l.accept_unstable();
        assert_eq!(out, ents, "the Ready takes the payloads");
        assert!(l
            .unstable
            .entries
            .as_slice()
            .iter()
            .all(|e| e.data.is_empty()));
        assert_eq!(l.term(12), Ok(1), "terms stay");
        // Not written yet: a read of them waits (and reads nothing else).
        assert_eq!(l.slice(10, 13, NO_LIMIT), Err(UNAVAILABLE));
        assert_eq!(visited(&l, 11, 12, NO_LIMIT), Err(UNAVAILABLE));
        assert_eq!(l.slice(10, 11, NO_LIMIT), Ok(vec![data_ent(10, 1, 3)]));
        assert!(l.waits_for_handed_over(10, &UNAVAILABLE));
        assert!(
            !l.waits_for_handed_over(10, &COMPACTED),
            "compacted is no wait"
        );
        assert!(
            !l.waits_for_handed_over(13, &UNAVAILABLE),
            "past what was handed over"
        );
        // Written: read back from the storage.
        l.store.append(&out).unwrap();
        let mut all = vec![data_ent(10, 1, 3)];
        all.extend(ents.iter().cloned());
        assert_eq!(l.slice(10, 13, NO_LIMIT), Ok(all.clone()));
        assert_eq!(visited(&l, 10, 13, NO_LIMIT), Ok(all));
        // Stable: nothing is handed over any more.
        assert_eq!(l.stable_to(12, 1), StableOutcome::Stabilized);
        assert!(!l.waits_for_handed_over(10, &UNAVAILABLE));
    }

    #[test]
    fn visit_slice_lends_what_slice_clones_across_storage_chunks() {
        // Storage: 700 entries (three chunks) of mixed sizes after a snapshot at 99;
        // unstable: 30 more. Every range with every kind of limit.
        let size = |i: u64| ((i * 37) % 90) as usize;
        let mut s = MemStorage::new();
        s.apply_snapshot(snap(99, 1)).unwrap();
        let stored: Vec<Entry> = (100..800).map(|i| data_ent(i, 1, size(i))).collect();
        s.append(&stored).unwrap();
        let mut l = RaftLog::new(s, NO_LIMIT).unwrap();
        l.append((800..830).map(|i| data_ent(i, 2, size(i))).collect());
        let bounds = [100, 101, 355, 356, 612, 799, 800, 801, 829, 830, 831];
        for &lo in &bounds {
            for &hi in bounds.iter().filter(|&&h| h >= lo) {
                for max in [0, 1, 50, 700, 5_000, 30_000, NO_LIMIT] {
                    assert_eq!(
                        visited(&l, lo, hi, max),
                        l.slice(lo, hi, max),
                        "({lo}, {hi}, {max})"
                    );
                }
            }
        }
    }

    #[test]
    fn slice_shares_payloads() {
        let mut l = new_log();
        l.append(vec![data_ent(1, 1, 1000)]);
        let got = l.slice(1, 2, NO_LIMIT).unwrap();
        assert_eq!(
            got[0].data.as_ptr(),
            l.unstable.entries.as_slice()[0].data.as_ptr()
        );
    }

    #[test]
    fn scan() {
        let offset = 47u64;
        let num = 20u64;
        let last = offset + num;
        let half = offset + num / 2;
        let e = |i: u64| data_ent(i, i, 8);
        let mut s = MemStorage::new();
        s.apply_snapshot(snap(offset, offset)).unwrap();
        s.append(&(offset + 1..half).map(e).collect::<Vec<_>>())
            .unwrap();
        let mut l = RaftLog::new(s, NO_LIMIT).unwrap();
        l.append((half..=last).map(e).collect());
        let sz = entry_size(&e(half));

        // Pages of k entries each, exactly.
        for k in 1..=num {
            for lo in offset + 1..last {
                for hi in lo..=last {
                    let mut got = Vec::new();
                    l.scan(lo, hi, sz * k, |page| {
                        assert!(!page.is_empty());
                        assert!(page.len() as u64 <= k, "page of {} > {k}", page.len());
                        got.extend_from_slice(page);
                        Ok(())
                    })
                    .unwrap();
                    let want: Vec<Entry> = (lo..hi).map(e).collect();
                    assert_eq!(got, want, "scan({lo}, {hi}, {k} entries)");
                }
            }
        }

        // The callback stops the scan with its error.
        let mut pages = 0;
        let r = l.scan(offset + 1, half, 0, |_| {
            pages += 1;
            if pages == 3 {
                Err(Error::InvalidMessage(crate::Reason::UnknownType))
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(Error::InvalidMessage(crate::Reason::UnknownType)));
        assert_eq!(pages, 3);

        // Out of range: an error after no page.
        assert_eq!(l.scan(offset, half, NO_LIMIT, |_| Ok(())), Err(COMPACTED));
        assert_eq!(
            l.scan(half, last + 2, NO_LIMIT, |_| Ok(())),
            Err(UNAVAILABLE)
        );
        // An empty range visits nothing.
        l.scan(half, half, NO_LIMIT, |_| panic!("no page expected"))
            .unwrap();
    }

    #[test]
    fn display() {
        let mut l = log_with(0, 0, &ents(1, &[1, 1]));
        l.append(ents(3, &[2, 2]));
        l.accept_unstable();
        l.commit_to(3);
        l.accept_applying(2, 0, true);
        l.applied_to(1, 0);
        assert_eq!(
            l.to_string(),
            "committed=3, applied=1, applying=2, unstable.offset=3, \
             unstable.offsetInProgress=5, len(unstable.Entries)=2"
        );
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// An append message relative to the current log: prev index chosen near the end
            /// (offset from last_index, may be past it), entries made contiguous or not.
            Append {
                back: u64,
                prev_term_delta: i8,
                commit_delta: i64,
                terms: Vec<u8>,
                skew: Option<(usize, u64)>,
            },
            /// An append message with arbitrary numbers.
            Raw {
                prev_index: u64,
                prev_term: u64,
                committed: u64,
                ents: Vec<(u64, u64)>,
            },
            /// Persist the unstable part.
            Persist,
            /// Apply what is committed and compact the storage up to `applied`.
            ApplyAndCompact,
            /// A local append by a leader at a term at least the last one.
            Propose { n: u8, term_bump: u8 },
        }

        fn near_max() -> impl Strategy<Value = u64> {
            prop_oneof![0u64..40, (0u64..4).prop_map(|d| u64::MAX - d), any::<u64>(),]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (
                    0u64..6,
                    prop_oneof![6 => Just(0i8), 1 => -2i8..3],
                    -3i64..10,
                    prop::collection::vec(0u8..3, 0..5),
                    prop::option::weighted(0.2, (0usize..5, any::<u64>())),
                )
                    .prop_map(|(back, prev_term_delta, commit_delta, terms, skew)| {
                        Op::Append { back, prev_term_delta, commit_delta, terms, skew }
                    }),
                2 => (
                    near_max(),
                    near_max(),
                    near_max(),
                    prop::collection::vec((near_max(), near_max()), 0..4),
                )
                    .prop_map(|(prev_index, prev_term, committed, ents)| Op::Raw {
                        prev_index,
                        prev_term,
                        committed,
                        ents,
                    }),
                2 => Just(Op::Persist),
                1 => Just(Op::ApplyAndCompact),
                1 => (1u8..4, 0u8..2).prop_map(|(n, term_bump)| Op::Propose { n, term_bump }),
            ]
        }

        fn check_invariants(l: &RaftLog<MemStorage>) {
            let first = l.first_index();
            let last = l.last_index();
            assert!(first <= last + 1, "first {first} last {last}");
            assert!(l.committed <= last, "committed {} last {last}", l.committed);
            assert!(l.applied <= l.applying && l.applying <= l.committed);
            assert!(l.unstable.offset <= l.unstable.offset_in_progress);
            assert!(
                l.unstable.offset_in_progress
                    <= l.unstable.offset + l.unstable.entries.len() as u64
            );
            let all = l.all_entries().unwrap();
            let mut prev_term = l.term(first - 1).unwrap();
            for (k, e) in all.iter().enumerate() {
                assert_eq!(e.index, first + k as u64);
                assert!(e.term >= prev_term, "terms decrease at {}", e.index);
                prev_term = e.term;
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn maybe_append_never_panics(ops in prop::collection::vec(op(), 1..60)) {
                let mut l = log_with(0, 0, &ents(1, &[1, 1, 2]));
                let mut committed_terms: Vec<(u64, u64)> = Vec::new();
                for op in ops {
                    let before_commit = l.committed;
                    match op {
                        Op::Append { back, prev_term_delta, commit_delta, terms, skew } => {
                            let last = l.last_index();
                            let prev_index = last.saturating_sub(back) + u64::from(back == 0);
                            let base = l.term(prev_index).unwrap_or(l.last_term());
                            let prev_term =
                                base.saturating_add_signed(i64::from(prev_term_delta));
                            let mut t = prev_term.max(1);
                            let mut es: Vec<Entry> = terms
                                .iter()
                                .enumerate()
                                .map(|(k, &dt)| {
                                    t += u64::from(dt);
                                    ent(prev_index + 1 + k as u64, t)
                                })
                                .collect();
                            if let Some((k, v)) = skew {
                                if let Some(e) = es.get_mut(k) {
                                    e.index = v;
                                }
                            }
                            let c = l.committed.saturating_add_signed(commit_delta);
                            let _ = l.maybe_append(prev_index, prev_term, c, es);
                        }
                        Op::Raw { prev_index, prev_term, committed, ents } => {
                            let es = ents.into_iter().map(|(i, t)| ent(i, t)).collect();
                            let _ = l.maybe_append(prev_index, prev_term, committed, es);
                        }
                        Op::Persist => persist(&mut l),
                        Op::ApplyAndCompact => {
                            let b = l.next_committed_ents(false);
                            if let Some(e) = b.last() {
                                let size = b.iter().map(entry_size).sum();
                                l.accept_applying(e.index, size, false);
                                l.applied_to(e.index, size);
                            }
                            if l.applied >= l.store.first_index().unwrap() {
                                l.store.compact(l.applied).unwrap();
                            }
                        }
                        Op::Propose { n, term_bump } => {
                            let (t, last) = l.last_entry_id();
                            let t = t.max(1) + u64::from(term_bump);
                            let es = (1..=u64::from(n)).map(|k| ent(last + k, t)).collect();
                            l.append(es);
                        }
                    }
                    check_invariants(&l);
                    prop_assert!(l.committed >= before_commit);
                    // Committed entries are never rewritten.
                    committed_terms.retain(|&(i, _)| i >= l.first_index());
                    for &(i, t) in &committed_terms {
                        prop_assert_eq!(l.term(i).unwrap(), t, "committed entry {} rewritten", i);
                    }
                    let from = committed_terms.last().map_or(l.first_index(), |&(i, _)| i + 1);
                    for i in from.max(l.first_index())..=l.committed {
                        committed_terms.push((i, l.term(i).unwrap()));
                    }
                }
            }
        }
    }
}
