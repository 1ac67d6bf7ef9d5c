//! Elections: what a vote rejection carries (the rejecter's commit index and the term of the
//! entry there) and what a node learns from it.

use crate::common::{msg, Cluster};
use raftcore::raftpb::{Message, MessageType};
use raftcore::AppendMode;

/// A 3-node group led by 1 at term 1, where entry 3 (term 1) is committed on 1 and 2, and
/// node 3 holds it without knowing it is committed (its commit index is 2).
fn committed_behind_on_3() -> Cluster {
    let mut c = Cluster::new(3, AppendMode::Batched);
    c.campaign(1);
    assert_eq!(c.term(1), 1);
    c.propose(1, "x").unwrap();
    c.process_readies();
    c.deliver();
    // The appends reached 2 and 3; what the leader says next does not reach 3.
    c.cut.insert((1, 3));
    c.stabilize();
    assert_eq!(c.committed(1), 3);
    assert_eq!(c.committed(2), 3);
    assert_eq!(c.committed(3), 2);
    assert_eq!(c.node(3).last_index(), 3);
    c
}

fn sent(c: &mut Cluster, id: u64) -> Vec<Message> {
    let rd = c.node(id).ready();
    let mut out = rd.messages.clone();
    out.extend(rd.persisted_messages.clone());
    out
}

#[test]
fn vote_rejection_carries_commit_and_its_term() {
    let mut c = committed_behind_on_3();
    // A candidate at term 3 whose log is behind: node 2 rejects it.
    let mut m = msg(MessageType::MsgVote, 3, 2, 3);
    m.index = 2;
    m.log_term = 1;
    c.node(2).step(m).unwrap();
    let resp: Vec<Message> = sent(&mut c, 2)
        .into_iter()
        .filter(|m| m.msg_type() == Some(MessageType::MsgVoteResp))
        .collect();
    assert_eq!(resp.len(), 1, "{resp:?}");
    assert!(resp[0].reject);
    assert_eq!(resp[0].term, 3);
    assert_eq!((resp[0].commit, resp[0].log_term), (3, 1));
}

#[test]
fn vote_rejection_hint_can_be_turned_off() {
    let mut cfgs: Vec<_> = (1..=3)
        .map(|id| crate::common::config(id, AppendMode::Batched))
        .collect();
    cfgs[1].vote_rejection_carries_commit = false;
    let mut c = Cluster::with_configs(cfgs, &[1, 2, 3]);
    c.campaign(1);
    c.propose(1, "x").unwrap();
    c.stabilize();
    let mut m = msg(MessageType::MsgVote, 3, 2, 3);
    m.index = 2;
    m.log_term = 1;
    c.node(2).step(m).unwrap();
    let resp = sent(&mut c, 2);
    let r = resp
        .iter()
        .find(|m| m.msg_type() == Some(MessageType::MsgVoteResp))
        .unwrap();
    assert!(r.reject);
    assert_eq!((r.commit, r.log_term), (0, 0));
}

#[test]
fn rejected_candidate_learns_commit_it_holds() {
    let mut c = committed_behind_on_3();
    let term = c.term(3);
    let mut r = msg(MessageType::MsgVoteResp, 2, 3, term);
    r.reject = true;
    r.commit = 3;
    r.log_term = 1;
    c.node(3).step(r).unwrap();
    assert_eq!(c.node(3).commit(), 3);
    // The entry is handed out for applying.
    c.process_readies();
    assert_eq!(c.payloads(3), vec![bytes::Bytes::from("x")]);
}

#[test]
fn rejection_naming_an_entry_not_held_teaches_nothing() {
    let mut c = committed_behind_on_3();
    let term = c.term(3);
    // Same index, another term: not the entry node 3 holds.
    let mut r = msg(MessageType::MsgVoteResp, 2, 3, term + 1);
    r.reject = true;
    r.commit = 3;
    r.log_term = 2;
    c.node(3).step(r).unwrap();
    assert_eq!(c.node(3).commit(), 2);
}

/// A pre-candidate of {1, 2, 3} at term 1 (pre-vote on).
fn pre_candidate() -> raftcore::RawNode<raftcore::MemStorage> {
    let mut cfg = crate::common::config(1, AppendMode::Batched);
    cfg.pre_vote = true;
    let mut n =
        raftcore::RawNode::new(&cfg, crate::common::storage_with_voters(&[1, 2, 3], &[])).unwrap();
    n.step(msg(MessageType::MsgHeartbeat, 2, 1, 1)).unwrap();
    n.forget_leader().unwrap();
    n.campaign().unwrap();
    assert_eq!(n.role(), raftcore::StateRole::PreCandidate);
    assert_eq!(n.term(), 1);
    n
}

#[test]
fn rejected_pre_vote_at_a_higher_term_moves_the_term() {
    let mut n = pre_candidate();
    let mut r = msg(MessageType::MsgPreVoteResp, 2, 1, 5);
    r.reject = true;
    n.step(r).unwrap();
    assert_eq!(n.role(), raftcore::StateRole::Follower);
    assert_eq!(n.term(), 5);
}

#[test]
fn granted_pre_vote_for_the_next_term_does_not_move_the_term() {
    let mut n = pre_candidate();
    // Granted pre-votes carry the term the election will use.
    n.step(msg(MessageType::MsgPreVoteResp, 2, 1, 2)).unwrap();
    // Its own pre-vote is counted once its Ready is handled; with 2's, the election starts.
    while n.has_ready() {
        let mut rd = n.ready();
        raftcore::testkit::Persist::take_from_ready(&mut rd)
            .write(n.store_mut())
            .unwrap();
        n.advance().unwrap();
    }
    assert_eq!(n.role(), raftcore::StateRole::Candidate);
    assert_eq!(n.term(), 2);
}

#[test]
fn candidate_takes_a_snapshot_from_the_leader_of_its_term() {
    use raftcore::raftpb::{ConfState, Snapshot, SnapshotMetadata};
    let mut n = raftcore::RawNode::new(
        &crate::common::config(1, AppendMode::Batched),
        crate::common::storage_with_voters(&[1, 2, 3], &[]),
    )
    .unwrap();
    n.campaign().unwrap();
    assert_eq!(n.role(), raftcore::StateRole::Candidate);
    let t = n.term();
    let mut m = msg(MessageType::MsgSnap, 2, 1, t);
    m.snapshot = Some(Snapshot {
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            }),
            index: 20,
            term: t,
        }),
        ..Default::default()
    });
    n.step(m).unwrap();
    assert_eq!(n.role(), raftcore::StateRole::Follower);
    assert_eq!(n.leader_id(), 2);
    let rd = n.ready();
    assert_eq!(rd.snapshot.as_ref().map(|s| s.index()), Some(20));
}

#[test]
fn no_campaign_while_a_committed_conf_change_is_unapplied() {
    use raftcore::raftpb::{ConfChange, ConfChangeType};
    let mut c = Cluster::new(3, AppendMode::Batched);
    c.campaign(1);
    c.propose(1, "before").unwrap();
    c.stabilize();
    let cc = ConfChange {
        r#type: ConfChangeType::ConfChangeAddLearnerNode as i32,
        node_id: 4,
        ..Default::default()
    };
    c.node(1).propose_conf_change(cc).unwrap();
    let cc_index = c.node(1).last_index();
    // Replicate, acknowledge, commit, and tell the followers; they do not handle the Ready
    // that would apply it.
    for _ in 0..3 {
        c.process_readies();
        c.deliver();
    }
    assert_eq!(
        c.node(2).commit(),
        cc_index,
        "the change is the last committed entry"
    );
    assert!(c.node(2).applied() < cc_index);
    let term = c.term(2);
    c.node(2).campaign().unwrap();
    assert_eq!(c.node(2).role(), raftcore::StateRole::Follower);
    assert_eq!(c.term(2), term);
    // Applied, it may, even with a normal entry committed and not yet applied after it.
    c.stabilize();
    assert_eq!(c.node(2).applied(), cc_index);
    c.propose(1, "after").unwrap();
    for _ in 0..3 {
        c.process_readies();
        c.deliver();
    }
    assert_eq!(c.node(2).commit(), cc_index + 1);
    assert_eq!(c.node(2).applied(), cc_index);
    c.node(2).campaign().unwrap();
    assert_eq!(c.node(2).role(), raftcore::StateRole::Candidate);
    c.stabilize();
    assert_eq!(c.leader(), Some(2));
}

#[test]
fn only_vote_rejections_teach_the_commit_index() {
    let mut c = committed_behind_on_3();
    let term = c.term(3);
    // A granted vote, or another kind of rejection, carrying the same fields: ignored.
    let mut granted = msg(MessageType::MsgVoteResp, 2, 3, term);
    granted.commit = 3;
    granted.log_term = 1;
    c.node(3).step(granted).unwrap();
    assert_eq!(c.node(3).commit(), 2);
    let mut other = msg(MessageType::MsgHeartbeatResp, 2, 3, term);
    other.reject = true;
    other.commit = 3;
    other.log_term = 1;
    c.node(3).step(other).unwrap();
    assert_eq!(c.node(3).commit(), 2);
    // A rejected pre-vote does.
    let mut pre = msg(MessageType::MsgPreVoteResp, 2, 3, term);
    pre.reject = true;
    pre.commit = 3;
    pre.log_term = 1;
    c.node(3).step(pre).unwrap();
    assert_eq!(c.node(3).commit(), 3);
}

/// Candidate 3 of {1, 2, 3} at term 1 (it campaigned; its vote is durable: the Ready was
/// handled), quiescence on.
fn candidate() -> raftcore::RawNode<raftcore::MemStorage> {
    let mut cfg = crate::common::config(3, AppendMode::Batched);
    cfg.quiesce = true;
    let mut n =
        raftcore::RawNode::new(&cfg, crate::common::storage_with_voters(&[1, 2, 3], &[])).unwrap();
    n.campaign().unwrap();
    let rd = n.ready();
    if let Some(hs) = rd.hard_state {
        n.store_mut().set_hard_state(hs);
    }
    n.advance().unwrap();
    assert_eq!(n.role(), raftcore::StateRole::Candidate);
    assert_eq!(n.term(), 1);
    n
}

#[test]
fn a_candidate_drops_proposals_for_want_of_a_leader() {
    let mut n = candidate();
    assert!(matches!(
        n.propose(bytes::Bytes::from_static(b"x")),
        Err(raftcore::Error::ProposalDropped(
            raftcore::DropReason::NoLeader
        ))
    ));
    assert!(matches!(
        n.propose_batch([bytes::Bytes::from_static(b"y")]),
        Err(raftcore::Error::ProposalDropped(
            raftcore::DropReason::NoLeader
        ))
    ));
}

#[test]
fn a_candidate_follows_the_leader_of_its_term_that_asks_it_to_go_quiet() {
    let mut n = candidate();
    // Node 1 won term 1 (with node 2's vote) and finds the group idle.
    let mut q = msg(MessageType::MsgQuiesce, 1, 3, 1);
    q.index = 7;
    n.step(q).unwrap();
    assert_eq!(n.role(), raftcore::StateRole::Follower);
    assert_eq!(n.leader_id(), 1);
    assert!(n.is_quiet());
    let rd = n.ready();
    assert!(rd
        .messages
        .iter()
        .any(|m| m.msg_type() == Some(MessageType::MsgQuiesceResp) && m.to == 1 && m.index == 7));
}
