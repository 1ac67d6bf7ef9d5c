//! Remote input never panics: arbitrary messages (every type, any term, index, commit, entries
//! and sender, u64::MAX included) stepped into followers, candidates and leaders return Ok or a
//! typed error, the Readies that follow are persistable, and the group keeps working.

mod common;

use bytes::Bytes;
use common::Cluster;
use proptest::prelude::*;
use raftcore::raftpb::{ConfState, Entry, Message, Snapshot, SnapshotMetadata};
use raftcore::{AppendMode, StateRole, MAX_REMOTE_VALUE};

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..8,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => Just(MAX_REMOTE_VALUE),
        1 => Just(MAX_REMOTE_VALUE + 1),
        1 => any::<u64>(),
    ]
}

fn node_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1u64..5,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => any::<u64>(),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        interesting_u64(),
        interesting_u64(),
        -1i32..4,
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(term, index, ty, data)| Entry {
            term,
            index,
            r#type: ty,
            data: Bytes::from(data),
        })
}

fn conf_state() -> impl Strategy<Value = ConfState> {
    let ids = || prop::collection::vec(node_id(), 0..4);
    (ids(), ids(), ids(), ids(), any::<bool>()).prop_map(|(v, l, vo, ln, al)| ConfState {
        voters: v,
        learners: l,
        voters_outgoing: vo,
        learners_next: ln,
        auto_leave: al,
    })
}

fn snapshot() -> impl Strategy<Value = Option<Snapshot>> {
    prop::option::of(
        (
            interesting_u64(),
            interesting_u64(),
            prop::option::of(conf_state()),
        )
            .prop_map(|(index, term, cs)| Snapshot {
                data: Bytes::from_static(b"snap"),
                metadata: Some(SnapshotMetadata {
                    conf_state: cs,
                    index,
                    term,
                }),
            }),
    )
}

prop_compose! {
    fn message(to: u64)(
        ty in prop_oneof![10 => 0i32..24, 1 => any::<i32>()],
        from in node_id(),
        to_other in prop::bool::weighted(0.1),
        term in interesting_u64(),
        log_term in interesting_u64(),
        index in interesting_u64(),
        commit in interesting_u64(),
        reject in any::<bool>(),
        reject_hint in interesting_u64(),
        entries in prop::collection::vec(entry(), 0..4),
        snapshot in snapshot(),
        context in prop::collection::vec(any::<u8>(), 0..10),
        vote in node_id(),
    ) -> Message {
        Message {
            r#type: ty,
            to: if to_other { to + 1 } else { to },
            from,
            term,
            log_term,
            index,
            entries,
            commit,
            vote,
            snapshot,
            reject,
            reject_hint,
            context: Bytes::from(context),
            responses: vec![],
        }
    }
}

/// A 3-node cluster with node 1 leading, node 2 following and node 3 a candidate (cut off
/// and campaigning).
fn cluster_in_every_role(mode: AppendMode) -> Cluster {
    let mut c = Cluster::new(3, mode);
    c.campaign(1);
    c.node(1).propose(Bytes::from_static(b"x")).unwrap();
    c.stabilize();
    c.isolate(3);
    c.node(3).campaign().unwrap();
    c.stabilize();
    assert_eq!(c.node(1).role(), StateRole::Leader);
    assert_eq!(c.node(2).role(), StateRole::Follower);
    assert_eq!(c.node(3).role(), StateRole::Candidate);
    c
}

/// After hostile input, honest operation resumes: a leader is elected and a proposal commits
/// on every node.
fn assert_recovers(c: &mut Cluster) {
    c.heal();
    c.queue.clear();
    for round in 0..2000 {
        c.tick_all();
        c.stabilize();
        if let Some(l) = c.leader() {
            let before: Vec<usize> = c.applied.iter().map(Vec::len).collect();
            let payload = Bytes::from(format!("after-{round}"));
            if c.node(l).propose(payload.clone()).is_ok() {
                for _ in 0..50 {
                    c.tick_all();
                    c.stabilize();
                }
                let all = c
                    .applied
                    .iter()
                    .zip(&before)
                    .all(|(a, b)| a.len() > *b && a.iter().any(|e| e.2 == payload));
                if all {
                    return;
                }
            }
        }
    }
    panic!("the group did not recover after hostile input");
}

fn run(mode: AppendMode, msgs: Vec<(usize, Message)>) {
    let mut c = cluster_in_every_role(mode);
    for (target, mut m) in msgs {
        let id = [1u64, 2, 3][target];
        // Aim at the target node (the strategy picks `to` relative to node 1).
        if m.to == 1 {
            m.to = id;
        }
        let _ = c.node(id).step(m); // Ok or a typed error: a panic fails the test.
                                    // Every Ready stays persistable (MemStorage rejects gaps and bad snapshots) and the
                                    // commit index never passes the log.
        c.process_readies();
        for &n in &[1u64, 2, 3] {
            let st = c.node(n).basic_status();
            let last = {
                use raftcore::Storage;
                c.node(n).store().last_index().unwrap()
            };
            assert!(
                st.hard_state.commit <= last,
                "node {n} commit {} past its log {last}",
                st.hard_state.commit
            );
        }
    }
    assert_recovers(&mut c);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_never_panic_batched(msgs in prop::collection::vec((0usize..3, message(1)), 1..12)) {
        run(AppendMode::Batched, msgs);
    }

    #[test]
    fn arbitrary_messages_never_panic_etcd_exact(msgs in prop::collection::vec((0usize..3, message(1)), 1..12)) {
        run(AppendMode::EtcdExact, msgs);
    }
}

/// Each class of HOSTILE-INPUT.md with one hand-made message.
#[test]
fn hostile_classes_are_rejected() {
    use raftcore::raftpb::MessageType::*;
    use raftcore::Error;
    let mut c = cluster_in_every_role(AppendMode::EtcdExact);
    let m = |t: raftcore::raftpb::MessageType, from: u64, to: u64, term: u64| Message {
        r#type: t as i32,
        from,
        to,
        term,
        ..Default::default()
    };
    // 1. Term 0 on a message that must carry a term, from a stranger.
    let r = c.node(3).step(m(MsgHeartbeat, 9, 3, 0));
    assert!(matches!(r, Err(Error::InvalidMessage(_))), "{r:?}");
    // Local types from the network.
    for t in [
        MsgHup,
        MsgBeat,
        MsgUnreachable,
        MsgSnapStatus,
        MsgCheckQuorum,
        MsgStorageAppendResp,
        MsgStorageApplyResp,
    ] {
        assert_eq!(c.node(1).step(m(t, 2, 1, 2)), Err(Error::StepLocalMsg));
    }
    // A self-addressed append response from the network is refused.
    assert!(c.node(1).step(m(MsgAppResp, 1, 1, 2)).is_err());
    // 3. A proposal with no entries.
    assert!(c.node(1).step(m(MsgProp, 2, 1, 0)).is_err());
    // 4. Entries that are not contiguous.
    let term = c.node(1).basic_status().hard_state.term;
    let last = {
        use raftcore::Storage;
        c.node(2).store().last_index().unwrap()
    };
    let lt = {
        use raftcore::Storage;
        c.node(2).store().term(last).unwrap()
    };
    let mut app = m(MsgApp, 1, 2, term);
    app.index = last;
    app.log_term = lt;
    app.entries = vec![
        Entry {
            term,
            index: last + 1,
            ..Default::default()
        },
        Entry {
            term,
            index: last + 3,
            ..Default::default()
        },
    ];
    assert!(matches!(c.node(2).step(app), Err(Error::InvalidMessage(_))));
    // 9. u64::MAX as the term.
    assert!(c.node(2).step(m(MsgHeartbeat, 1, 2, u64::MAX)).is_err());
    // Responses from strangers.
    assert_eq!(
        c.node(1).step(m(MsgAppResp, 7, 1, term)),
        Err(Error::StepPeerNotFound)
    );
    assert_recovers(&mut c);
}
