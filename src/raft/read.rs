//! ReadIndex: held reads, heartbeat-confirmed reads, leases and released read states.

use slog::{debug, error, warn};

use super::*;

impl<S: Storage> Raft<S> {
    pub(super) fn push_read_state(&mut self, rs: ReadState) {
        // Read states are handed out with every Ready; a node whose application never calls
        // ready() would otherwise grow this without bound.
        let queue = &mut self.work_mut().read_states;
        if queue.len() >= crate::read_only::MAX_PENDING_READS {
            warn!(self.cfg.logger, "dropped read state: too many unread";
                "raft_id" => self.id, "index" => rs.index);
            return;
        }
        queue.push(rs);
    }

    pub(super) fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log.term(self.raft_log.committed).unwrap_or(0) == self.term
    }

    pub(super) fn release_pending_read_index_messages(&mut self) {
        if self.read_only().is_none_or(|r| r.held.is_empty()) {
            return;
        }
        if !self.committed_entry_in_current_term() {
            error!(self.cfg.logger, "held reads released before the first commit of the term";
                "raft_id" => self.id, "term" => self.term);
            return;
        }
        let msgs = std::mem::take(&mut self.read_only_mut().held);
        for m in msgs {
            let _ = self.handle_read_index(m);
        }
    }

    pub(super) fn handle_read_index(&mut self, m: Message) -> Result<()> {
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
                    debug!(self.cfg.logger, "dropped read request: too many pending reads";
                        "raft_id" => self.id);
                    return Err(Error::ProposalDropped(DropReason::TooManyPendingReads));
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
                    return Err(Error::ProposalDropped(DropReason::TooManyPendingReads));
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
    pub(super) fn lease_valid(&self) -> bool {
        if self
            .ls
            .as_ref()
            .is_some_and(|l| l.lease_revoked || l.lead_transferee != NONE)
        {
            return false;
        }
        let Some(ro) = self.read_only() else {
            return false;
        };
        let (me, now) = (self.id, self.clk.ticks);
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

    pub(super) fn read_only_mut(&mut self) -> &mut ReadOnly {
        self.leader_mut()
            .read_only
            .get_or_insert_with(Default::default)
    }

    pub(super) fn respond_to_read_index(&mut self, req: Message, index: u64) {
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
}
