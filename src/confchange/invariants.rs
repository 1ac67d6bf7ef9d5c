//! The consistency rules between a configuration and its progress map.

use crate::error::{Error, Result};
use crate::quorum::MajorityConfig;
use crate::tracker::{Config, ProgressMap};

fn broken<T>(text: String) -> Result<T> {
    Err(Error::ConfChange(text))
}

/// Checks that `cfg` and `prs` agree:
/// - every member (voter, learner, staged learner) has a progress, and every progress
///   belongs to a member;
/// - voters are not marked as learners, learners are, and learners are not voters;
/// - staged learners are outgoing voters only, not yet marked as learners;
/// - a non-joint config has no staged learners and no auto-leave.
pub(crate) fn check_invariants(cfg: &Config, prs: &ProgressMap) -> Result<()> {
    let incoming = &cfg.voters.incoming;
    let outgoing = &cfg.voters.outgoing;
    let empty = MajorityConfig::new();
    let learners = cfg.learners.as_ref().unwrap_or(&empty);
    let learners_next = cfg.learners_next.as_ref().unwrap_or(&empty);

    for id in incoming
        .iter()
        .chain(outgoing)
        .chain(learners)
        .chain(learners_next)
    {
        if !prs.contains(id) {
            return broken(format!("no progress for {id}"));
        }
    }
    for (id, pr) in prs.iter() {
        if !cfg.contains(id) {
            return broken(format!("progress for {id}, which is not in the config"));
        }
        if cfg.is_voter(id) && pr.is_learner {
            return broken(format!("{id} is a voter, but is marked as learner"));
        }
    }
    for id in learners_next {
        if !outgoing.contains(id) {
            return broken(format!("{id} is in LearnersNext, but not Voters[1]"));
        }
        if incoming.contains(id) {
            return broken(format!("{id} is in LearnersNext and Voters[0]"));
        }
        if prs.get(id).is_some_and(|pr| pr.is_learner) {
            return broken(format!(
                "{id} is in LearnersNext, but is already marked as learner"
            ));
        }
    }
    for id in learners {
        if outgoing.contains(id) {
            return broken(format!("{id} is in Learners and Voters[1]"));
        }
        if incoming.contains(id) {
            return broken(format!("{id} is in Learners and Voters[0]"));
        }
        if prs.get(id).is_some_and(|pr| !pr.is_learner) {
            return broken(format!("{id} is in Learners, but is not marked as learner"));
        }
    }
    if !cfg.is_joint() {
        if cfg.learners_next.is_some() {
            return broken("cfg.LearnersNext must be nil when not joint".to_string());
        }
        if cfg.auto_leave {
            return broken("AutoLeave must be false when not joint".to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Progress;

    fn pr(is_learner: bool) -> Progress {
        let mut p = Progress::new(1, 1, 0);
        p.is_learner = is_learner;
        p
    }

    fn msg(r: Result<()>) -> String {
        match r {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn catches_each_broken_rule() {
        let mut cfg = Config::default();
        cfg.voters.incoming = [1].into_iter().collect();
        let mut prs = ProgressMap::new();
        assert_eq!(msg(check_invariants(&cfg, &prs)), "no progress for 1");
        prs.insert(1, pr(false));
        assert_eq!(msg(check_invariants(&cfg, &prs)), "ok");
        prs.insert(2, pr(false));
        assert_eq!(
            msg(check_invariants(&cfg, &prs)),
            "progress for 2, which is not in the config"
        );
        cfg.learners = Some([2].into_iter().collect());
        assert_eq!(
            msg(check_invariants(&cfg, &prs)),
            "2 is in Learners, but is not marked as learner"
        );
        prs.insert(2, pr(true));
        assert_eq!(msg(check_invariants(&cfg, &prs)), "ok");
        cfg.learners_next = Some(MajorityConfig::new());
        assert_eq!(
            msg(check_invariants(&cfg, &prs)),
            "cfg.LearnersNext must be nil when not joint"
        );
        cfg.learners_next = None;
        cfg.auto_leave = true;
        assert_eq!(
            msg(check_invariants(&cfg, &prs)),
            "AutoLeave must be false when not joint"
        );
        cfg.voters.outgoing = [2].into_iter().collect();
        assert_eq!(
            msg(check_invariants(&cfg, &prs)),
            "2 is a voter, but is marked as learner"
        );
        prs.insert(2, pr(false));
        cfg.learners = None;
        cfg.learners_next = Some([1].into_iter().collect());
        assert_eq!(
            msg(check_invariants(&cfg, &prs)),
            "1 is in LearnersNext, but not Voters[1]"
        );
    }
}
