//! Leadership transfer.

use slog::{debug, info};

use super::*;

impl<S: Storage> Raft<S> {
    pub(super) fn handle_transfer_leader(&mut self, transferee: u64) {
        let Some(pr) = self.trk.progress.get(transferee) else {
            return;
        };
        if pr.is_learner {
            debug!(
                self.cfg.logger,
                "{:x} is learner. Ignored transferring leadership", self.id
            );
            return;
        }
        let last = self.lead_transferee;
        if last != NONE {
            if last == transferee {
                info!(self.cfg.logger, "{:x} [term {}] transfer leadership to {:x} is in progress, ignores request to same node {:x}", self.id, self.term, transferee, transferee);
                return;
            }
            self.abort_leader_transfer();
            info!(
                self.cfg.logger,
                "{:x} [term {}] abort previous transferring leadership to {:x}",
                self.id,
                self.term,
                last
            );
        }
        if transferee == self.id {
            debug!(
                self.cfg.logger,
                "{:x} is already leader. Ignored transferring leadership to self", self.id
            );
            return;
        }
        info!(
            self.cfg.logger,
            "{:x} [term {}] starts to transfer leadership to {:x}", self.id, self.term, transferee
        );
        // The transfer must finish within an election timeout.
        self.election_elapsed = 0;
        self.lead_transferee = transferee;
        let matched = self.trk.progress.get(transferee).map_or(0, |p| p.matched);
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(transferee);
            info!(
                self.cfg.logger,
                "{:x} sends MsgTimeoutNow to {:x} immediately as {:x} already has up-to-date log",
                self.id,
                transferee,
                transferee
            );
        } else {
            self.send_append(transferee);
        }
    }

    pub(super) fn abort_leader_transfer(&mut self) {
        self.lead_transferee = NONE;
    }
}
