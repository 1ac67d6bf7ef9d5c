//! Leadership transfer.

use slog::{debug, info};

use super::*;

impl<S: Storage> Raft<S> {
    pub(super) fn handle_transfer_leader(&mut self, transferee: u64) {
        let Some(pr) = self.trk.progress.get(transferee) else {
            return;
        };
        if pr.is_learner {
            debug!(self.cfg.logger, "ignored leader transfer: transferee is a learner";
                "raft_id" => self.id, "transferee" => transferee);
            return;
        }
        let last = self.lead_transferee();
        if last != NONE {
            if last == transferee {
                debug!(self.cfg.logger, "ignored leader transfer: already in progress";
                    "raft_id" => self.id, "term" => self.term, "transferee" => transferee);
                return;
            }
            self.abort_leader_transfer();
            info!(self.cfg.logger, "aborted leader transfer";
                "raft_id" => self.id, "term" => self.term, "transferee" => last);
        }
        if transferee == self.id {
            debug!(self.cfg.logger, "ignored leader transfer: already leader";
                "raft_id" => self.id);
            return;
        }
        info!(self.cfg.logger, "started leader transfer";
            "raft_id" => self.id, "term" => self.term, "transferee" => transferee);
        // The transfer must finish within an election timeout.
        self.clk.election_elapsed = 0;
        self.leader_mut().lead_transferee = transferee;
        let matched = self.trk.progress.get(transferee).map_or(0, |p| p.matched);
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(transferee);
            info!(self.cfg.logger, "sent MsgTimeoutNow: transferee up to date";
                "raft_id" => self.id, "to" => transferee);
        } else {
            self.send_append(transferee);
        }
    }

    pub(super) fn abort_leader_transfer(&mut self) {
        if let Some(l) = self.ls.as_deref_mut() {
            l.lead_transferee = NONE;
        }
    }
}
