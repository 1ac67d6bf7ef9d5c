//! raftcore driven as `SCENARIOS.md` prescribes: in-memory groups in one thread, every Ready
//! handled by the same function ([`handle_ready`]), messages passed without encoding in the
//! order they were produced.

use bytes::Bytes;
use raftcore::raftpb::{ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot};
use raftcore::testkit::{self, ConfOutcome, StateMachine};
use raftcore::{AppendMode, Config, MemStorage, RawNode, StateRole};
use std::sync::Arc;

/// The common set-up of every node: election_tick 10, heartbeat_tick 1, 1 MiB per append
/// message, 256 appends in flight; no pre-vote, no check-quorum; logging discarded (the
/// default logger). The fast mode (`Batched`) hands a Ready's entries over rather than
/// cloning them (`hand_over_entries`) and applies from storage (`apply_from_storage`:
/// committed entries are read where the storage holds them), as etcd's Ready shares its
/// entries with the node and its storage; `EtcdExact` clones them into the Ready.
pub fn bench_config(id: u64, mode: AppendMode) -> Config {
    let mut c = Config::new(id);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.max_size_per_msg = 1 << 20;
    c.max_inflight_msgs = 256;
    c.append_mode = mode;
    c.apply_from_storage = mode == AppendMode::Batched;
    c.hand_over_entries = mode == AppendMode::Batched;
    c.validated().expect("the bench config is valid")
}

/// A MemStorage that starts from a snapshot at index 1, term 1, whose ConfState holds voters
/// `1..=voters`, and a HardState {term 1, commit 1}.
pub fn bench_storage(voters: u64) -> MemStorage {
    let mut s = testkit::storage_with_conf_state(ConfState {
        voters: (1..=voters).collect(),
        ..Default::default()
    });
    s.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 1,
    });
    s
}

/// What a node's state machine has seen: the last applied index, and the count and payload
/// bytes of the non-empty normal entries applied.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyState {
    pub applied_index: u64,
    pub applied_entries: u64,
    pub applied_bytes: u64,
}

impl StateMachine for ApplyState {
    type Error = std::convert::Infallible;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Result<(), Self::Error> {
        self.applied_index = e.index;
        if conf.is_none() && !e.data.is_empty() {
            self.applied_entries += 1;
            self.applied_bytes += e.data.len() as u64;
        }
        Ok(())
    }

    fn restore(&mut self, snap: &Snapshot) -> Result<(), Self::Error> {
        self.applied_index = snap.index();
        Ok(())
    }
}

/// Handles one Ready of `node` with the test kit's reference loop (the crate's Ready contract):
/// early messages go to `out` at once, then the snapshot, entries and hard state are persisted
/// to the MemStorage, then the messages that wait for persistence go to `out`, committed
/// entries are applied (conf changes through `apply_conf_change`) and the node advances.
/// Returns false when there was no Ready.
pub fn handle_ready(
    node: &mut RawNode<MemStorage>,
    sm: &mut ApplyState,
    out: &mut Vec<Message>,
) -> bool {
    if !node.has_ready() {
        return false;
    }
    let rd = node.ready();
    testkit::handle_ready(node, rd, sm, out).expect("the Ready loop in synchronous mode");
    true
}

/// `n` voters in one thread. One round ([`Cluster::round`]) handles a Ready on every node in id
/// order, collecting the messages, then steps every collected message into its target in the
/// order produced; what that produces goes out in the next round.
pub struct Cluster {
    /// `nodes[i]` has id `i + 1`.
    nodes: Vec<RawNode<MemStorage>>,
    sm: Vec<ApplyState>,
    outbox: Vec<Message>,
    /// Messages delivered so far.
    pub delivered: u64,
    /// Messages delivered, by type.
    by_type: [u64; 32],
    /// Step calls that returned an error (none expected between honest nodes).
    pub step_errors: u64,
    /// Rounds run so far.
    pub rounds: u64,
}

impl Cluster {
    pub fn new(voters: u64, mode: AppendMode) -> Cluster {
        let nodes = (1..=voters)
            .map(|id| {
                RawNode::new(&bench_config(id, mode), bench_storage(voters)).expect("RawNode::new")
            })
            .collect();
        Cluster {
            nodes,
            sm: vec![
                ApplyState {
                    applied_index: 1,
                    ..Default::default()
                };
                voters as usize
            ],
            outbox: Vec::new(),
            delivered: 0,
            by_type: [0; 32],
            step_errors: 0,
            rounds: 0,
        }
    }

    fn node(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Node `id` campaigns; rounds run until nothing moves. Panics unless `id` leads and every
    /// node applied the same index (the leader's empty entry).
    pub fn elect(&mut self, id: u64) {
        self.node(id).campaign().expect("campaign");
        let mut guard = 0;
        while self.round() {
            guard += 1;
            assert!(guard < 10_000, "the election does not settle");
        }
        assert_eq!(
            self.node(id).role(),
            StateRole::Leader,
            "node {id} did not win"
        );
        let first = self.sm[0].applied_index;
        assert!(first > 1, "the leader's first entry was not applied");
        assert!(
            self.sm.iter().all(|s| s.applied_index == first),
            "not every node applied the leader's first entry: {:?}",
            self.sm
        );
    }

    /// Proposes `data` on node `id` (the leader).
    #[inline]
    pub fn propose(&mut self, id: u64, data: Bytes) {
        self.node(id).propose(data).expect("propose on the leader");
    }

    /// The lowest count of applied entries over all nodes.
    pub fn min_applied_entries(&self) -> u64 {
        self.sm.iter().map(|s| s.applied_entries).min().unwrap_or(0)
    }

    /// The state machine of node `id`.
    pub fn apply_state(&self, id: u64) -> ApplyState {
        self.sm[(id - 1) as usize]
    }

    /// One round; returns whether anything happened.
    pub fn round(&mut self) -> bool {
        self.rounds += 1;
        let mut busy = false;
        for (node, sm) in self.nodes.iter_mut().zip(self.sm.iter_mut()) {
            busy |= handle_ready(node, sm, &mut self.outbox);
        }
        if self.outbox.is_empty() {
            return busy;
        }
        let mut out = std::mem::take(&mut self.outbox);
        for m in out.drain(..) {
            self.delivered += 1;
            self.by_type[(m.r#type & 31) as usize] += 1;
            let to = m.to as usize;
            if to == 0 || to > self.nodes.len() {
                continue;
            }
            if self.nodes[to - 1].step(m).is_err() {
                self.step_errors += 1;
            }
        }
        self.outbox = out;
        true
    }

    /// Delivered messages by type name, for diagnostics.
    pub fn message_histogram(&self) -> Vec<(&'static str, u64)> {
        (0..32)
            .filter(|&t| self.by_type[t] > 0)
            .map(|t| {
                let name = MessageType::try_from(t as i32).map_or("unknown", |t| t.as_str_name());
                (name, self.by_type[t])
            })
            .collect()
    }
}

/// Many idle followers, each node 2 of its own 3-voter group, each with its own MemStorage, all
/// sharing one `Arc<Config>`.
pub struct IdleGroups {
    nodes: Vec<RawNode<MemStorage>>,
    scratch: Vec<Message>,
}

impl IdleGroups {
    pub fn new(count: usize) -> IdleGroups {
        let cfg = Arc::new(bench_config(2, AppendMode::default()));
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(
                RawNode::with_shared_config(2, 0, Arc::clone(&cfg), bench_storage(3))
                    .expect("RawNode::with_shared_config"),
            );
        }
        IdleGroups {
            nodes,
            scratch: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every node handles one MsgHeartbeat from leader 1 in term 1 and its Ready (the hard
    /// state persisted, the response dropped). Afterwards each is a follower that knows its
    /// leader and has just heard from it.
    pub fn heartbeat_all(&mut self) {
        let mut sm = ApplyState::default();
        for node in &mut self.nodes {
            node.step(Message {
                r#type: MessageType::MsgHeartbeat as i32,
                from: 1,
                to: 2,
                term: 1,
                commit: 1,
                ..Default::default()
            })
            .expect("step a heartbeat");
            handle_ready(node, &mut sm, &mut self.scratch);
            self.scratch.clear();
        }
    }

    /// `tick()` then `has_ready()` on every node; returns how many reported a Ready.
    #[inline(never)]
    pub fn tick_all(&mut self) -> usize {
        let mut ready = 0;
        for node in &mut self.nodes {
            node.tick();
            ready += node.has_ready() as usize;
        }
        ready
    }

    /// How many nodes are followers of leader 1.
    pub fn following(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| {
                let s = n.basic_status().soft_state;
                s.raft_state == StateRole::Follower && s.leader_id == 1
            })
            .count()
    }
}

/// One follower (id 2 of {1, 2, 3}) and a stream of appends as leader 1 sends them in term 1:
/// consecutive indexes, `commit` = the last index of the previous message.
pub struct FollowerAppend {
    node: RawNode<MemStorage>,
    sm: ApplyState,
    out: Vec<Message>,
    msgs: Vec<Message>,
    /// Responses produced (and dropped).
    pub responses: u64,
    /// The index of the last entry sent.
    pub last_sent: u64,
}

impl FollowerAppend {
    /// Builds the follower and `msgs` appends of `per_msg` entries each carrying `payload` (a
    /// clone of one buffer). Nothing here is timed.
    pub fn new(msgs: usize, per_msg: usize, payload: Bytes, mode: AppendMode) -> FollowerAppend {
        let node = RawNode::new(&bench_config(2, mode), bench_storage(3)).expect("RawNode::new");
        let mut queue = Vec::with_capacity(msgs);
        let mut last = 1u64; // the snapshot's index
        for _ in 0..msgs {
            let entries = (0..per_msg as u64)
                .map(|k| Entry {
                    r#type: EntryType::EntryNormal as i32,
                    term: 1,
                    index: last + 1 + k,
                    data: payload.clone(),
                })
                .collect();
            queue.push(Message {
                r#type: MessageType::MsgApp as i32,
                from: 1,
                to: 2,
                term: 1,
                log_term: 1,
                index: last,
                commit: last,
                entries,
                ..Default::default()
            });
            last += per_msg as u64;
        }
        FollowerAppend {
            node,
            sm: ApplyState {
                applied_index: 1,
                ..Default::default()
            },
            out: Vec::new(),
            msgs: queue,
            responses: 0,
            last_sent: last,
        }
    }

    /// Steps every message and handles the Ready after each. Returns the step errors.
    #[inline(never)]
    pub fn run(&mut self) -> u64 {
        let mut errors = 0;
        for m in self.msgs.drain(..) {
            if self.node.step(m).is_err() {
                errors += 1;
            }
            handle_ready(&mut self.node, &mut self.sm, &mut self.out);
            self.responses += self.out.len() as u64;
            self.out.clear();
        }
        errors
    }

    /// The last index of the follower's stable log.
    pub fn last_index(&self) -> u64 {
        raftcore::Storage::last_index(self.node.store()).unwrap_or(0)
    }

    pub fn apply_state(&self) -> ApplyState {
        self.sm
    }
}
