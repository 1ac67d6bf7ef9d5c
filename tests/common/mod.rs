//! A small in-memory cluster for tests: N RawNodes over MemStorage, a message queue, and the
//! Ready loop of the crate docs.

#![allow(dead_code)]

use bytes::Bytes;
use raftcore::raftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message, Snapshot, SnapshotMetadata,
};
use raftcore::{AppendMode, Config, MemStorage, RawNode, StateRole};
use std::collections::BTreeSet;

/// A storage that starts from a snapshot at index 1, term 1, holding the voters.
pub fn storage_with_voters(voters: &[u64], learners: &[u64]) -> MemStorage {
    let mut s = MemStorage::new();
    s.apply_snapshot(Snapshot {
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: voters.to_vec(),
                learners: learners.to_vec(),
                ..Default::default()
            }),
            index: 1,
            term: 1,
        }),
        ..Default::default()
    })
    .expect("fresh storage takes a snapshot");
    s
}

pub fn config(id: u64, mode: AppendMode) -> Config {
    let mut c = Config::new(id);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.max_size_per_msg = 1 << 20;
    c.max_inflight_msgs = 256;
    c.append_mode = mode;
    c.seed = 42;
    c
}

pub struct Cluster {
    pub nodes: Vec<Option<RawNode<MemStorage>>>,
    pub ids: Vec<u64>,
    pub queue: Vec<Message>,
    /// Pairs (from, to) whose messages are dropped.
    pub cut: BTreeSet<(u64, u64)>,
    /// Applied normal entries per node, in order: (index, term, data).
    pub applied: Vec<Vec<(u64, u64, Bytes)>>,
    /// ConfStates applied per node.
    pub conf_states: Vec<ConfState>,
}

impl Cluster {
    pub fn new(n: u64, mode: AppendMode) -> Self {
        let voters: Vec<u64> = (1..=n).collect();
        Self::with_configs(voters.iter().map(|&id| config(id, mode)).collect(), &voters)
    }

    pub fn with_configs(configs: Vec<Config>, voters: &[u64]) -> Self {
        let ids: Vec<u64> = configs.iter().map(|c| c.id).collect();
        let nodes = configs
            .iter()
            .map(|c| Some(RawNode::new(c, storage_with_voters(voters, &[])).expect("valid config")))
            .collect();
        let n = ids.len();
        Cluster {
            nodes,
            ids,
            queue: Vec::new(),
            cut: BTreeSet::new(),
            applied: vec![Vec::new(); n],
            conf_states: vec![ConfState::default(); n],
        }
    }

    pub fn idx(&self, id: u64) -> usize {
        self.ids.iter().position(|&i| i == id).expect("known id")
    }

    pub fn node(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        let i = self.idx(id);
        self.nodes[i].as_mut().expect("node is up")
    }

    /// Handles one Ready on every node that has one. Returns whether anything happened.
    pub fn process_readies(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.nodes.len() {
            let Some(node) = self.nodes[i].as_mut() else {
                continue;
            };
            if !node.has_ready() {
                continue;
            }
            any = true;
            let rd = node.ready();
            let store = node.store_mut();
            if let Some(s) = &rd.snapshot {
                store.apply_snapshot(s.clone()).expect("snapshot applies");
            }
            store.append(&rd.entries).expect("append");
            if let Some(hs) = rd.hard_state {
                store.set_hard_state(hs);
            }
            self.queue.extend(rd.messages.iter().cloned());
            self.queue.extend(rd.persisted_messages.iter().cloned());
            for e in &rd.committed_entries {
                match e.entry_type() {
                    EntryType::EntryNormal => {
                        if !e.data.is_empty() {
                            self.applied[i].push((e.index, e.term, e.data.clone()));
                        }
                    }
                    EntryType::EntryConfChange => {
                        let cc: ConfChange = prost::Message::decode(e.data.clone()).expect("cc");
                        if let Ok(cs) = node.apply_conf_change(&cc.into()) {
                            self.conf_states[i] = cs;
                        }
                    }
                    EntryType::EntryConfChangeV2 => {
                        let cc: ConfChangeV2 = prost::Message::decode(e.data.clone()).expect("cc");
                        if let Ok(cs) = node.apply_conf_change(&cc.into()) {
                            self.conf_states[i] = cs;
                        }
                    }
                }
            }
            node.advance().expect("sync mode");
        }
        any
    }

    /// Delivers every queued message (dropping cut links). Returns whether any was delivered.
    pub fn deliver(&mut self) -> bool {
        let msgs = std::mem::take(&mut self.queue);
        let any = !msgs.is_empty();
        for m in msgs {
            if self.cut.contains(&(m.from, m.to)) {
                continue;
            }
            let Some(i) = self.ids.iter().position(|&i| i == m.to) else {
                continue;
            };
            if let Some(node) = self.nodes[i].as_mut() {
                let _ = node.step(m);
            }
        }
        any
    }

    /// Runs Ready rounds and deliveries until quiet (bounded).
    pub fn stabilize(&mut self) {
        for _ in 0..10_000 {
            let a = self.process_readies();
            let b = self.deliver();
            if !a && !b {
                return;
            }
        }
        panic!("cluster did not stabilize");
    }

    pub fn tick_all(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            n.tick();
        }
    }

    pub fn campaign(&mut self, id: u64) {
        self.node(id).campaign().expect("campaign");
        self.stabilize();
    }

    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .flatten()
            .find(|n| n.role() == StateRole::Leader)
            .map(|n| n.id())
    }

    pub fn isolate(&mut self, id: u64) {
        for &o in &self.ids.clone() {
            if o != id {
                self.cut.insert((id, o));
                self.cut.insert((o, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// All entries of a node's stable log.
    pub fn log(&mut self, id: u64) -> Vec<Entry> {
        use raftcore::Storage;
        let s = self.node(id).store();
        let (f, l) = (s.first_index().unwrap(), s.last_index().unwrap());
        if l < f {
            return vec![];
        }
        s.entries(f, l + 1, u64::MAX).unwrap()
    }
}
