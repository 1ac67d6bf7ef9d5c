//! Sending appends, snapshots and heartbeats; the leader's handling of their answers; the leader's own log appends and commitment.

use bytes::Bytes;
use slog::{debug, error, info};

use super::*;

impl<S: Storage> Raft<S> {
    /// Queues a message. Sets `from` and the term per the protocol's rules.
    pub(super) fn send(&mut self, mut m: Message) {
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
            self.work_mut().msgs_after_append.push(m);
        } else {
            debug_assert!(
                m.to != self.id,
                "message should not be self-addressed when sending {t:?}"
            );
            self.msgs.push(m);
        }
    }

    /// Appends to `to`, in etcd's way now or at the next flush in batched mode.
    pub(super) fn send_append(&mut self, to: u64) {
        if self.cfg.append_mode == AppendMode::Batched {
            let l = self.leader_mut();
            if !l.dirty_all && !l.dirty.contains(&to) {
                l.dirty.push(to);
            }
            return;
        }
        self.maybe_send_append(to, true);
    }

    pub(super) fn bcast_append(&mut self) {
        if self.cfg.append_mode == AppendMode::Batched {
            let l = self.leader_mut();
            l.dirty_all = true;
            l.dirty.clear();
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
    pub(super) fn has_pending_appends(&self) -> bool {
        self.clk.state == StateRole::Leader
            && self
                .ls
                .as_ref()
                .is_some_and(|l| l.dirty_all || !l.dirty.is_empty())
    }

    /// Batched mode: builds the append messages owed to followers, as many as the size and
    /// in-flight limits allow, at most one empty one per follower.
    pub(super) fn flush_appends(&mut self) {
        if !self.has_pending_appends() {
            if let Some(l) = self.ls.as_deref_mut() {
                l.dirty_all = false;
                l.dirty.clear();
            }
            return;
        }
        let l = self.leader_mut();
        if l.dirty_all {
            l.dirty_all = false;
            l.dirty.clear();
            // By position: sending changes progress, never the set of peers.
            let mut k = 0;
            while let Some(id) = self.trk.progress.id_at(k) {
                k += 1;
                if id != self.id && self.maybe_send_append(id, true) {
                    while self.maybe_send_append(id, false) {}
                }
            }
            return;
        }
        let mut ids = std::mem::take(&mut l.dirty);
        ids.sort_unstable();
        l.dirty_all = false;
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
    pub(super) fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
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
                Err(e) if self.raft_log.waits_for_handed_over(next, &e) => {
                    // The entries are handed over and not written back yet: not a reason
                    // for a snapshot. `advance` sends again.
                    self.leader_mut().resend_after_advance = true;
                    return false;
                }
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
            Bytes::copy_from_slice(&self.clk.ticks.to_le_bytes())
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

    pub(super) fn maybe_send_snapshot(&mut self, to: u64) -> bool {
        let Some(pr) = self.trk.progress.get(to) else {
            return false;
        };
        if !pr.recent_active {
            debug!(self.cfg.logger, "skipped snapshot: peer not recently active";
                "raft_id" => self.id, "peer" => to);
            return false;
        }
        let snapshot = match self.raft_log.snapshot() {
            Ok(s) => s,
            Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable)) => {
                debug!(self.cfg.logger, "skipped snapshot: temporarily unavailable";
                    "raft_id" => self.id, "peer" => to);
                return false;
            }
            Err(e) => {
                error!(self.cfg.logger, "cannot get snapshot";
                    "raft_id" => self.id, "peer" => to, "error" => %e);
                return false;
            }
        };
        if snapshot.is_empty() {
            error!(self.cfg.logger, "cannot send snapshot: storage has none";
                "raft_id" => self.id, "peer" => to);
            return false;
        }
        let (sindex, sterm) = (snapshot.index(), snapshot.term());
        let (first, committed) = (self.raft_log.first_index(), self.raft_log.committed);
        let pr = self.trk.progress.get_mut(to).expect("checked above");
        debug!(self.cfg.logger, "sent snapshot";
            "raft_id" => self.id, "to" => to, "snapshot_index" => sindex, "snapshot_term" => sterm,
            "first_index" => first, "commit" => committed, "progress" => %pr);
        pr.become_snapshot(sindex);
        debug!(self.cfg.logger, "paused replication";
            "raft_id" => self.id, "peer" => to, "progress" => %pr);
        self.send(Message {
            r#type: MessageType::MsgSnap as i32,
            to,
            snapshot: Some(snapshot),
            ..Default::default()
        });
        true
    }

    pub(super) fn send_heartbeat(&mut self, to: u64, ctx: Bytes) {
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

    pub(super) fn bcast_heartbeat(&mut self) {
        let ctx = if self.cfg.read_only_option == ReadOnlyOption::LeaseBased {
            // Lease mode stamps every heartbeat with the tick it was sent at: an answer proves
            // the follower heard from this leader no earlier than that tick.
            let ticks = self.clk.ticks;
            self.read_only_mut().lease_ctx(ticks)
        } else {
            self.read_only()
                .and_then(|r| r.last_pending_ctx())
                .unwrap_or_default()
        };
        if self.cfg.quiesce && self.bcast_quiesce(&ctx) {
            return;
        }
        let ids: Vec<u64> = self.trk.progress.ids().collect();
        for id in ids {
            if id != self.id {
                self.send_heartbeat(id, ctx.clone());
            }
        }
    }

    pub(super) fn send_timeout_now(&mut self, to: u64) {
        self.leader_mut().lease_revoked = true;
        self.send(Message {
            r#type: MessageType::MsgTimeoutNow as i32,
            to,
            ..Default::default()
        });
    }

    pub(super) fn handle_append_response(&mut self, m: &Message) {
        let from = m.from;
        let last_index = self.raft_log.last_index();
        if m.index > last_index && !m.reject {
            // An acknowledgement of entries this leader never had. The gate refuses one from
            // the network in this term (`Reason::AckPastLog`); this guards the local path.
            debug!(self.cfg.logger, "ignored append response: index past last index";
                "raft_id" => self.id, "from" => from, "index" => m.index,
                "last_index" => last_index);
            return;
        }
        if self.cfg.read_only_option == ReadOnlyOption::LeaseBased && from != self.id {
            if let Ok(b) = <[u8; 8]>::try_from(&m.context[..]) {
                let now = self.clk.ticks;
                self.read_only_mut()
                    .record_lease(from, u64::from_le_bytes(b), now);
            }
        }
        let pr = self.trk.progress.get_mut(from).expect("checked by caller");
        pr.recent_active = true;
        if m.reject {
            debug!(self.cfg.logger, "received append rejection";
                "raft_id" => self.id, "from" => from, "index" => m.index,
                "reject_hint" => m.reject_hint, "log_term" => m.log_term);
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
                debug!(self.cfg.logger, "decreased progress";
                    "raft_id" => self.id, "peer" => from, "progress" => %pr);
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
                    debug!(self.cfg.logger, "resumed replication after snapshot";
                        "raft_id" => self.id, "peer" => from, "progress" => %pr);
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
            if from == self.lead_transferee()
                && self
                    .trk
                    .progress
                    .get(from)
                    .is_some_and(|pr| pr.matched == self.raft_log.last_index())
            {
                info!(self.cfg.logger, "sent MsgTimeoutNow: transferee caught up";
                    "raft_id" => self.id, "to" => from);
                self.send_timeout_now(from);
            }
        }
    }

    pub(super) fn handle_heartbeat_response(&mut self, m: &Message) {
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
        let now = self.clk.ticks;
        let Some(ro) = self.ls.as_mut().and_then(|l| l.read_only.as_deref_mut()) else {
            return;
        };
        if lease {
            ro.recv_lease_ack(from, &m.context, now);
        }
        if !ro.recv_ack(from, &m.context) {
            return;
        }
        let ro = &*ro;
        let confirmed = self
            .trk
            .config
            .voters
            .committed_index(&|id: u64| ro.acked(id));
        let released = self
            .ls
            .as_mut()
            .and_then(|l| l.read_only.as_deref_mut())
            .map(|ro| ro.advance(confirmed))
            .unwrap_or_default();
        for rs in released {
            self.respond_to_read_index(rs.req, rs.index);
        }
    }

    /// Appends entries to the leader's log with its term and the next indexes. Returns false
    /// when the uncommitted-size limit refuses them.
    pub(super) fn append_entry(&mut self, mut es: Vec<Entry>) -> bool {
        let li = self.raft_log.last_index();
        for (i, e) in es.iter_mut().enumerate() {
            e.term = self.term;
            e.index = li + 1 + i as u64;
        }
        if !self.increase_uncommitted_size(&es) {
            debug!(self.cfg.logger, "dropped proposal: uncommitted size limit";
                "raft_id" => self.id, "uncommitted_size" => self.ls.as_ref().map_or(0, |l| l.uncommitted_size),
                "limit" => self.cfg.max_uncommitted_entries_size);
            return false;
        }
        let li = self.raft_log.append(es);
        self.self_ack(li);
        true
    }

    /// The leader acknowledges its own entries once they are durable: the self-addressed
    /// response comes back through advance (or the append thread). In batched mode a newer
    /// acknowledgement replaces an older one still waiting in the queue: it says more.
    pub(super) fn self_ack(&mut self, last_index: u64) {
        if self.cfg.append_mode == AppendMode::Batched {
            let queued = self.work.as_deref_mut();
            if let Some(m) = queued.and_then(|w| w.msgs_after_append.last_mut()) {
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
        if self.clk.state != StateRole::Leader {
            return Err(data);
        }
        if self.clk.quiet {
            // As a stepped MsgProp does: a quiet leader would neither heartbeat nor resend a
            // lost append for the new entry.
            self.wake(false);
        }
        if self.trk.progress.get(self.id).is_none() {
            return Ok(Err(Error::ProposalDropped(DropReason::LeaderRemoved)));
        }
        if self.lead_transferee() != NONE {
            return Ok(Err(Error::ProposalDropped(DropReason::TransferInProgress)));
        }
        let payload = data.len() as u64;
        let limit = self.cfg.max_uncommitted_entries_size;
        let l = self.leader_mut();
        if l.uncommitted_size > 0
            && payload > 0
            && l.uncommitted_size.saturating_add(payload) > limit
        {
            let size = l.uncommitted_size;
            debug!(self.cfg.logger, "dropped proposal: uncommitted size limit";
                "raft_id" => self.id, "uncommitted_size" => size, "limit" => limit);
            return Ok(Err(Error::ProposalDropped(
                DropReason::UncommittedBudgetFull,
            )));
        }
        l.uncommitted_size = l.uncommitted_size.saturating_add(payload);
        let li = self.raft_log.append_next(self.term, data);
        self.self_ack(li);
        self.bcast_append();
        Ok(Ok(()))
    }

    pub(super) fn increase_uncommitted_size(&mut self, ents: &[Entry]) -> bool {
        let s = payloads_size(ents);
        // An empty payload (the leader's empty entry, a leave-joint) is never refused; the
        // first entry is always allowed so a single large proposal can make progress.
        let limit = self.cfg.max_uncommitted_entries_size;
        let l = self.leader_mut();
        if l.uncommitted_size > 0 && s > 0 && l.uncommitted_size.saturating_add(s) > limit {
            return false;
        }
        l.uncommitted_size = l.uncommitted_size.saturating_add(s);
        true
    }

    pub(super) fn reduce_uncommitted_size(&mut self, s: u64) {
        if let Some(l) = self.ls.as_deref_mut() {
            l.uncommitted_size = l.uncommitted_size.saturating_sub(s);
        }
    }

    /// The leader commits the quorum's matched index if it is of the current term (Figure 8).
    pub(super) fn maybe_commit(&mut self) -> bool {
        let mci = self.trk.committed();
        let last = self.raft_log.last_index();
        // A joint or majority config with no voters reports u64::MAX; clamp to the log.
        let mci = mci.min(last);
        self.raft_log.maybe_commit(mci, self.term)
    }
}
