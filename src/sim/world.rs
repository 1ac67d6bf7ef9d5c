//! The simulated world: the nodes, the network, the clients and the operator, driven either by
//! a scheduler on simulated time (every choice drawn from one seeded generator) or by an
//! explicit schedule of [`Action`]s (what the property tests generate and shrink).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use bytes::Bytes;

use crate::config::{Config, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use crate::raftpb::conf_change_to_string;
use crate::raftpb::{
    ConfChange, ConfChangeI, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2,
    ConfState, Entry, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
};
use crate::storage::{MemStorage, Storage};
use crate::testkit::{apply_committed, decode_conf_change, ConfOutcome, Persist, StateMachine};
use crate::{RawNode, SnapshotStatus, StateRole};

use super::chart::{ChartEvent, ChartLog, Lane};
use super::checker::{
    chain_genesis, chain_next, decode_state, encode_state, entry_hash, Checker, Violation,
    ViolationKind,
};
use super::config::{ContractBreach, SimConfig, MAX_NODES, TICK};
use super::node::{App, AppendWork, NodeState, Pending, Running, Seen, Shadow, Slot};
use super::rng::SimRng;
use super::trace::{MsgSummary, PrintDrain, Trace, TraceLine, What};

/// One step of an explicit schedule. Node numbers are taken modulo the number of node slots;
/// message numbers modulo the number of messages in flight. An action that does not apply (a
/// node that is down, no message in flight) does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Deliver the n-th message in flight.
    Deliver(u8),
    /// Lose the n-th message in flight.
    Drop(u8),
    /// Duplicate the n-th message in flight.
    Duplicate(u8),
    /// Deliver the oldest message in flight to a node.
    DeliverTo(u8),
    /// Lose the oldest message in flight to a node.
    DropTo(u8),
    /// Tick a node.
    Tick(u8),
    /// Tick every running node once.
    TickAll,
    /// Make a node campaign now.
    Campaign(u8),
    /// Take a node's Ready and send its early messages (asynchronous mode: and queue its
    /// storage work).
    Ready(u8),
    /// Do the next step of a node's Ready handling: persist it, then send its late messages,
    /// apply and advance (asynchronous mode: the next storage work item).
    Advance(u8),
    /// Handle a node's Ready from start to end.
    Process(u8),
    /// Crash a node (whatever it has not persisted is lost).
    Crash(u8),
    /// Restart a crashed node from its persisted state.
    Restart(u8),
    /// A client proposes a write at a node.
    Propose(u8),
    /// A client asks a node for a linearizable read.
    Read(u8),
    /// The operator proposes a membership change at a node.
    ConfChange(u8),
    /// The application snapshots and compacts a node's log at its applied index.
    Compact(u8),
    /// Ask a node to hand leadership to another.
    Transfer(u8, u8),
    /// Cut a node off from every other node, both ways.
    Isolate(u8),
    /// Cut the link from one node to another (one way).
    CutOneWay(u8, u8),
    /// Heal every partition.
    Heal,
    /// Handle every Ready and deliver every message until nothing is left to do.
    Settle,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The run's seed.
    pub seed: u64,
    /// Scheduler events (or schedule actions) executed.
    pub events: u64,
    /// Simulated time at the end.
    pub sim_time: u64,
    /// The first safety violation, if any (the run stops there).
    pub violation: Option<Violation>,
    /// A liveness failure after the heal, if any.
    pub liveness: Option<String>,
    /// The last lines of the trace (when the run failed).
    pub trace_tail: Vec<String>,
    /// Entries recorded as committed.
    pub committed: u64,
    /// Terms that had a leader.
    pub leader_terms: usize,
    /// Writes acknowledged to clients.
    pub acked_writes: u64,
    /// Reads released.
    pub reads: u64,
    /// Crashes.
    pub crashes: u64,
    /// Membership changes applied (counted once per index).
    pub conf_changes: u64,
    /// Snapshots sent.
    pub snapshots_sent: u64,
    /// Simulated ticks from the heal to a committed proposal, when the liveness check ran.
    pub heal_ticks: Option<u64>,
    /// Whether the run used lease-based reads, and within the clock bound
    /// ([`SimConfig::lease_within_bound`]).
    pub lease: Option<bool>,
    /// Reads released in a run with lease-based reads (counted in `reads` too).
    pub lease_reads: u64,
    /// Reads of a lease-based run released sooner after they were asked than any message
    /// round trip: answered from the lease (or by a sole voter).
    pub lease_quick: u64,
    /// Stale reads released in a lease-based run beyond the clock bound: counted here, not
    /// reported as a violation (within the bound a stale read is one).
    pub lease_stale: u64,
    /// Whether the run's nodes had `Config::quiesce`.
    pub quiesce: bool,
    /// Ticks taken by quiet nodes (their tick only counts time), out of `ticks`.
    pub quiet_ticks: u64,
    /// Ticks taken by all nodes.
    pub ticks: u64,
    /// The record of the run for a chart, when [`World::record_chart`] asked for one.
    pub chart: Option<Box<ChartLog>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Chaos,
    Heal,
}

enum Event {
    Deliver(Box<Message>, u64),
    Tick(usize, u32),
    Ready(usize, u32),
    Persist(usize, u32),
    Finish(usize, u32),
    AppendWork(usize, u32),
    ApplyWork(usize, u32),
    CrashNode(usize, u32, &'static str),
    Restart(usize, u32),
    Stop(usize),
    Crash,
    Partition,
    PartitionEnd(u64),
    Propose,
    Read,
    ConfChange,
    Compact,
    Transfer,
    Probe,
    /// Quiescence runs: the workload pauses.
    IdleSpell,
    /// Quiescence runs: `wake()` on a random node.
    Wake,
    /// Quiescence runs: the failure detector reports a crashed or stopped node down to the
    /// others.
    ReportDown(usize),
    /// Quiescence runs: the failure detector reports the nodes a partition cuts off.
    ReportCut(u64),
}

struct Scheduled {
    time: u64,
    seq: u64,
    ev: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

struct WriteRec {
    slot: usize,
    inc: u32,
    acked: bool,
}

struct Probe {
    write: usize,
    slot: usize,
    inc: u32,
    term: u64,
}

type Res = Result<(), Violation>;

fn contract(detail: String) -> Violation {
    Violation::new(ViolationKind::Contract, detail)
}

fn in_conf(cs: &ConfState, id: u64) -> bool {
    cs.voters.contains(&id)
        || cs.learners.contains(&id)
        || cs.voters_outgoing.contains(&id)
        || cs.learners_next.contains(&id)
}

fn tag(kind: u8, id: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.push(kind);
    v.extend_from_slice(&(id as u64).to_le_bytes());
    v
}

fn parse_tag(data: &[u8]) -> Option<(u8, usize)> {
    if data.len() < 9 {
        return None;
    }
    let id = u64::from_le_bytes(data[1..9].try_into().ok()?);
    Some((data[0], id as usize))
}

/// The simulated application's state machine as the test kit's `apply_committed` drives it:
/// every entry must come right after the applied index, agrees with the ledger and extends
/// the applied-state chain; a write proposed at this node and incarnation is acknowledged; a
/// conf change is recorded for the trace.
struct SimApply<'a> {
    id: u64,
    slot: usize,
    inc: u32,
    term: u64,
    app: &'a mut App,
    checker: &'a mut Checker,
    writes: &'a mut [WriteRec],
    probe_write: Option<usize>,
    live_ok_at: &'a mut Option<u64>,
    now: u64,
    acked_writes: &'a mut u64,
    /// The first and last index applied.
    range: (u64, u64),
    /// Conf changes applied: index, text, and the configuration unless it was refused.
    conf_applied: Vec<(u64, String, Option<ConfState>)>,
}

impl StateMachine for SimApply<'_> {
    type Error = Violation;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Res {
        let id = self.id;
        let app = &mut *self.app;
        if !app.has_state || e.index != app.applied + 1 {
            return Err(Violation::new(
                ViolationKind::AppliedOutOfOrder,
                format!(
                    "node {id} applies entry {} after applied index {}{}",
                    e.index,
                    app.applied,
                    if app.has_state {
                        ""
                    } else {
                        " (it has no state yet)"
                    }
                ),
            ));
        }
        if self.range.0 == 0 {
            self.range.0 = e.index;
        }
        self.range.1 = e.index;
        let h = entry_hash(e);
        self.checker.committed(id, self.term, e.index, e.term, h)?;
        app.chain = chain_next(app.chain, e.index, e.term, h);
        app.applied = e.index;
        self.checker.applied_state(id, e.index, app.chain)?;
        match conf {
            None => {
                if let Some((kind, wid)) = parse_tag(&e.data) {
                    if let Some(w) = self.writes.get_mut(wid) {
                        if w.slot == self.slot && w.inc == self.inc && !w.acked {
                            w.acked = true;
                            self.checker.write_acked(e.index);
                            *self.acked_writes += 1;
                            if kind == b'P'
                                && self.probe_write == Some(wid)
                                && self.live_ok_at.is_none()
                            {
                                *self.live_ok_at = Some(self.now);
                            }
                        }
                    }
                }
            }
            Some(ConfOutcome::Applied { change, conf_state }) => {
                app.conf = conf_state.clone();
                let text = conf_change_to_string(&change.as_v2());
                self.conf_applied
                    .push((e.index, text, Some(conf_state.clone())));
            }
            Some(ConfOutcome::Refused { change, error }) => {
                let text = conf_change_to_string(&change.as_v2());
                self.conf_applied
                    .push((e.index, format!("{text} refused: {error}"), None));
            }
            Some(other) => {
                return Err(contract(format!(
                    "node {id}: undecodable conf change at {}: {other:?}",
                    e.index
                )))
            }
        }
        Ok(())
    }
}

/// The simulated cluster.
pub struct World {
    cfg: SimConfig,
    rng: SimRng,
    now: u64,
    seq: u64,
    events: u64,
    timed: bool,
    queue: BinaryHeap<Reverse<Scheduled>>,
    pool: Vec<Message>,
    slots: Vec<Slot>,
    cut: [[u8; MAX_NODES]; MAX_NODES],
    link_clock: [[u64; MAX_NODES]; MAX_NODES],
    partitions: Vec<(u64, Vec<(usize, usize)>)>,
    next_partition: u64,
    checker: Checker,
    trace: Trace,
    writes: Vec<WriteRec>,
    /// Per read: the floor it must reach and when it was asked.
    reads: Vec<(u64, u64)>,
    latest_conf: (u64, ConfState),
    phase: Phase,
    heal_at: u64,
    deadline: u64,
    leader_after_heal: Option<u64>,
    probe: Option<Probe>,
    live_ok_at: Option<u64>,
    liveness: Option<String>,
    report: RunReport,
    /// Messages sent (the number of the next one).
    msg_seq: u64,
    /// The record a chart is drawn from, when asked for.
    chart: Option<Box<ChartLog>>,
    /// Quiescence runs: the workload is idle until then.
    idle_until: u64,
}

impl World {
    /// A world for `cfg`, driven by its scheduler ([`World::run`]). `trace_cap` lines are
    /// kept for the report of a failure; with `echo`, every event is printed as it happens,
    /// with the core's log lines.
    pub fn new(cfg: SimConfig, trace_cap: usize, echo: bool) -> Self {
        Self::build(cfg, trace_cap, echo, true)
    }

    /// A world driven by explicit actions ([`World::apply`]): messages wait in a pool until an
    /// action delivers them, and nothing happens unless an action does it.
    pub fn scripted(cfg: SimConfig, trace_cap: usize, echo: bool) -> Self {
        Self::build(cfg, trace_cap, echo, false)
    }

    fn build(cfg: SimConfig, trace_cap: usize, echo: bool, timed: bool) -> Self {
        let mut rng = SimRng::new(cfg.seed);
        let c = &cfg.cluster;
        let voters = c.voters.clamp(1, MAX_NODES);
        let learners = c.learners.min(MAX_NODES - voters);
        let total = (voters + learners + c.spare).min(MAX_NODES);
        let skew = cfg.faults.tick_skew_pct.min(90) as i64;
        let mut slots = Vec::with_capacity(total);
        for i in 0..total {
            let s = rng.range(0, 2 * skew as u64) as i64 - skew;
            let tick_every = (TICK as i64 * (100 + s) / 100) as u64;
            let disk_max = if rng.chance(cfg.faults.slow_disk_ppm) {
                cfg.faults.slow_disk_max
            } else {
                0
            };
            slots.push(Slot {
                id: i as u64 + 1,
                state: NodeState::Idle,
                inc: 0,
                tick_every: tick_every.max(1),
                disk_max,
                member_once: i < voters + learners,
            });
        }
        let cs = ConfState {
            voters: (1..=voters as u64).collect(),
            learners: (voters as u64 + 1..=(voters + learners) as u64).collect(),
            ..Default::default()
        };
        let mut w = World {
            rng,
            now: 0,
            seq: 0,
            events: 0,
            timed,
            queue: BinaryHeap::new(),
            pool: Vec::new(),
            slots,
            cut: [[0; MAX_NODES]; MAX_NODES],
            link_clock: [[0; MAX_NODES]; MAX_NODES],
            partitions: Vec::new(),
            next_partition: 1,
            checker: Checker::new(),
            trace: Trace::new(trace_cap, echo),
            writes: Vec::new(),
            reads: Vec::new(),
            latest_conf: (1, cs.clone()),
            phase: Phase::Chaos,
            heal_at: 0,
            deadline: u64::MAX,
            leader_after_heal: None,
            probe: None,
            live_ok_at: None,
            liveness: None,
            msg_seq: 0,
            chart: None,
            idle_until: 0,
            report: RunReport {
                seed: cfg.seed,
                lease: cfg.lease_within_bound(),
                quiesce: cfg.cluster.quiesce,
                ..Default::default()
            },
            cfg,
        };
        let genesis = Snapshot {
            data: encode_state(1, chain_genesis(1)),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(cs),
                index: 1,
                term: 1,
            }),
        };
        let _ = w.checker.applied_state(0, 1, chain_genesis(1));
        for s in 0..voters + learners {
            let mut store = MemStorage::new();
            store
                .apply_snapshot(genesis.clone())
                .expect("a fresh storage takes the bootstrap snapshot");
            w.slots[s].state = NodeState::Down(store);
            // Starting is restarting from the bootstrap storage.
            if let Err(v) = w.restart(s) {
                w.report.violation = Some(v);
            }
        }
        if w.timed {
            w.schedule_processes();
        }
        w
    }

    fn schedule_processes(&mut self) {
        let f = self.cfg.faults.clone();
        let wl = self.cfg.workload.clone();
        let first = |w: &mut World, every: u64, ev: Event| {
            if every > 0 {
                let d = w.rng.around(every);
                w.schedule(d, ev);
            }
        };
        first(self, f.crash_every, Event::Crash);
        first(self, f.partition_every, Event::Partition);
        first(self, wl.propose_every, Event::Propose);
        first(self, wl.read_every, Event::Read);
        first(self, wl.conf_change_every, Event::ConfChange);
        first(self, wl.compact_every, Event::Compact);
        first(self, wl.transfer_every, Event::Transfer);
        first(self, wl.idle_every, Event::IdleSpell);
        first(self, wl.wake_every, Event::Wake);
    }

    // ---------------------------------------------------------------------------------------
    // Plumbing.

    fn schedule(&mut self, delay: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            time: self.now + delay,
            seq: self.seq,
            ev,
        }));
    }

    fn tr(&mut self, node: u64, what: What) {
        self.trace.push(TraceLine {
            event: self.events,
            time: self.now,
            node,
            what,
        });
    }

    fn chart(&mut self, what: ChartEvent) {
        if let Some(c) = &mut self.chart {
            c.push(self.events, self.now, what);
        }
    }

    fn chart_lane(&mut self, node: u64, lane: Lane) {
        if let Some(c) = &mut self.chart {
            c.lane(self.events, self.now, node, lane);
        }
    }

    fn slot_of(&self, id: u64) -> Option<usize> {
        let i = id.checked_sub(1)? as usize;
        (i < self.slots.len()).then_some(i)
    }

    fn node_config(&self, id: u64, applied: u64, inc: u32) -> Config {
        let c = &self.cfg.cluster;
        let mut cfg = Config::new(id);
        cfg.election_tick = c.election_tick;
        cfg.heartbeat_tick = c.heartbeat_tick;
        cfg.applied = applied;
        cfg.max_size_per_msg = c.max_size_per_msg;
        cfg.max_committed_size_per_ready = c.max_committed_size_per_ready;
        cfg.max_inflight_msgs = c.max_inflight_msgs;
        cfg.check_quorum = c.check_quorum;
        cfg.pre_vote = c.pre_vote;
        cfg.read_only_option = c.read_only_option;
        cfg.step_down_on_removal = c.step_down_on_removal;
        cfg.quiesce = c.quiesce;
        cfg.async_storage_writes = c.async_storage_writes;
        cfg.apply_from_storage = c.apply_from_storage;
        cfg.hand_over_entries = c.hand_over_entries;
        cfg.append_mode = c.append_mode;
        cfg.seed = self.cfg.seed.wrapping_add((inc as u64) << 40);
        if self.trace.echo {
            cfg.logger = slog::Logger::root(PrintDrain { node: id }, slog::o!());
        }
        cfg
    }

    fn leader_slot(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(r) = s.running_ref() {
                if r.raw.role() == StateRole::Leader {
                    let t = r.seen.term;
                    if best.is_none_or(|(bt, _)| t > bt) {
                        best = Some((t, i));
                    }
                }
            }
        }
        best.map(|(_, i)| i)
    }

    fn random_up(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_up())
            .collect();
        if up.is_empty() {
            return None;
        }
        Some(up[self.rng.index(up.len())])
    }

    fn disk_latency(&mut self, s: usize) -> u64 {
        let max = self.slots[s].disk_max;
        if max == 0 || self.phase == Phase::Heal {
            0
        } else {
            self.rng.range(1, max)
        }
    }

    // ---------------------------------------------------------------------------------------
    // The network.

    fn send(&mut self, m: Message) {
        let from = m.from;
        let sum = MsgSummary::of(&m);
        if m.msg_type() == Some(MessageType::MsgSnap) {
            self.report.snapshots_sent += 1;
            // A stored snapshot older than the recipient's membership is of no use to it (it
            // ignores a snapshot that does not list it): the application snapshots its
            // current state, which the next attempt sends.
            let stale = m
                .snapshot
                .as_ref()
                .is_some_and(|s| !in_conf(&s.conf_state(), m.to));
            if stale {
                if let Some(s) = self.slot_of(from) {
                    let _ = self.compact(Some(s));
                }
            }
        }
        if !self.timed {
            self.tr(from, What::Send(sum, 1));
            self.pool.push(m);
            return;
        }
        let chaos = self.phase == Phase::Chaos;
        let f = &self.cfg.faults;
        let (drop_ppm, dup_ppm, long_ppm) = (f.drop_ppm, f.dup_ppm, f.long_delay_ppm);
        let (min_d, max_d, long_d) = (f.min_delay, f.max_delay, f.long_delay);
        self.msg_seq += 1;
        let mid = self.msg_seq;
        if chaos && self.rng.chance(drop_ppm) {
            self.tr(from, What::Send(sum, 0));
            self.chart(ChartEvent::Send {
                id: mid,
                msg: sum,
                copies: 0,
            });
            if m.msg_type() == Some(MessageType::MsgSnap) {
                self.report_snapshot(m.from, m.to, SnapshotStatus::Failure);
            }
            return;
        }
        let copies = if chaos && self.rng.chance(dup_ppm) {
            2
        } else {
            1
        };
        self.tr(from, What::Send(sum, copies));
        self.chart(ChartEvent::Send {
            id: mid,
            msg: sum,
            copies,
        });
        let half_election = self.cfg.cluster.election_tick as u64 * TICK / 2;
        let delay = |w: &mut World| {
            let mut d = w.rng.range(min_d, max_d);
            if chaos && w.rng.chance(long_ppm) {
                d += w.rng.range(0, long_d);
            }
            if !chaos {
                d = d.min(half_election);
            }
            d
        };
        if copies == 2 {
            let d = delay(self);
            self.schedule(d, Event::Deliver(Box::new(m.clone()), mid));
        }
        let mut d = delay(self);
        if !chaos {
            // After the heal, links behave like connections: in order.
            if let (Some(a), Some(b)) = (self.slot_of(m.from), self.slot_of(m.to)) {
                let at = (self.now + d).max(self.link_clock[a][b] + 1);
                self.link_clock[a][b] = at;
                d = at - self.now;
            }
        }
        self.schedule(d, Event::Deliver(Box::new(m), mid));
    }

    fn report_snapshot(&mut self, from: u64, to: u64, status: SnapshotStatus) {
        let Some(s) = self.slot_of(from) else { return };
        if let Some(r) = self.slots[s].running() {
            r.raw.report_snapshot(to, status);
            let _ = self.post(s);
        }
    }

    fn deliver(&mut self, m: Message, mid: u64) -> Res {
        let sum = MsgSummary::of(&m);
        let is_snap = m.msg_type() == Some(MessageType::MsgSnap);
        let (from, to_id) = (m.from, m.to);
        let Some(to) = self.slot_of(to_id) else {
            self.tr(0, What::Lost(sum, "no such node"));
            self.chart(ChartEvent::Lost {
                id: mid,
                msg: sum,
                why: "no such node",
            });
            return Ok(());
        };
        if let Some(f) = self.slot_of(from) {
            if self.cut[f][to] > 0 {
                self.tr(0, What::Lost(sum, "partition"));
                self.chart(ChartEvent::Lost {
                    id: mid,
                    msg: sum,
                    why: "partition",
                });
                if is_snap {
                    self.report_snapshot(from, to_id, SnapshotStatus::Failure);
                }
                return Ok(());
            }
        }
        let Some(run) = self.slots[to].running() else {
            self.tr(0, What::Lost(sum, "node down"));
            self.chart(ChartEvent::Lost {
                id: mid,
                msg: sum,
                why: "node down",
            });
            if is_snap {
                self.report_snapshot(from, to_id, SnapshotStatus::Failure);
            }
            return Ok(());
        };
        let r = run.raw.step(m);
        self.tr(to_id, What::Deliver(sum, r.err().map(|e| e.to_string())));
        self.chart(ChartEvent::Deliver { id: mid, msg: sum });
        self.post(to)?;
        if is_snap {
            self.report_snapshot(from, to_id, SnapshotStatus::Finish);
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // After anything happened at a node: the per-incarnation checks, leaders, and the Ready.

    fn post(&mut self, s: usize) -> Res {
        let id = self.slots[s].id;
        let inc = self.slots[s].inc;
        let async_w = self.cfg.cluster.async_storage_writes;
        let timed = self.timed;
        let heal = self.phase == Phase::Heal;
        let Some(run) = self.slots[s].running() else {
            return Ok(());
        };
        let bs = run.raw.basic_status();
        let hs = bs.hard_state;
        if hs.term < run.seen.term || hs.commit < run.seen.commit || bs.applied < run.seen.applied {
            return Err(Violation::new(
                ViolationKind::Regressed,
                format!(
                    "node {id}: (term, commit, applied) went from ({}, {}, {}) to ({}, {}, {})",
                    run.seen.term,
                    run.seen.commit,
                    run.seen.applied,
                    hs.term,
                    hs.commit,
                    bs.applied
                ),
            ));
        }
        run.seen = Seen {
            term: hs.term,
            commit: hs.commit,
            applied: bs.applied,
        };
        let role = run.raw.role();
        let leader = role == StateRole::Leader;
        if !leader {
            run.lead_term = 0;
        } else if run.lead_term != hs.term {
            run.lead_term = hs.term;
            run.lead_commit = hs.commit;
        } else if hs.commit > run.lead_commit {
            run.lead_commit = hs.commit;
            run.lead_commits.push((hs.commit, hs.term));
        }
        let want_ready = timed
            && !run.ready_scheduled
            && (async_w || run.pending.is_none())
            && run.raw.has_ready();
        if want_ready {
            run.ready_scheduled = true;
        }
        self.chart_lane(id, Lane::Up(role));
        if leader {
            self.checker.leader(id, hs.term)?;
            if heal && self.leader_after_heal.is_none() {
                self.leader_after_heal = Some(self.now);
            }
        }
        if want_ready {
            let d = self.rng.range(1, 30);
            self.schedule(d, Event::Ready(s, inc));
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // The Ready loop.

    fn ready_begin(&mut self, s: usize) -> Res {
        let id = self.slots[s].id;
        let async_w = self.cfg.cluster.async_storage_writes;
        let breach = self.cfg.breach;
        let mut to_send = Vec::new();
        let what;
        {
            let Some(run) = (match &mut self.slots[s].state {
                NodeState::Up(r) => Some(r),
                _ => None,
            }) else {
                return Ok(());
            };
            run.ready_scheduled = false;
            if (!async_w && run.pending.is_some()) || !run.raw.has_ready() {
                return Ok(());
            }
            let mut rd = run.raw.ready();
            let bs = run.raw.basic_status();
            let term = bs.hard_state.term;
            what = What::Ready {
                entries: rd.entries.len() as u32,
                committed: rd
                    .committed_range
                    .map_or(0, |(first, last)| (last - first + 1) as u32),
                msgs: (rd.messages.len() + rd.persisted_messages.len()) as u32,
                snap: rd.snapshot.as_ref().map_or(0, |s| s.index()),
                hs: rd.hard_state.map(|h: HardState| (h.term, h.vote, h.commit)),
                reads: rd.read_states.len() as u32,
                role: rd
                    .soft_state
                    .map(|ss| format!("{} (leader {})", ss.raft_state, ss.leader_id)),
            };
            if let Some(snap) = &rd.snapshot {
                let (si, st) = (snap.index(), snap.term());
                if let Some((t, _)) = self.checker.committed_at(si) {
                    if t != st {
                        return Err(Violation::new(
                            ViolationKind::CommittedConflict,
                            format!("node {id} got a snapshot at index {si} of term {st}, but the entry committed there has term {t}"),
                        ));
                    }
                }
                run.shadow.reset(si, st);
                run.checked = run.checked.max(si);
            }
            run.shadow.append(id, &rd.entries, run.checked)?;
            let commit = bs.hard_state.commit;
            for i in run.checked + 1..=commit {
                let Some((t, h)) = run.shadow.get(i) else {
                    return Err(contract(format!(
                        "node {id} has commit index {commit} but its log ends at {}",
                        run.shadow.last_index()
                    )));
                };
                self.checker.committed(id, term, i, t, h)?;
            }
            run.checked = run.checked.max(commit);
            for (c, t) in std::mem::take(&mut run.lead_commits) {
                match run.shadow.get(c) {
                    Some((et, _)) if et != t => {
                        return Err(Violation::new(
                            ViolationKind::CommitRule,
                            format!("node {id}, leader of term {t}, moved its commit index to {c}, an entry of term {et}"),
                        ))
                    }
                    _ => {}
                }
            }
            run.voting = false;
            run.committing = false;
            if let Some(h) = rd.hard_state {
                run.committing =
                    run.raw.role() == StateRole::Leader && h.commit > run.last_commit_sent;
                run.last_commit_sent = h.commit;
                run.voting = h.vote != 0 && h.vote != id && (h.term, h.vote) != run.last_vote;
                run.last_vote = (h.term, h.vote);
            }
            if run.raw.role() == StateRole::Leader && run.complete_term != term {
                let sh = &run.shadow;
                self.checker
                    .leader_complete(id, term, sh.snap_index, |i| sh.get(i))?;
                run.complete_term = term;
            }
            for rs in &rd.read_states {
                if let Some((b'R', rid)) = parse_tag(&rs.request_ctx) {
                    let Some(&(floor, asked)) = self.reads.get(rid) else {
                        continue;
                    };
                    self.report.reads += 1;
                    self.trace.push(TraceLine {
                        event: self.events,
                        time: self.now,
                        node: id,
                        what: What::ReadState(rid as u64, rs.index),
                    });
                    let checked = self.checker.read_released(id, rid as u64, floor, rs.index);
                    match self.report.lease {
                        None => checked?,
                        Some(within) => {
                            self.report.lease_reads += 1;
                            if self.now - asked < 2 * self.cfg.faults.min_delay {
                                self.report.lease_quick += 1;
                            }
                            match checked {
                                Err(v) if !within => {
                                    // Beyond the clock bound a lease may be stale: counted.
                                    self.report.lease_stale += 1;
                                    self.trace.push(TraceLine {
                                        event: self.events,
                                        time: self.now,
                                        node: id,
                                        what: What::Note(format!(
                                            "lease read beyond the clock bound: {v}"
                                        )),
                                    });
                                }
                                r => r?,
                            }
                        }
                    }
                }
            }
            let msgs = std::mem::take(&mut rd.messages);
            if async_w {
                for m in msgs {
                    if m.to == LOCAL_APPEND_THREAD {
                        if breach == Some(ContractBreach::SendBeforePersist) {
                            to_send.extend(m.responses.iter().filter(|r| r.to != id).cloned());
                        }
                        run.append_q.push_back(AppendWork { m, written: false });
                    } else if m.to == LOCAL_APPLY_THREAD {
                        run.apply_q.push_back(m);
                    } else {
                        to_send.push(m);
                    }
                }
            } else {
                to_send = msgs;
                if breach == Some(ContractBreach::SendBeforePersist) {
                    to_send.append(&mut rd.persisted_messages);
                }
                run.pending = Some(Pending {
                    rd,
                    persisted: false,
                });
            }
        }
        self.tr(id, what);
        for m in to_send {
            self.send(m);
        }
        if self.timed {
            self.schedule_ready_work(s)?;
        }
        self.post(s)
    }

    /// Timed mode: schedules the persist and the rest of a Ready just taken (or does them at
    /// once on a fast disk), with now and then a crash aimed inside it.
    fn schedule_ready_work(&mut self, s: usize) -> Res {
        let inc = self.slots[s].inc;
        let async_w = self.cfg.cluster.async_storage_writes;
        // Readies that carry a vote are where a lost persist does most harm: aim at them more.
        let voting = self.slots[s].running_ref().is_some_and(|r| r.voting);
        // Most of all when another candidate runs in the same term: a vote lost there is a
        // vote cast twice.
        let contested = voting && {
            let term = self.slots[s].running_ref().map_or(0, |r| r.last_vote.0);
            self.slots.iter().enumerate().any(|(i, o)| {
                i != s
                    && o.running_ref().is_some_and(|r| {
                        r.raw.role() == StateRole::Candidate && r.seen.term == term
                    })
            })
        };
        let committing = self.slots[s].running_ref().is_some_and(|r| r.committing);
        let ppm = if contested {
            500_000
        } else if committing {
            self.cfg.faults.crash_in_ready_ppm.saturating_mul(3)
        } else if voting {
            self.cfg
                .faults
                .crash_in_ready_ppm
                .saturating_mul(20)
                .min(250_000)
        } else {
            self.cfg.faults.crash_in_ready_ppm
        };
        let aim = self.phase == Phase::Chaos && self.rng.chance(ppm);
        let lat = self.disk_latency(s);
        if async_w {
            let Some(run) = self.slots[s].running() else {
                return Ok(());
            };
            let need_append = !run.append_q.is_empty() && !run.append_scheduled;
            let need_apply = !run.apply_q.is_empty() && !run.apply_scheduled;
            run.append_scheduled |= need_append;
            run.apply_scheduled |= need_apply;
            if need_append {
                self.schedule(lat, Event::AppendWork(s, inc));
            }
            if need_apply {
                let d = self.disk_latency(s);
                self.schedule(d, Event::ApplyWork(s, inc));
            }
            if aim {
                let d = self.rng.range(0, 2 * lat + 20);
                self.schedule(d, Event::CrashNode(s, inc, "aimed at storage work"));
            }
            return Ok(());
        }
        if lat == 0 && !aim {
            self.persist(s)?;
            return self.finish(s);
        }
        let lat = lat.max(2);
        let fin = self.rng.range(2, 20);
        self.schedule(lat, Event::Persist(s, inc));
        self.schedule(lat + fin, Event::Finish(s, inc));
        if aim {
            if contested || self.rng.coin() {
                let d = self.rng.range(0, lat - 1);
                let why = if contested {
                    "aimed before the persist of a contested vote"
                } else {
                    "aimed before the persist"
                };
                self.schedule(d, Event::CrashNode(s, inc, why));
            } else {
                self.schedule(lat + 1, Event::CrashNode(s, inc, "aimed after the persist"));
            }
        }
        Ok(())
    }

    /// Writes a snapshot, entries and a HardState to a node's storage; a snapshot also resets
    /// the application's state.
    fn write_storage(&mut self, s: usize, work: Persist) -> Res {
        let id = self.slots[s].id;
        let Some(run) = (match &mut self.slots[s].state {
            NodeState::Up(r) => Some(r),
            _ => None,
        }) else {
            return Ok(());
        };
        if let Some(snap) = &work.snapshot {
            let Some((idx, chain)) = decode_state(&snap.data) else {
                return Err(contract(format!(
                    "node {id} got a snapshot with unreadable data"
                )));
            };
            if idx != snap.index() {
                return Err(contract(format!(
                    "node {id} got a snapshot at {} holding the state of {idx}",
                    snap.index()
                )));
            }
            if run.app.has_state && idx < run.app.applied {
                return Err(Violation::new(
                    ViolationKind::AppliedOutOfOrder,
                    format!(
                        "node {id} restores a snapshot at {idx} behind its applied index {}",
                        run.app.applied
                    ),
                ));
            }
            run.app = App {
                applied: idx,
                chain,
                conf: snap.conf_state(),
                has_state: true,
            };
            self.checker.applied_state(id, idx, chain)?;
        }
        if let Err(e) = work.write(run.raw.store_mut()) {
            return Err(contract(format!(
                "node {id}: storage refused the Ready's snapshot or entries: {e}"
            )));
        }
        Ok(())
    }

    fn persist(&mut self, s: usize) -> Res {
        let id = self.slots[s].id;
        let Some(run) = self.slots[s].running() else {
            return Ok(());
        };
        let Some(p) = run.pending.as_mut() else {
            return Ok(());
        };
        if p.persisted {
            return Ok(());
        }
        p.persisted = true;
        let work = Persist::take_from_ready(&mut p.rd);
        self.write_storage(s, work)?;
        self.tr(id, What::Persist);
        Ok(())
    }

    fn finish(&mut self, s: usize) -> Res {
        let id = self.slots[s].id;
        let breach = self.cfg.breach;
        let Some(run) = self.slots[s].running() else {
            return Ok(());
        };
        if !run.pending.as_ref().is_some_and(|p| p.persisted) {
            return Ok(());
        }
        let mut rd = run.pending.take().expect("checked").rd;
        self.tr(id, What::Finish);
        if breach != Some(ContractBreach::SendBeforePersist) {
            for m in std::mem::take(&mut rd.persisted_messages) {
                self.send(m);
            }
        }
        let mut committed = std::mem::take(&mut rd.committed_entries);
        if let (true, Some((first, last))) = (committed.is_empty(), rd.committed_range) {
            // `apply_from_storage`: the entries are read where this Ready's write put them.
            if let Some(run) = self.slots[s].running() {
                committed = run
                    .raw
                    .store()
                    .entries(first, last + 1, crate::NO_LIMIT)
                    .map_err(|e| {
                        contract(format!(
                            "node {id}: entries {first}..={last} to apply are not in the storage: {e}"
                        ))
                    })?;
            }
        }
        self.apply_entries(s, committed, false)?;
        if let Some(run) = self.slots[s].running() {
            if let Err(e) = run.raw.advance() {
                return Err(contract(format!("node {id}: advance failed: {e}")));
            }
        }
        self.post(s)
    }

    fn append_work(&mut self, s: usize) -> Res {
        let id = self.slots[s].id;
        let inc = self.slots[s].inc;
        let breach = self.cfg.breach;
        let Some(run) = self.slots[s].running() else {
            return Ok(());
        };
        run.append_scheduled = false;
        let Some(front) = run.append_q.front_mut() else {
            return Ok(());
        };
        if !front.written {
            front.written = true;
            let work = Persist::take_from_message(&mut front.m);
            self.write_storage(s, work)?;
            self.tr(id, What::Persist);
            if self.timed {
                if let Some(run) = self.slots[s].running() {
                    run.append_scheduled = true;
                }
                let d = self.rng.range(1, 20);
                self.schedule(d, Event::AppendWork(s, inc));
            }
            return self.post(s);
        }
        let w = run.append_q.pop_front().expect("checked");
        self.tr(id, What::Finish);
        for r in w.m.responses {
            if r.to == id {
                if let Some(run) = self.slots[s].running() {
                    if let Err(e) = run.raw.step_local(r) {
                        return Err(contract(format!(
                            "node {id}: step_local refused a storage response: {e}"
                        )));
                    }
                }
            } else if breach != Some(ContractBreach::SendBeforePersist) {
                self.send(r);
            }
        }
        if self.timed {
            let more = self.slots[s]
                .running()
                .is_some_and(|r| !r.append_q.is_empty() && !r.append_scheduled);
            if more {
                let d = self.disk_latency(s);
                if let Some(run) = self.slots[s].running() {
                    run.append_scheduled = true;
                }
                self.schedule(d, Event::AppendWork(s, inc));
            }
        }
        self.post(s)
    }

    fn apply_work(&mut self, s: usize) -> Res {
        let id = self.slots[s].id;
        let inc = self.slots[s].inc;
        let Some(run) = self.slots[s].running() else {
            return Ok(());
        };
        run.apply_scheduled = false;
        let Some(mut m) = run.apply_q.pop_front() else {
            return Ok(());
        };
        let ents = std::mem::take(&mut m.entries);
        self.apply_entries(s, ents, true)?;
        for r in m.responses {
            if let Some(run) = self.slots[s].running() {
                if let Err(e) = run.raw.step_local(r) {
                    return Err(contract(format!(
                        "node {id}: step_local refused an apply response: {e}"
                    )));
                }
            }
        }
        if self.timed {
            let more = self.slots[s]
                .running()
                .is_some_and(|r| !r.apply_q.is_empty() && !r.apply_scheduled);
            if more {
                let d = self.disk_latency(s);
                if let Some(run) = self.slots[s].running() {
                    run.apply_scheduled = true;
                }
                self.schedule(d, Event::ApplyWork(s, inc));
            }
        }
        self.post(s)
    }

    /// Applies committed entries to the application's state machine, checking each against
    /// the ledger and the applied-state chain (the test kit's `apply_committed`, with
    /// [`SimApply`]). `skip_old`: entries at or below the applied index are skipped
    /// (asynchronous mode, after a snapshot overtook them); otherwise they are a violation.
    fn apply_entries(&mut self, s: usize, mut ents: Vec<Entry>, skip_old: bool) -> Res {
        if ents.is_empty() {
            return Ok(());
        }
        let id = self.slots[s].id;
        let inc = self.slots[s].inc;
        let (range, conf_applied) = {
            let Some(run) = (match &mut self.slots[s].state {
                NodeState::Up(r) => Some(r),
                _ => None,
            }) else {
                return Ok(());
            };
            if skip_old {
                let applied = run.app.applied;
                ents.retain(|e| e.index > applied);
            }
            let Running { raw, app, seen, .. } = &mut **run;
            let mut sm = SimApply {
                id,
                slot: s,
                inc,
                term: seen.term,
                app,
                checker: &mut self.checker,
                writes: &mut self.writes,
                probe_write: self.probe.as_ref().map(|p| p.write),
                live_ok_at: &mut self.live_ok_at,
                now: self.now,
                acked_writes: &mut self.report.acked_writes,
                range: (0, 0),
                conf_applied: Vec::new(),
            };
            apply_committed(raw, &ents, &mut sm)?;
            (sm.range, sm.conf_applied)
        };
        if range.0 != 0 {
            self.tr(id, What::Apply(range.0, range.1));
        }
        for (index, text, cs) in conf_applied {
            self.tr(id, What::ConfApplied(index, text));
            if let Some(cs) = cs {
                if index > self.latest_conf.0 {
                    self.report.conf_changes += 1;
                    self.latest_conf = (index, cs);
                    self.on_new_conf();
                }
            }
        }
        Ok(())
    }

    /// A newer configuration was applied somewhere: members are marked, and nodes removed from
    /// the group are stopped a little later (as an operator would).
    fn on_new_conf(&mut self) {
        let cs = self.latest_conf.1.clone();
        for s in 0..self.slots.len() {
            let id = self.slots[s].id;
            if in_conf(&cs, id) {
                self.slots[s].member_once = true;
            } else if self.slots[s].member_once
                && !matches!(self.slots[s].state, NodeState::Stopped | NodeState::Idle)
                && self.timed
            {
                let d = self.rng.range(0, 3 * TICK);
                self.schedule(d, Event::Stop(s));
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Crashes, restarts, starts and stops.

    fn crash(&mut self, s: usize, why: &'static str) {
        let quick = why.starts_with("aimed")
            && (why.ends_with("contested vote") || self.rng.chance(700_000));
        let id = self.slots[s].id;
        let state = std::mem::replace(&mut self.slots[s].state, NodeState::Stopped);
        let NodeState::Up(run) = state else {
            self.slots[s].state = state;
            return;
        };
        let stage = match (&run.pending, run.append_q.front()) {
            (Some(p), _) if !p.persisted => "with a Ready not yet persisted",
            (Some(_), _) => "after persisting a Ready, before its late messages",
            (None, Some(w)) if !w.written => "with storage writes pending",
            (None, Some(_)) => "after a storage write, before its responses",
            _ => why,
        };
        self.slots[s].state = NodeState::Down(run.raw.store().clone());
        self.slots[s].inc += 1;
        self.report.crashes += 1;
        self.tr(id, What::Crash(stage));
        self.chart(ChartEvent::Crash {
            node: id,
            why: stage,
        });
        self.chart_lane(id, Lane::Down);
        self.detect_down(s);
        if self.timed && self.phase == Phase::Chaos {
            // A crash aimed inside a Ready is mostly a process that restarts at once.
            let down = if quick {
                self.rng.range(1, TICK / 2)
            } else {
                self.rng.range(TICK / 2, self.cfg.faults.down_len.max(TICK))
            };
            let down = down.max(self.cfg.faults.min_down);
            let inc = self.slots[s].inc;
            self.schedule(down, Event::Restart(s, inc));
        }
    }

    fn restart(&mut self, s: usize) -> Res {
        let id = self.slots[s].id;
        let state = std::mem::replace(&mut self.slots[s].state, NodeState::Stopped);
        let NodeState::Down(store) = state else {
            self.slots[s].state = state;
            return Ok(());
        };
        let snap = store.snapshot().unwrap_or_default();
        let app = match decode_state(&snap.data) {
            Some((i, chain)) => App {
                applied: i,
                chain,
                conf: snap.conf_state(),
                has_state: true,
            },
            None => App {
                conf: snap.conf_state(),
                ..Default::default()
            },
        };
        let applied = app.applied;
        let hs = store
            .initial_state()
            .map(|r| r.hard_state)
            .unwrap_or_default();
        let shadow = Shadow::of_storage(&store);
        // Durability: what the node persisted as committed agrees with the ledger.
        for i in shadow.snap_index + 1..=hs.commit {
            let Some((t, h)) = shadow.get(i) else {
                return Err(Violation::new(
                    ViolationKind::RestartFailed,
                    format!(
                        "node {id} persisted commit index {} but its persisted log ends at {}",
                        hs.commit,
                        shadow.last_index()
                    ),
                ));
            };
            self.checker.committed(id, hs.term, i, t, h)?;
        }
        let inc = self.slots[s].inc + 1;
        let cfg = self.node_config(id, applied, inc);
        let raw = match RawNode::new(&cfg, store) {
            Ok(r) => r,
            Err(e) => {
                return Err(Violation::new(
                    ViolationKind::RestartFailed,
                    format!("node {id} cannot restart from its persisted state: {e}"),
                ))
            }
        };
        let bs = raw.basic_status();
        let checked = shadow.snap_index.max(hs.commit);
        self.slots[s].state = NodeState::Up(Box::new(Running {
            raw,
            app,
            shadow,
            checked,
            seen: Seen {
                term: bs.hard_state.term,
                commit: bs.hard_state.commit,
                applied: bs.applied,
            },
            complete_term: 0,
            lead_term: 0,
            lead_commit: 0,
            lead_commits: Vec::new(),
            voting: false,
            committing: false,
            last_commit_sent: 0,
            last_vote: (0, 0),
            pending: None,
            append_q: VecDeque::new(),
            apply_q: VecDeque::new(),
            ready_scheduled: false,
            append_scheduled: false,
            apply_scheduled: false,
        }));
        self.slots[s].inc = inc;
        if self.now > 0 {
            self.tr(id, What::Restart(applied));
            self.chart(ChartEvent::Restart { node: id });
        }
        if self.timed {
            let d = self.rng.range(1, self.slots[s].tick_every);
            self.schedule(d, Event::Tick(s, inc));
        }
        self.post(s)
    }

    fn start_new(&mut self, s: usize) -> Res {
        if !matches!(self.slots[s].state, NodeState::Idle) {
            return Ok(());
        }
        let id = self.slots[s].id;
        self.slots[s].state = NodeState::Down(MemStorage::new());
        self.tr(id, What::Lifecycle("start (joining with an empty storage)"));
        self.restart(s)
    }

    /// Whether every voter of the latest configuration runs and has applied it (and knows it
    /// committed durably), so that a
    /// node it removed is no longer needed by anyone (an operator stops a removed node only
    /// then: before, a member that has not applied the removal may still need its vote).
    fn removal_applied(&self) -> bool {
        let (index, cs) = &self.latest_conf;
        cs.voters.iter().all(|&v| {
            self.slot_of(v)
                .and_then(|i| self.slots[i].running_ref())
                .is_some_and(|r| {
                    // Applied, and committed durably: a crash must not take it back.
                    r.app.applied >= *index
                        && r.raw
                            .store()
                            .initial_state()
                            .is_ok_and(|st| st.hard_state.commit >= *index)
                })
        })
    }

    /// Whether a member's log holds, past the latest applied configuration, a conf change
    /// that adds `s` back (proposed before its removal applied): stopping it for good would
    /// leave that configuration a voter short.
    fn readd_in_log(&self, s: usize) -> bool {
        let id = self.slots[s].id;
        let (index, cs) = &self.latest_conf;
        self.slots.iter().enumerate().any(|(i, sl)| {
            let Some(r) = sl.running_ref() else {
                return false;
            };
            if i == s || !in_conf(cs, sl.id) {
                return false;
            }
            let store = r.raw.store();
            let lo = (*index + 1).max(store.first_index().unwrap_or(1));
            let hi = store.last_index().unwrap_or(0);
            if lo > hi {
                return false;
            }
            let ents = store.entries(lo, hi + 1, u64::MAX).unwrap_or_default();
            ents.iter().any(|e| {
                let Some(Ok(cc)) = decode_conf_change(e) else {
                    return false;
                };
                cc.as_v2().changes.iter().any(|c| {
                    c.node_id == id
                        && (c.r#type == ConfChangeType::ConfChangeAddNode as i32
                            || c.r#type == ConfChangeType::ConfChangeAddLearnerNode as i32)
                })
            })
        })
    }

    fn stop(&mut self, s: usize) {
        let id = self.slots[s].id;
        if in_conf(&self.latest_conf.1, id)
            || matches!(self.slots[s].state, NodeState::Stopped | NodeState::Idle)
        {
            return;
        }
        if !self.removal_applied() || self.readd_in_log(s) {
            if self.timed {
                self.schedule(2 * TICK, Event::Stop(s));
            }
            return;
        }
        self.slots[s].state = NodeState::Stopped;
        self.slots[s].inc += 1;
        self.tr(id, What::Lifecycle("stop (removed from the group)"));
        self.chart_lane(id, Lane::Absent);
        self.detect_down(s);
    }

    /// Quiescence runs: the application's failure detector notices that slot `s` is gone, a
    /// little later.
    fn detect_down(&mut self, s: usize) {
        if self.cfg.cluster.quiesce && self.timed {
            let d = self.rng.range(TICK / 2, 3 * TICK);
            self.schedule(d, Event::ReportDown(s));
        }
    }

    /// Quiescence runs: every running node is told that the node of slot `s` is down, and
    /// handles what follows.
    fn report_down(&mut self, s: usize) -> Res {
        let id = self.slots[s].id;
        self.tr(0, What::Note(format!("failure detector: {id} is down")));
        for t in 0..self.slots.len() {
            if t != s {
                if let Some(r) = self.slots[t].running() {
                    r.raw.report_peer_down(id);
                    self.post(t)?;
                }
            }
        }
        Ok(())
    }

    /// Quiescence runs: the nodes that partition `pid` (if still in place) cuts off from a
    /// peer are told that the peer is down.
    fn report_cut(&mut self, pid: u64) -> Res {
        let Some((_, pairs)) = self.partitions.iter().find(|p| p.0 == pid) else {
            return Ok(());
        };
        let pairs = pairs.clone();
        self.tr(0, What::Note(format!("failure detector: partition p{pid}")));
        for (a, b) in pairs {
            let down = self.slots[a].id;
            if let Some(r) = self.slots[b].running() {
                r.raw.report_peer_down(down);
                self.post(b)?;
            }
        }
        Ok(())
    }

    /// Whether crashing `s` leaves a live majority in every half of the latest configuration.
    fn crash_keeps_quorum(&self, s: usize) -> bool {
        let cs = &self.latest_conf.1;
        let alive = |ids: &[u64]| {
            ids.iter()
                .filter(|&&id| {
                    self.slot_of(id)
                        .is_some_and(|i| i != s && self.slots[i].is_up())
                })
                .count()
        };
        let ok = |ids: &[u64]| ids.is_empty() || alive(ids) > ids.len() / 2;
        ok(&cs.voters) && ok(&cs.voters_outgoing)
    }

    // ---------------------------------------------------------------------------------------
    // The workload.

    fn propose(&mut self, at: Option<usize>) -> Res {
        let target = match at {
            Some(s) => Some(s),
            None if self.rng.chance(700_000) => self.leader_slot().or_else(|| self.random_up()),
            None => self.random_up(),
        };
        let Some(s) = target else { return Ok(()) };
        let id = self.slots[s].id;
        let inc = self.slots[s].inc;
        if !self.slots[s].is_up() {
            return Ok(());
        }
        let wid = self.writes.len();
        self.writes.push(WriteRec {
            slot: s,
            inc,
            acked: false,
        });
        let mut data = tag(b'W', wid);
        let pad = self.rng.range(0, self.cfg.workload.max_payload);
        data.extend((0..pad).map(|k| (k as u8).wrapping_mul(31) ^ wid as u8));
        let r = self.slots[s]
            .running()
            .map(|run| run.raw.propose(Bytes::from(data)))
            .and_then(|r| r.err().map(|e| e.to_string()));
        self.tr(id, What::Propose(wid as u64, r));
        self.post(s)
    }

    fn read(&mut self, at: Option<usize>) -> Res {
        let target = match at {
            Some(s) => Some(s),
            None if self.rng.coin() => self.leader_slot().or_else(|| self.random_up()),
            None => self.random_up(),
        };
        let Some(s) = target else { return Ok(()) };
        if !self.slots[s].is_up() {
            return Ok(());
        }
        let id = self.slots[s].id;
        let rid = self.reads.len();
        self.reads.push((self.checker.read_floor(), self.now));
        let r = self.slots[s]
            .running()
            .map(|run| run.raw.read_index(Bytes::from(tag(b'R', rid))))
            .and_then(|r| r.err().map(|e| e.to_string()));
        self.tr(id, What::Read(rid as u64, r));
        self.post(s)
    }

    fn conf_change(&mut self, at: Option<usize>) -> Res {
        let target = match at {
            Some(s) => Some(s),
            None if self.rng.chance(800_000) => self.leader_slot().or_else(|| self.random_up()),
            None => self.random_up(),
        };
        let Some(s) = target else { return Ok(()) };
        if !self.slots[s].is_up() {
            return Ok(());
        }
        let cs = self.latest_conf.1.clone();
        let heal = self.phase == Phase::Heal;
        let joint = !cs.voters_outgoing.is_empty();
        let cc: ConfChangeI = if joint {
            if heal && cs.auto_leave {
                return Ok(());
            }
            ConfChangeV2::default().into()
        } else if heal {
            return Ok(());
        } else {
            let spare: Vec<usize> = (0..self.slots.len())
                .filter(|&i| matches!(self.slots[i].state, NodeState::Idle))
                .collect();
            let mut ops: Vec<ConfChangeSingle> = Vec::new();
            let single = |t: ConfChangeType, id: u64| ConfChangeSingle {
                r#type: t as i32,
                node_id: id,
            };
            let new_id = (!spare.is_empty()).then(|| self.slots[spare[0]].id);
            let pick = |r: &mut SimRng, v: &[u64]| v[r.index(v.len())];
            let choice = self.rng.below(7);
            let voters = cs.voters.clone();
            let learners = cs.learners.clone();
            match choice {
                0 | 1 if new_id.is_some() => {
                    let t = if choice == 0 {
                        ConfChangeType::ConfChangeAddNode
                    } else {
                        ConfChangeType::ConfChangeAddLearnerNode
                    };
                    ops.push(single(t, new_id.expect("checked")));
                }
                2 if !learners.is_empty() => {
                    let l = pick(&mut self.rng, &learners);
                    ops.push(single(ConfChangeType::ConfChangeAddNode, l));
                }
                3 if voters.len() > 1 => {
                    let v = pick(&mut self.rng, &voters);
                    ops.push(single(ConfChangeType::ConfChangeAddLearnerNode, v));
                }
                4 if voters.len() > 1 => {
                    let v = pick(&mut self.rng, &voters);
                    ops.push(single(ConfChangeType::ConfChangeRemoveNode, v));
                }
                5 if !learners.is_empty() => {
                    let l = pick(&mut self.rng, &learners);
                    ops.push(single(ConfChangeType::ConfChangeRemoveNode, l));
                }
                _ => {
                    // A joint change: replace a voter (by a learner or a new node), or add one.
                    if let Some(n) = new_id {
                        ops.push(single(ConfChangeType::ConfChangeAddNode, n));
                    } else if !learners.is_empty() {
                        let l = pick(&mut self.rng, &learners);
                        ops.push(single(ConfChangeType::ConfChangeAddNode, l));
                    }
                    if voters.len() > 1 || !ops.is_empty() {
                        let v = pick(&mut self.rng, &voters);
                        let t = if self.rng.coin() {
                            ConfChangeType::ConfChangeRemoveNode
                        } else {
                            ConfChangeType::ConfChangeAddLearnerNode
                        };
                        ops.push(single(t, v));
                    }
                }
            }
            if ops.is_empty() {
                return Ok(());
            }
            for op in &ops {
                if Some(op.node_id) == new_id {
                    self.start_new(spare[0])?;
                }
            }
            if ops.len() == 1 && self.rng.chance(300_000) {
                ConfChange {
                    r#type: ops[0].r#type,
                    node_id: ops[0].node_id,
                    ..Default::default()
                }
                .into()
            } else {
                let transition = if ops.len() == 1 && self.rng.chance(700_000) {
                    ConfChangeTransition::Auto
                } else {
                    [
                        ConfChangeTransition::Auto,
                        ConfChangeTransition::JointImplicit,
                        ConfChangeTransition::JointExplicit,
                    ][self.rng.index(3)]
                };
                ConfChangeV2 {
                    transition: transition as i32,
                    changes: ops,
                    ..Default::default()
                }
                .into()
            }
        };
        let text = conf_change_to_string(&cc.as_v2());
        let id = self.slots[s].id;
        let r = self.slots[s]
            .running()
            .map(|run| run.raw.propose_conf_change(cc))
            .and_then(|r| r.err().map(|e| e.to_string()));
        self.tr(id, What::ConfChange(text, r));
        self.post(s)
    }

    fn compact(&mut self, at: Option<usize>) -> Res {
        let Some(s) = at.or_else(|| self.random_up()) else {
            return Ok(());
        };
        let id = self.slots[s].id;
        let keep = self.rng.range(0, 8);
        let Some(run) = self.slots[s].running() else {
            return Ok(());
        };
        if !run.app.has_state {
            return Ok(());
        }
        let idx = run.app.applied;
        let store = run.raw.store_mut();
        if idx <= store.snapshot().map(|s| s.index()).unwrap_or(0) {
            return Ok(());
        }
        // With asynchronous writes the application may apply entries whose commit index is
        // not durable yet; a snapshot past the durable commit index would leave a storage
        // that cannot restart (applied past commit), so it waits.
        if idx > store.initial_state().map_or(0, |r| r.hard_state.commit) {
            return Ok(());
        }
        let data = encode_state(idx, run.app.chain);
        if store
            .create_snapshot(idx, Some(run.app.conf.clone()), data)
            .is_err()
        {
            return Ok(());
        }
        let first = store.first_index().unwrap_or(1);
        let to = idx.saturating_sub(keep).max(first);
        let to = if to <= idx && store.compact(to).is_ok() {
            to
        } else {
            0
        };
        self.tr(id, What::Compact(idx, to));
        self.post(s)
    }

    fn transfer(&mut self, at: Option<(usize, u64)>) -> Res {
        let (s, to) = match at {
            Some(x) => x,
            None => {
                let Some(l) = self.leader_slot() else {
                    return Ok(());
                };
                let voters = self.latest_conf.1.voters.clone();
                if voters.is_empty() {
                    return Ok(());
                }
                (l, voters[self.rng.index(voters.len())])
            }
        };
        let id = self.slots[s].id;
        let Some(run) = self.slots[s].running() else {
            return Ok(());
        };
        run.raw.transfer_leader(to);
        self.tr(id, What::Transfer(to));
        self.post(s)
    }

    // ---------------------------------------------------------------------------------------
    // Partitions.

    fn add_partition(&mut self, pairs: Vec<(usize, usize)>, text: String) -> u64 {
        for &(a, b) in &pairs {
            self.cut[a][b] = self.cut[a][b].saturating_add(1);
        }
        let pid = self.next_partition;
        self.next_partition += 1;
        if self.chart.is_some() {
            let links = pairs
                .iter()
                .map(|&(a, b)| (self.slots[a].id, self.slots[b].id))
                .collect();
            self.chart(ChartEvent::Partition {
                pid,
                links,
                text: text.clone(),
            });
        }
        self.partitions.push((pid, pairs));
        self.tr(0, What::Note(format!("partition p{pid}: {text}")));
        pid
    }

    fn end_partition(&mut self, pid: u64) {
        if let Some(k) = self.partitions.iter().position(|p| p.0 == pid) {
            let (_, pairs) = self.partitions.remove(k);
            for (a, b) in pairs {
                self.cut[a][b] = self.cut[a][b].saturating_sub(1);
            }
            self.tr(0, What::Note(format!("partition p{pid} healed")));
            self.chart(ChartEvent::PartitionEnd { pid });
        }
    }

    fn random_partition(&mut self) {
        let n = self.slots.len();
        if n < 2 {
            return;
        }
        let mut pairs = Vec::new();
        let text;
        if self.rng.chance(self.cfg.faults.one_way_ppm) {
            let x = self.rng.index(n);
            let inbound = self.rng.coin();
            let mut others = Vec::new();
            for y in 0..n {
                if y != x && (self.rng.chance(700_000)) {
                    pairs.push(if inbound { (y, x) } else { (x, y) });
                    others.push(self.slots[y].id);
                }
            }
            text = format!(
                "one way, {} {} {:?}",
                self.slots[x].id,
                if inbound {
                    "hears nothing from"
                } else {
                    "cannot reach"
                },
                others
            );
        } else {
            let mut side: Vec<bool> = (0..n).map(|_| self.rng.coin()).collect();
            if side.iter().all(|&b| b) || side.iter().all(|&b| !b) {
                let k = self.rng.index(n);
                side[k] = !side[k];
            }
            for a in 0..n {
                for b in 0..n {
                    if side[a] != side[b] {
                        pairs.push((a, b));
                    }
                }
            }
            let ids = |v: bool| -> Vec<u64> {
                (0..n)
                    .filter(|&i| side[i] == v)
                    .map(|i| (i + 1) as u64)
                    .collect()
            };
            text = format!("{:?} | {:?}", ids(true), ids(false));
        }
        if pairs.is_empty() {
            return;
        }
        let pid = self.add_partition(pairs, text);
        if self.cfg.cluster.quiesce {
            let d = self.rng.range(TICK / 2, 3 * TICK);
            self.schedule(d, Event::ReportCut(pid));
        }
        let len = self
            .rng
            .range(TICK, self.cfg.faults.partition_len.max(TICK));
        self.schedule(len, Event::PartitionEnd(pid));
    }

    fn heal_partitions(&mut self) {
        let ids: Vec<u64> = self.partitions.iter().map(|p| p.0).collect();
        for pid in ids {
            self.end_partition(pid);
        }
    }

    // ---------------------------------------------------------------------------------------
    // The heal and the liveness check.

    fn begin_heal(&mut self) -> Res {
        self.phase = Phase::Heal;
        self.heal_at = self.now;
        self.tr(0, What::Note("--- faults heal: partitions end, clocks agree, crashed nodes restart, messages arrive in order within half an election timeout ---".into()));
        self.chart(ChartEvent::Heal);
        self.heal_partitions();
        // Clocks heal too: a node ticking much faster than the others, with a stale log and no
        // pre-vote, can keep resetting the election timers of the nodes that could win.
        for sl in &mut self.slots {
            sl.tick_every = TICK;
        }
        let cs = self.latest_conf.1.clone();
        for s in 0..self.slots.len() {
            let id = self.slots[s].id;
            let removed = self.slots[s].member_once && !in_conf(&cs, id);
            match self.slots[s].state {
                // A node that must outlast its lease promise restarts later (or, removed,
                // is stopped).
                NodeState::Down(_) if self.cfg.faults.min_down > 0 => {
                    let inc = self.slots[s].inc;
                    self.schedule(self.cfg.faults.min_down, Event::Restart(s, inc));
                    if removed {
                        self.stop(s);
                    }
                }
                NodeState::Down(_) => {
                    self.restart(s)?;
                    if removed {
                        self.stop(s);
                    }
                }
                NodeState::Up(_) if removed => self.stop(s),
                _ => {}
            }
        }
        if !self.cfg.liveness {
            return Ok(());
        }
        let slowest = self
            .slots
            .iter()
            .map(|s| s.tick_every)
            .max()
            .unwrap_or(TICK);
        let et = self.cfg.cluster.election_tick as u64 * slowest;
        // The faults may have left a leader far ahead of its followers (and new members
        // empty): shipping that backlog at one flow-control window per round trip comes on
        // top of the 20 election timeouts.
        let last = self
            .slots
            .iter()
            .filter_map(|s| s.running_ref())
            .map(|r| r.shadow.last_index())
            .max()
            .unwrap_or(0);
        let behind = cs
            .voters
            .iter()
            .chain(&cs.voters_outgoing)
            .filter_map(|&v| self.slot_of(v).and_then(|i| self.slots[i].running_ref()))
            .map(|r| r.seen.commit)
            .min()
            .unwrap_or(last);
        let window = self.cfg.cluster.max_inflight_msgs.clamp(1, 4) as u64;
        let per_entry = (2 * self.cfg.faults.max_delay + 100) / window;
        self.deadline = self.now + 20 * et + last.saturating_sub(behind) * per_entry;
        self.schedule(0, Event::Probe);
        Ok(())
    }

    fn probe(&mut self) -> Res {
        if self.live_ok_at.is_some() {
            return Ok(());
        }
        self.schedule(TICK / 2, Event::Probe);
        let Some(l) = self.leader_slot() else {
            return Ok(());
        };
        let cs = &self.latest_conf.1;
        if !cs.voters_outgoing.is_empty() && !cs.auto_leave && self.rng.chance(200_000) {
            self.conf_change(Some(l))?;
        }
        let term = self.slots[l].running().map_or(0, |r| r.seen.term);
        let inc = self.slots[l].inc;
        if self
            .probe
            .as_ref()
            .is_some_and(|p| p.slot == l && p.inc == inc && p.term == term)
        {
            return Ok(());
        }
        let id = self.slots[l].id;
        let wid = self.writes.len();
        self.writes.push(WriteRec {
            slot: l,
            inc,
            acked: false,
        });
        let r = self.slots[l]
            .running()
            .map(|run| run.raw.propose(Bytes::from(tag(b'P', wid))));
        let ok = matches!(r, Some(Ok(())));
        self.tr(
            id,
            What::Propose(wid as u64, r.and_then(|r| r.err().map(|e| e.to_string()))),
        );
        if ok {
            self.probe = Some(Probe {
                write: wid,
                slot: l,
                inc,
                term,
            });
        }
        self.post(l)
    }

    fn liveness_failure(&self) -> String {
        let et = self.cfg.cluster.election_tick;
        let mut s = if self.leader_after_heal.is_none() {
            format!(
                "no leader within 20 election timeouts ({} ticks) of the heal",
                20 * et
            )
        } else {
            format!(
                "no proposal accepted by a leader after the heal was committed within 20 election timeouts ({} ticks); probe: {}",
                20 * et,
                self.probe
                    .as_ref()
                    .map(|p| format!("w{} at node {} term {}", p.write, self.slots[p.slot].id, p.term))
                    .unwrap_or_else(|| "none accepted".into())
            )
        };
        s.push_str("; nodes:");
        for sl in &self.slots {
            match &sl.state {
                NodeState::Up(r) => {
                    let st = r.raw.status();
                    let view = if st.config.voters.contains(sl.id) {
                        "voter"
                    } else if st.config.is_learner(sl.id) {
                        "learner"
                    } else {
                        "outside"
                    };
                    s.push_str(&format!(
                        " {}={}@{} ({view} in its config {}) last={} commit={} applied={}",
                        sl.id,
                        st.soft_state.raft_state,
                        st.hard_state.term,
                        st.config,
                        r.shadow.last_index(),
                        st.hard_state.commit,
                        st.applied
                    ));
                }
                NodeState::Down(_) => s.push_str(&format!(" {}=down", sl.id)),
                NodeState::Stopped => s.push_str(&format!(" {}=stopped", sl.id)),
                NodeState::Idle => {}
            }
        }
        s.push_str(&format!("; config {:?}", self.latest_conf.1));
        s
    }

    // ---------------------------------------------------------------------------------------
    // Driving.

    fn handle(&mut self, ev: Event) -> Result<bool, Violation> {
        let chaos = self.phase == Phase::Chaos;
        let cur = |w: &World, s: usize, inc: u32| w.slots[s].inc == inc && w.slots[s].is_up();
        match ev {
            Event::Deliver(m, id) => self.deliver(*m, id)?,
            Event::Tick(s, inc) => {
                if !cur(self, s, inc) {
                    return Ok(false);
                }
                let id = self.slots[s].id;
                let mut quiet = false;
                if let Some(r) = self.slots[s].running() {
                    quiet = r.raw.is_quiet();
                    r.raw.tick();
                }
                self.report.ticks += 1;
                self.report.quiet_ticks += quiet as u64;
                self.tr(id, What::Tick);
                self.post(s)?;
                let every = self.slots[s].tick_every;
                let d = if self.cfg.faults.tick_jitter {
                    every - every / 20 + self.rng.below(every / 10 + 1)
                } else {
                    every
                };
                self.schedule(d, Event::Tick(s, inc));
            }
            Event::Ready(s, inc) => {
                if !cur(self, s, inc) {
                    return Ok(false);
                }
                self.ready_begin(s)?;
            }
            Event::Persist(s, inc) => {
                if !cur(self, s, inc) {
                    return Ok(false);
                }
                self.persist(s)?;
            }
            Event::Finish(s, inc) => {
                if !cur(self, s, inc) {
                    return Ok(false);
                }
                self.finish(s)?;
            }
            Event::AppendWork(s, inc) => {
                if !cur(self, s, inc) {
                    return Ok(false);
                }
                self.append_work(s)?;
            }
            Event::ApplyWork(s, inc) => {
                if !cur(self, s, inc) {
                    return Ok(false);
                }
                self.apply_work(s)?;
            }
            Event::CrashNode(s, inc, why) => {
                if !cur(self, s, inc) || !chaos {
                    return Ok(false);
                }
                if !self.crash_keeps_quorum(s) && !self.rng.chance(self.cfg.faults.unsafe_crash_ppm)
                {
                    return Ok(false);
                }
                self.crash(s, why);
            }
            Event::Restart(s, inc) => {
                if self.slots[s].inc != inc || !matches!(self.slots[s].state, NodeState::Down(_)) {
                    return Ok(false);
                }
                self.restart(s)?;
            }
            Event::Stop(s) => self.stop(s),
            Event::Crash => {
                if !chaos {
                    return Ok(false);
                }
                let d = self.rng.around(self.cfg.faults.crash_every);
                self.schedule(d, Event::Crash);
                // A third of the crashes hit the leader: elections are where bugs hide.
                let target = if self.rng.chance(333_333) {
                    self.leader_slot().or_else(|| self.random_up())
                } else {
                    self.random_up()
                };
                if let Some(s) = target {
                    if self.crash_keeps_quorum(s)
                        || self.rng.chance(self.cfg.faults.unsafe_crash_ppm)
                    {
                        self.crash(s, "random crash");
                    }
                }
            }
            Event::Partition => {
                if !chaos {
                    return Ok(false);
                }
                let d = self.rng.around(self.cfg.faults.partition_every);
                self.schedule(d, Event::Partition);
                self.random_partition();
            }
            Event::PartitionEnd(pid) => self.end_partition(pid),
            Event::Propose => {
                if !chaos {
                    // After the heal only the liveness probe proposes: a leader's backlog
                    // stays finite, so a bound on the time to commit means something.
                    return Ok(false);
                }
                let d = self.rng.around(self.cfg.workload.propose_every);
                self.schedule(d, Event::Propose);
                if self.now < self.idle_until {
                    return Ok(false);
                }
                self.propose(None)?;
            }
            Event::Read => {
                let d = self.rng.around(self.cfg.workload.read_every);
                self.schedule(d, Event::Read);
                if self.now < self.idle_until {
                    return Ok(false);
                }
                self.read(None)?;
            }
            Event::ConfChange => {
                let d = self.rng.around(self.cfg.workload.conf_change_every);
                self.schedule(d, Event::ConfChange);
                if self.now < self.idle_until {
                    return Ok(false);
                }
                self.conf_change(None)?;
            }
            Event::Compact => {
                let d = self.rng.around(self.cfg.workload.compact_every);
                self.schedule(d, Event::Compact);
                self.compact(None)?;
            }
            Event::Transfer => {
                if !chaos {
                    return Ok(false);
                }
                let d = self.rng.around(self.cfg.workload.transfer_every);
                self.schedule(d, Event::Transfer);
                if self.now < self.idle_until {
                    return Ok(false);
                }
                self.transfer(None)?;
            }
            Event::Probe => self.probe()?,
            Event::IdleSpell => {
                if !chaos {
                    return Ok(false);
                }
                let len = self.rng.range(TICK, self.cfg.workload.idle_len.max(TICK));
                self.idle_until = self.now + len;
                let d = self.rng.around(self.cfg.workload.idle_every);
                self.schedule(len + d, Event::IdleSpell);
                self.tr(0, What::Note(format!("workload idle for {len}")));
            }
            Event::Wake => {
                if !chaos {
                    return Ok(false);
                }
                let d = self.rng.around(self.cfg.workload.wake_every);
                self.schedule(d, Event::Wake);
                if let Some(s) = self.random_up() {
                    let id = self.slots[s].id;
                    if let Some(r) = self.slots[s].running() {
                        r.raw.wake();
                    }
                    self.tr(id, What::Note("wake".into()));
                    self.post(s)?;
                }
            }
            Event::ReportDown(s) => self.report_down(s)?,
            Event::ReportCut(pid) => self.report_cut(pid)?,
        }
        Ok(true)
    }

    /// Runs the world on its scheduler: `cfg.events` events with faults, then the heal and
    /// (if `cfg.liveness`) the liveness check. Stops at the first safety violation.
    pub fn run(mut self) -> RunReport {
        self.run_events();
        self.finish_report()
    }

    /// Keeps a record of the run for a message-sequence chart ([`ChartLog`]); the report of
    /// the run carries it. Charts are drawn for worlds driven by their scheduler.
    pub fn record_chart(&mut self) {
        let mut log = ChartLog::new(self.slots.iter().map(|s| s.id).collect());
        for sl in &self.slots {
            if let Some(r) = sl.running_ref() {
                log.lane(0, 0, sl.id, Lane::Up(r.raw.role()));
            }
        }
        self.chart = Some(Box::new(log));
    }

    /// Records `v` as the run's violation (a panic of the core caught outside the world).
    pub(crate) fn set_violation(&mut self, v: Violation) {
        if self.report.violation.is_none() {
            self.report.violation = Some(v);
        }
    }

    pub(crate) fn run_events(&mut self) {
        let cap = self.cfg.events.saturating_mul(50).saturating_add(1_000_000);
        if self.report.violation.is_none() {
            while let Some(Reverse(sc)) = self.queue.pop() {
                self.now = sc.time;
                match self.handle(sc.ev) {
                    Ok(true) => self.events += 1,
                    Ok(false) => {}
                    Err(v) => {
                        self.events += 1;
                        self.report.violation = Some(v);
                        break;
                    }
                }
                if self.phase == Phase::Chaos && self.events >= self.cfg.events {
                    if let Err(v) = self.begin_heal() {
                        self.report.violation = Some(v);
                        break;
                    }
                    if !self.cfg.liveness {
                        break;
                    }
                }
                if self.phase == Phase::Heal {
                    if self.live_ok_at.is_some() {
                        break;
                    }
                    if self.now > self.deadline {
                        self.liveness = Some(self.liveness_failure());
                        break;
                    }
                }
                if self.events >= cap {
                    self.liveness = Some(format!("event cap {cap} reached"));
                    break;
                }
            }
        }
    }

    pub(crate) fn finish_report(mut self) -> RunReport {
        if let (Some(ok), true) = (self.live_ok_at, self.phase == Phase::Heal) {
            self.report.heal_ticks = Some((ok - self.heal_at) / TICK);
        }
        self.report.events = self.events;
        self.report.sim_time = self.now;
        self.report.liveness = self.liveness.take();
        self.report.committed = self.checker.committed_count;
        self.report.leader_terms = self.checker.leader_terms();
        if let Some(v) = self.report.violation.clone() {
            self.tr(0, What::Note(format!("VIOLATION {v}")));
            self.chart(ChartEvent::Violation {
                text: v.to_string(),
            });
        }
        self.report.chart = self.chart.take();
        if self.report.violation.is_some() || self.report.liveness.is_some() {
            self.report.trace_tail = self.trace.render();
        }
        self.report
    }

    /// Applies one action of an explicit schedule (a world made with [`World::scripted`]),
    /// then runs the checks. Returns the first violation.
    pub fn apply(&mut self, a: Action) -> Res {
        if let Some(v) = &self.report.violation {
            return Err(v.clone());
        }
        self.events += 1;
        self.now += 1;
        let r = self.apply_inner(a);
        if let Err(v) = &r {
            self.report.violation = Some(v.clone());
        }
        r
    }

    fn node(&self, n: u8) -> usize {
        n as usize % self.slots.len()
    }

    fn apply_inner(&mut self, a: Action) -> Res {
        let pick = |w: &World, k: u8| (!w.pool.is_empty()).then(|| k as usize % w.pool.len());
        match a {
            Action::Deliver(k) => {
                if let Some(i) = pick(self, k) {
                    let m = self.pool.remove(i);
                    self.deliver(m, 0)?;
                }
            }
            Action::Drop(k) => {
                if let Some(i) = pick(self, k) {
                    let m = self.pool.remove(i);
                    let sum = MsgSummary::of(&m);
                    self.tr(0, What::Lost(sum, "dropped"));
                    if m.msg_type() == Some(MessageType::MsgSnap) {
                        self.report_snapshot(m.from, m.to, SnapshotStatus::Failure);
                    }
                }
            }
            Action::DeliverTo(n) | Action::DropTo(n) => {
                let to = self.slots[self.node(n)].id;
                if let Some(i) = self.pool.iter().position(|m| m.to == to) {
                    let m = self.pool.remove(i);
                    if matches!(a, Action::DeliverTo(_)) {
                        self.deliver(m, 0)?;
                    } else {
                        let sum = MsgSummary::of(&m);
                        self.tr(0, What::Lost(sum, "dropped"));
                        if m.msg_type() == Some(MessageType::MsgSnap) {
                            self.report_snapshot(m.from, m.to, SnapshotStatus::Failure);
                        }
                    }
                }
            }
            Action::Duplicate(k) => {
                if let Some(i) = pick(self, k) {
                    let m = self.pool[i].clone();
                    self.pool.push(m);
                }
            }
            Action::Tick(n) => {
                let s = self.node(n);
                let id = self.slots[s].id;
                if let Some(r) = self.slots[s].running() {
                    r.raw.tick();
                    self.tr(id, What::Tick);
                    self.post(s)?;
                }
            }
            Action::TickAll => {
                for s in 0..self.slots.len() {
                    let id = self.slots[s].id;
                    if let Some(r) = self.slots[s].running() {
                        r.raw.tick();
                        self.tr(id, What::Tick);
                        self.post(s)?;
                    }
                }
            }
            Action::Campaign(n) => {
                let s = self.node(n);
                let id = self.slots[s].id;
                if let Some(r) = self.slots[s].running() {
                    let _ = r.raw.campaign();
                    self.tr(id, What::Note("campaign".into()));
                    self.post(s)?;
                }
            }
            Action::Ready(n) => self.ready_begin(self.node(n))?,
            Action::Advance(n) => self.advance_one(self.node(n))?,
            Action::Process(n) => self.process(self.node(n))?,
            Action::Crash(n) => self.crash(self.node(n), "crash"),
            Action::Restart(n) => self.restart(self.node(n))?,
            Action::Propose(n) => self.propose(Some(self.node(n)))?,
            Action::Read(n) => self.read(Some(self.node(n)))?,
            Action::ConfChange(n) => self.conf_change(Some(self.node(n)))?,
            Action::Compact(n) => self.compact(Some(self.node(n)))?,
            Action::Transfer(n, to) => {
                let to = self.slots[self.node(to)].id;
                self.transfer(Some((self.node(n), to)))?
            }
            Action::Isolate(n) => {
                let x = self.node(n);
                let pairs: Vec<(usize, usize)> = (0..self.slots.len())
                    .filter(|&y| y != x)
                    .flat_map(|y| [(x, y), (y, x)])
                    .collect();
                let text = format!("{} isolated", self.slots[x].id);
                self.add_partition(pairs, text);
            }
            Action::CutOneWay(a, b) => {
                let (a, b) = (self.node(a), self.node(b));
                if a != b {
                    let text = format!("{} cannot reach {}", self.slots[a].id, self.slots[b].id);
                    self.add_partition(vec![(a, b)], text);
                }
            }
            Action::Heal => self.heal_partitions(),
            Action::Settle => self.settle()?,
        }
        Ok(())
    }

    /// One step of a node's Ready handling (explicit schedules).
    fn advance_one(&mut self, s: usize) -> Res {
        let Some(run) = self.slots[s].running() else {
            return Ok(());
        };
        if let Some(p) = &run.pending {
            if p.persisted {
                return self.finish(s);
            }
            return self.persist(s);
        }
        if !run.append_q.is_empty() {
            return self.append_work(s);
        }
        if !run.apply_q.is_empty() {
            return self.apply_work(s);
        }
        Ok(())
    }

    /// Handles a node's Ready (and its storage work) to the end (explicit schedules).
    fn process(&mut self, s: usize) -> Res {
        self.ready_begin(s)?;
        for _ in 0..64 {
            let busy = self.slots[s].running().is_some_and(|r| {
                r.pending.is_some() || !r.append_q.is_empty() || !r.apply_q.is_empty()
            });
            if !busy {
                break;
            }
            self.advance_one(s)?;
        }
        Ok(())
    }

    /// Handles every Ready and delivers every message until the cluster is quiet (bounded).
    fn settle(&mut self) -> Res {
        for _ in 0..100 {
            let mut any = false;
            for s in 0..self.slots.len() {
                let has = self.slots[s].running().is_some_and(|r| {
                    r.raw.has_ready()
                        || r.pending.is_some()
                        || !r.append_q.is_empty()
                        || !r.apply_q.is_empty()
                });
                if has {
                    any = true;
                    self.process(s)?;
                }
            }
            let msgs = std::mem::take(&mut self.pool);
            any |= !msgs.is_empty();
            for m in msgs {
                self.deliver(m, 0)?;
            }
            if !any {
                break;
            }
        }
        Ok(())
    }

    /// Ends an explicit schedule and returns its report.
    pub fn into_report(self) -> RunReport {
        self.finish_report()
    }

    /// The checker (its ledger and leaders).
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// Events (or actions) executed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The trace lines kept so far, oldest first.
    pub fn trace(&self) -> Vec<String> {
        self.trace.render()
    }
}
