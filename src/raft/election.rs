//! Role changes, ticks and elections.

use bytes::Bytes;
use slog::{debug, error, info, warn};

use super::*;

impl<S: Storage> Raft<S> {
    pub(super) fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = NONE;
        }
        self.lead = NONE;
        self.clk.election_elapsed = 0;
        self.clk.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.abort_leader_transfer();
        self.trk.reset_votes();
        // Per-peer progress exists only on a leader; it is built in become_leader.
        self.trk.progress = ProgressMap::default();
        self.ls = None;
        self.clk.quiet = false;
    }

    pub(super) fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.clk.state = StateRole::Follower;
        info!(self.cfg.logger, "became follower";
            "raft_id" => self.id, "term" => self.term, "lead" => self.lead);
    }

    pub(super) fn become_candidate(&mut self) {
        debug_assert!(
            self.clk.state != StateRole::Leader,
            "invalid transition [leader -> candidate]"
        );
        let term = self.term + 1;
        self.reset(term);
        self.vote_for(self.id);
        self.clk.state = StateRole::Candidate;
        info!(self.cfg.logger, "became candidate"; "raft_id" => self.id, "term" => self.term);
    }

    pub(super) fn become_pre_candidate(&mut self) {
        debug_assert!(
            self.clk.state != StateRole::Leader,
            "invalid transition [leader -> pre-candidate]"
        );
        // A pre-candidate keeps its term and vote: nothing durable changes until it wins.
        self.trk.reset_votes();
        self.trk.progress = ProgressMap::default();
        self.lead = NONE;
        self.clk.quiet = false;
        self.clk.state = StateRole::PreCandidate;
        info!(self.cfg.logger, "became pre-candidate"; "raft_id" => self.id, "term" => self.term);
    }

    pub(super) fn become_leader(&mut self) {
        debug_assert!(
            self.clk.state != StateRole::Follower,
            "invalid transition [follower -> leader]"
        );
        let term = self.term;
        self.reset(term);
        self.lead = self.id;
        self.clk.state = StateRole::Leader;
        self.build_progress();
        let last = self.raft_log.last_index();
        if let Some(pr) = self.trk.progress.get_mut(self.id) {
            // The leader's own entries are matched once durable; it replicates to itself.
            pr.become_replicate();
            pr.recent_active = true;
        }
        // Conservatively treat every entry up to the last as a possible unapplied conf change.
        self.leader_mut().pending_conf_index = last;
        // The empty entry of the new term; it does not count toward the uncommitted limit.
        let appended = self.append_entry(vec![Entry::default()]);
        debug_assert!(appended, "the empty entry is never refused");
        info!(self.cfg.logger, "became leader"; "raft_id" => self.id, "term" => self.term);
    }

    /// Fills the progress map with a fresh Progress per member (leader only, or temporarily
    /// for a configuration change).
    pub(super) fn build_progress(&mut self) {
        let last = self.raft_log.last_index();
        let mut map = ProgressMap::default();
        let cfg = &self.trk.config;
        let mut ids: Vec<u64> = cfg.voters.ids();
        ids.extend(cfg.learners_iter());
        ids.extend(cfg.learners_next_iter());
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let mut pr =
                Progress::new(last + 1, self.trk.max_inflight, self.trk.max_inflight_bytes);
            pr.is_learner = self.trk.config.is_learner(id);
            if id == self.id {
                pr.matched = last;
            }
            map.insert(id, pr);
        }
        self.trk.progress = map;
    }

    // ---------------------------------------------------------------------------------------
    // Ticks.

    #[inline]
    pub(crate) fn tick(&mut self) {
        self.clk.ticks += 1;
        if self.clk.quiet {
            // A quiet group's tick only counts time: no heartbeats, no election timer.
            return;
        }
        match self.clk.state {
            StateRole::Leader => {
                self.unsettle();
                self.tick_heartbeat()
            }
            // Anything beyond the clock goes through `step`, which unsettles.
            _ => self.tick_election(),
        }
    }

    #[inline]
    pub(super) fn tick_election(&mut self) {
        self.clk.election_elapsed += 1;
        // The cheap clock test first: an idle follower's tick is an increment and a compare.
        if self.past_election_timeout() && self.promotable() {
            self.clk.election_elapsed = 0;
            self.hup_local();
        }
    }

    pub(super) fn hup_local(&mut self) {
        let _ = self.step(Message {
            r#type: MessageType::MsgHup as i32,
            from: self.id,
            ..Default::default()
        });
    }

    pub(super) fn tick_heartbeat(&mut self) {
        self.clk.heartbeat_elapsed += 1;
        self.clk.election_elapsed += 1;
        if self.clk.election_elapsed >= self.election_timeout() {
            self.clk.election_elapsed = 0;
            if self.cfg.check_quorum {
                let _ = self.step(Message {
                    r#type: MessageType::MsgCheckQuorum as i32,
                    from: self.id,
                    ..Default::default()
                });
            }
            // A transfer that did not finish within an election timeout is abandoned.
            if self.clk.state == StateRole::Leader && self.lead_transferee() != NONE {
                self.abort_leader_transfer();
            }
        }
        if self.clk.state != StateRole::Leader {
            return;
        }
        if self.clk.heartbeat_elapsed as usize >= self.cfg.heartbeat_tick {
            self.clk.heartbeat_elapsed = 0;
            let _ = self.step(Message {
                r#type: MessageType::MsgBeat as i32,
                from: self.id,
                ..Default::default()
            });
        }
    }

    // ---------------------------------------------------------------------------------------
    // Elections.

    pub(super) fn hup(&mut self, t: CampaignType) {
        if self.clk.state == StateRole::Leader {
            debug!(self.cfg.logger, "ignored campaign: already leader";
                "raft_id" => self.id, "term" => self.term);
            return;
        }
        if !self.promotable() {
            warn!(self.cfg.logger, "cannot campaign: not promotable";
                "raft_id" => self.id, "term" => self.term);
            return;
        }
        if self.has_unapplied_conf_changes() {
            warn!(self.cfg.logger, "cannot campaign: unapplied configuration changes";
                "raft_id" => self.id, "term" => self.term, "applied" => self.raft_log.applied,
                "commit" => self.raft_log.committed);
            return;
        }
        // Remote terms may run at most MAX_TERM_JUMP ahead of ours and stay below
        // MAX_REMOTE_VALUE, so `term + 1` never overflows and a hostile message cannot use up
        // the term space in one go.
        if self.term >= MAX_REMOTE_VALUE {
            error!(self.cfg.logger, "cannot campaign: term at limit";
                "raft_id" => self.id, "term" => self.term);
            return;
        }
        info!(self.cfg.logger, "starting election";
            "raft_id" => self.id, "term" => self.term, "campaign" => ?t);
        self.campaign(t);
    }

    pub(super) fn has_unapplied_conf_changes(&self) -> bool {
        self.has_conf_change_in(self.raft_log.committed)
    }

    /// Whether the log holds a configuration change past the applied index, up to `hi`. A
    /// storage error counts as yes: refusing to campaign (or voting as if the configuration
    /// may change) is the safe answer to not being able to read the log.
    pub(super) fn has_conf_change_in(&self, hi: u64) -> bool {
        let applied = self.raft_log.applied;
        if applied >= hi {
            return false;
        }
        let mut found = false;
        let page = self.cfg.max_committed_size_per_ready;
        let res = self.raft_log.scan(applied + 1, hi + 1, page, |ents| {
            if ents.iter().any(|e| {
                matches!(
                    e.entry_type(),
                    EntryType::EntryConfChange | EntryType::EntryConfChangeV2
                )
            }) {
                found = true;
            }
            Ok(())
        });
        if let Err(e) = res {
            if self.raft_log.waits_for_handed_over(applied + 1, &e) {
                // Entries handed over to the application and not written back yet: an
                // expected wait until `advance`, not a broken storage.
                debug!(self.cfg.logger, "unapplied entries not written back yet";
                    "raft_id" => self.id, "applied" => applied, "hi" => hi);
            } else {
                error!(self.cfg.logger, "cannot scan unapplied entries";
                    "raft_id" => self.id, "applied" => applied, "hi" => hi, "error" => %e);
            }
            return true;
        }
        found
    }

    pub(super) fn campaign(&mut self, t: CampaignType) {
        let (term, vote_msg) = if t == CampaignType::PreElection {
            self.become_pre_candidate();
            // Pre-votes are asked for the next term, without moving to it.
            (self.term + 1, MessageType::MsgPreVote)
        } else {
            self.become_candidate();
            (self.term, MessageType::MsgVote)
        };
        let (last_term, last_index) = self.raft_log.last_entry_id();
        for id in self.trk.voter_nodes() {
            if id == self.id {
                // The vote for itself counts once it is durable: it travels through
                // msgs_after_append and comes back on advance.
                self.send(Message {
                    r#type: vote_msg.vote_response() as i32,
                    to: id,
                    term,
                    ..Default::default()
                });
                continue;
            }
            debug!(self.cfg.logger, "sent vote request";
                "raft_id" => self.id, "to" => id, "type" => vote_msg.as_str_name(),
                "msg_term" => term, "log_term" => last_term, "index" => last_index);
            let context = if t == CampaignType::Transfer {
                Bytes::from_static(CAMPAIGN_TRANSFER)
            } else {
                Bytes::new()
            };
            self.send(Message {
                r#type: vote_msg as i32,
                to: id,
                term,
                index: last_index,
                log_term: last_term,
                context,
                ..Default::default()
            });
        }
    }

    pub(super) fn poll(
        &mut self,
        id: u64,
        t: MessageType,
        granted: bool,
    ) -> (usize, usize, VoteResult) {
        if granted {
            debug!(self.cfg.logger, "received vote";
                "raft_id" => self.id, "from" => id, "type" => t.as_str_name(), "term" => self.term);
        } else {
            debug!(self.cfg.logger, "received vote rejection";
                "raft_id" => self.id, "from" => id, "type" => t.as_str_name(), "term" => self.term);
        }
        self.trk.record_vote(id, granted);
        self.trk.tally_votes()
    }

    pub(super) fn step_candidate(&mut self, m: Message, t: MessageType) -> Result<()> {
        // A pre-candidate counts pre-votes, a candidate votes; a vote response of the other
        // kind is stale (for example from an earlier pre-vote round).
        let my_vote_resp = if self.clk.state == StateRole::PreCandidate {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        match t {
            MessageType::MsgProp => {
                debug!(self.cfg.logger, "dropped proposal: no leader";
                    "raft_id" => self.id, "term" => self.term);
                return Err(Error::ProposalDropped(DropReason::NoLeader));
            }
            MessageType::MsgApp => {
                self.become_follower(m.term, m.from);
                return self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::MsgQuiesce => {
                self.become_follower(m.term, m.from);
                self.handle_quiesce(m);
            }
            MessageType::MsgSnap => {
                self.become_follower(m.term, m.from);
                return self.handle_snapshot(m);
            }
            _ if t == my_vote_resp => {
                let (gr, rj, res) = self.poll(m.from, t, !m.reject);
                info!(self.cfg.logger, "counted votes";
                    "raft_id" => self.id, "type" => t.as_str_name(), "granted" => gr,
                    "rejected" => rj, "term" => self.term);
                match res {
                    VoteResult::Won => {
                        if self.clk.state == StateRole::PreCandidate {
                            self.campaign(CampaignType::Election);
                        } else if self.trk.vote(self.id) != Some(true)
                            && self.trk.config.voters.contains(self.id)
                        {
                            // A quorum of other voters granted the vote, but this node's own
                            // vote (and with it its term) is not durable yet: it comes back
                            // through the append thread or `advance`. Leading now would send
                            // appends of a term this node could forget in a crash; restarted,
                            // it could then win the same term again (the others' votes for it
                            // stand) with a different log: two entries with one index and
                            // term. Wait for the durable vote.
                            debug!(self.cfg.logger, "won the election; waiting for own vote to be durable";
                                "raft_id" => self.id, "term" => self.term);
                        } else {
                            self.become_leader();
                            self.bcast_append();
                        }
                    }
                    VoteResult::Lost => {
                        // The pre-candidate's term was never bumped, so this is its own term.
                        let term = self.term;
                        self.become_follower(term, NONE);
                    }
                    VoteResult::Pending => {}
                }
            }
            MessageType::MsgTimeoutNow => {
                debug!(self.cfg.logger, "ignored MsgTimeoutNow: not a follower";
                    "raft_id" => self.id, "from" => m.from, "term" => self.term,
                    "state" => %self.clk.state);
            }
            _ => {}
        }
        Ok(())
    }

    /// What a vote rejection carries besides the rejection (`vote_rejection_carries_commit`):
    /// this node's commit index and the term of the entry there. A candidate that holds that
    /// entry learns the commit index from it; see `learn_commit`.
    pub(super) fn commit_hint(&self) -> Message {
        if !self.cfg.vote_rejection_carries_commit {
            return Message::default();
        }
        let commit = self.raft_log.committed;
        match self.raft_log.term(commit) {
            Ok(log_term) if commit > 0 => Message {
                commit,
                log_term,
                ..Default::default()
            },
            _ => Message::default(),
        }
    }

    /// A vote rejection said entry `commit` (of term `log_term`) is committed in the
    /// rejecter's log. If this node's log holds the same entry, the same prefix is committed
    /// here (Log Matching), so the commit index may move to it, as a leader's heartbeat would
    /// move it.
    ///
    /// Why: after a configuration change that removes a node, the remaining voters may not
    /// have heard that the change committed, so they keep the old configuration, which needs
    /// the removed node's vote; the removed node, whose log is longer, refuses it and cannot
    /// campaign itself. Learning the commit index from that refusal lets them apply the change
    /// and elect among themselves (docs/membership.md).
    pub(super) fn learn_commit(&mut self, commit: u64, log_term: u64) {
        if self.clk.state == StateRole::Leader
            || commit <= self.raft_log.committed
            || !self.raft_log.match_term(commit, log_term)
        {
            return;
        }
        let before = self.raft_log.committed;
        self.raft_log.commit_to(commit);
        debug_assert!(self.raft_log.committed == commit && commit > before);
        info!(self.cfg.logger, "learned commit index from a vote rejection";
            "commit" => commit, "log_term" => log_term, "was" => before, "term" => self.term);
    }
}
