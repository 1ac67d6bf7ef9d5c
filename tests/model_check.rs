//! Bounded exhaustive model checking of the real `RawNode`.
//!
//! An explorer over a cluster of real `RawNode<MemStorage>`s (not a model of them),
//! breadth-first (or depth-first for the deep probe): every state is a clone of the nodes, the multiset of messages in flight and a little
//! history (the leader of every term, every entry ever known committed, the reads asked). From
//! each state every enabled action is tried: deliver any message (or deliver it and crash the
//! receiver after its early messages left and before its persist), drop or duplicate a message,
//! campaign, crash and restart a node from its durable storage, propose, ask a linearizable
//! read, tick a leader. States are hashed; a state seen before is not expanded again. The
//! invariants are checked at every new state. `docs/model-checking.md` gives the bounds, the
//! figures and how to run a longer exploration (`MODEL_CHECK_DEPTH`, `MODEL_CHECK_BOUNDS`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use bytes::Bytes;
use prost::Message as _;
use raftcore::raftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message,
};
use raftcore::{Config, MemStorage, RawNode, StateRole, Storage};

// ---------------------------------------------------------------------------------------------
// Bounds and scenarios.

/// The bounds of one exploration. Every action that would exceed one is not taken.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// Actions from the initial state.
    depth: usize,
    /// No campaign past this term.
    max_term: u64,
    /// Client proposals (on a leader).
    proposals: u8,
    /// `read_index` calls (on any node).
    reads: u8,
    /// Crash-restarts (plain, or in the middle of handling a Ready).
    crashes: u8,
    /// Messages dropped.
    drops: u8,
    /// Messages duplicated.
    dups: u8,
    /// Ticks of a leader (heartbeats).
    ticks: u8,
    /// Messages in flight at once.
    inflight: usize,
    /// Each link delivers in order (a bound for deep searches: no reordering on a link, only
    /// across links; loss and duplication still apply).
    fifo: bool,
}

impl Bounds {
    /// Applies `MODEL_CHECK_DEPTH=N` and `MODEL_CHECK_BOUNDS=key=value,...` (keys: the field
    /// names, `terms` for `max_term`).
    fn with_env(mut self) -> Bounds {
        if let Ok(d) = std::env::var("MODEL_CHECK_DEPTH") {
            self.depth = d.trim().parse().expect("MODEL_CHECK_DEPTH is a number");
        }
        if let Ok(spec) = std::env::var("MODEL_CHECK_BOUNDS") {
            for kv in spec.split(',').filter(|s| !s.trim().is_empty()) {
                let (k, v) = kv
                    .split_once('=')
                    .expect("MODEL_CHECK_BOUNDS is key=value,...");
                let v: u64 = v.trim().parse().expect("a bound is a number");
                let small = || u8::try_from(v).expect("a budget is at most 255");
                match k.trim() {
                    "depth" => self.depth = v as usize,
                    "terms" | "max_term" => self.max_term = v,
                    "proposals" => self.proposals = small(),
                    "reads" => self.reads = small(),
                    "crashes" => self.crashes = small(),
                    "drops" => self.drops = small(),
                    "dups" => self.dups = small(),
                    "ticks" => self.ticks = small(),
                    "inflight" => self.inflight = v as usize,
                    "fifo" => self.fifo = v != 0,
                    other => panic!("unknown bound {other}"),
                }
            }
        }
        self
    }
}

/// The cluster explored.
struct Scenario {
    name: &'static str,
    /// Every node's id (node `ids[i]` is `State::nodes[i]`).
    ids: Vec<u64>,
    /// The voters every node's storage starts with.
    voters: Vec<u64>,
    /// A node the leader adds with a conf change (once), if any.
    add: Option<u64>,
    /// Start once node 1 has been elected and its first entry committed (it campaigns, then
    /// every message is delivered in sending order): the exploration spends its depth on what
    /// comes after.
    elected: bool,
}

fn three_nodes() -> Scenario {
    Scenario {
        name: "3 voters",
        ids: vec![1, 2, 3],
        voters: vec![1, 2, 3],
        add: None,
        elected: false,
    }
}

/// Voters 1 and 2; node 3 runs from the start, knows the group and waits to be added.
fn two_to_three() -> Scenario {
    Scenario {
        name: "2 voters, add node 3",
        ids: vec![1, 2, 3],
        voters: vec![1, 2],
        add: Some(3),
        elected: true,
    }
}

fn config(id: u64) -> Config {
    let mut c = Config::new(id);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c
}

// ---------------------------------------------------------------------------------------------
// Hashing.

/// A fast 128-bit hash for state fingerprints: two multiply-xorshift lanes over 8-byte words,
/// with different constants, mixed again at the end.
struct Hash128 {
    a: u64,
    b: u64,
    len: u64,
}

impl Hash128 {
    fn new() -> Self {
        Hash128 {
            a: 0x243F_6A88_85A3_08D3,
            b: 0x1319_8A2E_0370_7344,
            len: 0,
        }
    }

    fn word(&mut self, w: u64) {
        self.a = (self.a ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.a ^= self.a >> 32;
        self.b = (self.b ^ w.rotate_left(23)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        self.b ^= self.b >> 29;
    }

    fn finish128(&self) -> u128 {
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let a = mix(self.a ^ self.len);
        let b = mix(self.b.wrapping_add(self.len));
        (u128::from(a) << 64) | u128::from(b ^ a.rotate_left(7))
    }
}

impl Hasher for Hash128 {
    fn write(&mut self, bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    fn finish(&self) -> u64 {
        self.finish128() as u64
    }
}

/// The fingerprint of a node: its whole `Debug` form (every field of the node, its storage
/// included), less three fields no action here can observe: the constant config, the state of
/// the election-timeout generator and the timeout drawn from it (only a follower's or a
/// candidate's ticks read them, and the explorer ticks only leaders).
fn fingerprint(raw: &RawNode<MemStorage>) -> u128 {
    let s = format!("{raw:?}");
    let mut h = Hash128::new();
    // The three fields are near the end: search from there.
    let cursor = s
        .rfind("}, cursor: ReadyCursor")
        .expect("RawNode has a cursor");
    let cfg = s[..cursor]
        .rfind(", cfg: Config {")
        .expect("Raft has a cfg field");
    let head = &s[..cfg];
    let key = "randomized_election_timeout: ";
    let r = head.rfind(key).expect("Raft has a randomized timeout") + key.len();
    let end = r + head[r..].find(',').expect("a field follows");
    h.write(&head.as_bytes()[..r]);
    h.write(&head.as_bytes()[end..]);
    h.write(&s.as_bytes()[cursor..]);
    h.finish128()
}

fn data_hash(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    e.r#type.hash(&mut h);
    e.data.hash(&mut h);
    h.finish()
}

// ---------------------------------------------------------------------------------------------
// The state.

#[derive(Clone)]
struct Node {
    raw: RawNode<MemStorage>,
    fp: u128,
    /// The application's state machine: a hash chain of the entries applied.
    chain: u64,
}

/// An entry some node knew committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Committed {
    term: u64,
    /// The lowest term a node was at when it knew the entry committed.
    commit_term: u64,
    /// The hash of its type and data, once some node applied it.
    data: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Used {
    proposals: u8,
    reads: u8,
    crashes: u8,
    drops: u8,
    dups: u8,
    ticks: u8,
    conf: u8,
}

#[derive(Clone)]
struct State {
    nodes: Vec<Node>,
    /// The messages in flight, sorted by their encoding (a multiset).
    net: Vec<Message>,
    used: Used,
    /// `(term, leader)` of every leader ever seen.
    leaders: Vec<(u64, u64)>,
    /// Entry `i` at `ledger[i - 1]`: everything ever known committed.
    ledger: Vec<Committed>,
    /// Read `k` (context `r{k}`): the highest index known committed when it was asked.
    reads: Vec<u64>,
}

impl State {
    fn hash(&self) -> u128 {
        let mut h = Hash128::new();
        for n in &self.nodes {
            h.write_u128(n.fp);
            h.write_u64(n.chain);
        }
        h.write_usize(self.net.len());
        for m in &self.net {
            h.write(&m.encode_to_vec());
        }
        self.used.hash(&mut h);
        self.leaders.hash(&mut h);
        self.ledger.hash(&mut h);
        self.reads.hash(&mut h);
        h.finish128()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Deliver(usize),
    /// Deliver, send the Ready's early messages, crash before the persist.
    DeliverCrash(usize),
    Drop(usize),
    Dup(usize),
    Campaign(usize),
    Crash(usize),
    Propose(usize),
    ProposeConf(usize),
    Read(usize),
    Tick(usize),
}

#[derive(Debug)]
struct Violation {
    kind: &'static str,
    detail: String,
}

fn violation(kind: &'static str, detail: String) -> Violation {
    Violation { kind, detail }
}

type Check = Result<(), Violation>;

// ---------------------------------------------------------------------------------------------
// The harness around the real nodes.

struct Checker<'a> {
    sc: &'a Scenario,
    bounds: Bounds,
    /// Reads released and conf changes applied, over every transition tried: evidence the
    /// exploration reached them.
    reads_released: u64,
    conf_applied: u64,
}

fn msg_summary(m: &Message) -> String {
    let t = m.msg_type().map(|t| t.as_str_name()).unwrap_or("unknown");
    let mut s = format!("{t} {}->{} term={}", m.from, m.to, m.term);
    if m.log_term != 0 || m.index != 0 {
        let _ = write!(s, " logterm={} index={}", m.log_term, m.index);
    }
    if !m.entries.is_empty() {
        let ents: Vec<String> = m
            .entries
            .iter()
            .map(|e| format!("{}@{}", e.index, e.term))
            .collect();
        let _ = write!(s, " entries=[{}]", ents.join(","));
    }
    if m.commit != 0 {
        let _ = write!(s, " commit={}", m.commit);
    }
    if m.reject {
        let _ = write!(s, " reject hint={}", m.reject_hint);
    }
    if !m.context.is_empty() {
        let _ = write!(s, " ctx={:?}", m.context);
    }
    s
}

impl Checker<'_> {
    fn initial(&self) -> State {
        let nodes = self
            .sc
            .ids
            .iter()
            .map(|&id| {
                let store = MemStorage::new_with_conf_state(ConfState {
                    voters: self.sc.voters.clone(),
                    ..Default::default()
                });
                let raw = RawNode::new(&config(id), store).expect("node starts");
                Node {
                    fp: fingerprint(&raw),
                    raw,
                    chain: 0,
                }
            })
            .collect();
        State {
            nodes,
            net: Vec::new(),
            used: Used::default(),
            leaders: Vec::new(),
            ledger: Vec::new(),
            reads: Vec::new(),
        }
    }

    fn idx(&self, id: u64) -> usize {
        self.sc
            .ids
            .iter()
            .position(|&i| i == id)
            .expect("a message to a known node")
    }

    /// Node 1 campaigns and every message is delivered, oldest first, until none is left.
    fn elect_first(&mut self, st: State) -> State {
        let mut st = self
            .apply(&st, Action::Campaign(0))
            .expect("no violation")
            .expect("within bounds");
        while !st.net.is_empty() {
            st = self
                .apply(&st, Action::Deliver(0))
                .expect("no violation")
                .expect("within bounds");
        }
        assert_eq!(st.nodes[0].raw.role(), StateRole::Leader);
        assert!(!st.ledger.is_empty(), "the first entry is committed");
        st
    }

    /// The actions enabled in `st`.
    fn actions(&self, st: &State) -> Vec<Action> {
        let b = &self.bounds;
        let u = &st.used;
        let mut v = Vec::new();
        for k in 0..st.net.len() {
            let m = &st.net[k];
            if k > 0 && st.net[k] == st.net[k - 1] {
                continue; // the same message twice: one choice
            }
            let head = k == 0 || (st.net[k - 1].from, st.net[k - 1].to) != (m.from, m.to);
            if b.fifo && !head {
                continue; // only the oldest message of a link may arrive
            }
            v.push(Action::Deliver(k));
            if u.crashes < b.crashes {
                v.push(Action::DeliverCrash(k));
            }
            if u.drops < b.drops {
                v.push(Action::Drop(k));
            }
            if u.dups < b.dups && st.net.len() < b.inflight {
                v.push(Action::Dup(k));
            }
        }
        for (i, n) in st.nodes.iter().enumerate() {
            let id = self.sc.ids[i];
            let leader = n.raw.role() == StateRole::Leader;
            if !leader && n.raw.term() < b.max_term && n.raw.conf_state().voters.contains(&id) {
                v.push(Action::Campaign(i));
            }
            if u.crashes < b.crashes {
                v.push(Action::Crash(i));
            }
            if leader && u.proposals < b.proposals {
                v.push(Action::Propose(i));
            }
            if leader && self.sc.add.is_some() && u.conf == 0 {
                v.push(Action::ProposeConf(i));
            }
            if u.reads < b.reads {
                v.push(Action::Read(i));
            }
            if leader && u.ticks < b.ticks {
                v.push(Action::Tick(i));
            }
        }
        v
    }

    fn describe(&self, st: &State, a: Action) -> String {
        let id = |i: usize| self.sc.ids[i];
        match a {
            Action::Deliver(k) => format!("deliver {}", msg_summary(&st.net[k])),
            Action::DeliverCrash(k) => format!(
                "deliver {}, send the early messages, crash before persisting",
                msg_summary(&st.net[k])
            ),
            Action::Drop(k) => format!("drop {}", msg_summary(&st.net[k])),
            Action::Dup(k) => format!("duplicate {}", msg_summary(&st.net[k])),
            Action::Campaign(i) => format!("node {} campaigns", id(i)),
            Action::Crash(i) => format!("node {} crashes and restarts", id(i)),
            Action::Propose(i) => format!("node {} proposes p{}", id(i), st.used.proposals),
            Action::ProposeConf(i) => format!(
                "node {} proposes adding node {}",
                id(i),
                self.sc.add.unwrap_or_default()
            ),
            Action::Read(i) => format!("node {} asks read r{}", id(i), st.used.reads),
            Action::Tick(i) => format!("node {} (leader) ticks", id(i)),
        }
    }

    /// Records a leader (election safety: one per term, over the whole history).
    fn note_leader(&self, st: &mut State, i: usize) -> Check {
        let n = &st.nodes[i].raw;
        if n.role() != StateRole::Leader {
            return Ok(());
        }
        let (term, id) = (n.term(), self.sc.ids[i]);
        match st.leaders.binary_search_by_key(&term, |&(t, _)| t) {
            Ok(p) if st.leaders[p].1 != id => Err(violation(
                "election safety",
                format!(
                    "nodes {} and {id} are both leaders of term {term}",
                    st.leaders[p].1
                ),
            )),
            Ok(_) => Ok(()),
            Err(p) => {
                st.leaders.insert(p, (term, id));
                Ok(())
            }
        }
    }

    /// Records what node `i` knows committed in the ledger; it must agree with what any node
    /// ever knew committed (state-machine safety).
    fn note_commits(&self, st: &mut State, i: usize) -> Check {
        let n = &st.nodes[i].raw;
        let id = self.sc.ids[i];
        let term_now = n.term();
        for idx in 1..=n.commit() {
            let t = n.term_at(idx).map_err(|e| {
                violation(
                    "log",
                    format!("node {id}: committed index {idx} is not in its log: {e}"),
                )
            })?;
            match st.ledger.get_mut(idx as usize - 1) {
                Some(c) if c.term != t => {
                    return Err(violation(
                        "state-machine safety",
                        format!(
                            "node {id} has entry {idx} of term {t} committed, but an entry of term {} was committed there",
                            c.term
                        ),
                    ))
                }
                Some(c) => c.commit_term = c.commit_term.min(term_now),
                None => st.ledger.push(Committed {
                    term: t,
                    commit_term: term_now,
                    data: None,
                }),
            }
        }
        Ok(())
    }

    /// Steps a message to node `i` (a refused message changes nothing) and records what it
    /// learnt.
    fn step(&self, st: &mut State, i: usize, m: Message) -> Check {
        let _ = st.nodes[i].raw.step(m);
        self.note_leader(st, i)?;
        self.note_commits(st, i)
    }

    /// Handles node `i`'s Readies until it has none: persist, send, apply, advance.
    fn settle(&mut self, st: &mut State, i: usize) -> Check {
        let id = self.sc.ids[i];
        while st.nodes[i].raw.has_ready() {
            self.note_leader(st, i)?;
            self.note_commits(st, i)?;
            let rd = st.nodes[i].raw.ready();
            let node = &mut st.nodes[i];
            let store = node.raw.store_mut();
            if let Some(s) = &rd.snapshot {
                store.apply_snapshot(s.clone()).expect("snapshot applies");
            }
            store.append(&rd.entries).expect("append");
            if let Some(hs) = rd.hard_state {
                store.set_hard_state(hs);
            }
            st.net.extend(rd.messages.iter().cloned());
            st.net.extend(rd.persisted_messages.iter().cloned());
            for e in &rd.committed_entries {
                let node = &mut st.nodes[i];
                let dh = data_hash(e);
                let mut h = DefaultHasher::new();
                (node.chain, e.index, e.term, dh).hash(&mut h);
                node.chain = h.finish();
                match e.entry_type() {
                    EntryType::EntryNormal => {}
                    EntryType::EntryConfChange => {
                        let cc = ConfChange::decode(e.data.clone()).expect("conf change");
                        if node.raw.apply_conf_change(&cc.into()).is_ok() {
                            self.conf_applied += 1;
                        }
                    }
                    EntryType::EntryConfChangeV2 => {
                        let cc = ConfChangeV2::decode(e.data.clone()).expect("conf change");
                        if node.raw.apply_conf_change(&cc.into()).is_ok() {
                            self.conf_applied += 1;
                        }
                    }
                }
                let Some(c) = st.ledger.get_mut(e.index as usize - 1) else {
                    return Err(violation(
                        "state-machine safety",
                        format!("node {id} applies entry {} not known committed", e.index),
                    ));
                };
                if c.term != e.term || c.data.is_some_and(|d| d != dh) {
                    return Err(violation(
                        "state-machine safety",
                        format!(
                            "node {id} applies entry {} of term {} unlike the committed one (term {})",
                            e.index, e.term, c.term
                        ),
                    ));
                }
                c.data = Some(dh);
            }
            for rs in &rd.read_states {
                self.reads_released += 1;
                let k: usize = std::str::from_utf8(&rs.request_ctx[1..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .expect("read contexts are r<k>");
                let floor = st.reads[k];
                if rs.index < floor {
                    return Err(violation(
                        "read linearizability",
                        format!(
                            "node {id} released read r{k} at index {} but index {floor} was committed before the read was asked",
                            rs.index
                        ),
                    ));
                }
            }
            st.nodes[i].raw.advance().expect("sync mode");
        }
        self.note_leader(st, i)?;
        self.note_commits(st, i)
    }

    /// Rebuilds node `i` from its durable storage, losing everything else.
    fn crash(&self, st: &mut State, i: usize) {
        let store = st.nodes[i].raw.store().clone();
        let raw = RawNode::new(&config(self.sc.ids[i]), store).expect("node restarts");
        st.nodes[i] = Node {
            fp: 0,
            raw,
            chain: 0,
        };
    }

    /// The successor of `st` by `a`, `Ok(None)` when a bound forbids it.
    fn apply(&mut self, st: &State, a: Action) -> Result<Option<State>, Violation> {
        let mut s = st.clone();
        let mut touched = None;
        let fresh = st.net.len().saturating_sub(1);
        match a {
            Action::Deliver(k) => {
                let m = s.net.remove(k);
                let i = self.idx(m.to);
                self.step(&mut s, i, m)?;
                self.settle(&mut s, i)?;
                touched = Some(i);
            }
            Action::DeliverCrash(k) => {
                let m = s.net.remove(k);
                let i = self.idx(m.to);
                self.step(&mut s, i, m)?;
                let rd = s.nodes[i].raw.ready();
                s.net.extend(rd.messages);
                self.crash(&mut s, i);
                s.used.crashes += 1;
                self.settle(&mut s, i)?;
                touched = Some(i);
            }
            Action::Drop(k) => {
                s.net.remove(k);
                s.used.drops += 1;
            }
            Action::Dup(k) => {
                let m = s.net[k].clone();
                s.net.insert(k + 1, m);
                s.used.dups += 1;
            }
            Action::Campaign(i) => {
                let _ = s.nodes[i].raw.campaign();
                self.settle(&mut s, i)?;
                touched = Some(i);
            }
            Action::Crash(i) => {
                self.crash(&mut s, i);
                s.used.crashes += 1;
                self.settle(&mut s, i)?;
                touched = Some(i);
            }
            Action::Propose(i) => {
                let data = Bytes::from(format!("p{}", s.used.proposals));
                s.used.proposals += 1;
                let _ = s.nodes[i].raw.propose(data);
                self.settle(&mut s, i)?;
                touched = Some(i);
            }
            Action::ProposeConf(i) => {
                let cc = ConfChange {
                    r#type: ConfChangeType::ConfChangeAddNode as i32,
                    node_id: self.sc.add.expect("a node to add"),
                    ..Default::default()
                };
                s.used.conf += 1;
                let _ = s.nodes[i].raw.propose_conf_change(cc);
                self.settle(&mut s, i)?;
                touched = Some(i);
            }
            Action::Read(i) => {
                let k = s.used.reads;
                s.used.reads += 1;
                s.reads.push(s.ledger.len() as u64);
                let _ = s.nodes[i].raw.read_index(Bytes::from(format!("r{k}")));
                self.settle(&mut s, i)?;
                touched = Some(i);
            }
            Action::Tick(i) => {
                s.used.ticks += 1;
                s.nodes[i].raw.tick();
                self.settle(&mut s, i)?;
                touched = Some(i);
            }
        }
        if let Some(i) = touched {
            s.nodes[i].fp = fingerprint(&s.nodes[i].raw);
        }
        self.collect_stale(&mut s, fresh, touched);
        if s.net.len() > self.bounds.inflight {
            return Ok(None);
        }
        if self.bounds.fifo {
            // Links in a fixed order, each in sending order (a stable sort).
            s.net.sort_by_key(|m| (m.from, m.to));
        } else {
            s.net.sort_by_cached_key(|m| m.encode_to_vec());
        }
        Ok(Some(s))
    }

    /// Drops the messages whose delivery can change nothing: their term is below the
    /// receiver's durable term (which never goes down, even across a crash), and stepping the
    /// message now leaves the receiver exactly as it is. Keeping them would multiply the states
    /// by every subset of stale messages still in flight. Only the messages sent by this action
    /// (from `fresh` on) and those to the node it touched are probed: the others were probed
    /// with the same receiver state before.
    fn collect_stale(&self, s: &mut State, fresh: usize, touched: Option<usize>) {
        let mut k = 0;
        let mut fresh = fresh;
        while k < s.net.len() {
            let m = &s.net[k];
            let i = self.idx(m.to);
            let node = &s.nodes[i];
            if (k >= fresh || touched == Some(i))
                && m.term != 0
                && m.term < node.raw.store().hard_state().term
            {
                let mut probe = node.raw.clone();
                let _ = probe.step(m.clone());
                if !probe.has_ready() && fingerprint(&probe) == node.fp {
                    s.net.remove(k);
                    if k < fresh {
                        fresh -= 1;
                    }
                    continue;
                }
            }
            k += 1;
        }
    }

    /// The invariants every state must satisfy (election and state-machine safety are checked
    /// as the history is recorded, in `note_leader` and `note_commits`).
    fn check(&self, st: &State) -> Check {
        let ids = &self.sc.ids;
        // Log matching: two logs that hold an entry of the same index and term agree on every
        // entry up to it; entries both persisted with the same index and term have the same
        // data.
        for a in 0..st.nodes.len() {
            for b in a + 1..st.nodes.len() {
                let (na, nb) = (&st.nodes[a].raw, &st.nodes[b].raw);
                let last = na.last_index().min(nb.last_index());
                let mut agree_to = 0;
                for i in (1..=last).rev() {
                    if na.term_at(i).ok() == nb.term_at(i).ok() {
                        agree_to = i;
                        break;
                    }
                }
                for i in 1..agree_to {
                    if na.term_at(i).ok() != nb.term_at(i).ok() {
                        return Err(violation(
                            "log matching",
                            format!(
                                "nodes {} and {} agree on entry {agree_to} but not on entry {i}",
                                ids[a], ids[b]
                            ),
                        ));
                    }
                }
                let (sa, sb) = (na.store(), nb.store());
                let plast = sa
                    .last_index()
                    .unwrap_or(0)
                    .min(sb.last_index().unwrap_or(0));
                if plast >= 1 {
                    let ea = sa.entries(1, plast + 1, u64::MAX).unwrap_or_default();
                    let eb = sb.entries(1, plast + 1, u64::MAX).unwrap_or_default();
                    for (x, y) in ea.iter().zip(eb.iter()) {
                        if x.term == y.term && (x.data != y.data || x.r#type != y.r#type) {
                            return Err(violation(
                                "log matching",
                                format!(
                                    "nodes {} and {} hold different entries at index {} term {}",
                                    ids[a], ids[b], x.index, x.term
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for (i, n) in st.nodes.iter().enumerate() {
            let raw = &n.raw;
            // Leader completeness: a leader holds every entry committed in an earlier term
            // (or in its own).
            if raw.role() == StateRole::Leader {
                for (k, c) in st.ledger.iter().enumerate() {
                    let idx = k as u64 + 1;
                    if c.commit_term <= raw.term() && raw.term_at(idx).ok() != Some(c.term) {
                        return Err(violation(
                            "leader completeness",
                            format!(
                                "node {} leads term {} without entry {idx} (term {}) committed in term {}",
                                ids[i],
                                raw.term(),
                                c.term,
                                c.commit_term
                            ),
                        ));
                    }
                }
            }
        }
        // Durability: every entry known committed is in the durable log of a majority.
        let quorum = self.sc.ids.len() / 2 + 1;
        for (k, c) in st.ledger.iter().enumerate() {
            let idx = k as u64 + 1;
            let holders = st
                .nodes
                .iter()
                .filter(|n| n.raw.store().term(idx).ok() == Some(c.term))
                .count();
            if holders < quorum {
                return Err(violation(
                    "durability",
                    format!(
                        "committed entry {idx} (term {}) is durable on {holders} nodes only",
                        c.term
                    ),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The explorer.

struct Outcome {
    states: usize,
    transitions: u64,
    depth: usize,
    max_term: u64,
    max_committed: usize,
    reads_released: u64,
    conf_applied: u64,
    /// States in which the added node is a voter by its own configuration.
    joined: u64,
    /// The state cap stopped the search.
    incomplete: bool,
    violation: Option<(Violation, Vec<String>)>,
}

/// How the state space is searched.
#[derive(Debug, Clone, Copy)]
struct Search {
    /// Depth-first rather than breadth-first.
    dfs: bool,
    /// Stop after this many distinct states (the run then says it is incomplete).
    max_states: usize,
}

/// Breadth-first, no cap: every state within the bounds.
const EXHAUSTIVE: Search = Search {
    dfs: false,
    max_states: usize::MAX,
};

impl Search {
    /// Applies `MODEL_CHECK_ORDER=dfs|bfs` and `MODEL_CHECK_MAX_STATES=N`.
    fn with_env(mut self) -> Search {
        if let Ok(o) = std::env::var("MODEL_CHECK_ORDER") {
            self.dfs = o == "dfs";
        }
        if let Ok(n) = std::env::var("MODEL_CHECK_MAX_STATES") {
            self.max_states = n
                .trim()
                .parse()
                .expect("MODEL_CHECK_MAX_STATES is a number");
        }
        self
    }
}

fn explore(sc: &Scenario, bounds: Bounds, search: Search) -> Outcome {
    let search = search.with_env();
    let start = Instant::now();
    let mut ck = Checker {
        sc,
        bounds,
        reads_released: 0,
        conf_applied: 0,
    };
    let mut init = ck.initial();
    if sc.elected {
        init = ck.elect_first(init);
    }
    let mut seen: HashSet<u128> = HashSet::new();
    seen.insert(init.hash());
    // The parent and action of every state, to print a trace.
    let mut parents: Vec<(u32, Option<Action>)> = vec![(0, None)];
    let (dfs, max_states) = (search.dfs, search.max_states);
    // Breadth-first by default (every state within the depth bound, shortest traces);
    // depth-first for probes (deep states sooner, with the depth bound as a cap).
    let mut frontier: VecDeque<(u32, State, usize)> = VecDeque::from([(0, init.clone(), 0)]);
    let mut out = Outcome {
        states: 1,
        transitions: 0,
        depth: 0,
        max_term: 0,
        max_committed: 0,
        reads_released: 0,
        conf_applied: 0,
        joined: 0,
        incomplete: false,
        violation: None,
    };
    'search: while let Some((pid, st, depth)) = if dfs {
        frontier.pop_back()
    } else {
        frontier.pop_front()
    } {
        if depth >= bounds.depth {
            continue;
        }
        if out.states >= max_states {
            out.incomplete = true;
            break;
        }
        for a in ck.actions(&st) {
            out.transitions += 1;
            let found = match ck.apply(&st, a) {
                Ok(None) => continue,
                Ok(Some(ns)) => {
                    if !seen.insert(ns.hash()) {
                        continue;
                    }
                    let r = ck.check(&ns);
                    out.states += 1;
                    out.depth = out.depth.max(depth + 1);
                    out.max_committed = out.max_committed.max(ns.ledger.len());
                    for n in &ns.nodes {
                        out.max_term = out.max_term.max(n.raw.term());
                    }
                    if let Some(add) = sc.add {
                        let n = &ns.nodes[ck.idx(add)].raw;
                        out.joined += u64::from(n.conf_state().voters.contains(&add));
                    }
                    parents.push((pid, Some(a)));
                    frontier.push_back((parents.len() as u32 - 1, ns, depth + 1));
                    r
                }
                Err(v) => {
                    parents.push((pid, Some(a)));
                    Err(v)
                }
            };
            if let Err(v) = found {
                let trace = replay(&mut ck, &init, &parents, parents.len() as u32 - 1);
                out.violation = Some((v, trace));
                break 'search;
            }
        }
    }
    out.reads_released = ck.reads_released;
    out.conf_applied = ck.conf_applied;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "model check [{}] {}bounds {:?}: {} distinct states, {} transitions, depth {}, max term {}, max committed index {}, {} reads released, {} conf changes applied, {} states with the new node a voter, {:.1} s",
        sc.name,
        if dfs { "depth-first " } else { "" },
        bounds,
        out.states,
        out.transitions,
        out.depth,
        out.max_term,
        out.max_committed,
        out.reads_released,
        out.conf_applied,
        out.joined,
        secs
    );
    if out.incomplete {
        println!("INCOMPLETE: stopped at the cap of {max_states} states");
    }
    if let Some((v, trace)) = &out.violation {
        println!(
            "VIOLATION ({}) after {} states, trace of {} actions: {}",
            v.kind,
            out.states,
            trace.len(),
            v.detail
        );
        println!("trace ({} actions):", trace.len());
        for (k, t) in trace.iter().enumerate() {
            println!("  {:>2}. {t}", k + 1);
        }
    }
    out
}

/// The actions from the initial state to state `id`, described.
fn replay(
    ck: &mut Checker,
    init: &State,
    parents: &[(u32, Option<Action>)],
    id: u32,
) -> Vec<String> {
    let mut path = Vec::new();
    let mut cur = id;
    while let (p, Some(a)) = parents[cur as usize] {
        path.push(a);
        cur = p;
    }
    path.reverse();
    let mut st = init.clone();
    let mut lines = Vec::new();
    for a in path {
        lines.push(ck.describe(&st, a));
        match ck.apply(&st, a) {
            Ok(Some(ns)) => st = ns,
            _ => break,
        }
    }
    lines
}

/// Whether the bounds or the search were changed from the environment: the coverage
/// assertions of the tests hold for their own bounds only.
fn custom_run() -> bool {
    [
        "MODEL_CHECK_DEPTH",
        "MODEL_CHECK_BOUNDS",
        "MODEL_CHECK_MAX_STATES",
        "MODEL_CHECK_ORDER",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

fn assert_clean(out: &Outcome) {
    if let Some((v, _)) = &out.violation {
        panic!("{}: {}", v.kind, v.detail);
    }
}

/// Three voters from an empty log, no faults: elections up to term 3, replication, a
/// proposal, a linearizable read, a heartbeat. Every state within 9 actions.
#[test]
fn three_voters_elections_replication_reads() {
    let bounds = Bounds {
        depth: 9,
        max_term: 3,
        proposals: 1,
        reads: 1,
        crashes: 0,
        drops: 0,
        dups: 0,
        ticks: 1,
        inflight: 6,
        fifo: false,
    }
    .with_env();
    let out = explore(&three_nodes(), bounds, EXHAUSTIVE);
    assert_clean(&out);
    if !custom_run() {
        assert!(out.max_committed >= 2, "the proposal was never committed");
        assert!(out.reads_released > 0, "no read was ever released");
    }
}

/// Three voters from an empty log with one crash-restart (anywhere, including between a
/// Ready's early messages and its persist), one lost and one duplicated message. Every state
/// within 7 actions.
#[test]
fn three_voters_crashes_loss_duplication() {
    let bounds = Bounds {
        depth: 7,
        max_term: 3,
        proposals: 1,
        reads: 0,
        crashes: 1,
        drops: 1,
        dups: 1,
        ticks: 0,
        inflight: 6,
        fifo: false,
    }
    .with_env();
    let out = explore(&three_nodes(), bounds, EXHAUSTIVE);
    assert_clean(&out);
    if !custom_run() {
        assert!(out.max_committed >= 1, "no entry was ever committed");
    }
}

/// Voters 1 and 2 (node 1 elected, its first entry committed) add node 3 with a conf change,
/// with elections, a crash-restart, a lost message and a read around it. Every state within
/// 11 actions; node 3 becomes a voter in some of them.
#[test]
fn two_to_three_membership_change() {
    let bounds = Bounds {
        depth: 11,
        max_term: 3,
        proposals: 0,
        reads: 1,
        crashes: 1,
        drops: 1,
        dups: 0,
        ticks: 0,
        inflight: 6,
        fifo: false,
    }
    .with_env();
    let out = explore(&two_to_three(), bounds, EXHAUSTIVE);
    assert_clean(&out);
    if !custom_run() {
        assert!(out.joined > 0, "node 3 never became a voter");
    }
}

/// Deep schedules: four terms and up to a few dozen actions, beyond the reach of the
/// breadth-first runs. Depth-first, each link in order, no faults, capped at 400,000 states:
/// a probe of deep schedules, not an exhaustive search (the space within these bounds is
/// larger). It is what finds a leader committing an entry of an earlier term by counting
/// replicas (the Figure 8 schedule needs four terms and about twenty actions).
#[test]
fn three_voters_deep_schedules_depth_first() {
    let bounds = Bounds {
        depth: 30,
        max_term: 4,
        proposals: 0,
        reads: 0,
        crashes: 0,
        drops: 0,
        dups: 0,
        ticks: 0,
        inflight: 5,
        fifo: true,
    }
    .with_env();
    let search = Search {
        dfs: true,
        max_states: 400_000,
    };
    let out = explore(&three_nodes(), bounds, search);
    assert_clean(&out);
    if !custom_run() {
        assert_eq!(out.max_term, 4, "the search never reached term 4");
        assert!(out.max_committed >= 3, "the search committed little");
    }
}
