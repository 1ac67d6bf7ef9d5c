//! Checking a ConfState that came from outside (a snapshot from the network).

use crate::error::{Error, Result};
use crate::raftpb::ConfState;

fn invalid<T>(text: String) -> Result<T> {
    Err(Error::ConfChange(text))
}

/// Checks one id list: no node 0, no reserved id (`u64::MAX` and `u64::MAX - 1` address the
/// local storage threads), no id twice. Returns the ids sorted.
fn sorted_ids(name: &str, ids: &[u64]) -> Result<Vec<u64>> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    for (i, &id) in v.iter().enumerate() {
        if id == 0 {
            return invalid(format!("ConfState {name} contains node id 0"));
        }
        if id >= u64::MAX - 1 {
            return invalid(format!("ConfState {name} contains reserved node id {id}"));
        }
        if i > 0 && v[i - 1] == id {
            return invalid(format!("ConfState {name} lists node {id} twice"));
        }
    }
    Ok(v)
}

fn has(sorted: &[u64], id: u64) -> bool {
    sorted.binary_search(&id).is_ok()
}

/// Checks that a ConfState describes a configuration that [`super::restore`] rebuilds
/// exactly, and that the node could run with:
/// - every id is valid (not 0, not reserved) and appears at most once per list;
/// - there is at least one (incoming) voter;
/// - no learner is a voter of either half;
/// - every staged learner (`learners_next`) is an outgoing voter, and neither an incoming
///   voter nor a learner;
/// - `auto_leave` is only set on a joint configuration.
pub fn validate_conf_state(cs: &ConfState) -> Result<()> {
    let voters = sorted_ids("voters", &cs.voters)?;
    let outgoing = sorted_ids("voters_outgoing", &cs.voters_outgoing)?;
    let learners = sorted_ids("learners", &cs.learners)?;
    let learners_next = sorted_ids("learners_next", &cs.learners_next)?;

    if voters.is_empty() {
        return invalid("ConfState has no voters".to_string());
    }
    for &id in &learners {
        if has(&voters, id) || has(&outgoing, id) {
            return invalid(format!("node {id} is both a voter and a learner"));
        }
    }
    for &id in &learners_next {
        if !has(&outgoing, id) {
            return invalid(format!("learners_next node {id} is not an outgoing voter"));
        }
        if has(&voters, id) {
            return invalid(format!("learners_next node {id} is also an incoming voter"));
        }
        if has(&learners, id) {
            return invalid(format!("node {id} is in both learners and learners_next"));
        }
    }
    if cs.auto_leave && outgoing.is_empty() {
        return invalid("ConfState has auto_leave set but is not joint".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(voters: &[u64], learners: &[u64], outgoing: &[u64], next: &[u64]) -> String {
        let cs = ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners_next: next.to_vec(),
            auto_leave: false,
        };
        match validate_conf_state(&cs) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_valid() {
        assert_eq!(check(&[1], &[], &[], &[]), "ok");
        assert_eq!(check(&[3, 1, 2], &[4], &[1, 2, 5], &[5]), "ok");
    }

    #[test]
    fn rejects_invalid() {
        assert_eq!(check(&[], &[], &[], &[]), "ConfState has no voters");
        assert_eq!(check(&[], &[], &[1], &[]), "ConfState has no voters");
        assert_eq!(
            check(&[0], &[], &[], &[]),
            "ConfState voters contains node id 0"
        );
        assert_eq!(
            check(&[1, u64::MAX], &[], &[], &[]),
            "ConfState voters contains reserved node id 18446744073709551615"
        );
        assert_eq!(
            check(&[1], &[u64::MAX - 1], &[], &[]),
            "ConfState learners contains reserved node id 18446744073709551614"
        );
        assert_eq!(
            check(&[2, 1, 2], &[], &[], &[]),
            "ConfState voters lists node 2 twice"
        );
        assert_eq!(
            check(&[1], &[1], &[], &[]),
            "node 1 is both a voter and a learner"
        );
        assert_eq!(
            check(&[1], &[2], &[2], &[]),
            "node 2 is both a voter and a learner"
        );
        assert_eq!(
            check(&[1], &[], &[], &[2]),
            "learners_next node 2 is not an outgoing voter"
        );
        assert_eq!(
            check(&[1], &[], &[1], &[1]),
            "learners_next node 1 is also an incoming voter"
        );
        let cs = ConfState {
            voters: vec![1],
            auto_leave: true,
            ..Default::default()
        };
        assert_eq!(
            validate_conf_state(&cs).unwrap_err().to_string(),
            "ConfState has auto_leave set but is not joint"
        );
    }
}
