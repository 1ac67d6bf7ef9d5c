//! Which configuration-change proposals the leader takes (etcd's rules): one at a time until
//! the previous one is applied; no simple change while joint; no leave-joint outside a joint
//! configuration. A refused one becomes an empty normal entry, as in etcd.

use crate::common::Cluster;
use raftcore::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType,
};
use raftcore::AppendMode;

fn add_learner(id: u64) -> ConfChange {
    ConfChange {
        r#type: ConfChangeType::ConfChangeAddLearnerNode as i32,
        node_id: id,
        ..Default::default()
    }
}

fn entry(c: &mut Cluster, index: u64) -> Entry {
    c.log(1).into_iter().find(|e| e.index == index).unwrap()
}

fn cluster() -> Cluster {
    let mut c = Cluster::new(3, AppendMode::Batched);
    c.campaign(1);
    c.propose(1, "x").unwrap();
    c.stabilize();
    c
}

#[test]
fn a_second_change_waits_for_the_first_to_apply() {
    let mut c = cluster();
    let last = c.node(1).last_index();
    c.node(1).propose_conf_change(add_learner(4)).unwrap();
    c.node(1).propose_conf_change(add_learner(5)).unwrap();
    c.stabilize();
    assert_eq!(
        entry(&mut c, last + 1).entry_type(),
        EntryType::EntryConfChange
    );
    let second = entry(&mut c, last + 2);
    assert_eq!(second.entry_type(), EntryType::EntryNormal);
    assert!(
        second.data.is_empty(),
        "refused: replaced by an empty entry"
    );
    assert_eq!(c.node(1).conf_state().learners, vec![4]);
    // Once the first is applied, the next one is taken.
    c.node(1).propose_conf_change(add_learner(5)).unwrap();
    c.stabilize();
    assert_eq!(c.node(1).conf_state().learners, vec![4, 5]);
}

#[test]
fn changes_in_one_batch_after_a_normal_entry() {
    let mut c = cluster();
    // One proposal message (as forwarded by a follower) with a normal entry, then a change:
    // the change is the message's second entry; a change proposed right after is refused.
    let last = c.node(1).last_index();
    let cc = Entry {
        r#type: EntryType::EntryConfChange as i32,
        data: prost::Message::encode_to_vec(&add_learner(4)).into(),
        ..Default::default()
    };
    let mut m = crate::common::msg(raftcore::raftpb::MessageType::MsgProp, 2, 1, 0);
    m.entries = vec![
        Entry {
            data: "n".into(),
            ..Default::default()
        },
        cc,
    ];
    c.node(1).step(m).unwrap();
    c.node(1).propose_conf_change(add_learner(5)).unwrap();
    c.stabilize();
    assert_eq!(entry(&mut c, last + 1).data, bytes::Bytes::from("n"));
    assert_eq!(
        entry(&mut c, last + 2).entry_type(),
        EntryType::EntryConfChange
    );
    assert_eq!(entry(&mut c, last + 3).entry_type(), EntryType::EntryNormal);
    assert_eq!(c.node(1).conf_state().learners, vec![4]);
}

#[test]
fn joint_rules() {
    let mut c = cluster();
    let last = c.node(1).last_index();
    // Leaving a joint configuration that is not there: refused.
    c.node(1)
        .propose_conf_change(ConfChangeV2::default())
        .unwrap();
    c.stabilize();
    assert_eq!(entry(&mut c, last + 1).entry_type(), EntryType::EntryNormal);
    // Enter a joint configuration explicitly (no auto-leave).
    let enter = ConfChangeV2 {
        transition: raftcore::raftpb::ConfChangeTransition::JointExplicit as i32,
        changes: vec![ConfChangeSingle {
            r#type: ConfChangeType::ConfChangeAddLearnerNode as i32,
            node_id: 4,
        }],
        ..Default::default()
    };
    let mut enter_two = enter;
    enter_two.changes.push(ConfChangeSingle {
        r#type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: 3,
    });
    c.node(1).propose_conf_change(enter_two).unwrap();
    c.stabilize();
    assert!(!c.node(1).conf_state().voters_outgoing.is_empty(), "joint");
    // A simple change while joint: refused.
    let before = c.node(1).last_index();
    c.node(1).propose_conf_change(add_learner(5)).unwrap();
    c.stabilize();
    assert_eq!(
        entry(&mut c, before + 1).entry_type(),
        EntryType::EntryNormal
    );
    // Leaving: taken.
    c.node(1)
        .propose_conf_change(ConfChangeV2::default())
        .unwrap();
    c.stabilize();
    let cs = c.node(1).conf_state();
    assert!(cs.voters_outgoing.is_empty());
    assert_eq!(cs.voters, vec![1, 2]);
    assert_eq!(cs.learners, vec![4]);
}
