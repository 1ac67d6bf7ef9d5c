//! Configuration of one Raft node. Defaults and validation follow etcd-io/raft's `Config`.

use crate::error::{Error, Result};

/// No node: the id of "no leader" and "no vote".
pub const NONE: u64 = 0;
/// The id of the local append thread in asynchronous storage mode (etcd's `LocalAppendThread`).
pub const LOCAL_APPEND_THREAD: u64 = u64::MAX;
/// The id of the local apply thread in asynchronous storage mode (etcd's `LocalApplyThread`).
pub const LOCAL_APPLY_THREAD: u64 = u64::MAX - 1;
/// "No limit": the one value that lifts a byte limit of [`Config`] (0 is a limit of zero,
/// or refused where that makes no sense).
pub const NO_LIMIT: u64 = u64::MAX;

/// How read-only requests (`read_index`) are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadOnlyOption {
    /// The leader confirms its leadership with a heartbeat round before releasing a read.
    #[default]
    Safe,
    /// The leader answers at once from its lease; needs `check_quorum` and bounded clock drift.
    LeaseBased,
}

/// When the leader builds append messages for its followers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppendMode {
    /// Merge everything queued for a follower into as few messages as the size and in-flight
    /// limits allow, once per Ready, and skip commit-only broadcasts that a later append or
    /// heartbeat carries anyway. Fewer, larger messages: the fastest mode.
    #[default]
    Batched,
    /// etcd-io/raft's wire behaviour: one append per proposal step and one more whenever the
    /// commit index moves. The etcd interaction scripts run in this mode.
    EtcdExact,
}

/// The configuration of a Raft node.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The id of the local node. Must not be 0 nor one of the local thread ids.
    pub id: u64,
    /// Ticks without hearing from a leader before a follower campaigns. The randomized timeout
    /// is drawn in `[election_tick, 2 * election_tick)`. Must be greater than `heartbeat_tick`.
    pub election_tick: usize,
    /// Ticks between the leader's heartbeats. Must be greater than 0.
    pub heartbeat_tick: usize,
    /// The last applied index, when restarting a node.
    pub applied: u64,
    /// Byte limit of the entries in one append message. Like every size limit here it lets
    /// one entry through whatever its size, so 0 means one entry per message (etcd's default).
    pub max_size_per_msg: u64,
    /// Byte limit of committed but not yet applied entries handed out across Readies. The
    /// default, 0, takes the value of `max_size_per_msg` (etcd's rule); [`Config::validated`]
    /// shows the value in force.
    pub max_committed_size_per_ready: u64,
    /// Limit on the payload bytes of the leader's uncommitted log tail (default
    /// [`NO_LIMIT`]; 0 is refused, since it would refuse every proposal).
    pub max_uncommitted_entries_size: u64,
    /// Limit on the append messages in flight to one follower. Must be greater than 0.
    pub max_inflight_msgs: usize,
    /// Limit on the payload bytes in flight to one follower (default [`NO_LIMIT`]; 0 is
    /// refused). The limit is hard:
    /// an append carries only the entries that fit in the room left, so a follower that never
    /// answers costs the leader at most this much payload (an entry larger than the whole
    /// window goes alone when nothing else is in flight).
    pub max_inflight_bytes: u64,
    /// A leader steps down when it has not heard from a quorum for an election timeout.
    pub check_quorum: bool,
    /// Two-phase elections: a pre-vote round before the term is bumped.
    pub pre_vote: bool,
    /// How `read_index` requests are confirmed.
    pub read_only_option: ReadOnlyOption,
    /// A follower drops proposals instead of forwarding them to the leader.
    pub disable_proposal_forwarding: bool,
    /// Skip the proposal-time checks on configuration changes.
    pub disable_conf_change_validation: bool,
    /// A leader removed from (or demoted in) the configuration steps down once it applies the
    /// change. Default: true. etcd's default is false: the removed leader keeps leading,
    /// refuses proposals, and its heartbeats keep the others from electing a leader that takes
    /// them, until an operator transfers leadership (docs/membership.md).
    pub step_down_on_removal: bool,
    /// A vote rejection carries the rejecter's commit index (and the term there), and a
    /// candidate holding that entry learns the commit index from it. Default: true. Without
    /// it (etcd's behaviour) a removal can leave the group with no electable node: the
    /// remaining voters, not knowing the change committed, still need the removed node's vote,
    /// which its longer log refuses (docs/membership.md). Changes only the `Commit` and
    /// `Log` fields of rejected MsgVoteResp / MsgPreVoteResp on the wire.
    pub vote_rejection_carries_commit: bool,
    /// A node answers an append or heartbeat of a lower term with its own term, so the old
    /// leader steps down, and rejects a vote request of a lower term at its own term, so the
    /// candidate catches up. Default: true. etcd answers appends only with `check_quorum` or
    /// `pre_vote` and otherwise counts on vote requests to carry the higher term to the old
    /// leader; after a membership change they may never reach it (the candidate's
    /// configuration may not list it), and the old leader would lead a term nobody else is in
    /// for ever. etcd ignores a lower-term vote request: a voter ahead in term that cannot win
    /// itself (a stale log or configuration) then keeps the only electable candidate from
    /// ever reaching its term.
    pub answer_stale_leader: bool,
    /// Quiescence: a leader whose followers hold and know every committed entry, with nothing
    /// pending (no proposal, read, transfer or configuration change), lets the group go quiet:
    /// it stops heartbeating and its followers stop their election timers. Any message (other
    /// than the quiescing exchange itself), proposal, read, configuration change,
    /// [`RawNode::wake`](crate::RawNode::wake) or
    /// [`RawNode::report_peer_down`](crate::RawNode::report_peer_down) wakes a node. A quiet
    /// group relies on the application's failure detector: a follower whose leader is
    /// reported down resumes its election timer (docs/quiescence.md). Default: false (etcd's
    /// behaviour: every idle group heartbeats for ever).
    pub quiesce: bool,
    /// Storage is written and applied through `MsgStorageAppend` / `MsgStorageApply` messages.
    pub async_storage_writes: bool,
    /// The application reads the entries to apply from its own storage: a Ready's
    /// `committed_entries` stays empty and `committed_range` names them (read them after
    /// persisting the Ready, rule 3 of the Ready contract). A Ready then clones no entry to be
    /// applied, and the application drops none. Synchronous storage writes only (a work item
    /// of the apply thread carries its entries). Default: false (etcd's Ready).
    pub apply_from_storage: bool,
    /// A Ready's `entries` are moved out of the node rather than cloned (their payloads are
    /// not reference-counted twice and dropped twice). Until `advance` the node reads them
    /// back from the storage when it needs them (a leader resending, entries committed in a
    /// later Ready), checking each against the term it keeps: write them to the storage
    /// before any other call into the node. A read that finds them not yet written waits:
    /// an append until `advance`, committed entries until a later Ready. Synchronous storage
    /// writes only (a `MsgStorageAppend` carries its own entries). Default: false (etcd's
    /// Ready, which shares its entries with the node).
    pub hand_over_entries: bool,
    /// When append messages are built; see [`AppendMode`].
    pub append_mode: AppendMode,
    /// Seed of the random election timeouts. The same seed and inputs give the same outputs.
    pub seed: u64,
    /// Where the node logs (short messages with key-values; every line carries `raft_id`, so
    /// one logger can serve many groups). Default: discard.
    pub logger: slog::Logger,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 0,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg: 0,
            max_committed_size_per_ready: 0,
            max_uncommitted_entries_size: NO_LIMIT,
            max_inflight_msgs: 256,
            max_inflight_bytes: NO_LIMIT,
            check_quorum: false,
            pre_vote: false,
            read_only_option: ReadOnlyOption::Safe,
            disable_proposal_forwarding: false,
            disable_conf_change_validation: false,
            step_down_on_removal: true,
            vote_rejection_carries_commit: true,
            answer_stale_leader: true,
            quiesce: false,
            async_storage_writes: false,
            apply_from_storage: false,
            hand_over_entries: false,
            append_mode: AppendMode::default(),
            seed: 0,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("id", &self.id)
            .field("election_tick", &self.election_tick)
            .field("heartbeat_tick", &self.heartbeat_tick)
            .field("applied", &self.applied)
            .field("max_size_per_msg", &self.max_size_per_msg)
            .field(
                "max_committed_size_per_ready",
                &self.max_committed_size_per_ready,
            )
            .field(
                "max_uncommitted_entries_size",
                &self.max_uncommitted_entries_size,
            )
            .field("max_inflight_msgs", &self.max_inflight_msgs)
            .field("max_inflight_bytes", &self.max_inflight_bytes)
            .field("check_quorum", &self.check_quorum)
            .field("pre_vote", &self.pre_vote)
            .field("read_only_option", &self.read_only_option)
            .field(
                "disable_proposal_forwarding",
                &self.disable_proposal_forwarding,
            )
            .field(
                "disable_conf_change_validation",
                &self.disable_conf_change_validation,
            )
            .field("step_down_on_removal", &self.step_down_on_removal)
            .field(
                "vote_rejection_carries_commit",
                &self.vote_rejection_carries_commit,
            )
            .field("answer_stale_leader", &self.answer_stale_leader)
            .field("quiesce", &self.quiesce)
            .field("async_storage_writes", &self.async_storage_writes)
            .field("apply_from_storage", &self.apply_from_storage)
            .field("hand_over_entries", &self.hand_over_entries)
            .field("append_mode", &self.append_mode)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration with etcd's defaults for node `id`.
    pub fn new(id: u64) -> Self {
        Config {
            id,
            ..Default::default()
        }
    }

    /// Checks the configuration. Returns the first rule broken. Changes nothing: see
    /// [`Config::validated`] for the configuration a node runs with.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: &str| Err(Error::ConfigInvalid(s.to_string()));
        if self.id == NONE {
            return bad("cannot use none as id");
        }
        if self.id == LOCAL_APPEND_THREAD || self.id == LOCAL_APPLY_THREAD {
            return bad("cannot use a local thread id as id");
        }
        if self.heartbeat_tick == 0 {
            return bad("heartbeat tick must be greater than 0");
        }
        if self.election_tick <= self.heartbeat_tick {
            return bad("election tick must be greater than heartbeat tick");
        }
        // The randomized timeout is drawn below 2 * election_tick; keep that in range.
        if self.election_tick > (u32::MAX / 2) as usize {
            return bad("election tick is too large");
        }
        if self.max_uncommitted_entries_size == 0 {
            return bad("max uncommitted entries size must be greater than 0 (NO_LIMIT for none)");
        }
        if self.max_inflight_msgs == 0 {
            return bad("max inflight messages must be greater than 0");
        }
        if self.max_inflight_bytes == 0 {
            return bad("max inflight bytes must be greater than 0 (NO_LIMIT for none)");
        }
        if self.max_inflight_bytes < self.max_size_per_msg {
            return bad("max inflight bytes must be >= max message size");
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return bad("CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased");
        }
        if self.apply_from_storage && self.async_storage_writes {
            return bad("apply from storage needs synchronous storage writes");
        }
        if self.hand_over_entries && self.async_storage_writes {
            return bad("handing over entries needs synchronous storage writes");
        }
        Ok(())
    }

    /// Checks the configuration and returns the one a node runs with: a copy with the
    /// derived value filled in (`max_committed_size_per_ready` 0 becomes `max_size_per_msg`).
    /// `RawNode::new` calls it; a config shared by many groups
    /// (`RawNode::with_shared_config`) must be the result of it.
    pub fn validated(&self) -> Result<Config> {
        self.validate()?;
        let mut c = self.clone();
        if c.max_committed_size_per_ready == 0 {
            c.max_committed_size_per_ready = c.max_size_per_msg;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_and_validated_fills_defaults() {
        assert!(Config::new(0).validate().is_err());
        assert!(Config::new(LOCAL_APPEND_THREAD).validate().is_err());
        let mut c = Config::new(1);
        c.election_tick = 1;
        assert!(c.validate().is_err());
        let mut c = Config::new(1);
        c.read_only_option = ReadOnlyOption::LeaseBased;
        assert!(c.validate().is_err());
        c.check_quorum = true;
        c.max_size_per_msg = 1024;
        let v = c.validated().expect("valid");
        assert_eq!(
            c.max_committed_size_per_ready, 0,
            "validate changes nothing"
        );
        assert_eq!(v.max_committed_size_per_ready, 1024);
        assert_eq!(v.max_uncommitted_entries_size, NO_LIMIT);
        assert_eq!(v.max_inflight_bytes, NO_LIMIT);
        let mut c = Config::new(1);
        c.max_size_per_msg = 1024;
        c.max_inflight_bytes = 10;
        assert!(c.validate().is_err());
        // 0 is not "no limit": it is refused where it would stop the node.
        let mut c = Config::new(1);
        c.max_inflight_bytes = 0;
        assert!(c.validate().is_err());
        let mut c = Config::new(1);
        c.max_uncommitted_entries_size = 0;
        assert!(c.validate().is_err());
    }
}
