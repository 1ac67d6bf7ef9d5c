//! A leader transfer in progress when a configuration change is applied: aborted if the change
//! removed the transferee, kept if it removed another member. And the one sign of a follower's
//! idle footprint the API shows: per-peer progress exists only on a leader.

use crate::common::Cluster;
use raftcore::raftpb::{ConfChange, ConfChangeType};
use raftcore::{AppendMode, StateRole};

fn remove(id: u64) -> ConfChange {
    ConfChange {
        r#type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: id,
        ..Default::default()
    }
}

/// Leader 1 of {1, 2, 3} with node 3 cut off; a change removing `removed` is committed (by 1
/// and 2) but not yet applied on the leader when a transfer to 3 starts; then the leader
/// applies it. Returns the leader's transferee afterwards.
fn transferee_after_applying_removal_of(removed: u64) -> u64 {
    let mut c = Cluster::new(3, AppendMode::Batched);
    c.campaign(1);
    c.propose(1, "x").unwrap();
    c.stabilize();
    c.isolate(3);
    c.node(1).propose_conf_change(remove(removed)).unwrap();
    let last = c.node(1).last_index();
    // The leader persists and sends the change; node 2 acknowledges it.
    c.process_readies();
    c.deliver();
    c.process_readies();
    c.deliver();
    // The acknowledgement has been stepped: the change is committed, not yet applied.
    assert_eq!(c.node(1).commit(), last);
    assert!(c.node(1).applied() < last);
    c.node(1).transfer_leader(3);
    assert_eq!(c.node(1).basic_status().lead_transferee, 3);
    c.process_readies();
    assert_eq!(c.node(1).applied(), last);
    assert_eq!(c.node(1).role(), StateRole::Leader);
    c.node(1).basic_status().lead_transferee
}

#[test]
fn removing_the_transferee_aborts_the_transfer() {
    assert_eq!(transferee_after_applying_removal_of(3), 0);
}

#[test]
fn removing_another_member_keeps_the_transfer() {
    assert_eq!(transferee_after_applying_removal_of(2), 3);
}

#[test]
fn only_a_leader_has_per_peer_progress() {
    let mut c = Cluster::new(3, AppendMode::Batched);
    // Started from a stored configuration: nobody leads, nobody tracks peers.
    for id in 1..=3 {
        assert_eq!(c.node_ref(id).progress().count(), 0, "node {id} at start");
    }
    c.campaign(1);
    c.propose(1, "x").unwrap();
    c.stabilize();
    assert_eq!(c.node_ref(1).progress().count(), 3);
    for id in 2..=3 {
        assert_eq!(c.node_ref(id).progress().count(), 0, "follower {id}");
    }
    // A follower caught up by a snapshot (which installs a configuration) still tracks none.
    c.isolate(3);
    for i in 0..3 {
        c.propose(1, format!("y{i}")).unwrap();
        c.stabilize();
    }
    c.snapshot_and_compact(1).unwrap();
    c.heal();
    c.tick_and_stabilize(5);
    assert_eq!(c.committed(3), c.committed(1));
    assert_eq!(c.node_ref(3).progress().count(), 0);
}
