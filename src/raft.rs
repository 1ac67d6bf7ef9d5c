//! The Raft state machine: roles, terms, votes, replication and commitment. No IO: inputs come
//! in through `step` and `tick`, outputs go out in `msgs` / `msgs_after_append` and the log.
//!
//! Remote input is validated by `RawNode::step` before it reaches this module (see
//! `validate_remote`); what is left here are the protocol's own rules, which drop stale or
//! useless messages with a log line.

use std::sync::Arc;

use bytes::Bytes;
use slog::{debug, error, info, warn};

use crate::confchange::{self, Changer};
use crate::config::{AppendMode, Config, ReadOnlyOption, NONE};
use crate::error::{Error, Result, StorageError};
use crate::log::RaftLog;
use crate::quorum::VoteResult;
use crate::raftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType,
    Snapshot,
};
use crate::read_only::ReadOnly;
use crate::rng::Rng;
use crate::storage::Storage;
use crate::tracker::{Progress, ProgressMap, ProgressState, ProgressTracker};

/// The largest term or index accepted from the network. Nothing honest comes near it, and
/// keeping remote values below it means `term + 1` and `index + n` can never overflow.
pub const MAX_REMOTE_VALUE: u64 = u64::MAX / 4;

/// How far ahead of the node's own term a remote message's term may be. Honest terms grow by
/// one per election; a jump beyond this comes from a corrupt or hostile sender. Without the
/// bound one message could push a group to a term near the top of the range, after which no
/// election could ever start again.
pub const MAX_TERM_JUMP: u64 = 1 << 48;

/// The role of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum StateRole {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Campaigns for votes in a new term.
    Candidate,
    /// Leads the group for its term.
    Leader,
    /// Asks for pre-votes before starting a real election (pre_vote).
    PreCandidate,
}

impl std::fmt::Display for StateRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateRole::Follower => "StateFollower",
            StateRole::Candidate => "StateCandidate",
            StateRole::Leader => "StateLeader",
            StateRole::PreCandidate => "StatePreCandidate",
        })
    }
}

/// Volatile state that the application may want to observe: the leader and the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftState {
    /// The leader's id, or `NONE`.
    pub leader_id: u64,
    /// The node's role.
    pub raft_state: StateRole,
}

/// A released read: the read is linearizable once the application has applied `index`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadState {
    /// The commit index at the time the read was asked.
    pub index: u64,
    /// The context given to `read_index`.
    pub request_ctx: Bytes,
}

/// How an election is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CampaignType {
    PreElection,
    Election,
    Transfer,
}

/// The context of a MsgVote sent because of a leader transfer: it forces past leases.
pub(crate) const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// Raft state of one node.
pub struct Raft<S: Storage> {
    pub(crate) id: u64,
    pub(crate) term: u64,
    pub(crate) vote: u64,
    pub(crate) raft_log: RaftLog<S>,
    pub(crate) trk: ProgressTracker,
    pub(crate) state: StateRole,
    pub(crate) is_learner: bool,
    pub(crate) lead: u64,
    pub(crate) lead_transferee: u64,
    pub(crate) pending_conf_index: u64,
    uncommitted_size: u64,
    /// Reads waiting for a heartbeat quorum or for the first commit of the term (leader
    /// only, created on the first read).
    read_only: Option<Box<ReadOnly>>,
    pub(crate) read_states: Vec<ReadState>,
    election_elapsed: usize,
    heartbeat_elapsed: usize,
    /// Ticks since the node started (lease reads measure time with it).
    ticks: u64,
    /// Set once this leader sent MsgTimeoutNow in its term: the transferee may win an election
    /// that ignores leases, so lease reads stop.
    lease_revoked: bool,
    randomized_election_timeout: usize,
    /// Messages that may be sent at once.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may only be sent once the unstable state is durable.
    pub(crate) msgs_after_append: Vec<Message>,
    /// Batched mode: followers owed an append at the next flush.
    dirty_all: bool,
    dirty: Vec<u64>,
    pub(crate) cfg: Arc<Config>,
    rng: Rng,
}

/// The payload bytes of entries (what the uncommitted and in-flight byte limits count).
pub(crate) fn payloads_size(ents: &[Entry]) -> u64 {
    ents.iter().map(|e| e.data.len() as u64).sum()
}

/// The encoded bytes of entries (what the message and apply size limits count).
pub(crate) fn ents_size(ents: &[Entry]) -> u64 {
    ents.iter().map(crate::storage::entry_size).sum()
}

impl<S: Storage> Raft<S> {
    /// Builds a node from a validated config and its storage.
    /// Builds node `id` from a validated config (whose own `id` and `applied` are not read:
    /// the config may be shared by many groups) and its storage.
    pub(crate) fn new(id: u64, applied: u64, cfg: Arc<Config>, store: S) -> Result<Self> {
        let rs = store.initial_state()?;
        let raft_log = RaftLog::new(store, cfg.max_committed_size_per_ready)?;
        let mut r = Raft {
            id,
            term: 0,
            vote: NONE,
            raft_log,
            trk: ProgressTracker::new(cfg.max_inflight_msgs, cfg.max_inflight_bytes),
            state: StateRole::Follower,
            is_learner: false,
            lead: NONE,
            lead_transferee: NONE,
            pending_conf_index: 0,
            uncommitted_size: 0,
            read_only: None,
            read_states: Vec::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            ticks: 0,
            lease_revoked: false,
            randomized_election_timeout: cfg.election_tick,
            msgs: Vec::new(),
            msgs_after_append: Vec::new(),
            dirty_all: false,
            dirty: Vec::new(),
            rng: Rng::new(cfg.seed, id),
            cfg,
        };
        let last = r.raft_log.last_index();
        confchange::restore(&mut r.trk, last, &rs.conf_state)
            .map_err(|e| Error::CorruptState(format!("stored ConfState: {e}")))?;
        r.switch_to_config_loaded();
        let hs = rs.hard_state;
        if !hs.is_empty() {
            r.load_state(&hs)?;
        }
        if applied > 0 {
            if applied > r.raft_log.committed {
                return Err(Error::CorruptState(format!(
                    "applied index {applied} is past the commit index {}",
                    r.raft_log.committed
                )));
            }
            r.raft_log.applied_to(applied, 0);
        }
        let term = r.term;
        r.become_follower(term, NONE);
        let peers: Vec<String> = r
            .trk
            .voter_nodes()
            .iter()
            .map(|id| format!("{id:x}"))
            .collect();
        info!(r.cfg.logger, "newRaft {:x} [peers: [{}], term: {}, commit: {}, applied: {}, lastindex: {}, lastterm: {}]",
            r.id, peers.join(","), r.term, r.raft_log.committed, r.raft_log.applied,
            r.raft_log.last_index(), r.raft_log.last_term());
        Ok(r)
    }

    fn load_state(&mut self, hs: &HardState) -> Result<()> {
        if hs.commit < self.raft_log.committed || hs.commit > self.raft_log.last_index() {
            return Err(Error::CorruptState(format!(
                "{:x} state.commit {} is out of range [{}, {}]",
                self.id,
                hs.commit,
                self.raft_log.committed,
                self.raft_log.last_index()
            )));
        }
        self.raft_log.committed = hs.commit;
        self.term = hs.term;
        self.vote = hs.vote;
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Small accessors.

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.lead,
            raft_state: self.state,
        }
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.raft_log.committed,
        }
    }

    fn election_timeout(&self) -> usize {
        self.cfg.election_tick
    }

    /// Whether `id` is a member of the configuration (voter in either half, learner, or a
    /// learner-to-be).
    pub(crate) fn is_member(&self, id: u64) -> bool {
        self.trk.config.contains(id)
    }

    /// A node may campaign if it is a voter and holds no snapshot that is not yet durable.
    pub(crate) fn promotable(&self) -> bool {
        self.trk.config.voters.contains(self.id)
            && !self.is_learner
            && !self.raft_log.has_pending_snapshot()
    }

    pub(crate) fn set_randomized_election_timeout(&mut self, t: usize) {
        self.randomized_election_timeout = t;
    }

    fn reset_randomized_election_timeout(&mut self) {
        let et = self.election_timeout();
        self.randomized_election_timeout = self.rng.in_range(et, et);
    }

    fn past_election_timeout(&self) -> bool {
        self.election_elapsed >= self.randomized_election_timeout
    }

    // ---------------------------------------------------------------------------------------
    // Sending.

    /// Queues a message. Sets `from` and the term per the protocol's rules.
    pub(crate) fn send(&mut self, mut m: Message) {
        if m.from == NONE {
            m.from = self.id;
        }
        let t = m.msg_type().expect("local messages have known types");
        match t {
            MessageType::MsgVote
            | MessageType::MsgVoteResp
            | MessageType::MsgPreVote
            | MessageType::MsgPreVoteResp => {
                // Vote traffic carries the term of the election, not always the node's term.
                debug_assert!(m.term != 0, "term should be set when sending {t:?}");
            }
            _ => {
                debug_assert!(m.term == 0, "term should not be set when sending {t:?}");
                // Proposals and read requests are forwarded term-less: the leader does not
                // care about the forwarder's term.
                if t != MessageType::MsgProp && t != MessageType::MsgReadIndex {
                    m.term = self.term;
                }
            }
        }
        if t.is_after_persist() {
            self.msgs_after_append.push(m);
        } else {
            debug_assert!(
                m.to != self.id,
                "message should not be self-addressed when sending {t:?}"
            );
            self.msgs.push(m);
        }
    }

    /// Appends to `to`, in etcd's way now or at the next flush in batched mode.
    fn send_append(&mut self, to: u64) {
        if self.cfg.append_mode == AppendMode::Batched {
            if !self.dirty_all && !self.dirty.contains(&to) {
                self.dirty.push(to);
            }
            return;
        }
        self.maybe_send_append(to, true);
    }

    fn bcast_append(&mut self) {
        if self.cfg.append_mode == AppendMode::Batched {
            self.dirty_all = true;
            self.dirty.clear();
            return;
        }
        let ids: Vec<u64> = self.trk.progress.ids().collect();
        for id in ids {
            if id != self.id {
                self.maybe_send_append(id, true);
            }
        }
    }

    /// Whether a batched flush is owed.
    pub(crate) fn has_pending_appends(&self) -> bool {
        self.state == StateRole::Leader && (self.dirty_all || !self.dirty.is_empty())
    }

    /// Batched mode: builds the append messages owed to followers, as many as the size and
    /// in-flight limits allow, at most one empty one per follower.
    pub(crate) fn flush_appends(&mut self) {
        if !self.has_pending_appends() {
            self.dirty_all = false;
            self.dirty.clear();
            return;
        }
        let ids = if self.dirty_all {
            self.trk.progress.ids().collect()
        } else {
            let mut d = std::mem::take(&mut self.dirty);
            d.sort_unstable();
            d
        };
        self.dirty_all = false;
        self.dirty.clear();
        for id in ids {
            if id == self.id {
                continue;
            }
            if self.maybe_send_append(id, true) {
                while self.maybe_send_append(id, false) {}
            }
        }
    }

    /// Sends an append (or a snapshot) to `to` if its progress allows. With `send_if_empty`, an
    /// empty append goes out when there is nothing new, carrying the commit index or probing.
    /// Returns whether a message was sent.
    pub(crate) fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let committed = self.raft_log.committed;
        let max_size = self.cfg.max_size_per_msg;
        let Some(pr) = self.trk.progress.get(to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_idx;
        let prev_index = next - 1;
        let prev_term = match self.raft_log.term(prev_index) {
            Ok(t) => t,
            Err(_) => return self.maybe_send_snapshot(to),
        };
        let mut ents = Vec::new();
        if pr.state != ProgressState::Replicate || !pr.inflights.full() {
            match self.raft_log.entries(next, max_size) {
                Ok(e) => ents = e,
                Err(_) => return self.maybe_send_snapshot(to),
            }
        }
        let max_bytes = self.cfg.max_inflight_bytes;
        if pr.state == ProgressState::Replicate && max_bytes != crate::config::NO_LIMIT {
            // A hard byte window: send only what fits in the room left, so the payload in
            // flight to one follower never exceeds max_inflight_bytes (an entry larger than the
            // whole window still goes, alone, when nothing else is in flight).
            let room = max_bytes.saturating_sub(pr.inflights.bytes());
            let mut total = 0u64;
            let mut keep = 0;
            for e in &ents {
                let size = e.data.len() as u64;
                if total + size > room {
                    break;
                }
                total += size;
                keep += 1;
            }
            if keep == 0 && pr.inflights.count() == 0 {
                keep = 1;
            }
            ents.truncate(keep);
        }
        if ents.is_empty() && !send_if_empty {
            return false;
        }
        let n = ents.len();
        let bytes = payloads_size(&ents);
        // Lease mode stamps appends with their send tick, as it does heartbeats: the answer
        // extends the lease.
        let context = if self.cfg.read_only_option == ReadOnlyOption::LeaseBased {
            Bytes::copy_from_slice(&self.ticks.to_le_bytes())
        } else {
            Bytes::new()
        };
        self.send(Message {
            r#type: MessageType::MsgApp as i32,
            to,
            index: prev_index,
            log_term: prev_term,
            entries: ents,
            commit: committed,
            context,
            ..Default::default()
        });
        let pr = self.trk.progress.get_mut(to).expect("checked above");
        pr.sent_entries(n, bytes);
        pr.sent_commit = committed;
        true
    }

    fn maybe_send_snapshot(&mut self, to: u64) -> bool {
        let Some(pr) = self.trk.progress.get(to) else {
            return false;
        };
        if !pr.recent_active {
            debug!(
                self.cfg.logger,
                "ignore sending snapshot to {:x} since it is not recently active", to
            );
            return false;
        }
        let snapshot = match self.raft_log.snapshot() {
            Ok(s) => s,
            Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable)) => {
                debug!(self.cfg.logger, "{:x} failed to send snapshot to {:x} because snapshot is temporarily unavailable", self.id, to);
                return false;
            }
            Err(e) => {
                error!(
                    self.cfg.logger,
                    "{:x} failed to get a snapshot for {:x}: {}", self.id, to, e
                );
                return false;
            }
        };
        if snapshot.is_empty() {
            error!(
                self.cfg.logger,
                "{:x} needs a snapshot for {:x} but the storage has none", self.id, to
            );
            return false;
        }
        let (sindex, sterm) = (snapshot.index(), snapshot.term());
        let (first, committed) = (self.raft_log.first_index(), self.raft_log.committed);
        let pr = self.trk.progress.get_mut(to).expect("checked above");
        debug!(
            self.cfg.logger,
            "{:x} [firstindex: {}, commit: {}] sent snapshot[index: {}, term: {}] to {:x} [{}]",
            self.id,
            first,
            committed,
            sindex,
            sterm,
            to,
            pr
        );
        pr.become_snapshot(sindex);
        debug!(
            self.cfg.logger,
            "{:x} paused sending replication messages to {:x} [{}]", self.id, to, pr
        );
        self.send(Message {
            r#type: MessageType::MsgSnap as i32,
            to,
            snapshot: Some(snapshot),
            ..Default::default()
        });
        true
    }

    fn send_heartbeat(&mut self, to: u64, ctx: Bytes) {
        let Some(pr) = self.trk.progress.get_mut(to) else {
            return;
        };
        // Never tell a follower to commit past what it is known to hold.
        let commit = pr.matched.min(self.raft_log.committed);
        pr.sent_commit = commit;
        self.send(Message {
            r#type: MessageType::MsgHeartbeat as i32,
            to,
            commit,
            context: ctx,
            ..Default::default()
        });
    }

    fn bcast_heartbeat(&mut self) {
        let ctx = if self.cfg.read_only_option == ReadOnlyOption::LeaseBased {
            // Lease mode stamps every heartbeat with the tick it was sent at: an answer proves
            // the follower heard from this leader no earlier than that tick.
            let ticks = self.ticks;
            self.read_only_mut().lease_ctx(ticks)
        } else {
            self.read_only
                .as_ref()
                .and_then(|r| r.last_pending_ctx())
                .unwrap_or_default()
        };
        let ids: Vec<u64> = self.trk.progress.ids().collect();
        for id in ids {
            if id != self.id {
                self.send_heartbeat(id, ctx.clone());
            }
        }
    }

    fn send_timeout_now(&mut self, to: u64) {
        self.lease_revoked = true;
        self.send(Message {
            r#type: MessageType::MsgTimeoutNow as i32,
            to,
            ..Default::default()
        });
    }

    // ---------------------------------------------------------------------------------------
    // Role changes.

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = NONE;
        }
        self.lead = NONE;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.abort_leader_transfer();
        self.trk.reset_votes();
        // Per-peer progress exists only on a leader; it is built in become_leader.
        self.trk.progress = ProgressMap::default();
        self.dirty_all = false;
        self.dirty.clear();
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.read_only = None;
        self.lease_revoked = false;
    }

    pub(crate) fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.state = StateRole::Follower;
        info!(
            self.cfg.logger,
            "{:x} became follower at term {}", self.id, self.term
        );
    }

    fn become_candidate(&mut self) {
        debug_assert!(
            self.state != StateRole::Leader,
            "invalid transition [leader -> candidate]"
        );
        let term = self.term + 1;
        self.reset(term);
        self.vote = self.id;
        self.state = StateRole::Candidate;
        info!(
            self.cfg.logger,
            "{:x} became candidate at term {}", self.id, self.term
        );
    }

    fn become_pre_candidate(&mut self) {
        debug_assert!(
            self.state != StateRole::Leader,
            "invalid transition [leader -> pre-candidate]"
        );
        // A pre-candidate keeps its term and vote: nothing durable changes until it wins.
        self.trk.reset_votes();
        self.trk.progress = ProgressMap::default();
        self.lead = NONE;
        self.state = StateRole::PreCandidate;
        info!(
            self.cfg.logger,
            "{:x} became pre-candidate at term {}", self.id, self.term
        );
    }

    fn become_leader(&mut self) {
        debug_assert!(
            self.state != StateRole::Follower,
            "invalid transition [follower -> leader]"
        );
        let term = self.term;
        self.reset(term);
        self.lead = self.id;
        self.state = StateRole::Leader;
        self.build_progress();
        let last = self.raft_log.last_index();
        if let Some(pr) = self.trk.progress.get_mut(self.id) {
            // The leader's own entries are matched once durable; it replicates to itself.
            pr.become_replicate();
            pr.recent_active = true;
        }
        // Conservatively treat every entry up to the last as a possible unapplied conf change.
        self.pending_conf_index = last;
        // The empty entry of the new term; it does not count toward the uncommitted limit.
        let appended = self.append_entry(vec![Entry::default()]);
        debug_assert!(appended, "the empty entry is never refused");
        info!(
            self.cfg.logger,
            "{:x} became leader at term {}", self.id, self.term
        );
    }

    /// Fills the progress map with a fresh Progress per member (leader only, or temporarily
    /// for a configuration change).
    fn build_progress(&mut self) {
        let last = self.raft_log.last_index();
        let mut map = ProgressMap::default();
        let cfg = &self.trk.config;
        let mut ids: Vec<u64> = cfg.voters.ids();
        ids.extend(cfg.learners_iter());
        ids.extend(cfg.learners_next_iter());
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let mut pr =
                Progress::new(last + 1, self.trk.max_inflight, self.trk.max_inflight_bytes);
            pr.is_learner = self.trk.config.is_learner(id);
            if id == self.id {
                pr.matched = last;
            }
            map.insert(id, pr);
        }
        self.trk.progress = map;
    }

    // ---------------------------------------------------------------------------------------
    // Ticks.

    pub(crate) fn tick(&mut self) {
        self.ticks += 1;
        match self.state {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        // The cheap clock test first: an idle follower's tick is an increment and a compare.
        if self.past_election_timeout() && self.promotable() {
            self.election_elapsed = 0;
            self.hup_local();
        }
    }

    fn hup_local(&mut self) {
        let _ = self.step(Message {
            r#type: MessageType::MsgHup as i32,
            from: self.id,
            ..Default::default()
        });
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout() {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let _ = self.step(Message {
                    r#type: MessageType::MsgCheckQuorum as i32,
                    from: self.id,
                    ..Default::default()
                });
            }
            // A transfer that did not finish within an election timeout is abandoned.
            if self.state == StateRole::Leader && self.lead_transferee != NONE {
                self.abort_leader_transfer();
            }
        }
        if self.state != StateRole::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            let _ = self.step(Message {
                r#type: MessageType::MsgBeat as i32,
                from: self.id,
                ..Default::default()
            });
        }
    }

    // ---------------------------------------------------------------------------------------
    // Elections.

    fn hup(&mut self, t: CampaignType) {
        if self.state == StateRole::Leader {
            debug!(
                self.cfg.logger,
                "{:x} ignoring MsgHup because already leader", self.id
            );
            return;
        }
        if !self.promotable() {
            warn!(
                self.cfg.logger,
                "{:x} is unpromotable and can not campaign", self.id
            );
            return;
        }
        if self.has_unapplied_conf_changes() {
            warn!(self.cfg.logger, "{:x} cannot campaign at term {} since there are still pending configuration changes to apply", self.id, self.term);
            return;
        }
        // Remote terms may run at most MAX_TERM_JUMP ahead of ours and stay below
        // MAX_REMOTE_VALUE, so `term + 1` never overflows and a hostile message cannot use up
        // the term space in one go.
        if self.term >= MAX_REMOTE_VALUE {
            error!(
                self.cfg.logger,
                "{:x} cannot campaign: term {} is at the limit", self.id, self.term
            );
            return;
        }
        info!(
            self.cfg.logger,
            "{:x} is starting a new election at term {}", self.id, self.term
        );
        self.campaign(t);
    }

    fn has_unapplied_conf_changes(&self) -> bool {
        let applied = self.raft_log.applied;
        let committed = self.raft_log.committed;
        if applied >= committed {
            return false;
        }
        let mut found = false;
        let page = self.cfg.max_committed_size_per_ready;
        let res = self
            .raft_log
            .scan(applied + 1, committed + 1, page, |ents| {
                if ents.iter().any(|e| {
                    matches!(
                        e.entry_type(),
                        EntryType::EntryConfChange | EntryType::EntryConfChangeV2
                    )
                }) {
                    found = true;
                }
                Ok(())
            });
        if let Err(e) = res {
            // Not being able to read committed entries is a local storage failure; refusing to
            // campaign is the safe answer.
            error!(
                self.cfg.logger,
                "{:x} error scanning unapplied entries [{}, {}): {}",
                self.id,
                applied + 1,
                committed + 1,
                e
            );
            return true;
        }
        found
    }

    fn campaign(&mut self, t: CampaignType) {
        let (term, vote_msg) = if t == CampaignType::PreElection {
            self.become_pre_candidate();
            // Pre-votes are asked for the next term, without moving to it.
            (self.term + 1, MessageType::MsgPreVote)
        } else {
            self.become_candidate();
            (self.term, MessageType::MsgVote)
        };
        let (last_term, last_index) = self.raft_log.last_entry_id();
        for id in self.trk.voter_nodes() {
            if id == self.id {
                // The vote for itself counts once it is durable: it travels through
                // msgs_after_append and comes back on advance.
                self.send(Message {
                    r#type: vote_msg.vote_response() as i32,
                    to: id,
                    term,
                    ..Default::default()
                });
                continue;
            }
            info!(
                self.cfg.logger,
                "{:x} [logterm: {}, index: {}] sent {} request to {:x} at term {}",
                self.id,
                last_term,
                last_index,
                vote_msg.as_str_name(),
                id,
                self.term
            );
            let context = if t == CampaignType::Transfer {
                Bytes::from_static(CAMPAIGN_TRANSFER)
            } else {
                Bytes::new()
            };
            self.send(Message {
                r#type: vote_msg as i32,
                to: id,
                term,
                index: last_index,
                log_term: last_term,
                context,
                ..Default::default()
            });
        }
    }

    fn poll(&mut self, id: u64, t: MessageType, granted: bool) -> (usize, usize, VoteResult) {
        if granted {
            info!(
                self.cfg.logger,
                "{:x} received {} from {:x} at term {}",
                self.id,
                t.as_str_name(),
                id,
                self.term
            );
        } else {
            info!(
                self.cfg.logger,
                "{:x} received {} rejection from {:x} at term {}",
                self.id,
                t.as_str_name(),
                id,
                self.term
            );
        }
        self.trk.record_vote(id, granted);
        self.trk.tally_votes()
    }

    // ---------------------------------------------------------------------------------------
    // The step function.

    /// Steps a message that passed `RawNode`'s validation (or a local one).
    pub(crate) fn step(&mut self, mut m: Message) -> Result<()> {
        let t = m
            .msg_type()
            .ok_or(Error::InvalidMessage("unknown message type"))?;
        if m.term == 0 {
            // Local or term-less message.
        } else if m.term > self.term {
            if t == MessageType::MsgVote || t == MessageType::MsgPreVote {
                let force = m.context[..] == *CAMPAIGN_TRANSFER;
                let in_lease = self.cfg.check_quorum
                    && self.lead != NONE
                    && self.election_elapsed < self.election_timeout();
                if !force && in_lease {
                    // A node that heard from a leader within the election timeout ignores
                    // vote requests: a partitioned node must not disrupt a healthy group.
                    let (lt, li) = self.raft_log.last_entry_id();
                    info!(self.cfg.logger, "{:x} [logterm: {}, index: {}, vote: {:x}] ignored {} from {:x} [logterm: {}, index: {}] at term {}: lease is not expired (remaining ticks: {})",
                        self.id, lt, li, self.vote, t.as_str_name(), m.from, m.log_term, m.index, self.term,
                        self.election_timeout() - self.election_elapsed);
                    return Ok(());
                }
            }
            match t {
                // A pre-vote never changes the term.
                MessageType::MsgPreVote => {}
                // A granted pre-vote: the term moves when the election starts.
                MessageType::MsgPreVoteResp if !m.reject => {}
                _ => {
                    info!(self.cfg.logger, "{:x} [term: {}] received a {} message with higher term from {:x} [term: {}]",
                        self.id, self.term, t.as_str_name(), m.from, m.term);
                    if matches!(
                        t,
                        MessageType::MsgApp | MessageType::MsgHeartbeat | MessageType::MsgSnap
                    ) {
                        self.become_follower(m.term, m.from);
                    } else {
                        self.become_follower(m.term, NONE);
                    }
                }
            }
        } else if m.term < self.term {
            if (self.cfg.check_quorum || self.cfg.pre_vote)
                && matches!(t, MessageType::MsgHeartbeat | MessageType::MsgApp)
            {
                // A leader cut off by a partition keeps sending at its old term. Answer so it
                // learns the new term and steps down; otherwise, with check_quorum or pre-vote,
                // the rest of the group would never be disturbed enough to tell it.
                self.send(Message {
                    r#type: MessageType::MsgAppResp as i32,
                    to: m.from,
                    ..Default::default()
                });
            } else if t == MessageType::MsgPreVote {
                let (lt, li) = self.raft_log.last_entry_id();
                info!(self.cfg.logger, "{:x} [logterm: {}, index: {}, vote: {:x}] rejected {} from {:x} [logterm: {}, index: {}] at term {}",
                    self.id, lt, li, self.vote, t.as_str_name(), m.from, m.log_term, m.index, self.term);
                self.send(Message {
                    r#type: MessageType::MsgPreVoteResp as i32,
                    to: m.from,
                    term: self.term,
                    reject: true,
                    ..Default::default()
                });
            } else if t == MessageType::MsgStorageAppendResp {
                // Entries written under an older term may since have been overwritten: do not
                // mark them stable (the ABA case). A snapshot is still applied.
                if m.index != 0 {
                    info!(self.cfg.logger, "{:x} [term: {}] ignored entry appends from a {} message with lower term [term: {}]",
                        self.id, self.term, t.as_str_name(), m.term);
                }
                if let Some(s) = m.snapshot.take() {
                    self.applied_snap(&s);
                }
            } else {
                info!(
                    self.cfg.logger,
                    "{:x} [term: {}] ignored a {} message with lower term from {:x} [term: {}]",
                    self.id,
                    self.term,
                    t.as_str_name(),
                    m.from,
                    m.term
                );
            }
            return Ok(());
        }

        match t {
            MessageType::MsgHup => {
                if self.cfg.pre_vote {
                    self.hup(CampaignType::PreElection);
                } else {
                    self.hup(CampaignType::Election);
                }
            }
            MessageType::MsgStorageAppendResp => {
                if m.index != 0 {
                    self.raft_log.stable_to(m.index, m.log_term);
                }
                if let Some(s) = m.snapshot.take() {
                    self.applied_snap(&s);
                }
            }
            MessageType::MsgStorageApplyResp => {
                if let Some(last) = m.entries.last() {
                    let index = last.index;
                    self.on_applied(index, ents_size(&m.entries), payloads_size(&m.entries));
                }
            }
            MessageType::MsgVote | MessageType::MsgPreVote => {
                // We can vote if this is a repeat of a vote we cast, or we have not voted and
                // know no leader in this term, or this is a pre-vote for a future term.
                let can_vote = self.vote == m.from
                    || (self.vote == NONE && self.lead == NONE)
                    || (t == MessageType::MsgPreVote && m.term > self.term);
                let (lt, li) = self.raft_log.last_entry_id();
                if can_vote && self.raft_log.is_up_to_date(m.index, m.log_term) {
                    info!(self.cfg.logger, "{:x} [logterm: {}, index: {}, vote: {:x}] cast {} for {:x} [logterm: {}, index: {}] at term {}",
                        self.id, lt, li, self.vote, t.as_str_name(), m.from, m.log_term, m.index, self.term);
                    // The response carries the term of the request: for a pre-vote that is
                    // a future term, which the candidate checks.
                    self.send(Message {
                        r#type: t.vote_response() as i32,
                        to: m.from,
                        term: m.term,
                        ..Default::default()
                    });
                    if t == MessageType::MsgVote {
                        self.election_elapsed = 0;
                        self.vote = m.from;
                    }
                } else {
                    info!(self.cfg.logger, "{:x} [logterm: {}, index: {}, vote: {:x}] rejected {} from {:x} [logterm: {}, index: {}] at term {}",
                        self.id, lt, li, self.vote, t.as_str_name(), m.from, m.log_term, m.index, self.term);
                    self.send(Message {
                        r#type: t.vote_response() as i32,
                        to: m.from,
                        term: self.term,
                        reject: true,
                        ..Default::default()
                    });
                }
            }
            _ => match self.state {
                StateRole::Leader => return self.step_leader(m, t),
                StateRole::Candidate | StateRole::PreCandidate => return self.step_candidate(m, t),
                StateRole::Follower => return self.step_follower(m, t),
            },
        }
        Ok(())
    }

    fn step_leader(&mut self, mut m: Message, t: MessageType) -> Result<()> {
        match t {
            MessageType::MsgBeat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::MsgCheckQuorum => {
                if !self.trk.quorum_active() {
                    warn!(
                        self.cfg.logger,
                        "{:x} stepped down to follower since quorum is not active", self.id
                    );
                    let term = self.term;
                    self.become_follower(term, NONE);
                    return Ok(());
                }
                let id = self.id;
                for (pid, pr) in self.trk.progress.iter_mut() {
                    if pid != id {
                        pr.recent_active = false;
                    }
                }
                return Ok(());
            }
            MessageType::MsgProp => {
                if m.entries.is_empty() {
                    return Err(Error::InvalidMessage("MsgProp without entries"));
                }
                if self.trk.progress.get(self.id).is_none() {
                    // Removed from the configuration: this leader serves until a new one takes
                    // over, but takes no new proposals.
                    return Err(Error::ProposalDropped);
                }
                if self.lead_transferee != NONE {
                    debug!(self.cfg.logger, "{:x} [term {}] transfer leadership to {:x} is in progress; dropping proposal", self.id, self.term, self.lead_transferee);
                    return Err(Error::ProposalDropped);
                }
                self.check_conf_change_proposals(&mut m.entries);
                if !self.append_entry(std::mem::take(&mut m.entries)) {
                    return Err(Error::ProposalDropped);
                }
                self.bcast_append();
                return Ok(());
            }
            MessageType::MsgReadIndex => {
                if !self.committed_entry_in_current_term() {
                    // Until the leader commits an entry of its term, its commit index may be
                    // behind the group's: hold the read until then.
                    let ro = self.read_only_mut();
                    if ro.held.len() >= crate::read_only::MAX_PENDING_READS {
                        return Err(Error::ProposalDropped);
                    }
                    ro.held.push(m);
                    return Ok(());
                }
                return self.handle_read_index(m);
            }
            MessageType::MsgForgetLeader => return Ok(()),
            _ => {}
        }

        let from = m.from;
        if self.trk.progress.get(from).is_none() {
            debug!(
                self.cfg.logger,
                "{:x} no progress available for {:x}", self.id, from
            );
            return Ok(());
        }
        match t {
            MessageType::MsgAppResp => self.handle_append_response(&m),
            MessageType::MsgHeartbeatResp => self.handle_heartbeat_response(&m),
            MessageType::MsgSnapStatus => {
                let pr = self.trk.progress.get_mut(from).expect("checked");
                if pr.state != ProgressState::Snapshot {
                    return Ok(());
                }
                if !m.reject {
                    pr.become_probe();
                    debug!(self.cfg.logger, "{:x} snapshot succeeded, resumed sending replication messages to {:x} [{}]", self.id, from, pr);
                } else {
                    // Clear the pending snapshot first, or probing would start from the index
                    // of a snapshot that never arrived.
                    pr.pending_snapshot = 0;
                    pr.become_probe();
                    debug!(
                        self.cfg.logger,
                        "{:x} snapshot failed, resumed sending replication messages to {:x} [{}]",
                        self.id,
                        from,
                        pr
                    );
                }
                // Wait for the follower's answer (or a heartbeat interval) before appending.
                pr.msg_app_flow_paused = true;
            }
            MessageType::MsgUnreachable => {
                let pr = self.trk.progress.get_mut(from).expect("checked");
                // An append in flight to an unreachable node is probably lost.
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                debug!(
                    self.cfg.logger,
                    "{:x} failed to send message to {:x} because it is unreachable [{}]",
                    self.id,
                    from,
                    pr
                );
            }
            MessageType::MsgTransferLeader => self.handle_transfer_leader(from),
            _ => {}
        }
        Ok(())
    }

    /// Validates conf-change proposals; a refused one becomes an empty normal entry, which is
    /// still appended.
    fn check_conf_change_proposals(&mut self, entries: &mut [Entry]) {
        let last = self.raft_log.last_index();
        for (i, e) in entries.iter_mut().enumerate() {
            let cc = match e.entry_type() {
                EntryType::EntryConfChange => {
                    match <ConfChange as prost::Message>::decode(e.data.clone()) {
                        Ok(cc) => cc.as_v2(),
                        Err(_) => {
                            info!(
                                self.cfg.logger,
                                "{:x} ignoring undecodable conf change proposal", self.id
                            );
                            *e = Entry::default();
                            continue;
                        }
                    }
                }
                EntryType::EntryConfChangeV2 => {
                    match <ConfChangeV2 as prost::Message>::decode(e.data.clone()) {
                        Ok(cc) => cc,
                        Err(_) => {
                            info!(
                                self.cfg.logger,
                                "{:x} ignoring undecodable conf change proposal", self.id
                            );
                            *e = Entry::default();
                            continue;
                        }
                    }
                }
                EntryType::EntryNormal => continue,
            };
            let already_pending = self.pending_conf_index > self.raft_log.applied;
            let already_joint = self.trk.config.voters.is_joint();
            let wants_leave_joint = cc.changes.is_empty();
            let failed = if already_pending {
                Some(format!(
                    "possible unapplied conf change at index {} (applied to {})",
                    self.pending_conf_index, self.raft_log.applied
                ))
            } else if already_joint && !wants_leave_joint {
                Some("must transition out of joint config first".to_string())
            } else if !already_joint && wants_leave_joint {
                Some("not in joint state; refusing empty conf change".to_string())
            } else {
                None
            };
            match failed {
                Some(why) if !self.cfg.disable_conf_change_validation => {
                    info!(
                        self.cfg.logger,
                        "{:x} ignoring conf change {} at config {}: {}",
                        self.id,
                        crate::describe::describe_conf_change(&cc),
                        self.trk.config,
                        why
                    );
                    *e = Entry::default();
                }
                _ => self.pending_conf_index = last + i as u64 + 1,
            }
        }
    }

    fn handle_append_response(&mut self, m: &Message) {
        let from = m.from;
        let last_index = self.raft_log.last_index();
        if m.index > last_index && !m.reject {
            // An acknowledgement of entries this leader never had: ignore it rather than
            // count it toward a quorum.
            warn!(
                self.cfg.logger,
                "{:x} ignored MsgAppResp from {:x} acknowledging index {} past the last index {}",
                self.id,
                from,
                m.index,
                last_index
            );
            return;
        }
        if self.cfg.read_only_option == ReadOnlyOption::LeaseBased && from != self.id {
            if let Ok(b) = <[u8; 8]>::try_from(&m.context[..]) {
                let now = self.ticks;
                self.read_only_mut()
                    .record_lease(from, u64::from_le_bytes(b), now);
            }
        }
        let pr = self.trk.progress.get_mut(from).expect("checked by caller");
        pr.recent_active = true;
        if m.reject {
            debug!(self.cfg.logger, "{:x} received MsgAppResp(rejected, hint: (index {}, term {})) from {:x} for index {}",
                self.id, m.reject_hint, m.log_term, from, m.index);
            let mut next_probe_idx = m.reject_hint.min(last_index);
            if m.log_term > 0 {
                // Skip every entry of ours whose term is above the follower's term at the hint:
                // none of them can match.
                next_probe_idx = self
                    .raft_log
                    .find_conflict_by_term(next_probe_idx, m.log_term)
                    .0;
            }
            let pr = self.trk.progress.get_mut(from).expect("checked by caller");
            if pr.maybe_decr_to(m.index, next_probe_idx) {
                debug!(
                    self.cfg.logger,
                    "{:x} decreased progress of {:x} to [{}]", self.id, from, pr
                );
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from);
            }
            return;
        }
        let first_index = self.raft_log.first_index();
        let pr = self.trk.progress.get_mut(from).expect("checked by caller");
        if pr.maybe_update(m.index) || (pr.matched == m.index && pr.state == ProgressState::Probe) {
            match pr.state {
                ProgressState::Probe => pr.become_replicate(),
                ProgressState::Snapshot if pr.matched + 1 >= first_index => {
                    // Any snapshot (or append) that lets replication go on ends the snapshot
                    // state, whatever the pending snapshot was.
                    debug!(self.cfg.logger, "{:x} recovered from needing snapshot, resumed sending replication messages to {:x} [{}]", self.id, from, pr);
                    pr.become_probe();
                    pr.become_replicate();
                }
                ProgressState::Replicate => pr.inflights.free_le(m.index),
                ProgressState::Snapshot => {}
            }
            if self.maybe_commit() {
                // The commit index moved in this term: reads held for it may go.
                self.release_pending_read_index_messages();
                self.bcast_append();
            } else if from != self.id {
                let committed = self.raft_log.committed;
                let can_bump = self
                    .trk
                    .progress
                    .get(from)
                    .is_some_and(|pr| pr.can_bump_commit(committed));
                if can_bump {
                    // The follower may not know the latest commit index yet.
                    self.send_append(from);
                }
            }
            if from != self.id {
                // Flow control may have opened: send what the window allows now.
                if self.cfg.append_mode == AppendMode::Batched {
                    self.send_append(from);
                } else {
                    while self.maybe_send_append(from, false) {}
                }
            }
            if from == self.lead_transferee
                && self
                    .trk
                    .progress
                    .get(from)
                    .is_some_and(|pr| pr.matched == self.raft_log.last_index())
            {
                info!(
                    self.cfg.logger,
                    "{:x} sent MsgTimeoutNow to {:x} after received MsgAppResp", self.id, from
                );
                self.send_timeout_now(from);
            }
        }
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let from = m.from;
        let last_index = self.raft_log.last_index();
        let pr = self.trk.progress.get_mut(from).expect("checked by caller");
        pr.recent_active = true;
        pr.msg_app_flow_paused = false;
        // An append now lets a follower whose in-flight messages were all lost recover (it is
        // empty if there is nothing new), and moves a caught-up follower that was put back to
        // probing (report_unreachable) back to replicating once it answers.
        if pr.matched < last_index || pr.state == ProgressState::Probe {
            self.send_append(from);
        }
        if m.context.is_empty() {
            return;
        }
        let lease = self.cfg.read_only_option == ReadOnlyOption::LeaseBased;
        let now = self.ticks;
        let Some(ro) = self.read_only.as_mut() else {
            return;
        };
        if lease {
            ro.recv_lease_ack(from, &m.context, now);
        }
        if !ro.recv_ack(from, &m.context) {
            return;
        }
        let ro = &**ro;
        let confirmed = self
            .trk
            .config
            .voters
            .committed_index(&|id: u64| ro.acked(id));
        let released = self
            .read_only
            .as_mut()
            .map(|ro| ro.advance(confirmed))
            .unwrap_or_default();
        for rs in released {
            self.respond_to_read_index(rs.req, rs.index);
        }
    }

    fn handle_transfer_leader(&mut self, transferee: u64) {
        let Some(pr) = self.trk.progress.get(transferee) else {
            return;
        };
        if pr.is_learner {
            debug!(
                self.cfg.logger,
                "{:x} is learner. Ignored transferring leadership", self.id
            );
            return;
        }
        let last = self.lead_transferee;
        if last != NONE {
            if last == transferee {
                info!(self.cfg.logger, "{:x} [term {}] transfer leadership to {:x} is in progress, ignores request to same node {:x}", self.id, self.term, transferee, transferee);
                return;
            }
            self.abort_leader_transfer();
            info!(
                self.cfg.logger,
                "{:x} [term {}] abort previous transferring leadership to {:x}",
                self.id,
                self.term,
                last
            );
        }
        if transferee == self.id {
            debug!(
                self.cfg.logger,
                "{:x} is already leader. Ignored transferring leadership to self", self.id
            );
            return;
        }
        info!(
            self.cfg.logger,
            "{:x} [term {}] starts to transfer leadership to {:x}", self.id, self.term, transferee
        );
        // The transfer must finish within an election timeout.
        self.election_elapsed = 0;
        self.lead_transferee = transferee;
        let matched = self.trk.progress.get(transferee).map_or(0, |p| p.matched);
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(transferee);
            info!(
                self.cfg.logger,
                "{:x} sends MsgTimeoutNow to {:x} immediately as {:x} already has up-to-date log",
                self.id,
                transferee,
                transferee
            );
        } else {
            self.send_append(transferee);
        }
    }

    pub(crate) fn abort_leader_transfer(&mut self) {
        self.lead_transferee = NONE;
    }

    fn step_candidate(&mut self, m: Message, t: MessageType) -> Result<()> {
        // A pre-candidate counts pre-votes, a candidate votes; a vote response of the other
        // kind is stale (for example from an earlier pre-vote round).
        let my_vote_resp = if self.state == StateRole::PreCandidate {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        match t {
            MessageType::MsgProp => {
                info!(
                    self.cfg.logger,
                    "{:x} no leader at term {}; dropping proposal", self.id, self.term
                );
                return Err(Error::ProposalDropped);
            }
            MessageType::MsgApp => {
                self.become_follower(m.term, m.from);
                return self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.become_follower(m.term, m.from);
                return self.handle_snapshot(m);
            }
            _ if t == my_vote_resp => {
                let (gr, rj, res) = self.poll(m.from, t, !m.reject);
                info!(
                    self.cfg.logger,
                    "{:x} has received {} {} votes and {} vote rejections",
                    self.id,
                    gr,
                    t.as_str_name(),
                    rj
                );
                match res {
                    VoteResult::Won => {
                        if self.state == StateRole::PreCandidate {
                            self.campaign(CampaignType::Election);
                        } else {
                            self.become_leader();
                            self.bcast_append();
                        }
                    }
                    VoteResult::Lost => {
                        // The pre-candidate's term was never bumped, so this is its own term.
                        let term = self.term;
                        self.become_follower(term, NONE);
                    }
                    VoteResult::Pending => {}
                }
            }
            MessageType::MsgTimeoutNow => {
                debug!(
                    self.cfg.logger,
                    "{:x} [term {} state {}] ignored MsgTimeoutNow from {:x}",
                    self.id,
                    self.term,
                    self.state,
                    m.from
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn step_follower(&mut self, mut m: Message, t: MessageType) -> Result<()> {
        match t {
            MessageType::MsgProp => {
                if m.entries.is_empty() {
                    return Err(Error::InvalidMessage("MsgProp without entries"));
                }
                if self.lead == NONE {
                    info!(
                        self.cfg.logger,
                        "{:x} no leader at term {}; dropping proposal", self.id, self.term
                    );
                    return Err(Error::ProposalDropped);
                }
                if self.cfg.disable_proposal_forwarding {
                    info!(
                        self.cfg.logger,
                        "{:x} not forwarding to leader {:x} at term {}; dropping proposal",
                        self.id,
                        self.lead,
                        self.term
                    );
                    return Err(Error::ProposalDropped);
                }
                m.to = self.lead;
                m.term = 0;
                self.send(m);
            }
            MessageType::MsgApp => {
                self.election_elapsed = 0;
                self.lead = m.from;
                return self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.election_elapsed = 0;
                self.lead = m.from;
                return self.handle_snapshot(m);
            }
            MessageType::MsgTransferLeader => {
                if self.lead == NONE {
                    info!(
                        self.cfg.logger,
                        "{:x} no leader at term {}; dropping leader transfer msg",
                        self.id,
                        self.term
                    );
                    return Ok(());
                }
                m.to = self.lead;
                m.term = 0;
                self.send(m);
            }
            MessageType::MsgForgetLeader => {
                if self.cfg.read_only_option == ReadOnlyOption::LeaseBased {
                    error!(
                        self.cfg.logger,
                        "ignoring MsgForgetLeader due to ReadOnlyLeaseBased"
                    );
                    return Ok(());
                }
                if self.lead != NONE {
                    info!(
                        self.cfg.logger,
                        "{:x} forgetting leader {:x} at term {}", self.id, self.lead, self.term
                    );
                    self.lead = NONE;
                }
            }
            MessageType::MsgTimeoutNow => {
                info!(self.cfg.logger, "{:x} [term {}] received MsgTimeoutNow from {:x} and starts an election to get leadership.", self.id, self.term, m.from);
                // Leadership transfers never use pre-vote: the leader asked for this election.
                self.hup(CampaignType::Transfer);
            }
            MessageType::MsgReadIndex => {
                if self.lead == NONE {
                    info!(
                        self.cfg.logger,
                        "{:x} no leader at term {}; dropping index reading msg", self.id, self.term
                    );
                    return Ok(());
                }
                m.to = self.lead;
                m.term = 0;
                self.send(m);
            }
            MessageType::MsgReadIndexResp => {
                if m.entries.len() != 1 {
                    error!(
                        self.cfg.logger,
                        "{:x} invalid format of MsgReadIndexResp from {:x}, entries count: {}",
                        self.id,
                        m.from,
                        m.entries.len()
                    );
                    return Ok(());
                }
                let ctx = m.entries.swap_remove(0).data;
                self.push_read_state(ReadState {
                    index: m.index,
                    request_ctx: ctx,
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn push_read_state(&mut self, rs: ReadState) {
        // Read states are handed out with every Ready; a node whose application never calls
        // ready() would otherwise grow this without bound.
        if self.read_states.len() >= crate::read_only::MAX_PENDING_READS {
            warn!(
                self.cfg.logger,
                "{:x} dropping read state at index {}: too many unread read states",
                self.id,
                rs.index
            );
            return;
        }
        self.read_states.push(rs);
    }

    // ---------------------------------------------------------------------------------------
    // Follower side of replication.

    fn handle_append_entries(&mut self, m: Message) -> Result<()> {
        if m.index < self.raft_log.committed {
            let committed = self.raft_log.committed;
            self.send(Message {
                r#type: MessageType::MsgAppResp as i32,
                to: m.from,
                index: committed,
                ..Default::default()
            });
            return Ok(());
        }
        let from = m.from;
        let (index, log_term, commit) = (m.index, m.log_term, m.commit);
        let context = m.context;
        match self
            .raft_log
            .maybe_append(index, log_term, commit, m.entries)
        {
            Ok(Some(last_new)) => {
                self.send(Message {
                    r#type: MessageType::MsgAppResp as i32,
                    to: from,
                    index: last_new,
                    // Echoed so a lease-mode leader knows when the append was sent.
                    context,
                    ..Default::default()
                });
            }
            Ok(None) => {
                let (lt, li) = (self.raft_log.term(index).unwrap_or(0), index);
                debug!(self.cfg.logger, "{:x} [logterm: {}, index: {}] rejected MsgApp [logterm: {}, index: {}] from {:x}",
                    self.id, lt, li, log_term, index, from);
                // Hint the largest (index, term) at which the logs may match, so the leader
                // skips a whole term per round trip.
                let hint_index = index.min(self.raft_log.last_index());
                let (hint_index, hint_term) =
                    self.raft_log.find_conflict_by_term(hint_index, log_term);
                self.send(Message {
                    r#type: MessageType::MsgAppResp as i32,
                    to: from,
                    index,
                    reject: true,
                    reject_hint: hint_index,
                    log_term: hint_term,
                    ..Default::default()
                });
            }
            Err(e) => {
                warn!(
                    self.cfg.logger,
                    "{:x} rejected a malformed MsgApp from {:x}: {}", self.id, from, e
                );
                return Err(e);
            }
        }
        Ok(())
    }

    fn handle_heartbeat(&mut self, m: Message) {
        // The leader sends min(match, committed); never move the commit index past the log.
        let commit = m.commit.min(self.raft_log.last_index());
        if commit > self.raft_log.committed {
            self.raft_log.commit_to(commit);
        }
        self.send(Message {
            r#type: MessageType::MsgHeartbeatResp as i32,
            to: m.from,
            context: m.context,
            ..Default::default()
        });
    }

    fn handle_snapshot(&mut self, mut m: Message) -> Result<()> {
        let Some(s) = m.snapshot.take() else {
            return Err(Error::InvalidMessage("MsgSnap without a snapshot"));
        };
        let (sindex, sterm) = (s.index(), s.term());
        if sindex == 0 || sterm == 0 {
            return Err(Error::InvalidMessage("MsgSnap with an empty snapshot"));
        }
        let cs = s.conf_state();
        if let Err(e) = confchange::validate_conf_state(&cs) {
            warn!(
                self.cfg.logger,
                "{:x} rejected snapshot [index: {}, term: {}] from {:x}: invalid ConfState: {}",
                self.id,
                sindex,
                sterm,
                m.from,
                e
            );
            return Err(Error::InvalidMessage("snapshot with an invalid ConfState"));
        }
        if self.restore(s) {
            info!(
                self.cfg.logger,
                "{:x} [commit: {}] restored snapshot [index: {}, term: {}]",
                self.id,
                self.raft_log.committed,
                sindex,
                sterm
            );
            let last = self.raft_log.last_index();
            self.send(Message {
                r#type: MessageType::MsgAppResp as i32,
                to: m.from,
                index: last,
                ..Default::default()
            });
        } else {
            info!(
                self.cfg.logger,
                "{:x} [commit: {}] ignored snapshot [index: {}, term: {}]",
                self.id,
                self.raft_log.committed,
                sindex,
                sterm
            );
            let committed = self.raft_log.committed;
            self.send(Message {
                r#type: MessageType::MsgAppResp as i32,
                to: m.from,
                index: committed,
                ..Default::default()
            });
        }
        Ok(())
    }

    /// Restores a snapshot; returns false if it was stale, not for this node, or only moved
    /// the commit index.
    fn restore(&mut self, s: Snapshot) -> bool {
        let (sindex, sterm) = (s.index(), s.term());
        if sindex <= self.raft_log.committed {
            return false;
        }
        if self.state != StateRole::Follower {
            // Only followers restore; a leader or candidate seeing a newer snapshot in its own
            // term is impossible with honest peers. Step down and let the group sort it out.
            warn!(
                self.cfg.logger,
                "{:x} attempted to restore snapshot as leader; should never happen", self.id
            );
            let term = self.term + 1;
            self.become_follower(term, NONE);
            return false;
        }
        let cs = s.conf_state();
        let found = cs.voters.contains(&self.id)
            || cs.learners.contains(&self.id)
            || cs.voters_outgoing.contains(&self.id);
        if !found {
            warn!(self.cfg.logger, "{:x} attempted to restore snapshot but it is not in the ConfState {:?}; should never happen", self.id, cs);
            return false;
        }
        if self.raft_log.match_term(sindex, sterm) {
            // The log already holds the snapshot's last entry: just move the commit index.
            let (lt, li) = self.raft_log.last_entry_id();
            info!(self.cfg.logger, "{:x} [commit: {}, lastindex: {}, lastterm: {}] fast-forwarded commit to snapshot [index: {}, term: {}]",
                self.id, self.raft_log.committed, li, lt, sindex, sterm);
            self.raft_log.commit_to(sindex);
            return false;
        }
        info!(
            self.cfg.logger,
            "log [{}] starts to restore snapshot [index: {}, term: {}]",
            self.raft_log,
            sindex,
            sterm
        );
        self.raft_log.restore(s);
        let mut trk = ProgressTracker::new(self.trk.max_inflight, self.trk.max_inflight_bytes);
        if let Err(e) = confchange::restore(&mut trk, self.raft_log.last_index(), &cs) {
            // validate_conf_state ran before; a failure here is a bug in the changer.
            error!(
                self.cfg.logger,
                "{:x} unable to restore config {:?}: {}", self.id, cs, e
            );
            return true;
        }
        self.trk.config = trk.config;
        self.trk.progress = trk.progress;
        let new_cs = self.switch_to_config_loaded();
        if !new_cs.equivalent(&cs) {
            error!(
                self.cfg.logger,
                "{:x} restored config {:?} differs from the snapshot's {:?}", self.id, new_cs, cs
            );
        }
        let (lt, li) = self.raft_log.last_entry_id();
        info!(self.cfg.logger, "{:x} [commit: {}, lastindex: {}, lastterm: {}] restored snapshot [index: {}, term: {}]",
            self.id, self.raft_log.committed, li, lt, sindex, sterm);
        true
    }

    // ---------------------------------------------------------------------------------------
    // Log, commit and apply.

    /// Appends entries to the leader's log with its term and the next indexes. Returns false
    /// when the uncommitted-size limit refuses them.
    pub(crate) fn append_entry(&mut self, mut es: Vec<Entry>) -> bool {
        let li = self.raft_log.last_index();
        for (i, e) in es.iter_mut().enumerate() {
            e.term = self.term;
            e.index = li + 1 + i as u64;
        }
        if !self.increase_uncommitted_size(&es) {
            warn!(self.cfg.logger, "{:x} appending new entries to log would exceed uncommitted entry size limit; dropping proposal", self.id);
            return false;
        }
        let li = self.raft_log.append(es);
        self.self_ack(li);
        true
    }

    /// The leader acknowledges its own entries once they are durable: the self-addressed
    /// response comes back through advance (or the append thread). In batched mode a newer
    /// acknowledgement replaces an older one still waiting in the queue: it says more.
    fn self_ack(&mut self, last_index: u64) {
        if self.cfg.append_mode == AppendMode::Batched {
            if let Some(m) = self.msgs_after_append.last_mut() {
                if m.to == self.id
                    && m.r#type == MessageType::MsgAppResp as i32
                    && m.term == self.term
                    && !m.reject
                {
                    m.index = m.index.max(last_index);
                    return;
                }
            }
        }
        self.send(Message {
            r#type: MessageType::MsgAppResp as i32,
            to: self.id,
            index: last_index,
            ..Default::default()
        });
    }

    /// A local proposal of one entry on the leader, without building a message (the common
    /// case on the hot path). Returns `None` when the node is not a leader that takes
    /// proposals directly, so the caller steps a `MsgProp` instead.
    pub(crate) fn propose_fast(&mut self, data: Bytes) -> std::result::Result<Result<()>, Bytes> {
        if self.state != StateRole::Leader {
            return Err(data);
        }
        if self.trk.progress.get(self.id).is_none() || self.lead_transferee != NONE {
            return Ok(Err(Error::ProposalDropped));
        }
        let payload = data.len() as u64;
        if self.uncommitted_size > 0
            && payload > 0
            && self.uncommitted_size.saturating_add(payload) > self.cfg.max_uncommitted_entries_size
        {
            warn!(self.cfg.logger, "{:x} appending new entries to log would exceed uncommitted entry size limit; dropping proposal", self.id);
            return Ok(Err(Error::ProposalDropped));
        }
        self.uncommitted_size = self.uncommitted_size.saturating_add(payload);
        let li = self.raft_log.append_one(Entry {
            term: self.term,
            index: self.raft_log.last_index() + 1,
            r#type: EntryType::EntryNormal as i32,
            data,
        });
        self.self_ack(li);
        self.bcast_append();
        Ok(Ok(()))
    }

    fn increase_uncommitted_size(&mut self, ents: &[Entry]) -> bool {
        let s = payloads_size(ents);
        // An empty payload (the leader's empty entry, a leave-joint) is never refused; the
        // first entry is always allowed so a single large proposal can make progress.
        if self.uncommitted_size > 0
            && s > 0
            && self.uncommitted_size.saturating_add(s) > self.cfg.max_uncommitted_entries_size
        {
            return false;
        }
        self.uncommitted_size = self.uncommitted_size.saturating_add(s);
        true
    }

    fn reduce_uncommitted_size(&mut self, s: u64) {
        self.uncommitted_size = self.uncommitted_size.saturating_sub(s);
    }

    /// The leader commits the quorum's matched index if it is of the current term (Figure 8).
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let mci = self.trk.committed();
        let last = self.raft_log.last_index();
        // A joint or majority config with no voters reports u64::MAX; clamp to the log.
        let mci = mci.min(last);
        self.raft_log.maybe_commit(mci, self.term)
    }

    fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log.term(self.raft_log.committed).unwrap_or(0) == self.term
    }

    fn release_pending_read_index_messages(&mut self) {
        if self.read_only.as_ref().is_none_or(|r| r.held.is_empty()) {
            return;
        }
        if !self.committed_entry_in_current_term() {
            error!(self.cfg.logger, "{:x} pending MsgReadIndex should be released only after first commit in current term", self.id);
            return;
        }
        let msgs = std::mem::take(&mut self.read_only_mut().held);
        for m in msgs {
            let _ = self.handle_read_index(m);
        }
    }

    fn handle_read_index(&mut self, m: Message) -> Result<()> {
        let committed = self.raft_log.committed;
        // A leader that is the only voter is a quorum by itself: once it has committed an
        // entry of its term (checked by the caller), its commit index is the group's. (A
        // removed or demoted leader whose configuration has one other voter is not.)
        if self.trk.is_singleton() && self.trk.config.voters.contains(self.id) {
            self.respond_to_read_index(m, committed);
            return Ok(());
        }
        match self.cfg.read_only_option {
            ReadOnlyOption::Safe => {
                let id = self.id;
                if !self.read_only_mut().add_request(committed, m, id) {
                    warn!(
                        self.cfg.logger,
                        "{:x} dropping read index request: too many pending reads", self.id
                    );
                    return Err(Error::ProposalDropped);
                }
                self.bcast_heartbeat();
            }
            ReadOnlyOption::LeaseBased if self.lease_valid() => {
                self.respond_to_read_index(m, committed)
            }
            ReadOnlyOption::LeaseBased => {
                // The lease may have run out: confirm this read with a heartbeat round, as in
                // safe mode.
                let id = self.id;
                if !self.read_only_mut().add_request(committed, m, id) {
                    return Err(Error::ProposalDropped);
                }
                self.bcast_heartbeat();
            }
        }
        Ok(())
    }

    /// Whether this leader may answer a read from its lease now. A follower that heard from
    /// the leader refuses votes for `election_tick` of its own ticks. If a quorum answered
    /// heartbeats sent at tick `t` or later, no other leader can have been elected before
    /// about `t + election_tick` (with equal tick rates; one tick is kept as a margin for the
    /// phase between clocks, another for the read being answered within the current tick).
    /// A transfer revokes the lease: its election ignores leases.
    fn lease_valid(&self) -> bool {
        if self.lease_revoked || self.lead_transferee != NONE {
            return false;
        }
        let Some(ro) = self.read_only.as_ref() else {
            return false;
        };
        let (me, now) = (self.id, self.ticks);
        let acked = |id: u64| {
            if id == me {
                Some(now)
            } else {
                ro.lease_acked(id)
            }
        };
        let since = self.trk.config.voters.committed_index(&acked);
        if since == u64::MAX {
            return false;
        }
        now.saturating_sub(since) + 2 <= self.cfg.election_tick as u64
    }

    fn read_only_mut(&mut self) -> &mut ReadOnly {
        self.read_only.get_or_insert_with(Default::default)
    }

    fn respond_to_read_index(&mut self, req: Message, index: u64) {
        if req.from == NONE || req.from == self.id {
            let ctx = req
                .entries
                .into_iter()
                .next()
                .map(|e| e.data)
                .unwrap_or_default();
            self.push_read_state(ReadState {
                index,
                request_ctx: ctx,
            });
            return;
        }
        self.send(Message {
            r#type: MessageType::MsgReadIndexResp as i32,
            to: req.from,
            index,
            entries: req.entries,
            ..Default::default()
        });
    }

    /// The application applied entries up to `index` (`size` encoded bytes, `payload` payload
    /// bytes): the apply window and the uncommitted budget open up.
    pub(crate) fn on_applied(&mut self, index: u64, size: u64, payload: u64) {
        self.applied_to(index, size);
        self.reduce_uncommitted_size(payload);
    }

    pub(crate) fn applied_to(&mut self, index: u64, size: u64) {
        let old = self.raft_log.applied;
        let new_applied = index.max(old);
        self.raft_log.applied_to(new_applied, size);
        if self.trk.config.auto_leave
            && new_applied >= self.pending_conf_index
            && self.state == StateRole::Leader
        {
            // Leave the joint configuration now that it is applied. An empty V2 entry has no
            // payload, so the size limit cannot refuse it; a transfer in progress can, and
            // then the next applied entry tries again.
            let m = Message {
                r#type: MessageType::MsgProp as i32,
                from: self.id,
                entries: vec![Entry {
                    r#type: EntryType::EntryConfChangeV2 as i32,
                    ..Default::default()
                }],
                ..Default::default()
            };
            match self.step(m) {
                Ok(()) => info!(
                    self.cfg.logger,
                    "initiating automatic transition out of joint configuration {}",
                    self.trk.config
                ),
                Err(e) => debug!(
                    self.cfg.logger,
                    "not initiating automatic transition out of joint configuration {}: {}",
                    self.trk.config,
                    e
                ),
            }
        }
    }

    fn applied_snap(&mut self, s: &Snapshot) {
        let index = s.index();
        self.raft_log.stable_snap_to(index);
        self.applied_to(index, 0);
    }

    // ---------------------------------------------------------------------------------------
    // Configuration.

    /// Applies a committed configuration change. An invalid change leaves the configuration as
    /// it was and returns the error; every node applies the same entries, so every node makes
    /// the same decision.
    pub(crate) fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        if let Some(bad) = cc
            .changes
            .iter()
            .find(|c| crate::raftpb::is_local_msg_target(c.node_id))
        {
            // The local storage threads' ids can never be members: messages to them would be
            // taken for storage work.
            let e = Error::ConfChange(format!("node id {:#x} is reserved", bad.node_id));
            warn!(
                self.cfg.logger,
                "{:x} refused to apply conf change {}: {}",
                self.id,
                crate::describe::describe_conf_change(cc),
                e
            );
            return Err(e);
        }
        let had_progress = !self.trk.progress.is_empty();
        if !had_progress {
            self.build_progress();
        }
        let res = {
            let changer = Changer {
                tracker: &self.trk,
                last_index: self.raft_log.last_index(),
            };
            if cc.leave_joint() {
                changer.leave_joint()
            } else if let Some(auto_leave) = cc.enter_joint() {
                changer.enter_joint(auto_leave, &cc.changes)
            } else {
                changer.simple(&cc.changes)
            }
        };
        match res {
            Ok((cfg, prs)) => {
                self.trk.config = cfg;
                self.trk.progress = prs;
                Ok(self.switch_to_config())
            }
            Err(e) => {
                if !had_progress {
                    self.trk.progress = ProgressMap::default();
                }
                warn!(
                    self.cfg.logger,
                    "{:x} refused to apply conf change {}: {}",
                    self.id,
                    crate::describe::describe_conf_change(cc),
                    e
                );
                Err(e)
            }
        }
    }

    /// Takes up a configuration already installed in the tracker at start-up or from a
    /// snapshot (no leader-side work to do).
    fn switch_to_config_loaded(&mut self) -> ConfState {
        info!(
            self.cfg.logger,
            "{:x} switched to configuration {}", self.id, self.trk.config
        );
        self.is_learner = self.trk.config.is_learner(self.id);
        if self.state != StateRole::Leader {
            self.trk.progress = ProgressMap::default();
        }
        self.trk.conf_state()
    }

    fn switch_to_config(&mut self) -> ConfState {
        info!(
            self.cfg.logger,
            "{:x} switched to configuration {}", self.id, self.trk.config
        );
        let cs = self.trk.conf_state();
        let present = self.trk.config.contains(self.id);
        self.is_learner = self.trk.config.is_learner(self.id);
        if self.state != StateRole::Leader {
            self.trk.progress = ProgressMap::default();
            return cs;
        }
        if !present || self.is_learner || !self.trk.config.voters.contains(self.id) {
            // This leader was removed or demoted. It keeps leading (serving reads of the
            // committed state and heartbeats) until a new leader takes over, unless told to
            // step down.
            if self.cfg.step_down_on_removal {
                let term = self.term;
                self.become_follower(term, NONE);
            }
            return cs;
        }
        if cs.voters.is_empty() {
            return cs;
        }
        if self.maybe_commit() {
            // More entries are committed under the new configuration: tell everyone.
            self.bcast_append();
        } else {
            // Probe new members at once rather than waiting for a heartbeat or a proposal.
            if self.cfg.append_mode == AppendMode::Batched {
                let ids: Vec<u64> = self.trk.progress.ids().collect();
                for id in ids {
                    if id != self.id {
                        self.send_append_if_nonempty(id);
                    }
                }
            } else {
                let ids: Vec<u64> = self.trk.progress.ids().collect();
                for id in ids {
                    if id != self.id {
                        self.maybe_send_append(id, false);
                    }
                }
            }
        }
        if self.lead_transferee != NONE && !self.trk.config.voters.contains(self.lead_transferee) {
            self.abort_leader_transfer();
        }
        cs
    }

    fn send_append_if_nonempty(&mut self, id: u64) {
        // In batched mode the flush sends at most one empty append; a probe of a new member
        // is exactly that.
        self.send_append(id);
    }
}
