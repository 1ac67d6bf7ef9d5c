use bytes::Bytes;

use super::*;
use crate::raftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, MessageType};
use crate::{Config, StateRole};

/// Records what the loop hands to the state machine.
#[derive(Default)]
struct Log {
    /// (index, payload) of every entry applied, conf changes as `conf:<outcome kind>`.
    applied: Vec<(u64, Bytes)>,
    restored: Vec<u64>,
    conf: Option<ConfState>,
    /// Refuse to apply this index.
    fail_at: Option<u64>,
}

impl StateMachine for Log {
    type Error = String;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Result<(), String> {
        if self.fail_at == Some(e.index) {
            return Err(format!("refused {}", e.index));
        }
        let data = match conf {
            None => e.data.clone(),
            Some(ConfOutcome::Applied { conf_state, .. }) => {
                self.conf = Some(conf_state.clone());
                Bytes::from_static(b"conf:applied")
            }
            Some(ConfOutcome::Refused { .. }) => Bytes::from_static(b"conf:refused"),
            Some(ConfOutcome::Undecodable(_)) => Bytes::from_static(b"conf:undecodable"),
        };
        self.applied.push((e.index, data));
        Ok(())
    }

    fn restore(&mut self, snap: &Snapshot) -> Result<(), String> {
        self.restored.push(snap.index());
        Ok(())
    }
}

struct Group {
    nodes: Vec<RawNode<MemStorage>>,
    logs: Vec<Log>,
    net: Vec<Message>,
    async_writes: bool,
}

impl Group {
    fn new(n: u64, async_writes: bool) -> Group {
        let cs = ConfState {
            voters: (1..=n).collect(),
            ..Default::default()
        };
        let nodes = (1..=n)
            .map(|id| {
                let mut c = Config::new(id);
                c.async_storage_writes = async_writes;
                RawNode::new(&c, storage_with_conf_state(cs.clone())).unwrap()
            })
            .collect();
        Group {
            nodes,
            logs: (0..n).map(|_| Log::default()).collect(),
            net: Vec::new(),
            async_writes,
        }
    }

    /// Handles every Ready and delivers every message until nothing moves.
    fn settle(&mut self) {
        for _ in 0..100 {
            let mut busy = false;
            for (node, log) in self.nodes.iter_mut().zip(&mut self.logs) {
                if !node.has_ready() {
                    continue;
                }
                busy = true;
                let rd = node.ready();
                if self.async_writes {
                    handle_ready_async(node, rd, log, &mut self.net).unwrap();
                } else {
                    handle_ready(node, rd, log, &mut self.net).unwrap();
                }
            }
            for m in std::mem::take(&mut self.net) {
                busy = true;
                assert!(m.to >= 1 && m.to <= self.nodes.len() as u64, "{m:?}");
                let _ = self.nodes[m.to as usize - 1].step(m);
            }
            if !busy {
                return;
            }
        }
        panic!("the group does not settle");
    }

    fn payloads(&self, i: usize) -> Vec<Bytes> {
        self.logs[i]
            .applied
            .iter()
            .map(|(_, d)| d.clone())
            .collect()
    }
}

fn elect_and_write(async_writes: bool) -> Group {
    let mut g = Group::new(3, async_writes);
    g.nodes[0].campaign().unwrap();
    g.settle();
    assert_eq!(g.nodes[0].role(), StateRole::Leader);
    g.nodes[0].propose(Bytes::from_static(b"a")).unwrap();
    g.nodes[0].propose(Bytes::from_static(b"b")).unwrap();
    g.settle();
    g
}

/// Every node of a group that elected node 1 and wrote `a` and `b` applied the same entries
/// in order (the leader's empty entry, then the writes), all of them durable.
fn assert_wrote_everywhere(g: &Group) {
    let want = vec![
        Bytes::new(),
        Bytes::from_static(b"a"),
        Bytes::from_static(b"b"),
    ];
    for i in 0..3 {
        assert_eq!(g.payloads(i), want, "node {}", i + 1);
        let idx: Vec<u64> = g.logs[i].applied.iter().map(|e| e.0).collect();
        assert_eq!(idx, vec![2, 3, 4]);
        assert_eq!(g.nodes[i].store().last_index().unwrap(), 4);
        assert_eq!(g.nodes[i].store().hard_state().commit, 4);
        assert_eq!(g.nodes[i].basic_status().applied, 4);
    }
}

#[test]
fn sync_group_applies_the_same_entries_in_order() {
    assert_wrote_everywhere(&elect_and_write(false));
}

#[test]
fn async_group_applies_the_same_entries_in_order() {
    assert_wrote_everywhere(&elect_and_write(true));
}

#[test]
fn conf_changes_reach_the_node_and_the_state_machine() {
    let mut g = elect_and_write(false);
    // Remove node 3: applied everywhere.
    g.nodes[0]
        .propose_conf_change(ConfChangeV2 {
            changes: vec![ConfChangeSingle {
                r#type: ConfChangeType::ConfChangeRemoveNode as i32,
                node_id: 3,
            }],
            ..Default::default()
        })
        .unwrap();
    g.settle();
    for i in 0..2 {
        assert_eq!(
            g.logs[i].applied.last().unwrap().1,
            Bytes::from_static(b"conf:applied")
        );
        assert_eq!(g.logs[i].conf.as_ref().unwrap().voters, vec![1, 2]);
        assert_eq!(
            g.nodes[i].status().config.voters.incoming.to_vec(),
            vec![1, 2]
        );
    }
    // Leaving a joint configuration that was never entered is refused when applied.
    let cc = ConfChangeI::V2(ConfChangeV2 {
        transition: ConfChangeTransition::Auto as i32,
        ..Default::default()
    });
    let data = Bytes::from(prost::Message::encode_to_vec(&cc.as_v2()));
    let refused = Entry {
        r#type: EntryType::EntryConfChangeV2 as i32,
        index: 100,
        term: 2,
        data,
    };
    let garbage = Entry {
        r#type: EntryType::EntryConfChange as i32,
        index: 101,
        term: 2,
        data: Bytes::from_static(b"\xff\xff\xff"),
    };
    let mut log = Log::default();
    apply_committed(&mut g.nodes[1], &[refused, garbage], &mut log).unwrap();
    let kinds: Vec<Bytes> = log.applied.iter().map(|e| e.1.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            Bytes::from_static(b"conf:refused"),
            Bytes::from_static(b"conf:undecodable")
        ]
    );
    assert_eq!(
        g.nodes[1].status().config.voters.incoming.to_vec(),
        vec![1, 2]
    );
}

#[test]
fn the_state_machine_can_stop_the_loop() {
    let mut g = elect_and_write(false);
    g.nodes[0].propose(Bytes::from_static(b"c")).unwrap();
    g.logs[0].fail_at = Some(5);
    // The leader's first Ready appends 5 and sends it; the followers persist and answer.
    for i in 0..3 {
        if g.nodes[i].has_ready() {
            let rd = g.nodes[i].ready();
            handle_ready(&mut g.nodes[i], rd, &mut g.logs[i], &mut g.net).unwrap();
        }
    }
    for _ in 0..4 {
        for m in std::mem::take(&mut g.net) {
            let _ = g.nodes[m.to as usize - 1].step(m);
        }
        for i in 1..3 {
            if g.nodes[i].has_ready() {
                let rd = g.nodes[i].ready();
                handle_ready(&mut g.nodes[i], rd, &mut g.logs[i], &mut g.net).unwrap();
            }
        }
    }
    let rd = g.nodes[0].ready();
    assert_eq!(rd.committed_entries.last().map(|e| e.index), Some(5));
    match handle_ready(&mut g.nodes[0], rd, &mut g.logs[0], &mut g.net) {
        Err(e @ ReadyError::App(_)) => assert_eq!(e.to_string(), "state machine: refused 5"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn persist_takes_what_a_ready_or_a_storage_append_asks() {
    let mut m = Message {
        r#type: MessageType::MsgStorageAppend as i32,
        entries: vec![Entry {
            index: 2,
            term: 1,
            ..Default::default()
        }],
        responses: vec![Message::default()],
        ..Default::default()
    };
    let p = Persist::take_from_message(&mut m);
    assert_eq!(p.hard_state, None, "no term, vote or commit: no HardState");
    assert_eq!(p.entries.len(), 1);
    assert!(m.entries.is_empty());
    assert_eq!(m.responses.len(), 1, "the responses stay");
    let mut m = Message {
        term: 3,
        commit: 1,
        ..Default::default()
    };
    let p = Persist::take_from_message(&mut m);
    assert_eq!(
        p.hard_state,
        Some(HardState {
            term: 3,
            vote: 0,
            commit: 1
        })
    );
    assert!(!p.is_empty());
    assert!(Persist::default().is_empty());

    let mut store = storage_with_conf_state(ConfState {
        voters: vec![1],
        ..Default::default()
    });
    let mut log = Log::default();
    let snap = Snapshot {
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1],
                ..Default::default()
            }),
            index: 5,
            term: 2,
        }),
        ..Default::default()
    };
    let p = Persist {
        snapshot: Some(snap),
        entries: vec![Entry {
            index: 6,
            term: 2,
            ..Default::default()
        }],
        hard_state: Some(HardState {
            term: 2,
            vote: 1,
            commit: 5,
        }),
    };
    p.restore_and_write(&mut store, &mut log).unwrap();
    assert_eq!(log.restored, vec![5]);
    assert_eq!(store.first_index().unwrap(), 6);
    assert_eq!(store.last_index().unwrap(), 6);
    assert_eq!(store.hard_state().commit, 5);
    // An older snapshot is refused by the storage.
    let old = Persist {
        snapshot: Some(Snapshot {
            metadata: Some(SnapshotMetadata {
                index: 3,
                term: 1,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    match old.restore_and_write(&mut store, &mut log) {
        Err(e @ ReadyError::Core(Error::Store(_))) => assert_eq!(
            e.to_string(),
            Error::Store(crate::StorageError::SnapshotOutOfDate).to_string()
        ),
        other => panic!("{other:?}"),
    }
}
