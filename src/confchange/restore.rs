//! Rebuilding a tracker's configuration from a ConfState.

use super::Changer;
use crate::error::Result;
use crate::raftpb::{ConfChangeSingle, ConfChangeType, ConfState};
use crate::tracker::{Config, ProgressMap, ProgressTracker};

fn change(ty: ConfChangeType, node_id: u64) -> ConfChangeSingle {
    ConfChangeSingle {
        r#type: ty as i32,
        node_id,
    }
}

fn install(tracker: &mut ProgressTracker, (config, progress): (Config, ProgressMap)) {
    tracker.config = config;
    tracker.progress = progress;
}

/// Replaces the configuration and progress of `tracker` by those described by `cs`, with
/// every progress new (probing from `max(last_index, 1)`), and clears its votes.
///
/// The configuration is built with the [`Changer`], so it obeys the same rules as any change:
/// for a joint ConfState, the outgoing voters are added one by one with simple changes, then
/// a joint configuration is entered whose changes remove them, add the incoming voters, the
/// learners and the staged learners (which the changer stages, as they are outgoing voters).
/// Otherwise, the voters and then the learners are added one by one. An empty ConfState gives
/// an empty configuration.
///
/// On error the tracker is left untouched. Use [`super::validate_conf_state`] first for a
/// ConfState that came from the network.
pub fn restore(tracker: &mut ProgressTracker, last_index: u64, cs: &ConfState) -> Result<()> {
    use ConfChangeType::{ConfChangeAddLearnerNode as AddLearner, ConfChangeAddNode as AddVoter};

    let mut scratch = ProgressTracker::new(tracker.max_inflight, tracker.max_inflight_bytes);
    let incoming = cs
        .voters
        .iter()
        .map(|&id| change(AddVoter, id))
        .chain(cs.learners.iter().map(|&id| change(AddLearner, id)))
        .chain(cs.learners_next.iter().map(|&id| change(AddLearner, id)));

    if cs.voters_outgoing.is_empty() {
        for cc in incoming {
            let next = Changer {
                tracker: &scratch,
                last_index,
            }
            .simple(&[cc])?;
            install(&mut scratch, next);
        }
    } else {
        // First the outgoing voters become the (only) config, ...
        for &id in &cs.voters_outgoing {
            let next = Changer {
                tracker: &scratch,
                last_index,
            }
            .simple(&[change(AddVoter, id)])?;
            install(&mut scratch, next);
        }
        // ... then entering the joint config rotates them into the outgoing half while the
        // incoming half is rebuilt from scratch.
        let ccs: Vec<ConfChangeSingle> = cs
            .voters_outgoing
            .iter()
            .map(|&id| change(ConfChangeType::ConfChangeRemoveNode, id))
            .chain(incoming)
            .collect();
        let next = Changer {
            tracker: &scratch,
            last_index,
        }
        .enter_joint(cs.auto_leave, &ccs)?;
        install(&mut scratch, next);
    }
    *tracker = scratch;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(voters: &[u64], learners: &[u64], outgoing: &[u64], next: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners_next: next.to_vec(),
            auto_leave: !outgoing.is_empty(),
        }
    }

    #[test]
    fn round_trips() {
        for want in [
            cs(&[], &[], &[], &[]),
            cs(&[1, 2, 3], &[], &[], &[]),
            cs(&[1, 2, 3], &[4, 5], &[], &[]),
            cs(&[1, 2, 3], &[4], &[1, 2, 6], &[6]),
            cs(&[4, 5], &[6], &[1, 2, 3], &[2, 3]),
        ] {
            let mut t = ProgressTracker::new(5, 0);
            t.record_vote(1, true);
            restore(&mut t, 10, &want).unwrap();
            assert!(
                t.conf_state().equivalent(&want),
                "{want:?} -> {:?}",
                t.conf_state()
            );
            assert!(t.votes().is_empty());
            for (_, pr) in t.progress.iter() {
                assert_eq!((pr.next_idx, pr.inflights.size()), (10, 5));
            }
        }
    }

    #[test]
    fn empty_conf_state_clears() {
        let mut t = ProgressTracker::new(5, 0);
        restore(&mut t, 1, &cs(&[1, 2], &[], &[], &[])).unwrap();
        restore(&mut t, 1, &ConfState::default()).unwrap();
        assert_eq!(t.config, Config::default());
        assert!(t.progress.is_empty());
    }

    #[test]
    fn error_leaves_tracker_alone() {
        let mut t = ProgressTracker::new(5, 0);
        restore(&mut t, 1, &cs(&[1, 2], &[], &[], &[])).unwrap();
        let before = t.clone();
        // Learners only: adding the first one leaves a config without voters.
        let e = restore(&mut t, 1, &cs(&[], &[3], &[], &[])).unwrap_err();
        assert_eq!(e.to_string(), "removed all voters");
        assert_eq!(t, before);
    }
}
