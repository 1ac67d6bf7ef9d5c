//! `RawNode`: the public face of one Raft group member. See the crate docs for the Ready
//! contract.

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{Config, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use crate::error::{Error, Result};
use crate::raft::{Raft, ReadState, ReadyCursor, SoftState, StateRole};
use crate::raftpb::{
    ConfChangeI, ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot,
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
#[non_exhaustive]
pub enum SnapshotStatus {
    /// The follower received and applied the snapshot.
    Finish,
    /// Sending failed; the leader probes again later.
    Failure,
}

/// What the application must do next: persist, send, apply. See the crate docs for the
/// numbered rules.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
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
    /// persist first. Empty with
    /// [`Config::apply_from_storage`](crate::Config::apply_from_storage): read the entries
    /// `committed_range` names from the storage instead.
    pub committed_entries: Vec<Entry>,
    /// The first and last index of the committed entries to apply, if any (in either mode).
    pub committed_range: Option<(u64, u64)>,
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
            && self.committed_range.is_none()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
    }
}

/// Status without allocations.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
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
#[non_exhaustive]
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

/// One member of a Raft group. `Clone` copies the whole node (its storage too): a model
/// checker snapshots states with it.
///
/// A `RawNode` is a 16-byte handle: what an idle node's `tick` and `has_ready` read, and a box
/// holding the rest. A process that ticks a million idle groups streams 16 bytes per group
/// rather than a cache line out of every node (see `Hot`).
#[derive(Clone, Debug)]
pub struct RawNode<S: Storage> {
    hot: Hot,
    body: Box<Body<S>>,
}

/// The node itself: its Raft state machine and what it remembers between Readies.
#[derive(Clone, Debug)]
struct Body<S: Storage> {
    raft: Raft<S>,
    cursor: ReadyCursor,
}

/// What an idle group's `tick` and `has_ready` need, kept in the handle.
///
/// The fields mirror the body's state and promise no more than it holds: every input that may
/// change the node clears them first ([`RawNode::enter`]); `tick`, `advance` and `step_local`
/// set them from the body afterwards. A tick that would only count time (the node is quiet)
/// or count time and move the election timer without reaching the timeout (a follower,
/// `countdown` ticks before it) is counted here, and the count is handed to the body at the
/// node's next input, which applies what those ticks would have done.
///
/// Eight bytes: with the box pointer a handle is 16, so a pass over a million idle groups
/// streams 16 MB.
#[derive(Clone, Debug, Default)]
struct Hot {
    /// Ticks counted here; at `u32::MAX` the next tick goes to the body (which takes these).
    pending_ticks: u32,
    /// Ticks a non-quiet follower (or candidate) can take before its election timer fires
    /// (capped: a longer timeout just goes to the body more often).
    countdown: u16,
    quiet: bool,
    settled: bool,
}

impl<S: Storage> RawNode<S> {
    /// Creates a node from its config and storage. The config is validated here (a copy is
    /// checked and completed; the caller's is left as it was). The storage's state is checked
    /// too: an inconsistent state (a commit index outside the log, say) is an error, not a
    /// panic.
    pub fn new(config: &Config, store: S) -> Result<Self> {
        let valid = config.validated()?;
        let (id, applied) = (valid.id, valid.applied);
        Self::with_config(id, applied, Arc::new(valid), store)
    }

    /// Creates node `id` sharing a config with other groups: thousands of groups in one
    /// process can share one `Arc<Config>`, so each carries a pointer rather than a copy. The
    /// config must already have been validated ([`Config::validated`], which fills in derived
    /// limits); its own `id` and `applied` are ignored in favour of the arguments.
    pub fn with_shared_config(
        id: u64,
        applied: u64,
        config: Arc<Config>,
        store: S,
    ) -> Result<Self> {
        let mut check = (*config).clone();
        check.id = id;
        let check = check.validated()?;
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
        let cursor = raft.new_cursor();
        Ok(RawNode {
            hot: Hot::default(),
            body: Box::new(Body { raft, cursor }),
        })
    }

    /// Bootstraps a new group on empty storage: one ConfChange entry per peer, committed at
    /// term 1. Seeding the storage with a snapshot that holds the configuration is the
    /// preferred way; this exists for convenience.
    pub fn bootstrap(&mut self, peers: &[Peer]) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
        self.body.raft.bootstrap(&mut self.body.cursor, peers)
    }

    /// Advances the logical clock by one tick.
    #[inline]
    pub fn tick(&mut self) {
        let h = &mut self.hot;
        if h.pending_ticks < u32::MAX {
            if h.quiet {
                // A quiet node's tick only counts time: counted in the handle (see `Hot`).
                h.pending_ticks += 1;
                return;
            }
            if h.countdown > 0 {
                // A follower's tick short of its election timeout: counted too.
                h.countdown -= 1;
                h.pending_ticks += 1;
                return;
            }
        }
        self.enter();
        self.body.raft.tick();
        self.refresh();
    }

    /// Called first by every input that may change the node: hands the ticks counted in the
    /// handle to the body and clears the handle's mirrors (the input may wake, unsettle or
    /// reset the node).
    #[inline]
    fn enter(&mut self) {
        if self.hot.pending_ticks > 0 {
            self.body
                .raft
                .add_idle_ticks(u64::from(self.hot.pending_ticks));
            self.hot.pending_ticks = 0;
        }
        self.hot.countdown = 0;
        self.hot.quiet = false;
        self.hot.settled = false;
    }

    /// Copies the body's state into the handle.
    #[inline]
    fn refresh(&mut self) {
        debug_assert_eq!(self.hot.pending_ticks, 0);
        self.hot.quiet = self.body.raft.is_quiet();
        self.hot.settled = self.body.raft.is_settled();
        let countdown = self.body.raft.idle_tick_countdown();
        self.hot.countdown = u16::try_from(countdown).unwrap_or(u16::MAX);
    }

    /// Steps a local request (built here, so it needs no gate).
    fn step_request(&mut self, t: MessageType, from: u64, entries: Vec<Entry>) -> Result<()> {
        self.body.raft.step(Message {
            r#type: t as i32,
            from,
            entries,
            ..Default::default()
        })
    }

    /// Starts an election (or a pre-vote round) now.
    pub fn campaign(&mut self) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
        self.step_request(MessageType::MsgHup, self.body.raft.id(), Vec::new())
    }

    /// Proposes data to be appended to the log. `Error::ProposalDropped` says why a proposal
    /// was not taken (and so whether to retry).
    pub fn propose(&mut self, data: Bytes) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
        let data = match self.body.raft.propose_fast(data) {
            Ok(res) => return res,
            Err(data) => data,
        };
        let entry = Entry {
            data,
            ..Default::default()
        };
        self.step_request(MessageType::MsgProp, self.body.raft.id(), vec![entry])
    }

    /// Proposes several entries in one step (one append message per follower in etcd mode).
    pub fn propose_batch(&mut self, data: impl IntoIterator<Item = Bytes>) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
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
        self.step_request(MessageType::MsgProp, self.body.raft.id(), entries)
    }

    /// Proposes a configuration change (V1 or V2; an empty V2 leaves a joint configuration).
    pub fn propose_conf_change(&mut self, cc: impl Into<ConfChangeI>) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
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
        let entry = Entry {
            r#type: ty as i32,
            data: Bytes::from(data),
            ..Default::default()
        };
        self.step_request(MessageType::MsgProp, self.body.raft.id(), vec![entry])
    }

    /// Applies a committed configuration change and returns the new configuration. An
    /// invalid change is refused with an error and leaves the configuration unchanged (the
    /// same decision on every node).
    pub fn apply_conf_change(&mut self, cc: &ConfChangeI) -> Result<ConfState> {
        self.enter();
        self.body.raft.unsettle();
        // A new configuration may have members that never heard of the quiet round.
        self.body.raft.wake(false);
        self.body.raft.apply_conf_change(&cc.as_v2())
    }

    /// Steps a message received from the network. Every message passes the input gate first
    /// (`src/raft/validate.rs`): one that breaks a rule is refused with
    /// `Error::InvalidMessage(reason)` and changes nothing. Local message types are refused
    /// (`Error::StepLocalMsg`): storage responses go through `step_local`.
    pub fn step(&mut self, m: Message) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
        self.body.raft.step_remote(m)
    }

    /// Steps a response handed back by the local append or apply thread (asynchronous storage
    /// writes): `MsgStorageAppendResp` from `LOCAL_APPEND_THREAD`, `MsgStorageApplyResp` from
    /// `LOCAL_APPLY_THREAD`, and the node's own acknowledgements (`From == To == id`) that
    /// travelled in a `MsgStorageAppend`'s responses. Anything else is refused: these messages
    /// carry trust that network input must not have.
    pub fn step_local(&mut self, m: Message) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
        let id = self.body.raft.id();
        let ok = match m.msg_type() {
            Some(MessageType::MsgStorageAppendResp) => m.from == LOCAL_APPEND_THREAD && m.to == id,
            Some(MessageType::MsgStorageApplyResp) => m.from == LOCAL_APPLY_THREAD && m.to == id,
            Some(t) if t.is_after_persist() => m.from == id && m.to == id,
            _ => false,
        };
        if !ok {
            return Err(Error::AsyncStorageMisuse("not a local storage response"));
        }
        let r = self.body.raft.step(m);
        // The storage responses are what leaves an asynchronous node idle.
        self.body.raft.settle(&mut self.body.cursor);
        self.refresh();
        r
    }

    /// Whether `ready` would return something to do.
    #[inline]
    pub fn has_ready(&self) -> bool {
        if self.hot.settled {
            debug_assert!(!self.body.raft.has_ready(&self.body.cursor));
            return false;
        }
        self.body.raft.has_ready(&self.body.cursor)
    }

    /// Returns what the application must do now and marks it handed out. In sync mode, call
    /// `advance` once it is done. Calling `ready` again before `advance` is allowed: the
    /// second Ready holds only what is new, and the next `advance` acknowledges both (so
    /// persist and apply both before calling it).
    pub fn ready(&mut self) -> Ready {
        self.enter();
        self.body.raft.unsettle();
        self.body.raft.ready(&mut self.body.cursor)
    }

    /// Hands a handled Ready back, so that the next Readies fill its vectors (`entries`,
    /// `committed_entries`, `messages`, `persisted_messages`) instead of allocating new ones.
    /// Optional: a Ready that is dropped costs only those allocations. Call it once the Ready
    /// is handled (before or after `advance`); take what you keep out of it first (drain the
    /// messages you send, move the entries you persist): anything still in it is dropped.
    /// A vector over 16 KiB of capacity is freed rather than kept; a Ready without entries
    /// (to persist or apply) keeps nothing and lets earlier recycled vectors go, so idle
    /// groups hold no buffers; a quiet node keeps none.
    pub fn recycle(&mut self, rd: Ready) {
        self.body.raft.recycle(&mut self.body.cursor, rd);
    }

    /// Sync mode: tells the node the Readies handed out were persisted and applied. Steps the
    /// node's own acknowledgements (its vote, its appended entries) and marks entries stable
    /// and applied. With asynchronous storage writes this is an error: the storage responses
    /// do that job.
    pub fn advance(&mut self) -> Result<()> {
        self.enter();
        let r = self.body.raft.advance(&mut self.body.cursor);
        self.refresh();
        r
    }

    /// Status without allocation.
    pub fn basic_status(&self) -> BasicStatus {
        self.body.raft.basic_status()
    }

    /// Full status, with per-peer progress on a leader. Clones the progress; use
    /// [`RawNode::progress`] to visit it without copying.
    pub fn status(&self) -> Status {
        Status {
            basic: self.basic_status(),
            config: self.body.raft.tracker().config.clone(),
            progress: self.progress().map(|(id, pr)| (id, pr.clone())).collect(),
        }
    }

    /// The leader's view of every member's replication progress, in id order. Empty unless
    /// this node leads.
    pub fn progress(&self) -> impl Iterator<Item = (u64, &Progress)> {
        self.body.raft.progress()
    }

    /// Tells the leader that `id` could not be reached: its append stream falls back to probing.
    pub fn report_unreachable(&mut self, id: u64) {
        self.enter();
        self.body.raft.unsettle();
        let _ = self.step_request(MessageType::MsgUnreachable, id, Vec::new());
    }

    /// Reports the outcome of sending a snapshot to `id`.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        self.enter();
        self.body.raft.unsettle();
        let _ = self.body.raft.step(Message {
            r#type: MessageType::MsgSnapStatus as i32,
            from: id,
            reject: status == SnapshotStatus::Failure,
            ..Default::default()
        });
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: u64) {
        self.enter();
        self.body.raft.unsettle();
        let _ = self.step_request(MessageType::MsgTransferLeader, transferee, Vec::new());
    }

    /// Quiescence (`Config::quiesce`): wakes a quiet node. A follower tells its leader, which
    /// heartbeats again; a leader heartbeats again. The group goes quiet again at a later
    /// heartbeat if it is still idle. No-op on a node that is not quiet.
    pub fn wake(&mut self) {
        self.enter();
        self.body.raft.unsettle();
        self.body.raft.wake(true);
    }

    /// Quiescence: the application's failure detector reports peer `id` down (it has the
    /// information the core cannot have while nobody speaks). A quiet follower whose leader
    /// `id` is wakes and runs its election timer again, so the group elects a new leader; a
    /// quiet leader wakes and heartbeats again. Other reports change nothing. Safe to call on
    /// a false suspicion: it costs at most an election.
    pub fn report_peer_down(&mut self, id: u64) {
        self.enter();
        self.body.raft.unsettle();
        self.body.raft.report_peer_down(id);
    }

    /// Quiescence: whether this node is quiet (its tick only counts time).
    pub fn is_quiet(&self) -> bool {
        self.body.raft.is_quiet()
    }

    /// A follower forgets its leader (so it may grant pre-votes at once); no-op elsewhere.
    pub fn forget_leader(&mut self) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
        self.step_request(MessageType::MsgForgetLeader, 0, Vec::new())
    }

    /// Asks for a linearizable read: a `ReadState` carrying `ctx` comes out in a later Ready
    /// once it is safe to read at its index (serve the read once the applied index reaches
    /// it). A read can be lost (no leader, a leader change): give it a timeout and retry.
    /// `docs/reads.md` in the repository compares the safe and lease-based modes.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<()> {
        self.enter();
        self.body.raft.unsettle();
        let entry = Entry {
            data: ctx,
            ..Default::default()
        };
        self.step_request(MessageType::MsgReadIndex, self.body.raft.id(), vec![entry])
    }

    /// The storage.
    pub fn store(&self) -> &S {
        &self.body.raft.log().store
    }

    /// The storage, to persist a Ready's entries and hard state.
    pub fn store_mut(&mut self) -> &mut S {
        self.enter();
        self.body.raft.unsettle();
        self.body.raft.store_mut()
    }

    /// Pins the randomized election timeout until the next role change (tests that script
    /// who campaigns first; feature `test-hooks`).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn set_randomized_election_timeout(&mut self, ticks: usize) {
        self.enter();
        self.body.raft.unsettle();
        self.body.raft.set_randomized_election_timeout(ticks);
    }

    /// The node's id.
    pub fn id(&self) -> u64 {
        self.body.raft.id()
    }

    /// The node's role.
    pub fn role(&self) -> StateRole {
        self.body.raft.role()
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.body.raft.hard_state().term
    }

    /// The leader this node knows of, or `NONE` (0).
    pub fn leader_id(&self) -> u64 {
        self.body.raft.soft_state().leader_id
    }

    /// The commit index.
    pub fn commit(&self) -> u64 {
        self.body.raft.log().committed
    }

    /// The applied index: what the application acknowledged applying (by `advance`, or by a
    /// `MsgStorageApplyResp` with asynchronous storage writes).
    pub fn applied(&self) -> u64 {
        self.body.raft.log().applied
    }

    /// The index of the last entry in the log, including entries not yet persisted.
    pub fn last_index(&self) -> u64 {
        self.body.raft.log().last_index()
    }

    /// The term of the last entry in the log, including entries not yet persisted.
    pub fn last_term(&self) -> u64 {
        self.body.raft.log().last_term()
    }

    /// The index of the first entry still in the log (one past the storage's snapshot).
    pub fn first_index(&self) -> u64 {
        self.body.raft.log().first_index()
    }

    /// The term of the entry at `index`, from the unstable log or the storage. An index
    /// outside the log is `Error::Store(Compacted | Unavailable)`.
    pub fn term_at(&self, index: u64) -> Result<u64> {
        self.body.raft.log().term(index)
    }

    /// The configuration this node has applied.
    pub fn conf_state(&self) -> ConfState {
        self.body.raft.tracker().conf_state()
    }

    /// The node's progress state for `id` (leader only).
    pub fn progress_state(&self, id: u64) -> Option<ProgressState> {
        self.body.raft.progress_state(id)
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
        eprintln!(
            "size_of: RawNode {} Body {} Raft {} RaftLog {} Unstable {} ProgressTracker {} MemStorage {} ReadyCursor {}",
            size_of::<RawNode<MemStorage>>(),
            size_of::<Body<MemStorage>>(),
            size_of::<Raft<MemStorage>>(),
            size_of::<crate::log::RaftLog<MemStorage>>(),
            size_of::<crate::log_unstable::Unstable>(),
            size_of::<crate::tracker::ProgressTracker>(),
            size_of::<MemStorage>(),
            size_of::<crate::raft::ReadyCursor>(),
        );
        // The handle a pass of ticks over many quiet groups streams through.
        assert_eq!(size_of::<RawNode<MemStorage>>(), 16);
        assert!(
            size_of::<Body<MemStorage>>() <= 408,
            "Body {}",
            size_of::<Body<MemStorage>>()
        );
        assert!(
            size_of::<Raft<MemStorage>>() <= 376,
            "Raft {}",
            size_of::<Raft<MemStorage>>()
        );
        assert!(
            size_of::<crate::log::RaftLog<MemStorage>>() <= 168,
            "RaftLog {}",
            size_of::<crate::log::RaftLog<MemStorage>>()
        );
        assert!(
            size_of::<crate::raft::ReadyCursor>() <= 32,
            "ReadyCursor {}",
            size_of::<crate::raft::ReadyCursor>()
        );
        assert!(
            size_of::<crate::log_unstable::Unstable>() <= 32,
            "Unstable {}",
            size_of::<crate::log_unstable::Unstable>()
        );
        assert!(
            size_of::<crate::tracker::ProgressTracker>() <= 104,
            "ProgressTracker {}",
            size_of::<crate::tracker::ProgressTracker>()
        );
        assert!(
            size_of::<crate::tracker::Progress>() <= 96,
            "Progress {}",
            size_of::<crate::tracker::Progress>()
        );
        assert!(
            size_of::<MemStorage>() <= 88,
            "MemStorage {}",
            size_of::<MemStorage>()
        );
        // A payload is a `Bytes`: an entry is its header and a pointer, whatever its size.
        assert_eq!(size_of::<Entry>(), 56);
        // Neither size divides 16 KiB, the recycling limit (docs/mutants-equivalent.md).
        assert_eq!(size_of::<crate::raftpb::Message>(), 304);
    }
}
