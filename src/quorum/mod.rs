//! Quorum arithmetic: which index a set of voters has committed, and how an election went.
//!
//! A [`MajorityConfig`] is one set of voters deciding by simple majority; a [`JointConfig`] is
//! the pair used during joint consensus, where both halves must agree. Neither knows anything
//! about progress or messages: acknowledged indexes come in through an [`AckedIndexer`] and
//! votes through a closure, so the same code serves the tracker, the tests and the harness.

mod joint;
mod majority;

pub use joint::JointConfig;
pub use majority::{MajorityConfig, VoterIter};

use std::fmt;

/// Gives the highest log index a voter is known to have acknowledged.
pub trait AckedIndexer {
    /// The acknowledged index of `voter_id`, or `None` when nothing is known about it (it then
    /// counts as having acknowledged index 0).
    fn acked_index(&self, voter_id: u64) -> Option<u64>;
}

impl<F: Fn(u64) -> Option<u64>> AckedIndexer for F {
    fn acked_index(&self, voter_id: u64) -> Option<u64> {
        self(voter_id)
    }
}

/// The outcome of an election, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VoteResult {
    /// Not decided yet: missing votes could still make it go either way.
    Pending = 1,
    /// Lost: even if every missing vote were granted, no quorum could be reached.
    Lost = 2,
    /// Won: a quorum granted its vote.
    Won = 3,
}

impl fmt::Display for VoteResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VoteResult::Pending => "VotePending",
            VoteResult::Lost => "VoteLost",
            VoteResult::Won => "VoteWon",
        })
    }
}

/// Prints a log index the way the quorum code does: decimal, and `∞` for `u64::MAX` (the
/// committed index of an empty configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayIndex(pub u64);

impl fmt::Display for DisplayIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u64::MAX {
            f.write_str("∞")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_result_names() {
        assert_eq!(VoteResult::Pending.to_string(), "VotePending");
        assert_eq!(VoteResult::Lost.to_string(), "VoteLost");
        assert_eq!(VoteResult::Won.to_string(), "VoteWon");
        assert_eq!(VoteResult::Won as u8, 3);
    }

    #[test]
    fn index_display() {
        assert_eq!(DisplayIndex(12).to_string(), "12");
        assert_eq!(DisplayIndex(u64::MAX).to_string(), "∞");
    }

    #[test]
    fn closures_are_indexers() {
        let l = |id: u64| (id == 1).then_some(5);
        assert_eq!(l.acked_index(1), Some(5));
        assert_eq!(l.acked_index(2), None);
    }
}
