//! A learner promoted to voter while it was cut off learns of it from a snapshot, and may
//! then campaign like any voter.

use crate::common::{config, Cluster};
use raftcore::raftpb::{ConfChange, ConfChangeType};
use raftcore::{AppendMode, StateRole};

fn change(t: ConfChangeType, id: u64) -> ConfChange {
    ConfChange {
        r#type: t as i32,
        node_id: id,
        ..Default::default()
    }
}

#[test]
fn promotion_learned_from_a_snapshot_lets_the_node_campaign() {
    let configs = (1..=4).map(|id| config(id, AppendMode::Batched)).collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3, 4]);
    c.campaign(1);
    // Demote 4 to a learner, through the log.
    c.node(1)
        .propose_conf_change(change(ConfChangeType::ConfChangeAddLearnerNode, 4))
        .unwrap();
    c.stabilize();
    assert_eq!(c.node(4).conf_state().learners, vec![4]);
    c.node(4).campaign().unwrap();
    assert_eq!(
        c.node(4).role(),
        StateRole::Follower,
        "a learner does not campaign"
    );

    // Promote it back while it is cut off; it learns of it from a snapshot.
    c.isolate(4);
    c.node(1)
        .propose_conf_change(change(ConfChangeType::ConfChangeAddNode, 4))
        .unwrap();
    c.propose(1, "after").unwrap();
    c.stabilize();
    assert_eq!(c.node(1).conf_state().voters, vec![1, 2, 3, 4]);
    c.snapshot_and_compact(1).expect("a snapshot");
    c.heal();
    c.tick_and_stabilize(3);
    assert_eq!(c.node(4).conf_state().voters, vec![1, 2, 3, 4]);
    assert_eq!(c.node(4).commit(), c.node(1).commit());
    assert!(
        c.snap_reports.iter().any(|r| r.1 == 4),
        "caught up by snapshot"
    );

    c.node(4).campaign().unwrap();
    assert_eq!(c.node(4).role(), StateRole::Candidate, "a voter again");
}
