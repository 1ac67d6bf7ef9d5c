//! The interaction suite's handler: a port of etcd-io/raft's `rafttest.InteractionEnv`. Each
//! file gets a fresh environment of nodes, an in-flight message queue and one output buffer
//! that the nodes' loggers share. See HARNESS.md §3 of the etcd reference material for every
//! command.
//!
//! Messages are routed by origin: a response handed back by a node's local append or apply
//! thread (a storage acknowledgement, or the node's own vote or append acknowledgement) is
//! remembered as local and delivered with `step_local`; everything a node sent to the network
//! is delivered with `step`.

#[path = "interaction_output.rs"]
mod output;

use std::collections::VecDeque;

use bytes::Bytes;
use raftcore::describe::{describe_entries, describe_message, describe_ready};
use raftcore::raftpb::{
    conf_changes_from_string, is_local_msg_target, ConfChange, ConfChangeI, ConfChangeTransition,
    ConfChangeV2, ConfState, Entry, Message, MessageType, Snapshot, SnapshotMetadata,
};
use raftcore::testkit::{apply_committed, ConfOutcome, Persist, StateMachine};
use raftcore::{AppendMode, Config, MemStorage, RaftState, RawNode, ReadOnlyOption, Storage};

use super::datadriven::TestData;
use output::Output;

/// A `stabilize` that has not settled after this many rounds fails the command.
const STABILIZE_MAX_ROUNDS: usize = 1000;

type CmdResult = Result<(), String>;

pub fn new_handler() -> crate::Handler {
    let mut env = Env::default();
    Box::new(move |td: &TestData| env.handle(td))
}

/// A node's storage: a `MemStorage` plus the history of the node's applied states, the last
/// of which is what `snapshot()` hands out (an "appender" state machine: each snapshot's data
/// is the previous data followed by the applied entry's payload).
pub struct HarnessStorage {
    pub mem: MemStorage,
    pub history: Vec<Snapshot>,
}

impl Storage for HarnessStorage {
    fn initial_state(&self) -> raftcore::Result<RaftState> {
        self.mem.initial_state()
    }
    fn entries(&self, low: u64, high: u64, max_size: u64) -> raftcore::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size)
    }
    fn term(&self, idx: u64) -> raftcore::Result<u64> {
        self.mem.term(idx)
    }
    fn first_index(&self) -> raftcore::Result<u64> {
        self.mem.first_index()
    }
    fn last_index(&self) -> raftcore::Result<u64> {
        self.mem.last_index()
    }
    fn snapshot(&self) -> raftcore::Result<Snapshot> {
        Ok(self.history.last().cloned().unwrap_or_default())
    }
}

struct Node {
    rn: RawNode<HarnessStorage>,
    cfg: Config,
    /// `MsgStorageAppend` work items (asynchronous storage writes).
    append_work: VecDeque<Message>,
    /// `MsgStorageApply` work items (asynchronous storage writes).
    apply_work: VecDeque<Message>,
}

/// A message waiting for delivery, and where it came from.
struct Queued {
    msg: Message,
    /// Handed back by the recipient's own append or apply thread.
    local: bool,
}

#[derive(Default)]
struct Env {
    nodes: Vec<Node>,
    msgs: Vec<Queued>,
    out: Output,
}

fn err_text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

fn parse_num<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| format!("invalid number {s:?}: {e}"))
}

/// The bare arguments (keys without values), read as node ids.
fn bare_ids(td: &TestData) -> Result<Vec<u64>, String> {
    td.cmd_args
        .iter()
        .filter(|a| a.vals.is_empty())
        .map(|a| parse_num::<u64>(&a.key))
        .collect()
}

/// Process one Ready's persistence (etcd's `processAppend`): the HardState first, as etcd
/// writes it, then the snapshot or the entries with the test kit.
fn process_append(store: &mut HarnessStorage, mut p: Persist) -> CmdResult {
    if let Some(hs) = p.hard_state.take().filter(|hs| !hs.is_empty()) {
        store.mem.set_hard_state(hs);
    }
    p.snapshot = p.snapshot.filter(|s| !s.is_empty());
    if p.snapshot.is_some() && !p.entries.is_empty() {
        return Err("can't apply snapshot and entries at the same time".to_string());
    }
    p.write(&mut store.mem).map_err(err_text)
}

/// The "appender" state machine of a node: every applied entry extends the history with a
/// new snapshot, whose data is the previous one's followed by the entry's payload (a conf
/// change's context), and whose configuration is the one the entry left in force.
struct Appender {
    last: Snapshot,
    new: Vec<Snapshot>,
}

impl StateMachine for Appender {
    type Error = String;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Result<(), String> {
        let (update, cs) = match conf {
            None => (e.data.clone(), None),
            Some(ConfOutcome::Undecodable(err)) => return Err(err_text(err)),
            // A refused change leaves the configuration as it was.
            Some(outcome) => {
                let ctx = match outcome.change() {
                    Some(ConfChangeI::V1(cc)) => cc.context.clone(),
                    Some(ConfChangeI::V2(cc)) => cc.context.clone(),
                    None => Bytes::new(),
                };
                (ctx, outcome.conf_state().cloned())
            }
        };
        let mut data = self.last.data.to_vec();
        data.extend_from_slice(&update);
        let cs = cs.unwrap_or_else(|| self.last.conf_state());
        self.last = Snapshot {
            data: Bytes::from(data),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(cs),
                index: e.index,
                term: e.term,
            }),
        };
        self.new.push(self.last.clone());
        Ok(())
    }
}

/// Applies committed entries (etcd's `processApply`) with the test kit: conf changes go to the
/// node, and every entry extends the history with a new snapshot (see `Appender`).
fn process_apply(rn: &mut RawNode<HarnessStorage>, ents: &[Entry]) -> CmdResult {
    let mut app = Appender {
        last: rn.store().history.last().cloned().unwrap_or_default(),
        new: Vec::new(),
    };
    let res = apply_committed(rn, ents, &mut app);
    rn.store_mut().history.append(&mut app.new);
    res
}

impl Env {
    fn handle(&mut self, td: &TestData) -> String {
        self.out.reset();
        let res = match td.cmd.as_str() {
            "_breakpoint" => Ok(()),
            "add-nodes" => self.handle_add_nodes(td),
            "campaign" => self.handle_campaign(td),
            "compact" => self.handle_compact(td),
            "deliver-msgs" => self.handle_deliver_msgs(td),
            "process-ready" => self.handle_process_ready(td),
            "process-append-thread" => self.handle_process_append_thread(td),
            "process-apply-thread" => self.handle_process_apply_thread(td),
            "log-level" => self.handle_log_level(td),
            "raft-log" => self.handle_raft_log(td),
            "raft-state" => self.handle_raft_state(),
            "set-randomized-election-timeout" => self.handle_set_randomized_election_timeout(td),
            "stabilize" => self.handle_stabilize(td),
            "status" => self.handle_status(td),
            "tick-election" => self.handle_tick(td, true),
            "tick-heartbeat" => self.handle_tick(td, false),
            "transfer-leadership" => self.handle_transfer_leadership(td),
            "forget-leader" => self.handle_forget_leader(td),
            "send-snapshot" => self.handle_send_snapshot(td),
            "propose" => self.handle_propose(td),
            "propose-conf-change" => self.handle_propose_conf_change(td),
            "report-unreachable" => self.handle_report_unreachable(td),
            "read-index" => self.handle_read_index(td),
            _ => Err("unknown command".to_string()),
        };
        if let Err(e) = res {
            // Errors show even when all other output is silenced.
            if self.out.quiet() {
                return e;
            }
            self.out.write(&e);
        }
        let s = self.out.take();
        if s.is_empty() {
            "ok".to_string()
        } else {
            s
        }
    }

    /// The slice index of node `id` (ids are 1-based).
    fn idx(&self, id: u64) -> Result<usize, String> {
        if id == 0 || id > self.nodes.len() as u64 {
            return Err(format!("node {id} does not exist"));
        }
        Ok(id as usize - 1)
    }

    /// The node named by the first argument.
    fn first_idx(&self, td: &TestData) -> Result<usize, String> {
        let a = td
            .cmd_args
            .first()
            .ok_or_else(|| format!("{}: expected a node id", td.cmd))?;
        self.idx(parse_num(&a.key)?)
    }

    /// The nodes named by the bare arguments.
    fn idxs(&self, td: &TestData) -> Result<Vec<usize>, String> {
        bare_ids(td)?.into_iter().map(|id| self.idx(id)).collect()
    }

    fn handle_add_nodes(&mut self, td: &TestData) -> CmdResult {
        let n: u64 = parse_num(
            &td.cmd_args
                .first()
                .ok_or("add-nodes: expected a node count")?
                .key,
        )?;
        let mut cfg = Config::default();
        cfg.election_tick = 3;
        cfg.heartbeat_tick = 1;
        cfg.max_size_per_msg = u64::MAX;
        cfg.max_inflight_msgs = i32::MAX as usize;
        cfg.append_mode = AppendMode::EtcdExact;
        // etcd's behaviour: a removed leader keeps leading, vote rejections carry nothing, a
        // stale leader is answered only with check-quorum or pre-vote.
        cfg.step_down_on_removal = false;
        cfg.vote_rejection_carries_commit = false;
        cfg.answer_stale_leader = false;
        let mut cs = ConfState::default();
        let mut index = 0u64;
        let mut data: Option<Bytes> = None;
        for arg in &td.cmd_args[1..] {
            for v in &arg.vals {
                match arg.key.as_str() {
                    "voters" => cs.voters.push(parse_num(v)?),
                    "learners" => cs.learners.push(parse_num(v)?),
                    "inflight" => cfg.max_inflight_msgs = parse_num(v)?,
                    "index" => {
                        index = parse_num(v)?;
                        cfg.applied = index;
                    }
                    "content" => data = Some(Bytes::from(v.clone().into_bytes())),
                    "async-storage-writes" => cfg.async_storage_writes = parse_bool(v)?,
                    "prevote" => cfg.pre_vote = parse_bool(v)?,
                    "checkquorum" => cfg.check_quorum = parse_bool(v)?,
                    "max-committed-size-per-ready" => {
                        cfg.max_committed_size_per_ready = parse_num(v)?
                    }
                    "disable-conf-change-validation" => {
                        cfg.disable_conf_change_validation = parse_bool(v)?
                    }
                    "read-only" => {
                        cfg.read_only_option = match v.as_str() {
                            "safe" => ReadOnlyOption::Safe,
                            "lease-based" => ReadOnlyOption::LeaseBased,
                            _ => return Err(format!("invalid read-only option {v:?}")),
                        }
                    }
                    "step-down-on-removal" => cfg.step_down_on_removal = parse_bool(v)?,
                    _ => {}
                }
            }
        }
        let bootstrap =
            !cs.voters.is_empty() || !cs.learners.is_empty() || index != 0 || data.is_some();
        let mut snap = if bootstrap {
            Snapshot {
                data: data.unwrap_or_default(),
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(cs),
                    index,
                    term: 0,
                }),
            }
        } else {
            Snapshot::default()
        };
        for _ in 0..n {
            let id = self.nodes.len() as u64 + 1;
            let mut store = HarnessStorage {
                mem: MemStorage::new(),
                history: Vec::new(),
            };
            if bootstrap {
                if index <= 1 {
                    return Err("index must be specified as > 1 due to bootstrap".to_string());
                }
                if let Some(md) = snap.metadata.as_mut() {
                    md.term = 1;
                }
                store.mem.apply_snapshot(snap.clone()).map_err(err_text)?;
                let fi = store.mem.first_index().map_err(err_text)?;
                if fi != index + 1 {
                    return Err(format!(
                        "failed to establish first index {}; got {fi}",
                        index + 1
                    ));
                }
            }
            store.history.push(snap.clone());
            let mut node_cfg = cfg.clone();
            node_cfg.id = id;
            node_cfg.seed = id;
            node_cfg.logger = self.out.logger();
            let rn = RawNode::new(&node_cfg, store).map_err(err_text)?;
            self.nodes.push(Node {
                rn,
                cfg: node_cfg,
                append_work: VecDeque::new(),
                apply_work: VecDeque::new(),
            });
        }
        Ok(())
    }

    fn handle_campaign(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        self.nodes[idx].rn.campaign().map_err(err_text)
    }

    fn handle_compact(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        let new_first: u64 = parse_num(
            &td.cmd_args
                .get(1)
                .ok_or("compact: expected the new first index")?
                .key,
        )?;
        self.nodes[idx]
            .rn
            .store_mut()
            .mem
            .compact(new_first)
            .map_err(err_text)?;
        self.raft_log(idx)
    }

    fn handle_deliver_msgs(&mut self, td: &TestData) -> CmdResult {
        let mut typ: Option<i32> = None;
        let mut rs: Vec<(u64, bool)> = Vec::new();
        for arg in &td.cmd_args {
            if arg.vals.is_empty() {
                rs.push((parse_num(&arg.key)?, false));
            }
            for v in &arg.vals {
                match arg.key.as_str() {
                    "drop" => {
                        let id: u64 = parse_num(v)?;
                        if rs.iter().any(|r| r.0 == id) {
                            return Err(format!("can't both deliver and drop msgs to {id}"));
                        }
                        rs.push((id, true));
                    }
                    "type" => {
                        let t = MessageType::from_str_name(v)
                            .ok_or_else(|| format!("unknown message type {v}"))?;
                        typ = Some(t as i32);
                    }
                    _ => {}
                }
            }
        }
        if self.deliver_msgs(typ, &rs) == 0 {
            self.out.writeln("no messages");
        }
        Ok(())
    }

    /// Delivers (or drops) the queued messages to each recipient in turn, in queue order.
    /// Dropping never removes local messages. Returns the number of messages handled.
    fn deliver_msgs(&mut self, typ: Option<i32>, rs: &[(u64, bool)]) -> usize {
        let mut n = 0;
        for &(id, drop) in rs {
            let (mine, rest): (Vec<Queued>, Vec<Queued>) =
                std::mem::take(&mut self.msgs).into_iter().partition(|q| {
                    q.msg.to == id && !(drop && q.local) && typ.is_none_or(|t| q.msg.r#type == t)
                });
            self.msgs = rest;
            n += mine.len();
            for q in mine {
                if drop {
                    self.out.write("dropped: ");
                }
                self.out.writeln(&describe_message(&q.msg, None));
                if drop {
                    continue;
                }
                let to = q.msg.to;
                let res = match self.idx(to) {
                    Ok(i) => {
                        let rn = &mut self.nodes[i].rn;
                        if q.local {
                            rn.step_local(q.msg).map_err(err_text)
                        } else {
                            rn.step(q.msg).map_err(err_text)
                        }
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = res {
                    self.out.writeln(&e);
                }
            }
        }
        n
    }

    fn handle_process_ready(&mut self, td: &TestData) -> CmdResult {
        let idxs = self.idxs(td)?;
        let out = self.out.clone();
        for &idx in &idxs {
            if idxs.len() > 1 {
                out.writeln(&format!("> {} handling Ready", idx + 1));
                out.with_indent(|| self.process_ready(idx))?;
            } else {
                self.process_ready(idx)?;
            }
        }
        Ok(())
    }

    /// etcd's `ProcessReady`: print the Ready; in sync mode persist and apply it; route its
    /// messages; in sync mode advance.
    fn process_ready(&mut self, idx: usize) -> CmdResult {
        let node = &mut self.nodes[idx];
        let mut rd = node.rn.ready();
        self.out.write(&describe_ready(&rd, None));
        let sync = !node.cfg.async_storage_writes;
        if sync {
            process_append(node.rn.store_mut(), Persist::take_from_ready(&mut rd))?;
            process_apply(&mut node.rn, &rd.committed_entries)?;
        }
        for m in rd.messages.into_iter().chain(rd.persisted_messages) {
            if is_local_msg_target(m.to) {
                if sync {
                    return Err(format!(
                        "unexpected local message in sync mode: {}",
                        describe_message(&m, None)
                    ));
                }
                match m.msg_type() {
                    Some(MessageType::MsgStorageAppend) => node.append_work.push_back(m),
                    Some(MessageType::MsgStorageApply) => node.apply_work.push_back(m),
                    _ => {
                        return Err(format!(
                            "unexpected local message: {}",
                            describe_message(&m, None)
                        ))
                    }
                }
            } else {
                self.msgs.push(Queued {
                    msg: m,
                    local: false,
                });
            }
        }
        if sync {
            node.rn.advance().map_err(err_text)?;
        }
        Ok(())
    }

    fn handle_process_append_thread(&mut self, td: &TestData) -> CmdResult {
        let idxs = self.idxs(td)?;
        let out = self.out.clone();
        for &idx in &idxs {
            if idxs.len() > 1 {
                out.writeln(&format!("> {} processing append thread", idx + 1));
                out.with_indent(|| self.process_append_thread(idx))?;
            } else {
                self.process_append_thread(idx)?;
            }
        }
        Ok(())
    }

    /// Queues the responses of a storage work item; those addressed to the node that did the
    /// work are local.
    fn queue_responses(&mut self, node_id: u64, resps: Vec<Message>) {
        for r in resps {
            self.out.writeln(&describe_message(&r, None));
            let local = r.to == node_id;
            self.msgs.push(Queued { msg: r, local });
        }
    }

    /// Pops one `MsgStorageAppend`, persists it and queues its responses.
    fn process_append_thread(&mut self, idx: usize) -> CmdResult {
        let node = &mut self.nodes[idx];
        let Some(mut m) = node.append_work.pop_front() else {
            self.out.write("no append work to perform");
            return Ok(());
        };
        let resps = std::mem::take(&mut m.responses);
        self.out.write("Processing:\n");
        self.out.writeln(&describe_message(&m, None));
        process_append(node.rn.store_mut(), Persist::take_from_message(&mut m))?;
        self.out.write("Responses:\n");
        let node_id = node.rn.id();
        self.queue_responses(node_id, resps);
        Ok(())
    }

    fn handle_process_apply_thread(&mut self, td: &TestData) -> CmdResult {
        let idxs = self.idxs(td)?;
        let out = self.out.clone();
        for &idx in &idxs {
            if idxs.len() > 1 {
                out.writeln(&format!("> {} processing apply thread", idx + 1));
                out.with_indent(|| self.process_apply_thread(idx))?;
            } else {
                self.process_apply_thread(idx)?;
            }
        }
        Ok(())
    }

    /// Pops one `MsgStorageApply`, applies its entries and queues its responses.
    fn process_apply_thread(&mut self, idx: usize) -> CmdResult {
        let node = &mut self.nodes[idx];
        let Some(mut m) = node.apply_work.pop_front() else {
            self.out.write("no apply work to perform");
            return Ok(());
        };
        let resps = std::mem::take(&mut m.responses);
        self.out.write("Processing:\n");
        self.out.writeln(&describe_message(&m, None));
        process_apply(&mut node.rn, &m.entries)?;
        self.out.write("Responses:\n");
        let node_id = node.rn.id();
        self.queue_responses(node_id, resps);
        Ok(())
    }

    fn handle_log_level(&mut self, td: &TestData) -> CmdResult {
        let name = td
            .cmd_args
            .first()
            .map(|a| a.key.as_str())
            .unwrap_or_default();
        self.out.set_level_by_name(name)
    }

    fn handle_raft_log(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        self.raft_log(idx)
    }

    /// Prints the stable (storage) log of a node.
    fn raft_log(&mut self, idx: usize) -> CmdResult {
        let s = &self.nodes[idx].rn.store().mem;
        let fi = s.first_index().map_err(err_text)?;
        let li = s.last_index().map_err(err_text)?;
        if li < fi {
            self.out
                .write(&format!("log is empty: first index={fi}, last index={li}"));
            return Ok(());
        }
        let ents = s.entries(fi, li + 1, u64::MAX).map_err(err_text)?;
        self.out.write(&describe_entries(&ents, None));
        Ok(())
    }

    fn handle_raft_state(&mut self) -> CmdResult {
        for n in &self.nodes {
            let st = n.rn.status();
            let voter = if st.config.voters.contains(st.id) {
                "(Voter)"
            } else {
                "(Non-Voter)"
            };
            self.out.writeln(&format!(
                "{}: {} {} Term:{} Lead:{}",
                st.id, st.soft_state.raft_state, voter, st.hard_state.term, st.soft_state.leader_id
            ));
        }
        Ok(())
    }

    fn handle_set_randomized_election_timeout(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        let timeout: usize = match td.arg("timeout") {
            Some([v]) => parse_num(v)?,
            _ => return Err("expected timeout=<ticks>".to_string()),
        };
        if timeout == 0 {
            return Err("timeout must not be 0".to_string());
        }
        self.nodes[idx].rn.set_randomized_election_timeout(timeout);
        Ok(())
    }

    fn handle_stabilize(&mut self, td: &TestData) -> CmdResult {
        let old_level = self.out.level();
        let mut res = Ok(());
        if let Some(vals) = td.arg("log-level") {
            for v in vals {
                res = self.out.set_level_by_name(v);
                if res.is_err() {
                    break;
                }
            }
        }
        if res.is_ok() {
            res = self.idxs(td).and_then(|idxs| self.stabilize(&idxs));
        }
        self.out.set_level(old_level);
        res
    }

    /// Repeats until nothing happens: every node with a Ready handles it, every node with
    /// queued messages receives them, every node's append thread and then apply thread does
    /// all its work.
    fn stabilize(&mut self, idxs: &[usize]) -> CmdResult {
        let idxs: Vec<usize> = if idxs.is_empty() {
            (0..self.nodes.len()).collect()
        } else {
            idxs.to_vec()
        };
        let out = self.out.clone();
        for _ in 0..STABILIZE_MAX_ROUNDS {
            let mut done = true;
            for &i in &idxs {
                if self.nodes[i].rn.has_ready() {
                    out.writeln(&format!("> {} handling Ready", i + 1));
                    out.with_indent(|| self.process_ready(i))?;
                    done = false;
                }
            }
            for &i in &idxs {
                let id = i as u64 + 1;
                if self.msgs.iter().any(|q| q.msg.to == id) {
                    out.writeln(&format!("> {id} receiving messages"));
                    out.with_indent(|| self.deliver_msgs(None, &[(id, false)]));
                    done = false;
                }
            }
            for &i in &idxs {
                if !self.nodes[i].append_work.is_empty() {
                    out.writeln(&format!("> {} processing append thread", i + 1));
                    while !self.nodes[i].append_work.is_empty() {
                        out.with_indent(|| self.process_append_thread(i))?;
                    }
                    done = false;
                }
            }
            for &i in &idxs {
                if !self.nodes[i].apply_work.is_empty() {
                    out.writeln(&format!("> {} processing apply thread", i + 1));
                    while !self.nodes[i].apply_work.is_empty() {
                        out.with_indent(|| self.process_apply_thread(i))?;
                    }
                    done = false;
                }
            }
            if done {
                return Ok(());
            }
        }
        Err(format!(
            "stabilize has not settled after {STABILIZE_MAX_ROUNDS} rounds"
        ))
    }

    fn handle_status(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        let st = self.nodes[idx].rn.status();
        for (id, pr) in &st.progress {
            self.out.writeln(&format!("{id}: {pr}"));
        }
        Ok(())
    }

    fn handle_tick(&mut self, td: &TestData, election: bool) -> CmdResult {
        let idx = self.first_idx(td)?;
        let node = &mut self.nodes[idx];
        let ticks = if election {
            node.cfg.election_tick
        } else {
            node.cfg.heartbeat_tick
        };
        for _ in 0..ticks {
            node.rn.tick();
        }
        Ok(())
    }

    fn handle_transfer_leadership(&mut self, td: &TestData) -> CmdResult {
        let get = |key: &str| -> Result<u64, String> {
            match td.arg(key) {
                Some([v]) => parse_num(v),
                _ => Err(format!("expected a valid {key:?} argument")),
            }
        };
        let (from, to) = (get("from")?, get("to")?);
        let from_idx = self.idx(from)?;
        self.idx(to)?;
        self.nodes[from_idx].rn.transfer_leader(to);
        Ok(())
    }

    fn handle_forget_leader(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        self.nodes[idx].rn.forget_leader().map_err(err_text)
    }

    fn handle_send_snapshot(&mut self, td: &TestData) -> CmdResult {
        let idxs = self.idxs(td)?;
        let [from_idx, to_idx] = idxs[..] else {
            return Err("send-snapshot: expected exactly two node ids".to_string());
        };
        let from = &self.nodes[from_idx].rn;
        // etcd's harness discards this command's errors.
        let Ok(snap) = from.store().snapshot() else {
            return Ok(());
        };
        let msg = Message {
            r#type: MessageType::MsgSnap as i32,
            term: from.status().hard_state.term,
            from: from_idx as u64 + 1,
            to: to_idx as u64 + 1,
            snapshot: Some(snap),
            ..Default::default()
        };
        self.out.write(&describe_message(&msg, None));
        self.msgs.push(Queued { msg, local: false });
        Ok(())
    }

    fn handle_propose(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        if td.cmd_args.len() != 2 || !td.cmd_args[1].vals.is_empty() {
            return Err("propose: expected exactly one key with no vals".to_string());
        }
        let data = Bytes::from(td.cmd_args[1].key.clone().into_bytes());
        self.nodes[idx].rn.propose(data).map_err(err_text)
    }

    fn handle_propose_conf_change(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        let mut v1 = false;
        let mut transition = ConfChangeTransition::Auto;
        for arg in &td.cmd_args[1..] {
            for v in &arg.vals {
                match arg.key.as_str() {
                    "v1" => v1 = parse_bool(v)?,
                    "transition" => {
                        transition = ConfChangeTransition::from_token(v)
                            .ok_or_else(|| format!("unknown transition {v}"))?
                    }
                    _ => return Err(format!("unknown command {}", arg.key)),
                }
            }
        }
        let ccs = conf_changes_from_string(&td.input)?;
        let cc: ConfChangeI = if v1 {
            if ccs.len() != 1 || transition != ConfChangeTransition::Auto {
                return Err(
                    "v1 conf change can only have one operation and no transition".to_string(),
                );
            }
            ConfChangeI::V1(ConfChange {
                r#type: ccs[0].r#type,
                node_id: ccs[0].node_id,
                ..Default::default()
            })
        } else {
            ConfChangeI::V2(ConfChangeV2 {
                transition: transition as i32,
                changes: ccs,
                ..Default::default()
            })
        };
        self.nodes[idx].rn.propose_conf_change(cc).map_err(err_text)
    }

    fn handle_report_unreachable(&mut self, td: &TestData) -> CmdResult {
        let idxs = self.idxs(td)?;
        let [on, reported] = idxs[..] else {
            return Err(
                "must specify exactly two node indexes: node on which to report, and reported node"
                    .to_string(),
            );
        };
        let id = self.nodes[reported].cfg.id;
        self.nodes[on].rn.report_unreachable(id);
        Ok(())
    }

    /// `read-index <id> <ctx>` (raftcore only): asks node `id` for a read with context `ctx`.
    fn handle_read_index(&mut self, td: &TestData) -> CmdResult {
        let idx = self.first_idx(td)?;
        let ctx = td
            .cmd_args
            .get(1)
            .map(|a| Bytes::from(a.key.clone().into_bytes()))
            .unwrap_or_default();
        self.nodes[idx].rn.read_index(ctx).map_err(err_text)
    }
}
