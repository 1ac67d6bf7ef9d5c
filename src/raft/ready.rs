//! The narrow API `RawNode` uses: building a Ready, taking its acknowledgements back, status
//! and read-only views. Nothing outside this module reads `Raft`'s fields.

use slog::warn;

use super::*;
use crate::config::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};
use crate::raftpb::{ConfChangeSingle, ConfChangeType};
use crate::raw_node::{BasicStatus, Peer, Ready};
use crate::tracker::ProgressState;

/// What `RawNode` remembers between `ready()` and `advance()` (sync mode).
#[derive(Default, Clone, Debug)]
pub(crate) struct ReadyCursor {
    /// The soft state the last Ready reported: the leader and the role.
    prev_lead: u64,
    prev_role: StateRole,
    /// The hard state the last Ready reported, in 17 bytes rather than 24: the term, the
    /// commit index, and whether there was a vote. Within a term a vote only ever goes from
    /// none to a candidate (`Raft::vote_for` asserts it), so with the term that bit tells
    /// whether the vote changed.
    prev_term: u64,
    prev_commit: u64,
    prev_voted: bool,
    /// The last Ready carried log entries (to persist or to apply): its vectors are worth
    /// recycling. An idle group's Readies (heartbeats and their answers) are not, and must
    /// not pin buffers in every idle group.
    last_ready_busy: bool,
    /// Readies handed out and not yet acknowledged by `advance`.
    readies_outstanding: u32,
}

impl ReadyCursor {
    fn soft_changed(&self, ss: SoftState) -> bool {
        ss.leader_id != self.prev_lead || ss.raft_state != self.prev_role
    }

    fn set_soft(&mut self, ss: SoftState) {
        self.prev_lead = ss.leader_id;
        self.prev_role = ss.raft_state;
    }

    /// Whether `hs` differs from the hard state last reported.
    fn hard_changed(&self, hs: &HardState) -> bool {
        hs.term != self.prev_term || hs.commit != self.prev_commit || self.vote_changed(hs)
    }

    /// Whether the vote differs from the one last reported, in the same term.
    fn vote_changed(&self, hs: &HardState) -> bool {
        (hs.vote != NONE) != self.prev_voted
    }

    fn set_hard(&mut self, hs: &HardState) {
        self.prev_term = hs.term;
        self.prev_commit = hs.commit;
        self.prev_voted = hs.vote != NONE;
    }
}

/// What a busy node's Readies leave for `advance`, and the vectors handed back: a node with
/// entries in flight uses it, an idle node (a heartbeat's Ready needs none of it) has none.
#[derive(Default, Clone, Debug)]
pub(super) struct Work {
    /// Released reads, for the next Ready.
    pub(super) read_states: Vec<ReadState>,
    /// Messages that may only be sent once the unstable state is durable (vote and append
    /// responses): the next Ready carries them.
    pub(super) msgs_after_append: Vec<Message>,
    /// Local messages stepped on `advance` (self acks, storage responses). Readies handed out
    /// before one `advance` add to it: that `advance` acknowledges all of them.
    steps_on_advance: Vec<Message>,
    /// What the Readies handed out since the last `advance` gave to apply: the last index, the
    /// entries' encoded size and their payload size (a summary rather than a
    /// `MsgStorageApplyResp` carrying clones of the entries). Index 0: nothing (no entry has
    /// index 0).
    applied_on_advance: (u64, u64, u64),
    /// Vectors of Readies handed back by `RawNode::recycle`, for the next Readies to fill
    /// instead of allocating.
    spare: Spare,
}

impl Work {
    /// Nothing is owed to `advance`.
    fn is_empty(&self) -> bool {
        self.read_states.is_empty()
            && self.msgs_after_append.is_empty()
            && self.steps_on_advance.is_empty()
            && self.applied_on_advance.0 == 0
    }
}

/// The committed entries a Ready hands out: first and last index, encoded size, and payload
/// size when it was summed.
#[derive(Clone, Copy, Debug)]
struct Committed {
    first: u64,
    last: u64,
    size: u64,
    payload: Option<u64>,
}

/// Empty vectors with capacity, from recycled Readies.
#[derive(Default, Clone, Debug)]
struct Spare {
    entries: Vec<Entry>,
    committed_entries: Vec<Entry>,
    persisted_messages: Vec<Message>,
}

/// A recycled vector is kept only up to this many bytes of capacity: a burst must not leave
/// every group holding its largest buffer. 16 KiB holds 256 entries or about 80 messages.
pub(crate) const MAX_RECYCLED_BYTES: usize = 16 * 1024;

/// `v` emptied, if its capacity is worth keeping (non-zero, within `MAX_RECYCLED_BYTES`).
fn keep<T>(mut v: Vec<T>) -> Option<Vec<T>> {
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
    if v.capacity() == 0 || bytes > MAX_RECYCLED_BYTES {
        return None;
    }
    v.clear();
    Some(v)
}

impl<S: Storage> Raft<S> {
    /// The cursor of a node just built: the Ready contract starts from the loaded state.
    pub(crate) fn new_cursor(&self) -> ReadyCursor {
        let mut cur = ReadyCursor::default();
        cur.set_soft(self.soft_state());
        cur.set_hard(&self.hard_state());
        cur
    }

    /// Bootstraps a new group on empty storage: one ConfChange entry per peer, committed at
    /// term 1 and applied to the configuration at once.
    pub(crate) fn bootstrap(&mut self, cur: &mut ReadyCursor, peers: &[Peer]) -> Result<()> {
        if peers.is_empty() {
            return Err(Error::ConfigInvalid(
                "must provide at least one peer to Bootstrap".into(),
            ));
        }
        if self.raft_log.last_index() != 0 {
            return Err(Error::ConfigInvalid(
                "can't bootstrap a nonempty Storage".into(),
            ));
        }
        // The HardState is left empty here so that the first Ready carries it.
        cur.set_hard(&HardState::default());
        self.become_follower(1, NONE);
        self.confirmed_term = 1;
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
        self.raft_log.append(ents);
        // Mark the entries committed so they are handed out to apply. They are not marked
        // applied: the application applies them like any conf change.
        self.raft_log.committed = n;
        for p in peers {
            let v2 = ConfChangeV2 {
                changes: vec![ConfChangeSingle {
                    r#type: ConfChangeType::ConfChangeAddNode as i32,
                    node_id: p.id,
                }],
                ..Default::default()
            };
            self.apply_conf_change(&v2)?;
        }
        Ok(())
    }

    /// Whether `ready` would return something to do. An idle node answers from its clock's
    /// `settled` flag alone (and `RawNode` from its handle's mirror of it).
    #[inline]
    pub(crate) fn has_ready(&self, cur: &ReadyCursor) -> bool {
        if self.clk.settled {
            debug_assert!(
                !self.has_ready_full(cur),
                "settled, yet a Ready is pending: an input did not unsettle"
            );
            return false;
        }
        self.has_ready_full(cur)
    }

    /// Whether nothing is pending for a Ready (see `Clock::settled`).
    pub(crate) fn is_settled(&self) -> bool {
        self.clk.settled
    }

    /// `n` ticks counted by `RawNode` while the node was quiet, or a follower short of its
    /// election timeout (`idle_tick_countdown`): what `n` calls of `tick` would have done. A
    /// quiet tick only counts time; a follower's also moves the election timer.
    pub(crate) fn add_idle_ticks(&mut self, n: u64) {
        self.clk.ticks = self.clk.ticks.wrapping_add(n);
        if self.clk.quiet {
            return;
        }
        debug_assert!(
            self.clk.state != StateRole::Leader,
            "a leader's ticks were counted"
        );
        // n is at most the countdown, below the timeout (a u32).
        self.clk.election_elapsed += n as u32;
        debug_assert!(self.clk.election_elapsed < self.clk.randomized_election_timeout);
    }

    /// How many ticks this node can take that only count time and move its election timer
    /// (a follower's or candidate's, short of the timeout): `RawNode` counts those itself. 0 for
    /// a leader (its ticks send heartbeats) and for a quiet node (`RawNode` counts its ticks
    /// anyway).
    pub(crate) fn idle_tick_countdown(&self) -> u32 {
        if self.clk.quiet || self.clk.state == StateRole::Leader {
            return 0;
        }
        self.clk
            .randomized_election_timeout
            .saturating_sub(self.clk.election_elapsed.saturating_add(1))
    }

    /// Marks the node changed: `has_ready` looks at everything again. Every input does this.
    #[inline]
    pub(crate) fn unsettle(&mut self) {
        self.clk.settled = false;
    }

    /// Records whether anything is pending, after the Ready loop acknowledged what it did.
    /// A quiet node with nothing pending also drops its empty buffers: a quiet group keeps no
    /// heap it does not need.
    pub(crate) fn settle(&mut self, cur: &mut ReadyCursor) {
        self.clk.settled = !self.has_ready_full(cur);
        if self.clk.quiet && self.clk.settled {
            self.release_buffers();
            self.work = None;
        } else if !cur.last_ready_busy && self.work.as_deref().is_some_and(Work::is_empty) {
            // The last Ready had no entries (its spare vectors went then): the node is idle.
            self.work = None;
        }
    }

    /// Keeps the vectors of a handled Ready for the next Readies (`RawNode::recycle`). What
    /// is still in them is dropped. A quiet node keeps nothing, and neither does a node whose
    /// last Ready carried no entries (an idle group's heartbeats).
    pub(crate) fn recycle(&mut self, cur: &mut ReadyCursor, rd: Ready) {
        if self.clk.quiet || !cur.last_ready_busy {
            return;
        }
        let Ready {
            entries,
            committed_entries,
            messages,
            persisted_messages,
            ..
        } = rd;
        if let Some(v) = keep(messages) {
            self.msgs.offer(v);
        }
        let s = &mut self.work_mut().spare;
        for (slot, v) in [
            (&mut s.entries, entries),
            (&mut s.committed_entries, committed_entries),
        ] {
            if let Some(v) = keep(v) {
                if v.capacity() > slot.capacity() {
                    *slot = v;
                }
            }
        }
        if let Some(v) = keep(persisted_messages) {
            if v.capacity() > s.persisted_messages.capacity() {
                s.persisted_messages = v;
            }
        }
    }

    pub(super) fn work_mut(&mut self) -> &mut Work {
        self.work.get_or_insert_with(Default::default)
    }

    /// The messages waiting for the next persist.
    pub(super) fn after_append(&self) -> &[Message] {
        self.work.as_deref().map_or(&[], |w| &w.msgs_after_append)
    }

    /// Drops the boxes and capacity of the empty message and entry buffers.
    pub(super) fn release_buffers(&mut self) {
        self.msgs.release();
        self.raft_log.unstable.release_buffers();
    }

    fn has_ready_full(&self, cur: &ReadyCursor) -> bool {
        if cur.soft_changed(self.soft_state()) {
            return true;
        }
        let hs = self.hard_state();
        if !hs.is_empty() && cur.hard_changed(&hs) {
            return true;
        }
        if self.raft_log.has_next_unstable_snapshot() {
            return true;
        }
        if !self.msgs.is_empty() || !self.after_append().is_empty() || self.has_pending_appends() {
            return true;
        }
        if self.raft_log.has_next_unstable_ents()
            || self
                .raft_log
                .has_next_committed_ents(!self.cfg.async_storage_writes)
        {
            return true;
        }
        self.work
            .as_deref()
            .is_some_and(|w| !w.read_states.is_empty())
    }

    /// Builds the next Ready and marks its contents handed out.
    pub(crate) fn ready(&mut self, cur: &mut ReadyCursor) -> Ready {
        self.flush_appends();
        let async_writes = self.cfg.async_storage_writes;
        // Recycled vectors if the application handed some back, else new ones.
        let (mut entries, mut committed_entries, mut persisted_messages) =
            (Vec::new(), Vec::new(), Vec::new());
        if let Some(s) = self.work.as_deref_mut().map(|w| &mut w.spare) {
            entries = std::mem::take(&mut s.entries);
            committed_entries = std::mem::take(&mut s.committed_entries);
            persisted_messages = std::mem::take(&mut s.persisted_messages);
        }
        // Read before this Ready's own entries are handed over: they may be among them.
        let committed = self.next_committed(!async_writes, &mut committed_entries);
        if self.cfg.hand_over_entries {
            self.raft_log.hand_over_next_ents(&mut entries);
        } else {
            entries.extend_from_slice(self.raft_log.next_unstable_ents());
        }
        let mut rd = Ready {
            committed_range: committed.map(|c| (c.first, c.last)),
            entries,
            committed_entries,
            messages: self.msgs.take(),
            persisted_messages,
            ..Default::default()
        };
        let ss = self.soft_state();
        if cur.soft_changed(ss) {
            rd.soft_state = Some(ss);
            cur.set_soft(ss);
        }
        let hs = self.hard_state();
        let hs_changed = cur.hard_changed(&hs);
        rd.must_sync = !rd.entries.is_empty() || cur.vote_changed(&hs) || hs.term != cur.prev_term;
        if hs_changed && !hs.is_empty() {
            rd.hard_state = Some(hs);
            cur.set_hard(&hs);
        }
        if self.raft_log.has_next_unstable_snapshot() {
            rd.snapshot = self.raft_log.next_unstable_snapshot().cloned();
        }
        if let Some(w) = self.work.as_deref_mut() {
            rd.read_states = std::mem::take(&mut w.read_states);
        }

        // What tells the core that this Ready's writes are done: the last unstable entry (the
        // term check on it guards against entries overwritten since), and the snapshot.
        let unstable = self.raft_log.has_next_or_in_progress_unstable_ents();
        let append_resp = if unstable || rd.snapshot.is_some() {
            let mut m = Message {
                r#type: MessageType::MsgStorageAppendResp as i32,
                from: LOCAL_APPEND_THREAD,
                to: self.id,
                term: self.term,
                snapshot: rd.snapshot.clone(),
                ..Default::default()
            };
            if unstable {
                let (lt, li) = self.raft_log.last_entry_id();
                m.index = li;
                m.log_term = lt;
            }
            Some(m)
        } else {
            None
        };
        let committed_size = committed.map_or(0, |c| c.size);

        if async_writes {
            let need_append = !rd.entries.is_empty()
                || rd.hard_state.is_some()
                || rd.snapshot.is_some()
                || !self.after_append().is_empty();
            if need_append {
                let mut m = Message {
                    r#type: MessageType::MsgStorageAppend as i32,
                    from: self.id,
                    to: LOCAL_APPEND_THREAD,
                    entries: rd.entries.clone(),
                    snapshot: rd.snapshot.clone(),
                    responses: self
                        .work
                        .as_deref_mut()
                        .map(|w| std::mem::take(&mut w.msgs_after_append))
                        .unwrap_or_default(),
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
                    to: self.id,
                    entries: rd.committed_entries.clone(),
                    ..Default::default()
                };
                rd.messages.push(Message {
                    r#type: MessageType::MsgStorageApply as i32,
                    from: self.id,
                    to: LOCAL_APPLY_THREAD,
                    entries: rd.committed_entries.clone(),
                    responses: vec![resp],
                    ..Default::default()
                });
            }
        } else {
            if cur.readies_outstanding > 0 {
                warn!(self.cfg.logger, "ready() called again before advance()";
                    "raft_id" => self.id, "outstanding" => cur.readies_outstanding);
            }
            // Drained, not taken: the queue keeps its buffer for the next Ready.
            if let Some(w) = self.work.as_deref_mut() {
                let id = self.id;
                let Work {
                    msgs_after_append,
                    steps_on_advance,
                    ..
                } = w;
                for m in msgs_after_append.drain(..) {
                    if m.to == id {
                        steps_on_advance.push(m);
                    } else {
                        rd.persisted_messages.push(m);
                    }
                }
            }
            if let Some(m) = append_resp {
                self.work_mut().steps_on_advance.push(m);
            }
            if let Some(c) = committed {
                let payload = c
                    .payload
                    .unwrap_or_else(|| payloads_size(&rd.committed_entries));
                // An earlier Ready's entries come first: the summaries add up.
                let w = self.work_mut();
                let (_, size, pay) = w.applied_on_advance;
                w.applied_on_advance = (c.last, size + committed_size, pay + payload);
            }
            cur.readies_outstanding = cur.readies_outstanding.saturating_add(1);
        }

        self.raft_log.accept_unstable();
        if let Some(c) = committed {
            self.raft_log
                .accept_applying(c.last, committed_size, !async_writes);
        }
        // A recycled vector this Ready leaves empty waits for the next one (the application
        // may drop a Ready without recycling it), while the node is busy; a Ready without
        // entries lets them go (they leave with it).
        cur.last_ready_busy = !rd.entries.is_empty() || committed.is_some();
        if !cur.last_ready_busy {
            if let Some(w) = self.work.as_deref_mut() {
                w.spare = Spare::default();
            }
        } else if let Some(s) = self.work.as_deref_mut().map(|w| &mut w.spare) {
            for (slot, v) in [
                (&mut s.entries, &mut rd.entries),
                (&mut s.committed_entries, &mut rd.committed_entries),
            ] {
                if v.is_empty() && v.capacity() > slot.capacity() {
                    std::mem::swap(slot, v);
                }
            }
            if rd.persisted_messages.is_empty()
                && rd.persisted_messages.capacity() > s.persisted_messages.capacity()
            {
                std::mem::swap(&mut s.persisted_messages, &mut rd.persisted_messages);
            }
        }
        rd
    }

    /// The committed entries to hand out next. With `apply_from_storage` they are only looked
    /// at (the application reads them from its storage; the payload size is summed here);
    /// otherwise cloned into `out` (the payload size is left to the caller, which needs it in
    /// synchronous mode only).
    fn next_committed(&self, allow_unstable: bool, out: &mut Vec<Entry>) -> Option<Committed> {
        if !self.cfg.apply_from_storage {
            self.raft_log.next_committed_ents_into(allow_unstable, out);
            let (f, l) = (out.first()?, out.last()?);
            return Some(Committed {
                first: f.index,
                last: l.index,
                size: ents_size(out),
                payload: None,
            });
        }
        let mut c = Committed {
            first: 0,
            last: 0,
            size: 0,
            payload: Some(0),
        };
        let read = self
            .raft_log
            .visit_next_committed_ents(allow_unstable, &mut |s: &[Entry]| {
                let (Some(f), Some(l)) = (s.first(), s.last()) else {
                    return;
                };
                if c.first == 0 {
                    c.first = f.index;
                }
                c.last = l.index;
                c.size = c.size.saturating_add(ents_size(s));
                c.payload = c.payload.map(|p| p.saturating_add(payloads_size(s)));
            });
        // A failed read hands out nothing (what was seen is dropped).
        (read && c.last != 0).then_some(c)
    }

    /// Sync mode: the Readies handed out were persisted and applied. Steps the node's own
    /// acknowledgements (its vote, its appended entries) and marks entries stable and applied.
    pub(crate) fn advance(&mut self, cur: &mut ReadyCursor) -> Result<()> {
        if self.cfg.async_storage_writes {
            return Err(Error::AsyncStorageMisuse(
                "advance must not be called with asynchronous storage writes",
            ));
        }
        cur.readies_outstanding = 0;
        // Drained, not taken: the cursor keeps the buffer for the next Ready. Stepping never
        // adds to it (only `ready` does).
        if let Some(w) = self.work.as_deref_mut() {
            let mut steps = std::mem::take(&mut w.steps_on_advance);
            let (index, size, payload) = std::mem::take(&mut w.applied_on_advance);
            for m in steps.drain(..) {
                let _ = self.step(m);
            }
            // The buffer stays for the next Ready (stepping never adds to it).
            if let Some(w) = self.work.as_deref_mut() {
                w.steps_on_advance = steps;
            }
            if index != 0 {
                self.on_applied(index, size, payload);
            }
        }
        let resend = self
            .ls
            .as_deref_mut()
            .is_some_and(|l| std::mem::take(&mut l.resend_after_advance));
        if resend && self.clk.state == StateRole::Leader {
            self.bcast_append();
        }
        self.settle(cur);
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Read-only views.

    pub(crate) fn basic_status(&self) -> BasicStatus {
        BasicStatus {
            id: self.id,
            hard_state: self.hard_state(),
            soft_state: self.soft_state(),
            applied: self.raft_log.applied,
            lead_transferee: self.lead_transferee(),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn role(&self) -> StateRole {
        self.clk.state
    }

    pub(crate) fn log(&self) -> &RaftLog<S> {
        &self.raft_log
    }

    pub(crate) fn store_mut(&mut self) -> &mut S {
        &mut self.raft_log.store
    }

    pub(crate) fn tracker(&self) -> &ProgressTracker {
        &self.trk
    }

    /// The progress of every member, in id order, on a leader; nothing elsewhere.
    pub(crate) fn progress(&self) -> impl Iterator<Item = (u64, &Progress)> {
        let leader = self.clk.state == StateRole::Leader;
        self.trk.progress.iter().filter(move |_| leader)
    }

    pub(crate) fn progress_state(&self, id: u64) -> Option<ProgressState> {
        self.trk.progress.get(id).map(|p| p.state)
    }
}
