//! What the leader knows about one follower's log, and how it sends to it.

use super::{Inflights, ProgressState};
use std::fmt;

/// The leader's view of one peer: how far its log is known to match, what to send next, and
/// the flow-control state that decides whether to send now.
///
/// Invariant: `matched < next_idx`. All arithmetic saturates, so indexes near `u64::MAX`
/// (which can only come from a malformed message) never panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to be in the peer's log.
    pub(crate) matched: u64,
    /// The index of the next entry to send.
    pub(crate) next_idx: u64,
    /// The highest commit index sent to the peer (it may not have arrived). Used to decide
    /// whether an empty append is needed just to tell the peer about a new commit index.
    pub(crate) sent_commit: u64,
    /// The replication state.
    pub(crate) state: ProgressState,
    /// In `Snapshot` state, the index of the snapshot being sent; 0 otherwise.
    pub(crate) pending_snapshot: u64,
    /// Whether the peer was heard from recently (reset by the leader's check-quorum).
    pub(crate) recent_active: bool,
    /// Whether appends to this peer are paused: in `Probe`, after a non-empty append until
    /// a response or heartbeat response comes back; in `Replicate`, while the window is full.
    pub(crate) msg_app_flow_paused: bool,
    /// The append messages in flight to the peer.
    pub(crate) inflights: Inflights,
    /// Whether the peer is a learner.
    pub(crate) is_learner: bool,
    /// Quiescence: the peer answered this round's `MsgQuiesce` and is quiet.
    pub(crate) quiet: bool,
    /// Quiescence: the round (the leader's tick, mod 2^16 - 1, plus 1) of the last
    /// `MsgQuiesce` sent to the peer; 0 for none. Only the answer carrying it counts. 16 bits
    /// keep `Progress` at 96 bytes; an old answer mistaken for a current one (65,535 ticks
    /// apart) could only let the leader go quiet before that peer, which then wakes the group.
    pub(crate) quiesce_round: u16,
}

impl Progress {
    /// The highest index known to be in the peer's log.
    pub fn matched(&self) -> u64 {
        self.matched
    }

    /// The index of the next entry to send.
    pub fn next_idx(&self) -> u64 {
        self.next_idx
    }

    /// The highest commit index sent to the peer.
    pub fn sent_commit(&self) -> u64 {
        self.sent_commit
    }

    /// The replication state.
    pub fn state(&self) -> ProgressState {
        self.state
    }

    /// In `Snapshot` state, the index of the snapshot being sent; 0 otherwise.
    pub fn pending_snapshot(&self) -> u64 {
        self.pending_snapshot
    }

    /// Whether the peer was heard from recently.
    pub fn recent_active(&self) -> bool {
        self.recent_active
    }

    /// Whether appends to this peer are paused.
    pub fn msg_app_flow_paused(&self) -> bool {
        self.msg_app_flow_paused
    }

    /// The append messages in flight to the peer.
    pub fn inflights(&self) -> &Inflights {
        &self.inflights
    }

    /// Whether the peer is a learner.
    pub fn is_learner(&self) -> bool {
        self.is_learner
    }

    /// A probing progress that will send from `next_idx`, with an inflight window of
    /// `max_inflight` messages and `max_inflight_bytes` bytes (0: no byte limit).
    pub(crate) fn new(next_idx: u64, max_inflight: usize, max_inflight_bytes: u64) -> Self {
        Progress {
            matched: 0,
            next_idx,
            sent_commit: 0,
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: false,
            msg_app_flow_paused: false,
            inflights: Inflights::new(max_inflight, max_inflight_bytes),
            is_learner: false,
            quiet: false,
            quiesce_round: 0,
        }
    }

    /// Moves to state `s`, clearing the pause flag, the pending snapshot and the window.
    pub(crate) fn reset_state(&mut self, s: ProgressState) {
        self.msg_app_flow_paused = false;
        self.pending_snapshot = 0;
        self.state = s;
        self.inflights.reset();
    }

    /// Goes back to probing. Coming from `Snapshot`, probing starts after the snapshot that
    /// was sent (if it is ahead of `matched`); otherwise right after `matched`.
    pub(crate) fn become_probe(&mut self) {
        let after_match = self.matched.saturating_add(1);
        if self.state == ProgressState::Snapshot {
            let snap = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_idx = after_match.max(snap.saturating_add(1));
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_idx = after_match;
        }
        self.sent_commit = self.sent_commit.min(self.next_idx.saturating_sub(1));
    }

    /// Starts pipelining from right after `matched`.
    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched.saturating_add(1);
    }

    /// Starts sending the snapshot at `snap_idx`.
    pub(crate) fn become_snapshot(&mut self, snap_idx: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snap_idx;
        self.next_idx = snap_idx.saturating_add(1);
        self.sent_commit = snap_idx;
    }

    /// Accounts for an append of `entries` entries (`bytes` of payload) just sent. In
    /// `Replicate` it advances `next_idx` optimistically and records the message in the
    /// window, pausing when the window is full; in `Probe` a non-empty append pauses the flow
    /// until the peer answers.
    pub(crate) fn sent_entries(&mut self, entries: usize, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if entries > 0 {
                    let n = u64::try_from(entries).unwrap_or(u64::MAX);
                    self.next_idx = self.next_idx.saturating_add(n);
                    self.inflights.add(self.next_idx.saturating_sub(1), bytes);
                }
                self.msg_app_flow_paused = self.inflights.full();
            }
            ProgressState::Probe => {
                if entries > 0 {
                    self.msg_app_flow_paused = true;
                }
            }
            ProgressState::Snapshot => {}
        }
    }

    /// Whether an (empty) append carrying commit index `index` would tell the peer something
    /// new: `index` is past what was sent, and the peer has entries up to a higher commit.
    pub fn can_bump_commit(&self, index: u64) -> bool {
        index > self.sent_commit && self.sent_commit < self.next_idx.saturating_sub(1)
    }

    /// Records that commit index `commit` was sent to the peer (etcd's `SentCommit`; named so
    /// as not to clash with the field).
    #[cfg(test)]
    pub(crate) fn set_sent_commit(&mut self, commit: u64) {
        self.sent_commit = commit;
    }

    /// Handles an acknowledgement of index `n`: returns false if it is stale (not past
    /// `matched`); otherwise raises `matched` (and `next_idx` if needed) and unpauses.
    pub(crate) fn maybe_update(&mut self, n: u64) -> bool {
        if self.matched >= n {
            return false;
        }
        self.matched = n;
        self.next_idx = self.next_idx.max(n.saturating_add(1));
        self.msg_app_flow_paused = false;
        true
    }

    /// Handles a rejection of the append at index `rejected`, with the peer's hint that its
    /// log may match up to `match_hint`. Returns false if the rejection is stale. Otherwise
    /// moves `next_idx` back: to `matched + 1` when replicating, and to the hint (but never
    /// at or below `matched`) when probing.
    pub(crate) fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // A rejection of an index already matched is from an older exchange.
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched.saturating_add(1);
            self.sent_commit = self.sent_commit.min(self.next_idx.saturating_sub(1));
            return true;
        }
        // Probes go one at a time, so only a rejection of the last probe is current. A
        // rejection at or below the matched index is never current either: an honest follower
        // does not disown an entry it acknowledged, so it is an older answer (or a follower
        // whose log was corrupted). Answering it with another probe would start a ping-pong
        // that every heartbeat response widens by one more message.
        if self.next_idx.saturating_sub(1) != rejected || rejected <= self.matched {
            return false;
        }
        self.next_idx = rejected
            .min(match_hint.saturating_add(1))
            .max(self.matched.saturating_add(1));
        self.sent_commit = self.sent_commit.min(self.next_idx.saturating_sub(1));
        self.msg_app_flow_paused = false;
        true
    }

    /// Whether sending appends to the peer is paused for now. A peer waiting for a snapshot
    /// is always paused.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe | ProgressState::Replicate => self.msg_app_flow_paused,
            ProgressState::Snapshot => true,
        }
    }
}

/// `StateReplicate match=11 next=15 learner paused pendingSnap=12 inactive inflight=3[full]`,
/// each suffix only when it applies.
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} match={} next={}",
            self.state, self.matched, self.next_idx
        )?;
        if self.is_learner {
            f.write_str(" learner")?;
        }
        if self.is_paused() {
            f.write_str(" paused")?;
        }
        if self.pending_snapshot > 0 {
            write!(f, " pendingSnap={}", self.pending_snapshot)?;
        }
        if !self.recent_active {
            f.write_str(" inactive")?;
        }
        let n = self.inflights.count();
        if n > 0 {
            write!(f, " inflight={n}")?;
            if self.inflights.full() {
                f.write_str("[full]")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn probe_ignores_rejection_of_a_matched_index() {
        let mut p = Progress::new(7, 16, 0);
        p.matched = 6;
        p.msg_app_flow_paused = true;
        // next - 1 == 6 == matched: the rejection disowns an acknowledged entry.
        assert!(!p.maybe_decr_to(6, 3));
        assert_eq!(p.next_idx, 7);
        assert!(p.msg_app_flow_paused, "no new probe for it");
    }
    use super::*;

    fn pr(matched: u64, next: u64) -> Progress {
        let mut p = Progress::new(next, 256, 0);
        p.matched = matched;
        p.recent_active = true;
        p
    }

    #[test]
    fn become_probe() {
        let mut p = pr(1, 5);
        p.become_replicate();
        p.become_probe();
        assert_eq!((p.state, p.next_idx), (ProgressState::Probe, 2));

        // From a snapshot, probing resumes after the snapshot...
        let mut p = pr(1, 5);
        p.become_snapshot(10);
        p.become_probe();
        assert_eq!(p.next_idx, 11);
        assert_eq!(p.pending_snapshot, 0);
        // ... or after matched, whichever is later.
        let mut p = pr(1, 5);
        p.become_snapshot(10);
        p.matched = 15;
        p.become_probe();
        assert_eq!(p.next_idx, 16);
    }

    #[test]
    fn become_replicate_and_snapshot() {
        let mut p = pr(1, 5);
        p.become_replicate();
        assert_eq!((p.state, p.next_idx), (ProgressState::Replicate, 2));
        p.become_snapshot(10);
        assert_eq!(
            (p.state, p.next_idx, p.pending_snapshot, p.sent_commit),
            (ProgressState::Snapshot, 11, 10, 10)
        );
        assert!(p.is_paused());
    }

    #[test]
    fn sent_entries_in_replicate_fills_the_window() {
        let mut p = Progress::new(1, 2, 0);
        p.become_replicate();
        p.sent_entries(3, 30);
        assert_eq!(p.next_idx, 4);
        assert!(!p.is_paused());
        p.sent_entries(0, 0);
        assert_eq!(p.inflights.count(), 1);
        p.sent_entries(2, 20);
        assert_eq!(p.next_idx, 6);
        assert!(p.is_paused());
        assert!(p.maybe_update(3));
        p.inflights.free_le(3);
        assert!(!p.is_paused());
    }

    #[test]
    fn sent_entries_in_probe_pauses() {
        let mut p = pr(0, 1);
        p.sent_entries(0, 0);
        assert!(!p.is_paused());
        p.sent_entries(1, 1);
        assert!(p.is_paused());
        assert_eq!(p.next_idx, 1);
    }

    #[test]
    fn maybe_update() {
        let mut p = pr(5, 6);
        p.msg_app_flow_paused = true;
        assert!(!p.maybe_update(5));
        assert!(p.is_paused());
        assert!(p.maybe_update(7));
        assert_eq!((p.matched, p.next_idx), (7, 8));
        assert!(!p.is_paused());
        // next never goes back.
        let mut p = pr(5, 20);
        assert!(p.maybe_update(6));
        assert_eq!(p.next_idx, 20);
    }

    #[test]
    fn maybe_decr_to_replicate() {
        let mut p = pr(5, 10);
        p.become_replicate();
        p.next_idx = 10;
        p.sent_commit = 8;
        assert!(!p.maybe_decr_to(5, 5));
        assert!(p.maybe_decr_to(9, 9));
        assert_eq!((p.next_idx, p.sent_commit), (6, 5));
    }

    #[test]
    fn maybe_decr_to_probe() {
        let mut p = pr(0, 10);
        p.msg_app_flow_paused = true;
        // Not the last probe: stale.
        assert!(!p.maybe_decr_to(5, 5));
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next_idx, 4);
        assert!(!p.is_paused());
        // The hint never moves next at or below matched.
        let mut p = pr(3, 10);
        assert!(p.maybe_decr_to(9, 0));
        assert_eq!(p.next_idx, 4);
        // Nor past the rejected index.
        let mut p = pr(0, 10);
        assert!(p.maybe_decr_to(9, 100));
        assert_eq!(p.next_idx, 9);
    }

    #[test]
    fn can_bump_commit() {
        let mut p = pr(0, 10);
        p.set_sent_commit(5);
        assert!(p.can_bump_commit(6));
        assert!(!p.can_bump_commit(5));
        p.set_sent_commit(9);
        assert!(!p.can_bump_commit(12));
    }

    #[test]
    fn extreme_indexes_do_not_panic() {
        let mut p = pr(u64::MAX - 1, u64::MAX);
        assert!(p.maybe_update(u64::MAX));
        assert_eq!(p.next_idx, u64::MAX);
        p.become_replicate();
        p.sent_entries(usize::MAX, u64::MAX);
        p.become_snapshot(u64::MAX);
        p.become_probe();
        assert!(!p.maybe_decr_to(u64::MAX, u64::MAX));
        let mut q = Progress::new(0, 1, 0);
        q.become_probe();
        // Index 0 always matches: a rejection of it is never current.
        assert!(!q.maybe_decr_to(0, u64::MAX));
        assert!(!q.can_bump_commit(u64::MAX));
    }

    #[test]
    fn stays_small() {
        assert!(std::mem::size_of::<Progress>() <= 96);
    }

    #[test]
    fn display() {
        let mut p = Progress::new(15, 3, 0);
        p.matched = 11;
        p.become_replicate();
        p.next_idx = 12;
        p.recent_active = true;
        for _ in 0..3 {
            p.sent_entries(1, 1);
        }
        assert_eq!(
            p.to_string(),
            "StateReplicate match=11 next=15 paused inflight=3[full]"
        );
        let mut q = Progress::new(11, 3, 0);
        q.is_learner = true;
        q.become_snapshot(12);
        q.next_idx = 13;
        assert_eq!(
            q.to_string(),
            "StateSnapshot match=0 next=13 learner paused pendingSnap=12 inactive"
        );
    }
}
