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
}

/// Checks the entries of an append message against its previous index and term: indexes
/// `prev_index+1, prev_index+2, ...` (none at `u64::MAX`, whose successor does not exist),
/// terms at least 1, at least `prev_term`, and non-decreasing. Returns the index of the last
/// entry (`prev_index` when there are none).
fn validate_append(prev_index: u64, prev_term: u64, ents: &[Entry]) -> Result<u64> {
    let mut last_term = prev_term;
    let mut last_index = prev_index;
    for e in ents {
        let want = last_index
            .checked_add(1)
            .filter(|&i| i < u64::MAX)
            .ok_or(Error::InvalidMessage("append entry index overflows"))?;
        if e.index != want {
            return Err(Error::InvalidMessage(
                "append entry indexes do not follow the previous index one by one",
            ));
        }
        if e.term == 0 {
            return Err(Error::InvalidMessage("append entry with term 0"));
        }
        if e.term < last_term {
            return Err(Error::InvalidMessage(
                "append entry terms decrease or fall below the previous term",
            ));
        }
        last_index = want;
        last_term = e.term;
    }
    Ok(last_index)
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
            applying_ents_paused: false,
        })
    }

    /// The limit given to [`RaftLog::new`].
    pub fn max_applying_ents_size(&self) -> u64 {
        self.max_applying_ents_size
    }

    /// The encoded bytes of the entries handed out for applying and not yet applied.
    pub fn applying_ents_size(&self) -> u64 {
        self.applying_ents_size
    }

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
        let last_new = validate_append(prev_index, prev_term, &ents)?;
        if !self.match_term(prev_index, prev_term) {
            return Ok(None);
        }
        let conflict = self.find_conflict(&ents);
        if conflict != 0 {
            if conflict <= self.committed {
                return Err(Error::InvalidMessage(
                    "append entry conflicts with a committed entry",
                ));
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
    /// `debug_assert!` and an empty result; [`RaftLog::try_next_committed_ents`] returns it.
    pub fn next_committed_ents(&self, allow_unstable: bool) -> Vec<Entry> {
        match self.try_next_committed_ents(allow_unstable) {
            Ok(ents) => ents,
            Err(e) => {
                debug_assert!(
                    false,
                    "unexpected error when getting unapplied entries: {e}"
                );
                Vec::new()
            }
        }
    }

    /// [`RaftLog::next_committed_ents`], returning storage errors.
    pub fn try_next_committed_ents(&self, allow_unstable: bool) -> Result<Vec<Entry>> {
        if self.applying_ents_paused || self.has_pending_snapshot() {
            return Ok(Vec::new());
        }
        let hi = self.max_appliable_index(allow_unstable);
        if self.applying >= hi {
            return Ok(Vec::new());
        }
        let room = self
            .max_applying_ents_size
            .saturating_sub(self.applying_ents_size);
        // applying < hi <= committed <= last_index < u64::MAX, so neither bound overflows.
        self.slice(self.applying + 1, hi + 1, room)
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
        match &self.unstable.snapshot {
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
        self.check_out_of_bounds(lo, hi)?;
        if lo == hi {
            return Ok(Vec::new());
        }
        let offset = self.unstable.offset;
        if lo >= offset {
            let ents = self.unstable.slice(lo, hi)?;
            return Ok(ents[..limit_len(ents, max_size)].to_vec());
        }
        let cut = cmp::min(hi, offset);
        let mut ents = self.store.entries(lo, cut, max_size)?;
        if hi <= offset || (ents.len() as u64) < cut - lo {
            // All in storage, or the storage already cut the batch at the size limit.
            return Ok(ents);
        }
        let unstable = self.unstable.slice(offset, hi)?;
        if max_size == NO_LIMIT {
            ents.extend_from_slice(unstable);
            return Ok(ents);
        }
        let size = ents
            .iter()
            .fold(0u64, |acc, e| acc.saturating_add(entry_size(e)));
        if size >= max_size {
            return Ok(ents);
        }
        let n = limit_len(unstable, max_size - size);
        // `limit_len` keeps one entry even above the room left; that one does not fit here.
        if n == 1 && size.saturating_add(entry_size(&unstable[0])) > max_size {
            return Ok(ents);
        }
        ents.extend_from_slice(&unstable[..n]);
        Ok(ents)
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
