//! With asynchronous storage writes, a snapshot a follower accepts travels to the append
//! thread inside the `MsgStorageAppend` work item, and its acknowledgement names it.

use bytes::Bytes;
use raftcore::raftpb::{ConfState, MessageType, Snapshot, SnapshotMetadata};
use raftcore::{Config, RawNode, LOCAL_APPEND_THREAD};

#[test]
fn a_received_snapshot_goes_to_the_append_thread() {
    let mut cfg = Config::new(2);
    cfg.async_storage_writes = true;
    let mut n = RawNode::new(&cfg, crate::common::storage_with_voters(&[1, 2, 3], &[])).unwrap();
    let mut m = crate::common::msg(MessageType::MsgSnap, 1, 2, 3);
    m.snapshot = Some(Snapshot {
        data: Bytes::from_static(b"state"),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            }),
            index: 20,
            term: 3,
        }),
    });
    n.step(m).unwrap();
    let rd = n.ready();
    assert_eq!(rd.snapshot.as_ref().map(|s| s.index()), Some(20));
    let work: Vec<_> = rd
        .messages
        .iter()
        .filter(|m| m.msg_type() == Some(MessageType::MsgStorageAppend))
        .collect();
    assert_eq!(work.len(), 1);
    let w = work[0];
    assert_eq!(w.to, LOCAL_APPEND_THREAD);
    let snap = w
        .snapshot
        .as_ref()
        .expect("the snapshot goes with the work item");
    assert_eq!(snap.index(), 20);
    assert_eq!(snap.data, Bytes::from_static(b"state"));
    let resp = w
        .responses
        .iter()
        .find(|r| r.msg_type() == Some(MessageType::MsgStorageAppendResp))
        .expect("the write's acknowledgement");
    assert_eq!(resp.snapshot.as_ref().map(|s| s.index()), Some(20));
    // The answer to the leader waits for the write, inside the same work item.
    assert!(w
        .responses
        .iter()
        .any(|r| r.msg_type() == Some(MessageType::MsgAppResp) && r.to == 1 && r.index == 20));
}
