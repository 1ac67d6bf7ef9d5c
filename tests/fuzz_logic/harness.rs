//! A 3-node raftcore group in memory for the fuzz targets: every node has its own MemStorage
//! and runs the Ready contract; the harness checks what an application can see (the core never
//! hands out entries the storage refuses, committed entries come in order and are in the
//! stable log, a snapshot never rolls the state machine back) and, after hostile input, that
//! the honest group still elects a leader and commits a proposal.
//!
//! Only the harness's own set-up may panic on purpose; every panic below that is not in set-up
//! reports a problem in the core.

#![allow(dead_code)]

use bytes::Bytes;
use raftcore::raftpb::{ConfState, Entry, HardState, Message, MessageType, Snapshot};
use raftcore::testkit::{self, ConfOutcome, ReadyError, StateMachine};
use raftcore::{
    AppendMode, Config, Error, MemStorage, RawNode, StateRole, Storage, MAX_REMOTE_VALUE,
};

/// Node ids of the group.
pub const IDS: [u64; 3] = [1, 2, 3];
/// Ticks the honest group gets to commit a proposal on a majority after the hostile input
/// (unless the input made that impossible: see `Cluster::check_liveness`).
pub const LIVENESS_TICKS: usize = 600;
/// Delivery passes per settle, so that a message storm cannot hang the harness.
const SETTLE_PASSES: usize = 64;
const PROBE: &[u8] = b"probe:";
/// The in-flight append limit of every node.
const MAX_INFLIGHT: usize = 16;
/// In the honest phase a node's Ready may carry at most this many appends (and snapshots) to
/// one peer: the in-flight window, plus slack for probes that heartbeat responses release.
const MAX_APPENDS_PER_READY: usize = 4 * MAX_INFLIGHT;
/// See [`Cluster::term_exhausted`].
const TERM_MARGIN: u64 = 1 << 20;

/// How the group is configured and prepared, chosen by the fuzz input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    pub etcd_exact: bool,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Leave a proposal's appends from the leader undelivered in the network.
    pub inflight: bool,
    /// Keep node 3 a follower instead of making it a (pre-)candidate.
    pub no_candidate: bool,
    /// Asynchronous storage writes: the Ready's work comes as MsgStorageAppend and
    /// MsgStorageApply, whose responses go back through `step_local` (done at once here).
    pub async_writes: bool,
    /// With synchronous writes: the Ready's entries are handed over and committed entries are
    /// applied from the storage (`Config::hand_over_entries`, `Config::apply_from_storage`).
    pub hand_over: bool,
}

impl Setup {
    pub fn from_byte(b: u8) -> Setup {
        Setup {
            etcd_exact: b & 1 != 0,
            pre_vote: b & 2 != 0,
            check_quorum: b & 4 != 0,
            inflight: b & 8 != 0,
            no_candidate: b & 16 != 0,
            async_writes: b & 32 != 0,
            hand_over: b & 64 != 0,
        }
    }

    pub fn to_byte(self) -> u8 {
        self.etcd_exact as u8
            | (self.pre_vote as u8) << 1
            | (self.check_quorum as u8) << 2
            | (self.inflight as u8) << 3
            | (self.no_candidate as u8) << 4
            | (self.async_writes as u8) << 5
            | (self.hand_over as u8) << 6
    }
}

pub struct FNode {
    pub raw: RawNode<MemStorage>,
    /// The index of the last entry handed out to apply (or of the restored snapshot).
    pub applied: u64,
    /// Probe numbers this node applied.
    pub probes: Vec<u64>,
    /// The term of every entry applied, by index.
    pub applied_terms: std::collections::BTreeMap<u64, u64>,
    /// The configuration as the application sees it: the last snapshot's or conf change's.
    pub conf: ConfState,
    /// Removed from its own configuration: the application has shut it down (honest phase
    /// only, as an etcd application stops a removed member).
    pub stopped: bool,
}

/// The application of an `FNode`, as the test kit's Ready loop drives it: it checks that
/// committed entries come in order and that a snapshot never rolls it back.
struct FApp<'a> {
    id: u64,
    applied: &'a mut u64,
    probes: &'a mut Vec<u64>,
    applied_terms: &'a mut std::collections::BTreeMap<u64, u64>,
    conf: &'a mut ConfState,
    /// (index, term) of the entries applied in this Ready.
    newly: &'a mut Vec<(u64, u64)>,
}

impl StateMachine for FApp<'_> {
    type Error = std::convert::Infallible;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Result<(), Self::Error> {
        let id = self.id;
        assert_eq!(
            e.index,
            *self.applied + 1,
            "node {id}: committed entries out of order (applied {})",
            self.applied
        );
        *self.applied = e.index;
        self.applied_terms.insert(e.index, e.term);
        self.newly.push((e.index, e.term));
        match conf {
            None => {
                if let Some(rest) = e.data.strip_prefix(PROBE) {
                    if let Ok(b) = <[u8; 8]>::try_from(rest) {
                        self.probes.push(u64::from_be_bytes(b));
                    }
                }
            }
            Some(ConfOutcome::Applied { conf_state, .. }) => {
                check_conf_state(id, conf_state);
                *self.conf = conf_state.clone();
            }
            // A committed conf change that is invalid (or undecodable) is a logged no-op.
            Some(_) => {}
        }
        Ok(())
    }

    fn restore(&mut self, snap: &Snapshot) -> Result<(), Self::Error> {
        let (si, snap_term) = (snap.index(), snap.term());
        assert!(
            si > *self.applied,
            "node {}: a Ready's snapshot at {si} would roll back the state machine, applied {}",
            self.id,
            self.applied
        );
        *self.conf = snap.conf_state();
        *self.applied = si;
        self.applied_terms.insert(si, snap_term);
        Ok(())
    }
}

pub struct Cluster {
    pub nodes: Vec<FNode>,
    /// Set once the hostile input is over: the flow-control check applies from then on.
    honest: bool,
    async_writes: bool,
    /// Messages between the nodes, in the order they were produced.
    pub net: Vec<Message>,
    next_probe: u64,
}

fn initial_conf() -> ConfState {
    ConfState {
        voters: IDS.to_vec(),
        ..Default::default()
    }
}

/// Whether `nodes` hold a majority of `voters` (an empty set of voters has none).
fn majority_of(voters: &[u64], nodes: &[u64]) -> bool {
    let have = voters.iter().filter(|v| nodes.contains(v)).count();
    !voters.is_empty() && have > voters.len() / 2
}

/// A configuration that `apply_conf_change` produced must be one the core accepts in a
/// snapshot (or from its storage at start-up): no node 0, no reserved ids, no contradictions.
fn check_conf_state(id: u64, cs: &ConfState) {
    if let Err(e) = raftcore::confchange::validate_conf_state(cs) {
        panic!("node {id}: apply_conf_change produced a configuration that snapshots and restarts refuse: {cs:?}: {e}");
    }
}

fn is_member(cs: &ConfState, id: u64) -> bool {
    cs.voters.contains(&id)
        || cs.learners.contains(&id)
        || cs.voters_outgoing.contains(&id)
        || cs.learners_next.contains(&id)
}

fn initial_storage() -> MemStorage {
    let mut s = testkit::storage_with_conf_state(initial_conf());
    s.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 1,
    });
    s
}

impl Cluster {
    /// The group after set-up: node 1 leads term 2 with two entries committed everywhere; node
    /// 2 follows; node 3 has started an election whose requests were lost (a candidate, or a
    /// pre-candidate with pre-vote) unless `no_candidate`; with `inflight`, one more proposal's
    /// appends wait in the network.
    pub fn new(setup: Setup) -> Cluster {
        let nodes = IDS
            .iter()
            .map(|&id| {
                let mut cfg = Config::new(id);
                cfg.election_tick = 10;
                cfg.heartbeat_tick = 1;
                cfg.max_size_per_msg = 4096;
                cfg.max_inflight_msgs = MAX_INFLIGHT;
                cfg.pre_vote = setup.pre_vote;
                cfg.check_quorum = setup.check_quorum;
                cfg.append_mode = if setup.etcd_exact {
                    AppendMode::EtcdExact
                } else {
                    AppendMode::Batched
                };
                cfg.seed = 0x5eed;
                cfg.async_storage_writes = setup.async_writes;
                cfg.apply_from_storage = setup.hand_over && !setup.async_writes;
                cfg.hand_over_entries = setup.hand_over && !setup.async_writes;
                FNode {
                    raw: RawNode::new(&cfg, initial_storage()).expect("set-up: RawNode::new"),
                    applied: 1,
                    probes: Vec::new(),
                    applied_terms: Default::default(),
                    conf: initial_conf(),
                    stopped: false,
                }
            })
            .collect();
        let mut c = Cluster {
            nodes,
            honest: false,
            async_writes: setup.async_writes,
            net: Vec::new(),
            next_probe: 0,
        };
        c.node(1).campaign().expect("set-up: campaign");
        c.settle_all();
        assert_eq!(c.node(1).role(), StateRole::Leader, "set-up: node 1 leads");
        for data in [&b"alpha"[..], &b"beta"[..]] {
            c.node(1)
                .propose(Bytes::from_static(data))
                .expect("set-up: propose");
        }
        c.settle_all();
        if !setup.no_candidate {
            c.node(3).campaign().expect("set-up: node 3 campaigns");
            c.handle_ready(2);
            c.net.clear();
            let want = if setup.pre_vote {
                StateRole::PreCandidate
            } else {
                StateRole::Candidate
            };
            assert_eq!(c.node(3).role(), want, "set-up: node 3 campaigns");
        }
        if setup.inflight {
            c.node(1)
                .propose(Bytes::from_static(b"gamma"))
                .expect("set-up: propose");
            c.handle_ready(0);
        }
        c
    }

    pub fn node(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        &mut self.nodes[(id - 1) as usize].raw
    }

    /// The current term, commit index and stable last index of node `i` (0-based), as bases
    /// for plausible hostile values.
    pub fn bases(&self, i: usize) -> (u64, u64, u64) {
        let raw = &self.nodes[i].raw;
        let hs = raw.basic_status().hard_state;
        let last = raw.store().last_index().unwrap_or(0);
        (hs.term, hs.commit, last)
    }

    /// Handles one Ready of node `i` (0-based) and checks what the application sees. Messages
    /// to members of the group join the network; others are dropped.
    pub fn handle_ready(&mut self, i: usize) -> bool {
        let n = &mut self.nodes[i];
        if !n.raw.has_ready() {
            return false;
        }
        let id = n.raw.id();
        let rd = n.raw.ready();
        let mut out = Vec::new();
        let mut newly = Vec::new();
        let mut app = FApp {
            id,
            applied: &mut n.applied,
            probes: &mut n.probes,
            applied_terms: &mut n.applied_terms,
            conf: &mut n.conf,
            newly: &mut newly,
        };
        let res = if self.async_writes {
            assert!(
                rd.persisted_messages.is_empty(),
                "node {id}: persisted_messages with asynchronous writes"
            );
            testkit::handle_ready_async(&mut n.raw, rd, &mut app, &mut out)
        } else {
            testkit::handle_ready(&mut n.raw, rd, &mut app, &mut out)
        };
        match res {
            Ok(_) => {}
            Err(ReadyError::Core(Error::Store(e))) => {
                panic!("node {id}: the storage refuses the Ready's snapshot or entries: {e}")
            }
            Err(ReadyError::Core(Error::InvalidMessage(why))) => {
                panic!("node {id}: its own storage response was refused: {why}")
            }
            Err(e) => panic!("node {id}: the Ready loop failed: {e}"),
        }
        // Committed entries must be in the stable log (the storage does not change while they
        // are applied).
        for (index, term) in newly {
            match n.raw.store().term(index) {
                Ok(t) if t == term => {}
                other => panic!(
                    "node {id}: committed entry {index} (term {term}) is not in the stable log: {other:?}"
                ),
            }
        }
        if self.honest {
            for to in IDS {
                let appends = out
                    .iter()
                    .filter(|m| {
                        m.to == to
                            && (m.r#type == MessageType::MsgApp as i32
                                || m.r#type == MessageType::MsgSnap as i32)
                    })
                    .count();
                assert!(
                    appends <= MAX_APPENDS_PER_READY,
                    "flow control: node {id} sends {appends} appends to node {to} in one Ready (max_inflight_msgs {MAX_INFLIGHT})"
                );
            }
        }
        for m in &out {
            // Forwarded proposals, read requests and transfer requests keep their sender, as
            // in etcd.
            let forwarded = m.r#type == MessageType::MsgProp as i32
                || m.r#type == MessageType::MsgReadIndex as i32
                || m.r#type == MessageType::MsgTransferLeader as i32;
            assert!(
                m.from == id || forwarded,
                "node {id} sent a message as {}: {m:?}",
                m.from
            );
            assert_ne!(m.to, id, "node {id} sent a message to itself: {m:?}");
        }
        self.net
            .extend(out.into_iter().filter(|m| IDS.contains(&m.to)));
        true
    }

    /// One pass: every node handles its Ready, then every message in the network is stepped
    /// into its target (errors are the target's business). Returns whether anything happened.
    pub fn pass(&mut self) -> bool {
        let mut busy = false;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].stopped {
                busy |= self.handle_ready(i);
            }
        }
        let msgs = std::mem::take(&mut self.net);
        busy |= !msgs.is_empty();
        for m in msgs {
            let n = &mut self.nodes[(m.to - 1) as usize];
            if !n.stopped {
                let _ = n.raw.step(m);
            }
        }
        busy
    }

    /// Passes until nothing moves (bounded).
    pub fn settle(&mut self) {
        for _ in 0..SETTLE_PASSES {
            if !self.pass() {
                return;
            }
        }
    }

    /// Set-up only: passes until nothing moves, which must happen.
    fn settle_all(&mut self) {
        for _ in 0..SETTLE_PASSES {
            if !self.pass() {
                return;
            }
        }
        panic!("set-up: the honest group does not settle");
    }

    pub fn tick_all(&mut self) {
        for n in self.nodes.iter_mut().filter(|n| !n.stopped) {
            n.raw.tick();
        }
    }

    /// Stops the nodes whose applied configuration no longer holds them. Returns whether the
    /// running nodes can still form a quorum in every node's applied configuration: a
    /// committed conf change (honest or forged) that makes a node that does not exist a
    /// voter can stall a group for good, in etcd as here.
    fn stop_removed(&mut self) -> bool {
        for n in &mut self.nodes {
            if !is_member(&n.conf, n.raw.id()) {
                n.stopped = true;
            }
        }
        let live: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| !n.stopped)
            .map(|n| n.raw.id())
            .collect();
        self.nodes.iter().all(|n| {
            majority_of(&n.conf.voters, &live)
                && (n.conf.voters_outgoing.is_empty()
                    || majority_of(&n.conf.voters_outgoing, &live))
        })
    }

    /// A limit of the core, not checked here: terms and indexes stop at `MAX_REMOTE_VALUE`. A
    /// node at that term cannot campaign (its next term would be refused by the others) and a
    /// node whose log reaches that index leads with appends every follower refuses. One message
    /// may move a term or a snapshot index at most `MAX_TERM_JUMP`, so forged input needs many
    /// messages to get there, but it can. Liveness is not checked once a node's term or last
    /// index is within `TERM_MARGIN` of the limit.
    fn term_exhausted(&self) -> bool {
        self.nodes.iter().any(|n| {
            n.raw.basic_status().hard_state.term > MAX_REMOTE_VALUE - TERM_MARGIN
                || n.raw.store().last_index().unwrap_or(0) > MAX_REMOTE_VALUE - TERM_MARGIN
        })
    }

    /// Whether two nodes applied different entries (by term) at one index, or a leader's log
    /// lacks an entry another node applied. Forged input can do that in any Raft: forged vote
    /// grants, or a forged entry of a term that never had a leader, elect a node whose log
    /// misses committed entries. The followers then refuse its appends while its heartbeats
    /// keep them from electing another leader, so progress cannot be expected.
    fn diverged(&self) -> bool {
        let applied_apart = self.nodes.iter().enumerate().any(|(i, a)| {
            self.nodes[i + 1..].iter().any(|b| {
                a.applied_terms
                    .iter()
                    .any(|(idx, t)| b.applied_terms.get(idx).is_some_and(|u| u != t))
            })
        });
        let leader_incomplete = self.nodes.iter().any(|a| {
            if a.raw.role() != StateRole::Leader {
                return false;
            }
            let store = a.raw.store();
            let first = store.first_index().unwrap_or(0);
            let last = store.last_index().unwrap_or(0);
            self.nodes.iter().any(|b| {
                b.applied_terms
                    .range(first.saturating_sub(1)..)
                    .any(|(&idx, &t)| idx > last || store.term(idx).is_ok_and(|u| u != t))
            })
        });
        applied_apart || leader_incomplete
    }

    /// Whether a probe was applied by a majority of the group ({1, 2, 3}), or, once committed
    /// conf changes or snapshots (honest or forged) changed a node's configuration, by a
    /// majority of that node's configuration (of both halves of a joint one).
    fn probe_on_majority(&self) -> bool {
        (0..self.next_probe).any(|p| {
            let have: Vec<u64> = self
                .nodes
                .iter()
                .filter(|n| n.probes.contains(&p))
                .map(|n| n.raw.id())
                .collect();
            if have.len() >= 2 {
                return true;
            }
            self.nodes.iter().any(|n| {
                let cs = &n.conf;
                *cs != initial_conf()
                    && majority_of(&cs.voters, &have)
                    && (cs.voters_outgoing.is_empty() || majority_of(&cs.voters_outgoing, &have))
            })
        })
    }

    /// The honest group, driven by ticks, must commit and apply a proposal on a majority of its
    /// nodes within `LIVENESS_TICKS`. Proposals go to every node that believes it leads. Nodes
    /// removed from their own configuration stop, as an application stops a removed member.
    /// Not checked when no quorum can form any more (a committed configuration needs nodes
    /// that do not exist), when a term reached the core's limit (`term_exhausted`), or when
    /// the nodes applied different entries at one index (`diverged`).
    pub fn check_liveness(&mut self) {
        self.honest = true;
        if self.term_exhausted() {
            return;
        }
        for tick in 0..LIVENESS_TICKS {
            if !self.stop_removed() {
                return;
            }
            self.settle();
            if self.probe_on_majority() {
                return;
            }
            if tick % 8 == 0 {
                for i in 0..self.nodes.len() {
                    if !self.nodes[i].stopped && self.nodes[i].raw.role() == StateRole::Leader {
                        let mut data = PROBE.to_vec();
                        data.extend_from_slice(&self.next_probe.to_be_bytes());
                        self.next_probe += 1;
                        let _ = self.nodes[i].raw.propose(Bytes::from(data));
                    }
                }
                self.settle();
                if self.probe_on_majority() {
                    return;
                }
            }
            self.tick_all();
        }
        if self.diverged() {
            return;
        }
        panic!(
            "liveness: no proposal committed on a majority within {LIVENESS_TICKS} ticks\n{}",
            self.describe()
        );
    }

    /// A summary of every node, for failure reports.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let st = n.raw.status();
            let last = n.raw.store().last_index().unwrap_or(0);
            let first = n.raw.store().first_index().unwrap_or(0);
            let last_term = n.raw.store().term(last).unwrap_or(0);
            s.push_str(&format!(
                "node {}: {:?} term {} vote {} lead {} commit {} applied {} log [{first}, {last}] last term {last_term} probes {:?} config {:?} applied conf {:?}{}\n",
                st.id,
                st.soft_state.raft_state,
                st.hard_state.term,
                st.hard_state.vote,
                st.soft_state.leader_id,
                st.hard_state.commit,
                n.applied,
                n.probes,
                st.config,
                n.conf,
                if n.stopped { " (stopped)" } else { "" },
            ));
        }
        s
    }
}
