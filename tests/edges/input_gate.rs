//! The input gate (`Reason`): every shape and trust rule at its boundary, one message at a
//! time, on a single node. A refused message changes nothing; a message just inside a bound
//! is not refused for that bound.

use crate::common::msg;
use raftcore::raftpb::{
    ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
};
use raftcore::{
    Config, Error, MemStorage, RawNode, Reason, StateRole, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD,
    MAX_REMOTE_VALUE, MAX_TERM_JUMP, MAX_UNCONFIRMED_TERM_JUMP,
};

const STRANGER: u64 = 99;
const MAX: u64 = MAX_REMOTE_VALUE;

fn storage(voters: &[u64]) -> MemStorage {
    crate::common::storage_with_voters(voters, &[])
}

fn config(id: u64) -> Config {
    let mut c = Config::new(id);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.seed = 3;
    c
}

/// Node 1 of {1, 2, 3}: a follower at term 1 without a leader.
fn follower() -> RawNode<MemStorage> {
    let mut n = RawNode::new(&config(1), storage(&[1, 2, 3])).unwrap();
    n.step(msg(MessageType::MsgHeartbeat, 2, 1, 1)).unwrap();
    n.forget_leader().ok();
    n
}

/// Node 1 of {1, 2, 3}: leader at term 1 (its vote and 2's), log [1..=2].
fn leader() -> RawNode<MemStorage> {
    let mut n = RawNode::new(&config(1), storage(&[1, 2, 3])).unwrap();
    n.campaign().unwrap();
    persist(&mut n);
    let t = n.term();
    n.step(msg(MessageType::MsgVoteResp, 2, 1, t)).unwrap();
    assert_eq!(n.role(), StateRole::Leader);
    persist(&mut n);
    n
}

/// Writes what the node's Ready asks to, and advances it (the messages are dropped).
fn persist(n: &mut RawNode<MemStorage>) {
    while n.has_ready() {
        let mut rd = n.ready();
        raftcore::testkit::Persist::take_from_ready(&mut rd)
            .write(n.store_mut())
            .unwrap();
        n.advance().unwrap();
    }
}

/// Node 1 of {1, 2, 3}: follower of 2 at term 1.
fn led() -> RawNode<MemStorage> {
    let mut n = RawNode::new(&config(1), storage(&[1, 2, 3])).unwrap();
    let mut m = msg(MessageType::MsgApp, 2, 1, 1);
    m.index = 1;
    m.log_term = 1;
    n.step(m).unwrap();
    assert_eq!(n.leader_id(), 2);
    n
}

fn refused(n: &mut RawNode<MemStorage>, m: Message) -> Option<Reason> {
    match n.step(m) {
        Err(Error::InvalidMessage(r)) => Some(r),
        _ => None,
    }
}

fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Default::default()
    }
}

fn snap(index: u64, term: u64, cs: ConfState) -> Snapshot {
    Snapshot {
        metadata: Some(SnapshotMetadata {
            conf_state: Some(cs),
            index,
            term,
        }),
        ..Default::default()
    }
}

fn voters(v: &[u64]) -> ConfState {
    ConfState {
        voters: v.to_vec(),
        ..Default::default()
    }
}

fn app(from: u64, term: u64, index: u64, log_term: u64, ents: Vec<Entry>) -> Message {
    let mut m = msg(MessageType::MsgApp, from, 1, term);
    m.index = index;
    m.log_term = log_term;
    m.entries = ents;
    m
}

#[test]
fn sender_and_recipient() {
    for from in [0, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD] {
        let m = msg(MessageType::MsgHeartbeat, from, 1, 1);
        assert_eq!(
            refused(&mut follower(), m),
            Some(Reason::NoSender),
            "{from}"
        );
    }
    let m = msg(MessageType::MsgHeartbeat, 1, 1, 1);
    assert_eq!(refused(&mut follower(), m), Some(Reason::FromSelf));
    let m = msg(MessageType::MsgHeartbeat, 2, 3, 1);
    assert_eq!(refused(&mut follower(), m), Some(Reason::WrongRecipient));
    // A forwarded proposal may come back to its origin.
    let mut m = msg(MessageType::MsgProp, 1, 1, 0);
    m.entries = vec![Entry::default()];
    assert_eq!(refused(&mut leader(), m), None);
    let m = msg(MessageType::MsgHeartbeat, 2, 1, 0);
    assert_eq!(refused(&mut follower(), m), Some(Reason::MissingTerm));
    let mut unknown = msg(MessageType::MsgHeartbeat, 2, 1, 1);
    unknown.r#type = 1000;
    assert_eq!(refused(&mut follower(), unknown), Some(Reason::UnknownType));
    for t in [MessageType::MsgHup, MessageType::MsgForgetLeader] {
        let m = msg(t, 2, 1, 1);
        assert!(
            matches!(follower().step(m), Err(Error::StepLocalMsg)),
            "{t:?}"
        );
    }
}

#[test]
fn values_in_range() {
    type Set = fn(&mut Message, u64);
    let fields: [(&str, Set); 4] = [
        ("index", |m, v| m.index = v),
        ("commit", |m, v| m.commit = v),
        ("reject_hint", |m, v| m.reject_hint = v),
        ("term", |m, v| m.term = v),
    ];
    for (name, set) in fields {
        let mut m = msg(MessageType::MsgHeartbeatResp, 2, 1, 1);
        set(&mut m, MAX + 1);
        assert_eq!(
            refused(&mut follower(), m),
            Some(Reason::OutOfRange),
            "{name}"
        );
        let mut m = msg(MessageType::MsgHeartbeatResp, 2, 1, 1);
        set(&mut m, MAX);
        assert_ne!(
            refused(&mut follower(), m),
            Some(Reason::OutOfRange),
            "{name}"
        );
    }
    // log_term above the bound (and so above the message's term), and at it.
    let mut m = msg(MessageType::MsgHeartbeatResp, 2, 1, MAX);
    m.log_term = MAX + 1;
    assert_eq!(
        refused(&mut follower(), m.clone()),
        Some(Reason::OutOfRange)
    );
    m.log_term = MAX;
    assert_ne!(refused(&mut follower(), m), Some(Reason::OutOfRange));
    // Entries and snapshots.
    let m = app(2, 1, MAX, 1, vec![ent(MAX + 1, 1)]);
    assert_eq!(refused(&mut follower(), m), Some(Reason::OutOfRange));
    let m = app(2, 1, MAX - 1, 1, vec![ent(MAX, 1)]);
    assert_ne!(refused(&mut follower(), m), Some(Reason::OutOfRange));
    let mut m = app(2, MAX, 1, 1, vec![ent(2, MAX)]);
    m.term = MAX;
    assert_ne!(refused(&mut follower(), m), Some(Reason::OutOfRange));
    let mut m = msg(MessageType::MsgSnap, 2, 1, MAX);
    m.snapshot = Some(snap(MAX, MAX, voters(&[1, 2, 3])));
    assert_ne!(refused(&mut follower(), m), Some(Reason::OutOfRange));
    let mut m = app(2, 1, 1, 1, vec![ent(2, 1)]);
    m.term = MAX;
    m.entries[0].term = MAX + 1;
    assert_eq!(refused(&mut follower(), m), Some(Reason::TermAboveMessage));
    let mut m = msg(MessageType::MsgSnap, 2, 1, 1);
    m.snapshot = Some(snap(MAX + 1, 1, voters(&[1, 2, 3])));
    assert_eq!(refused(&mut follower(), m), Some(Reason::OutOfRange));
    let mut m = msg(MessageType::MsgSnap, 2, 1, MAX);
    m.snapshot = Some(snap(5, MAX + 1, voters(&[1, 2, 3])));
    assert_eq!(refused(&mut follower(), m), Some(Reason::TermAboveMessage));
}

#[test]
fn terms_inside_the_message() {
    let mut m = msg(MessageType::MsgApp, 2, 1, 1);
    m.log_term = 2;
    assert_eq!(refused(&mut follower(), m), Some(Reason::TermAboveMessage));
    let m = app(2, 1, 1, 1, vec![ent(2, 2)]);
    assert_eq!(refused(&mut follower(), m), Some(Reason::TermAboveMessage));
    let mut m = msg(MessageType::MsgSnap, 2, 1, 1);
    m.snapshot = Some(snap(5, 2, voters(&[1, 2, 3])));
    assert_eq!(refused(&mut follower(), m), Some(Reason::TermAboveMessage));
    // Equal terms pass.
    let m = app(2, 1, 1, 1, vec![ent(2, 1)]);
    assert_eq!(refused(&mut follower(), m), None);
}

#[test]
fn entries_and_fields_of_each_type() {
    let mut m = app(2, 1, 1, 1, vec![ent(2, 1)]);
    m.entries[0].r#type = 77;
    assert_eq!(refused(&mut follower(), m), Some(Reason::UnknownEntryType));
    let mut m = app(2, 1, 1, 1, vec![ent(2, 1)]);
    m.entries[0].r#type = EntryType::EntryConfChangeV2 as i32;
    assert_ne!(refused(&mut follower(), m), Some(Reason::UnknownEntryType));
    let mut m = msg(MessageType::MsgHeartbeat, 2, 1, 1);
    m.responses = vec![Message::default()];
    assert_eq!(
        refused(&mut follower(), m),
        Some(Reason::UnexpectedResponses)
    );
    let m = msg(MessageType::MsgProp, 2, 1, 0);
    assert_eq!(
        refused(&mut leader(), m.clone()),
        Some(Reason::EmptyProposal)
    );
    // Whatever the role: a candidate refuses it for its shape, not for having no leader.
    let mut c = follower();
    c.campaign().unwrap();
    assert_eq!(refused(&mut c, m), Some(Reason::EmptyProposal));
    for n in [0, 2] {
        let mut m = msg(MessageType::MsgReadIndex, 2, 1, 0);
        m.entries = vec![Entry::default(); n];
        assert_eq!(refused(&mut leader(), m), Some(Reason::MalformedReadIndex));
        let mut m = msg(MessageType::MsgReadIndexResp, 2, 1, 1);
        m.entries = vec![Entry::default(); n];
        assert_eq!(
            refused(&mut follower(), m),
            Some(Reason::MalformedReadIndexResp)
        );
    }
    let mut m = msg(MessageType::MsgReadIndex, 2, 1, 0);
    m.entries = vec![Entry::default()];
    assert_eq!(refused(&mut leader(), m), None);
}

#[test]
fn append_shape() {
    let m = app(2, 1, 1, 1, vec![ent(3, 1)]);
    assert_eq!(
        refused(&mut follower(), m),
        Some(Reason::NonContiguousEntries)
    );
    let m = app(2, 1, 1, 1, vec![ent(2, 1), ent(2, 1)]);
    assert_eq!(
        refused(&mut follower(), m),
        Some(Reason::NonContiguousEntries)
    );
    let m = app(2, 1, 1, 1, vec![ent(2, 0)]);
    assert_eq!(
        refused(&mut follower(), m),
        Some(Reason::EntryTermsDecrease)
    );
    let m = app(2, 2, 1, 2, vec![ent(2, 1)]);
    assert_eq!(
        refused(&mut follower(), m),
        Some(Reason::EntryTermsDecrease)
    );
    let m = app(2, 2, 1, 1, vec![ent(2, 2), ent(3, 1)]);
    assert_eq!(
        refused(&mut follower(), m),
        Some(Reason::EntryTermsDecrease)
    );
    let m = app(2, 2, 1, 1, vec![ent(2, 1), ent(3, 2), ent(4, 2)]);
    assert_eq!(refused(&mut follower(), m), None);
}

#[test]
fn acknowledgements_past_the_leaders_log() {
    let mut n = leader();
    let last = n.last_index();
    let t = n.term();
    let mut m = msg(MessageType::MsgAppResp, 2, 1, t);
    m.index = last + 1;
    assert_eq!(refused(&mut n, m.clone()), Some(Reason::AckPastLog));
    // A rejection, another term, or a node that is not leading: not this rule.
    let mut r = m.clone();
    r.reject = true;
    r.reject_hint = last;
    assert_eq!(refused(&mut n, r), None);
    let mut older = m.clone();
    older.term = t + 1;
    assert_ne!(refused(&mut leader(), older), Some(Reason::AckPastLog));
    assert_ne!(
        refused(&mut follower(), m.clone()),
        Some(Reason::AckPastLog)
    );
    m.index = last;
    assert_eq!(refused(&mut n, m), None);
}

#[test]
fn snapshots() {
    let mut m = msg(MessageType::MsgSnap, 2, 1, 1);
    assert_eq!(
        refused(&mut follower(), m.clone()),
        Some(Reason::MissingSnapshot)
    );
    m.snapshot = Some(snap(0, 1, voters(&[1, 2, 3])));
    assert_eq!(
        refused(&mut follower(), m.clone()),
        Some(Reason::MissingSnapshot)
    );
    m.snapshot = Some(snap(5, 0, voters(&[1, 2, 3])));
    assert_eq!(
        refused(&mut follower(), m.clone()),
        Some(Reason::MissingSnapshot)
    );
    // Far ahead of the log: the bound is last index + MAX_TERM_JUMP.
    let last = follower().last_index();
    m.snapshot = Some(snap(last + MAX_TERM_JUMP + 1, 1, voters(&[1, 2, 3])));
    assert_eq!(
        refused(&mut follower(), m.clone()),
        Some(Reason::SnapshotTooFarAhead)
    );
    m.snapshot = Some(snap(last + MAX_TERM_JUMP, 1, voters(&[1, 2, 3])));
    assert_eq!(refused(&mut follower(), m.clone()), None);
    // A configuration that is invalid, or does not name this node.
    let bad = ConfState {
        voters: vec![1, 2],
        learners: vec![2],
        ..Default::default()
    };
    m.snapshot = Some(snap(5, 1, bad));
    assert_eq!(
        refused(&mut follower(), m.clone()),
        Some(Reason::InvalidConfState)
    );
    m.snapshot = Some(snap(5, 1, voters(&[2, 3])));
    assert_eq!(
        refused(&mut follower(), m.clone()),
        Some(Reason::InvalidConfState)
    );
    // Named as a learner, or as an outgoing voter: fine.
    let learner = ConfState {
        voters: vec![2, 3],
        learners: vec![1],
        ..Default::default()
    };
    m.snapshot = Some(snap(5, 1, learner));
    assert_eq!(refused(&mut follower(), m.clone()), None);
    let outgoing = ConfState {
        voters: vec![2, 3],
        voters_outgoing: vec![1, 2, 3],
        ..Default::default()
    };
    m.snapshot = Some(snap(5, 1, outgoing));
    assert_eq!(refused(&mut follower(), m), None);
}

#[test]
fn timeout_now_only_from_the_leader_at_its_term() {
    let m = msg(MessageType::MsgTimeoutNow, 3, 1, 1);
    assert_eq!(
        refused(&mut led(), m),
        Some(Reason::TimeoutNowNotFromLeader)
    );
    let m = msg(MessageType::MsgTimeoutNow, 2, 1, 2);
    assert_eq!(
        refused(&mut led(), m),
        Some(Reason::TimeoutNowNotFromLeader)
    );
    let m = msg(MessageType::MsgTimeoutNow, 2, 1, 1);
    let mut n = led();
    assert_eq!(refused(&mut n, m), None);
    assert_eq!(n.role(), StateRole::Candidate);
}

#[test]
fn term_jumps() {
    // A member: up to MAX_TERM_JUMP above this node's term.
    let t = follower().term();
    let m = msg(MessageType::MsgHeartbeat, 2, 1, t + MAX_TERM_JUMP + 1);
    assert_eq!(refused(&mut follower(), m), Some(Reason::TermTooFarAhead));
    let mut n = follower();
    let m = msg(MessageType::MsgHeartbeat, 2, 1, t + MAX_TERM_JUMP);
    assert_eq!(refused(&mut n, m), None);
    assert_eq!(n.term(), t + MAX_TERM_JUMP);
    // A stranger: up to MAX_UNCONFIRMED_TERM_JUMP above the highest term heard from a member.
    let m = msg(
        MessageType::MsgHeartbeat,
        STRANGER,
        1,
        t + MAX_UNCONFIRMED_TERM_JUMP + 1,
    );
    assert_eq!(refused(&mut follower(), m), Some(Reason::TermTooFarAhead));
    let mut n = follower();
    let m = msg(
        MessageType::MsgHeartbeat,
        STRANGER,
        1,
        t + MAX_UNCONFIRMED_TERM_JUMP,
    );
    assert_eq!(refused(&mut n, m), None);
    assert_eq!(n.term(), t + MAX_UNCONFIRMED_TERM_JUMP);
    // That stranger's term is not confirmed: another jump from there is refused.
    let m = msg(
        MessageType::MsgHeartbeat,
        STRANGER,
        1,
        t + MAX_UNCONFIRMED_TERM_JUMP + 2,
    );
    assert_eq!(refused(&mut n, m), Some(Reason::TermTooFarAhead));
    // A member's term is: after it, a stranger may jump from there.
    let mut n = follower();
    let m = msg(MessageType::MsgHeartbeat, 2, 1, t + 10);
    assert_eq!(refused(&mut n, m), None);
    let m = msg(
        MessageType::MsgHeartbeat,
        STRANGER,
        1,
        t + 10 + MAX_UNCONFIRMED_TERM_JUMP,
    );
    assert_eq!(refused(&mut n, m), None);
}

#[test]
fn strangers() {
    // A voter that follows a leader refuses a stranger's vote request...
    let mut m = msg(MessageType::MsgVote, STRANGER, 1, 2);
    m.index = 10;
    m.log_term = 1;
    assert_eq!(
        refused(&mut led(), m.clone()),
        Some(Reason::VoteFromNonMember)
    );
    let mut pre = m.clone();
    pre.r#type = MessageType::MsgPreVote as i32;
    assert_eq!(refused(&mut led(), pre), Some(Reason::VoteFromNonMember));
    // ...a leaderless one handles it as etcd does.
    let mut n = follower();
    assert_eq!(refused(&mut n, m.clone()), None);
    assert_eq!(n.term(), 2);
    // So does a learner that follows a leader: it may be a voter of a newer configuration.
    let mut learner = RawNode::new(
        &config(4),
        crate::common::storage_with_voters(&[1, 2, 3], &[4]),
    )
    .unwrap();
    let mut to_learner = m.clone();
    to_learner.to = 4;
    let mut hb = msg(MessageType::MsgHeartbeat, 2, 4, 1);
    hb.commit = 1;
    learner.step(hb).unwrap();
    assert_eq!(learner.leader_id(), 2);
    assert_eq!(refused(&mut learner, to_learner), None);
    // And a voter whose log holds a configuration change it has not applied (it may name
    // the candidate).
    let mut n = led();
    let cc = raftcore::raftpb::ConfChange {
        r#type: raftcore::raftpb::ConfChangeType::ConfChangeAddNode as i32,
        node_id: STRANGER,
        ..Default::default()
    };
    let mut e = ent(2, 1);
    e.r#type = EntryType::EntryConfChange as i32;
    e.data = prost::Message::encode_to_vec(&cc).into();
    n.step(app(2, 1, 1, 1, vec![e])).unwrap();
    assert_eq!(n.leader_id(), 2);
    assert_eq!(refused(&mut n, m), None);
    // A stranger's snapshot must name it, or another voter this node knows, as a voter.
    let mut s = msg(MessageType::MsgSnap, STRANGER, 1, 1);
    s.snapshot = Some(snap(5, 1, voters(&[1, 7])));
    assert_eq!(
        refused(&mut follower(), s.clone()),
        Some(Reason::SnapshotFromNonMember)
    );
    s.snapshot = Some(snap(5, 1, voters(&[1, STRANGER])));
    assert_eq!(refused(&mut follower(), s.clone()), None);
    s.snapshot = Some(snap(5, 1, voters(&[1, 3])));
    assert_eq!(refused(&mut follower(), s.clone()), None);
    let joint = ConfState {
        voters: vec![1, 7],
        voters_outgoing: vec![1, STRANGER],
        ..Default::default()
    };
    s.snapshot = Some(snap(5, 1, joint));
    assert_eq!(refused(&mut follower(), s), None);
    // A stranger does not end this node's campaign in the same term.
    let mut c = follower();
    c.campaign().unwrap();
    let t = c.term();
    assert_eq!(c.role(), StateRole::Candidate);
    let m = app(STRANGER, t, 1, 1, vec![]);
    assert_eq!(refused(&mut c, m), Some(Reason::LeaderNotMember));
    let m = msg(MessageType::MsgHeartbeat, STRANGER, 1, t);
    assert_eq!(refused(&mut c, m), Some(Reason::LeaderNotMember));
    // At a higher term it may (its configuration may be newer).
    let m = msg(MessageType::MsgHeartbeat, STRANGER, 1, t + 1);
    assert_eq!(refused(&mut c, m), None);
    assert_eq!(c.role(), StateRole::Follower);
    // Leadership requests and responses from strangers.
    let m = msg(MessageType::MsgTransferLeader, STRANGER, 1, 1);
    assert_eq!(refused(&mut leader(), m), Some(Reason::NotAMember));
    let m = msg(MessageType::MsgAppResp, STRANGER, 1, 1);
    assert!(matches!(leader().step(m), Err(Error::StepPeerNotFound)));
}

#[test]
fn reasons_have_distinct_names() {
    let all = [
        Reason::UnknownType,
        Reason::NoSender,
        Reason::FromSelf,
        Reason::WrongRecipient,
        Reason::MissingTerm,
        Reason::OutOfRange,
        Reason::TermTooFarAhead,
        Reason::TermAboveMessage,
        Reason::UnknownEntryType,
        Reason::UnexpectedResponses,
        Reason::EmptyProposal,
        Reason::MalformedReadIndex,
        Reason::MalformedReadIndexResp,
        Reason::MissingSnapshot,
        Reason::NonContiguousEntries,
        Reason::EntryTermsDecrease,
        Reason::RewritesCommitted,
        Reason::SnapshotTooFarAhead,
        Reason::AckPastLog,
        Reason::InvalidConfState,
        Reason::VoteFromNonMember,
        Reason::SnapshotFromNonMember,
        Reason::LeaderNotMember,
        Reason::TimeoutNowNotFromLeader,
        Reason::NotAMember,
    ];
    let names: std::collections::BTreeSet<_> = all.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), all.len());
    for r in all {
        assert_eq!(r.to_string(), r.as_str());
        assert!(r
            .as_str()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_'));
    }
    assert_eq!(Reason::AckPastLog.as_str(), "ack_past_log");
}

/// The bound on a stranger's term is on terms above the node's own: a node whose own term
/// went past the bound (a stranger moved it to the bound, then it campaigned) still hears a
/// stranger at its own term under the usual rules.
#[test]
fn the_strangers_term_bound_applies_only_above_the_nodes_term() {
    let mut n = follower();
    let bound = n.term() + MAX_UNCONFIRMED_TERM_JUMP;
    // A stranger (9) moves the term exactly to the bound: allowed.
    n.step(msg(MessageType::MsgHeartbeat, 9, 1, bound)).unwrap();
    assert_eq!(n.term(), bound);
    n.campaign().unwrap();
    assert_eq!(n.term(), bound + 1);
    assert_eq!(n.role(), StateRole::Candidate);
    // Another stranger's vote request at the node's own term: handled (refused as a vote,
    // since the candidate voted for itself), not rejected by the gate.
    let mut v = msg(MessageType::MsgVote, 8, 1, bound + 1);
    v.index = 1;
    v.log_term = 1;
    assert_eq!(refused(&mut n, v), None);
    assert_eq!(n.term(), bound + 1);
}
