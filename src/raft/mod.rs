//! The Raft state machine: roles, terms, votes, replication and commitment. No IO: inputs come
//! in through `step` and `tick`, outputs go out in `msgs` / `msgs_after_append` and the log.
//!
//! The state is private to this module; `RawNode` reaches it through the narrow API of
//! `ready.rs` (building and acknowledging Readies, status) and a few entry points (`step`,
//! `tick`, proposals). Network input passes the gate in `validate.rs` first; what is left in
//! the other files are the protocol's own rules, which drop stale or useless messages with a
//! log line.
//!
//! Files: `election` (roles, ticks, campaigns), `step` (term rules, votes, the leader's
//! dispatch), `replication` (appends, heartbeats, commitment), `follower`, `read` (ReadIndex
//! and leases), `transfer`, `conf` (configuration changes, the apply cursor), `ready`,
//! `validate`.

use std::sync::Arc;

use bytes::Bytes;
use slog::info;

use crate::confchange::{self, Changer};
use crate::config::{AppendMode, Config, ReadOnlyOption, NONE};
use crate::error::{DropReason, Error, Result, StorageError};
use crate::lazy_vec::LazyVec;
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

mod conf;
mod election;
mod follower;
mod quiesce;
mod read;
mod ready;
mod replication;
mod step;
mod transfer;
mod validate;

pub(crate) use ready::ReadyCursor;
pub(crate) use validate::append_shape;
pub use validate::{Reason, MAX_UNCONFIRMED_TERM_JUMP};

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
pub(super) enum CampaignType {
    PreElection,
    Election,
    Transfer,
}

/// The context of a MsgVote sent because of a leader transfer: it forces past leases.
pub(super) const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// The state an idle node's `tick()` and `has_ready()` touch, together (32 bytes). A quiet
/// node's tick does not reach it: `RawNode` counts those ticks in its handle.
#[derive(Clone, Debug)]
struct Clock {
    /// Ticks since the node started (lease reads measure time with it).
    ticks: u64,
    /// u32: `Config::validate` keeps `2 * election_tick` below `u32::MAX`.
    election_elapsed: u32,
    randomized_election_timeout: u32,
    heartbeat_elapsed: u32,
    /// Quiescence: the group is idle and this node's tick only counts time (quiesce.rs).
    quiet: bool,
    /// Nothing is pending for a Ready and nothing changed since that was found (set by
    /// `advance`, cleared by every input but a tick that only counted time): `has_ready`
    /// answers false without looking further.
    settled: bool,
    /// The node's role: every tick reads it, so it lives beside the timers.
    state: StateRole,
    /// Whether this node is a learner (spare bytes here: a bool elsewhere pads to 8).
    is_learner: bool,
    /// Draws `randomized_election_timeout` (8 spare bytes here).
    rng: Rng,
}

/// The state only a leader keeps, in one box: most nodes of a process that runs many groups
/// follow, and a follower pays 8 bytes for all of it. Built by `become_leader`, dropped by
/// `reset` (every role change).
#[derive(Clone, Debug, Default)]
struct LeaderState {
    /// The peer a transfer of leadership is going to (`NONE`: no transfer).
    lead_transferee: u64,
    /// The index of the last conf change appended; another may be proposed once it is applied.
    pending_conf_index: u64,
    /// The payload bytes of entries appended in this term and not yet committed.
    uncommitted_size: u64,
    /// Set once this leader sent MsgTimeoutNow in its term: the transferee may win an election
    /// that ignores leases, so lease reads stop.
    lease_revoked: bool,
    /// An append waited for handed-over entries to be written back to the storage
    /// (`Config::hand_over_entries`): at `advance` every follower is owed one.
    resend_after_advance: bool,
    /// Batched mode: every follower is owed an append at the next flush...
    dirty_all: bool,
    /// ...or these are.
    dirty: Vec<u64>,
    /// Reads waiting for a heartbeat quorum or for the first commit of the term (created on
    /// the first read).
    read_only: Option<Box<ReadOnly>>,
}

/// Raft state of one node.
#[derive(Clone, Debug)]
pub(crate) struct Raft<S: Storage> {
    id: u64,
    term: u64,
    vote: u64,
    raft_log: RaftLog<S>,
    trk: ProgressTracker,
    lead: u64,
    /// What only a leader keeps (`None` on every other node).
    ls: Option<Box<LeaderState>>,
    /// What a tick reaching the node reads and writes, together (an idle node's ticks stop
    /// at the `RawNode` handle).
    clk: Clock,
    /// The highest term this node heard from a member of its configuration (or loaded from
    /// storage). A non-member may move the term at most `MAX_UNCONFIRMED_TERM_JUMP` above it.
    confirmed_term: u64,
    /// What the Readies handed out leave for `advance` (sync mode) and the vectors handed
    /// back by `RawNode::recycle`; `None` while the node is idle (ready.rs).
    work: Option<Box<ready::Work>>,
    /// Messages that may be sent at once.
    msgs: LazyVec<Message>,
    cfg: Arc<Config>,
}

/// The payload bytes of entries (what the uncommitted and in-flight byte limits count).
pub(super) fn payloads_size(ents: &[Entry]) -> u64 {
    ents.iter().map(|e| e.data.len() as u64).sum()
}

/// The encoded bytes of entries (what the message and apply size limits count), for a slice
/// of the log: consecutive indexes, terms that never go down.
///
/// This runs for every committed entry. In such a slice every entry's index and term take as
/// many varint bytes as the first's and the last's when those two agree (varint length grows
/// with the value), so those parts are counted once for the slice, and only the type and the
/// payload per entry. Otherwise (a page that crosses 2^7k) each entry is counted in full.
pub(super) fn ents_size(ents: &[Entry]) -> u64 {
    use crate::storage::{entry_size, varint_len};
    let (Some(first), Some(last)) = (ents.first(), ents.last()) else {
        return 0;
    };
    debug_assert!(first.index <= last.index && first.term <= last.term);
    let (ti, tt) = (varint_len(first.index), varint_len(first.term));
    if ti != varint_len(last.index) || tt != varint_len(last.term) {
        return ents.iter().map(entry_size).sum();
    }
    let fixed = ents.len() as u64 * (3 + ti + tt);
    let per_entry: u64 = ents
        .iter()
        .map(|e| {
            let len = e.data.len() as u64;
            let data = if len == 0 {
                0
            } else {
                1 + varint_len(len) + len
            };
            varint_len(e.r#type as i64 as u64) + data
        })
        .sum();
    let n = fixed + per_entry;
    debug_assert_eq!(n, ents.iter().map(entry_size).sum::<u64>());
    n
}

impl<S: Storage> Raft<S> {
    /// The leader's state, created on first use. Only a leader writes it.
    fn leader_mut(&mut self) -> &mut LeaderState {
        debug_assert_eq!(
            self.clk.state,
            StateRole::Leader,
            "leader state written off a leader"
        );
        self.ls.get_or_insert_with(Default::default)
    }

    /// Records this node's vote in its term. A vote only goes from none to a candidate within
    /// a term (a new term clears it): the Ready cursor relies on it (ready.rs).
    fn vote_for(&mut self, id: u64) {
        debug_assert!(
            self.vote == NONE || self.vote == id,
            "vote changed within term {}: {} -> {id}",
            self.term,
            self.vote
        );
        self.vote = id;
    }

    /// The leader's pending reads, if it has any.
    fn read_only(&self) -> Option<&ReadOnly> {
        self.ls.as_ref().and_then(|l| l.read_only.as_deref())
    }

    /// The peer leadership is being transferred to, or `NONE`.
    fn lead_transferee(&self) -> u64 {
        self.ls.as_ref().map_or(NONE, |l| l.lead_transferee)
    }

    /// The index of the last conf change this leader appended (0 off a leader).
    fn pending_conf_index(&self) -> u64 {
        self.ls.as_ref().map_or(0, |l| l.pending_conf_index)
    }

    /// Builds a node from a validated config and its storage.
    /// Builds node `id` from a validated config (whose own `id` and `applied` are not read:
    /// the config may be shared by many groups) and its storage.
    pub(crate) fn new(id: u64, applied: u64, cfg: Arc<Config>, store: S) -> Result<Self> {
        let rs = store.initial_state()?;
        let mut raft_log = RaftLog::new(store, cfg.max_committed_size_per_ready)?;
        raft_log.handed_over = cfg.hand_over_entries;
        let mut r = Raft {
            id,
            term: 0,
            vote: NONE,
            raft_log,
            trk: ProgressTracker::new(cfg.max_inflight_msgs, cfg.max_inflight_bytes),
            lead: NONE,
            ls: None,
            clk: Clock {
                randomized_election_timeout: cfg.election_tick as u32,
                ticks: 0,
                election_elapsed: 0,
                heartbeat_elapsed: 0,
                quiet: false,
                settled: false,
                state: StateRole::Follower,
                is_learner: false,
                rng: Rng::new(cfg.seed, id),
            },
            confirmed_term: 0,
            work: None,
            msgs: LazyVec::default(),
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
        info!(r.cfg.logger, "created node";
            "raft_id" => r.id, "peers" => ?r.trk.voter_nodes(), "term" => r.term,
            "commit" => r.raft_log.committed, "applied" => r.raft_log.applied,
            "last_index" => r.raft_log.last_index(), "last_term" => r.raft_log.last_term());
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
        self.confirmed_term = hs.term;
        self.vote = hs.vote;
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Small accessors.

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.lead,
            raft_state: self.clk.state,
        }
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.raft_log.committed,
        }
    }

    fn election_timeout(&self) -> u32 {
        // Validated below u32::MAX / 2.
        self.cfg.election_tick as u32
    }

    /// Whether `id` is a member of the configuration (voter in either half, learner, or a
    /// learner-to-be).
    pub(super) fn is_member(&self, id: u64) -> bool {
        self.trk.config.contains(id)
    }

    /// A node may campaign if it is a voter and holds no snapshot that is not yet durable.
    pub(super) fn promotable(&self) -> bool {
        self.trk.config.voters.contains(self.id)
            && !self.clk.is_learner
            && !self.raft_log.has_pending_snapshot()
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn set_randomized_election_timeout(&mut self, t: usize) {
        self.clk.randomized_election_timeout = u32::try_from(t).unwrap_or(u32::MAX);
    }

    fn reset_randomized_election_timeout(&mut self) {
        let et = self.election_timeout();
        self.clk.randomized_election_timeout =
            self.clk.rng.in_range(et as usize, et as usize) as u32;
    }

    fn past_election_timeout(&self) -> bool {
        self.clk.election_elapsed >= self.clk.randomized_election_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::entry_size;

    fn ent(index: u64, term: u64, len: usize) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from(vec![7u8; len]),
            ..Default::default()
        }
    }

    /// Per-peer progress exists only on a leader: a follower started from storage, or
    /// restored from a snapshot (which installs a configuration with fresh progress), keeps
    /// none (an idle follower would otherwise carry a `Progress` per member).
    #[test]
    fn a_follower_keeps_no_progress_after_start_or_a_snapshot() {
        use crate::raftpb::{ConfState, Snapshot, SnapshotMetadata};
        use crate::storage::MemStorage;
        let cs = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let cfg = Arc::new(Config::new(1).validated().unwrap());
        let store = MemStorage::new_with_conf_state(cs.clone());
        let mut r = Raft::new(1, 0, cfg, store).unwrap();
        assert!(r.trk.progress.is_empty());
        let snap = Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(cs),
                index: 10,
                term: 1,
            }),
        };
        assert!(r.restore(snap));
        assert_eq!(r.raft_log.committed, 10);
        assert!(r.trk.progress.is_empty());
    }

    /// A follower that goes quiet drops its empty buffers once its Ready is handled: a
    /// quiet group keeps no heap it does not need.
    #[test]
    fn a_quiet_follower_releases_its_buffers() {
        use crate::raftpb::ConfState;
        use crate::storage::MemStorage;
        let cs = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let mut cfg = Config::new(2);
        cfg.quiesce = true;
        let cfg = Arc::new(cfg.validated().unwrap());
        let mut r = Raft::new(2, 0, cfg, MemStorage::new_with_conf_state(cs)).unwrap();
        let mut cur = r.new_cursor();
        let msg = |t: MessageType| Message {
            r#type: t as i32,
            from: 1,
            to: 2,
            term: 1,
            ..Default::default()
        };
        r.step(msg(MessageType::MsgHeartbeat)).unwrap();
        let _ = r.ready(&mut cur);
        r.advance(&mut cur).unwrap();
        assert!(
            r.msgs.is_allocated(),
            "answering a heartbeat used the buffer"
        );
        assert!(!r.is_quiet());
        let mut q = msg(MessageType::MsgQuiesce);
        q.index = 1;
        r.step(q).unwrap();
        assert!(r.is_quiet());
        let rd = r.ready(&mut cur);
        assert!(rd
            .messages
            .iter()
            .any(|m| m.msg_type() == Some(MessageType::MsgQuiesceResp)));
        r.advance(&mut cur).unwrap();
        assert!(!r.msgs.is_allocated());
        assert!(r.work.is_none());
        assert!(!r.raft_log.unstable.entries.is_allocated());
    }

    /// The slice shortcut (index and term lengths counted once) agrees with counting every
    /// entry, whether or not the slice crosses a varint length boundary in its indexes, its
    /// terms, or both.
    #[test]
    fn ents_size_counts_every_entry_across_varint_boundaries() {
        let cases: Vec<Vec<Entry>> = vec![
            vec![],
            vec![ent(5, 1, 0)],
            // Neither crosses.
            vec![ent(5, 1, 3), ent(6, 1, 0), ent(7, 2, 200)],
            // Indexes cross 2^7, terms do not.
            vec![ent(127, 3, 1), ent(128, 3, 1)],
            // Terms cross 2^7, indexes do not.
            vec![ent(200, 127, 1), ent(201, 128, 1)],
            // Both cross (2^14 for indexes).
            vec![ent(16_383, 100, 0), ent(16_384, 130, 5)],
        ];
        for ents in cases {
            let want: u64 = ents.iter().map(entry_size).sum();
            assert_eq!(ents_size(&ents), want, "{ents:?}");
        }
    }
}
