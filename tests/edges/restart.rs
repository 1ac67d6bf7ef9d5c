//! A node restarted on stored state refuses a HardState whose commit index lies outside its
//! log (below the snapshot, or past the last entry), and an applied index past the commit.

use bytes::Bytes;
use raftcore::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raftcore::{Config, Error, MemStorage, RawNode};

/// A storage with a snapshot at (10, 2) for voters {1, 2, 3} and entries 11 and 12 at term 2.
fn storage(commit: u64) -> MemStorage {
    let mut s = MemStorage::new();
    s.apply_snapshot(Snapshot {
        data: Bytes::new(),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            }),
            index: 10,
            term: 2,
        }),
    })
    .unwrap();
    let e = |index| Entry {
        index,
        term: 2,
        ..Default::default()
    };
    s.append(&[e(11), e(12)]).unwrap();
    s.set_hard_state(HardState {
        term: 2,
        vote: 1,
        commit,
    });
    s
}

#[test]
fn a_stored_commit_index_outside_the_log_is_corrupt_state() {
    let cfg = Config::new(1);
    for commit in [10, 11, 12] {
        let n = RawNode::new(&cfg, storage(commit)).unwrap();
        assert_eq!(n.commit(), commit);
        assert_eq!(n.term(), 2);
    }
    for commit in [9, 13, u64::MAX] {
        match RawNode::new(&cfg, storage(commit)) {
            Err(Error::CorruptState(s)) => assert!(s.contains("state.commit"), "{s}"),
            other => panic!("commit {commit}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn an_applied_index_past_the_commit_is_corrupt_state() {
    let mut cfg = Config::new(1);
    cfg.applied = 12;
    assert!(RawNode::new(&cfg, storage(12)).is_ok());
    match RawNode::new(&cfg, storage(11)) {
        Err(Error::CorruptState(s)) => assert!(s.contains("applied"), "{s}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}
