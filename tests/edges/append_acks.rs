//! A follower's acknowledgements wait for its Ready to be persisted. When an append in the
//! same Ready rewrites entries that an earlier acknowledgement claimed, that acknowledgement is
//! taken back; the others still go.

use crate::common::msg;
use raftcore::raftpb::{Entry, Message, MessageType};
use raftcore::{Config, MemStorage, RawNode};

fn follower() -> RawNode<MemStorage> {
    let mut c = Config::new(1);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    RawNode::new(&c, crate::common::storage_with_voters(&[1, 2, 3], &[])).unwrap()
}

fn app(from: u64, term: u64, index: u64, log_term: u64, ents: &[(u64, u64)]) -> Message {
    let mut m = msg(MessageType::MsgApp, from, 1, term);
    m.index = index;
    m.log_term = log_term;
    m.commit = 1;
    m.entries = ents
        .iter()
        .map(|&(index, term)| Entry {
            index,
            term,
            ..Default::default()
        })
        .collect();
    m
}

fn acks(msgs: &[Message]) -> Vec<(u64, u64, bool)> {
    msgs.iter()
        .filter(|m| m.msg_type() == Some(MessageType::MsgAppResp))
        .map(|m| (m.to, m.index, m.reject))
        .collect()
}

#[test]
fn rewritten_entries_lose_their_ack_and_the_rest_keep_theirs() {
    let mut n = follower();
    n.step(app(2, 1, 1, 1, &[(2, 1), (3, 1), (4, 1), (5, 1)]))
        .unwrap();
    // A probe that does not match is rejected; the rejection waits in the same queue.
    n.step(app(2, 1, 9, 1, &[])).unwrap();
    n.step(app(2, 1, 5, 1, &[(6, 1), (7, 1), (8, 1)])).unwrap();
    // A new leader rewrites from 7 before the Ready is handled.
    n.step(app(3, 2, 6, 1, &[(7, 2)])).unwrap();
    let rd = n.ready();
    let mut all = rd.messages.clone();
    all.extend(rd.persisted_messages.clone());
    let got = acks(&all);
    assert!(got.contains(&(2, 5, false)), "{got:?}");
    assert!(
        got.iter().any(|&(to, _, reject)| to == 2 && reject),
        "{got:?}"
    );
    assert!(!got.contains(&(2, 8, false)), "taken back: {got:?}");
    assert!(got.contains(&(3, 7, false)), "{got:?}");
    assert_eq!(n.last_index(), 7);
    assert_eq!(n.term_at(7).unwrap(), 2);
}

/// The boundary: the newest waiting acknowledgement claims exactly the first rewritten entry.
#[test]
fn an_ack_of_exactly_the_first_rewritten_entry_is_taken_back() {
    let mut n = follower();
    n.step(app(2, 1, 1, 1, &[(2, 1), (3, 1), (4, 1), (5, 1)]))
        .unwrap();
    // A new leader rewrites entry 5, the one the waiting acknowledgement names.
    n.step(app(3, 2, 4, 1, &[(5, 2)])).unwrap();
    let rd = n.ready();
    let mut all = rd.messages.clone();
    all.extend(rd.persisted_messages.clone());
    let got = acks(&all);
    assert!(!got.contains(&(2, 5, false)), "taken back: {got:?}");
    assert!(got.contains(&(3, 5, false)), "{got:?}");
    assert_eq!(n.term_at(5).unwrap(), 2);
}

/// In batched mode the leader's own acknowledgements coalesce: a newer one replaces an older
/// one still waiting, so the storage write carries one, for the last entry.
#[test]
fn leaders_own_acks_coalesce_in_batched_mode() {
    let mut c = Config::new(1);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.max_size_per_msg = 1 << 20;
    c.async_storage_writes = true;
    let mut n = RawNode::new(&c, crate::common::storage_with_voters(&[1], &[])).unwrap();
    n.campaign().unwrap();
    // Hand the election's writes back, so that the node leads.
    for _ in 0..4 {
        let rd = n.ready();
        for m in rd.messages {
            if m.msg_type() == Some(MessageType::MsgStorageAppend) {
                let mut m = m;
                raftcore::testkit::Persist::take_from_message(&mut m)
                    .write(n.store_mut())
                    .unwrap();
                for r in m.responses {
                    n.step_local(r).unwrap();
                }
            }
        }
    }
    assert_eq!(n.role(), raftcore::StateRole::Leader);
    n.propose("a".into()).unwrap();
    n.propose("b".into()).unwrap();
    n.propose_batch(["c".into(), "d".into()]).unwrap();
    let last = n.last_index();
    let rd = n.ready();
    let write = rd
        .messages
        .iter()
        .find(|m| m.msg_type() == Some(MessageType::MsgStorageAppend))
        .expect("a storage write");
    assert_eq!(write.entries.len(), 4);
    let own: Vec<u64> = write
        .responses
        .iter()
        .filter(|m| m.msg_type() == Some(MessageType::MsgAppResp) && m.to == 1)
        .map(|m| m.index)
        .collect();
    assert_eq!(own, vec![last]);
}
