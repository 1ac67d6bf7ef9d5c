//! Computing the configuration (and progress) that results from a configuration change.

use super::invariants::check_invariants;
use crate::error::{Error, Result};
use crate::quorum::MajorityConfig;
use crate::raftpb::{ConfChangeSingle, ConfChangeType};
use crate::tracker::{Config, Progress, ProgressMap, ProgressTracker};

/// Computes new configurations from the tracker's current one. It never modifies the tracker:
/// each method returns the new [`Config`] and [`ProgressMap`] for the caller to install, or an
/// error (with etcd's text) when the change is not allowed.
#[derive(Debug, Clone, Copy)]
pub struct Changer<'a> {
    /// The tracker holding the current configuration and progress.
    pub tracker: &'a ProgressTracker,
    /// The last index of the log; new peers start probing from `max(last_index, 1)`.
    pub last_index: u64,
}

fn err<T>(text: &str) -> Result<T> {
    Err(Error::ConfChange(text.to_string()))
}

impl<'a> Changer<'a> {
    /// Enters a joint configuration: the current voters become the outgoing half and the
    /// changes apply to the incoming half. `auto_leave` is recorded in the result; it asks the
    /// leader to leave the joint configuration on its own once it is committed.
    pub fn enter_joint(
        &self,
        auto_leave: bool,
        ccs: &[ConfChangeSingle],
    ) -> Result<(Config, ProgressMap)> {
        let mut s = self.check_and_copy()?;
        if s.cfg.is_joint() {
            return err("config is already joint");
        }
        if s.cfg.voters.incoming.is_empty() {
            // An empty config may grow by simple changes (bootstrap), but never go joint.
            return err("can't make a zero-voter config joint");
        }
        s.cfg.voters.outgoing = s.cfg.voters.incoming.clone();
        s.apply(ccs)?;
        s.cfg.auto_leave = auto_leave;
        s.finish()
    }

    /// Leaves the joint configuration: the outgoing half is dropped with the progress of
    /// nodes that are no longer members, and staged learners become learners.
    pub fn leave_joint(&self) -> Result<(Config, ProgressMap)> {
        let mut s = self.check_and_copy()?;
        if !s.cfg.is_joint() {
            return err("can't leave a non-joint config");
        }
        if let Some(next) = s.cfg.learners_next.take() {
            for id in &next {
                set_add(&mut s.cfg.learners, id);
                if let Some(pr) = s.prs.get_mut(id) {
                    pr.is_learner = true;
                }
            }
        }
        let outgoing = std::mem::take(&mut s.cfg.voters.outgoing);
        for id in &outgoing {
            if !s.cfg.voters.incoming.contains(id) && !s.cfg.is_learner(id) {
                s.prs.remove(id);
            }
        }
        s.cfg.auto_leave = false;
        s.finish()
    }

    /// Applies changes that alter the voters by at most one node (the incoming voters before
    /// and after differ in at most one id), without a joint configuration. Not allowed while
    /// joint.
    pub fn simple(&self, ccs: &[ConfChangeSingle]) -> Result<(Config, ProgressMap)> {
        let mut s = self.check_and_copy()?;
        if s.cfg.is_joint() {
            return err("can't apply simple config change in joint config");
        }
        s.apply(ccs)?;
        if symdiff(&self.tracker.config.voters.incoming, &s.cfg.voters.incoming) > 1 {
            return err("more than one voter changed without entering joint config");
        }
        s.finish()
    }

    /// Checks the current state and copies it to work on.
    fn check_and_copy(&self) -> Result<Scratch> {
        let t = self.tracker;
        check_invariants(&t.config, &t.progress)?;
        Ok(Scratch {
            cfg: t.config.clone(),
            prs: t.progress.clone(),
            next_idx: self.last_index.max(1),
            max_inflight: t.max_inflight,
            max_inflight_bytes: t.max_inflight_bytes,
        })
    }
}

/// The number of ids in exactly one of the two sets.
fn symdiff(a: &MajorityConfig, b: &MajorityConfig) -> usize {
    let only_a = a.iter().filter(|&id| !b.contains(id)).count();
    let only_b = b.iter().filter(|&id| !a.contains(id)).count();
    only_a + only_b
}

/// Adds `id` to a set that may be absent, creating it.
fn set_add(set: &mut Option<MajorityConfig>, id: u64) {
    set.get_or_insert_with(MajorityConfig::new).insert(id);
}

/// Removes `id` from a set that may be absent; a set left empty becomes absent.
fn set_remove(set: &mut Option<MajorityConfig>, id: u64) {
    if let Some(s) = set {
        s.remove(id);
        if s.is_empty() {
            *set = None;
        }
    }
}

/// A copy of the configuration and progress being changed, with what new progress needs.
struct Scratch {
    cfg: Config,
    prs: ProgressMap,
    next_idx: u64,
    max_inflight: usize,
    max_inflight_bytes: u64,
}

impl Scratch {
    /// Applies the changes in order to the incoming configuration. Changes of node 0 are
    /// ignored (etcd zeroes the id of changes it decides not to apply); updates are no-ops.
    fn apply(&mut self, ccs: &[ConfChangeSingle]) -> Result<()> {
        for cc in ccs {
            if cc.node_id == 0 {
                continue;
            }
            match ConfChangeType::try_from(cc.r#type) {
                Ok(ConfChangeType::ConfChangeAddNode) => self.make_voter(cc.node_id),
                Ok(ConfChangeType::ConfChangeAddLearnerNode) => self.make_learner(cc.node_id),
                Ok(ConfChangeType::ConfChangeRemoveNode) => self.remove(cc.node_id),
                Ok(ConfChangeType::ConfChangeUpdateNode) => {}
                Err(_) => {
                    return Err(Error::ConfChange(format!(
                        "unexpected conf type {}",
                        cc.r#type
                    )))
                }
            }
        }
        if self.cfg.voters.incoming.is_empty() {
            return err("removed all voters");
        }
        Ok(())
    }

    /// Makes `id` an incoming voter (promoting a learner keeps its progress).
    fn make_voter(&mut self, id: u64) {
        let Some(pr) = self.prs.get_mut(id) else {
            self.add_progress(id, false);
            return;
        };
        pr.is_learner = false;
        set_remove(&mut self.cfg.learners, id);
        set_remove(&mut self.cfg.learners_next, id);
        self.cfg.voters.incoming.insert(id);
    }

    /// Makes `id` a learner. A voter that is still in the outgoing half cannot be a learner
    /// yet: it is staged in `learners_next` until the joint configuration is left.
    fn make_learner(&mut self, id: u64) {
        let Some(pr) = self.prs.get_mut(id) else {
            self.add_progress(id, true);
            return;
        };
        if pr.is_learner {
            return;
        }
        // Out of the incoming voters (and any staging), keeping the progress.
        self.cfg.voters.incoming.remove(id);
        set_remove(&mut self.cfg.learners, id);
        set_remove(&mut self.cfg.learners_next, id);
        if self.cfg.voters.outgoing.contains(id) {
            set_add(&mut self.cfg.learners_next, id);
        } else {
            pr.is_learner = true;
            set_add(&mut self.cfg.learners, id);
        }
    }

    /// Removes `id` from the incoming configuration. Its progress stays while it is still an
    /// outgoing voter.
    fn remove(&mut self, id: u64) {
        if !self.prs.contains(id) {
            return;
        }
        self.cfg.voters.incoming.remove(id);
        set_remove(&mut self.cfg.learners, id);
        set_remove(&mut self.cfg.learners_next, id);
        if !self.cfg.voters.outgoing.contains(id) {
            self.prs.remove(id);
        }
    }

    /// Adds a new member with a fresh progress: probing from `max(last_index, 1)` and
    /// counted as recently active, so that check-quorum does not trip right after adding it.
    fn add_progress(&mut self, id: u64, is_learner: bool) {
        if is_learner {
            set_add(&mut self.cfg.learners, id);
        } else {
            self.cfg.voters.incoming.insert(id);
        }
        let mut pr = Progress::new(self.next_idx, self.max_inflight, self.max_inflight_bytes);
        pr.recent_active = true;
        pr.is_learner = is_learner;
        self.prs.insert(id, pr);
    }

    /// Checks the result and hands it out.
    fn finish(self) -> Result<(Config, ProgressMap)> {
        check_invariants(&self.cfg, &self.prs)?;
        Ok((self.cfg, self.prs))
    }
}
