//! `RawNode::report_snapshot`: after a failed snapshot the leader probes from the follower's
//! match; after a delivered one, from the snapshot's index.

use crate::common::Cluster;
use raftcore::raftpb::MessageType;
use raftcore::{AppendMode, SnapshotStatus};

/// Leader 1 of {1, 2, 3} whose log was compacted past node 3's match: its next append to 3 is
/// a MsgSnap, taken out of the queue here (not delivered). Returns the snapshot's index and
/// node 3's match.
fn leader_sending_a_snapshot() -> (Cluster, u64, u64) {
    let mut c = Cluster::new(3, AppendMode::default());
    c.campaign(1);
    c.isolate(3);
    for i in 0..5 {
        c.propose(1, format!("e{i}")).unwrap();
        c.stabilize();
    }
    let snap = c
        .snapshot_and_compact(1)
        .expect("a snapshot past node 3's log");
    let matched = c
        .node_ref(1)
        .progress()
        .find(|(id, _)| *id == 3)
        .unwrap()
        .1
        .matched();
    assert!(matched < snap);
    c.heal();
    // Heartbeats until node 3 answers and the leader sends the snapshot.
    for _ in 0..20 {
        c.tick_all();
        c.process_readies();
        if let Some(k) = c
            .queue
            .iter()
            .position(|m| m.msg_type() == Some(MessageType::MsgSnap) && m.to == 3)
        {
            c.queue.remove(k);
            return (c, snap, matched);
        }
        c.deliver();
    }
    panic!("no snapshot sent to node 3");
}

fn next_of_3(c: &Cluster) -> u64 {
    c.node_ref(1)
        .progress()
        .find(|(id, _)| *id == 3)
        .unwrap()
        .1
        .next_idx()
}

#[test]
fn a_failed_snapshot_restarts_probing_from_the_match() {
    let (mut c, _snap, matched) = leader_sending_a_snapshot();
    c.node(1).report_snapshot(3, SnapshotStatus::Failure);
    assert_eq!(next_of_3(&c), matched + 1);
}

#[test]
fn a_delivered_snapshot_restarts_probing_after_it() {
    let (mut c, snap, _matched) = leader_sending_a_snapshot();
    c.node(1).report_snapshot(3, SnapshotStatus::Finish);
    assert_eq!(next_of_3(&c), snap + 1);
}
