//! The node: one thread owns the `RawNode` and runs the Ready loop; an apply worker thread
//! applies committed entries to the state machine; peer and client input arrive over bounded
//! channels.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use raftcore::raftpb::{
    ConfChange, ConfChangeI, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message,
    SnapshotMetadata,
};
use raftcore::{Config, Peer, RawNode, StateRole, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::sm::{ApplyItem, ApplyResult, Command, MemberInfo, StateMachine};
use crate::transport::{Report, Transport};
use crate::wal::{write_snapshot_file, DiskStorage, WalFiles, WalOptions};

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's id.
    pub id: u64,
    /// Where the WAL, snapshots and the store live.
    pub data_dir: PathBuf,
    /// Peer addresses of the initial members (this node included), by id.
    pub peers: BTreeMap<u64, String>,
    /// Client addresses of the initial members, by id (may be empty).
    pub clients: BTreeMap<u64, String>,
    /// This node's client address (as others should reach it).
    pub client_addr: String,
    /// Join a running cluster instead of bootstrapping a new one.
    pub join: bool,
    /// Plain Ready loop with `advance` instead of asynchronous storage writes.
    pub sync_storage: bool,
    /// The tick interval.
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_tick: usize,
    /// Entries applied between two snapshots.
    pub snapshot_entries: u64,
    /// WAL segment size.
    pub segment_size: u64,
    /// The peer frame limit.
    pub frame_limit: usize,
    /// Serve the fault-injection endpoints (tests).
    pub fault_injection: bool,
    /// Mutual TLS between peers.
    pub tls: Option<crate::tls::TlsConfig>,
}

/// A request to the node thread.
pub enum Cmd {
    /// Propose a command; the reply says whether the core took it.
    Propose {
        /// The encoded command.
        data: Bytes,
        /// `true` if proposed, `false` if dropped.
        reply: oneshot::Sender<bool>,
    },
    /// Propose a membership change.
    ConfChange {
        /// The change.
        cc: ConfChangeV2,
        /// `true` if proposed.
        reply: oneshot::Sender<bool>,
    },
    /// Ask for a read index; the reply carries it once released.
    ReadIndex {
        /// The read's id.
        id: u64,
        /// The index to wait for.
        reply: oneshot::Sender<u64>,
    },
    /// Ask the leader to transfer leadership.
    Transfer(u64),
}

/// What a conf change carries in its context.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfContext {
    /// The proposing node's request id.
    pub request_id: u64,
    /// The member added, with its addresses.
    pub member: Option<MemberInfo>,
}

/// The node's status, as published after each loop turn.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeStatus {
    /// Id.
    pub id: u64,
    /// Role.
    pub role: String,
    /// Term.
    pub term: u64,
    /// Leader id, 0 when unknown.
    pub leader: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Voter ids.
    pub voters: Vec<u64>,
    /// Learner ids.
    pub learners: Vec<u64>,
    /// First log index.
    pub first: u64,
    /// Last log index.
    pub last: u64,
}

/// What the HTTP side shares with the node.
pub struct Shared {
    /// This node's id.
    pub id: u64,
    /// Commands to the node thread.
    pub cmds: mpsc::Sender<Cmd>,
    /// Requests waiting for their entry to be applied.
    pub waiters: Mutex<HashMap<u64, oneshot::Sender<ApplyResult>>>,
    /// The applied index.
    pub applied: watch::Sender<u64>,
    /// The state machine (reads).
    pub sm: Arc<StateMachine>,
    /// The last published status.
    pub status: Mutex<NodeStatus>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Test fault: isolate this node from its peers.
    pub isolated: Arc<AtomicBool>,
    /// The commit index found at start: health waits until it is applied.
    pub start_commit: u64,
    /// Whether the fault endpoints are served.
    pub fault_injection: bool,
    next_id: AtomicU64,
}

impl Shared {
    /// A fresh request id (never 0).
    pub fn next_request_id(&self) -> u64 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// A copy of the status.
    pub fn status(&self) -> NodeStatus {
        self.status.lock().expect("status lock").clone()
    }
}

enum ApplyMsg {
    /// Entries to apply, and (asynchronous storage writes) the responses to hand back to the
    /// core once they are applied.
    Batch(Vec<ApplyItem>, Vec<Message>),
    Restore(SnapshotMetadata, Bytes),
    BuildSnapshot,
}

fn role_name(r: StateRole) -> &'static str {
    match r {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre_candidate",
    }
}

fn fatal(what: &str, e: impl std::fmt::Display) -> ! {
    tracing::error!(error = %e, "{what}; stopping");
    eprintln!("raftkv: fatal: {what}: {e}");
    std::process::exit(1)
}

/// A slog drain that forwards the core's log lines to `tracing`.
struct TracingDrain;

struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record,
        values: &slog::OwnedKVList,
    ) -> Result<Self::Ok, Self::Err> {
        use slog::KV as _;
        let mut kv = KvText(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let msg = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raftcore", "{msg}{}", kv.0)
            }
            slog::Level::Warning => tracing::warn!(target: "raftcore", "{msg}{}", kv.0),
            slog::Level::Info => tracing::info!(target: "raftcore", "{msg}{}", kv.0),
            _ => tracing::debug!(target: "raftcore", "{msg}{}", kv.0),
        }
        Ok(())
    }
}

/// The channels the node thread is fed by.
struct Inputs {
    peer_rx: mpsc::Receiver<Message>,
    cmd_rx: mpsc::Receiver<Cmd>,
    report_rx: mpsc::Receiver<Report>,
    snap_rx: mpsc::Receiver<SnapshotMetadata>,
    append_done_rx: mpsc::Receiver<Message>,
    apply_done_rx: mpsc::Receiver<Vec<Message>>,
}

/// Opens the storage and the store, starts the node thread and the apply worker. Returns the
/// shared handle and the sender for peer messages (for the listener).
pub fn start(
    opts: &NodeOptions,
    rt: tokio::runtime::Handle,
) -> Result<(Arc<Shared>, mpsc::Sender<Message>), String> {
    let storage = DiskStorage::open(
        &opts.data_dir,
        WalOptions {
            segment_size: opts.segment_size,
        },
    )
    .map_err(|e| e.to_string())?;
    let sm = Arc::new(
        StateMachine::open(&opts.data_dir.join("kv.redb"))
            .map_err(|e| format!("opening the store: {e}"))?,
    );
    let mut storage = storage;
    let snap_meta = storage.snapshot_metadata().clone();
    let mut applied = sm.applied().map_err(|e| e.to_string())?;
    if applied < snap_meta.index {
        // A crash between installing a received snapshot and applying it.
        let snap = storage.load_snapshot().map_err(|e| e.to_string())?;
        if !sm
            .restore(snap_meta.index, &snap.data)
            .map_err(|e| e.to_string())?
        {
            return Err("the snapshot file does not decode".into());
        }
        tracing::info!(index = snap_meta.index, "store restored from the snapshot");
        applied = snap_meta.index;
    }
    storage.raise_commit(applied);
    let start_commit = storage.hard_state().commit;
    let fresh = storage.last() == 0 && storage.hard_state().term == 0 && snap_meta.index == 0;

    let logger = slog::Logger::root(slog::Fuse(TracingDrain), slog::o!("id" => opts.id));
    let mut cfg = Config::new(opts.id);
    cfg.election_tick = opts.election_tick;
    cfg.heartbeat_tick = 1;
    // Entries after the snapshot are handed out again: the store skips what it holds, and
    // conf changes are re-applied to the core in order.
    cfg.applied = snap_meta.index;
    cfg.max_size_per_msg = 1 << 20;
    cfg.max_inflight_msgs = 256;
    cfg.max_uncommitted_entries_size = 64 << 20;
    cfg.check_quorum = true;
    cfg.pre_vote = true;
    cfg.step_down_on_removal = true;
    cfg.async_storage_writes = !opts.sync_storage;
    // Synchronous mode writes each Ready's entries to the WAL before any other call into the
    // node (`handle_ready`), which is what handing them over asks: the Ready takes them
    // without a clone, and the node reads them back from the WAL until `advance`.
    cfg.hand_over_entries = opts.sync_storage;
    cfg.seed = rand::random();
    cfg.logger = logger;
    let conf_state = snap_meta.conf_state.clone().unwrap_or_default();
    let mut node = RawNode::new(&cfg, storage).map_err(|e| format!("starting raft: {e}"))?;
    if fresh && !opts.join {
        let peers: Vec<Peer> = opts
            .peers
            .iter()
            .map(|(id, addr)| Peer {
                id: *id,
                context: Bytes::from(
                    serde_json::to_vec(&MemberInfo {
                        id: *id,
                        peer_addr: addr.clone(),
                        client_addr: opts.clients.get(id).cloned().unwrap_or_default(),
                    })
                    .unwrap_or_default(),
                ),
            })
            .collect();
        node.bootstrap(&peers)
            .map_err(|e| format!("bootstrap: {e}"))?;
    }

    let metrics = Arc::new(Metrics::default());
    let isolated = Arc::new(AtomicBool::new(false));
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (peer_tx, peer_rx) = mpsc::channel(4096);
    let (report_tx, report_rx) = mpsc::channel(1024);
    let (apply_tx, apply_rx) = mpsc::channel(256);
    let (snap_tx, snap_rx) = mpsc::channel(4);
    // Done queues are larger than the work queues feeding them, so a worker never blocks on
    // one while the node thread waits for room in its work queue.
    let (append_tx, append_rx) = mpsc::channel::<Message>(64);
    let (append_done_tx, append_done_rx) = mpsc::channel::<Message>(128);
    let (apply_done_tx, apply_done_rx) = mpsc::channel::<Vec<Message>>(512);
    let (applied_tx, _) = watch::channel(applied);
    let shared = Arc::new(Shared {
        id: opts.id,
        cmds: cmd_tx,
        waiters: Mutex::new(HashMap::new()),
        applied: applied_tx,
        sm: sm.clone(),
        status: Mutex::new(NodeStatus {
            id: opts.id,
            role: "follower".into(),
            applied,
            ..Default::default()
        }),
        metrics: metrics.clone(),
        isolated: isolated.clone(),
        start_commit,
        fault_injection: opts.fault_injection,
        next_id: AtomicU64::new(rand::random::<u64>() >> 1),
    });

    let mut transport = Transport::new(
        opts.id,
        rt,
        report_tx,
        metrics.clone(),
        isolated,
        opts.frame_limit,
        opts.tls.clone(),
    );
    for (id, addr) in &opts.peers {
        transport.add_peer(*id, addr.clone());
    }
    for m in sm.members().map_err(|e| e.to_string())? {
        if !opts.peers.contains_key(&m.id) {
            transport.add_peer(m.id, m.peer_addr);
        }
    }

    let files = node.store().files();
    let append_metrics = metrics.clone();
    std::thread::Builder::new()
        .name("append".into())
        .spawn(move || append_worker(files, append_rx, append_done_tx, append_metrics))
        .map_err(|e| e.to_string())?;
    let worker = ApplyWorker {
        shared: shared.clone(),
        sm,
        snap_tx,
        done_tx: apply_done_tx,
        snap_dir: opts.data_dir.join("snap"),
        every: opts.snapshot_entries.max(1),
        conf: conf_state.clone(),
        last_snap: snap_meta.index,
        bytes_since_snap: 0,
        building: Arc::new(AtomicBool::new(false)),
        last: (applied, 0),
    };
    std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || worker.run(apply_rx))
        .map_err(|e| e.to_string())?;

    let mut lp = NodeLoop {
        node,
        transport,
        shared: shared.clone(),
        apply_tx,
        pending_reads: HashMap::new(),
        read_batch: Vec::new(),
        conf_state,
        role: StateRole::Follower,
        leader: 0,
        async_writes: !opts.sync_storage,
        append_tx,
    };
    let tick = opts.tick;
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap_or_else(|e| fatal("node runtime", e));
            let inputs = Inputs {
                peer_rx,
                cmd_rx,
                report_rx,
                snap_rx,
                append_done_rx,
                apply_done_rx,
            };
            rt.block_on(lp.run(tick, inputs));
        })
        .map_err(|e| e.to_string())?;
    Ok((shared, peer_tx))
}

struct NodeLoop {
    node: RawNode<DiskStorage>,
    transport: Transport,
    shared: Arc<Shared>,
    apply_tx: mpsc::Sender<ApplyMsg>,
    /// Reads waiting for their read index, by the id of the `read_index` call that covers
    /// them (reads that arrive together share one call).
    pending_reads: HashMap<u64, Vec<oneshot::Sender<u64>>>,
    /// Reads received in this loop turn, not yet asked for.
    read_batch: Vec<(u64, oneshot::Sender<u64>)>,
    conf_state: ConfState,
    role: StateRole,
    leader: u64,
    async_writes: bool,
    append_tx: mpsc::Sender<Message>,
}

/// The append thread (asynchronous storage writes): writes each `MsgStorageAppend` to the WAL
/// and hands it back to the node thread, which updates the in-memory log and delivers the
/// message's responses. Jobs that queued up meanwhile share one fsync (group commit): none is
/// handed back before the fsync that covers it.
fn append_worker(
    files: Arc<Mutex<WalFiles>>,
    mut rx: mpsc::Receiver<Message>,
    done: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 64 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        {
            let mut f = files.lock().expect("wal lock");
            let mut need_sync = false;
            for m in &batch {
                let hs = stored_hard_state(m);
                let written = f.written_hard_state();
                need_sync |= !m.entries.is_empty()
                    || hs.is_some_and(|h| h.term != written.term || h.vote != written.vote);
                // A snapshot is synced inside the write (its record must follow its file).
                match f.write(m.snapshot.as_ref(), &m.entries, hs.as_ref(), false) {
                    Ok(Some(d)) => metrics.fsync(d),
                    Ok(None) => {}
                    Err(e) => fatal("writing the WAL", e),
                }
            }
            if need_sync {
                match f.sync() {
                    Ok(d) => metrics.fsync(d),
                    Err(e) => fatal("syncing the WAL", e),
                }
            }
        }
        for m in batch {
            if done.blocking_send(m).is_err() {
                return;
            }
        }
    }
}

/// The HardState carried by a `MsgStorageAppend`, if any.
fn stored_hard_state(m: &Message) -> Option<raftcore::raftpb::HardState> {
    if m.term == 0 && m.vote == 0 && m.commit == 0 {
        return None;
    }
    Some(raftcore::raftpb::HardState {
        term: m.term,
        vote: m.vote,
        commit: m.commit,
    })
}

impl NodeLoop {
    async fn run(&mut self, tick: Duration, inputs: Inputs) {
        let Inputs {
            mut peer_rx,
            mut cmd_rx,
            mut report_rx,
            mut snap_rx,
            mut append_done_rx,
            mut apply_done_rx,
        } = inputs;
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = ticker.tick() => {
                    self.node.tick();
                    self.pending_reads.retain(|_, txs| {
                        txs.retain(|tx| !tx.is_closed());
                        !txs.is_empty()
                    });
                }
                Some(m) = peer_rx.recv() => {
                    self.step(m);
                    for _ in 0..255 {
                        match peer_rx.try_recv() {
                            Ok(m) => self.step(m),
                            Err(_) => break,
                        }
                    }
                }
                Some(c) = cmd_rx.recv() => {
                    self.command(c);
                    for _ in 0..255 {
                        match cmd_rx.try_recv() {
                            Ok(c) => self.command(c),
                            Err(_) => break,
                        }
                    }
                    self.flush_reads();
                }
                Some(m) = append_done_rx.recv() => self.append_done(m).await,
                Some(resps) = apply_done_rx.recv() => {
                    for r in resps {
                        if let Err(e) = self.node.step_local(r) {
                            tracing::warn!(error = %e, "apply response refused");
                        }
                    }
                }
                Some(r) = report_rx.recv() => match r {
                    Report::Unreachable(id) => self.node.report_unreachable(id),
                    Report::Snapshot(id, st) => self.node.report_snapshot(id, st),
                },
                Some(meta) = snap_rx.recv() => {
                    let index = meta.index;
                    if let Err(e) = self.node.store_mut().snapshot_taken(meta) {
                        fatal("recording a snapshot", e);
                    }
                    tracing::info!(index, "snapshot taken; log compacted");
                }
                else => return,
            }
            while self.node.has_ready() {
                self.handle_ready().await;
            }
            if self.node.store().take_snapshot_wanted() {
                let _ = self.apply_tx.try_send(ApplyMsg::BuildSnapshot);
            }
            self.publish();
        }
    }

    fn step(&mut self, m: Message) {
        if let Err(e) = self.node.step(m) {
            tracing::debug!(error = %e, "message refused");
        }
    }

    fn command(&mut self, c: Cmd) {
        let m = &self.shared.metrics;
        match c {
            Cmd::Propose { data, reply } => {
                let ok = self.node.propose(data).is_ok();
                if ok {
                    m.proposals.fetch_add(1, Ordering::Relaxed);
                } else {
                    m.proposals_dropped.fetch_add(1, Ordering::Relaxed);
                }
                let _ = reply.send(ok);
            }
            Cmd::ConfChange { cc, reply } => {
                let r = self.node.propose_conf_change(cc);
                if let Err(e) = &r {
                    tracing::info!(error = %e, "conf change not proposed");
                }
                let _ = reply.send(r.is_ok());
            }
            Cmd::ReadIndex { id, reply } => self.read_batch.push((id, reply)),
            Cmd::Transfer(to) => self.node.transfer_leader(to),
        }
    }

    /// One `read_index` for all the reads received in this loop turn (a read that is lost is
    /// asked again by its request).
    fn flush_reads(&mut self) {
        let Some(&(id, _)) = self.read_batch.first() else {
            return;
        };
        let batch: Vec<_> = self.read_batch.drain(..).map(|(_, tx)| tx).collect();
        if self
            .node
            .read_index(Bytes::copy_from_slice(&id.to_be_bytes()))
            .is_ok()
        {
            self.pending_reads.insert(id, batch);
        }
    }

    async fn handle_ready(&mut self) {
        let mut rd = self.node.ready();
        let metrics = self.shared.metrics.clone();
        metrics.readies.fetch_add(1, Ordering::Relaxed);
        if let Some(ss) = rd.soft_state {
            if ss.raft_state != self.role || ss.leader_id != self.leader {
                tracing::info!(
                    role = role_name(ss.raft_state),
                    leader = ss.leader_id,
                    "role changed"
                );
            }
            self.role = ss.raft_state;
            self.leader = ss.leader_id;
        }
        for rs in rd.read_states.drain(..) {
            if rs.request_ctx.len() == 8 {
                let id = u64::from_be_bytes(rs.request_ctx[..].try_into().expect("8 bytes"));
                for tx in self.pending_reads.remove(&id).unwrap_or_default() {
                    let _ = tx.send(rs.index);
                }
            }
        }
        if self.async_writes {
            // Storage work goes to the append and apply threads; the rest to peers.
            let mut out = Vec::new();
            for m in std::mem::take(&mut rd.messages) {
                if m.to == LOCAL_APPEND_THREAD {
                    if self.append_tx.send(m).await.is_err() {
                        fatal("append worker", "gone");
                    }
                } else if m.to == LOCAL_APPLY_THREAD {
                    let items: Vec<ApplyItem> =
                        m.entries.into_iter().map(|e| self.prepare(e)).collect();
                    if self
                        .apply_tx
                        .send(ApplyMsg::Batch(items, m.responses))
                        .await
                        .is_err()
                    {
                        fatal("apply worker", "gone");
                    }
                } else {
                    out.push(m);
                }
            }
            self.transport.send(out);
            return;
        }
        // 1. Messages that may leave before the write.
        self.transport.send(std::mem::take(&mut rd.messages));
        // 2. Persist; fsync when asked.
        match self.node.store_mut().persist(
            rd.snapshot.as_ref(),
            &rd.entries,
            rd.hard_state.as_ref(),
            rd.must_sync,
        ) {
            Ok(Some(d)) => metrics.fsync(d),
            Ok(None) => {}
            Err(e) => fatal("writing the WAL", e),
        }
        // 3. Messages that promise durable state.
        self.transport
            .send(std::mem::take(&mut rd.persisted_messages));
        if let Some(snap) = rd.snapshot.take() {
            self.snapshot_persisted(snap).await;
        }
        // 4. Apply (conf changes here, the rest on the apply worker), then advance.
        if !rd.committed_entries.is_empty() {
            let ents = std::mem::take(&mut rd.committed_entries);
            let items: Vec<ApplyItem> = ents.into_iter().map(|e| self.prepare(e)).collect();
            if self
                .apply_tx
                .send(ApplyMsg::Batch(items, Vec::new()))
                .await
                .is_err()
            {
                fatal("apply worker", "gone");
            }
        }
        if let Err(e) = self.node.advance() {
            fatal("advance", e);
        }
        // 5. The Ready's vectors (the entries', now written) serve the next Ready.
        self.node.recycle(rd);
    }

    /// A snapshot from the leader is durable: install it in the store (on the apply worker,
    /// before any later entry) and learn its members' addresses.
    async fn snapshot_persisted(&mut self, snap: raftcore::raftpb::Snapshot) {
        let Some(meta) = snap.metadata.clone() else {
            return;
        };
        if meta.index == 0 {
            return;
        }
        self.conf_state = meta.conf_state.clone().unwrap_or_default();
        for m in crate::sm::snapshot_members(&snap.data) {
            self.transport.add_peer(m.id, m.peer_addr);
        }
        self.shared
            .metrics
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(index = meta.index, "snapshot received");
        if self
            .apply_tx
            .send(ApplyMsg::Restore(meta, snap.data))
            .await
            .is_err()
        {
            fatal("apply worker", "gone");
        }
    }

    /// Asynchronous storage writes: a `MsgStorageAppend` is durable.
    async fn append_done(&mut self, m: Message) {
        let hs = stored_hard_state(&m);
        if let Err(e) = self.node.store_mut().apply_written(
            m.snapshot.as_ref().and_then(|s| s.metadata.clone()),
            &m.entries,
            hs.as_ref(),
        ) {
            fatal("updating the log", e);
        }
        if let Some(snap) = m.snapshot {
            self.snapshot_persisted(snap).await;
        }
        let id = self.shared.id;
        let mut out = Vec::new();
        for r in m.responses {
            if r.to == id {
                if let Err(e) = self.node.step_local(r) {
                    tracing::warn!(error = %e, "append response refused");
                }
            } else {
                out.push(r);
            }
        }
        self.transport.send(out);
    }

    fn prepare(&mut self, e: Entry) -> ApplyItem {
        let (index, term) = (e.index, e.term);
        match EntryType::try_from(e.r#type) {
            Ok(EntryType::EntryNormal) => {
                if e.data.is_empty() {
                    return ApplyItem::Noop { index, term };
                }
                match Command::decode(e.data.clone()) {
                    Ok(cmd) => ApplyItem::Command { index, term, cmd },
                    Err(err) => {
                        tracing::warn!(index, error = %err, "undecodable entry skipped");
                        ApplyItem::Noop { index, term }
                    }
                }
            }
            Ok(EntryType::EntryConfChange) => {
                let cc = ConfChange::decode(e.data.clone()).unwrap_or_default();
                let info = serde_json::from_slice::<MemberInfo>(&cc.context).ok();
                let ctx = ConfContext {
                    request_id: 0,
                    member: info,
                };
                self.conf(index, term, ConfChangeI::V1(cc), ctx)
            }
            Ok(EntryType::EntryConfChangeV2) => {
                let cc = ConfChangeV2::decode(e.data.clone()).unwrap_or_default();
                let ctx = serde_json::from_slice::<ConfContext>(&cc.context).unwrap_or_default();
                self.conf(index, term, ConfChangeI::V2(cc), ctx)
            }
            Err(_) => ApplyItem::Noop { index, term },
        }
    }

    fn conf(&mut self, index: u64, term: u64, cc: ConfChangeI, ctx: ConfContext) -> ApplyItem {
        let v2 = cc.as_v2();
        let ok = match self.node.apply_conf_change(&cc) {
            Ok(cs) => {
                self.conf_state = cs.clone();
                self.node.store_mut().set_latest_conf(cs);
                true
            }
            Err(e) => {
                tracing::warn!(index, error = %e, "conf change refused");
                false
            }
        };
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for ch in &v2.changes {
            let ty = ConfChangeType::try_from(ch.r#type).ok();
            match ty {
                Some(ConfChangeType::ConfChangeAddNode)
                | Some(ConfChangeType::ConfChangeAddLearnerNode) => {
                    if let Some(m) = ctx.member.as_ref().filter(|m| m.id == ch.node_id) {
                        added.push(m.clone());
                    }
                }
                Some(ConfChangeType::ConfChangeRemoveNode) => removed.push(ch.node_id),
                _ => {}
            }
        }
        if ok {
            for m in &added {
                self.transport.add_peer(m.id, m.peer_addr.clone());
            }
            for id in &removed {
                self.transport.remove_peer(*id);
            }
            tracing::info!(index, voters = ?self.conf_state.voters, learners = ?self.conf_state.learners, "configuration changed");
        }
        ApplyItem::Conf {
            index,
            term,
            request_id: ctx.request_id,
            added,
            removed,
            ok,
            conf_state: self.conf_state.clone(),
        }
    }

    fn publish(&self) {
        let st = self.node.basic_status();
        let store = self.node.store();
        let s = NodeStatus {
            id: st.id,
            role: role_name(st.soft_state.raft_state).into(),
            term: st.hard_state.term,
            leader: st.soft_state.leader_id,
            commit: st.hard_state.commit,
            applied: *self.shared.applied.borrow(),
            voters: self.conf_state.voters.clone(),
            learners: self.conf_state.learners.clone(),
            first: store.snapshot_metadata().index + 1,
            last: store.last(),
        };
        *self.shared.status.lock().expect("status lock") = s;
    }
}

/// A snapshot (and log compaction) also follows this many bytes of applied keys and values.
const SNAPSHOT_BYTES: u64 = 64 << 20;

struct ApplyWorker {
    shared: Arc<Shared>,
    sm: Arc<StateMachine>,
    snap_tx: mpsc::Sender<SnapshotMetadata>,
    done_tx: mpsc::Sender<Vec<Message>>,
    snap_dir: PathBuf,
    every: u64,
    conf: ConfState,
    last_snap: u64,
    /// Key and value bytes applied since the last snapshot: the log kept in memory is bounded
    /// by bytes as well as by entries.
    bytes_since_snap: u64,
    /// A snapshot is being written.
    building: Arc<AtomicBool>,
    /// Index and term of the last entry handed to the store.
    last: (u64, u64),
}

impl ApplyWorker {
    fn run(mut self, mut rx: mpsc::Receiver<ApplyMsg>) {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                ApplyMsg::Batch(items, responses) => {
                    for it in &items {
                        if let ApplyItem::Conf { conf_state, .. } = it {
                            self.conf = conf_state.clone();
                        }
                    }
                    let Some(last) = items.last() else {
                        continue;
                    };
                    self.last = (last.index(), last.term());
                    let results = self
                        .sm
                        .apply(&items)
                        .unwrap_or_else(|e| fatal("applying to the store", e));
                    self.shared
                        .metrics
                        .applied_entries
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    if !results.is_empty() {
                        let mut w = self.shared.waiters.lock().expect("waiters lock");
                        for (id, res) in results {
                            if let Some(tx) = w.remove(&id) {
                                let _ = tx.send(res);
                            }
                        }
                    }
                    let idx = self.last.0;
                    self.shared.applied.send_modify(|a| *a = (*a).max(idx));
                    if let Err(e) = self.sm.flush(32) {
                        fatal("writing the store", e);
                    }
                    if !responses.is_empty() && self.done_tx.blocking_send(responses).is_err() {
                        return;
                    }
                    for it in &items {
                        if let ApplyItem::Command { cmd, .. } = it {
                            self.bytes_since_snap += (cmd.key.len() + cmd.value.len()) as u64;
                        }
                    }
                    if idx >= self.last_snap + self.every || self.bytes_since_snap >= SNAPSHOT_BYTES
                    {
                        self.build();
                    }
                }
                ApplyMsg::Restore(meta, data) => {
                    match self.sm.restore(meta.index, &data) {
                        Ok(true) => {}
                        Ok(false) => fatal("restoring a snapshot", "undecodable data"),
                        Err(e) => fatal("restoring a snapshot", e),
                    }
                    self.conf = meta.conf_state.clone().unwrap_or_default();
                    self.last_snap = meta.index;
                    self.bytes_since_snap = 0;
                    self.last = (meta.index, meta.term);
                    self.shared.applied.send_modify(|a| *a = meta.index);
                }
                ApplyMsg::BuildSnapshot => {
                    if self.last.0 > self.last_snap {
                        self.build();
                    }
                }
            }
        }
    }

    /// Starts a snapshot: takes a consistent view of the store here, serializes and writes it
    /// on a thread of its own (batches go on being applied), then tells the node thread.
    fn build(&mut self) {
        // Only at an index whose term is known (not while replaying entries the store holds),
        // and one at a time.
        if self.sm.applied().ok() != Some(self.last.0)
            || self.last.1 == 0
            || self.building.load(Ordering::Acquire)
        {
            return;
        }
        let reader = match self.sm.begin_snapshot() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed");
                return;
            }
        };
        if reader.applied().ok() != Some(self.last.0) {
            return;
        }
        let (applied, term) = self.last;
        self.last_snap = applied;
        self.bytes_since_snap = 0;
        let meta = SnapshotMetadata {
            conf_state: Some(self.conf.clone()),
            index: applied,
            term,
        };
        let snap_dir = self.snap_dir.clone();
        let snap_tx = self.snap_tx.clone();
        let building = self.building.clone();
        let metrics = self.shared.metrics.clone();
        building.store(true, Ordering::Release);
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let res = reader
                    .serialize()
                    .map_err(|e| e.to_string())
                    .and_then(|data| {
                        write_snapshot_file(&snap_dir, applied, term, &data)
                            .map_err(|e| e.to_string())
                    });
                match res {
                    Ok(()) => {
                        metrics.snapshots_built.fetch_add(1, Ordering::Relaxed);
                        // Never block on the node thread: a missed notice only delays
                        // compaction.
                        let _ = snap_tx.try_send(meta);
                    }
                    Err(e) => tracing::error!(error = %e, "writing a snapshot failed"),
                }
                building.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the snapshot thread");
            self.building.store(false, Ordering::Release);
        }
    }
}
