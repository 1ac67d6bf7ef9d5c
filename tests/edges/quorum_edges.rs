//! Corners of the quorum types (`raftcore::quorum`) that the scenario tests do not reach:
//! building a majority configuration piecemeal.

use raftcore::quorum::{MajorityConfig, VoteResult};

#[test]
fn extend_adds_sorted_and_deduplicated_voters() {
    let mut c: MajorityConfig = [5, 1].into_iter().collect();
    c.extend([3, 1, 9, 3]);
    assert_eq!(c.to_vec(), [1, 3, 5, 9]);
    assert_eq!(c.len(), 4);
    assert!(c.contains(9) && c.contains(3));
    // Four voters: a quorum is three.
    let votes = |id: u64| Some(id != 9);
    assert_eq!(c.vote_result(&votes), VoteResult::Won);
    let votes = |id: u64| Some(id == 1 || id == 3);
    assert_eq!(c.vote_result(&votes), VoteResult::Lost);
}

#[test]
fn clear_removes_every_voter() {
    let mut c: MajorityConfig = [1, 2, 3].into_iter().collect();
    c.clear();
    assert!(c.is_empty());
    assert_eq!(c.len(), 0);
    assert!(!c.contains(1));
    // No voters: every vote is won (etcd's convention for an empty half of a joint config).
    assert_eq!(c.vote_result(&|_| None), VoteResult::Won);
    c.insert(4);
    assert_eq!(c.to_vec(), [4]);
}
