//! The tracker's public API (`raftcore::tracker`, `raftcore::confchange`) on configurations
//! restored from a ConfState: membership queries, the progress map, votes, and which
//! ConfStates are valid.

use raftcore::confchange::{restore, validate_conf_state};
use raftcore::quorum::VoteResult;
use raftcore::raftpb::ConfState;
use raftcore::tracker::{ProgressState, ProgressTracker};

fn tracker(cs: &ConfState) -> ProgressTracker {
    let mut t = ProgressTracker::new(16, 0);
    restore(&mut t, 10, cs).unwrap();
    t
}

fn cs(voters: &[u64], outgoing: &[u64], learners: &[u64], next: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        voters_outgoing: outgoing.to_vec(),
        learners: learners.to_vec(),
        learners_next: next.to_vec(),
        auto_leave: false,
    }
}

#[test]
fn progress_map_of_a_restored_configuration() {
    let mut t = tracker(&cs(&[1, 2, 3], &[], &[4], &[]));
    let p = &mut t.progress;
    assert_eq!(p.len(), 4);
    assert!(!p.is_empty());
    assert_eq!(p.ids().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(p.contains(4) && !p.contains(5));
    let pr = p.get(2).unwrap();
    assert_eq!(pr.state(), ProgressState::Probe);
    assert_eq!(
        pr.next_idx(),
        10,
        "the last index, as etcd's changer sets it"
    );
    assert!(!pr.is_learner());
    assert!(p.get(4).unwrap().is_learner());
    assert!(p.get_mut(3).is_some());
    assert_eq!(p.iter().count(), 4);
    assert_eq!(p.iter_mut().count(), 4);
    let removed = p.remove(4).unwrap();
    assert!(removed.is_learner());
    assert!(p.remove(4).is_none());
    assert_eq!(p.len(), 3);
    assert!(p.insert(9, removed.clone()).is_none());
    assert!(p.insert(9, removed).is_some());
    assert_eq!(p.ids().collect::<Vec<_>>(), vec![1, 2, 3, 9]);
    p.clear();
    assert!(p.is_empty());
    assert_eq!(p.len(), 0);
}

#[test]
fn membership_queries() {
    let t = tracker(&cs(&[1, 2, 3], &[], &[4], &[]));
    assert_eq!(t.voter_nodes(), vec![1, 2, 3]);
    assert_eq!(t.learner_nodes(), vec![4]);
    assert!(!t.is_singleton());
    assert!(t.config.is_voter(2) && !t.config.is_voter(4));
    assert!(t.config.is_learner(4) && !t.config.is_learner(1));
    assert!(t.config.contains(4) && !t.config.contains(5));
    assert!(!t.config.is_joint());
    assert_eq!(t.conf_state(), cs(&[1, 2, 3], &[], &[4], &[]));

    let joint = tracker(&cs(&[1, 2], &[1, 2, 3], &[], &[3]));
    assert!(joint.config.is_joint());
    assert!(joint.config.is_learner_next(3));
    assert!(!joint.config.is_learner(3));
    assert!(joint.config.is_voter(3), "an outgoing voter");
    assert_eq!(joint.voter_nodes(), vec![1, 2, 3]);
    assert!(joint.learner_nodes().is_empty());
    assert_eq!(
        joint.config.learners_next_iter().collect::<Vec<_>>(),
        vec![3]
    );
    assert!(!joint.is_singleton());
    assert_eq!(joint.conf_state(), cs(&[1, 2], &[1, 2, 3], &[], &[3]));

    assert!(tracker(&cs(&[7], &[], &[8], &[])).is_singleton());
    assert!(!tracker(&cs(&[7], &[7, 8], &[], &[])).is_singleton());
}

#[test]
fn votes_count_voters_once() {
    let mut t = tracker(&cs(&[1, 2, 3], &[], &[4], &[]));
    assert_eq!(t.tally_votes(), (0, 0, VoteResult::Pending));
    t.record_vote(1, true);
    t.record_vote(1, false);
    assert_eq!(t.vote(1), Some(true), "only the first vote counts");
    t.record_vote(4, true);
    assert_eq!(
        t.tally_votes(),
        (1, 0, VoteResult::Pending),
        "learners do not vote"
    );
    t.record_vote(2, false);
    assert_eq!(t.tally_votes(), (1, 1, VoteResult::Pending));
    t.record_vote(3, true);
    assert_eq!(t.tally_votes(), (2, 1, VoteResult::Won));
    assert_eq!(t.votes(), &[(1, true), (2, false), (3, true), (4, true)]);
    t.reset_votes();
    assert!(t.votes().is_empty());
    assert_eq!(t.vote(1), None);
    t.record_vote(2, false);
    t.record_vote(3, false);
    assert_eq!(t.tally_votes(), (0, 2, VoteResult::Lost));
}

#[test]
fn committed_and_quorum_active() {
    let t = tracker(&cs(&[1, 2, 3], &[], &[4], &[]));
    // Nobody has matched anything yet; new members count as recently active.
    assert_eq!(t.committed(), 0);
    assert!(t.quorum_active());
    assert!(t.progress.iter().all(|(_, p)| p.recent_active()));
    assert_eq!(tracker(&cs(&[1], &[], &[], &[])).committed(), 0);
    let empty = ProgressTracker::new(4, 0);
    assert_eq!(empty.committed(), u64::MAX);
    assert!(empty.quorum_active(), "no voters: every vote is won");
}

#[test]
fn conf_state_validity() {
    let ok = [
        cs(&[1], &[], &[], &[]),
        cs(&[1, 2], &[], &[3], &[]),
        cs(&[1, 2], &[1, 2, 3], &[], &[3]),
        cs(&[1, 2], &[2, 3], &[4], &[]),
    ];
    for c in &ok {
        validate_conf_state(c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    }
    let mut auto = cs(&[1], &[1, 2], &[], &[]);
    auto.auto_leave = true;
    validate_conf_state(&auto).unwrap();
    let bad = [
        cs(&[], &[], &[], &[]),
        cs(&[], &[1], &[], &[]),
        cs(&[0, 1], &[], &[], &[]),
        cs(&[1, u64::MAX], &[], &[], &[]),
        cs(&[1, u64::MAX - 1], &[], &[], &[]),
        cs(&[1, 1], &[], &[], &[]),
        cs(&[1], &[2, 2], &[], &[]),
        cs(&[1], &[], &[3, 3], &[]),
        cs(&[1], &[1], &[], &[1]),
        cs(&[1, 2], &[], &[2], &[]),
        cs(&[1], &[2], &[2], &[]),
        cs(&[1], &[], &[], &[2]),
        cs(&[1], &[1, 2], &[2], &[2]),
    ];
    for c in &bad {
        assert!(validate_conf_state(c).is_err(), "{c:?}");
    }
    let mut auto = cs(&[1], &[], &[], &[]);
    auto.auto_leave = true;
    assert!(
        validate_conf_state(&auto).is_err(),
        "auto_leave outside a joint configuration"
    );
    // The largest ordinary id is fine.
    validate_conf_state(&cs(&[1, u64::MAX - 2], &[], &[], &[])).unwrap();
}
