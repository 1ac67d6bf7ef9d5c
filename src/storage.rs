//! The `Storage` trait (the stable log, hard state and snapshot the application keeps) and
//! `MemStorage`, an in-memory implementation.

use bytes::Bytes;
use prost::Message as _;

use crate::entry_chunks::{EntryChunks, Slices};
use crate::error::{Error, Result, StorageError};
use crate::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

/// The durable state a node starts from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RaftState {
    /// The last persisted HardState.
    pub hard_state: HardState,
    /// The configuration as of the last applied snapshot (and conf changes persisted with it).
    pub conf_state: ConfState,
}

/// Read access to the stable log. The application writes it (persisting each Ready); the core
/// only reads. Errors are `Error::Store(StorageError::..)`.
pub trait Storage {
    /// The persisted HardState and ConfState.
    fn initial_state(&self) -> Result<RaftState>;
    /// Entries in `[low, high)`, their encoded sizes summing to at most `max_size` bytes, but
    /// always at least one entry if any is in range. `StorageError::Compacted` if `low` is at or
    /// below the compaction point, `StorageError::Unavailable` if `high` is past `last_index()+1`.
    fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>>;
    /// [`Storage::entries`], appending to `out` instead of returning a new vector, so that the
    /// core can fill a buffer it reuses (see `RawNode::recycle`). The default calls `entries`;
    /// a storage that holds its entries in memory can copy them into `out` without
    /// allocating. On error `out` must be left as it was.
    fn entries_into(&self, low: u64, high: u64, max_size: u64, out: &mut Vec<Entry>) -> Result<()> {
        out.append(&mut self.entries(low, high, max_size)?);
        Ok(())
    }
    /// [`Storage::entries`], lent to `f` in order (in one or more consecutive slices) instead
    /// of returned: the core reads the size of what the application will apply this way
    /// ([`Config::apply_from_storage`](crate::Config::apply_from_storage)). The default
    /// calls `entries`; a storage that holds its entries in memory lends them without cloning.
    fn visit_entries(
        &self,
        low: u64,
        high: u64,
        max_size: u64,
        f: &mut dyn FnMut(&[Entry]),
    ) -> Result<()> {
        f(&self.entries(low, high, max_size)?);
        Ok(())
    }
    /// The term of entry `idx`, valid for `[first_index()-1, last_index()]`.
    fn term(&self, idx: u64) -> Result<u64>;
    /// The index of the first entry that may be read (the snapshot index + 1).
    fn first_index(&self) -> Result<u64>;
    /// The index of the last entry.
    fn last_index(&self) -> Result<u64>;
    /// The most recent snapshot. `StorageError::SnapshotTemporarilyUnavailable` asks the core
    /// to retry later.
    ///
    /// The snapshot carries the configuration as of its index. A node ignores a snapshot whose
    /// ConfState does not name it, so a snapshot taken before a member was added can never
    /// catch that member up: when the leader asks for a snapshot for a new member, return
    /// `SnapshotTemporarilyUnavailable` and build a newer one (at or past the index of the
    /// conf change that added it).
    fn snapshot(&self) -> Result<Snapshot>;
}

/// The size an entry counts for in every byte limit on entries (messages, committed entries per
/// Ready, storage reads): etcd's `Entry.Size()`. etcd's Entry has non-nullable fields, so its
/// encoding always carries type, term and index (a key byte and a varint each, 2 bytes for a
/// zero) and the data when there is any. That is 2 to 6 bytes more than the proto3 encoding
/// prost writes (which omits zero fields); counting as etcd does makes size limits cut batches
/// where etcd cuts them.
#[inline]
pub fn entry_size(e: &Entry) -> u64 {
    // Written out by hand: this runs for every entry of every append and apply page, so it
    // avoids the generic encoder's work; a test checks it against prost plus the zero fields.
    // Negative enum values are sign-extended to ten bytes.
    let mut n = 3 + varint_len(e.term) + varint_len(e.index) + varint_len(e.r#type as i64 as u64);
    let len = e.data.len() as u64;
    if len != 0 {
        n += 1 + varint_len(len) + len;
    }
    n
}

/// The bytes of `v` as a protobuf varint: 1 per started 7 bits.
#[inline]
pub(crate) fn varint_len(v: u64) -> u64 {
    // ceil(bits / 7) == (9 * bits + 64) / 64 for bits in 1..=64, without a division.
    let bits = 64 - (v | 1).leading_zeros() as u64;
    (9 * bits + 64) >> 6
}

/// The number of leading entries of `ents` whose sizes sum to at most `max_size` bytes, but at
/// least 1 when `ents` is not empty. A limit of `u64::MAX` ([`crate::NO_LIMIT`]) keeps all.
pub fn limit_len(ents: &[Entry], max_size: u64) -> usize {
    limit_len_pieces(std::iter::once(ents), max_size)
}

/// [`limit_len`] of the entries of consecutive slices taken as one run.
#[inline]
pub(crate) fn limit_len_pieces<'a>(
    pieces: impl Iterator<Item = &'a [Entry]> + Clone,
    max_size: u64,
) -> usize {
    let total: usize = pieces.clone().map(<[Entry]>::len).sum();
    if total <= 1 || max_size == u64::MAX {
        return total;
    }
    // A cheap first pass: an entry is at most 44 bytes plus its payload (four tags and four
    // varints of at most 10 bytes). When the bound fits, every entry does, and the exact sizes
    // (a few varint lengths per entry) are not needed: the common case of a page well under
    // its limit costs one load and one add per entry.
    let mut bound = 0u64;
    for p in pieces.clone() {
        for e in p {
            bound = bound.saturating_add(44 + e.data.len() as u64);
        }
        if bound > max_size {
            break;
        }
    }
    if bound <= max_size {
        return total;
    }
    let mut size = 0u64;
    let mut n = 0;
    for p in pieces {
        for e in p {
            size = size.saturating_add(entry_size(e));
            if size > max_size {
                // The first entry goes whatever its size.
                return n.max(1);
            }
            n += 1;
        }
    }
    total
}

/// Truncates `ents` to its longest prefix whose sizes sum to at most `max_size` bytes, keeping
/// at least one entry (etcd's `limitSize`).
pub fn limit_size(ents: &mut Vec<Entry>, max_size: u64) {
    let n = limit_len(ents, max_size);
    ents.truncate(n);
}

/// An in-memory [`Storage`], with the semantics of etcd's `MemoryStorage`.
///
/// It is a plain struct: no lock, no shared ownership. The `RawNode` owns its storage; the
/// application reaches it through the node's accessors to persist each Ready (append entries,
/// set the HardState, apply a snapshot) and to compact the log.
///
/// The log is kept as the index and term of its compaction point (the last snapshot's at
/// first; index 0, term 0 for a fresh storage), so `term()` answers for it, and a vector of the
/// entries after it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemStorage {
    hard_state: HardState,
    /// The last snapshot (applied or created), kept compact: an idle group pays for every
    /// byte here. Its index and term, its data, and its ConfState encoded (a decoded ConfState
    /// is 104 bytes inline whatever it holds; encoded, three voters take 5 bytes). It is
    /// decoded only by `initial_state` and `snapshot`, which run at start and when a leader
    /// sends a snapshot.
    snap_index: u64,
    snap_term: u64,
    /// `None` when empty (an idle group's usual case): 8 bytes instead of a `Bytes`' 32.
    snap_data: Option<Box<Bytes>>,
    snap_conf: ConfBytes,
    /// The compaction point: the index and term of the entry just before the first one kept
    /// (the snapshot's at first). `term` answers for it.
    offset_index: u64,
    offset_term: u64,
    /// The entries after the compaction point: entry `k` has index `offset_index + 1 + k`.
    /// Empty (no memory, 8 bytes inline) when the log holds nothing past the snapshot. Held
    /// in chunks (see `entry_chunks`): appends never copy the log, and its memory comes
    /// in allocations the allocator can serve from memory just freed.
    ents: EntryChunks,
}

/// An encoded ConfState, inline when it is short (a few voters take a few bytes): a heap
/// allocation costs a small group more than the bytes it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
// Boxed twice on purpose: a thin pointer keeps the enum at 16 bytes (a fat `Box<[u8]>` would
// make it 24); the rare long ConfState pays one more allocation.
#[allow(clippy::box_collection)]
enum ConfBytes {
    Inline { len: u8, buf: [u8; CONF_INLINE] },
    Heap(Box<Vec<u8>>),
}

/// With the tag and the length, the inline form is 16 bytes, as large as the boxed one (five
/// voters with ids below 128 encode in 7 bytes).
const CONF_INLINE: usize = 14;

impl Default for ConfBytes {
    fn default() -> Self {
        ConfBytes::Inline {
            len: 0,
            buf: [0; CONF_INLINE],
        }
    }
}

impl ConfBytes {
    fn new(b: &[u8]) -> Self {
        if b.len() <= CONF_INLINE {
            let mut buf = [0; CONF_INLINE];
            buf[..b.len()].copy_from_slice(b);
            ConfBytes::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            ConfBytes::Heap(Box::new(b.to_vec()))
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            ConfBytes::Inline { len, buf } => &buf[..usize::from(*len)],
            ConfBytes::Heap(b) => b,
        }
    }
}

impl Default for MemStorage {
    fn default() -> Self {
        MemStorage::new()
    }
}

impl MemStorage {
    /// An empty storage: no entries, an empty HardState, an empty snapshot at index 0.
    pub fn new() -> MemStorage {
        MemStorage {
            hard_state: HardState::default(),
            snap_index: 0,
            snap_term: 0,
            snap_data: None,
            snap_conf: ConfBytes::default(),
            offset_index: 0,
            offset_term: 0,
            ents: EntryChunks::default(),
        }
    }

    /// An empty storage whose (empty, index 0) snapshot metadata carries `cs`, so a node started
    /// on it begins with that configuration and an empty log. This is what etcd's tests do to
    /// seed peers (`withPeers`); it is meant for tests and examples. For a real cluster, seed
    /// the storage with a snapshot at index ≥ 1 via [`MemStorage::apply_snapshot`] instead.
    pub fn new_with_conf_state(cs: ConfState) -> MemStorage {
        let mut s = MemStorage::new();
        s.set_conf_state(cs);
        s
    }

    /// The stored HardState.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Replaces the stored HardState.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Replaces the ConfState carried by the current snapshot's metadata (returned by
    /// `initial_state`). The snapshot's index, term and data are unchanged.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.snap_conf = ConfBytes::new(&cs.encode_to_vec());
    }

    fn set_snap_data(&mut self, data: Bytes) {
        self.snap_data = (!data.is_empty()).then(|| Box::new(data));
    }

    /// The ConfState of the current snapshot.
    fn snap_conf_state(&self) -> ConfState {
        // Encoded by `set_conf_state` from a ConfState: decoding cannot fail.
        ConfState::decode(self.snap_conf.as_slice()).expect("MemStorage encoded this ConfState")
    }

    /// The compaction point's index.
    #[inline]
    fn offset(&self) -> u64 {
        self.offset_index
    }

    #[inline]
    fn first(&self) -> u64 {
        // The offset is below u64::MAX: `apply_snapshot` and `compact` never put it there.
        self.offset() + 1
    }

    #[inline]
    fn last(&self) -> u64 {
        self.offset() + self.ents.len() as u64
    }

    /// Replaces the log and the snapshot with `snap`: the log becomes empty, starting after the
    /// snapshot, and the ConfState becomes the snapshot's. The HardState is not touched (as in
    /// etcd; the node sends the matching HardState in the same Ready).
    ///
    /// `SnapshotOutOfDate` if `snap` is not newer than the current snapshot (this includes an
    /// empty snapshot); `Other` for a snapshot at index `u64::MAX`, after which no entry could
    /// follow.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let index = snap.index();
        if self.snap_index >= index {
            return Err(StorageError::SnapshotOutOfDate.into());
        }
        if index == u64::MAX {
            return Err(StorageError::Other(format!("snapshot index {index} out of range")).into());
        }
        let term = snap.term();
        self.set_conf_state(snap.conf_state());
        self.snap_index = index;
        self.snap_term = term;
        self.set_snap_data(snap.data);
        self.ents = EntryChunks::default();
        self.offset_index = index;
        self.offset_term = term;
        Ok(())
    }

    /// Makes a snapshot at index `i` (which must be in the log) with the given data, replacing
    /// the ConfState when `cs` is given, and returns it. The log is not compacted: call
    /// [`MemStorage::compact`] for that.
    ///
    /// `SnapshotOutOfDate` if `i` is at or below the current snapshot index, `Unavailable` if
    /// `i` is past the last index, `Compacted` if the log was compacted past `i` (the term of
    /// entry `i` is gone).
    pub fn create_snapshot(
        &mut self,
        i: u64,
        cs: Option<ConfState>,
        data: Bytes,
    ) -> Result<Snapshot> {
        if i <= self.snap_index {
            return Err(StorageError::SnapshotOutOfDate.into());
        }
        if i > self.last() {
            return Err(StorageError::Unavailable.into());
        }
        if i < self.offset() {
            // The log was compacted past the snapshot, and the entry's term is gone.
            return Err(StorageError::Compacted.into());
        }
        let term = self.term_in_log(i);
        self.snap_index = i;
        self.snap_term = term;
        if let Some(cs) = cs {
            self.set_conf_state(cs);
        }
        self.set_snap_data(data);
        Ok(self.current_snapshot())
    }

    /// The term of entry `i`, which is at or past the compaction point and at most the last.
    fn term_in_log(&self, i: u64) -> u64 {
        if i == self.offset() {
            self.offset_term
        } else {
            self.ents
                .get((i - self.offset() - 1) as usize)
                .expect("i is within the log")
                .term
        }
    }

    /// The current snapshot, decoded.
    fn current_snapshot(&self) -> Snapshot {
        Snapshot {
            data: self.snap_data.as_deref().cloned().unwrap_or_default(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(self.snap_conf_state()),
                index: self.snap_index,
                term: self.snap_term,
            }),
        }
    }

    /// Discards the entries before `compact_index`; the entry at `compact_index` becomes the
    /// dummy (its index and term stay readable through `term`). The application must not
    /// compact past its applied index.
    ///
    /// `Compacted` if `compact_index` is at or below the current compaction point,
    /// `Unavailable` if it is past the last index (etcd panics there).
    pub fn compact(&mut self, compact_index: u64) -> Result<()> {
        let offset = self.offset();
        if compact_index <= offset {
            return Err(StorageError::Compacted.into());
        }
        if compact_index > self.last() {
            return Err(StorageError::Unavailable.into());
        }
        let term = self.term_in_log(compact_index);
        self.ents.drop_front((compact_index - offset) as usize);
        self.offset_index = compact_index;
        self.offset_term = term;
        Ok(())
    }

    /// Checks an append and returns how many leading entries are already compacted (to be
    /// skipped) and where the rest goes, or `None` when nothing is left to write.
    fn plan_append(&self, entries: &[Entry]) -> Result<Option<usize>> {
        let Some(head) = entries.first() else {
            return Ok(None);
        };
        let start = head.index;
        let last_new = start
            .checked_add(entries.len() as u64 - 1)
            .filter(|&l| l < u64::MAX)
            .ok_or_else(|| {
                Error::from(StorageError::Other(format!(
                    "entries from index {start} overflow the log"
                )))
            })?;
        if let Some((k, e)) = entries
            .iter()
            .enumerate()
            .find(|&(k, e)| e.index != start + k as u64)
        {
            return Err(StorageError::Other(format!(
                "non-contiguous entries: index {} at position {k} after index {start}",
                e.index
            ))
            .into());
        }
        let first = self.first();
        if last_new < first {
            // Everything is already compacted.
            return Ok(None);
        }
        let skip = if start < first {
            (first - start) as usize
        } else {
            0
        };
        let entries = &entries[skip..];
        let at = entries[0].index;
        let last = self.last();
        if at > last + 1 {
            return Err(StorageError::Other(format!(
                "missing log entry [last: {last}, append at: {at}]"
            ))
            .into());
        }
        Ok(Some(skip))
    }

    /// Appends entries persisted from a Ready. Entries at or below the compaction point are
    /// skipped; entries overlapping the log replace it from the first of them on (the suffix is
    /// truncated). The entries must have contiguous indexes and must not leave a gap after the
    /// last index; both are errors (`Other`), as is an index that would reach `u64::MAX`.
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(skip) = self.plan_append(entries)? else {
            return Ok(());
        };
        let entries = &entries[skip..];
        let at = (entries[0].index - self.offset() - 1) as usize;
        self.ents.truncate(at);
        self.ents.extend_from_slice(entries);
        Ok(())
    }

    /// The entries `Storage::entries` returns, borrowed: the slices of the chunks holding them.
    fn entries_slices(&self, low: u64, high: u64, max_size: u64) -> Result<Slices<'_>> {
        let offset = self.offset();
        if low <= offset {
            return Err(StorageError::Compacted.into());
        }
        if high > self.last() + 1 {
            return Err(StorageError::Unavailable.into());
        }
        if self.ents.is_empty() {
            return Err(StorageError::Unavailable.into());
        }
        if low > high {
            return Err(
                StorageError::Other(format!("invalid entries range [{low}, {high})")).into(),
            );
        }
        let (lo, hi) = ((low - offset - 1) as usize, (high - offset - 1) as usize);
        let n = limit_len_pieces(self.ents.slices(lo, hi), max_size);
        Ok(self.ents.slices(lo, lo + n))
    }

    /// The entries in `[low, high)`, borrowed, as consecutive slices: what an application
    /// applying from its storage reads
    /// ([`Config::apply_from_storage`](crate::Config::apply_from_storage)). Errors as
    /// [`Storage::entries`] (no size limit).
    pub fn entries_ref(
        &self,
        low: u64,
        high: u64,
    ) -> Result<impl Iterator<Item = &[Entry]> + Clone + '_> {
        self.entries_slices(low, high, u64::MAX)
    }

    /// [`MemStorage::append`] taking the entries by value: they move into the log rather than
    /// being cloned (a Ready's `entries` can be handed over this way).
    pub fn append_owned(&mut self, mut entries: Vec<Entry>) -> Result<()> {
        self.append_from(&mut entries)
    }

    /// [`MemStorage::append_owned`] leaving `entries` empty with its capacity, for the next
    /// Ready to fill ([`crate::RawNode::recycle`]). On an error nothing is taken.
    pub fn append_from(&mut self, entries: &mut Vec<Entry>) -> Result<()> {
        let Some(skip) = self.plan_append(entries)? else {
            entries.clear();
            return Ok(());
        };
        let at = (entries[skip].index - self.offset() - 1) as usize;
        self.ents.truncate(at);
        entries.drain(..skip);
        self.ents.append_from(entries);
        Ok(())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: self.snap_conf_state(),
        })
    }

    fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.entries_into(low, high, max_size, &mut out)?;
        Ok(out)
    }

    fn entries_into(&self, low: u64, high: u64, max_size: u64, out: &mut Vec<Entry>) -> Result<()> {
        let slices = self.entries_slices(low, high, max_size)?;
        out.reserve(slices.clone().map(<[Entry]>::len).sum());
        for s in slices {
            out.extend_from_slice(s);
        }
        Ok(())
    }

    fn visit_entries(
        &self,
        low: u64,
        high: u64,
        max_size: u64,
        f: &mut dyn FnMut(&[Entry]),
    ) -> Result<()> {
        self.entries_slices(low, high, max_size)?.for_each(f);
        Ok(())
    }

    fn term(&self, idx: u64) -> Result<u64> {
        let offset = self.offset();
        if idx < offset {
            return Err(StorageError::Compacted.into());
        }
        if idx == offset {
            return Ok(self.offset_term);
        }
        match self
            .ents
            .get(usize::try_from(idx - offset - 1).unwrap_or(usize::MAX))
        {
            Some(e) => Ok(e.term),
            None => Err(StorageError::Unavailable.into()),
        }
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.current_snapshot())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn append_owned_matches_append() {
        let ents = |lo: u64, hi: u64, term: u64| -> Vec<Entry> {
            (lo..=hi)
                .map(|i| Entry {
                    term,
                    index: i,
                    data: Bytes::from(vec![i as u8]),
                    ..Default::default()
                })
                .collect()
        };
        let mut a = MemStorage::new();
        let mut b = MemStorage::new();
        for (lo, hi, term) in [(1, 5, 1), (4, 8, 2), (9, 9, 2), (3, 4, 3)] {
            a.append(&ents(lo, hi, term)).unwrap();
            b.append_owned(ents(lo, hi, term)).unwrap();
            assert_eq!(a, b);
        }
        a.compact(3).unwrap();
        b.compact(3).unwrap();
        // Partly compacted and overlapping: the compacted head is skipped.
        a.append(&ents(2, 6, 4)).unwrap();
        b.append_owned(ents(2, 6, 4)).unwrap();
        assert_eq!(a, b);
        assert!(b.append_owned(ents(9, 9, 4)).is_err(), "a gap is refused");
        assert_eq!(a, b);
        // append_from: the same, leaving the vector empty with its buffer; nothing taken on
        // an error; a fully compacted batch is dropped.
        let mut c = b.clone();
        let mut v = ents(7, 9, 4);
        a.append(&v).unwrap();
        c.append_from(&mut v).unwrap();
        assert_eq!(a, c);
        assert!(v.is_empty() && v.capacity() >= 3);
        let mut gap = ents(12, 12, 4);
        assert!(c.append_from(&mut gap).is_err());
        assert_eq!(gap.len(), 1, "nothing taken");
        let mut old = ents(1, 2, 1);
        c.append_from(&mut old).unwrap();
        assert!(old.is_empty());
        assert_eq!(a, c);
    }

    #[test]
    fn entry_size_matches_prost_plus_zero_fields() {
        for &(term, index, ty, len) in &[
            (0u64, 0u64, 0i32, 0usize),
            (1, 1, 0, 0),
            (127, 128, 1, 127),
            (u64::MAX, u64::MAX - 1, 2, 128),
            (300, 1 << 40, -1, 20000),
            (1 << 63, 5, i32::MAX, 1),
        ] {
            let e = Entry {
                term,
                index,
                r#type: ty,
                data: Bytes::from(vec![7u8; len]),
            };
            // prost omits zero fields; etcd writes each as two bytes (key, varint 0).
            let zeros = [term == 0, index == 0, ty == 0]
                .iter()
                .filter(|&&z| z)
                .count();
            assert_eq!(
                entry_size(&e),
                prost::Message::encoded_len(&e) as u64 + 2 * zeros as u64,
                "{term} {index} {ty} {len}"
            );
        }
    }

    #[test]
    fn entry_size_is_etcds() {
        let e = |term: u64, index: u64, len: usize| Entry {
            term,
            index,
            data: Bytes::from(vec![1u8; len]),
            ..Default::default()
        };
        // etcd's Entry.Size(): a normal entry of 15 bytes at term 1, index 5 is 23 bytes (21 in
        // proto3); a proposal of 5 bytes, before the leader sets term and index, is 13 (7).
        assert_eq!(entry_size(&e(1, 5, 15)), 23);
        assert_eq!(entry_size(&e(0, 0, 5)), 13);
        assert_eq!(entry_size(&e(1, 5, 128)), 137);
        // The leader's empty entry: type, term and index only.
        assert_eq!(entry_size(&e(2, 10, 0)), 6);
    }
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    /// A storage whose dummy is at (3, 3), with entries 4 and 5 at terms 4 and 5.
    /// Sets the log as the tests write it: the first entry is the compaction point.
    fn set_log(s: &mut MemStorage, mut ents: Vec<Entry>) {
        let first = ents.remove(0);
        s.offset_index = first.index;
        s.offset_term = first.term;
        s.ents = ents.into();
    }

    /// The log as the tests write it: the compaction point, then the entries.
    fn log_of(s: &MemStorage) -> Vec<Entry> {
        let mut v = vec![ent(s.offset_index, s.offset_term)];
        v.extend(s.ents.iter().cloned());
        v
    }

    #[test]
    fn conf_state_and_snapshot_data_round_trip_inline_and_on_the_heap() {
        let small = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        // Large ids take ten bytes each: past the inline buffer.
        let large = ConfState {
            voters: vec![u64::MAX - 2, u64::MAX - 1, u64::MAX],
            learners: vec![1 << 60],
            ..Default::default()
        };
        for (cs, inline) in [(small, true), (large, false), (ConfState::default(), true)] {
            let mut s = MemStorage::new_with_conf_state(cs.clone());
            assert_eq!(matches!(s.snap_conf, ConfBytes::Inline { .. }), inline);
            assert_eq!(s.initial_state().unwrap().conf_state, cs);
            assert!(s.snap_data.is_none());
            s.append(&[ent(1, 1), ent(2, 1)]).unwrap();
            let snap = s
                .create_snapshot(2, None, Bytes::from_static(b"sm"))
                .unwrap();
            assert_eq!(snap.data, Bytes::from_static(b"sm"));
            assert_eq!(snap.conf_state(), cs);
            assert_eq!(s.snapshot().unwrap(), snap);
            // Empty data is held as nothing, and reads back empty.
            let snap = s.create_snapshot(1 + 2, None, Bytes::new());
            assert!(snap.is_err(), "index 3 is past the log");
            s.append(&[ent(3, 1)]).unwrap();
            let snap = s.create_snapshot(3, None, Bytes::new()).unwrap();
            assert!(snap.data.is_empty() && s.snap_data.is_none());
        }
    }

    fn storage_345() -> MemStorage {
        let mut s = MemStorage::new();
        set_log(&mut s, vec![ent(3, 3), ent(4, 4), ent(5, 5)]);
        s
    }

    fn snap(index: u64, term: u64, cs: ConfState, data: &'static [u8]) -> Snapshot {
        Snapshot {
            data: Bytes::from_static(data),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(cs),
                index,
                term,
            }),
        }
    }

    fn voters(ids: &[u64]) -> ConfState {
        ConfState {
            voters: ids.to_vec(),
            ..Default::default()
        }
    }

    const COMPACTED: Error = Error::Store(StorageError::Compacted);
    const UNAVAILABLE: Error = Error::Store(StorageError::Unavailable);
    const OUT_OF_DATE: Error = Error::Store(StorageError::SnapshotOutOfDate);

    #[test]
    fn new_storage() {
        let s = MemStorage::new();
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 0);
        assert_eq!(s.term(0).unwrap(), 0);
        assert_eq!(s.term(1).unwrap_err(), UNAVAILABLE);
        assert_eq!(s.entries(1, 1, NO_LIMIT_U64).unwrap_err(), UNAVAILABLE);
        assert!(s.snapshot().unwrap().is_empty());
        assert_eq!(s.initial_state().unwrap(), RaftState::default());
        assert_eq!(MemStorage::default(), s);

        let s = MemStorage::new_with_conf_state(voters(&[1, 2, 3]));
        let st = s.initial_state().unwrap();
        assert_eq!(st.conf_state, voters(&[1, 2, 3]));
        assert!(st.hard_state.is_empty());
        assert!(s.snapshot().unwrap().is_empty());
        assert_eq!(s.last_index().unwrap(), 0);
    }

    const NO_LIMIT_U64: u64 = u64::MAX;

    #[test]
    fn hard_state_and_conf_state() {
        let mut s = MemStorage::new();
        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 0,
        };
        s.set_hard_state(hs);
        assert_eq!(s.hard_state(), &hs);
        s.set_conf_state(voters(&[4]));
        assert_eq!(s.initial_state().unwrap().hard_state, hs);
        assert_eq!(s.initial_state().unwrap().conf_state, voters(&[4]));
    }

    #[test]
    fn term() {
        let s = storage_345();
        let cases = [
            (2, Err(COMPACTED)),
            (3, Ok(3)),
            (4, Ok(4)),
            (5, Ok(5)),
            (6, Err(UNAVAILABLE)),
            (u64::MAX, Err(UNAVAILABLE)),
        ];
        for (i, want) in cases {
            assert_eq!(s.term(i), want, "term({i})");
        }
    }

    #[test]
    fn entries() {
        let s = {
            let mut s = MemStorage::new();
            set_log(&mut s, vec![ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 6)]);
            s
        };
        let sz = entry_size(&ent(4, 4));
        let all = [ent(4, 4), ent(5, 5), ent(6, 6)];
        // (lo, hi, max_size, want)
        let cases: Vec<(u64, u64, u64, Result<Vec<Entry>>)> = vec![
            (2, 6, NO_LIMIT_U64, Err(COMPACTED)),
            (3, 4, NO_LIMIT_U64, Err(COMPACTED)),
            (4, 5, NO_LIMIT_U64, Ok(vec![ent(4, 4)])),
            (4, 6, NO_LIMIT_U64, Ok(vec![ent(4, 4), ent(5, 5)])),
            (4, 7, NO_LIMIT_U64, Ok(all.to_vec())),
            // At least one entry, even over the limit.
            (4, 7, 0, Ok(vec![ent(4, 4)])),
            (4, 7, sz + sz / 2, Ok(vec![ent(4, 4)])),
            (4, 7, 2 * sz, Ok(vec![ent(4, 4), ent(5, 5)])),
            (4, 7, 3 * sz - 1, Ok(vec![ent(4, 4), ent(5, 5)])),
            (4, 7, 3 * sz, Ok(all.to_vec())),
            (5, 5, NO_LIMIT_U64, Ok(vec![])),
            (7, 7, NO_LIMIT_U64, Ok(vec![])),
            // Past the end: an error, not a panic.
            (4, 8, NO_LIMIT_U64, Err(UNAVAILABLE)),
            (5, u64::MAX, NO_LIMIT_U64, Err(UNAVAILABLE)),
        ];
        for (lo, hi, max, want) in cases {
            assert_eq!(s.entries(lo, hi, max), want, "entries({lo}, {hi}, {max})");
        }
        assert!(matches!(
            s.entries(6, 5, NO_LIMIT_U64),
            Err(Error::Store(StorageError::Other(_)))
        ));
    }

    #[test]
    fn first_and_last_index() {
        let mut s = storage_345();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(s.last_index().unwrap(), 5);
        s.append(&[ent(6, 5)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 6);
        s.compact(4).unwrap();
        assert_eq!(s.first_index().unwrap(), 5);
        assert_eq!(s.last_index().unwrap(), 6);
    }

    #[test]
    fn compact() {
        // (index, want error, want dummy index, want dummy term, want len)
        let cases = [
            (2, Some(COMPACTED), 3, 3, 3),
            (3, Some(COMPACTED), 3, 3, 3),
            (4, None, 4, 4, 2),
            (5, None, 5, 5, 1),
            // Past the end: an error, not a panic.
            (6, Some(UNAVAILABLE), 3, 3, 3),
            (u64::MAX, Some(UNAVAILABLE), 3, 3, 3),
        ];
        for (i, err, index, term, len) in cases {
            let mut s = storage_345();
            assert_eq!(s.compact(i).err(), err, "compact({i})");
            assert_eq!(s.offset_index, index, "compact({i})");
            assert_eq!(s.offset_term, term, "compact({i})");
            assert_eq!(s.ents.len() + 1, len, "compact({i})");
        }
    }

    #[test]
    fn compact_drops_dummy_payload_and_frees_memory() {
        let mut s = MemStorage::new();
        let ents: Vec<Entry> = (1..=1000)
            .map(|i| Entry {
                index: i,
                term: 1,
                data: Bytes::from_static(b"payload"),
                ..Default::default()
            })
            .collect();
        s.append(&ents).unwrap();
        s.compact(999).unwrap();
        assert_eq!(s.ents.len(), 1);
        assert_eq!(s.ents.get(0).unwrap().data, Bytes::from_static(b"payload"));
        assert!(s.ents.capacity() < 100);
        assert_eq!(s.term(999).unwrap(), 1);
        assert_eq!(s.term(998).unwrap_err(), COMPACTED);
        s.compact(1000).unwrap();
        assert_eq!(s.ents.capacity(), 0);
        assert_eq!(s.term(1000).unwrap(), 1);
    }

    #[test]
    fn create_snapshot() {
        let cs = voters(&[1, 2, 3]);
        let data = b"data";
        // (index, want)
        let cases = [
            (4, Ok(snap(4, 4, cs.clone(), data))),
            (5, Ok(snap(5, 5, cs.clone(), data))),
            (6, Err(UNAVAILABLE)),
            (u64::MAX, Err(UNAVAILABLE)),
        ];
        for (i, want) in cases {
            let mut s = storage_345();
            let got = s.create_snapshot(i, Some(cs.clone()), Bytes::from_static(data));
            assert_eq!(got, want, "create_snapshot({i})");
            if let Ok(want) = want {
                assert_eq!(s.snapshot().unwrap(), want);
                // The log is not compacted.
                assert_eq!(s.first_index().unwrap(), 4);
            }
        }

        let mut s = storage_345();
        s.create_snapshot(4, Some(cs.clone()), Bytes::from_static(data))
            .unwrap();
        // Not newer than the current snapshot.
        assert_eq!(
            s.create_snapshot(4, None, Bytes::new()).unwrap_err(),
            OUT_OF_DATE
        );
        assert_eq!(
            s.create_snapshot(3, None, Bytes::new()).unwrap_err(),
            OUT_OF_DATE
        );
        // Without a ConfState the previous one is kept.
        let s5 = s
            .create_snapshot(5, None, Bytes::from_static(b"x"))
            .unwrap();
        assert_eq!(s5, snap(5, 5, cs.clone(), b"x"));
        assert_eq!(s.initial_state().unwrap().conf_state, cs);

        // The log was compacted past the snapshot: the term is gone.
        let mut s = storage_345();
        s.append(&[ent(6, 6)]).unwrap();
        s.compact(5).unwrap();
        assert_eq!(
            s.create_snapshot(4, None, Bytes::new()).unwrap_err(),
            COMPACTED
        );
        assert_eq!(s.create_snapshot(6, None, Bytes::new()).unwrap().term(), 6);
    }

    #[test]
    fn apply_snapshot() {
        let cs = voters(&[1, 2, 3]);
        let mut s = MemStorage::new();
        s.set_hard_state(HardState {
            term: 1,
            vote: 2,
            commit: 0,
        });
        // An empty snapshot is out of date even on an empty storage.
        assert_eq!(
            s.apply_snapshot(Snapshot::default()).unwrap_err(),
            OUT_OF_DATE
        );

        let s4 = snap(4, 4, cs.clone(), b"four");
        s.apply_snapshot(s4.clone()).unwrap();
        assert_eq!(s.snapshot().unwrap(), s4);
        assert_eq!(s.first_index().unwrap(), 5);
        assert_eq!(s.last_index().unwrap(), 4);
        assert_eq!(s.term(4).unwrap(), 4);
        assert_eq!(s.initial_state().unwrap().conf_state, cs);
        // The HardState is not touched.
        assert_eq!(s.hard_state().commit, 0);

        // Older or equal: out of date.
        assert_eq!(
            s.apply_snapshot(snap(3, 3, cs.clone(), b"")).unwrap_err(),
            OUT_OF_DATE
        );
        assert_eq!(s.apply_snapshot(s4.clone()).unwrap_err(), OUT_OF_DATE);

        // A newer snapshot replaces the whole log.
        s.append(&[ent(5, 4), ent(6, 4), ent(7, 5)]).unwrap();
        s.apply_snapshot(snap(6, 4, voters(&[1]), b"six")).unwrap();
        assert_eq!(log_of(&s), vec![ent(6, 4)]);
        assert_eq!(s.initial_state().unwrap().conf_state, voters(&[1]));

        // A snapshot without a ConfState reads as an empty one.
        s.apply_snapshot(Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: None,
                index: 7,
                term: 5,
            }),
        })
        .unwrap();
        assert_eq!(s.initial_state().unwrap().conf_state, ConfState::default());

        // A snapshot at u64::MAX cannot be followed by any entry.
        assert!(matches!(
            s.apply_snapshot(snap(u64::MAX, 5, cs, b"")),
            Err(Error::Store(StorageError::Other(_)))
        ));
        assert_eq!(s.last_index().unwrap(), 7);
    }

    #[test]
    fn append() {
        // (entries, want Ok(log) or Err)
        let cases: Vec<(Vec<Entry>, Option<Vec<Entry>>)> = vec![
            // All compacted: no-op.
            (
                vec![ent(1, 1), ent(2, 2)],
                Some(vec![ent(3, 3), ent(4, 4), ent(5, 5)]),
            ),
            (vec![ent(3, 3)], Some(vec![ent(3, 3), ent(4, 4), ent(5, 5)])),
            // Same entries.
            (
                vec![ent(3, 3), ent(4, 4), ent(5, 5)],
                Some(vec![ent(3, 3), ent(4, 4), ent(5, 5)]),
            ),
            // Conflicting suffix is replaced.
            (
                vec![ent(3, 3), ent(4, 6), ent(5, 6)],
                Some(vec![ent(3, 3), ent(4, 6), ent(5, 6)]),
            ),
            (
                vec![ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)],
                Some(vec![ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)]),
            ),
            // Starting before the compaction point: the compacted part is skipped.
            (
                vec![ent(2, 3), ent(3, 3), ent(4, 5)],
                Some(vec![ent(3, 3), ent(4, 5)]),
            ),
            (vec![ent(4, 5)], Some(vec![ent(3, 3), ent(4, 5)])),
            // Directly after the end.
            (
                vec![ent(6, 5)],
                Some(vec![ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 5)]),
            ),
            // Nothing.
            (vec![], Some(vec![ent(3, 3), ent(4, 4), ent(5, 5)])),
            // A gap: an error, not a panic.
            (vec![ent(7, 5)], None),
            // Non-contiguous entries.
            (vec![ent(6, 5), ent(8, 5)], None),
            (vec![ent(6, 5), ent(6, 5)], None),
            // Indexes reaching u64::MAX.
            (vec![ent(u64::MAX, 5)], None),
            (vec![ent(u64::MAX - 1, 5), ent(u64::MAX, 5)], None),
        ];
        for (i, (app, want)) in cases.into_iter().enumerate() {
            let mut s = storage_345();
            let res = s.append(&app);
            match want {
                Some(w) => {
                    res.unwrap();
                    assert_eq!(log_of(&s), w, "case {i}");
                }
                None => {
                    assert!(
                        matches!(res, Err(Error::Store(StorageError::Other(_)))),
                        "case {i}: {res:?}"
                    );
                    assert_eq!(s, storage_345(), "case {i}: unchanged");
                }
            }
        }
    }

    #[test]
    fn limit_size_keeps_at_least_one() {
        let e = |i: u64, n: usize| Entry {
            index: i,
            term: 1,
            data: Bytes::from(vec![0u8; n]),
            ..Default::default()
        };
        let ents = vec![e(1, 10), e(2, 20), e(3, 30)];
        let sizes: Vec<u64> = ents.iter().map(entry_size).collect();
        assert_eq!(sizes[0], prost::Message::encoded_len(&ents[0]) as u64 + 2);
        let cases = [
            (0, 1),
            (1, 1),
            (sizes[0], 1),
            (sizes[0] + sizes[1] - 1, 1),
            (sizes[0] + sizes[1], 2),
            (sizes[0] + sizes[1] + sizes[2] - 1, 2),
            (sizes[0] + sizes[1] + sizes[2], 3),
            (u64::MAX, 3),
        ];
        for (max, want) in cases {
            let mut v = ents.clone();
            limit_size(&mut v, max);
            assert_eq!(v.len(), want, "max {max}");
            assert_eq!(limit_len(&ents, max), want, "max {max}");
        }
        let mut empty: Vec<Entry> = vec![];
        limit_size(&mut empty, 0);
        assert!(empty.is_empty());
    }
}
