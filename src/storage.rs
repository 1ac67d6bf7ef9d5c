//! The `Storage` trait (the stable log, hard state and snapshot the application keeps) and
//! `MemStorage`, an in-memory implementation.

use crate::error::Result;
use crate::raftpb::{ConfState, Entry, HardState, Snapshot};

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
    /// The term of entry `idx`, valid for `[first_index()-1, last_index()]`.
    fn term(&self, idx: u64) -> Result<u64>;
    /// The index of the first entry that may be read (the snapshot index + 1).
    fn first_index(&self) -> Result<u64>;
    /// The index of the last entry.
    fn last_index(&self) -> Result<u64>;
    /// The most recent snapshot. `StorageError::SnapshotTemporarilyUnavailable` asks the core
    /// to retry later.
    fn snapshot(&self) -> Result<Snapshot>;
}
