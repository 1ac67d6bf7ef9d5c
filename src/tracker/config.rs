//! The membership of a Raft group: voters (possibly joint), learners, staged learners.

use crate::quorum::{JointConfig, MajorityConfig};
use std::fmt;

/// The configuration the tracker works with.
///
/// `learners` and `learners_next` distinguish "absent" (`None`) from "present but empty"
/// (`Some` of an empty set) because the printed form shows a present set even when empty, as
/// etcd prints a non-nil map. The config changer keeps them `None` whenever they are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The voters: only `incoming` normally, both halves during a joint change.
    pub voters: JointConfig,
    /// Whether the leader leaves the joint configuration on its own once it is committed
    /// (meaningful only while joint).
    pub auto_leave: bool,
    /// Learners: they receive the log but do not count in any quorum. Never voters.
    pub learners: Option<MajorityConfig>,
    /// Voters of the outgoing half that become learners when the joint configuration is left
    /// (they cannot be learners yet, as learners and voters must not overlap).
    pub learners_next: Option<MajorityConfig>,
}

impl Config {
    /// Whether the configuration is joint (its outgoing half is in use).
    pub fn is_joint(&self) -> bool {
        self.voters.is_joint()
    }

    /// Whether `id` is a voter in either half.
    pub fn is_voter(&self, id: u64) -> bool {
        self.voters.contains(id)
    }

    /// Whether `id` is a learner.
    pub fn is_learner(&self, id: u64) -> bool {
        self.learners.as_ref().is_some_and(|l| l.contains(id))
    }

    /// Whether `id` is staged to become a learner when the joint configuration is left.
    pub fn is_learner_next(&self, id: u64) -> bool {
        self.learners_next.as_ref().is_some_and(|l| l.contains(id))
    }

    /// Whether `id` is a member in any role.
    pub fn contains(&self, id: u64) -> bool {
        self.is_voter(id) || self.is_learner(id) || self.is_learner_next(id)
    }

    /// The learners in ascending order.
    pub fn learners_iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.learners.iter().flat_map(|l| l.iter())
    }

    /// The staged learners in ascending order.
    pub fn learners_next_iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.learners_next.iter().flat_map(|l| l.iter())
    }
}

/// `voters=(1 2 3)&&(1 2) learners=(4) learners_next=(3) autoleave`, ids in hex; each part
/// after the voters only when present.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voters={}", self.voters)?;
        if let Some(l) = &self.learners {
            write!(f, " learners={l}")?;
        }
        if let Some(l) = &self.learners_next {
            write!(f, " learners_next={l}")?;
        }
        if self.auto_leave {
            f.write_str(" autoleave")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_membership() {
        let mut c = Config::default();
        assert_eq!(c.to_string(), "voters=()");
        c.voters.incoming = [3].into_iter().collect();
        c.voters.outgoing = [1].into_iter().collect();
        c.learners = Some([2].into_iter().collect());
        c.learners_next = Some([1].into_iter().collect());
        c.auto_leave = true;
        assert_eq!(
            c.to_string(),
            "voters=(3)&&(1) learners=(2) learners_next=(1) autoleave"
        );
        assert!(c.is_joint() && c.is_voter(1) && c.is_learner(2) && c.is_learner_next(1));
        assert!(!c.contains(4));
        c.learners = Some(MajorityConfig::new());
        c.learners_next = None;
        c.auto_leave = false;
        assert_eq!(c.to_string(), "voters=(3)&&(1) learners=()");
    }
}
