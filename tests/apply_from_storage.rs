//! `Config::apply_from_storage` and `Config::hand_over_entries`: a node that leaves its
//! committed entries in the storage for the application to read, or moves its new entries
//! into the Ready, applies exactly what a node handing out clones applies, in the same
//! Readies, and sends exactly the same messages.

mod common;

use bytes::Bytes;
use common::{config, deliver_all, lose_or_reorder, storage_with_voters, Cluster, Lcg};
use raftcore::raftpb::{ConfChange, ConfChangeType, Entry, Message, MessageType};
use raftcore::testkit::{self, ConfOutcome, StateMachine};
use raftcore::{AppendMode, Config, MemStorage, RawNode, Ready};

/// Records every applied entry: index, term, payload and whether it was a conf change.
#[derive(Default)]
struct Recorder(Vec<(u64, u64, Bytes, bool)>);

impl StateMachine for Recorder {
    type Error = std::convert::Infallible;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Result<(), Self::Error> {
        self.0
            .push((e.index, e.term, e.data.clone(), conf.is_some()));
        Ok(())
    }
}

/// What a run produced: per node, the applied entries; the messages of every Ready in order;
/// the committed range of every Ready that had one.
#[derive(Debug, PartialEq)]
struct Run {
    applied: Vec<Vec<(u64, u64, Bytes, bool)>>,
    messages: Vec<String>,
    ranges: Vec<(u64, (u64, u64))>,
}

/// A 3-node group (a fourth added by a conf change midway) driven through ticks, proposals,
/// loss and reordering by a fixed schedule, each Ready handled by `testkit::handle_ready`,
/// compacting now and then late in the run. `max_apply` is the committed bytes per Ready.
fn run(mode: AppendMode, from_storage: bool, hand_over: bool, max_apply: u64) -> Run {
    let cfg = |id: u64| -> Config {
        let mut c = config(id, mode);
        c.seed = 99;
        c.pre_vote = true;
        c.max_committed_size_per_ready = max_apply;
        c.apply_from_storage = from_storage;
        c.hand_over_entries = hand_over;
        c
    };
    let mut nodes: Vec<RawNode<MemStorage>> = (1..=4)
        .map(|id| {
            // Node 4 starts as no member and joins by the conf change below.
            RawNode::new(&cfg(id), storage_with_voters(&[1, 2, 3], &[])).unwrap()
        })
        .collect();
    let mut sms: Vec<Recorder> = (0..4).map(|_| Recorder::default()).collect();
    let mut sched = Lcg(11);
    let mut queue: Vec<Message> = Vec::new();
    let mut out = Run {
        applied: Vec::new(),
        messages: Vec::new(),
        ranges: Vec::new(),
    };
    for step in 0..4000u64 {
        if step == 1500 || step == 2000 {
            // Add node 4 (again, should the first proposal have been lost).
            for n in nodes.iter_mut().take(3) {
                let cc = ConfChange {
                    r#type: ConfChangeType::ConfChangeAddNode as i32,
                    node_id: 4,
                    ..Default::default()
                };
                let _ = n.propose_conf_change(cc);
            }
        }
        match sched.next() % 10 {
            0..=2 => {
                let i = (sched.next() % 4) as usize;
                nodes[i].tick();
            }
            3 | 4 => {
                let i = (sched.next() % 3) as usize;
                let _ = nodes[i].propose(Bytes::from(format!("p{step}")));
            }
            5 if !queue.is_empty() => lose_or_reorder(&mut sched, &mut queue),
            6 if step > 2500 => {
                // Compact a node's log up to what every node applied, now and then (no node
                // then needs a snapshot).
                let i = (sched.next() % 4) as usize;
                let applied = nodes.iter().map(|n| n.basic_status().applied).min();
                let s = nodes[i].store_mut();
                let first = raftcore::Storage::first_index(s).unwrap();
                if let Some(a) = applied.filter(|&a| a > first + 20) {
                    s.compact(a - 10).unwrap();
                }
            }
            _ => deliver_all(&mut nodes, &mut queue),
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            if !n.has_ready() {
                continue;
            }
            let rd = n.ready();
            if from_storage {
                assert!(rd.committed_entries.is_empty());
            } else if let (Some(f), Some(l)) =
                (rd.committed_entries.first(), rd.committed_entries.last())
            {
                assert_eq!(rd.committed_range, Some((f.index, l.index)));
            } else {
                assert_eq!(rd.committed_range, None);
            }
            if let Some(r) = rd.committed_range {
                out.ranges.push((n.id(), r));
            }
            let mut sent = Vec::new();
            testkit::handle_ready(n, rd, &mut sms[i], &mut sent).unwrap();
            out.messages.push(format!("{} {sent:?}", n.id()));
            queue.extend(sent);
        }
    }
    out.applied = sms.into_iter().map(|r| r.0).collect();
    out
}

#[test]
fn applying_from_storage_and_handing_over_apply_and_send_what_clones_would() {
    for mode in [AppendMode::Batched, AppendMode::EtcdExact] {
        // A tight apply budget cuts committed entries across Readies and storage chunks.
        for max_apply in [u64::MAX, 64] {
            let clones = run(mode, false, false, max_apply);
            let applied: usize = clones.applied.iter().map(Vec::len).sum();
            assert!(applied > 500, "{mode:?}: the schedule applies ({applied})");
            assert!(
                clones.applied[3].iter().any(|a| a.3),
                "{mode:?}: node 4 joined and applied the conf change"
            );
            assert!(
                clones.ranges.iter().any(|(_, (f, l))| l > f),
                "{mode:?}: some Ready applies several entries"
            );
            for (from_storage, hand_over) in [(true, false), (false, true), (true, true)] {
                let other = run(mode, from_storage, hand_over, max_apply);
                assert_eq!(
                    clones, other,
                    "{mode:?} max_apply {max_apply} apply_from_storage {from_storage} \
                     hand_over_entries {hand_over}"
                );
            }
        }
    }
}

#[test]
fn both_need_synchronous_writes() {
    for hand_over in [false, true] {
        let mut c = Config::new(1);
        c.apply_from_storage = !hand_over;
        c.hand_over_entries = hand_over;
        c.async_storage_writes = true;
        assert!(c.validate().is_err());
        c.async_storage_writes = false;
        assert!(c.validate().is_ok());
    }
}

// ------------------------------------------------------------------------------------------
// The window between `ready()` and the write: a node that handed its entries over reads them
// back only from the storage, and waits while the storage does not hold them.

fn msg_app(
    from: u64,
    term: u64,
    prev: (u64, u64),
    ents: &[(u64, &'static str)],
    commit: u64,
) -> Message {
    let (index, log_term) = prev;
    Message {
        r#type: MessageType::MsgApp as i32,
        from,
        to: 2,
        term,
        index,
        log_term,
        commit,
        entries: ents
            .iter()
            .enumerate()
            .map(|(k, &(t, data))| Entry {
                index: index + 1 + k as u64,
                term: t,
                data: Bytes::from_static(data.as_bytes()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Writes a Ready's entries and hard state to the node's storage.
fn persist(n: &mut RawNode<MemStorage>, rd: &Ready) {
    let s = n.store_mut();
    s.append(&rd.entries).unwrap();
    if let Some(hs) = rd.hard_state {
        s.set_hard_state(hs);
    }
}

fn payloads(ents: &[Entry]) -> Vec<(u64, u64, Bytes)> {
    ents.iter()
        .map(|e| (e.index, e.term, e.data.clone()))
        .collect()
}

fn follower(hand_over: bool, storage: MemStorage) -> RawNode<MemStorage> {
    let mut c = config(2, AppendMode::Batched);
    c.hand_over_entries = hand_over;
    RawNode::new(&c, storage).unwrap()
}

#[test]
fn entries_committed_before_they_are_written_wait_for_the_write() {
    let abc = |t| {
        vec![
            (2, t, Bytes::from("a")),
            (3, t, Bytes::from("b")),
            (4, t, Bytes::from("c")),
        ]
    };
    for hand_over in [false, true] {
        let mut n = follower(hand_over, storage_with_voters(&[1, 2, 3], &[]));
        n.step(msg_app(1, 2, (1, 1), &[(2, "a"), (2, "b"), (2, "c")], 1))
            .unwrap();
        let rd1 = n.ready();
        assert_eq!(
            payloads(&rd1.entries),
            abc(2),
            "the Ready carries the payloads"
        );
        // The leader commits them before this node wrote them.
        n.step(msg_app(1, 2, (4, 2), &[], 4)).unwrap();
        let rd2 = n.ready();
        if hand_over {
            // They are not in the storage yet: applying them waits.
            assert!(rd2.committed_entries.is_empty());
        } else {
            // Shared with the node: handed out at once (etcd's Ready).
            assert_eq!(payloads(&rd2.committed_entries), abc(2));
        }
        persist(&mut n, &rd1);
        persist(&mut n, &rd2);
        n.advance().unwrap();
        if hand_over {
            let rd3 = n.ready();
            assert_eq!(
                payloads(&rd3.committed_entries),
                abc(2),
                "read back from the storage"
            );
            n.advance().unwrap();
        }
        assert!(!n.has_ready());
    }
}

#[test]
fn older_entries_the_storage_still_holds_are_never_read_for_handed_over_ones() {
    // The storage holds entries 2..4 of term 2, 2 committed. A leader of term 3 replaces 3 and
    // 4 and commits them before this node wrote the new ones.
    let mut s = storage_with_voters(&[1, 2, 3], &[]);
    let old: Vec<Entry> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(k, d)| Entry {
            index: 2 + k as u64,
            term: 2,
            data: Bytes::from_static(d.as_bytes()),
            ..Default::default()
        })
        .collect();
    s.append(&old).unwrap();
    s.set_hard_state(raftcore::raftpb::HardState {
        term: 2,
        vote: 0,
        commit: 2,
    });
    let mut n = follower(true, s);
    n.step(msg_app(3, 3, (2, 2), &[(3, "x"), (3, "y")], 2))
        .unwrap();
    let rd1 = n.ready();
    assert_eq!(rd1.entries.len(), 2);
    n.step(msg_app(3, 3, (4, 3), &[], 4)).unwrap();
    let rd2 = n.ready();
    assert!(
        rd2.committed_entries.is_empty(),
        "term-2 entries read where the term-3 ones belong: {:?}",
        rd2.committed_entries
    );
    persist(&mut n, &rd1);
    persist(&mut n, &rd2);
    n.advance().unwrap();
    let rd3 = n.ready();
    assert_eq!(
        payloads(&rd3.committed_entries),
        vec![(3, 3, Bytes::from("x")), (4, 3, Bytes::from("y"))]
    );
}

#[test]
fn a_leader_resends_handed_over_entries_once_they_are_written() {
    for mode in [AppendMode::Batched, AppendMode::EtcdExact] {
        let configs = (1..=3)
            .map(|id| {
                let mut c = config(id, mode);
                c.hand_over_entries = true;
                c
            })
            .collect();
        let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
        c.campaign(1);
        let last = c.node(1).basic_status().hard_state.commit;
        let term = c.term(1);
        c.node(1).propose(Bytes::from_static(b"p")).unwrap();
        let rd = c.node(1).ready();
        assert_eq!(rd.entries.len(), 1);
        assert!(
            rd.messages
                .iter()
                .any(|m| m.to == 2 && m.entries.iter().any(|e| e.data == "p")),
            "{mode:?}: the first append carries the payload"
        );
        // Before the leader wrote its entry, follower 2 says it lacks it (as after a lost
        // message): the leader must go back to index last + 1, which it handed over.
        c.node(1)
            .step(Message {
                r#type: MessageType::MsgAppResp as i32,
                from: 2,
                to: 1,
                term,
                index: last + 1,
                reject: true,
                reject_hint: last,
                log_term: term,
                ..Default::default()
            })
            .unwrap();
        let rd2 = c.node(1).ready();
        let to_2: Vec<&Message> = rd2.messages.iter().filter(|m| m.to == 2).collect();
        assert!(
            to_2.iter()
                .all(|m| m.r#type != MessageType::MsgSnap as i32 && m.entries.is_empty()),
            "{mode:?}: neither a snapshot nor an append without the entry written: {to_2:?}"
        );
        persist(c.node(1), &rd);
        persist(c.node(1), &rd2);
        c.node(1).advance().unwrap();
        let rd3 = c.node(1).ready();
        assert!(
            rd3.messages.iter().any(|m| m.to == 2
                && m.r#type == MessageType::MsgApp as i32
                && m.entries
                    .iter()
                    .any(|e| e.index == last + 1 && e.data == "p")),
            "{mode:?}: after advance the entry goes again, read back from the storage: {:?}",
            rd3.messages
        );
    }
}
