//! Quiescence (`Config::quiesce`): an idle group goes quiet, stays silent while ticking, wakes
//! on work, messages and `wake()`, and elects a new leader once the application reports the
//! quiet leader down.

mod common;

use common::{config, msg, Cluster};
use raftcore::raftpb::MessageType;
use raftcore::{AppendMode, StateRole};

fn quiet_cluster(n: u64, tune: impl Fn(&mut raftcore::Config)) -> Cluster {
    let voters: Vec<u64> = (1..=n).collect();
    let configs = voters
        .iter()
        .map(|&id| {
            let mut c = config(id, AppendMode::default());
            c.quiesce = true;
            tune(&mut c);
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &voters);
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    c
}

/// Ticks every node once and handles everything; returns the messages the tick caused.
fn tick_count(c: &mut Cluster) -> usize {
    c.tick_all();
    let mut sent = 0;
    for _ in 0..100 {
        let a = c.process_readies();
        sent += c.queue.len();
        let b = c.deliver();
        if !a && !b {
            break;
        }
    }
    sent
}

fn all_quiet(c: &Cluster) -> bool {
    c.nodes.iter().flatten().all(|n| n.is_quiet())
}

#[test]
fn an_idle_group_goes_quiet_and_stays_silent() {
    for (pre_vote, check_quorum) in [(false, false), (true, true)] {
        let mut c = quiet_cluster(3, |cfg| {
            cfg.pre_vote = pre_vote;
            cfg.check_quorum = check_quorum;
        });
        c.propose(1, "a").unwrap();
        c.stabilize();
        // One heartbeat round carries MsgQuiesce and its answers.
        for _ in 0..2 {
            tick_count(&mut c);
        }
        assert!(
            all_quiet(&c),
            "pre_vote={pre_vote} check_quorum={check_quorum}"
        );
        let term = c.term(1);
        // Far past any election timeout and check-quorum window: nothing is sent, no Ready.
        for _ in 0..200 {
            assert_eq!(tick_count(&mut c), 0);
            assert!(c.nodes.iter().flatten().all(|n| !n.has_ready()));
        }
        assert_eq!(c.leader(), Some(1));
        assert_eq!(c.term(1), term);
        assert!(all_quiet(&c));
    }
}

#[test]
fn without_the_option_an_idle_group_keeps_heartbeating() {
    let mut c = Cluster::new(3, AppendMode::default());
    c.campaign(1);
    for _ in 0..20 {
        // Each tick of an etcd-style leader sends a heartbeat to each follower and gets
        // answers: four messages, none of them part of the quiescing exchange.
        c.tick_all();
        c.process_readies();
        let types: Vec<_> = c.queue.iter().map(|m| m.msg_type()).collect();
        assert!(
            types.iter().all(|t| *t == Some(MessageType::MsgHeartbeat)),
            "{types:?}"
        );
        c.deliver();
        c.process_readies();
        assert!(c
            .queue
            .iter()
            .all(|m| m.msg_type() == Some(MessageType::MsgHeartbeatResp)));
        c.deliver();
        assert_eq!(tick_count(&mut c), 4);
        assert!(c.nodes.iter().flatten().all(|n| !n.is_quiet()));
    }
}

#[test]
fn a_proposal_wakes_the_group_commits_and_the_group_goes_quiet_again() {
    let mut c = quiet_cluster(3, |_| {});
    tick_count(&mut c);
    tick_count(&mut c);
    assert!(all_quiet(&c));
    for (i, at) in [1u64, 2, 3].into_iter().enumerate() {
        // At the leader, or forwarded by a quiet follower.
        c.propose(at, format!("p{i}")).unwrap();
        c.stabilize();
        assert!(!c.node_ref(1).is_quiet(), "the leader woke");
        let commit = c.committed(1);
        assert!((1..=3).all(|id| c.committed(id) == commit));
        assert_eq!(c.payloads(2).len(), i + 1);
        for _ in 0..3 {
            tick_count(&mut c);
        }
        assert!(all_quiet(&c), "quiet again after proposal {i}");
    }
}

#[test]
fn a_proposal_at_the_quiet_leader_survives_the_loss_of_its_appends() {
    for batch in [false, true] {
        let mut c = quiet_cluster(3, |_| {});
        tick_count(&mut c);
        tick_count(&mut c);
        assert!(all_quiet(&c));
        if batch {
            c.node(1).propose_batch([bytes::Bytes::from("x")]).unwrap();
        } else {
            c.propose(1, "x").unwrap();
        }
        assert!(
            !c.node_ref(1).is_quiet(),
            "batch={batch}: the proposal woke the leader"
        );
        // Every append the proposal caused is lost.
        c.process_readies();
        assert!(c
            .queue
            .iter()
            .any(|m| m.msg_type() == Some(MessageType::MsgApp)));
        c.queue.clear();
        // The awake leader heartbeats; the answers show the followers behind, and it resends.
        for _ in 0..10 {
            tick_count(&mut c);
        }
        assert!(
            (1..=3).all(|id| c.payloads(id) == vec![bytes::Bytes::from("x")]),
            "batch={batch}"
        );
        for _ in 0..3 {
            tick_count(&mut c);
        }
        assert!(all_quiet(&c), "batch={batch}: quiet again");
    }
}

#[test]
fn a_pending_read_keeps_the_group_awake_and_a_served_one_lets_it_go_quiet() {
    use std::sync::{Arc, Mutex};
    let mut c = quiet_cluster(3, |_| {});
    let served = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&served);
    c.ready_hook = Some(Box::new(move |id, rd| {
        if id == 1 {
            s.lock()
                .unwrap()
                .extend(rd.read_states.iter().map(|r| r.request_ctx.clone()));
        }
    }));
    // A first read, served: the leader now holds read-only state with nothing pending.
    c.node(1)
        .read_index(bytes::Bytes::from_static(b"r1"))
        .unwrap();
    c.stabilize();
    assert_eq!(served.lock().unwrap().len(), 1);
    for _ in 0..3 {
        tick_count(&mut c);
    }
    assert!(all_quiet(&c), "quiet with no read pending");
    // A second read while the followers are cut off: it waits for their answers.
    c.isolate(2);
    c.isolate(3);
    c.node(1)
        .read_index(bytes::Bytes::from_static(b"r2"))
        .unwrap();
    for _ in 0..5 {
        c.tick_all();
        c.process_readies();
        assert!(
            !c.queue
                .iter()
                .any(|m| m.msg_type() == Some(MessageType::MsgQuiesce)),
            "no MsgQuiesce while a read is pending"
        );
        assert!(!c.node_ref(1).is_quiet());
        c.deliver();
    }
    assert_eq!(served.lock().unwrap().len(), 1);
    c.heal();
    for _ in 0..5 {
        tick_count(&mut c);
    }
    assert_eq!(served.lock().unwrap().len(), 2);
    assert!(all_quiet(&c), "quiet again once the read is served");
}

#[test]
fn a_lagging_follower_keeps_the_leader_awake() {
    let mut c = quiet_cluster(3, |_| {});
    c.isolate(3);
    c.propose(1, "x").unwrap();
    c.stabilize();
    for _ in 0..30 {
        let sent = tick_count(&mut c);
        // The leader keeps contacting node 3 (whose link is cut).
        assert!(sent > 0);
        assert!(!c.node_ref(1).is_quiet());
    }
    c.heal();
    // Node 3 campaigned while cut off (no pre-vote): an election may follow; then quiet.
    for _ in 0..60 {
        tick_count(&mut c);
        if all_quiet(&c) {
            break;
        }
    }
    assert!(all_quiet(&c));
    let l = c.leader().expect("a leader");
    assert_eq!(c.committed(3), c.committed(l));
    assert_eq!(c.payloads(3), c.payloads(l));
}

#[test]
fn a_quiet_group_elects_once_the_leader_is_reported_down() {
    let mut c = quiet_cluster(3, |cfg| cfg.pre_vote = true);
    c.propose(1, "a").unwrap();
    c.stabilize();
    tick_count(&mut c);
    tick_count(&mut c);
    assert!(all_quiet(&c));
    c.stop_node(1);
    // Nobody notices on its own: the followers' timers are stopped.
    for _ in 0..200 {
        tick_count(&mut c);
    }
    assert_eq!(c.node_ref(2).basic_status().soft_state.leader_id, 1);
    assert!(c.node_ref(2).is_quiet() && c.node_ref(3).is_quiet());
    // The application's failure detector tells one follower.
    c.node(2).report_peer_down(1);
    assert!(!c.node_ref(2).is_quiet());
    let mut elected = None;
    for _ in 0..60 {
        tick_count(&mut c);
        if let Some(l) = [2u64, 3]
            .into_iter()
            .find(|&id| c.node_ref(id).role() == StateRole::Leader)
        {
            elected = Some(l);
            break;
        }
    }
    let l = elected.expect("a new leader within 60 ticks of the report");
    c.propose(l, "b").unwrap();
    c.stabilize();
    assert_eq!(c.payloads(2).len(), 2);
    assert_eq!(c.payloads(3).len(), 2);
}

#[test]
fn a_report_about_a_follower_does_not_wake_a_quiet_follower() {
    let mut c = quiet_cluster(3, |_| {});
    tick_count(&mut c);
    tick_count(&mut c);
    assert!(all_quiet(&c));
    c.node(2).report_peer_down(3);
    assert!(c.node_ref(2).is_quiet());
    // Nor does a report about the leader itself, or about a node that is not a member, on
    // the leader.
    c.node(1).report_peer_down(1);
    c.node(1).report_peer_down(99);
    assert!(c.node_ref(1).is_quiet());
    // About a member, on the leader, it does: the leader heartbeats (and so probes) again.
    c.node(1).report_peer_down(3);
    assert!(!c.node_ref(1).is_quiet());
    assert!(tick_count(&mut c) > 0);
}

#[test]
fn a_stray_message_wakes_a_follower_which_wakes_its_leader() {
    let mut c = quiet_cluster(3, |_| {});
    tick_count(&mut c);
    tick_count(&mut c);
    assert!(all_quiet(&c));
    let term = c.term(2);
    // A stray message from node 3 to node 2 (a response it should not get).
    let r = c
        .node(2)
        .step(msg(MessageType::MsgHeartbeatResp, 3, 2, term));
    assert!(r.is_ok(), "{r:?}");
    assert!(!c.node_ref(2).is_quiet());
    c.stabilize();
    assert!(!c.node_ref(1).is_quiet(), "the follower told its leader");
    for _ in 0..3 {
        tick_count(&mut c);
    }
    assert!(all_quiet(&c), "and the group went quiet again");
    assert_eq!(c.term(2), term, "without an election");
}

#[test]
fn wake_on_a_follower_resumes_heartbeats_without_an_election() {
    let mut c = quiet_cluster(5, |cfg| cfg.check_quorum = true);
    tick_count(&mut c);
    tick_count(&mut c);
    assert!(all_quiet(&c));
    let term = c.term(1);
    c.node(4).wake();
    c.stabilize();
    assert!(!c.node_ref(1).is_quiet());
    for _ in 0..50 {
        tick_count(&mut c);
    }
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.term(1), term);
    assert!(all_quiet(&c));
}

/// A 3-voter group gone quiet, and a copy of node 3's answer to its first `MsgQuiesce` round.
fn quiet_group_and_an_old_answer() -> (Cluster, raftcore::raftpb::Message) {
    let mut c = quiet_cluster(3, |_| {});
    c.tick_all();
    c.process_readies();
    c.deliver();
    c.process_readies();
    let old: Vec<_> = c
        .queue
        .iter()
        .filter(|m| m.msg_type() == Some(MessageType::MsgQuiesceResp) && m.from == 3)
        .cloned()
        .collect();
    assert_eq!(old.len(), 1);
    c.stabilize();
    assert!(all_quiet(&c));
    (c, old.into_iter().next().expect("one answer"))
}

#[test]
fn duplicated_old_answers_do_not_quiet_the_leader_early() {
    let (mut c, old) = quiet_group_and_an_old_answer();
    // Node 3 wakes (and tells the leader); the old answer arrives again before the new round.
    c.node(3).wake();
    c.stabilize();
    assert!(!c.node_ref(1).is_quiet());
    c.node(1).step(old.clone()).unwrap();
    c.stabilize();
    assert!(!c.node_ref(1).is_quiet(), "an old answer does not count");
    for _ in 0..3 {
        tick_count(&mut c);
    }
    assert!(all_quiet(&c));
}

#[test]
fn a_follower_without_quiescence_answers_msg_quiesce_as_a_heartbeat() {
    // Node 2 has quiescence off: it answers MsgQuiesce with a MsgHeartbeatResp echoing the
    // context (a read or lease acknowledgement rides on it), and never goes quiet.
    let voters = [1u64, 2, 3];
    let configs = voters
        .iter()
        .map(|&id| {
            let mut c = config(id, AppendMode::default());
            c.quiesce = id != 2;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &voters);
    c.campaign(1);
    let term = c.term(2);
    let mut m = msg(MessageType::MsgQuiesce, 1, 2, term);
    m.commit = c.committed(1);
    m.index = 7;
    m.context = bytes::Bytes::from_static(b"ctx");
    c.node(2).step(m).unwrap();
    let rd = c.node(2).ready();
    let answers: Vec<_> = rd
        .messages
        .iter()
        .chain(&rd.persisted_messages)
        .filter(|m| m.to == 1)
        .cloned()
        .collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].msg_type(), Some(MessageType::MsgHeartbeatResp));
    assert_eq!(&answers[0].context[..], b"ctx");
    assert!(!c.node_ref(2).is_quiet());
    // The group never goes quiet while node 2 answers so.
    c.node(2).advance().unwrap();
    for _ in 0..10 {
        tick_count(&mut c);
    }
    assert!(!c.node_ref(1).is_quiet());
}

#[test]
fn a_joint_configuration_keeps_the_group_awake() {
    use raftcore::raftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
    let mut c = quiet_cluster(3, |_| {});
    // Demote node 3 with an explicit transition: the group stays joint until told to leave,
    // with every peer caught up and no read pending.
    c.node(1)
        .propose_conf_change(ConfChangeV2 {
            transition: ConfChangeTransition::JointExplicit as i32,
            changes: vec![ConfChangeSingle {
                r#type: ConfChangeType::ConfChangeAddLearnerNode as i32,
                node_id: 3,
            }],
            ..Default::default()
        })
        .unwrap();
    c.stabilize();
    assert!(!c.conf_state_of(1).voters_outgoing.is_empty(), "joint");
    for _ in 0..20 {
        assert!(tick_count(&mut c) > 0);
    }
    assert!(!c.node_ref(1).is_quiet());
    // Leaving the joint configuration lets it go quiet.
    c.node(1)
        .propose_conf_change(ConfChangeV2::default())
        .unwrap();
    c.stabilize();
    assert!(c.conf_state_of(1).voters_outgoing.is_empty());
    for _ in 0..5 {
        tick_count(&mut c);
    }
    assert!(all_quiet(&c));
}

/// A quiet group after a proposal whose append and acknowledgements were delivered but whose
/// commit-index follow-up was lost; the leader's commit index.
fn committed_on_the_leader_only() -> (Cluster, u64) {
    let mut c = quiet_cluster(3, |_| {});
    c.propose(1, "x").unwrap();
    c.process_readies();
    c.deliver();
    c.process_readies();
    c.deliver();
    c.process_readies();
    c.queue.clear();
    let commit = c.committed(1);
    (c, commit)
}

#[test]
fn msg_quiesce_carries_the_commit_index() {
    let (mut c, commit) = committed_on_the_leader_only();
    assert!(c.committed(2) < commit);
    let term = c.term(1);
    let mut m = msg(MessageType::MsgQuiesce, 1, 2, term);
    m.commit = commit;
    m.index = 5;
    c.node(2).step(m).unwrap();
    assert_eq!(c.committed(2), commit, "learned from MsgQuiesce");
    assert!(c.node_ref(2).is_quiet());
}

#[test]
fn a_lost_commit_follow_up_is_carried_by_msg_quiesce() {
    let (mut c, commit) = committed_on_the_leader_only();
    assert!(c.committed(2) < commit && c.committed(3) < commit);
    for _ in 0..3 {
        tick_count(&mut c);
    }
    assert!(all_quiet(&c));
    assert_eq!(c.committed(2), commit, "learned from MsgQuiesce");
    assert_eq!(c.committed(3), commit);
    assert_eq!(c.payloads(2), c.payloads(1));
}

#[test]
fn an_answer_to_an_earlier_round_does_not_count_in_a_later_one() {
    let (mut c, old) = quiet_group_and_an_old_answer();
    c.node(3).wake();
    c.stabilize();
    // A later round at a later tick: its MsgQuiesce to node 3 is lost, node 2 answers.
    c.tick_all();
    c.process_readies();
    c.queue
        .retain(|m| !(m.msg_type() == Some(MessageType::MsgQuiesce) && m.to == 3));
    c.deliver();
    c.process_readies();
    c.deliver();
    assert!(!c.node_ref(3).is_quiet());
    // Node 3's old answer arrives now: it answers another round.
    c.node(1).step(old.clone()).unwrap();
    assert!(
        !c.node_ref(1).is_quiet(),
        "an answer to an earlier round does not count"
    );
}

#[test]
fn rounds_are_numbered_through_the_wrap_of_the_tick_counter() {
    let mut c = quiet_cluster(3, |_| {});
    let mut ticks = 0u64;
    while !all_quiet(&c) {
        tick_count(&mut c);
        ticks += 1;
    }
    // Quiet ticks cost nothing; bring the clock to 65,534, then wake the group for the
    // exchanges at ticks 65,535 and 65,536 (rounds number the tick modulo 65,535, from 1).
    while ticks < 65_534 {
        c.tick_all();
        ticks += 1;
    }
    for _ in 0..2 {
        c.node(1).wake();
        tick_count(&mut c);
        assert!(all_quiet(&c), "quiet again after one exchange");
    }
}

/// One quiescing round, stopped after node 2's answer reached the leader: node 3's answer is
/// returned, undelivered.
fn round_with_node_2_answered(c: &mut Cluster) -> raftcore::raftpb::Message {
    c.tick_all();
    c.process_readies();
    assert!(c
        .queue
        .iter()
        .any(|m| m.msg_type() == Some(MessageType::MsgQuiesce)));
    c.deliver();
    c.process_readies();
    let k = c
        .queue
        .iter()
        .position(|m| m.msg_type() == Some(MessageType::MsgQuiesceResp) && m.from == 3)
        .expect("node 3 answered");
    let answer_3 = c.queue.remove(k);
    c.deliver();
    assert!(!c.node_ref(1).is_quiet(), "node 3 has not answered yet");
    answer_3
}

#[test]
fn a_peer_heard_from_again_takes_its_answer_back() {
    let mut c = quiet_cluster(3, |_| {});
    c.propose(1, "x").unwrap();
    c.stabilize();
    let answer_3 = round_with_node_2_answered(&mut c);
    // Node 2 wakes and tells the leader before node 3's answer arrives.
    c.node(2).wake();
    c.process_readies();
    c.deliver();
    c.node(1).step(answer_3).unwrap();
    assert!(!c.node_ref(1).is_quiet(), "node 2's answer was taken back");
    for _ in 0..3 {
        tick_count(&mut c);
    }
    assert!(all_quiet(&c));
}

#[test]
fn wake_on_a_leader_collecting_answers_starts_the_round_over() {
    let mut c = quiet_cluster(3, |_| {});
    c.propose(1, "x").unwrap();
    c.stabilize();
    let answer_3 = round_with_node_2_answered(&mut c);
    c.node(1).wake();
    c.node(1).step(answer_3).unwrap();
    assert!(!c.node_ref(1).is_quiet(), "node 2's answer was forgotten");
    for _ in 0..3 {
        tick_count(&mut c);
    }
    assert!(all_quiet(&c));
}

#[test]
fn a_follower_woken_by_its_leader_does_not_tell_the_leader() {
    let mut c = quiet_cluster(3, |_| {});
    tick_count(&mut c);
    tick_count(&mut c);
    assert!(all_quiet(&c));
    c.propose(1, "x").unwrap();
    c.process_readies();
    c.deliver();
    // The followers woke on the leader's append and answer it, nothing more.
    c.process_readies();
    let types: Vec<_> = c
        .queue
        .iter()
        .filter(|m| m.from != 1)
        .map(|m| m.msg_type())
        .collect();
    assert!(!types.is_empty());
    assert!(
        types.iter().all(|t| *t == Some(MessageType::MsgAppResp)),
        "{types:?}"
    );
}

#[test]
fn a_follower_that_appends_and_goes_quiet_in_one_ready_stays_quiet() {
    let mut c = quiet_cluster(3, |_| {});
    c.propose(1, "a").unwrap();
    // Node 2 gets the append, then the leader's MsgQuiesce, before it handles its Ready.
    c.process_readies();
    let app: Vec<_> = c
        .queue
        .iter()
        .filter(|m| m.to == 2 && m.msg_type() == Some(MessageType::MsgApp))
        .cloned()
        .collect();
    assert_eq!(app.len(), 1);
    c.node(2).step(app[0].clone()).unwrap();
    let term = c.term(1);
    let mut q = msg(MessageType::MsgQuiesce, 1, 2, term);
    q.commit = c.committed(2);
    q.index = 3;
    c.node(2).step(q).unwrap();
    assert!(c.node_ref(2).is_quiet());
    // Handling that Ready acknowledges the node's own append locally: it stays quiet and sends
    // no wake-up call.
    c.queue.clear();
    c.process_readies();
    assert!(c.node_ref(2).is_quiet());
    assert!(
        !c.queue
            .iter()
            .any(|m| m.from == 2 && m.msg_type() == Some(MessageType::MsgHeartbeatResp)),
        "{:?}",
        c.queue
    );
}

/// A quiet node's ticks are counted in its `RawNode` handle and handed to the node at its
/// next input: a quiet leader's lease runs out over the ticks it slept, as it would awake.
#[test]
fn a_quiet_leaders_lease_runs_out_over_the_ticks_it_slept() {
    for (slept, answered_at_once) in [(1, true), (20, false)] {
        let mut c = quiet_cluster(3, |cfg| {
            cfg.check_quorum = true;
            cfg.read_only_option = raftcore::ReadOnlyOption::LeaseBased;
        });
        while !all_quiet(&c) {
            tick_count(&mut c);
        }
        for _ in 0..slept {
            c.tick_all();
        }
        let n = c.node(1);
        n.read_index(bytes::Bytes::from_static(b"r")).unwrap();
        let rd = n.ready();
        assert_eq!(
            !rd.read_states.is_empty(),
            answered_at_once,
            "after {slept} quiet ticks (election_tick {})",
            common::config(1, AppendMode::default()).election_tick
        );
    }
}
