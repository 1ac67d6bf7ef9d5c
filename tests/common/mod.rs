//! A small in-memory cluster for tests: N RawNodes over MemStorage, a message queue, and the
//! Ready loop of the crate docs.

#![allow(dead_code)]

use bytes::Bytes;
use raftcore::raftpb::{ConfState, Entry, Message, MessageType, Snapshot};
use raftcore::testkit::{self, ConfOutcome, StateMachine};
use raftcore::{AppendMode, Config, MemStorage, RawNode, Ready, SnapshotStatus, StateRole};
use std::collections::BTreeSet;

/// A storage that starts from a snapshot at index 1, term 1, holding the voters.
pub fn storage_with_voters(voters: &[u64], learners: &[u64]) -> MemStorage {
    testkit::storage_with_conf_state(ConfState {
        voters: voters.to_vec(),
        learners: learners.to_vec(),
        ..Default::default()
    })
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

/// The state machine of a test node, as the test kit's Ready loop drives it: the applied
/// normal entries (see `Cluster::applied`) and the configuration (see `Cluster::conf_states`).
struct TestApp<'a> {
    applied: &'a mut Vec<(u64, u64, Bytes)>,
    conf_state: &'a mut ConfState,
}

impl StateMachine for TestApp<'_> {
    type Error = std::convert::Infallible;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Result<(), Self::Error> {
        match conf {
            None if !e.data.is_empty() => self.applied.push((e.index, e.term, e.data.clone())),
            None | Some(ConfOutcome::Refused { .. }) => {}
            Some(ConfOutcome::Applied { conf_state, .. }) => *self.conf_state = conf_state.clone(),
            Some(other) => panic!("conf change at {}: {other:?}", e.index),
        }
        Ok(())
    }

    fn restore(&mut self, s: &Snapshot) -> Result<(), Self::Error> {
        // The state machine is replaced by the snapshot's (see `encode_applied`); empty data
        // is an empty state machine or a snapshot made without one.
        if !s.data.is_empty() {
            *self.applied = decode_applied(&s.data);
        }
        *self.conf_state = s.conf_state();
        Ok(())
    }
}

/// See `Cluster::ready_hook`.
pub type ReadyHook = Box<dyn FnMut(u64, &Ready)>;

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
    /// Called with (node id, Ready) for every Ready handled by `process_readies`, before the
    /// Ready is persisted, applied and advanced.
    pub ready_hook: Option<ReadyHook>,
    /// Every `MsgSnap` that `deliver` handled, and what it reported to the sender with
    /// `report_snapshot`: (from, to, snapshot index, status).
    pub snap_reports: Vec<(u64, u64, u64, SnapshotStatus)>,
    /// When set to `Some(n)`, every node takes a snapshot of its state machine at its applied
    /// index and compacts its log there, once it has applied `n` entries past its last
    /// snapshot or its configuration differs from the one its last snapshot holds.
    pub compact_every: Option<u64>,
}

impl Cluster {
    pub fn new(n: u64, mode: AppendMode) -> Self {
        let voters: Vec<u64> = (1..=n).collect();
        Self::with_configs(voters.iter().map(|&id| config(id, mode)).collect(), &voters)
    }

    pub fn with_configs(configs: Vec<Config>, voters: &[u64]) -> Self {
        Self::with_members(configs, voters, &[])
    }

    /// A cluster whose configuration has `voters` and `learners` (every node of `configs`
    /// starts from a snapshot holding it).
    pub fn with_members(configs: Vec<Config>, voters: &[u64], learners: &[u64]) -> Self {
        let ids: Vec<u64> = configs.iter().map(|c| c.id).collect();
        let nodes = configs
            .iter()
            .map(|c| {
                Some(RawNode::new(c, storage_with_voters(voters, learners)).expect("valid config"))
            })
            .collect();
        let n = ids.len();
        Cluster {
            nodes,
            ids,
            queue: Vec::new(),
            cut: BTreeSet::new(),
            applied: vec![Vec::new(); n],
            conf_states: vec![ConfState::default(); n],
            ready_hook: None,
            snap_reports: Vec::new(),
            compact_every: None,
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
            if let Some(hook) = self.ready_hook.as_mut() {
                hook(self.ids[i], &rd);
            }
            let mut app = TestApp {
                applied: &mut self.applied[i],
                conf_state: &mut self.conf_states[i],
            };
            testkit::handle_ready(node, rd, &mut app, &mut self.queue).expect("the Ready loop");
            if let Some(every) = self.compact_every {
                self.maybe_compact(self.ids[i], every);
            }
        }
        any
    }

    /// Delivers every queued message (dropping cut links). Returns whether any was delivered.
    /// The sending of a `MsgSnap` is reported to its sender with `report_snapshot`: `Finish`
    /// if the receiver stepped it without error, `Failure` if it was dropped or refused.
    pub fn deliver(&mut self) -> bool {
        let msgs = std::mem::take(&mut self.queue);
        let any = !msgs.is_empty();
        for m in msgs {
            let is_snap = m.msg_type() == Some(MessageType::MsgSnap);
            let (from, to, sindex) = (m.from, m.to, m.snapshot_index());
            let mut status = SnapshotStatus::Failure;
            if !self.cut.contains(&(m.from, m.to)) {
                if let Some(i) = self.ids.iter().position(|&i| i == m.to) {
                    if let Some(node) = self.nodes[i].as_mut() {
                        if node.step(m).is_ok() {
                            status = SnapshotStatus::Finish;
                        }
                    }
                }
            }
            if is_snap {
                // The transport reports how sending the snapshot went.
                self.snap_reports.push((from, to, sindex, status));
                if let Some(j) = self.ids.iter().position(|&i| i == from) {
                    if let Some(sender) = self.nodes[j].as_mut() {
                        sender.report_snapshot(to, status);
                    }
                }
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

/// Encodes a state machine (the applied normal entries, as kept in `Cluster::applied`) as
/// snapshot data: per entry, index and term (8 bytes each, little endian), the payload length
/// (4 bytes) and the payload.
pub fn encode_applied(applied: &[(u64, u64, Bytes)]) -> Bytes {
    let mut out = Vec::new();
    for (index, term, data) in applied {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&term.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    Bytes::from(out)
}

/// Decodes what `encode_applied` wrote.
pub fn decode_applied(data: &[u8]) -> Vec<(u64, u64, Bytes)> {
    let mut out = Vec::new();
    let mut rest = data;
    let take = |rest: &mut &[u8], n: usize| -> Vec<u8> {
        assert!(rest.len() >= n, "truncated snapshot data");
        let (a, b) = rest.split_at(n);
        *rest = b;
        a.to_vec()
    };
    while !rest.is_empty() {
        let index = u64::from_le_bytes(take(&mut rest, 8).try_into().unwrap());
        let term = u64::from_le_bytes(take(&mut rest, 8).try_into().unwrap());
        let len = u32::from_le_bytes(take(&mut rest, 4).try_into().unwrap()) as usize;
        out.push((index, term, Bytes::from(take(&mut rest, len))));
    }
    out
}

/// Whether `a` is a prefix of `b` or `b` of `a`.
pub fn prefix_related<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

impl Cluster {
    /// Adds a member to the cluster's network: a node built from `cfg` over `storage`. A new
    /// member joining a running group gets `MemStorage::new()`: an empty log and an empty
    /// configuration, so it cannot campaign until it learns the configuration from the leader.
    pub fn add_node(&mut self, cfg: Config, storage: MemStorage) {
        assert!(
            !self.ids.contains(&cfg.id),
            "node {} already exists",
            cfg.id
        );
        self.nodes
            .push(Some(RawNode::new(&cfg, storage).expect("valid config")));
        self.ids.push(cfg.id);
        self.applied.push(Vec::new());
        self.conf_states.push(ConfState::default());
    }

    /// Crashes and restarts a node from what it persisted, with config `cfg`. Its state
    /// machine restarts from its storage's snapshot and replays the committed log.
    pub fn restart_node(&mut self, cfg: Config) {
        use raftcore::Storage;
        let i = self.idx(cfg.id);
        let store = self.nodes[i].take().expect("node is up").store().clone();
        let snap = store.snapshot().expect("mem snapshot");
        self.applied[i] = decode_applied(&snap.data);
        self.conf_states[i] = snap.conf_state();
        self.nodes[i] = Some(RawNode::new(&cfg, store).expect("restart"));
    }

    /// Stops a node for good (its messages are no longer delivered).
    pub fn stop_node(&mut self, id: u64) {
        let i = self.idx(id);
        self.nodes[i] = None;
    }

    pub fn node_ref(&self, id: u64) -> &RawNode<MemStorage> {
        self.nodes[self.idx(id)].as_ref().expect("node is up")
    }

    pub fn committed(&self, id: u64) -> u64 {
        self.node_ref(id).basic_status().hard_state.commit
    }

    pub fn term(&self, id: u64) -> u64 {
        self.node_ref(id).basic_status().hard_state.term
    }

    pub fn applied_index(&self, id: u64) -> u64 {
        self.node_ref(id).basic_status().applied
    }

    pub fn applied_of(&self, id: u64) -> &[(u64, u64, Bytes)] {
        &self.applied[self.idx(id)]
    }

    /// The applied payloads of a node, in order.
    pub fn payloads(&self, id: u64) -> Vec<Bytes> {
        self.applied_of(id).iter().map(|e| e.2.clone()).collect()
    }

    pub fn propose(&mut self, id: u64, data: impl Into<Bytes>) -> raftcore::Result<()> {
        self.node(id).propose(data.into())
    }

    /// The node's current configuration as a ConfState.
    pub fn conf_state_of(&self, id: u64) -> ConfState {
        let cfg = self.node_ref(id).status().config;
        ConfState {
            voters: cfg.voters.incoming.to_vec(),
            learners: cfg.learners_iter().collect(),
            voters_outgoing: cfg.voters.outgoing.to_vec(),
            learners_next: cfg.learners_next_iter().collect(),
            auto_leave: cfg.auto_leave,
        }
    }

    /// Makes a snapshot of the node's state machine at its applied index (data:
    /// `encode_applied`, with its current configuration) and compacts its log there. Returns
    /// the snapshot index, or None if the storage already has a snapshot at that index.
    pub fn snapshot_and_compact(&mut self, id: u64) -> Option<u64> {
        use raftcore::Storage;
        let i = self.idx(id);
        let applied = self.applied_index(id);
        let cs = self.conf_state_of(id);
        let data = encode_applied(&self.applied[i]);
        let store = self.nodes[i].as_mut().expect("node is up").store_mut();
        if applied <= store.snapshot().expect("mem snapshot").index() {
            return None;
        }
        store
            .create_snapshot(applied, Some(cs), data)
            .expect("snapshot at the applied index");
        store
            .compact(applied)
            .expect("compact at the applied index");
        Some(applied)
    }

    fn maybe_compact(&mut self, id: u64, every: u64) {
        use raftcore::Storage;
        let applied = self.applied_index(id);
        let cs = self.conf_state_of(id);
        let snap = self.node_ref(id).store().snapshot().expect("mem snapshot");
        let conf_changed = !snap.conf_state().equivalent(&cs);
        if applied > snap.index() && (applied >= snap.index() + every || conf_changed) {
            self.snapshot_and_compact(id);
        }
    }

    /// Asserts that the applied sequences of all nodes (live or stopped) are prefixes of one
    /// another.
    pub fn assert_applied_consistent(&self) {
        for a in 0..self.applied.len() {
            for b in a + 1..self.applied.len() {
                assert!(
                    prefix_related(&self.applied[a], &self.applied[b]),
                    "applied sequences of {} and {} diverge",
                    self.ids[a],
                    self.ids[b]
                );
            }
        }
    }

    /// Ticks every node and stabilizes, `n` times.
    pub fn tick_and_stabilize(&mut self, n: usize) {
        for _ in 0..n {
            self.tick_all();
            self.stabilize();
        }
    }
}

impl Cluster {
    /// One lossy network step: every queued message is lost when `lose()` says so (a lost
    /// MsgSnap is reported to its sender as failed), the rest are delivered, and every node
    /// handles its Ready.
    pub fn deliver_lossy(&mut self, mut lose: impl FnMut() -> bool) {
        let msgs = std::mem::take(&mut self.queue);
        for m in msgs {
            if !lose() {
                self.queue.push(m);
            } else if m.msg_type() == Some(raftcore::raftpb::MessageType::MsgSnap) {
                self.node(m.from)
                    .report_snapshot(m.to, raftcore::SnapshotStatus::Failure);
            }
        }
        self.deliver();
        self.process_readies();
    }

    /// Election safety: records each leader's term in `leader_of_term` and panics (naming
    /// `ctx`) if a term already had another leader.
    pub fn assert_one_leader_per_term(
        &self,
        leader_of_term: &mut std::collections::BTreeMap<u64, u64>,
        ctx: &str,
    ) {
        for n in self.nodes.iter().flatten() {
            if n.role() == StateRole::Leader {
                let t = n.basic_status().hard_state.term;
                let prev = *leader_of_term.entry(t).or_insert(n.id());
                assert_eq!(prev, n.id(), "{ctx}: two leaders in term {t}");
            }
        }
    }
}

/// A message of type `t` from `from` to `to` at `term`, every other field empty.
pub fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    Message {
        r#type: t as i32,
        from,
        to,
        term,
        ..Default::default()
    }
}

/// A fixed pseudo-random schedule (a linear congruential generator): the same for every run,
/// whatever the node's seed.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Loses or reorders one message of `queue`, as `sched` draws it (a no-op on an empty queue
/// draws nothing).
pub fn lose_or_reorder(sched: &mut Lcg, queue: &mut Vec<Message>) {
    if queue.is_empty() {
        return;
    }
    let j = (sched.next() as usize) % queue.len();
    let m = queue.remove(j);
    if sched.next() % 2 == 0 {
        queue.push(m);
    }
}

/// Steps every queued message into its node (`nodes[to - 1]`), ignoring what stepping returns.
pub fn deliver_all(nodes: &mut [RawNode<MemStorage>], queue: &mut Vec<Message>) {
    for m in std::mem::take(queue) {
        let to = m.to as usize - 1;
        let _ = nodes[to].step(m);
    }
}
