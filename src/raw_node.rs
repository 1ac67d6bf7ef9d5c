//! `RawNode`: the public face of one Raft group member. See the crate docs for the Ready
//! contract.

use std::sync::Arc;

use bytes::Bytes;
use slog::{debug, warn};

use crate::config::{Config, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NONE};
use crate::error::{Error, Result};
use crate::raft::{
    ents_size, payloads_size, Raft, ReadState, SoftState, StateRole, MAX_REMOTE_VALUE,
    MAX_TERM_JUMP,
};
use crate::raftpb::{
    is_local_msg_target, ConfChange, ConfChangeI, ConfChangeSingle, ConfChangeType, ConfState,
    Entry, EntryType, HardState, Message, MessageType, Snapshot,
};
use crate::storage::Storage;
use crate::tracker::{Progress, ProgressState};

/// A member to bootstrap a group with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The member's id.
    pub id: u64,
    /// Context stored in the member's initial ConfChange entry.
    pub context: Bytes,
}

/// The outcome of sending a snapshot, reported with `report_snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The follower received and applied the snapshot.
    Finish,
    /// Sending failed; the leader probes again later.
    Failure,
}

/// What the application must do next: persist, send, apply. See the crate docs for the
/// numbered rules.
#[derive(Debug, Default, Clone)]
pub struct Ready {
    /// The leader and role, when they changed since the last Ready.
    pub soft_state: Option<SoftState>,
    /// Term, vote and commit, when they changed since the last Ready. Persist before sending
    /// `persisted_messages`.
    pub hard_state: Option<HardState>,
    /// Reads released by `read_index`.
    pub read_states: Vec<ReadState>,
    /// Entries to append to stable storage.
    pub entries: Vec<Entry>,
    /// A snapshot to write to stable storage.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply, in order. They may include entries of this same Ready:
    /// persist first.
    pub committed_entries: Vec<Entry>,
    /// Messages that may be sent at once, in parallel with the persist. With asynchronous
    /// storage writes, also the `MsgStorageAppend` / `MsgStorageApply` work items (to
    /// `LOCAL_APPEND_THREAD` / `LOCAL_APPLY_THREAD`) at its end.
    pub messages: Vec<Message>,
    /// Messages that promise durable state (append and vote responses): send them only once
    /// `entries`, `hard_state` and `snapshot` are durable. Empty with asynchronous storage
    /// writes, where they travel inside `MsgStorageAppend`.
    pub persisted_messages: Vec<Message>,
    /// Whether the write of this Ready must be synced to disk.
    pub must_sync: bool,
}

impl Ready {
    /// True if the Ready asks nothing of the application.
    pub fn is_empty(&self) -> bool {
        self.soft_state.is_none()
            && self.hard_state.is_none()
            && self.read_states.is_empty()
            && self.entries.is_empty()
            && self.snapshot.is_none()
            && self.committed_entries.is_empty()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
    }
}

/// Status without allocations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BasicStatus {
    /// The node's id.
    pub id: u64,
    /// Term, vote and commit.
    pub hard_state: HardState,
    /// Leader and role.
    pub soft_state: SoftState,
    /// The applied index.
    pub applied: u64,
    /// The target of a leadership transfer in progress, or `NONE`.
    pub lead_transferee: u64,
}

/// Full status: the basic status, the configuration and (on a leader) per-peer progress.
#[derive(Debug, Clone)]
pub struct Status {
    /// The basic status.
    pub basic: BasicStatus,
    /// The configuration.
    pub config: crate::tracker::Config,
    /// Progress of every member, sorted by id; empty unless the node leads.
    pub progress: Vec<(u64, Progress)>,
}

impl std::ops::Deref for Status {
    type Target = BasicStatus;
    fn deref(&self) -> &BasicStatus {
        &self.basic
    }
}

/// One member of a Raft group.
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
    /// Sync mode: local messages stepped on `advance` (self acks, storage responses).
    steps_on_advance: Vec<Message>,
    /// Sync mode: what the last Ready handed out to apply, acknowledged on `advance`: the last
    /// index, the entries' encoded size and their payload size. (A summary rather than a
    /// `MsgStorageApplyResp` carrying clones of the entries.)
    applied_on_advance: Option<(u64, u64, u64)>,
    /// Sync mode: a Ready was handed out and `advance` not yet called.
    awaiting_advance: bool,
}

impl<S: Storage> RawNode<S> {
    /// Creates a node from its config and storage. The storage's state is checked: an
    /// inconsistent state (a commit index outside the log, say) is an error, not a panic.
    pub fn new(config: &Config, store: S) -> Result<Self> {
        let mut cfg = config.clone();
        cfg.validate()?;
        let (id, applied) = (cfg.id, cfg.applied);
        Self::with_config(id, applied, Arc::new(cfg), store)
    }

    /// Creates node `id` sharing a config with other groups: thousands of groups in one
    /// process can share one `Arc<Config>`, so each carries a pointer rather than a copy. The
    /// config must already have been validated ([`Config::validate`], which fills in derived
    /// limits); its own `id` and `applied` are ignored in favour of the arguments.
    pub fn with_shared_config(
        id: u64,
        applied: u64,
        config: Arc<Config>,
        store: S,
    ) -> Result<Self> {
        let mut check = (*config).clone();
        check.id = id;
        check.validate()?;
        let derived_same = check.max_committed_size_per_ready
            == config.max_committed_size_per_ready
            && check.max_uncommitted_entries_size == config.max_uncommitted_entries_size
            && check.max_inflight_bytes == config.max_inflight_bytes;
        if !derived_same {
            return Err(Error::ConfigInvalid(
                "a shared config must be validated before it is shared".into(),
            ));
        }
        Self::with_config(id, applied, config, store)
    }

    fn with_config(id: u64, applied: u64, cfg: Arc<Config>, store: S) -> Result<Self> {
        let raft = Raft::new(id, applied, cfg, store)?;
        let prev_soft_state = raft.soft_state();
        let prev_hard_state = raft.hard_state();
        Ok(RawNode {
            raft,
            prev_soft_state,
            prev_hard_state,
            steps_on_advance: Vec::new(),
            applied_on_advance: None,
            awaiting_advance: false,
        })
    }

    /// Bootstraps a new group on empty storage: one ConfChange entry per peer, committed at
    /// term 1. Seeding the storage with a snapshot that holds the configuration is the
    /// preferred way; this exists for convenience.
    pub fn bootstrap(&mut self, peers: &[Peer]) -> Result<()> {
        if peers.is_empty() {
            return Err(Error::ConfigInvalid(
                "must provide at least one peer to Bootstrap".into(),
            ));
        }
        let last = self.raft.raft_log.last_index();
        if last != 0 {
            return Err(Error::ConfigInvalid(
                "can't bootstrap a nonempty Storage".into(),
            ));
        }
        // The HardState is left empty here so that the first Ready carries it.
        self.prev_hard_state = HardState::default();
        self.raft.become_follower(1, NONE);
        let mut ents = Vec::with_capacity(peers.len());
        for (i, p) in peers.iter().enumerate() {
            let cc = ConfChange {
                r#type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: p.id,
                context: p.context.clone(),
                id: 0,
            };
            ents.push(Entry {
                r#type: EntryType::EntryConfChange as i32,
                term: 1,
                index: i as u64 + 1,
                data: Bytes::from(prost::Message::encode_to_vec(&cc)),
            });
        }
        let n = ents.len() as u64;
        self.raft.raft_log.append(ents);
        // Mark the entries committed so they are handed out to apply. They are not marked
        // applied: the application applies them like any conf change.
        self.raft.raft_log.committed = n;
        for p in peers {
            let cc = ConfChangeSingle {
                r#type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: p.id,
            };
            let v2 = crate::raftpb::ConfChangeV2 {
                changes: vec![cc],
                ..Default::default()
            };
            self.raft.apply_conf_change(&v2)?;
        }
        Ok(())
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election (or a pre-vote round) now.
    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(Message {
            r#type: MessageType::MsgHup as i32,
            from: self.raft.id,
            ..Default::default()
        })
    }

    /// Proposes data to be appended to the log.
    pub fn propose(&mut self, data: Bytes) -> Result<()> {
        let data = match self.raft.propose_fast(data) {
            Ok(res) => return res,
            Err(data) => data,
        };
        self.raft.step(Message {
            r#type: MessageType::MsgProp as i32,
            from: self.raft.id,
            entries: vec![Entry {
                data,
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    /// Proposes several entries in one step (one append message per follower in etcd mode).
    pub fn propose_batch(&mut self, data: impl IntoIterator<Item = Bytes>) -> Result<()> {
        let entries: Vec<Entry> = data
            .into_iter()
            .map(|data| Entry {
                data,
                ..Default::default()
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        self.raft.step(Message {
            r#type: MessageType::MsgProp as i32,
            from: self.raft.id,
            entries,
            ..Default::default()
        })
    }

    /// Proposes a configuration change (V1 or V2; an empty V2 leaves a joint configuration).
    pub fn propose_conf_change(&mut self, cc: impl Into<ConfChangeI>) -> Result<()> {
        let (ty, data) = match cc.into() {
            ConfChangeI::V1(c) => (
                EntryType::EntryConfChange,
                prost::Message::encode_to_vec(&c),
            ),
            ConfChangeI::V2(c) => (
                EntryType::EntryConfChangeV2,
                prost::Message::encode_to_vec(&c),
            ),
        };
        self.raft.step(Message {
            r#type: MessageType::MsgProp as i32,
            from: self.raft.id,
            entries: vec![Entry {
                r#type: ty as i32,
                data: Bytes::from(data),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    /// Applies a committed configuration change and returns the new configuration. An
    /// invalid change is refused with an error and leaves the configuration unchanged (the
    /// same decision on every node).
    pub fn apply_conf_change(&mut self, cc: &ConfChangeI) -> Result<ConfState> {
        self.raft.apply_conf_change(&cc.as_v2())
    }

    /// Steps a message received from the network. Malformed input is rejected with an error
    /// and changes nothing; local message types are refused (`Error::StepLocalMsg`): storage
    /// responses go through `step_local`.
    pub fn step(&mut self, m: Message) -> Result<()> {
        let t = self.validate_remote(&m)?;
        if t.is_response() && !self.raft.is_member(m.from) {
            return Err(Error::StepPeerNotFound);
        }
        let mut m = m;
        if matches!(t, MessageType::MsgProp | MessageType::MsgReadIndex) && m.term != 0 {
            // Term-less requests: a term here means nothing (and must not be adopted).
            m.term = 0;
        }
        self.raft.step(m)
    }

    /// Checks a network message against the rules every honest message keeps. Returns its type.
    fn validate_remote(&self, m: &Message) -> Result<MessageType> {
        let reject = |why: &'static str| {
            debug!(
                self.raft.cfg.logger,
                "{:x} rejected message from {:x}: {}", self.raft.id, m.from, why
            );
            Err(Error::InvalidMessage(why))
        };
        let Some(t) = m.msg_type() else {
            return reject("unknown message type");
        };
        if t.is_local() || t == MessageType::MsgForgetLeader {
            return Err(Error::StepLocalMsg);
        }
        if m.from == NONE || is_local_msg_target(m.from) {
            return reject("no sender");
        }
        if m.from == self.raft.id {
            return reject("sender is this node");
        }
        if m.to != self.raft.id {
            return reject("addressed to another node");
        }
        let termless = matches!(t, MessageType::MsgProp | MessageType::MsgReadIndex);
        if m.term == 0 && !termless {
            return reject("term 0 on a message that must carry a term");
        }
        if m.term > MAX_REMOTE_VALUE
            || m.log_term > MAX_REMOTE_VALUE
            || m.index > MAX_REMOTE_VALUE
            || m.commit > MAX_REMOTE_VALUE
            || m.reject_hint > MAX_REMOTE_VALUE
        {
            return reject("term or index out of range");
        }
        if m.term > self.raft.term.saturating_add(MAX_TERM_JUMP) {
            return reject("term too far ahead of this node's");
        }
        if m.term != 0 && (m.log_term > m.term || m.entries.iter().any(|e| e.term > m.term)) {
            return reject("entry term above the message term");
        }
        if m.term != 0 && m.snapshot.as_ref().is_some_and(|s| s.term() > m.term) {
            return reject("snapshot term above the message term");
        }
        for e in &m.entries {
            if e.term > MAX_REMOTE_VALUE || e.index > MAX_REMOTE_VALUE {
                return reject("entry term or index out of range");
            }
            if EntryType::try_from(e.r#type).is_err() {
                return reject("unknown entry type");
            }
        }
        if let Some(s) = &m.snapshot {
            if s.index() > MAX_REMOTE_VALUE || s.term() > MAX_REMOTE_VALUE {
                return reject("snapshot term or index out of range");
            }
        }
        if !m.responses.is_empty() {
            return reject("responses are for local storage messages only");
        }
        match t {
            MessageType::MsgProp if m.entries.is_empty() => reject("MsgProp without entries"),
            MessageType::MsgReadIndex if m.entries.len() != 1 => {
                reject("MsgReadIndex without exactly one entry")
            }
            MessageType::MsgSnap if m.snapshot.as_ref().is_none_or(|s| s.is_empty()) => {
                reject("MsgSnap without a snapshot")
            }
            MessageType::MsgApp => {
                // Entries must follow the previous entry one by one, with terms that never go
                // down, starting at or above the previous entry's term. Checked here, before
                // the message's term can change any state.
                let mut expect_index = m.index;
                let mut min_term = m.log_term;
                for e in &m.entries {
                    expect_index = match expect_index.checked_add(1) {
                        Some(i) => i,
                        None => return reject("entry index overflows"),
                    };
                    if e.index != expect_index {
                        return reject("entries are not contiguous after the previous index");
                    }
                    if e.term < min_term || e.term == 0 {
                        return reject("entry terms go down");
                    }
                    min_term = e.term;
                }
                Ok(t)
            }
            MessageType::MsgSnap => {
                let s = m.snapshot.as_ref().expect("checked above");
                if s.term() == 0 {
                    return reject("snapshot without a term");
                }
                // Like terms, indexes do not leap: a snapshot far past this node's log would
                // use up the index space and leave the node unable to replicate.
                if s.index()
                    > self
                        .raft
                        .raft_log
                        .last_index()
                        .saturating_add(MAX_TERM_JUMP)
                {
                    return reject("snapshot index too far ahead of this node's log");
                }
                if crate::confchange::validate_conf_state(&s.conf_state()).is_err() {
                    return reject("snapshot with an invalid ConfState");
                }
                Ok(t)
            }
            _ => Ok(t),
        }
    }

    /// Steps a response handed back by the local append or apply thread (asynchronous storage
    /// writes): `MsgStorageAppendResp` from `LOCAL_APPEND_THREAD`, `MsgStorageApplyResp` from
    /// `LOCAL_APPLY_THREAD`, and the node's own acknowledgements (`From == To == id`) that
    /// travelled in a `MsgStorageAppend`'s responses. Anything else is refused: these messages
    /// carry trust that network input must not have.
    pub fn step_local(&mut self, m: Message) -> Result<()> {
        let id = self.raft.id;
        let ok = match m.msg_type() {
            Some(MessageType::MsgStorageAppendResp) => m.from == LOCAL_APPEND_THREAD && m.to == id,
            Some(MessageType::MsgStorageApplyResp) => m.from == LOCAL_APPLY_THREAD && m.to == id,
            Some(t) if t.is_after_persist() => m.from == id && m.to == id,
            _ => false,
        };
        if !ok {
            return Err(Error::InvalidMessage("not a local storage response"));
        }
        self.raft.step(m)
    }

    /// Whether `ready` would return something to do.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        if r.soft_state() != self.prev_soft_state {
            return true;
        }
        let hs = r.hard_state();
        if !hs.is_empty() && hs != self.prev_hard_state {
            return true;
        }
        if r.raft_log.has_next_unstable_snapshot() {
            return true;
        }
        if !r.msgs.is_empty() || !r.msgs_after_append.is_empty() || r.has_pending_appends() {
            return true;
        }
        if r.raft_log.has_next_unstable_ents()
            || r.raft_log
                .has_next_committed_ents(!r.cfg.async_storage_writes)
        {
            return true;
        }
        !r.read_states.is_empty()
    }

    /// Returns what the application must do now and marks it handed out. In sync mode, call
    /// `advance` once it is done.
    pub fn ready(&mut self) -> Ready {
        self.raft.flush_appends();
        let async_writes = self.raft.cfg.async_storage_writes;
        let r = &mut self.raft;
        let mut rd = Ready {
            entries: r.raft_log.next_unstable_ents().to_vec(),
            committed_entries: r.raft_log.next_committed_ents(!async_writes),
            messages: std::mem::take(&mut r.msgs),
            ..Default::default()
        };
        let ss = r.soft_state();
        if ss != self.prev_soft_state {
            rd.soft_state = Some(ss);
            self.prev_soft_state = ss;
        }
        let hs = r.hard_state();
        let hs_changed = hs != self.prev_hard_state;
        rd.must_sync = !rd.entries.is_empty()
            || hs.vote != self.prev_hard_state.vote
            || hs.term != self.prev_hard_state.term;
        if hs_changed && !hs.is_empty() {
            rd.hard_state = Some(hs);
            self.prev_hard_state = hs;
        }
        if r.raft_log.has_next_unstable_snapshot() {
            rd.snapshot = r.raft_log.next_unstable_snapshot().cloned();
        }
        rd.read_states = std::mem::take(&mut r.read_states);
        let after_append = std::mem::take(&mut r.msgs_after_append);

        // What tells the core that this Ready's writes are done: the last unstable entry (the
        // term check on it guards against entries overwritten since), and the snapshot.
        let append_resp =
            if r.raft_log.has_next_or_in_progress_unstable_ents() || rd.snapshot.is_some() {
                let mut m = Message {
                    r#type: MessageType::MsgStorageAppendResp as i32,
                    from: LOCAL_APPEND_THREAD,
                    to: r.id,
                    term: r.term,
                    snapshot: rd.snapshot.clone(),
                    ..Default::default()
                };
                if r.raft_log.has_next_or_in_progress_unstable_ents() {
                    let (lt, li) = r.raft_log.last_entry_id();
                    m.index = li;
                    m.log_term = lt;
                }
                Some(m)
            } else {
                None
            };
        let committed_size = ents_size(&rd.committed_entries);

        if async_writes {
            let need_append = !rd.entries.is_empty()
                || rd.hard_state.is_some()
                || rd.snapshot.is_some()
                || !after_append.is_empty();
            if need_append {
                let mut m = Message {
                    r#type: MessageType::MsgStorageAppend as i32,
                    from: r.id,
                    to: LOCAL_APPEND_THREAD,
                    entries: rd.entries.clone(),
                    snapshot: rd.snapshot.clone(),
                    responses: after_append,
                    ..Default::default()
                };
                if let Some(hs) = rd.hard_state {
                    m.term = hs.term;
                    m.vote = hs.vote;
                    m.commit = hs.commit;
                }
                m.responses.extend(append_resp);
                rd.messages.push(m);
            }
            if !rd.committed_entries.is_empty() {
                let resp = Message {
                    r#type: MessageType::MsgStorageApplyResp as i32,
                    from: LOCAL_APPLY_THREAD,
                    to: r.id,
                    entries: rd.committed_entries.clone(),
                    ..Default::default()
                };
                rd.messages.push(Message {
                    r#type: MessageType::MsgStorageApply as i32,
                    from: r.id,
                    to: LOCAL_APPLY_THREAD,
                    entries: rd.committed_entries.clone(),
                    responses: vec![resp],
                    ..Default::default()
                });
            }
        } else {
            if self.awaiting_advance {
                warn!(r.cfg.logger, "{:x} ready() called twice without advance(); the earlier Ready's acknowledgements are replaced", r.id);
            }
            self.steps_on_advance.clear();
            for m in after_append {
                if m.to == r.id {
                    self.steps_on_advance.push(m);
                } else {
                    rd.persisted_messages.push(m);
                }
            }
            self.steps_on_advance.extend(append_resp);
            self.applied_on_advance = rd.committed_entries.last().map(|last| {
                (
                    last.index,
                    committed_size,
                    payloads_size(&rd.committed_entries),
                )
            });
            self.awaiting_advance = true;
        }

        r.raft_log.accept_unstable();
        if let Some(last) = rd.committed_entries.last() {
            r.raft_log
                .accept_applying(last.index, committed_size, !async_writes);
        }
        rd
    }

    /// Sync mode: tells the node the last Ready was persisted and applied. Steps the node's
    /// own acknowledgements (its vote, its appended entries) and marks entries stable and
    /// applied. With asynchronous storage writes this is an error: the storage responses do
    /// that job.
    pub fn advance(&mut self) -> Result<()> {
        if self.raft.cfg.async_storage_writes {
            return Err(Error::AsyncStorageMisuse(
                "advance must not be called with asynchronous storage writes",
            ));
        }
        self.awaiting_advance = false;
        let steps = std::mem::take(&mut self.steps_on_advance);
        for m in steps {
            let _ = self.raft.step(m);
        }
        if let Some((index, size, payload)) = self.applied_on_advance.take() {
            self.raft.on_applied(index, size, payload);
        }
        Ok(())
    }

    /// Status without allocation.
    pub fn basic_status(&self) -> BasicStatus {
        BasicStatus {
            id: self.raft.id,
            hard_state: self.raft.hard_state(),
            soft_state: self.raft.soft_state(),
            applied: self.raft.raft_log.applied,
            lead_transferee: self.raft.lead_transferee,
        }
    }

    /// Full status, with per-peer progress on a leader.
    pub fn status(&self) -> Status {
        let progress = if self.raft.state == StateRole::Leader {
            self.raft
                .trk
                .progress
                .iter()
                .map(|(id, pr)| (id, pr.clone()))
                .collect()
        } else {
            Vec::new()
        };
        Status {
            basic: self.basic_status(),
            config: self.raft.trk.config.clone(),
            progress,
        }
    }

    /// Tells the leader that `id` could not be reached: its append stream falls back to probing.
    pub fn report_unreachable(&mut self, id: u64) {
        let _ = self.raft.step(Message {
            r#type: MessageType::MsgUnreachable as i32,
            from: id,
            ..Default::default()
        });
    }

    /// Reports the outcome of sending a snapshot to `id`.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        let _ = self.raft.step(Message {
            r#type: MessageType::MsgSnapStatus as i32,
            from: id,
            reject: status == SnapshotStatus::Failure,
            ..Default::default()
        });
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: u64) {
        let _ = self.raft.step(Message {
            r#type: MessageType::MsgTransferLeader as i32,
            from: transferee,
            ..Default::default()
        });
    }

    /// A follower forgets its leader (so it may grant pre-votes at once); no-op elsewhere.
    pub fn forget_leader(&mut self) -> Result<()> {
        self.raft.step(Message {
            r#type: MessageType::MsgForgetLeader as i32,
            ..Default::default()
        })
    }

    /// Asks for a linearizable read: a `ReadState` carrying `ctx` comes out in a later Ready
    /// once it is safe to read at its index (serve the read once the applied index reaches
    /// it). A read can be lost (no leader, a leader change): give it a timeout and retry.
    /// `docs/reads.md` in the repository compares the safe and lease-based modes.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<()> {
        self.raft.step(Message {
            r#type: MessageType::MsgReadIndex as i32,
            from: self.raft.id,
            entries: vec![Entry {
                data: ctx,
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    /// The storage.
    pub fn store(&self) -> &S {
        &self.raft.raft_log.store
    }

    /// The storage, to persist a Ready's entries and hard state.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.raft.raft_log.store
    }

    /// Pins the randomized election timeout until the next role change (for tests).
    pub fn set_randomized_election_timeout(&mut self, ticks: usize) {
        self.raft.set_randomized_election_timeout(ticks);
    }

    /// The node's id.
    pub fn id(&self) -> u64 {
        self.raft.id
    }

    /// The node's role.
    pub fn role(&self) -> StateRole {
        self.raft.state
    }

    /// The node's progress state for `id` (leader only).
    pub fn progress_state(&self, id: u64) -> Option<ProgressState> {
        self.raft.trk.progress.get(id).map(|p| p.state)
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::storage::MemStorage;
    use std::mem::size_of;

    /// An idle group's cost is mostly these structs: keep them from growing unnoticed. (The
    /// scenario bench measures the whole resident cost per group.)
    #[test]
    fn hot_structs_stay_small() {
        assert!(
            size_of::<RawNode<MemStorage>>() <= 800,
            "RawNode {}",
            size_of::<RawNode<MemStorage>>()
        );
        assert!(
            size_of::<Raft<MemStorage>>() <= 700,
            "Raft {}",
            size_of::<Raft<MemStorage>>()
        );
        assert!(
            size_of::<crate::log_unstable::Unstable>() <= 64,
            "Unstable {}",
            size_of::<crate::log_unstable::Unstable>()
        );
        assert!(
            size_of::<crate::tracker::ProgressTracker>() <= 176,
            "ProgressTracker {}",
            size_of::<crate::tracker::ProgressTracker>()
        );
        assert!(
            size_of::<crate::tracker::Progress>() <= 96,
            "Progress {}",
            size_of::<crate::tracker::Progress>()
        );
        // A payload is a `Bytes`: an entry is its header and a pointer, whatever its size.
        assert_eq!(size_of::<Entry>(), 56);
    }
}
