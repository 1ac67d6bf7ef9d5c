//! One simulated node: the `RawNode`, its durable storage, the application's state machine (a
//! hash chain of applied entries), the Ready it is handling, and the shadow of its log that the
//! checks read.

use std::collections::VecDeque;

use crate::raftpb::{ConfState, Entry, Message};
use crate::storage::{MemStorage, Storage};
use crate::{RawNode, Ready};

use super::checker::{entry_hash, Violation, ViolationKind};

/// The application's state machine: the applied index and the hash chain up to it, and the
/// configuration as of that index (what a snapshot taken there must carry).
#[derive(Debug, Clone, Default)]
pub(crate) struct App {
    pub(crate) applied: u64,
    pub(crate) chain: u64,
    pub(crate) conf: ConfState,
    /// False for a new node that has not received a snapshot yet.
    pub(crate) has_state: bool,
}

/// The node's log as the checks see it: `(term, hash)` of every entry after the snapshot the
/// log starts from, as handed out by `ready()` (persisted or not).
#[derive(Debug, Clone, Default)]
pub(crate) struct Shadow {
    pub(crate) snap_index: u64,
    pub(crate) snap_term: u64,
    pub(crate) ents: Vec<(u64, u64)>,
}

impl Shadow {
    pub(crate) fn last_index(&self) -> u64 {
        self.snap_index + self.ents.len() as u64
    }

    pub(crate) fn get(&self, i: u64) -> Option<(u64, u64)> {
        if i <= self.snap_index {
            return None;
        }
        self.ents.get((i - self.snap_index - 1) as usize).copied()
    }

    pub(crate) fn reset(&mut self, index: u64, term: u64) {
        self.snap_index = index;
        self.snap_term = term;
        self.ents.clear();
    }

    /// Appends entries handed out in a Ready (replacing any suffix they overlap). Entries up to
    /// `committed` must not change.
    pub(crate) fn append(
        &mut self,
        node: u64,
        entries: &[Entry],
        committed: u64,
    ) -> Result<(), Violation> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last = self.last_index();
        if first.index > last + 1 {
            return Err(Violation::new(
                ViolationKind::Contract,
                format!(
                    "node {node}: Ready entries start at {} but the log ends at {last}",
                    first.index
                ),
            ));
        }
        for (k, e) in entries.iter().enumerate() {
            if e.index != first.index + k as u64 {
                return Err(Violation::new(
                    ViolationKind::Contract,
                    format!(
                        "node {node}: Ready entries are not contiguous at {}",
                        e.index
                    ),
                ));
            }
            if e.index <= self.snap_index {
                continue;
            }
            let th = (e.term, entry_hash(e));
            let pos = (e.index - self.snap_index - 1) as usize;
            if pos < self.ents.len() {
                if self.ents[pos] == th {
                    continue;
                }
                if e.index <= committed {
                    return Err(Violation::new(
                        ViolationKind::CommittedOverwritten,
                        format!(
                            "node {node} replaced its committed entry {} (term {}) by one of term {} (commit {committed})",
                            e.index, self.ents[pos].0, e.term
                        ),
                    ));
                }
                self.ents.truncate(pos);
            }
            self.ents.push(th);
        }
        Ok(())
    }

    /// The shadow of a persisted storage (after a restart).
    pub(crate) fn of_storage(s: &MemStorage) -> Shadow {
        let snap = s.snapshot().unwrap_or_default();
        let mut sh = Shadow {
            snap_index: snap.index(),
            snap_term: snap.term(),
            ents: Vec::new(),
        };
        let (first, last) = (
            s.first_index().unwrap_or(1),
            s.last_index().unwrap_or_default(),
        );
        if last >= first {
            if let Ok(ents) = s.entries(first, last + 1, u64::MAX) {
                // The storage may have been compacted past its snapshot: start at `first`.
                sh.snap_index = first - 1;
                sh.snap_term = s.term(first - 1).unwrap_or(snap.term());
                sh.ents = ents.iter().map(|e| (e.term, entry_hash(e))).collect();
            }
        } else {
            sh.snap_index = last;
            sh.snap_term = s.term(last).unwrap_or(snap.term());
        }
        sh
    }
}

/// A Ready taken in synchronous mode and not yet finished.
pub(crate) struct Pending {
    pub(crate) rd: Ready,
    pub(crate) persisted: bool,
}

/// A `MsgStorageAppend` work item of the append thread, and whether it was written yet.
pub(crate) struct AppendWork {
    pub(crate) m: Message,
    pub(crate) written: bool,
}

/// What a node's indexes were last seen at (they never go back within an incarnation).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    pub(crate) term: u64,
    pub(crate) commit: u64,
    pub(crate) applied: u64,
}

/// A running node.
pub(crate) struct Running {
    pub(crate) raw: RawNode<MemStorage>,
    pub(crate) app: App,
    pub(crate) shadow: Shadow,
    /// Committed entries of the shadow checked against the ledger, up to here.
    pub(crate) checked: u64,
    pub(crate) seen: Seen,
    /// The term whose leadership was checked for completeness.
    pub(crate) complete_term: u64,
    /// The term this node leads (0 when it does not) and its commit index when last seen.
    pub(crate) lead_term: u64,
    pub(crate) lead_commit: u64,
    /// Commit indexes this node moved to as leader, with its term: the entry there must be of
    /// that term (a leader commits by counting replicas of its own term's entries only).
    pub(crate) lead_commits: Vec<(u64, u64)>,
    /// The Ready being handled carries a new vote for another node.
    pub(crate) voting: bool,
    /// The Ready being handled is a leader's and moves its commit index (the moment a leader
    /// knows more than anyone else).
    pub(crate) committing: bool,
    /// The commit index of the last HardState handed out.
    pub(crate) last_commit_sent: u64,
    /// The `(term, vote)` of the last HardState handed out.
    pub(crate) last_vote: (u64, u64),
    pub(crate) pending: Option<Pending>,
    pub(crate) append_q: VecDeque<AppendWork>,
    pub(crate) apply_q: VecDeque<Message>,
    pub(crate) ready_scheduled: bool,
    pub(crate) append_scheduled: bool,
    pub(crate) apply_scheduled: bool,
}

/// The state of a node slot.
pub(crate) enum NodeState {
    /// Not started yet (a spare for membership changes).
    Idle,
    /// Running.
    Up(Box<Running>),
    /// Crashed: what survives is its persisted storage.
    Down(MemStorage),
    /// Stopped for good (removed from the group).
    Stopped,
}

/// A node slot: an id, its state and its hardware (clock rate, disk speed).
pub(crate) struct Slot {
    pub(crate) id: u64,
    pub(crate) state: NodeState,
    /// Bumped at every crash and restart: events of an older incarnation are ignored.
    pub(crate) inc: u32,
    /// Simulated time between two ticks of this node.
    pub(crate) tick_every: u64,
    /// Longest persist latency (0: a fast disk).
    pub(crate) disk_max: u64,
    /// Whether the node ever appeared in an applied configuration.
    pub(crate) member_once: bool,
}

impl Slot {
    pub(crate) fn running(&mut self) -> Option<&mut Running> {
        match &mut self.state {
            NodeState::Up(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn running_ref(&self) -> Option<&Running> {
        match &self.state {
            NodeState::Up(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        matches!(self.state, NodeState::Up(_))
    }
}
