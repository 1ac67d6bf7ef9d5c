//! Properties of configuration changes:
//! - a sequence of single changes gives the same configuration whether each is applied as a
//!   simple change or through a joint configuration, and whether the sequence is applied one
//!   change at a time or all at once in one joint configuration;
//! - restoring a tracker from a ConfState and reading it back gives the same ConfState.

use proptest::prelude::*;
use raftcore::confchange::{restore, validate_conf_state, Changer};
use raftcore::raftpb::{ConfChangeSingle, ConfChangeType, ConfState};
use raftcore::tracker::{Config, ProgressMap, ProgressTracker};
use raftcore::Result;

/// Ids are drawn from a small range so that changes often hit existing members.
const MAX_ID: u64 = 7;
const LAST_INDEX: u64 = 10;

fn change() -> impl Strategy<Value = ConfChangeSingle> {
    let ty = prop_oneof![
        Just(ConfChangeType::ConfChangeAddNode),
        Just(ConfChangeType::ConfChangeAddLearnerNode),
        Just(ConfChangeType::ConfChangeRemoveNode),
    ];
    (ty, 1..=MAX_ID).prop_map(|(ty, node_id)| ConfChangeSingle {
        r#type: ty as i32,
        node_id,
    })
}

/// A non-joint starting configuration: one to three voters and up to two learners.
fn start() -> impl Strategy<Value = ConfState> {
    let ids = Just((1..=MAX_ID).collect::<Vec<u64>>()).prop_shuffle();
    (ids, 1usize..=3, 0usize..=2).prop_map(|(ids, v, l)| ConfState {
        voters: ids[..v].to_vec(),
        learners: ids[v..v + l].to_vec(),
        ..Default::default()
    })
}

/// The role of an id in a generated ConfState.
#[derive(Debug, Clone, Copy)]
enum Role {
    Absent,
    Incoming,
    Outgoing,
    Both,
    Learner,
    /// An outgoing voter staged to become a learner.
    LearnerNext,
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Absent),
        Just(Role::Incoming),
        Just(Role::Outgoing),
        Just(Role::Both),
        Just(Role::Learner),
        Just(Role::LearnerNext),
    ]
}

/// A valid ConfState, joint or not, with its lists in random order.
fn valid_conf_state() -> impl Strategy<Value = ConfState> {
    (
        prop::collection::vec(role(), MAX_ID as usize),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter_map("no incoming voter", |(roles, auto_leave, seed)| {
            let mut cs = ConfState::default();
            for (i, r) in roles.iter().enumerate() {
                let id = i as u64 + 1;
                match r {
                    Role::Absent => {}
                    Role::Incoming => cs.voters.push(id),
                    Role::Outgoing => cs.voters_outgoing.push(id),
                    Role::Both => {
                        cs.voters.push(id);
                        cs.voters_outgoing.push(id);
                    }
                    Role::Learner => cs.learners.push(id),
                    Role::LearnerNext => {
                        cs.voters_outgoing.push(id);
                        cs.learners_next.push(id);
                    }
                }
            }
            if cs.voters.is_empty() {
                return None;
            }
            cs.auto_leave = auto_leave && !cs.voters_outgoing.is_empty();
            // Scramble the order of each list (a cheap deterministic shuffle).
            for (k, list) in [
                &mut cs.voters,
                &mut cs.learners,
                &mut cs.voters_outgoing,
                &mut cs.learners_next,
            ]
            .into_iter()
            .enumerate()
            {
                let rot = (seed >> (8 * k)) as usize;
                if !list.is_empty() {
                    let n = list.len();
                    list.rotate_left(rot % n);
                    if (seed >> (40 + k)) & 1 == 1 {
                        list.reverse();
                    }
                }
            }
            Some(cs)
        })
}

fn tracker_from(cs: &ConfState) -> ProgressTracker {
    let mut t = ProgressTracker::new(10, 0);
    restore(&mut t, LAST_INDEX, cs).expect("generated start config restores");
    t
}

fn install(t: &mut ProgressTracker, (config, progress): (Config, ProgressMap)) {
    t.config = config;
    t.progress = progress;
}

fn simple(t: &mut ProgressTracker, ccs: &[ConfChangeSingle]) -> Result<()> {
    let next = Changer {
        tracker: t,
        last_index: LAST_INDEX,
    }
    .simple(ccs)?;
    install(t, next);
    Ok(())
}

/// Enters a joint configuration with `ccs` and leaves it again.
fn via_joint(t: &mut ProgressTracker, ccs: &[ConfChangeSingle]) -> Result<()> {
    let mut scratch = t.clone();
    let entered = Changer {
        tracker: &scratch,
        last_index: LAST_INDEX,
    }
    .enter_joint(false, ccs)?;
    install(&mut scratch, entered);
    let left = Changer {
        tracker: &scratch,
        last_index: LAST_INDEX,
    }
    .leave_joint()?;
    install(&mut scratch, left);
    *t = scratch;
    Ok(())
}

/// The members and their learner flags, as the progress map has them.
fn members(t: &ProgressTracker) -> Vec<(u64, bool)> {
    t.progress
        .iter()
        .map(|(id, pr)| (id, pr.is_learner()))
        .collect()
}

fn assert_same(a: &ProgressTracker, b: &ProgressTracker) -> std::result::Result<(), TestCaseError> {
    let (ca, cb) = (a.conf_state(), b.conf_state());
    prop_assert!(ca.equivalent(&cb), "{:?} vs {:?}", ca, cb);
    prop_assert_eq!(members(a), members(b));
    prop_assert!(!b.config.is_joint());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Each change on its own: simple and through a joint config agree, errors included.
    #[test]
    fn single_changes_simple_or_joint(
        start in start(),
        ccs in prop::collection::vec(change(), 1..12),
    ) {
        let mut a = tracker_from(&start);
        let mut b = a.clone();
        for cc in &ccs {
            let ra = simple(&mut a, std::slice::from_ref(cc));
            let rb = via_joint(&mut b, std::slice::from_ref(cc));
            match (ra, rb) {
                (Ok(()), Ok(())) => assert_same(&a, &b)?,
                (Err(ea), Err(eb)) => prop_assert_eq!(ea, eb),
                (ra, rb) => prop_assert!(false, "{:?}: simple {:?}, joint {:?}", cc, ra, rb),
            }
        }
    }

    /// A whole sequence: one simple change at a time (dropping the ones that fail) and all
    /// at once in one joint config reach the same configuration.
    #[test]
    fn sequence_simple_or_one_joint(
        start in start(),
        ccs in prop::collection::vec(change(), 1..12),
    ) {
        let mut a = tracker_from(&start);
        let mut b = a.clone();
        let mut applied = vec![];
        for cc in &ccs {
            if simple(&mut a, std::slice::from_ref(cc)).is_ok() {
                applied.push(*cc);
            }
        }
        via_joint(&mut b, &applied).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_same(&a, &b)?;
    }

    /// Restoring a valid ConfState and reading it back gives the same ConfState, with a
    /// progress for exactly its members.
    #[test]
    fn restore_round_trips(cs in valid_conf_state()) {
        prop_assert!(validate_conf_state(&cs).is_ok(), "{:?}", validate_conf_state(&cs));
        let t = tracker_from(&cs);
        let got = t.conf_state();
        prop_assert!(got.equivalent(&cs), "{:?} -> {:?}", cs, got);
        let mut ids: Vec<u64> = cs
            .voters
            .iter()
            .chain(&cs.voters_outgoing)
            .chain(&cs.learners)
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(t.progress.ids().collect::<Vec<_>>(), ids);
        for (id, pr) in t.progress.iter() {
            prop_assert_eq!(pr.is_learner(), cs.learners.contains(&id));
            prop_assert_eq!(pr.next_idx(), LAST_INDEX);
        }
    }

    /// Any ConfState the validator accepts restores to itself; others never panic.
    #[test]
    fn validated_conf_states_restore(
        voters in prop::collection::vec(0..=MAX_ID, 0..5),
        learners in prop::collection::vec(0..=MAX_ID, 0..3),
        outgoing in prop::collection::vec(0..=MAX_ID, 0..4),
        next in prop::collection::vec(0..=MAX_ID, 0..2),
        auto_leave in any::<bool>(),
    ) {
        let cs = ConfState {
            voters,
            learners,
            voters_outgoing: outgoing,
            learners_next: next,
            auto_leave,
        };
        let mut t = ProgressTracker::new(10, 0);
        let restored = restore(&mut t, LAST_INDEX, &cs);
        if validate_conf_state(&cs).is_ok() {
            prop_assert!(restored.is_ok(), "{:?}: {:?}", cs, restored);
            prop_assert!(t.conf_state().equivalent(&cs), "{:?} -> {:?}", cs, t.conf_state());
        }
    }
}
