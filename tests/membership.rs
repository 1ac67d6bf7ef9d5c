//! Membership changes on a running in-memory cluster: every member replaced one at a time
//! through joint configurations while proposals keep committing, and learners (no say in the
//! commit, promotion to voter).

mod common;

use bytes::Bytes;
use common::{config, Cluster};
use raftcore::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};
use raftcore::{AppendMode, DropReason, Error, MemStorage, StateRole, Storage};

const MODES: [AppendMode; 2] = [AppendMode::Batched, AppendMode::EtcdExact];

fn v2(changes: &[(ConfChangeType, u64)], transition: ConfChangeTransition) -> ConfChangeV2 {
    ConfChangeV2 {
        transition: transition as i32,
        changes: changes
            .iter()
            .map(|&(t, id)| ConfChangeSingle {
                r#type: t as i32,
                node_id: id,
            })
            .collect(),
        ..Default::default()
    }
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

/// The proposals a test made and the leader accepted, in order.
struct Proposals {
    accepted: Vec<Bytes>,
    n: usize,
}

impl Proposals {
    /// Proposes the next payload at `leader`; records it if accepted.
    fn propose(&mut self, c: &mut Cluster, leader: u64) -> Result<(), Error> {
        self.n += 1;
        let data = Bytes::from(format!("p{}", self.n));
        c.propose(leader, data.clone())?;
        self.accepted.push(data);
        Ok(())
    }

    /// Proposes one payload per delivery round, `rounds` times, so that proposals interleave
    /// with whatever is under way (a configuration change, a catch-up).
    fn during(&mut self, c: &mut Cluster, leader: u64, rounds: usize) {
        for _ in 0..rounds {
            self.propose(c, leader)
                .expect("the leader accepts proposals");
            c.process_readies();
            c.deliver();
        }
    }
}

/// Replaces `old` by the fresh node `new` with one joint change (add + remove), leaving the
/// joint configuration automatically or explicitly per `transition`. Returns the leader
/// afterwards.
fn replace(
    c: &mut Cluster,
    p: &mut Proposals,
    (mode, step_down): (AppendMode, bool),
    old: u64,
    new: u64,
    transition: ConfChangeTransition,
) -> u64 {
    let leader = c.leader().expect("a leader");

    // The new member starts empty: no log, no configuration. It must not campaign.
    c.add_node(node_config(new, mode, step_down), MemStorage::new());
    for _ in 0..30 {
        c.node(new).tick();
    }
    c.stabilize();
    assert_eq!(c.node(new).role(), StateRole::Follower);
    assert_eq!(
        c.term(new),
        0,
        "a new member without a configuration campaigned"
    );
    assert_eq!(c.node(new).store().last_index().unwrap(), 0);

    // Enter the joint configuration, with proposals before, during and after.
    p.during(c, leader, 2);
    let cc = v2(
        &[
            (ConfChangeType::ConfChangeAddNode, new),
            (ConfChangeType::ConfChangeRemoveNode, old),
        ],
        transition,
    );
    c.node(leader).propose_conf_change(cc).unwrap();
    p.during(c, leader, 6);

    if transition == ConfChangeTransition::JointExplicit {
        c.stabilize();
        // Joint, and staying so until told to leave.
        let cs = c.conf_state_of(leader);
        assert!(!cs.voters_outgoing.is_empty(), "joint after the change");
        assert!(!cs.auto_leave);
        p.during(c, leader, 3);
        c.stabilize();
        assert!(!c.conf_state_of(leader).voters_outgoing.is_empty());
        c.node(leader)
            .propose_conf_change(ConfChangeV2::default())
            .unwrap();
        if old != leader {
            p.during(c, leader, 4);
        }
    }
    c.stabilize();

    // Out of the joint configuration everywhere.
    let mut want: Vec<u64> = c.conf_state_of(leader).voters;
    want.sort_unstable();
    assert!(
        want.contains(&new) && !want.contains(&old),
        "voters {want:?}"
    );
    for &id in &c.ids.clone() {
        if c.nodes[c.idx(id)].is_none() || id == old {
            continue;
        }
        let cs = c.conf_state_of(id);
        assert_eq!(sorted(cs.voters.clone()), want, "node {id}");
        assert!(
            cs.voters_outgoing.is_empty(),
            "node {id} still joint: {cs:?}"
        );
    }
    // The new member caught up through a snapshot holding a configuration it is in.
    assert!(
        c.snap_reports.iter().any(|&(from, to, _, s)| from == leader
            && to == new
            && s == raftcore::SnapshotStatus::Finish),
        "no snapshot reached {new}"
    );

    let mut leader = leader;
    if old == leader && step_down {
        // The default: the removed leader stepped down when it applied the change, and the
        // new configuration's voters elect a leader among themselves, with no operator.
        assert_ne!(c.node(old).role(), StateRole::Leader);
        let mut elected = None;
        for _ in 0..100 {
            c.tick_and_stabilize(1);
            elected = c.leader().filter(|l| want.contains(l));
            if elected.is_some() {
                break;
            }
        }
        leader = elected.expect("the new configuration elects a leader by itself");
        assert!(c.term(leader) > c.term(old) || c.node(old).role() != StateRole::Leader);
    } else if old == leader {
        // etcd's behaviour without step_down_on_removal: the removed leader keeps its role,
        // heartbeats its former followers, and drops proposals.
        assert_eq!(c.node(old).role(), StateRole::Leader);
        assert_eq!(
            p.propose(c, old),
            Err(Error::ProposalDropped(DropReason::LeaderRemoved)),
            "a removed leader takes no proposals"
        );
        c.tick_and_stabilize(3);
        assert_eq!(c.node(old).role(), StateRole::Leader);
        for &id in &want {
            assert_eq!(c.node(id).basic_status().soft_state.leader_id, old);
        }
        // Hand over to the new member, a voter of the new configuration.
        let term = c.term(old);
        c.node(old).transfer_leader(new);
        c.stabilize();
        assert_eq!(c.node(new).role(), StateRole::Leader);
        assert!(c.term(new) > term);
        leader = new;
    }
    // The removed node leaves the network.
    c.stop_node(old);
    p.during(c, leader, 3);
    c.stabilize();
    c.assert_applied_consistent();
    leader
}

#[test]
fn every_member_replaced_one_at_a_time_through_joint_configs() {
    // A removed leader steps down (the default), or keeps leading until an operator moves
    // leadership (etcd's behaviour).
    for step_down in [true, false] {
        for mode in MODES {
            replace_every_member(mode, step_down);
        }
    }
}

fn node_config(id: u64, mode: AppendMode, step_down: bool) -> raftcore::Config {
    let mut cfg = config(id, mode);
    cfg.step_down_on_removal = step_down;
    cfg
}

fn replace_every_member(mode: AppendMode, step_down: bool) {
    {
        let configs = (1..=3).map(|id| node_config(id, mode, step_down)).collect();
        let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
        // Every node snapshots and compacts as it goes (and whenever its configuration
        // changes), so new members can only catch up through snapshots.
        c.compact_every = Some(8);
        c.campaign(1);
        let mut p = Proposals {
            accepted: Vec::new(),
            n: 0,
        };
        p.during(&mut c, 1, 5);
        c.stabilize();

        // 2 -> 4 (auto), 1 -> 5 removing the leader (explicit leave), 3 -> 6 (implicit).
        let how = (mode, step_down);
        let l = replace(&mut c, &mut p, how, 2, 4, ConfChangeTransition::Auto);
        assert_eq!(l, 1);
        let l = replace(
            &mut c,
            &mut p,
            how,
            1,
            5,
            ConfChangeTransition::JointExplicit,
        );
        assert!(
            [3, 4, 5].contains(&l),
            "leadership moved to a member of the new configuration, not {l}"
        );
        if !step_down {
            assert_eq!(l, 5, "the operator handed leadership to the new member");
        }
        let l = replace(
            &mut c,
            &mut p,
            how,
            3,
            6,
            ConfChangeTransition::JointImplicit,
        );
        assert!([4, 5, 6].contains(&l), "leader {l}");

        p.during(&mut c, l, 5);
        c.tick_and_stabilize(3);

        // Final members: 4, 5, 6, not joint, identical state machines holding every accepted
        // proposal exactly once, in order. The removed members' sequences are prefixes.
        for id in [4, 5, 6] {
            let cs = c.conf_state_of(id);
            assert!(cs.equivalent(&ConfState {
                voters: vec![4, 5, 6],
                ..Default::default()
            }));
            assert_eq!(
                c.payloads(id),
                p.accepted,
                "{mode:?} {step_down}: node {id}"
            );
            assert_eq!(c.applied_of(id), c.applied_of(5));
        }
        c.assert_applied_consistent();
        for id in [1, 2, 3] {
            assert!(!c.applied_of(id).is_empty());
        }
        assert!(p.accepted.len() >= 40, "{} proposals", p.accepted.len());
    }
}

#[test]
fn learner_gets_the_log_but_no_say_in_the_commit() {
    for mode in MODES {
        let configs = (1..=4).map(|id| config(id, mode)).collect();
        let mut c = Cluster::with_members(configs, &[1, 2, 3], &[4]);
        c.campaign(1);
        c.propose(1, "a").unwrap();
        c.stabilize();
        assert_eq!(c.payloads(4), vec![Bytes::from_static(b"a")]);

        // Without the learner, the voters commit.
        c.isolate(4);
        let before = c.committed(1);
        c.propose(1, "b").unwrap();
        c.stabilize();
        assert!(c.committed(1) > before);
        assert_eq!(c.payloads(2).len(), 2);
        assert_eq!(c.payloads(4).len(), 1);
        c.heal();
        c.tick_and_stabilize(2);
        assert_eq!(c.payloads(4).len(), 2);

        // With the learner but without a voter majority, nothing commits, although the
        // learner holds and acknowledges the entry.
        for v in [2, 3] {
            c.cut.insert((1, v));
            c.cut.insert((v, 1));
        }
        let before = c.committed(1);
        c.propose(1, "c").unwrap();
        c.tick_and_stabilize(3);
        let last = c.node(1).store().last_index().unwrap();
        assert_eq!(c.node(4).store().last_index().unwrap(), last);
        let pr4 = c.node(1).status().progress;
        let pr4 = &pr4.iter().find(|(id, _)| *id == 4).unwrap().1;
        assert_eq!(pr4.matched(), last, "the learner acknowledged");
        assert_eq!(c.committed(1), before, "{mode:?}: a learner's ack counted");
        assert_eq!(c.payloads(4).len(), 2);

        // A learner cannot campaign.
        let t = c.term(4);
        c.node(4).campaign().unwrap();
        c.stabilize();
        assert_eq!(c.node(4).role(), StateRole::Follower);
        assert_eq!(c.term(4), t);

        c.heal();
        c.tick_and_stabilize(2);
        assert!(c.committed(1) >= last);
        assert_eq!(c.payloads(4).len(), 3);
    }
}

#[test]
fn learner_promoted_to_voter_counts_and_can_lead() {
    for mode in MODES {
        let configs = (1..=4).map(|id| config(id, mode)).collect();
        let mut c = Cluster::with_members(configs, &[1, 2, 3], &[4]);
        c.campaign(1);
        c.propose(1, "a").unwrap();
        c.stabilize();

        // Promote 4 with a V1 change.
        let cc = ConfChange {
            r#type: ConfChangeType::ConfChangeAddNode as i32,
            node_id: 4,
            ..Default::default()
        };
        c.node(1).propose_conf_change(cc).unwrap();
        c.stabilize();
        for id in 1..=4 {
            let cs = c.conf_state_of(id);
            assert_eq!(sorted(cs.voters), vec![1, 2, 3, 4], "node {id}");
            assert!(cs.learners.is_empty(), "node {id}");
        }

        // Four voters need three acks: with 3 cut off, 1, 2 and 4 commit, which proves 4's
        // ack counts (1 and 2 alone are not a quorum of four).
        c.cut.insert((1, 3));
        c.cut.insert((3, 1));
        let before = c.committed(1);
        c.propose(1, "b").unwrap();
        c.stabilize();
        assert!(
            c.committed(1) > before,
            "{mode:?}: the promoted voter's ack did not count"
        );
        // With 2 also cut off, 1 and 4 are not a quorum.
        c.cut.insert((1, 2));
        c.cut.insert((2, 1));
        let before = c.committed(1);
        c.propose(1, "c").unwrap();
        c.tick_and_stabilize(2);
        assert_eq!(c.committed(1), before);
        c.heal();
        c.tick_and_stabilize(2);

        // The former learner can campaign and win.
        c.node(4).campaign().unwrap();
        c.stabilize();
        assert_eq!(c.node(4).role(), StateRole::Leader);
        c.propose(4, "d").unwrap();
        c.stabilize();
        let want: Vec<Bytes> = ["a", "b", "c", "d"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        for id in 1..=4 {
            assert_eq!(c.payloads(id), want, "{mode:?}: node {id}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Randomized membership changes under message loss.

/// Proptest cases: `PROPTEST_CASES` if set, else `default`, never more than 64.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
        .min(64)
}

struct TestRng(u64);
impl TestRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A random configuration change for a group whose configuration is `cs`.
fn random_change(rng: &mut TestRng, cs: &ConfState) -> ConfChangeV2 {
    use ConfChangeType::*;
    if !cs.voters_outgoing.is_empty() {
        // Joint: the only change that makes sense is leaving.
        return ConfChangeV2::default();
    }
    let id = |rng: &mut TestRng| 1 + rng.below(6);
    let transition = match rng.below(3) {
        0 => ConfChangeTransition::Auto,
        1 => ConfChangeTransition::JointImplicit,
        _ => ConfChangeTransition::JointExplicit,
    };
    match rng.below(5) {
        0 => v2(&[(ConfChangeAddNode, id(rng))], ConfChangeTransition::Auto),
        1 if cs.voters.len() > 1 => {
            let v = cs.voters[rng.below(cs.voters.len() as u64) as usize];
            v2(&[(ConfChangeRemoveNode, v)], ConfChangeTransition::Auto)
        }
        2 => v2(&[(ConfChangeAddLearnerNode, id(rng))], transition),
        _ => {
            let v = cs.voters[rng.below(cs.voters.len() as u64) as usize];
            v2(
                &[(ConfChangeAddNode, id(rng)), (ConfChangeRemoveNode, v)],
                transition,
            )
        }
    }
}

/// The leader of the highest term (a removed leader may linger at an older one).
fn newest_leader(c: &Cluster) -> Option<u64> {
    c.nodes
        .iter()
        .flatten()
        .filter(|n| n.role() == StateRole::Leader)
        .max_by_key(|n| n.basic_status().hard_state.term)
        .map(|n| n.id())
}

/// The operator's part when a leader was removed from the configuration (etcd's behaviour
/// without step_down_on_removal: it keeps leading and drops proposals): hand leadership to a
/// voter of the new configuration.
fn hand_over_if_removed(c: &mut Cluster, rng: &mut TestRng) {
    let Some(l) = newest_leader(c) else { return };
    let cs = c.conf_state_of(l);
    if cs.voters.contains(&l) || cs.voters_outgoing.contains(&l) {
        return;
    }
    if !cs.learners.contains(&l) {
        // A leader that is no member at all takes no proposals (a demoted one, now a learner,
        // still does, as in etcd).
        assert_eq!(
            c.propose(l, "x"),
            Err(Error::ProposalDropped(DropReason::LeaderRemoved))
        );
    }
    let to = cs.voters[rng.below(cs.voters.len() as u64) as usize];
    c.node(l).transfer_leader(to);
}

/// Six nodes, three of them voters at first and three fresh and empty; random ticks,
/// proposals and configuration changes at the leader; messages dropped; snapshots and
/// compaction; an operator hands leadership over when the leader is removed. Checked after
/// every step: one leader per term, applied sequences are prefixes
/// of one another, and nodes that applied the same index have the same configuration. After
/// healing, the members of the final configuration converge.
fn membership_run(seed: u64, mode: AppendMode, drop_pct: u64, compact_every: u64) {
    let cfg = |id| {
        let mut c = config(id, mode);
        c.seed = seed;
        c.election_tick = 5;
        // Removed members keep running here, with a stale configuration in which they may
        // still be voters: pre-vote and check-quorum keep them from disrupting the group
        // (without them, such a node bumps the terms of the others forever, as in etcd).
        c.pre_vote = true;
        c.check_quorum = true;
        c
    };
    let mut c = Cluster::with_configs((1..=3).map(cfg).collect(), &[1, 2, 3]);
    for id in 4..=6 {
        c.add_node(cfg(id), MemStorage::new());
    }
    c.compact_every = Some(compact_every);
    let mut rng = TestRng(seed ^ 0x5EED);
    let mut leader_of_term = std::collections::BTreeMap::new();
    let mut n = 0;
    for step in 0..400 {
        match rng.below(20) {
            0..=7 => {
                let id = 1 + rng.below(6);
                c.node(id).tick();
            }
            8..=10 => {
                if let Some(l) = newest_leader(&c) {
                    n += 1;
                    let _ = c.propose(l, format!("p{n}"));
                }
            }
            11 => {
                if let Some(l) = newest_leader(&c) {
                    let cc = random_change(&mut rng, &c.conf_state_of(l));
                    let _ = c.node(l).propose_conf_change(cc);
                }
            }
            12 => hand_over_if_removed(&mut c, &mut rng),
            _ => {}
        }
        c.process_readies();
        c.deliver_lossy(|| rng.chance(drop_pct));
        c.assert_one_leader_per_term(&mut leader_of_term, &format!("seed {seed} step {step}"));
        c.assert_applied_consistent();
        let mut by_applied: std::collections::BTreeMap<u64, (u64, ConfState)> =
            std::collections::BTreeMap::new();
        for id in 1..=6 {
            let a = c.applied_index(id);
            let cs = c.conf_state_of(id);
            if let Some((other, ocs)) = by_applied.get(&a) {
                assert!(
                    cs.equivalent(ocs),
                    "seed {seed} step {step}: {id} and {other} applied {a} but have {cs:?} and {ocs:?}"
                );
            } else {
                by_applied.insert(a, (id, cs));
            }
        }
    }

    if std::env::var("MS_STATS").is_ok() {
        eprintln!(
            "seed {seed}: {} leader terms, {} snapshots, final {:?}",
            leader_of_term.len(),
            c.snap_reports.len(),
            newest_leader(&c).map(|l| c.conf_state_of(l))
        );
    }
    // Heal: the members of the final configuration settle on one leader and one log.
    let settled = |c: &Cluster| -> Option<(u64, Vec<u64>)> {
        let l = newest_leader(c)?;
        let cs = c.conf_state_of(l);
        if !cs.voters_outgoing.is_empty() || !cs.voters.contains(&l) {
            return None;
        }
        let members: Vec<u64> = cs.voters.iter().chain(&cs.learners).copied().collect();
        let (t, commit) = (c.term(l), c.committed(l));
        members
            .iter()
            .all(|&m| {
                let s = c.node_ref(m).basic_status();
                s.soft_state.leader_id == l
                    && s.hard_state.term == t
                    && s.hard_state.commit == commit
            })
            .then_some((l, members))
    };
    let mut done = None;
    for _ in 0..300 {
        c.tick_all();
        c.stabilize();
        hand_over_if_removed(&mut c, &mut rng);
        c.stabilize();
        if let Some(l) = newest_leader(&c) {
            let cs = c.conf_state_of(l);
            if !cs.voters_outgoing.is_empty() && !cs.auto_leave {
                // An explicit joint configuration waits for the operator to leave it.
                let _ = c.node(l).propose_conf_change(ConfChangeV2::default());
                c.stabilize();
            }
        }
        done = settled(&c);
        if done.is_some() {
            break;
        }
    }
    if done.is_none() || std::env::var("MS_DEBUG").is_ok() {
        eprintln!("settled: {done:?}");
        for id in 1..=6 {
            let n = c.node_ref(id);
            let b = n.basic_status();
            eprintln!(
                "{id}: {:?} lead {} {:?} applied {} last {} cs {:?} prs {:?}",
                n.role(),
                b.soft_state.leader_id,
                b.hard_state,
                b.applied,
                n.store().last_index().unwrap(),
                c.conf_state_of(id),
                n.status()
                    .progress
                    .iter()
                    .map(|(i, p)| (*i, p.matched(), p.next_idx(), p.state()))
                    .collect::<Vec<_>>()
            );
        }
    }
    let (l, members) = done.unwrap_or_else(|| panic!("seed {seed}: the group did not settle"));
    c.propose(l, "final").unwrap();
    c.stabilize();
    for &m in &members {
        assert_eq!(c.applied_of(m), c.applied_of(l), "seed {seed}: member {m}");
        assert!(c.conf_state_of(m).equivalent(&c.conf_state_of(l)));
    }
    assert_eq!(c.payloads(l).last().unwrap(), &Bytes::from_static(b"final"));
    c.assert_applied_consistent();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cases(24)))]

    #[test]
    fn random_membership_changes_under_message_loss(
        seed in proptest::prelude::any::<u64>(),
        drop_pct in 0u64..20,
        etcd in proptest::prelude::any::<bool>(),
        compact_every in 3u64..30,
    ) {
        let mode = if etcd { AppendMode::EtcdExact } else { AppendMode::Batched };
        membership_run(seed, mode, drop_pct, compact_every);
    }
}
