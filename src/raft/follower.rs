//! A follower's handling of messages: appends, heartbeats, snapshots, forwarding.

use slog::{debug, error, info, warn};

use super::*;

impl<S: Storage> Raft<S> {
    pub(super) fn step_follower(&mut self, mut m: Message, t: MessageType) -> Result<()> {
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
    pub(super) fn restore(&mut self, s: Snapshot) -> bool {
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
}
