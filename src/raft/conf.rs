//! Configuration changes: validating proposals, applying committed changes, and the apply cursor that drives automatic leave-joint.

use slog::{debug, info, warn};

use super::*;

impl<S: Storage> Raft<S> {
    /// Validates conf-change proposals; a refused one becomes an empty normal entry, which is
    /// still appended.
    pub(super) fn check_conf_change_proposals(&mut self, entries: &mut [Entry]) {
        let last = self.raft_log.last_index();
        for (i, e) in entries.iter_mut().enumerate() {
            let cc = match e.entry_type() {
                EntryType::EntryConfChange => {
                    match <ConfChange as prost::Message>::decode(e.data.clone()) {
                        Ok(cc) => cc.as_v2(),
                        Err(_) => {
                            info!(self.cfg.logger, "ignored conf change proposal: undecodable";
                                "raft_id" => self.id);
                            *e = Entry::default();
                            continue;
                        }
                    }
                }
                EntryType::EntryConfChangeV2 => {
                    match <ConfChangeV2 as prost::Message>::decode(e.data.clone()) {
                        Ok(cc) => cc,
                        Err(_) => {
                            info!(self.cfg.logger, "ignored conf change proposal: undecodable";
                                "raft_id" => self.id);
                            *e = Entry::default();
                            continue;
                        }
                    }
                }
                EntryType::EntryNormal => continue,
            };
            let already_pending = self.pending_conf_index() > self.raft_log.applied;
            let already_joint = self.trk.config.voters.is_joint();
            let wants_leave_joint = cc.changes.is_empty();
            let failed = if already_pending {
                Some(format!(
                    "possible unapplied conf change at index {} (applied to {})",
                    self.pending_conf_index(),
                    self.raft_log.applied
                ))
            } else if already_joint && !wants_leave_joint {
                Some("must transition out of joint config first".to_string())
            } else if !already_joint && wants_leave_joint {
                Some("not in joint state; refusing empty conf change".to_string())
            } else {
                None
            };
            match failed {
                Some(why) if !self.cfg.disable_conf_change_validation => {
                    info!(self.cfg.logger, "ignored conf change proposal";
                        "raft_id" => self.id,
                        "change" => crate::describe::describe_conf_change(&cc),
                        "config" => %self.trk.config, "reason" => why);
                    *e = Entry::default();
                }
                _ => self.leader_mut().pending_conf_index = last + i as u64 + 1,
            }
        }
    }

    /// The application applied entries up to `index` (`size` encoded bytes, `payload` payload
    /// bytes): the apply window and the uncommitted budget open up.
    pub(super) fn on_applied(&mut self, index: u64, size: u64, payload: u64) {
        self.applied_to(index, size);
        self.reduce_uncommitted_size(payload);
    }

    pub(super) fn applied_to(&mut self, index: u64, size: u64) {
        let old = self.raft_log.applied;
        let new_applied = index.max(old);
        self.raft_log.applied_to(new_applied, size);
        if self.trk.config.auto_leave
            && new_applied >= self.pending_conf_index()
            && self.clk.state == StateRole::Leader
        {
            // Leave the joint configuration now that it is applied. An empty V2 entry has no
            // payload, so the size limit cannot refuse it; a transfer in progress can, and
            // then the next applied entry tries again.
            let m = Message {
                r#type: MessageType::MsgProp as i32,
                from: self.id,
                entries: vec![Entry {
                    r#type: EntryType::EntryConfChangeV2 as i32,
                    ..Default::default()
                }],
                ..Default::default()
            };
            match self.step(m) {
                Ok(()) => info!(self.cfg.logger, "leaving joint configuration automatically";
                    "raft_id" => self.id, "config" => %self.trk.config),
                Err(e) => debug!(self.cfg.logger, "not leaving joint configuration automatically";
                    "raft_id" => self.id, "config" => %self.trk.config, "error" => %e),
            }
        }
    }

    pub(super) fn applied_snap(&mut self, s: &Snapshot) {
        let index = s.index();
        self.raft_log.stable_snap_to(index);
        self.applied_to(index, 0);
    }

    // ---------------------------------------------------------------------------------------
    // Configuration.

    /// Applies a committed configuration change. An invalid change leaves the configuration as
    /// it was and returns the error; every node applies the same entries, so every node makes
    /// the same decision.
    pub(crate) fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        if let Some(bad) = cc
            .changes
            .iter()
            .find(|c| crate::raftpb::is_local_msg_target(c.node_id))
        {
            // The local storage threads' ids can never be members: messages to them would be
            // taken for storage work.
            let e = Error::ConfChange(format!("node id {:#x} is reserved", bad.node_id));
            warn!(self.cfg.logger, "refused conf change";
                "raft_id" => self.id, "change" => crate::describe::describe_conf_change(cc),
                "error" => %e);
            return Err(e);
        }
        let had_progress = !self.trk.progress.is_empty();
        if !had_progress {
            self.build_progress();
        }
        let res = {
            let changer = Changer {
                tracker: &self.trk,
                last_index: self.raft_log.last_index(),
            };
            if cc.leave_joint() {
                changer.leave_joint()
            } else if let Some(auto_leave) = cc.enter_joint() {
                changer.enter_joint(auto_leave, &cc.changes)
            } else {
                changer.simple(&cc.changes)
            }
        };
        match res {
            Ok((cfg, prs)) => {
                self.trk.config = cfg;
                self.trk.progress = prs;
                Ok(self.switch_to_config())
            }
            Err(e) => {
                if !had_progress {
                    self.trk.progress = ProgressMap::default();
                }
                warn!(self.cfg.logger, "refused conf change";
                    "raft_id" => self.id, "change" => crate::describe::describe_conf_change(cc),
                    "error" => %e);
                Err(e)
            }
        }
    }

    /// Takes up a configuration already installed in the tracker at start-up or from a
    /// snapshot (no leader-side work to do).
    pub(super) fn switch_to_config_loaded(&mut self) -> ConfState {
        info!(self.cfg.logger, "switched configuration";
            "raft_id" => self.id, "config" => %self.trk.config);
        self.clk.is_learner = self.trk.config.is_learner(self.id);
        if self.clk.state != StateRole::Leader {
            self.trk.progress = ProgressMap::default();
        }
        self.trk.conf_state()
    }

    pub(super) fn switch_to_config(&mut self) -> ConfState {
        info!(self.cfg.logger, "switched configuration";
            "raft_id" => self.id, "config" => %self.trk.config);
        let cs = self.trk.conf_state();
        let present = self.trk.config.contains(self.id);
        self.clk.is_learner = self.trk.config.is_learner(self.id);
        if self.clk.state != StateRole::Leader {
            self.trk.progress = ProgressMap::default();
            return cs;
        }
        if !present || self.clk.is_learner || !self.trk.config.voters.contains(self.id) {
            // This leader was removed or demoted. It keeps leading (serving reads of the
            // committed state and heartbeats) until a new leader takes over, unless told to
            // step down.
            if self.cfg.step_down_on_removal {
                let term = self.term;
                self.become_follower(term, NONE);
            }
            return cs;
        }
        if cs.voters.is_empty() {
            return cs;
        }
        if self.maybe_commit() {
            // More entries are committed under the new configuration: tell everyone.
            self.bcast_append();
        } else {
            // Probe new members at once rather than waiting for a heartbeat or a proposal.
            if self.cfg.append_mode == AppendMode::Batched {
                let ids: Vec<u64> = self.trk.progress.ids().collect();
                for id in ids {
                    if id != self.id {
                        self.send_append_if_nonempty(id);
                    }
                }
            } else {
                let ids: Vec<u64> = self.trk.progress.ids().collect();
                for id in ids {
                    if id != self.id {
                        self.maybe_send_append(id, false);
                    }
                }
            }
        }
        if self.lead_transferee() != NONE
            && !self.trk.config.voters.contains(self.lead_transferee())
        {
            self.abort_leader_transfer();
        }
        cs
    }

    pub(super) fn send_append_if_nonempty(&mut self, id: u64) {
        // In batched mode the flush sends at most one empty append; a probe of a new member
        // is exactly that.
        self.send_append(id);
    }
}
