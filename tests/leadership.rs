//! Leadership: pre-vote, check-quorum and its leases, leader transfer, forget_leader,
//! disable_proposal_forwarding, and the leader's view in `status()`.
//!
//! Every test runs a small in-memory cluster (`tests/common`) of sync-mode nodes with
//! election_tick 10 and heartbeat_tick 1, seeded, so a run always replays the same way.

mod common;

use bytes::Bytes;
use common::{config, storage_with_voters, Cluster};
use raftcore::raftpb::{Message, MessageType};
use raftcore::tracker::ProgressState;
use raftcore::{AppendMode, Config, DropReason, Error, RawNode, ReadOnlyOption, StateRole, NONE};

const ELECTION_TICK: usize = 10;

fn cluster(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
    let voters: Vec<u64> = (1..=n).collect();
    let configs = voters
        .iter()
        .map(|&id| {
            let mut c = config(id, AppendMode::EtcdExact);
            tweak(&mut c);
            c
        })
        .collect();
    Cluster::with_configs(configs, &voters)
}

fn term(c: &mut Cluster, id: u64) -> u64 {
    c.node(id).basic_status().hard_state.term
}

fn lead(c: &mut Cluster, id: u64) -> u64 {
    c.node(id).basic_status().soft_state.leader_id
}

fn role(c: &mut Cluster, id: u64) -> StateRole {
    c.node(id).role()
}

/// Ticks every node once and lets the cluster settle, `n` times.
fn tick_all(c: &mut Cluster, n: usize) {
    for _ in 0..n {
        c.tick_all();
        c.stabilize();
    }
}

fn propose(c: &mut Cluster, id: u64, data: &'static str) -> Result<(), Error> {
    let r = c.node(id).propose(Bytes::from_static(data.as_bytes()));
    c.stabilize();
    r
}

/// Runs the Ready loop once on every node and returns the messages put on the wire (they
/// stay queued for delivery).
fn sent_now(c: &mut Cluster) -> Vec<Message> {
    let before = c.queue.len();
    c.process_readies();
    c.queue[before..].to_vec()
}

fn has_msg(msgs: &[Message], t: MessageType, to: u64) -> bool {
    msgs.iter().any(|m| m.r#type == t as i32 && m.to == to)
}

// -------------------------------------------------------------------------------------------
// Pre-vote.

/// A node cut off from the others keeps failing its pre-vote, so its term never grows; when it
/// comes back (its log now behind), it cannot win a pre-vote either, and the leader keeps its
/// term and its leadership.
#[test]
fn prevote_partitioned_node_does_not_disrupt_on_rejoin() {
    let mut c = cluster(3, |cfg| cfg.pre_vote = true);
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    let t = term(&mut c, 1);

    c.isolate(3);
    propose(&mut c, 1, "while 3 is away").unwrap();
    tick_all(&mut c, 10 * ELECTION_TICK);
    // n3 campaigned (pre-vote) many times, and its term did not move.
    assert_eq!(term(&mut c, 3), t);
    assert_eq!(c.leader(), Some(1));

    c.heal();
    tick_all(&mut c, 5 * ELECTION_TICK);
    assert_eq!(c.leader(), Some(1));
    for id in 1..=3 {
        assert_eq!(term(&mut c, id), t, "term of n{id}");
        assert_eq!(lead(&mut c, id), 1, "leader known to n{id}");
    }
    // n3 caught up.
    assert_eq!(c.log(3).last(), c.log(1).last());
}

/// With pre-vote and check-quorum, even a node whose log is as up to date as everyone's cannot
/// disrupt the leader when it rejoins: the others heard from the leader within the election
/// timeout and ignore its pre-votes.
#[test]
fn prevote_with_check_quorum_rejoining_node_with_full_log_does_not_disrupt() {
    let mut c = cluster(3, |cfg| {
        cfg.pre_vote = true;
        cfg.check_quorum = true;
    });
    c.campaign(1);
    let t = term(&mut c, 1);
    c.isolate(3);
    tick_all(&mut c, 10 * ELECTION_TICK);
    assert_eq!(term(&mut c, 3), t);
    c.heal();
    // n3 may be a pre-candidate right now: ask again explicitly, at once.
    c.node(3).campaign().unwrap();
    c.stabilize();
    tick_all(&mut c, 5 * ELECTION_TICK);
    assert_eq!(c.leader(), Some(1));
    for id in 1..=3 {
        assert_eq!(term(&mut c, id), t, "term of n{id}");
    }
}

/// Without pre-vote, the same partition makes the isolated node's term climb, and its return
/// forces the leader out: what pre-vote prevents.
#[test]
fn without_prevote_a_partitioned_node_disrupts_on_rejoin() {
    let mut c = cluster(3, |_| {});
    c.campaign(1);
    let t = term(&mut c, 1);
    c.isolate(3);
    tick_all(&mut c, 10 * ELECTION_TICK);
    let t3 = term(&mut c, 3);
    assert!(t3 > t + 1, "n3's term should climb, got {t3}");
    c.heal();
    tick_all(&mut c, 5 * ELECTION_TICK);
    assert!(term(&mut c, 1) >= t3, "the group moved to n3's term");
}

// -------------------------------------------------------------------------------------------
// Check-quorum.

/// A leader that hears from no quorum steps down. The check runs once per election timeout
/// and counts the followers heard from since the previous check: it takes more than one
/// election timeout, and at most two.
#[test]
fn check_quorum_leader_without_quorum_steps_down() {
    let mut c = cluster(3, |cfg| cfg.check_quorum = true);
    c.campaign(1);
    c.isolate(1);
    let mut ticks = 0;
    while role(&mut c, 1) == StateRole::Leader {
        c.node(1).tick();
        c.stabilize();
        ticks += 1;
        assert!(
            ticks <= 2 * ELECTION_TICK,
            "still leader after {ticks} ticks"
        );
    }
    assert!(
        ticks > ELECTION_TICK,
        "stepped down after only {ticks} ticks"
    );
    assert_eq!(role(&mut c, 1), StateRole::Follower);
    assert_eq!(lead(&mut c, 1), NONE);
}

/// Without check-quorum, an isolated leader stays leader however long it hears nothing.
#[test]
fn without_check_quorum_isolated_leader_stays() {
    let mut c = cluster(3, |_| {});
    c.campaign(1);
    c.isolate(1);
    for _ in 0..10 * ELECTION_TICK {
        c.node(1).tick();
        c.stabilize();
    }
    assert_eq!(role(&mut c, 1), StateRole::Leader);
}

/// A follower that heard from its leader within the election timeout ignores a vote request
/// for a higher term: no answer, no change of term or vote. A vote request that carries the
/// leader-transfer context goes through.
#[test]
fn check_quorum_lease_ignores_votes_except_for_transfers() {
    let mut c = cluster(3, |cfg| cfg.check_quorum = true);
    c.campaign(1);
    let t = term(&mut c, 1);
    let (li, lt) = {
        let e = c.log(1);
        let last = e.last().unwrap();
        (last.index, last.term)
    };
    let vote = |ctx: &'static [u8]| Message {
        r#type: MessageType::MsgVote as i32,
        from: 3,
        to: 2,
        term: t + 1,
        index: li,
        log_term: lt,
        context: Bytes::from_static(ctx),
        ..Default::default()
    };

    c.node(2).step(vote(b"")).unwrap();
    let sent = sent_now(&mut c);
    assert!(!has_msg(&sent, MessageType::MsgVoteResp, 3), "{sent:?}");
    assert_eq!(term(&mut c, 2), t);
    assert_eq!(c.node(2).basic_status().hard_state.vote, 1);

    c.node(2).step(vote(b"CampaignTransfer")).unwrap();
    let sent = sent_now(&mut c);
    let resp = sent
        .iter()
        .find(|m| m.r#type == MessageType::MsgVoteResp as i32 && m.to == 3)
        .expect("a vote response");
    assert!(!resp.reject);
    assert_eq!(term(&mut c, 2), t + 1);
    assert_eq!(c.node(2).basic_status().hard_state.vote, 3);
}

/// The same through the whole protocol: an ordinary campaign by a follower gets nowhere while
/// the leader's lease holds, while a transfer to that same follower succeeds.
#[test]
fn check_quorum_campaign_fails_in_lease_but_transfer_succeeds() {
    let mut c = cluster(3, |cfg| cfg.check_quorum = true);
    c.campaign(1);
    let t = term(&mut c, 1);

    c.node(3).campaign().unwrap();
    c.process_readies();
    c.deliver(); // n1 and n2 get n3's vote requests and ignore them
    c.process_readies();
    assert_eq!(role(&mut c, 3), StateRole::Candidate);
    assert_eq!(role(&mut c, 1), StateRole::Leader);
    assert_eq!(term(&mut c, 1), t);
    assert_eq!(term(&mut c, 2), t);
    assert_eq!(c.node(2).basic_status().hard_state.vote, 1);
    c.stabilize();

    // Start over and transfer instead.
    let mut c = cluster(3, |cfg| cfg.check_quorum = true);
    c.campaign(1);
    let t = term(&mut c, 1);
    c.node(1).transfer_leader(3);
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
    assert_eq!(term(&mut c, 3), t + 1);
}

// -------------------------------------------------------------------------------------------
// Leader transfer.

/// To an up-to-date follower: MsgTimeoutNow goes out at once, the follower campaigns (without
/// pre-vote even when pre-vote is on) and wins.
#[test]
fn transfer_to_up_to_date_follower() {
    let mut c = cluster(3, |cfg| {
        cfg.pre_vote = true;
        cfg.check_quorum = true;
    });
    c.campaign(1);
    let t = term(&mut c, 1);
    c.node(1).transfer_leader(2);
    assert_eq!(c.node(1).basic_status().lead_transferee, 2);
    let sent = sent_now(&mut c);
    assert!(has_msg(&sent, MessageType::MsgTimeoutNow, 2), "{sent:?}");
    c.deliver();
    // The transferee asks for real votes straight away.
    let sent = sent_now(&mut c);
    assert!(has_msg(&sent, MessageType::MsgVote, 1), "{sent:?}");
    assert!(!has_msg(&sent, MessageType::MsgPreVote, 1), "{sent:?}");
    c.stabilize();
    assert_eq!(c.leader(), Some(2));
    assert_eq!(term(&mut c, 2), t + 1);
    assert_eq!(role(&mut c, 1), StateRole::Follower);
    assert_eq!(c.node(1).basic_status().lead_transferee, NONE);
    propose(&mut c, 2, "after").unwrap();
    assert_eq!(c.log(1).last().unwrap().data, Bytes::from_static(b"after"));
}

/// A follower asked to transfer forwards the request to the leader.
#[test]
fn transfer_requested_on_a_follower_is_forwarded() {
    let mut c = cluster(3, |_| {});
    c.campaign(1);
    c.node(2).transfer_leader(3);
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
}

/// To a follower that lags: the leader first brings it up to date, and sends MsgTimeoutNow
/// only once it has acknowledged the leader's last index. Meanwhile proposals are dropped.
#[test]
fn transfer_to_lagging_follower_catches_it_up_first() {
    let mut c = cluster(3, |_| {});
    c.campaign(1);
    c.isolate(3);
    for d in ["a", "b", "c"] {
        propose(&mut c, 1, d).unwrap();
    }
    let last = c.log(1).last().unwrap().index;
    assert!(c.log(3).last().unwrap().index < last);
    c.heal();

    c.node(1).transfer_leader(3);
    let sent = sent_now(&mut c);
    assert!(!has_msg(&sent, MessageType::MsgTimeoutNow, 3), "{sent:?}");
    assert!(has_msg(&sent, MessageType::MsgApp, 3), "{sent:?}");
    assert_eq!(
        c.node(1).propose(Bytes::from_static(b"dropped")),
        Err(Error::ProposalDropped(DropReason::TransferInProgress))
    );

    c.stabilize();
    assert_eq!(c.leader(), Some(3));
    let log3 = c.log(3);
    assert!(log3.iter().any(|e| e.index == last && e.data == "c"));
    assert!(!log3.iter().any(|e| e.data == "dropped"));
}

/// A transfer that does not finish within an election timeout is abandoned: the leader stays,
/// forgets the transferee and takes proposals again.
#[test]
fn transfer_aborts_after_an_election_timeout() {
    let mut c = cluster(3, |_| {});
    c.campaign(1);
    c.isolate(3);
    propose(&mut c, 1, "x").unwrap();
    c.node(1).transfer_leader(3);
    c.stabilize();
    assert_eq!(
        c.node(1).propose(Bytes::from_static(b"y")),
        Err(Error::ProposalDropped(DropReason::TransferInProgress))
    );
    for i in 0..ELECTION_TICK {
        assert_eq!(c.node(1).basic_status().lead_transferee, 3, "tick {i}");
        c.node(1).tick();
        c.stabilize();
    }
    assert_eq!(c.node(1).basic_status().lead_transferee, NONE);
    assert_eq!(c.leader(), Some(1));
    propose(&mut c, 1, "z").unwrap();
    assert_eq!(c.log(2).last().unwrap().data, Bytes::from_static(b"z"));
}

/// Requests that make no sense are ignored: to the leader itself, to a learner, to a node
/// outside the configuration. A repeated request changes nothing; a request for another node
/// replaces the one in progress; a request for the leader itself cancels it.
#[test]
fn transfer_requests_that_are_ignored_replaced_or_cancelled() {
    let mut c = cluster(4, |_| {});
    // Voters (1 2 3), learner 4.
    for id in 1..=4u64 {
        let i = c.idx(id);
        let cfg = config(id, AppendMode::EtcdExact);
        c.nodes[i] = Some(RawNode::new(&cfg, storage_with_voters(&[1, 2, 3], &[4])).unwrap());
    }
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    for to in [1, 4, 9] {
        c.node(1).transfer_leader(to);
        assert_eq!(c.node(1).basic_status().lead_transferee, NONE, "to {to}");
    }

    // n2 and n3 lag behind and cannot be reached, so transfers to them stay pending.
    c.isolate(2);
    c.isolate(3);
    propose(&mut c, 1, "p").unwrap();
    c.node(1).transfer_leader(2);
    c.stabilize();
    assert_eq!(c.node(1).basic_status().lead_transferee, 2);
    c.node(1).transfer_leader(2);
    assert_eq!(c.node(1).basic_status().lead_transferee, 2);
    c.node(1).transfer_leader(3);
    assert_eq!(c.node(1).basic_status().lead_transferee, 3);
    c.node(1).transfer_leader(1);
    assert_eq!(c.node(1).basic_status().lead_transferee, NONE);
    assert_eq!(c.leader(), Some(1));
    propose(&mut c, 1, "accepted again").unwrap();
}

// -------------------------------------------------------------------------------------------
// forget_leader.

/// With pre-vote and check-quorum, a follower that forgets its leader stops holding the
/// leader's lease: it grants a pre-vote (and a vote) to another up-to-date node at once. It
/// stays in its term and does not campaign itself.
#[test]
fn forget_leader_lets_a_follower_grant_votes_at_once() {
    let mut c = cluster(3, |cfg| {
        cfg.pre_vote = true;
        cfg.check_quorum = true;
    });
    c.campaign(1);
    let t = term(&mut c, 1);

    // Within the lease, n3's pre-vote goes nowhere.
    c.node(3).campaign().unwrap();
    c.process_readies();
    c.deliver();
    c.process_readies();
    c.deliver();
    assert_ne!(role(&mut c, 3), StateRole::Candidate);
    assert_eq!(c.leader(), Some(1));
    tick_all(&mut c, 1); // the leader's heartbeat brings n3 back
    assert_eq!(lead(&mut c, 3), 1);

    c.node(2).forget_leader().unwrap();
    assert_eq!(lead(&mut c, 2), NONE);
    assert_eq!(term(&mut c, 2), t);
    assert_eq!(role(&mut c, 2), StateRole::Follower);

    c.node(3).campaign().unwrap();
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
    assert_eq!(term(&mut c, 3), t + 1);
}

/// On a leader (or candidate) it does nothing; with lease-based reads it is refused.
#[test]
fn forget_leader_is_a_no_op_on_leaders_and_refused_with_lease_reads() {
    let mut c = cluster(3, |_| {});
    c.campaign(1);
    c.node(1).forget_leader().unwrap();
    assert_eq!(c.leader(), Some(1));
    assert_eq!(lead(&mut c, 1), 1);

    let mut c = cluster(3, |cfg| {
        cfg.check_quorum = true;
        cfg.read_only_option = ReadOnlyOption::LeaseBased;
    });
    c.campaign(1);
    c.node(2).forget_leader().unwrap();
    assert_eq!(lead(&mut c, 2), 1);
}

/// Forgetting the leader is not a role change (the node stays a follower in its term); the
/// next heartbeat restores the leader.
#[test]
fn forget_leader_is_undone_by_the_next_heartbeat() {
    let mut c = cluster(3, |_| {});
    c.campaign(1);
    let t = term(&mut c, 2);
    c.node(2).forget_leader().unwrap();
    assert!(c.node(2).has_ready(), "the leader change is reported");
    c.stabilize();
    assert_eq!(lead(&mut c, 2), NONE);
    assert_eq!(role(&mut c, 2), StateRole::Follower);
    assert_eq!(term(&mut c, 2), t);
    c.node(1).tick();
    c.stabilize();
    assert_eq!(lead(&mut c, 2), 1);
}

// -------------------------------------------------------------------------------------------
// disable_proposal_forwarding.

#[test]
fn disable_proposal_forwarding_drops_proposals_on_followers() {
    let mut c = cluster(3, |cfg| cfg.disable_proposal_forwarding = cfg.id == 2);
    c.campaign(1);
    let before = c.log(1).len();
    assert_eq!(
        propose(&mut c, 2, "from 2"),
        Err(Error::ProposalDropped(DropReason::ForwardingDisabled))
    );
    assert_eq!(c.log(1).len(), before);
    // n3 forwards as usual, and the leader takes its own proposals whatever the setting.
    propose(&mut c, 3, "from 3").unwrap();
    assert_eq!(c.log(1).last().unwrap().data, Bytes::from_static(b"from 3"));

    let mut c = cluster(3, |cfg| cfg.disable_proposal_forwarding = true);
    c.campaign(1);
    propose(&mut c, 1, "on the leader").unwrap();
    assert_eq!(
        c.log(2).last().unwrap().data,
        Bytes::from_static(b"on the leader")
    );
}

// -------------------------------------------------------------------------------------------
// status().

#[test]
fn status_shows_progress_on_the_leader_only() {
    let mut c = cluster(3, |_| {});
    // n3 is a learner: rebuild the nodes with voters (1 2) and learner 3.
    for id in 1..=3u64 {
        let i = c.idx(id);
        let cfg = config(id, AppendMode::EtcdExact);
        c.nodes[i] = Some(RawNode::new(&cfg, storage_with_voters(&[1, 2], &[3])).unwrap());
    }
    c.campaign(1);
    propose(&mut c, 1, "a").unwrap();
    let last = c.log(1).last().unwrap().index;

    let st = c.node(1).status();
    assert_eq!(st.id, 1);
    assert_eq!(st.soft_state.raft_state, StateRole::Leader);
    assert_eq!(st.soft_state.leader_id, 1);
    assert_eq!(st.hard_state.commit, last);
    assert_eq!(st.applied, last);
    assert_eq!(st.lead_transferee, NONE);
    let ids: Vec<u64> = st.progress.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    for (id, pr) in &st.progress {
        assert_eq!(pr.matched(), last, "n{id}");
        assert_eq!(pr.next_idx(), last + 1, "n{id}");
        assert_eq!(pr.state(), ProgressState::Replicate, "n{id}");
        assert_eq!(pr.is_learner(), *id == 3, "n{id}");
    }
    assert!(st.config.voters.contains(1) && st.config.voters.contains(2));
    assert!(st.config.is_learner(3));

    // Followers and learners have no progress to show.
    for id in [2, 3] {
        let st = c.node(id).status();
        assert!(st.progress.is_empty(), "n{id}");
        assert_eq!(st.soft_state.leader_id, 1);
        assert_eq!(st.hard_state.commit, last);
    }

    // A follower that falls behind shows it; report_unreachable moves it to probing.
    c.isolate(2);
    propose(&mut c, 1, "b").unwrap();
    c.node(1).report_unreachable(2);
    let st = c.node(1).status();
    let pr2 = &st.progress.iter().find(|(id, _)| *id == 2).unwrap().1;
    assert_eq!(pr2.matched(), last);
    assert_eq!(pr2.state(), ProgressState::Probe);
    let pr3 = &st.progress.iter().find(|(id, _)| *id == 3).unwrap().1;
    assert_eq!(pr3.matched(), last + 1);
}

// -------------------------------------------------------------------------------------------
// Lower-term vote requests.

/// A voter ahead in term rejects a candidate's lower-term vote request at its own term, so the
/// candidate catches up (and can win the next election); etcd's behaviour
/// (`answer_stale_leader = false`) ignores the request.
#[test]
fn a_lower_term_vote_request_is_rejected_at_the_higher_term() {
    for answer in [true, false] {
        let mut c = cluster(3, |cfg| cfg.answer_stale_leader = answer);
        c.campaign(1);
        // Node 3 campaigns alone, cut off, and moves ahead in term.
        c.isolate(3);
        for _ in 0..3 {
            c.node(3).campaign().unwrap();
            c.stabilize();
        }
        let ahead = term(&mut c, 3);
        let behind = term(&mut c, 1);
        assert!(ahead > behind);
        c.heal();
        // Node 2 campaigns at a term below node 3's; only node 3 sees the request.
        c.cut.insert((2, 1));
        c.node(2).campaign().unwrap();
        let sent = sent_now(&mut c);
        assert!(has_msg(&sent, MessageType::MsgVote, 3));
        c.stabilize();
        if answer {
            assert_eq!(term(&mut c, 2), ahead, "the candidate learned the term");
            assert_eq!(role(&mut c, 2), StateRole::Follower);
        } else {
            assert_eq!(term(&mut c, 2), behind + 1, "etcd: ignored");
            assert_eq!(role(&mut c, 2), StateRole::Candidate);
        }
    }
}
