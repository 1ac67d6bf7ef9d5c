//! `RawNode::recycle`: a handled Ready handed back lends its vectors to the next Readies; what
//! is left in it is dropped; large vectors are not kept.

use bytes::Bytes;
use raftcore::raftpb::{Entry, Message, MessageType};
use raftcore::{Config, MemStorage, RawNode, Ready, StateRole};

/// Node 1 of {1, 2}, leader at term 1 with its empty entry committed (node 2 acknowledged
/// it), every Ready handled and recycled.
fn leader() -> RawNode<MemStorage> {
    let mut n = RawNode::new(
        &Config::new(1),
        crate::common::storage_with_voters(&[1, 2], &[]),
    )
    .unwrap();
    n.campaign().unwrap();
    handle(&mut n);
    let mut m = crate::common::msg(MessageType::MsgVoteResp, 2, 1, 1);
    m.reject = false;
    n.step(m).unwrap();
    handle(&mut n);
    assert_eq!(n.role(), StateRole::Leader);
    ack(&mut n);
    assert_eq!(n.commit(), n.last_index());
    n
}

/// Handles one Ready: persists it, advances, recycles it; returns what it held.
fn handle(n: &mut RawNode<MemStorage>) -> (Vec<Entry>, Vec<Entry>, Vec<Message>) {
    let mut rd = n.ready();
    let got = take_contents(n, &mut rd);
    n.advance().unwrap();
    n.recycle(rd);
    got
}

fn take_contents(
    n: &mut RawNode<MemStorage>,
    rd: &mut Ready,
) -> (Vec<Entry>, Vec<Entry>, Vec<Message>) {
    if let Some(hs) = rd.hard_state {
        n.store_mut().set_hard_state(hs);
    }
    n.store_mut().append(&rd.entries).unwrap();
    let mut msgs: Vec<Message> = rd.messages.drain(..).collect();
    msgs.append(&mut rd.persisted_messages);
    (
        rd.entries.drain(..).collect(),
        rd.committed_entries.drain(..).collect(),
        msgs,
    )
}

/// Node 2 acknowledges everything the leader has.
fn ack(n: &mut RawNode<MemStorage>) {
    let mut m = crate::common::msg(MessageType::MsgAppResp, 2, 1, n.term());
    m.index = n.last_index();
    n.step(m).unwrap();
    handle(n);
}

/// Proposes `data`, persists it and has node 2 acknowledge it; returns the Ready that holds
/// it as committed entries, unhandled.
fn commit_one(n: &mut RawNode<MemStorage>, data: &'static str) -> Ready {
    n.propose(Bytes::from_static(data.as_bytes())).unwrap();
    let (entries, committed, _) = handle(n);
    assert_eq!(entries.len(), 1);
    assert!(committed.is_empty());
    let mut m = crate::common::msg(MessageType::MsgAppResp, 2, 1, n.term());
    m.index = n.last_index();
    n.step(m).unwrap();
    let rd = n.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    assert_eq!(
        rd.committed_entries[0].data,
        Bytes::from_static(data.as_bytes())
    );
    rd
}

#[test]
fn a_recycled_readys_vectors_serve_the_next_ready() {
    let mut n = leader();
    let mut rd = commit_one(&mut n, "a");
    take_contents(&mut n, &mut rd);
    rd.committed_entries.reserve(100);
    let (ptr, cap) = (
        rd.committed_entries.as_ptr(),
        rd.committed_entries.capacity(),
    );
    n.advance().unwrap();
    n.recycle(rd);
    // The next Readies (one with the new entry, one with it committed) use that vector for
    // their committed entries: the first leaves it empty and keeps it for the second.
    let mut rd = commit_one(&mut n, "b");
    assert_eq!(rd.committed_entries.as_ptr(), ptr);
    assert_eq!(rd.committed_entries.capacity(), cap);
    take_contents(&mut n, &mut rd);
    n.advance().unwrap();
    n.recycle(rd);
}

#[test]
fn what_is_left_in_a_recycled_ready_is_dropped() {
    let mut n = leader();
    let rd = commit_one(&mut n, "a");
    let committed = rd.committed_entries.clone();
    // Persisted, then recycled without taking the committed entries out (applied by
    // reading them in place).
    if let Some(hs) = rd.hard_state {
        n.store_mut().set_hard_state(hs);
    }
    n.advance().unwrap();
    n.recycle(rd);
    let rd = commit_one(&mut n, "b");
    assert_eq!(rd.committed_entries.len(), 1);
    assert_ne!(rd.committed_entries[0], committed[0]);
    assert_eq!(rd.committed_entries[0].index, committed[0].index + 1);
}

#[test]
fn a_large_vector_is_not_kept() {
    let mut n = leader();
    let mut rd = commit_one(&mut n, "a");
    take_contents(&mut n, &mut rd);
    rd.committed_entries.reserve(1 << 16);
    let cap = rd.committed_entries.capacity();
    n.advance().unwrap();
    n.recycle(rd);
    let rd = commit_one(&mut n, "b");
    assert!(rd.committed_entries.capacity() < cap);
}

#[test]
fn recycled_messages_buffers_carry_the_next_messages() {
    let mut n = leader();
    n.propose(Bytes::from_static(b"x")).unwrap();
    let mut rd = n.ready();
    let (_, _, msgs) = take_contents(&mut n, &mut rd);
    assert!(msgs
        .iter()
        .any(|m| m.msg_type() == Some(MessageType::MsgApp)));
    rd.messages.reserve(50);
    let (ptr, cap) = (rd.messages.as_ptr(), rd.messages.capacity());
    n.advance().unwrap();
    n.recycle(rd);
    n.propose(Bytes::from_static(b"y")).unwrap();
    let rd = n.ready();
    assert_eq!(rd.messages.as_ptr(), ptr);
    assert_eq!(rd.messages.capacity(), cap);
    assert!(rd
        .messages
        .iter()
        .any(|m| m.msg_type() == Some(MessageType::MsgApp)
            && m.entries.last().map(|e| &e.data[..]) == Some(&b"y"[..])));
}

#[test]
fn a_ready_dropped_without_recycling_does_not_take_the_spare_vectors_along() {
    let mut n = leader();
    let mut rd = commit_one(&mut n, "a");
    take_contents(&mut n, &mut rd);
    rd.committed_entries.reserve(100);
    let ptr = rd.committed_entries.as_ptr();
    n.advance().unwrap();
    n.recycle(rd);
    // A Ready with no committed entries, handled and dropped.
    n.propose(Bytes::from_static(b"b")).unwrap();
    let mut rd = n.ready();
    assert!(rd.committed_entries.is_empty());
    take_contents(&mut n, &mut rd);
    n.advance().unwrap();
    drop(rd);
    let mut m = crate::common::msg(MessageType::MsgAppResp, 2, 1, n.term());
    m.index = n.last_index();
    n.step(m).unwrap();
    let rd = n.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    assert_eq!(rd.committed_entries.as_ptr(), ptr);
}

#[test]
fn a_ready_without_entries_lets_recycled_vectors_go() {
    let mut n = leader();
    let mut rd = commit_one(&mut n, "a");
    take_contents(&mut n, &mut rd);
    rd.committed_entries.reserve(100);
    n.advance().unwrap();
    n.recycle(rd);
    // Heartbeats only: an idle group's Ready. Handled and recycled.
    n.tick();
    assert!(n.has_ready());
    let (entries, committed, msgs) = handle(&mut n);
    assert!(entries.is_empty() && committed.is_empty());
    assert!(msgs
        .iter()
        .all(|m| m.msg_type() == Some(MessageType::MsgHeartbeat)));
    // The next busy Ready gets a new vector, not the reserved one.
    let rd = commit_one(&mut n, "b");
    assert!(rd.committed_entries.capacity() < 100);
}

#[test]
fn a_followers_recycled_persisted_messages_carry_its_next_acknowledgement() {
    let mut n = RawNode::new(
        &Config::new(2),
        crate::common::storage_with_voters(&[1, 2], &[]),
    )
    .unwrap();
    let app = |index: u64| {
        let mut m = crate::common::msg(MessageType::MsgApp, 1, 2, 1);
        m.index = index - 1;
        m.log_term = 1;
        m.entries = vec![Entry {
            index,
            term: 1,
            data: Bytes::from_static(b"e"),
            ..Default::default()
        }];
        m
    };
    n.step(app(2)).unwrap();
    let mut rd = n.ready();
    let (entries, _, msgs) = take_contents(&mut n, &mut rd);
    assert_eq!(entries.len(), 1);
    assert!(msgs
        .iter()
        .any(|m| m.msg_type() == Some(MessageType::MsgAppResp)));
    rd.persisted_messages.reserve(20);
    let (ptr, cap) = (
        rd.persisted_messages.as_ptr(),
        rd.persisted_messages.capacity(),
    );
    n.advance().unwrap();
    n.recycle(rd);
    n.step(app(3)).unwrap();
    let mut rd = n.ready();
    assert_eq!(rd.persisted_messages.len(), 1);
    assert_eq!(rd.persisted_messages.as_ptr(), ptr);
    assert_eq!(rd.persisted_messages.capacity(), cap);
    take_contents(&mut n, &mut rd);
    n.advance().unwrap();
    n.recycle(rd);
    // A heartbeat that commits entry 2: a Ready with committed entries and no
    // acknowledgement to persist. Handled, then dropped without recycling: the recycled
    // vector it did not need stays with the node.
    let mut hb = crate::common::msg(MessageType::MsgHeartbeat, 1, 2, 1);
    hb.commit = 2;
    n.step(hb).unwrap();
    let mut rd = n.ready();
    assert!(!rd.committed_entries.is_empty());
    assert_eq!(rd.committed_entries.last().unwrap().index, 2);
    assert!(rd.persisted_messages.is_empty());
    take_contents(&mut n, &mut rd);
    n.advance().unwrap();
    drop(rd);
    n.step(app(4)).unwrap();
    let rd = n.ready();
    assert_eq!(rd.persisted_messages.len(), 1);
    assert_eq!(rd.persisted_messages.as_ptr(), ptr);
    assert_eq!(rd.persisted_messages.capacity(), cap);
}
