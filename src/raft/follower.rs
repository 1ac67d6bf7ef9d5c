//! A follower's handling of messages: appends, heartbeats, snapshots, forwarding.

use slog::{debug, error, info, warn};

use super::*;

impl<S: Storage> Raft<S> {
    pub(super) fn step_follower(&mut self, mut m: Message, t: MessageType) -> Result<()> {
        match t {
            MessageType::MsgProp => {
                if m.entries.is_empty() {
                    return Err(Error::InvalidMessage(Reason::EmptyProposal));
                }
                if self.lead == NONE {
                    debug!(self.cfg.logger, "dropped proposal: no leader";
                        "raft_id" => self.id, "term" => self.term);
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                if self.cfg.disable_proposal_forwarding {
                    debug!(self.cfg.logger, "dropped proposal: forwarding disabled";
                        "raft_id" => self.id, "term" => self.term, "lead" => self.lead);
                    return Err(Error::ProposalDropped(DropReason::ForwardingDisabled));
                }
                self.forward_to_leader(m);
            }
            MessageType::MsgApp
            | MessageType::MsgHeartbeat
            | MessageType::MsgQuiesce
            | MessageType::MsgSnap => {
                // The leader of this term spoke: the election timer starts over.
                self.clk.election_elapsed = 0;
                self.lead = m.from;
                match t {
                    MessageType::MsgApp => return self.handle_append_entries(m),
                    MessageType::MsgSnap => return self.handle_snapshot(m),
                    MessageType::MsgQuiesce => self.handle_quiesce(m),
                    _ => self.handle_heartbeat(m),
                }
            }
            MessageType::MsgTransferLeader => {
                if self.lead == NONE {
                    debug!(self.cfg.logger, "dropped leader transfer request: no leader";
                        "raft_id" => self.id, "term" => self.term);
                    return Ok(());
                }
                self.forward_to_leader(m);
            }
            MessageType::MsgForgetLeader => {
                if self.cfg.read_only_option == ReadOnlyOption::LeaseBased {
                    warn!(self.cfg.logger, "ignored MsgForgetLeader: lease-based reads";
                        "raft_id" => self.id);
                    return Ok(());
                }
                if self.lead != NONE {
                    info!(self.cfg.logger, "forgot leader";
                        "raft_id" => self.id, "term" => self.term, "lead" => self.lead);
                    self.lead = NONE;
                }
            }
            MessageType::MsgTimeoutNow => {
                info!(self.cfg.logger, "received MsgTimeoutNow, campaigning";
                    "raft_id" => self.id, "from" => m.from, "term" => self.term);
                // Leadership transfers never use pre-vote: the leader asked for this election.
                self.hup(CampaignType::Transfer);
            }
            MessageType::MsgReadIndex => {
                if self.lead == NONE {
                    debug!(self.cfg.logger, "dropped read request: no leader";
                        "raft_id" => self.id, "term" => self.term);
                    return Ok(());
                }
                self.forward_to_leader(m);
            }
            MessageType::MsgReadIndexResp => {
                // The gate let through only responses with exactly one entry.
                let Some(ctx) = m.entries.pop().map(|e| e.data) else {
                    return Ok(());
                };
                self.push_read_state(ReadState {
                    index: m.index,
                    request_ctx: ctx,
                });
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn handle_append_entries(&mut self, m: Message) -> Result<()> {
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
        // An acknowledgement queued earlier in this Ready for an index past `index` speaks of
        // entries this append may overwrite: find where it diverges first. Only an append
        // that starts before the end of the log can overwrite anything; in-order appends (the
        // hot path) skip the check without looking at the queue.
        let rewrites_from = if index < self.raft_log.last_index() && self.max_queued_ack() > index {
            match self.raft_log.find_conflict(&m.entries) {
                0 => None,
                c => Some(c),
            }
        } else {
            None
        };
        match self
            .raft_log
            .maybe_append(index, log_term, commit, m.entries)
        {
            Ok(Some(last_new)) => {
                if let Some(first_rewritten) = rewrites_from {
                    self.retract_acks_from(first_rewritten);
                }
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
                debug!(self.cfg.logger, "rejected append: log mismatch";
                    "raft_id" => self.id, "from" => from, "index" => index, "log_term" => log_term,
                    "local_log_term" => self.raft_log.term(index).unwrap_or(0),
                    "last_index" => self.raft_log.last_index());
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
                warn!(self.cfg.logger, "rejected append";
                    "raft_id" => self.id, "from" => from, "error" => %e);
                return Err(e);
            }
        }
        Ok(())
    }

    pub(super) fn handle_heartbeat(&mut self, m: Message) {
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

    pub(super) fn handle_snapshot(&mut self, mut m: Message) -> Result<()> {
        // The gate checked the snapshot's shape and ConfState.
        let Some(s) = m.snapshot.take() else {
            return Err(Error::InvalidMessage(Reason::MissingSnapshot));
        };
        let (sindex, sterm) = (s.index(), s.term());
        if self.restore(s) {
            debug!(self.cfg.logger, "accepted snapshot";
                "raft_id" => self.id, "from" => m.from, "snapshot_index" => sindex,
                "snapshot_term" => sterm, "commit" => self.raft_log.committed);
            let last = self.raft_log.last_index();
            self.send(Message {
                r#type: MessageType::MsgAppResp as i32,
                to: m.from,
                index: last,
                ..Default::default()
            });
        } else {
            debug!(self.cfg.logger, "ignored snapshot";
                "raft_id" => self.id, "from" => m.from, "snapshot_index" => sindex,
                "snapshot_term" => sterm, "commit" => self.raft_log.committed);
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
    pub(super) fn restore(&mut self, s: Snapshot) -> bool {
        let (sindex, sterm) = (s.index(), s.term());
        if sindex <= self.raft_log.committed {
            return false;
        }
        if self.clk.state != StateRole::Follower {
            // Only followers restore; a leader or candidate seeing a newer snapshot in its own
            // term is impossible with honest peers. Step down and let the group sort it out.
            warn!(self.cfg.logger, "refused snapshot: not a follower; stepping down";
                "raft_id" => self.id, "term" => self.term, "state" => %self.clk.state);
            let term = self.term + 1;
            self.become_follower(term, NONE);
            return false;
        }
        let cs = s.conf_state();
        if self.raft_log.match_term(sindex, sterm) {
            // The log already holds the snapshot's last entry: just move the commit index.
            let (lt, li) = self.raft_log.last_entry_id();
            info!(self.cfg.logger, "fast-forwarded commit to snapshot";
                "raft_id" => self.id, "snapshot_index" => sindex, "snapshot_term" => sterm,
                "commit" => self.raft_log.committed, "last_index" => li, "last_term" => lt);
            self.raft_log.commit_to(sindex);
            return false;
        }
        info!(self.cfg.logger, "restoring snapshot";
            "raft_id" => self.id, "snapshot_index" => sindex, "snapshot_term" => sterm,
            "log" => %self.raft_log);
        // The snapshot replaces the log: of what a queued acknowledgement claims, only the
        // committed prefix (the same in every log) is sure to survive this Ready's persist.
        let first_uncommitted = self.raft_log.committed + 1;
        self.raft_log.restore(s);
        self.retract_acks_from(first_uncommitted);
        let mut trk = ProgressTracker::new(self.trk.max_inflight, self.trk.max_inflight_bytes);
        if let Err(e) = confchange::restore(&mut trk, self.raft_log.last_index(), &cs) {
            // validate_conf_state ran before; a failure here is a bug in the changer.
            error!(self.cfg.logger, "cannot restore snapshot configuration";
                "raft_id" => self.id, "conf_state" => ?cs, "error" => %e);
            return true;
        }
        self.trk.config = trk.config;
        self.trk.progress = trk.progress;
        let new_cs = self.switch_to_config_loaded();
        if !new_cs.equivalent(&cs) {
            error!(self.cfg.logger, "restored configuration differs from snapshot";
                "raft_id" => self.id, "restored" => ?new_cs, "snapshot" => ?cs);
        }
        let (lt, li) = self.raft_log.last_entry_id();
        info!(self.cfg.logger, "restored snapshot";
            "raft_id" => self.id, "snapshot_index" => sindex, "snapshot_term" => sterm,
            "commit" => self.raft_log.committed, "last_index" => li, "last_term" => lt);
        true
    }

    /// Hands a request (proposal, read, transfer) on to the leader, term-less: the leader does
    /// not care about the forwarder's term. The caller checked that a leader is known.
    fn forward_to_leader(&mut self, mut m: Message) {
        debug_assert!(self.lead != NONE);
        m.to = self.lead;
        m.term = 0;
        self.send(m);
    }

    /// The highest index acknowledged to another node by a `MsgAppResp` waiting for this
    /// Ready's persist (0 if none). The queue holds a few messages between two Readies.
    fn max_queued_ack(&self) -> u64 {
        self.after_append()
            .iter()
            .filter(|m| m.r#type == MessageType::MsgAppResp as i32 && !m.reject && m.to != self.id)
            .map(|m| m.index)
            .max()
            .unwrap_or(0)
    }

    /// Takes back the acknowledgements waiting for this Ready's persist that claim an index at
    /// or past `first_gone`: the same persist removes those entries (a conflicting append
    /// truncated them, or a snapshot replaced the log), so the promise would be false when it
    /// left. The leader learns the truth from this node's next answer.
    fn retract_acks_from(&mut self, first_gone: u64) {
        if self.max_queued_ack() < first_gone {
            return;
        }
        let id = self.id;
        let queue = &mut self.work_mut().msgs_after_append;
        let before = queue.len();
        queue.retain(|m| {
            !(m.r#type == MessageType::MsgAppResp as i32
                && !m.reject
                && m.to != id
                && m.index >= first_gone)
        });
        let retracted = before - queue.len();
        warn!(self.cfg.logger, "retracted acknowledgements of removed entries";
            "raft_id" => self.id, "first_gone" => first_gone, "retracted" => retracted);
    }
}
