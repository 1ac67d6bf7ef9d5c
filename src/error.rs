//! The one error type of the crate. Texts follow etcd-io/raft where etcd has an error for the
//! same condition, so logs and the interaction harness read the same.

use std::fmt;

/// Errors from a [`crate::Storage`] implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The requested index is at or below the storage's compaction point.
    Compacted,
    /// The requested entry is past the last index of the storage.
    Unavailable,
    /// A snapshot older than the one already held was offered.
    SnapshotOutOfDate,
    /// The snapshot is being built; ask again later.
    SnapshotTemporarilyUnavailable,
    /// Any other failure of the application's storage.
    Other(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Compacted => {
                f.write_str("requested index is unavailable due to compaction")
            }
            StorageError::Unavailable => f.write_str("requested entry at index is unavailable"),
            StorageError::SnapshotOutOfDate => {
                f.write_str("requested index is older than the existing snapshot")
            }
            StorageError::SnapshotTemporarilyUnavailable => {
                f.write_str("snapshot is temporarily unavailable")
            }
            StorageError::Other(s) => write!(f, "storage error: {s}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// Why a proposal (or a read request) was not taken. A client can tell a retry from a
/// failure: [`DropReason::NoLeader`] and [`DropReason::TransferInProgress`] pass with time,
/// [`DropReason::UncommittedBudgetFull`] and [`DropReason::TooManyPendingReads`] pass once the
/// group catches up, the others need another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// No leader is known (an election is under way, or none can be won yet).
    NoLeader,
    /// The leader is handing leadership to another node.
    TransferInProgress,
    /// The leader's budget of uncommitted bytes (`max_uncommitted_entries_size`) is full.
    UncommittedBudgetFull,
    /// Too many read requests are waiting (`MAX_PENDING_READS`).
    TooManyPendingReads,
    /// The leader was removed from (or demoted in) the configuration and takes no proposals.
    LeaderRemoved,
    /// This follower does not forward proposals (`disable_proposal_forwarding`).
    ForwardingDisabled,
}

impl DropReason {
    /// A short snake_case name, for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::NoLeader => "no_leader",
            DropReason::TransferInProgress => "transfer_in_progress",
            DropReason::UncommittedBudgetFull => "uncommitted_budget_full",
            DropReason::TooManyPendingReads => "too_many_pending_reads",
            DropReason::LeaderRemoved => "leader_removed",
            DropReason::ForwardingDisabled => "forwarding_disabled",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors returned by the Raft core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A proposal (or a forwarded request) was dropped; the reason says whether to retry.
    /// Displays as etcd's `ErrProposalDropped` text.
    ProposalDropped(DropReason),
    /// A message of a local type (MsgHup, MsgBeat, MsgStorage*, ...) was stepped as if it came
    /// from the network.
    StepLocalMsg,
    /// A response message came from a node that is not in the configuration.
    StepPeerNotFound,
    /// A remote message was refused by the input gate before it could touch any state. The
    /// reason says which rule it broke; count them by [`crate::Reason::as_str`].
    InvalidMessage(crate::Reason),
    /// The configuration is invalid.
    ConfigInvalid(String),
    /// A configuration change is invalid.
    ConfChange(String),
    /// The storage failed.
    Store(StorageError),
    /// `advance` was called on a node that runs with asynchronous storage writes, or a storage
    /// response was handed to a node that does not.
    AsyncStorageMisuse(&'static str),
    /// The local state found at start-up is inconsistent (for example a HardState commit index
    /// outside the log).
    CorruptState(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ProposalDropped(_) => f.write_str("raft proposal dropped"),
            Error::StepLocalMsg => f.write_str("raft: cannot step raft local message"),
            Error::StepPeerNotFound => f.write_str("raft: cannot step as peer not found"),
            Error::InvalidMessage(why) => write!(f, "raft: invalid message: {why}"),
            Error::ConfigInvalid(s) => f.write_str(s),
            Error::ConfChange(s) => f.write_str(s),
            Error::Store(e) => e.fmt(f),
            Error::AsyncStorageMisuse(s) => write!(f, "raft: {s}"),
            Error::CorruptState(s) => write!(f, "raft: corrupt local state: {s}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Store(e)
    }
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
