//! Quiescence: an idle group stops heartbeating and its followers stop their election timers
//! (`Config::quiesce`; the argument is in docs/quiescence.md).
//!
//! The exchange: at a heartbeat, a leader that [`can_quiesce`](Raft::can_quiesce) sends
//! `MsgQuiesce` (a heartbeat that also says "stop your timer") instead of `MsgHeartbeat` to
//! every peer that has not answered one yet. A follower that holds every entry the leader
//! committed goes quiet and answers `MsgQuiesceResp`. Once every peer has answered, the
//! leader goes quiet too. A quiet node's tick only counts time (leases keep measuring it).
//!
//! Waking: anything but the exchange itself wakes a node (a message, a proposal or read, a
//! configuration change, `wake()`, a peer reported down). A follower woken by anyone but its
//! leader tells the leader (a `MsgHeartbeatResp`), so the leader wakes and heartbeats again;
//! the group goes quiet again at a later heartbeat if it is still idle.

use slog::{debug, info};

use super::*;

impl<S: Storage> Raft<S> {
    /// Whether this node is quiet (its tick only counts time).
    pub(crate) fn is_quiet(&self) -> bool {
        self.clk.quiet
    }

    /// Whether this leader may let its group go quiet: nothing is pending and every peer holds
    /// and knows every entry of the log.
    pub(super) fn can_quiesce(&self) -> bool {
        if !self.cfg.quiesce || self.clk.state != StateRole::Leader {
            return false;
        }
        let last = self.raft_log.last_index();
        self.lead_transferee() == NONE
            && self.raft_log.committed == last
            && self.committed_entry_in_current_term()
            && self.pending_conf_index() <= self.raft_log.committed
            && !self.trk.config.is_joint()
            && self.read_only().is_none_or(|ro| !ro.has_pending())
            && self.trk.progress.iter().all(|(_, pr)| pr.matched == last)
    }

    /// The leader's heartbeat when it can quiesce: `MsgQuiesce` to each peer that has not
    /// answered one in this round. Returns false (and forgets every answer) when it cannot.
    pub(super) fn bcast_quiesce(&mut self, ctx: &Bytes) -> bool {
        if !self.can_quiesce() {
            self.forget_quiet_peers();
            return false;
        }
        let (id, commit) = (self.id, self.raft_log.committed);
        let round = (self.clk.ticks % u64::from(u16::MAX)) as u16 + 1;
        // By position, as flush_appends does: no id list allocated per heartbeat.
        let mut k = 0;
        while let Some(pid) = self.trk.progress.id_at(k) {
            k += 1;
            let pr = self.trk.progress.get_mut(pid).expect("id from the map");
            if pid == id || pr.quiet {
                continue;
            }
            pr.quiesce_round = round;
            pr.sent_commit = commit;
            self.send(Message {
                r#type: MessageType::MsgQuiesce as i32,
                to: pid,
                commit,
                index: u64::from(round),
                context: ctx.clone(),
                ..Default::default()
            });
        }
        self.maybe_go_quiet();
        true
    }

    /// Every peer's answer to this round is forgotten: the next quiescing round asks all.
    fn forget_quiet_peers(&mut self) {
        for (_, pr) in self.trk.progress.iter_mut() {
            pr.quiet = false;
            pr.quiesce_round = 0;
        }
    }

    /// A follower's handling of its leader's `MsgQuiesce` (the leader of this term, checked by
    /// the caller, which also restarted the election timer).
    pub(super) fn handle_quiesce(&mut self, m: Message) {
        let commit = m.commit.min(self.raft_log.last_index());
        if commit > self.raft_log.committed {
            self.raft_log.commit_to(commit);
        }
        // Quiet only with every entry the leader committed: one that lacks some would never
        // get them while the group is quiet.
        let caught_up = self.raft_log.committed >= m.commit;
        if !self.cfg.quiesce || !caught_up {
            // Answer as to a heartbeat: the leader will not go quiet without this node.
            self.send(Message {
                r#type: MessageType::MsgHeartbeatResp as i32,
                to: m.from,
                context: m.context,
                ..Default::default()
            });
            return;
        }
        if !self.clk.quiet {
            debug!(self.cfg.logger, "went quiet";
                "raft_id" => self.id, "term" => self.term, "lead" => self.lead,
                "commit" => self.raft_log.committed);
        }
        self.clk.quiet = true;
        self.raft_log.unstable.release_buffers();
        self.send(Message {
            r#type: MessageType::MsgQuiesceResp as i32,
            to: m.from,
            index: m.index,
            context: m.context,
            ..Default::default()
        });
    }

    /// The leader's handling of a `MsgQuiesceResp` (the sender has progress, checked by the
    /// caller).
    pub(super) fn handle_quiesce_response(&mut self, m: &Message) {
        // It answers a heartbeat: the peer is active, and lease and read acks count.
        self.handle_heartbeat_response(m);
        if !self.can_quiesce() {
            return;
        }
        let pr = self
            .trk
            .progress
            .get_mut(m.from)
            .expect("checked by caller");
        // Only the answer to this round's MsgQuiesce counts: an old or duplicated one may
        // come from a follower that has woken since.
        if pr.quiesce_round != 0 && m.index == u64::from(pr.quiesce_round) {
            pr.quiet = true;
            self.maybe_go_quiet();
        }
    }

    fn maybe_go_quiet(&mut self) {
        let id = self.id;
        if self.clk.quiet || !self.trk.progress.iter().all(|(p, pr)| p == id || pr.quiet) {
            return;
        }
        info!(self.cfg.logger, "group quiesced";
            "raft_id" => self.id, "term" => self.term, "commit" => self.raft_log.committed);
        self.clk.quiet = true;
        self.raft_log.unstable.release_buffers();
    }

    /// What a step does to quiescence: `m` (stepped next) wakes a quiet node unless it is part
    /// of the quiescing exchange or an acknowledgement of the node's own storage; on a leader
    /// still collecting answers, anything else from a peer takes back that peer's answer.
    pub(super) fn quiesce_on_step(&mut self, m: &Message, t: MessageType) {
        // `MsgQuiesce` needs no arm: from the leader it wakes a quiet follower, whose handling
        // of it makes it quiet again at once (if it holds every committed entry).
        let keeps_quiet = match t {
            MessageType::MsgQuiesceResp => true,
            MessageType::MsgStorageAppendResp | MessageType::MsgStorageApplyResp => true,
            // A leader's acknowledgement of its own append needs no arm: a leader is not quiet
            // while its own match is behind its log, and a proposal wakes it.
            _ => false,
        };
        if keeps_quiet {
            return;
        }
        if !self.clk.quiet {
            if self.clk.state == StateRole::Leader && m.from != self.id {
                if let Some(pr) = self.trk.progress.get_mut(m.from) {
                    pr.quiet = false;
                    pr.quiesce_round = 0;
                }
            }
            return;
        }
        // A message from the leader wakes the follower itself; from anyone else, the follower
        // tells its leader, which then heartbeats again.
        let from_leader = m.from == self.lead && m.from != NONE;
        self.wake(!from_leader);
    }

    /// Wakes the node. A follower with `tell_leader` sends its leader a heartbeat answer,
    /// which wakes the leader in turn.
    pub(crate) fn wake(&mut self, tell_leader: bool) {
        if !self.clk.quiet {
            if self.clk.state == StateRole::Leader {
                // A leader still collecting answers starts the round over.
                self.forget_quiet_peers();
            }
            return;
        }
        self.clk.quiet = false;
        debug!(self.cfg.logger, "woke"; "raft_id" => self.id, "term" => self.term);
        match self.clk.state {
            StateRole::Leader => {
                self.forget_quiet_peers();
                // A full check-quorum window from now: nobody answered while it was quiet.
                self.clk.election_elapsed = 0;
                self.clk.heartbeat_elapsed = 0;
            }
            _ => {
                if tell_leader && self.lead != NONE && self.lead != self.id {
                    let lead = self.lead;
                    self.send(Message {
                        r#type: MessageType::MsgHeartbeatResp as i32,
                        to: lead,
                        ..Default::default()
                    });
                }
            }
        }
    }

    /// The application's failure detector reports `id` down. A follower whose leader it is
    /// resumes its election timer; a leader resumes heartbeating (and probing `id`).
    pub(crate) fn report_peer_down(&mut self, id: u64) {
        match self.clk.state {
            StateRole::Leader => {
                if id != self.id && self.trk.progress.get(id).is_some() {
                    self.wake(false);
                }
            }
            _ => {
                if id == self.lead {
                    self.wake(false);
                }
            }
        }
    }
}
