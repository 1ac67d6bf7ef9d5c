//! Catching up through snapshots: a follower cut off while the leader compacts its log comes
//! back through `MsgSnap` with the leader's state machine; stale and invalid snapshots; a
//! storage whose snapshot is temporarily unavailable.
//!
//! The state machine is the list of applied normal entries (`Cluster::applied`), carried in
//! snapshot data by `common::encode_applied`; a hash chain over it is compared as well.

mod common;

use bytes::Bytes;
use common::{config, decode_applied, encode_applied, Cluster};
use raftcore::raftpb::{
    ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
};
use raftcore::tracker::ProgressState;
use raftcore::{
    AppendMode, Error, MemStorage, RaftState, RawNode, SnapshotStatus, StateRole, Storage,
    StorageError,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

const MODES: [AppendMode; 2] = [AppendMode::Batched, AppendMode::EtcdExact];

/// FNV-1a over the applied entries, chained: the state machine's fingerprint.
fn hash_chain(applied: &[(u64, u64, Bytes)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (index, term, data) in applied {
        for b in index
            .to_le_bytes()
            .iter()
            .chain(term.to_le_bytes().iter())
            .chain(data.iter())
        {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn snaps_to(sent: &Rc<RefCell<Vec<Message>>>, to: u64) -> Vec<Message> {
    sent.borrow()
        .iter()
        .filter(|m| m.to == to)
        .cloned()
        .collect()
}

/// Records every MsgSnap node 1 sends.
fn record_snaps(c: &mut Cluster) -> Rc<RefCell<Vec<Message>>> {
    let sent: Rc<RefCell<Vec<Message>>> = Rc::default();
    let sink = sent.clone();
    c.ready_hook = Some(Box::new(move |id, rd| {
        if id == 1 {
            sink.borrow_mut().extend(
                rd.messages
                    .iter()
                    .filter(|m| m.msg_type() == Some(MessageType::MsgSnap))
                    .cloned(),
            );
        }
    }));
    sent
}

#[test]
fn cut_off_follower_catches_up_by_snapshot() {
    // Also with entries handed over: a compacted entry is a reason for a snapshot, not a wait
    // for handed-over entries.
    for (mode, hand_over) in MODES.into_iter().flat_map(|m| [(m, false), (m, true)]) {
        let configs = (1..=3)
            .map(|id| {
                let mut cfg = config(id, mode);
                cfg.hand_over_entries = hand_over;
                cfg.apply_from_storage = hand_over;
                cfg
            })
            .collect();
        let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
        let sent = record_snaps(&mut c);
        c.campaign(1);
        c.propose(1, "before").unwrap();
        c.stabilize();

        c.isolate(3);
        for i in 0..100 {
            c.propose(1, format!("e{i}")).unwrap();
            if i % 10 == 9 {
                c.stabilize();
            }
        }
        c.stabilize();
        // 1 and 2 snapshot their state machines and compact their logs.
        let s1 = c.snapshot_and_compact(1).expect("a new snapshot");
        c.snapshot_and_compact(2).expect("a new snapshot");
        let first = c.node(1).store().first_index().unwrap();
        assert_eq!(first, s1 + 1);
        let behind = c.node(3).store().last_index().unwrap();
        assert!(
            behind + 1 < first,
            "3 needs entries the leader no longer has"
        );

        c.heal();
        c.tick_and_stabilize(5);

        // A MsgSnap carried the leader's state machine to 3, and its sending was reported.
        let snaps = snaps_to(&sent, 3);
        assert!(!snaps.is_empty(), "{mode:?}: no MsgSnap sent");
        let snap = snaps[0].snapshot.clone().unwrap();
        assert_eq!(snap.index(), s1);
        assert_eq!(decode_applied(&snap.data), c.applied_of(1)[..101].to_vec());
        assert!(c
            .snap_reports
            .iter()
            .any(|&(f, t, i, s)| (f, t, i, s) == (1, 3, s1, SnapshotStatus::Finish)));
        assert_eq!(c.node(3).store().snapshot().unwrap().index(), s1);
        assert_eq!(c.node(1).progress_state(3), Some(ProgressState::Replicate));

        // Identical state machines, before and after more entries.
        for id in [2, 3] {
            assert_eq!(c.applied_of(id), c.applied_of(1), "{mode:?}: node {id}");
        }
        for i in 0..10 {
            c.propose(1, format!("after{i}")).unwrap();
        }
        c.stabilize();
        let h = hash_chain(c.applied_of(1));
        for id in [2, 3] {
            assert_eq!(hash_chain(c.applied_of(id)), h, "{mode:?}: node {id}");
        }
        assert_eq!(c.applied_of(3).len(), 111);

        // The same snapshot delivered again is stale (its index is at most 3's commit): 3
        // ignores it and answers with its commit index.
        let commit3 = c.committed(3);
        let mut dup = snaps[0].clone();
        dup.term = c.term(1);
        c.node(3).step(dup).unwrap();
        let rd = c.node(3).ready();
        assert!(rd.snapshot.is_none(), "a stale snapshot was restored");
        let resp: Vec<&Message> = rd.persisted_messages.iter().chain(&rd.messages).collect();
        assert_eq!(resp.len(), 1);
        assert_eq!(resp[0].msg_type(), Some(MessageType::MsgAppResp));
        assert_eq!(
            (resp[0].to, resp[0].index, resp[0].reject),
            (1, commit3, false)
        );
        c.node(3).advance().unwrap();
        assert_eq!(c.committed(3), commit3);
    }
}

/// 3 got every entry but its answers were lost; the leader, having compacted, believes it
/// needs a snapshot, and sends one that is older than what 3 has committed. 3 ignores it and
/// answers with its commit index, and the leader goes on replicating from there.
#[test]
fn stale_snapshot_is_ignored_and_the_leader_moves_on() {
    for mode in MODES {
        let mut c = Cluster::new(3, mode);
        let sent = record_snaps(&mut c);
        c.campaign(1);
        c.propose(1, "warm").unwrap();
        c.stabilize();

        c.cut.insert((3, 1));
        for i in 0..30 {
            c.propose(1, format!("e{i}")).unwrap();
            c.stabilize();
        }
        let applied1 = c.applied_index(1);
        let snap_index = applied1 - 5;
        // A snapshot at an index below the leader's applied index (what a periodic snapshot
        // may well be), then compaction.
        let data = encode_applied(
            &c.applied_of(1)
                .iter()
                .filter(|e| e.0 <= snap_index)
                .cloned()
                .collect::<Vec<_>>(),
        );
        let cs = c.conf_state_of(1);
        let store = c.node(1).store_mut();
        store.create_snapshot(snap_index, Some(cs), data).unwrap();
        store.compact(snap_index).unwrap();
        let commit3 = c.committed(3);
        assert!(
            commit3 >= snap_index,
            "precondition: 3 committed past the snapshot"
        );

        // The leader gives up on its optimistic stream to 3 and probes from what it knows
        // 3 matched, which is compacted away: it must send a snapshot.
        c.node(1).report_unreachable(3);
        c.heal();
        let mut answered = None;
        let mut snap_delivered = false;
        for _ in 0..20 {
            c.tick_all();
            c.process_readies();
            if snap_delivered {
                // 3's answer to the snapshot.
                answered = c
                    .queue
                    .iter()
                    .find(|m| m.from == 3 && m.msg_type() == Some(MessageType::MsgAppResp))
                    .cloned();
                assert!(
                    answered.is_some(),
                    "{mode:?}: 3 did not answer the snapshot"
                );
                break;
            }
            snap_delivered = c
                .queue
                .iter()
                .any(|m| m.to == 3 && m.msg_type() == Some(MessageType::MsgSnap));
            c.deliver();
        }
        let snaps = snaps_to(&sent, 3);
        assert_eq!(snaps.len(), 1, "{mode:?}");
        assert_eq!(snaps[0].snapshot.as_ref().unwrap().index(), snap_index);
        let resp = answered.expect("3 answered the snapshot");
        assert!(!resp.reject);
        assert_eq!(
            resp.index,
            c.committed(3),
            "{mode:?}: 3 answers with its commit"
        );
        assert!(resp.index >= commit3);
        // 3 did not restore it.
        assert_eq!(c.node(3).store().snapshot().unwrap().index(), 1);

        c.stabilize();
        c.tick_and_stabilize(2);
        assert_eq!(c.node(1).progress_state(3), Some(ProgressState::Replicate));
        c.propose(1, "after").unwrap();
        c.stabilize();
        for id in [2, 3] {
            assert_eq!(c.applied_of(id), c.applied_of(1), "{mode:?}: node {id}");
        }
        // No further snapshot was needed.
        assert_eq!(snaps_to(&sent, 3).len(), 1);
    }
}

#[test]
fn snapshot_with_invalid_conf_state_is_rejected() {
    let mut c = Cluster::new(3, AppendMode::EtcdExact);
    c.campaign(1);
    c.isolate(3);
    for i in 0..5 {
        c.propose(1, format!("e{i}")).unwrap();
    }
    c.stabilize();
    c.heal();
    let index = c.committed(1);
    let term = c.term(1);
    let data = encode_applied(c.applied_of(1));
    let snap_msg = |cs: ConfState| Message {
        r#type: MessageType::MsgSnap as i32,
        from: 1,
        to: 3,
        term,
        snapshot: Some(Snapshot {
            data: data.clone(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(cs),
                index,
                term,
            }),
        }),
        ..Default::default()
    };
    let cs =
        |voters: &[u64], learners: &[u64], outgoing: &[u64], next: &[u64], auto: bool| ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners_next: next.to_vec(),
            auto_leave: auto,
        };
    let invalid = [
        cs(&[], &[3], &[], &[], false),            // no voters
        cs(&[1, 2, 3], &[3], &[], &[], false),     // a voter and a learner
        cs(&[1, 2, 3], &[], &[], &[], true),       // auto-leave without a joint config
        cs(&[1, 2, 3], &[], &[1, 2], &[4], false), // a staged learner that is no outgoing voter
        cs(&[1, 2, 3, 3], &[], &[], &[], false),   // a duplicate
        cs(&[0, 1, 3], &[], &[], &[], false),      // node 0
    ];
    let commit3 = c.committed(3);
    let last3 = c.node(3).store().last_index().unwrap();
    for bad in invalid {
        let r = c.node(3).step(snap_msg(bad.clone()));
        assert!(
            matches!(r, Err(Error::InvalidMessage(_))),
            "{bad:?} was not rejected: {r:?}"
        );
        assert_eq!(c.committed(3), commit3);
        assert_eq!(c.term(3), term);
        if c.node(3).has_ready() {
            let rd = c.node(3).ready();
            assert!(rd.snapshot.is_none(), "{bad:?} was restored");
            c.node(3).advance().unwrap();
        }
        assert_eq!(c.node(3).store().last_index().unwrap(), last3);
    }
    // The same snapshot with a valid configuration is restored.
    c.node(3)
        .step(snap_msg(cs(&[1, 2, 3], &[], &[], &[], false)))
        .unwrap();
    c.process_readies();
    assert_eq!(c.node(3).store().snapshot().unwrap().index(), index);
    assert_eq!(c.applied_of(3), c.applied_of(1));
}

// ---------------------------------------------------------------------------------------------
// A storage whose snapshot is temporarily unavailable.

/// MemStorage whose `snapshot()` fails with `SnapshotTemporarilyUnavailable` while
/// `failures_left` is positive.
struct Flaky {
    inner: MemStorage,
    failures_left: Cell<u32>,
    snapshot_calls: Cell<u32>,
}

impl Storage for Flaky {
    fn initial_state(&self) -> raftcore::Result<RaftState> {
        self.inner.initial_state()
    }
    fn entries(&self, low: u64, high: u64, max_size: u64) -> raftcore::Result<Vec<Entry>> {
        self.inner.entries(low, high, max_size)
    }
    fn term(&self, idx: u64) -> raftcore::Result<u64> {
        self.inner.term(idx)
    }
    fn first_index(&self) -> raftcore::Result<u64> {
        self.inner.first_index()
    }
    fn last_index(&self) -> raftcore::Result<u64> {
        self.inner.last_index()
    }
    fn snapshot(&self) -> raftcore::Result<Snapshot> {
        self.snapshot_calls.set(self.snapshot_calls.get() + 1);
        if self.failures_left.get() > 0 {
            self.failures_left.set(self.failures_left.get() - 1);
            return Err(StorageError::SnapshotTemporarilyUnavailable.into());
        }
        self.inner.snapshot()
    }
}

/// A minimal network of nodes over `Flaky` storage (the Cluster helper is MemStorage-only).
struct Net {
    nodes: Vec<RawNode<Flaky>>,
    queue: Vec<Message>,
    cut: BTreeSet<(u64, u64)>,
    applied: Vec<Vec<(u64, u64, Bytes)>>,
    snaps: Vec<(u64, u64, u64)>,
}

impl Net {
    fn new(mode: AppendMode) -> Net {
        let nodes = (1..=3)
            .map(|id| {
                let store = Flaky {
                    inner: common::storage_with_voters(&[1, 2, 3], &[]),
                    failures_left: Cell::new(0),
                    snapshot_calls: Cell::new(0),
                };
                RawNode::new(&config(id, mode), store).unwrap()
            })
            .collect();
        Net {
            nodes,
            queue: Vec::new(),
            cut: BTreeSet::new(),
            applied: vec![Vec::new(); 3],
            snaps: Vec::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut RawNode<Flaky> {
        &mut self.nodes[id as usize - 1]
    }

    fn process(&mut self) -> bool {
        let mut any = false;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if !n.has_ready() {
                continue;
            }
            any = true;
            let rd = n.ready();
            let s = &mut n.store_mut().inner;
            if let Some(snap) = &rd.snapshot {
                s.apply_snapshot(snap.clone()).unwrap();
                self.applied[i] = decode_applied(&snap.data);
            }
            s.append(&rd.entries).unwrap();
            if let Some(hs) = rd.hard_state {
                s.set_hard_state(hs);
            }
            for m in rd.messages.iter().chain(&rd.persisted_messages) {
                if m.msg_type() == Some(MessageType::MsgSnap) {
                    self.snaps.push((m.from, m.to, m.snapshot_index()));
                }
                self.queue.push(m.clone());
            }
            for e in &rd.committed_entries {
                assert_eq!(e.entry_type(), EntryType::EntryNormal);
                if !e.data.is_empty() {
                    self.applied[i].push((e.index, e.term, e.data.clone()));
                }
            }
            n.advance().unwrap();
        }
        any
    }

    fn deliver(&mut self) -> bool {
        let msgs = std::mem::take(&mut self.queue);
        let any = !msgs.is_empty();
        for m in msgs {
            let (from, to) = (m.from, m.to);
            let is_snap = m.msg_type() == Some(MessageType::MsgSnap);
            let ok = !self.cut.contains(&(from, to)) && self.node(to).step(m).is_ok();
            if is_snap {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.node(from).report_snapshot(to, status);
            }
        }
        any
    }

    fn stabilize(&mut self) {
        for _ in 0..1000 {
            let a = self.process();
            let b = self.deliver();
            if !a && !b {
                return;
            }
        }
        panic!("did not stabilize");
    }

    fn tick(&mut self) {
        for n in &mut self.nodes {
            n.tick();
        }
        self.stabilize();
    }
}

#[test]
fn leader_retries_while_snapshot_is_temporarily_unavailable() {
    const FAILURES: u32 = 4;
    for mode in MODES {
        let mut net = Net::new(mode);
        net.node(1).campaign().unwrap();
        net.stabilize();
        assert_eq!(net.node(1).role(), StateRole::Leader);

        for (a, b) in [(1, 3), (3, 1), (2, 3), (3, 2)] {
            net.cut.insert((a, b));
        }
        for i in 0..20 {
            net.node(1).propose(Bytes::from(format!("e{i}"))).unwrap();
        }
        net.stabilize();
        let applied = net.node(1).basic_status().applied;
        let data = encode_applied(&net.applied[0]);
        let store = net.node(1).store_mut();
        store
            .inner
            .create_snapshot(
                applied,
                Some(ConfState {
                    voters: vec![1, 2, 3],
                    ..Default::default()
                }),
                data,
            )
            .unwrap();
        store.inner.compact(applied).unwrap();
        store.failures_left.set(FAILURES);
        store.snapshot_calls.set(0);

        // While the snapshot is unavailable, the leader sends none and keeps probing; each
        // heartbeat answer makes it try again.
        net.cut.clear();
        let mut ticks = 0;
        while net.node(1).store().failures_left.get() > 0 {
            net.tick();
            ticks += 1;
            assert!(
                ticks < 50,
                "{mode:?}: the leader stopped asking for the snapshot"
            );
            if net.node(1).store().failures_left.get() > 0 {
                assert!(net.snaps.is_empty(), "{mode:?}: a snapshot went out");
                assert_eq!(net.node(1).progress_state(3), Some(ProgressState::Probe));
            }
        }
        net.tick();
        net.tick();
        assert!(net.node(1).store().snapshot_calls.get() > FAILURES);
        assert_eq!(net.snaps, vec![(1, 3, applied)], "{mode:?}");
        assert_eq!(
            net.node(1).progress_state(3),
            Some(ProgressState::Replicate)
        );
        assert_eq!(net.applied[2], net.applied[0], "{mode:?}: 3 caught up");
        assert_eq!(net.applied[2].len(), 20);
        assert_eq!(
            net.node(3).store().inner.snapshot().unwrap().index(),
            applied
        );
        let hs: HardState = *net.node(3).store().inner.hard_state();
        assert_eq!(hs.commit, applied);
    }
}

/// A snapshot whose last entry the follower already holds does not replace its log: it only
/// moves the commit index there (etcd's fast-forward), and the follower answers with it.
#[test]
fn snapshot_already_in_the_log_only_moves_the_commit() {
    let mut n = RawNode::new(
        &config(3, AppendMode::EtcdExact),
        common::storage_with_voters(&[1, 2, 3], &[]),
    )
    .unwrap();
    let ents: Vec<Entry> = (2..=10)
        .map(|i| Entry {
            index: i,
            term: 2,
            data: Bytes::from(format!("e{i}")),
            ..Default::default()
        })
        .collect();
    n.step(Message {
        r#type: MessageType::MsgApp as i32,
        from: 1,
        to: 3,
        term: 2,
        index: 1,
        log_term: 1,
        commit: 1,
        entries: ents,
        ..Default::default()
    })
    .unwrap();
    let rd = n.ready();
    n.store_mut().append(&rd.entries).unwrap();
    n.store_mut().set_hard_state(rd.hard_state.unwrap());
    n.advance().unwrap();
    assert_eq!(n.basic_status().hard_state.commit, 1);

    n.step(Message {
        r#type: MessageType::MsgSnap as i32,
        from: 1,
        to: 3,
        term: 2,
        snapshot: Some(Snapshot {
            data: Bytes::from_static(b"not restored"),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: vec![1, 2, 3],
                    ..Default::default()
                }),
                index: 6,
                term: 2,
            }),
        }),
        ..Default::default()
    })
    .unwrap();
    let rd = n.ready();
    assert!(
        rd.snapshot.is_none(),
        "the log already holds the snapshot's entries"
    );
    assert_eq!(rd.hard_state.map(|h| h.commit), Some(6));
    let applied: Vec<u64> = rd.committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(applied, vec![2, 3, 4, 5, 6]);
    let resp: Vec<&Message> = rd.messages.iter().chain(&rd.persisted_messages).collect();
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].msg_type(), Some(MessageType::MsgAppResp));
    assert_eq!((resp[0].index, resp[0].reject), (6, false));
    n.advance().unwrap();
    assert_eq!(
        n.store().last_index().unwrap(),
        10,
        "entries past the snapshot are kept"
    );
    assert_eq!(n.store().snapshot().unwrap().index(), 1);
}

/// `Error::InvalidMessage` promises that the message was rejected "before it could touch any
/// state": a snapshot with an invalid ConfState at a higher term must not move the term, the
/// vote or the leader either.
#[test]
fn invalid_snapshot_at_a_higher_term_touches_no_state() {
    let mut c = Cluster::new(3, AppendMode::EtcdExact);
    c.campaign(1);
    c.propose(1, "x").unwrap();
    c.stabilize();
    let before = c.node(3).basic_status();
    let index = c.committed(1) + 5;
    let m = Message {
        r#type: MessageType::MsgSnap as i32,
        from: 2,
        to: 3,
        term: before.hard_state.term + 1,
        snapshot: Some(Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                // Node 3 is both a voter and a learner: invalid.
                conf_state: Some(ConfState {
                    voters: vec![1, 2, 3],
                    learners: vec![3],
                    ..Default::default()
                }),
                index,
                term: before.hard_state.term + 1,
            }),
        }),
        ..Default::default()
    };
    let r = c.node(3).step(m);
    assert!(matches!(r, Err(Error::InvalidMessage(_))), "{r:?}");
    let after = c.node(3).basic_status();
    assert_eq!(
        after.hard_state, before.hard_state,
        "the rejected message moved the term"
    );
    assert_eq!(after.soft_state, before.soft_state);
    assert!(!c.node(3).has_ready());
}
