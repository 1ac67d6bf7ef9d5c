//! The replication states of a follower's progress.

use std::fmt;

/// How the leader is currently replicating to a follower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// The leader does not know what the follower has: at most one append per heartbeat
    /// interval, probing for the point where the logs match.
    #[default]
    Probe,
    /// The follower is known to match: appends are pipelined, bounded by the inflight window.
    Replicate,
    /// The follower needs a snapshot; nothing else is sent until it is resolved.
    Snapshot,
}

impl fmt::Display for ProgressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressState::Probe => "StateProbe",
            ProgressState::Replicate => "StateReplicate",
            ProgressState::Snapshot => "StateSnapshot",
        })
    }
}
