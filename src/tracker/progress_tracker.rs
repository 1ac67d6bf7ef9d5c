//! The leader's (and candidate's) bookkeeping: configuration, per-peer progress, votes.

use super::{Config, ProgressMap};
use crate::lazy_vec::LazyVec;
use crate::quorum::VoteResult;
use crate::raftpb::ConfState;

/// The configuration of the group together with the progress of each member and the votes
/// of the current election.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressTracker {
    /// The active configuration.
    pub config: Config,
    /// The progress of every member (voters, learners and staged learners).
    pub progress: ProgressMap,
    /// The votes received in the current election, sorted by id.
    votes: LazyVec<(u64, bool)>,
    /// The inflight window (in messages) of each new progress.
    pub max_inflight: usize,
    /// The inflight window (in payload bytes; 0 for none) of each new progress.
    pub max_inflight_bytes: u64,
}

impl ProgressTracker {
    /// An empty tracker whose new progresses get windows of `max_inflight` messages and
    /// `max_inflight_bytes` bytes.
    pub fn new(max_inflight: usize, max_inflight_bytes: u64) -> Self {
        ProgressTracker {
            max_inflight,
            max_inflight_bytes,
            ..Default::default()
        }
    }

    /// The configuration as a ConfState (each list sorted).
    pub fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.config.voters.incoming.to_vec(),
            learners: self.config.learners_iter().collect(),
            voters_outgoing: self.config.voters.outgoing.to_vec(),
            learners_next: self.config.learners_next_iter().collect(),
            auto_leave: self.config.auto_leave,
        }
    }

    /// Whether the group has exactly one voter and is not joint.
    pub fn is_singleton(&self) -> bool {
        self.config.voters.incoming.len() == 1 && !self.config.voters.is_joint()
    }

    /// The highest index that a quorum of the voters has matched (`u64::MAX` if there are no
    /// voters at all).
    pub fn committed(&self) -> u64 {
        self.config.voters.committed_index(&self.progress)
    }

    /// Whether a quorum of the voters is recently active. The caller sets its own progress's
    /// `recent_active` as it sees fit (a leader counts itself as active).
    pub fn quorum_active(&self) -> bool {
        let active = |id: u64| self.progress.get(id).map(|pr| pr.recent_active);
        self.config.voters.vote_result(&active) == VoteResult::Won
    }

    /// The voters of both halves, sorted.
    pub fn voter_nodes(&self) -> Vec<u64> {
        self.config.voters.ids()
    }

    /// The learners, sorted (staged learners are not included).
    pub fn learner_nodes(&self) -> Vec<u64> {
        self.config.learners_iter().collect()
    }

    /// Forgets the votes of the last election.
    pub fn reset_votes(&mut self) {
        // Dropped rather than cleared: a follower keeps no buffer from its last election.
        self.votes = LazyVec::default();
    }

    /// Records `id`'s vote; only its first vote in an election counts.
    pub fn record_vote(&mut self, id: u64, granted: bool) {
        if let Err(pos) = self.votes.as_slice().binary_search_by_key(&id, |v| v.0) {
            self.votes.vec_mut().insert(pos, (id, granted));
        }
    }

    /// The vote recorded for `id`, if any.
    pub fn vote(&self, id: u64) -> Option<bool> {
        let votes = self.votes.as_slice();
        votes
            .binary_search_by_key(&id, |v| v.0)
            .ok()
            .map(|i| votes[i].1)
    }

    /// The votes recorded so far, sorted by id.
    pub fn votes(&self) -> &[(u64, bool)] {
        self.votes.as_slice()
    }

    /// Counts the granted and rejected votes of current voters (a vote from a node that is
    /// not a voter is ignored) and says whether the election is won, lost or pending.
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let (mut granted, mut rejected) = (0, 0);
        for &(id, v) in self.votes.as_slice() {
            if !self.config.voters.contains(id) {
                continue;
            }
            if v {
                granted += 1;
            } else {
                rejected += 1;
            }
        }
        let result = self.config.voters.vote_result(&|id| self.vote(id));
        (granted, rejected, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Progress;

    fn tracker(voters: &[u64], outgoing: &[u64], learners: &[u64]) -> ProgressTracker {
        let mut t = ProgressTracker::new(10, 0);
        t.config.voters.incoming = voters.iter().copied().collect();
        t.config.voters.outgoing = outgoing.iter().copied().collect();
        if !learners.is_empty() {
            t.config.learners = Some(learners.iter().copied().collect());
        }
        for &id in voters.iter().chain(outgoing).chain(learners) {
            let mut pr = Progress::new(1, 10, 0);
            pr.is_learner = learners.contains(&id);
            t.progress.insert(id, pr);
        }
        t
    }

    #[test]
    fn conf_state_and_nodes() {
        let t = tracker(&[3, 1, 2], &[], &[5, 4]);
        let cs = t.conf_state();
        assert_eq!(cs.voters, vec![1, 2, 3]);
        assert_eq!(cs.learners, vec![4, 5]);
        assert!(cs.voters_outgoing.is_empty() && cs.learners_next.is_empty());
        assert_eq!(t.voter_nodes(), vec![1, 2, 3]);
        assert_eq!(t.learner_nodes(), vec![4, 5]);
        assert!(!t.is_singleton());
        assert!(tracker(&[7], &[], &[1]).is_singleton());
        assert!(!tracker(&[7], &[7], &[]).is_singleton());
    }

    #[test]
    fn committed_ignores_learners() {
        let mut t = tracker(&[1, 2, 3], &[], &[4]);
        for (id, m) in [(1, 10), (2, 8), (3, 2), (4, 100)] {
            if let Some(pr) = t.progress.get_mut(id) {
                pr.matched = m;
            }
        }
        assert_eq!(t.committed(), 8);
        let mut joint = tracker(&[1, 2, 3], &[4, 5], &[]);
        for (id, m) in [(1, 10), (2, 8), (3, 2), (4, 9), (5, 3)] {
            if let Some(pr) = joint.progress.get_mut(id) {
                pr.matched = m;
            }
        }
        assert_eq!(joint.committed(), 3);
    }

    #[test]
    fn quorum_active() {
        let mut t = tracker(&[1, 2, 3], &[], &[4]);
        for id in [1, 4] {
            if let Some(pr) = t.progress.get_mut(id) {
                pr.recent_active = true;
            }
        }
        assert!(!t.quorum_active());
        if let Some(pr) = t.progress.get_mut(3) {
            pr.recent_active = true;
        }
        assert!(t.quorum_active());
    }

    #[test]
    fn votes() {
        let mut t = tracker(&[1, 2, 3], &[], &[4]);
        t.record_vote(4, true);
        t.record_vote(1, true);
        t.record_vote(1, false); // ignored: first vote wins
        assert_eq!(t.tally_votes(), (1, 0, VoteResult::Pending));
        t.record_vote(2, false);
        t.record_vote(3, false);
        assert_eq!(t.tally_votes(), (1, 2, VoteResult::Lost));
        assert_eq!(t.vote(1), Some(true));
        t.reset_votes();
        assert_eq!(t.tally_votes(), (0, 0, VoteResult::Pending));
        t.record_vote(2, true);
        t.record_vote(3, true);
        assert_eq!(t.tally_votes(), (2, 0, VoteResult::Won));
    }
}
