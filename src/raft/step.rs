//! The step function: term rules and vote requests, then dispatch by role (the leader's part is here too).

use slog::{debug, info, warn};

use super::*;

impl<S: Storage> Raft<S> {
    /// Steps a message from the network: through the gate (`validate.rs`), then the protocol.
    pub(crate) fn step_remote(&mut self, mut m: Message) -> Result<()> {
        let (t, known) = self.check_remote(&m)?;
        if matches!(t, MessageType::MsgProp | MessageType::MsgReadIndex) {
            // Term-less requests: a term here means nothing (and must not be adopted).
            m.term = 0;
        }
        if m.term > self.confirmed_term && known.unwrap_or_else(|| self.is_member(m.from)) {
            self.confirmed_term = m.term;
        }
        self.step(m)
    }

    /// Steps a message that passed the gate, or a local one.
    pub(crate) fn step(&mut self, mut m: Message) -> Result<()> {
        self.unsettle();
        let t = m
            .msg_type()
            .ok_or(Error::InvalidMessage(Reason::UnknownType))?;
        if self.cfg.quiesce {
            self.quiesce_on_step(&m, t);
        }
        if m.reject && matches!(t, MessageType::MsgVoteResp | MessageType::MsgPreVoteResp) {
            self.learn_commit(m.commit, m.log_term);
        }
        if m.term == 0 {
            // Local or term-less message.
        } else if m.term > self.term {
            if t == MessageType::MsgVote || t == MessageType::MsgPreVote {
                let force = m.context[..] == *CAMPAIGN_TRANSFER;
                let in_lease = self.cfg.check_quorum
                    && self.lead != NONE
                    && self.clk.election_elapsed < self.election_timeout();
                if !force && in_lease {
                    // A node that heard from a leader within the election timeout ignores
                    // vote requests: a partitioned node must not disrupt a healthy group.
                    debug!(self.cfg.logger, "ignored vote request: lease not expired";
                        "raft_id" => self.id, "from" => m.from, "type" => t.as_str_name(),
                        "msg_term" => m.term, "term" => self.term, "lead" => self.lead,
                        "remaining_ticks" => self.election_timeout() - self.clk.election_elapsed);
                    return Ok(());
                }
            }
            match t {
                // A pre-vote never changes the term.
                MessageType::MsgPreVote => {}
                // A granted pre-vote: the term moves when the election starts.
                MessageType::MsgPreVoteResp if !m.reject => {}
                _ => {
                    info!(self.cfg.logger, "received message with higher term";
                        "raft_id" => self.id, "from" => m.from, "type" => t.as_str_name(),
                        "msg_term" => m.term, "term" => self.term);
                    if matches!(
                        t,
                        MessageType::MsgApp
                            | MessageType::MsgHeartbeat
                            | MessageType::MsgQuiesce
                            | MessageType::MsgSnap
                    ) {
                        self.become_follower(m.term, m.from);
                    } else {
                        self.become_follower(m.term, NONE);
                    }
                }
            }
        } else if m.term < self.term {
            if (self.cfg.check_quorum || self.cfg.pre_vote || self.cfg.answer_stale_leader)
                && matches!(
                    t,
                    MessageType::MsgHeartbeat | MessageType::MsgQuiesce | MessageType::MsgApp
                )
            {
                // A leader cut off by a partition keeps sending at its old term. Answer so it
                // learns the new term and steps down; otherwise, with check_quorum or pre-vote,
                // the rest of the group would never be disturbed enough to tell it.
                self.send(Message {
                    r#type: MessageType::MsgAppResp as i32,
                    to: m.from,
                    ..Default::default()
                });
            } else if t == MessageType::MsgPreVote
                || (t == MessageType::MsgVote && self.cfg.answer_stale_leader)
            {
                // A candidate behind in term learns the term: otherwise a voter that is ahead
                // in term (it campaigned while cut off, say) ignores it for ever, and if that
                // voter cannot win itself (its log is behind, or its configuration is stale)
                // no election can succeed. etcd answers pre-votes only.
                debug!(self.cfg.logger, "rejected vote request: lower term";
                    "raft_id" => self.id, "from" => m.from, "type" => t.as_str_name(),
                    "msg_term" => m.term, "term" => self.term);
                self.send(Message {
                    r#type: t.vote_response() as i32,
                    to: m.from,
                    term: self.term,
                    reject: true,
                    ..self.commit_hint()
                });
            } else if t == MessageType::MsgStorageAppendResp {
                // Entries written under an older term may since have been overwritten: do not
                // mark them stable (the ABA case). A snapshot is still applied.
                if m.index != 0 {
                    debug!(self.cfg.logger, "ignored storage append response: lower term";
                        "raft_id" => self.id, "index" => m.index, "msg_term" => m.term,
                        "term" => self.term);
                }
                if let Some(s) = m.snapshot.take() {
                    self.applied_snap(&s);
                }
            } else {
                debug!(self.cfg.logger, "ignored message: lower term";
                    "raft_id" => self.id, "from" => m.from, "type" => t.as_str_name(),
                    "msg_term" => m.term, "term" => self.term);
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
                    info!(self.cfg.logger, "cast vote";
                        "raft_id" => self.id, "from" => m.from, "type" => t.as_str_name(),
                        "msg_term" => m.term, "log_term" => m.log_term, "index" => m.index,
                        "term" => self.term, "last_term" => lt, "last_index" => li);
                    // The response carries the term of the request: for a pre-vote that is
                    // a future term, which the candidate checks.
                    self.send(Message {
                        r#type: t.vote_response() as i32,
                        to: m.from,
                        term: m.term,
                        ..Default::default()
                    });
                    if t == MessageType::MsgVote {
                        self.clk.election_elapsed = 0;
                        self.vote_for(m.from);
                    }
                } else {
                    debug!(self.cfg.logger, "rejected vote request";
                        "raft_id" => self.id, "from" => m.from, "type" => t.as_str_name(),
                        "msg_term" => m.term, "log_term" => m.log_term, "index" => m.index,
                        "term" => self.term, "vote" => self.vote, "last_term" => lt,
                        "last_index" => li, "lead" => self.lead);
                    self.send(Message {
                        r#type: t.vote_response() as i32,
                        to: m.from,
                        term: self.term,
                        reject: true,
                        ..self.commit_hint()
                    });
                }
            }
            _ => match self.clk.state {
                StateRole::Leader => return self.step_leader(m, t),
                StateRole::Candidate | StateRole::PreCandidate => return self.step_candidate(m, t),
                StateRole::Follower => return self.step_follower(m, t),
            },
        }
        Ok(())
    }

    pub(super) fn step_leader(&mut self, mut m: Message, t: MessageType) -> Result<()> {
        match t {
            MessageType::MsgBeat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::MsgCheckQuorum => {
                if !self.trk.quorum_active() {
                    warn!(self.cfg.logger, "stepped down: quorum not active";
                        "raft_id" => self.id, "term" => self.term);
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
                    return Err(Error::InvalidMessage(Reason::EmptyProposal));
                }
                if self.trk.progress.get(self.id).is_none() {
                    // Removed from the configuration: this leader serves until a new one takes
                    // over, but takes no new proposals.
                    return Err(Error::ProposalDropped(DropReason::LeaderRemoved));
                }
                if self.lead_transferee() != NONE {
                    debug!(self.cfg.logger, "dropped proposal: leader transfer in progress";
                        "raft_id" => self.id, "term" => self.term,
                        "transferee" => self.lead_transferee());
                    return Err(Error::ProposalDropped(DropReason::TransferInProgress));
                }
                self.check_conf_change_proposals(&mut m.entries);
                if !self.append_entry(std::mem::take(&mut m.entries)) {
                    return Err(Error::ProposalDropped(DropReason::UncommittedBudgetFull));
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
                        return Err(Error::ProposalDropped(DropReason::TooManyPendingReads));
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
            debug!(self.cfg.logger, "ignored message: no progress for sender";
                "raft_id" => self.id, "from" => from, "type" => t.as_str_name());
            return Ok(());
        }
        match t {
            MessageType::MsgAppResp => self.handle_append_response(&m),
            MessageType::MsgHeartbeatResp => self.handle_heartbeat_response(&m),
            MessageType::MsgQuiesceResp => self.handle_quiesce_response(&m),
            MessageType::MsgSnapStatus => {
                let pr = self.trk.progress.get_mut(from).expect("checked");
                if pr.state != ProgressState::Snapshot {
                    return Ok(());
                }
                if !m.reject {
                    pr.become_probe();
                    debug!(self.cfg.logger, "snapshot succeeded, resumed replication";
                        "raft_id" => self.id, "peer" => from, "progress" => %pr);
                } else {
                    // Clear the pending snapshot first, or probing would start from the index
                    // of a snapshot that never arrived.
                    pr.pending_snapshot = 0;
                    pr.become_probe();
                    debug!(self.cfg.logger, "snapshot failed, resumed replication";
                        "raft_id" => self.id, "peer" => from, "progress" => %pr);
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
                debug!(self.cfg.logger, "peer unreachable";
                    "raft_id" => self.id, "peer" => from, "progress" => %pr);
            }
            MessageType::MsgTransferLeader => self.handle_transfer_leader(from),
            _ => {}
        }
        Ok(())
    }
}
