//! The safety checks, kept incrementally as the run goes (see the crate's SIMULATION notes):
//! one committed ledger (index → term and hash of the entry), one applied-state hash chain,
//! at most one leader per term, leader completeness, and linearizable reads.
//!
//! The checker is independent of the world that feeds it, so a property test can drive it
//! directly (and a test can show it refuses two different entries at one committed index).

use std::collections::BTreeMap;
use std::fmt;

use crate::raftpb::Entry;

use super::rng::{hash_bytes, mix64};

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// Two nodes reported different entries committed at one index (state machine safety, log
    /// matching on committed entries).
    CommittedConflict,
    /// Two nodes reached different applied states at one index.
    AppliedStateConflict,
    /// A node applied entries out of order or with a gap.
    AppliedOutOfOrder,
    /// Two leaders in one term.
    TwoLeaders,
    /// A leader's log lacks an entry committed before its term.
    LeaderIncomplete,
    /// A node's commit index, applied index or term went backwards within one incarnation.
    Regressed,
    /// A node replaced an entry it had already reported committed.
    CommittedOverwritten,
    /// A leader moved its commit index to an entry of an earlier term (counting replicas of
    /// an old entry, Raft's Figure 8).
    CommitRule,
    /// A read released at an index below a write acknowledged before the read was asked.
    StaleRead,
    /// A node could not restart from its persisted state.
    RestartFailed,
    /// The core panicked.
    Panic,
    /// The core misbehaved in some other way the harness noticed (an error where none is
    /// allowed, a Ready breaking its contract).
    Contract,
}

/// A safety violation: its kind and what exactly was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The kind of violation.
    pub kind: ViolationKind,
    /// A readable account of it.
    pub detail: String,
}

impl Violation {
    /// A violation of `kind` described by `detail`.
    pub fn new(kind: ViolationKind, detail: impl Into<String>) -> Self {
        Violation {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for Violation {}

/// The hash of an entry's type and payload (its index and term are kept beside it).
pub fn entry_hash(e: &Entry) -> u64 {
    hash_bytes(e.r#type as u64, &e.data)
}

/// The applied state after applying entry `(index, term, hash)` to state `prev`.
pub fn chain_next(prev: u64, index: u64, term: u64, hash: u64) -> u64 {
    mix64(prev ^ mix64(index ^ mix64(term ^ hash.rotate_left(17))))
}

/// The applied state of a group that starts from the bootstrap snapshot at `index`.
pub fn chain_genesis(index: u64) -> u64 {
    mix64(0xB007 ^ index)
}

/// The state-machine snapshot data: the applied index and the applied state.
pub fn encode_state(index: u64, chain: u64) -> bytes::Bytes {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&index.to_le_bytes());
    v.extend_from_slice(&chain.to_le_bytes());
    bytes::Bytes::from(v)
}

/// Reads snapshot data written by [`encode_state`].
pub fn decode_state(data: &[u8]) -> Option<(u64, u64)> {
    if data.len() != 16 {
        return None;
    }
    let a = u64::from_le_bytes(data[..8].try_into().ok()?);
    let b = u64::from_le_bytes(data[8..].try_into().ok()?);
    Some((a, b))
}

#[derive(Debug, Clone, Copy)]
struct Committed {
    term: u64,
    hash: u64,
    /// The term of the node that first reported it: at least the term of the leader that
    /// committed it.
    seen_term: u64,
    /// Who reported it first.
    node: u64,
}

/// The global record of what was committed, applied and led, checked as reports come in.
#[derive(Debug, Default, Clone)]
pub struct Checker {
    committed: Vec<Option<Committed>>,
    chain: Vec<Option<(u64, u64)>>,
    leaders: BTreeMap<u64, u64>,
    /// The highest index any acknowledged write was applied at.
    acked_write_index: u64,
    /// Committed entries recorded (for the run's statistics).
    pub committed_count: u64,
}

fn slot<T: Copy>(v: &mut Vec<Option<T>>, i: u64) -> &mut Option<T> {
    let i = i as usize;
    if v.len() <= i {
        v.resize(i + 1, None);
    }
    &mut v[i]
}

impl Checker {
    /// An empty checker.
    pub fn new() -> Self {
        Checker::default()
    }

    /// Records that `node` (at `node_term`) holds entry `(index, term, hash)` as committed.
    /// Refuses an entry that differs from one recorded at the same index.
    pub fn committed(
        &mut self,
        node: u64,
        node_term: u64,
        index: u64,
        term: u64,
        hash: u64,
    ) -> Result<(), Violation> {
        let s = slot(&mut self.committed, index);
        match s {
            Some(c) if c.term != term || c.hash != hash => Err(Violation::new(
                ViolationKind::CommittedConflict,
                format!(
                    "index {index}: node {node} holds committed (term {term}, hash {hash:016x}) but node {} reported (term {}, hash {:016x})",
                    c.node, c.term, c.hash
                ),
            )),
            Some(c) => {
                c.seen_term = c.seen_term.min(node_term);
                Ok(())
            }
            None => {
                *s = Some(Committed {
                    term,
                    hash,
                    seen_term: node_term,
                    node,
                });
                self.committed_count += 1;
                Ok(())
            }
        }
    }

    /// The committed entry at `index`, if known: `(term, hash)`.
    pub fn committed_at(&self, index: u64) -> Option<(u64, u64)> {
        self.committed
            .get(index as usize)
            .copied()
            .flatten()
            .map(|c| (c.term, c.hash))
    }

    /// The highest index recorded as committed.
    pub fn max_committed(&self) -> u64 {
        self.committed.len().saturating_sub(1) as u64
    }

    /// Records that `node` reached applied state `chain` at `index`. Refuses a state that
    /// differs from one recorded at the same index.
    pub fn applied_state(&mut self, node: u64, index: u64, chain: u64) -> Result<(), Violation> {
        let s = slot(&mut self.chain, index);
        match s {
            Some((c, n)) if *c != chain => Err(Violation::new(
                ViolationKind::AppliedStateConflict,
                format!(
                    "index {index}: node {node} has applied state {chain:016x} but node {n} had {c:016x}"
                ),
            )),
            Some(_) => Ok(()),
            None => {
                *s = Some((chain, node));
                Ok(())
            }
        }
    }

    /// Records that `node` leads `term`. Refuses a second leader in a term.
    pub fn leader(&mut self, node: u64, term: u64) -> Result<(), Violation> {
        match self.leaders.get(&term) {
            Some(&l) if l != node => Err(Violation::new(
                ViolationKind::TwoLeaders,
                format!("term {term}: node {node} became leader but node {l} already led it"),
            )),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, node);
                Ok(())
            }
        }
    }

    /// The leader recorded for `term`.
    pub fn leader_of(&self, term: u64) -> Option<u64> {
        self.leaders.get(&term).copied()
    }

    /// Terms with a recorded leader.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }

    /// Checks that a leader of `term` holds every entry committed before its term. `log`
    /// answers `(term, hash)` of the leader's entry at an index (`None` when it has none);
    /// `snap_index` is the index its log starts after (entries at or below it are covered by
    /// its snapshot, which the applied-state check covers).
    pub fn leader_complete(
        &self,
        node: u64,
        term: u64,
        snap_index: u64,
        log: impl Fn(u64) -> Option<(u64, u64)>,
    ) -> Result<(), Violation> {
        for (i, c) in self
            .committed
            .iter()
            .enumerate()
            .skip(snap_index as usize + 1)
        {
            let Some(c) = c else { continue };
            if c.seen_term >= term {
                continue;
            }
            let i = i as u64;
            match log(i) {
                Some((t, h)) if t == c.term && h == c.hash => {}
                got => {
                    return Err(Violation::new(
                        ViolationKind::LeaderIncomplete,
                        format!(
                            "node {node} leads term {term} but its log has {got:?} at index {i}, where (term {}, hash {:016x}) was committed by term {}",
                            c.term, c.hash, c.seen_term
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Records that a write was acknowledged to its client, applied at `index`.
    pub fn write_acked(&mut self, index: u64) {
        self.acked_write_index = self.acked_write_index.max(index);
    }

    /// The index every read asked from now on must reach.
    pub fn read_floor(&self) -> u64 {
        self.acked_write_index
    }

    /// Checks a read released at `index` that was asked when the floor was `floor`.
    pub fn read_released(
        &self,
        node: u64,
        read: u64,
        floor: u64,
        index: u64,
    ) -> Result<(), Violation> {
        if index < floor {
            return Err(Violation::new(
                ViolationKind::StaleRead,
                format!(
                    "read {read} at node {node} released at index {index}, but a write acknowledged before it was asked is at index {floor}"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_entries_at_one_index_are_refused() {
        let mut c = Checker::new();
        c.committed(1, 2, 5, 2, 0xAA).unwrap();
        c.committed(2, 2, 5, 2, 0xAA).unwrap();
        let v = c.committed(3, 3, 5, 3, 0xBB).unwrap_err();
        assert_eq!(v.kind, ViolationKind::CommittedConflict);
        assert!(c.leader(1, 4).is_ok());
        assert_eq!(c.leader(2, 4).unwrap_err().kind, ViolationKind::TwoLeaders);
    }
}
