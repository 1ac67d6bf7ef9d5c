//! The two-part configuration of joint consensus.

use super::{AckedIndexer, MajorityConfig, VoteResult};
use std::fmt;

/// A configuration of two majority halves that must both agree: `incoming` is the new (or
/// only) voter set, `outgoing` the old one while a joint change is in flight, and empty
/// otherwise. An empty half commits everything and wins every vote, so a non-joint
/// configuration behaves exactly like its incoming half.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JointConfig {
    /// The voters of the configuration being entered (or the only configuration).
    pub incoming: MajorityConfig,
    /// The voters of the configuration being left; empty when not joint.
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// A joint configuration of the two halves.
    pub fn new(incoming: MajorityConfig, outgoing: MajorityConfig) -> Self {
        JointConfig { incoming, outgoing }
    }

    /// Whether the outgoing half is in use.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` is a voter in either half.
    pub fn contains(&self, id: u64) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// The voters of both halves, sorted and without duplicates.
    pub fn ids(&self) -> Vec<u64> {
        let mut out = self.incoming.to_vec();
        out.extend(self.outgoing.iter());
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The bar chart of [`MajorityConfig::describe`] over the voters of both halves.
    pub fn describe(&self, l: &impl AckedIndexer) -> String {
        MajorityConfig::from(self.ids()).describe(l)
    }

    /// The largest index committed by both halves (`u64::MAX` if both are empty).
    pub fn committed_index(&self, l: &impl AckedIndexer) -> u64 {
        let a = self.incoming.committed_index(l);
        let b = self.outgoing.committed_index(l);
        a.min(b)
    }

    /// The election result: won only if both halves won, lost if either lost.
    pub fn vote_result<F: Fn(u64) -> Option<bool>>(&self, votes: &F) -> VoteResult {
        let a = self.incoming.vote_result(votes);
        let b = self.outgoing.vote_result(votes);
        match (a, b) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

/// `(1 2 3)&&(1 2)`; the outgoing half only when it is not empty.
impl fmt::Display for JointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.incoming)?;
        if !self.outgoing.is_empty() {
            write!(f, "&&{}", self.outgoing)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ids: &[u64]) -> MajorityConfig {
        ids.iter().copied().collect()
    }

    #[test]
    fn display_and_ids() {
        let j = JointConfig::new(cfg(&[1, 2, 3]), cfg(&[1, 2]));
        assert_eq!(j.to_string(), "(1 2 3)&&(1 2)");
        assert_eq!(JointConfig::new(cfg(&[1]), cfg(&[])).to_string(), "(1)");
        assert_eq!(
            JointConfig::new(cfg(&[1, 5]), cfg(&[2, 5, 7])).ids(),
            vec![1, 2, 5, 7]
        );
        assert!(j.is_joint() && j.contains(3) && !j.contains(4));
    }

    #[test]
    fn committed_is_min_of_halves() {
        let j = JointConfig::new(cfg(&[1, 3]), cfg(&[2]));
        let l = |id: u64| [None, Some(100), Some(45), Some(50)][id as usize];
        assert_eq!(j.committed_index(&l), 45);
        assert_eq!(JointConfig::default().committed_index(&l), u64::MAX);
    }

    #[test]
    fn votes_need_both_halves() {
        let j = JointConfig::new(cfg(&[1]), cfg(&[2]));
        assert_eq!(
            j.vote_result(&|id| (id == 1).then_some(true)),
            VoteResult::Pending
        );
        assert_eq!(j.vote_result(&|id| Some(id == 1)), VoteResult::Lost);
        assert_eq!(j.vote_result(&|_| Some(true)), VoteResult::Won);
        assert_eq!(
            JointConfig::default().vote_result(&|_| None),
            VoteResult::Won
        );
    }
}
