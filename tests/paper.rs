//! The rules of the Raft paper (§5.1–§5.4) as tests of raftcore, with etcd-io/raft's reading
//! of them where the paper leaves room (stale-term answers, pre-vote, repeated votes).
//!
//! - §5.1 terms: a higher term turns every role into a follower; stale terms are ignored or
//!   answered as etcd does.
//! - §5.2 election: randomized timeouts in `[election_tick, 2*election_tick)`, self-vote and a
//!   request to every voter, majority wins, one vote per term, stepping down on an append of
//!   the same term, split votes resolve.
//! - §5.3 / §5.4: election safety and log matching under message loss (randomized runs),
//!   leader completeness, the up-to-date check, and the Figure 8 commitment rule.

mod common;

use bytes::Bytes;
use common::{config, msg, prefix_related, storage_with_voters, Cluster};
use proptest::prelude::*;
use raftcore::raftpb::{Entry, HardState, Message, MessageType};
use raftcore::{AppendMode, Config, MemStorage, RawNode, StateRole, Storage, NONE};
use std::collections::BTreeMap;

const MODES: [AppendMode; 2] = [AppendMode::Batched, AppendMode::EtcdExact];

/// Proptest cases: `PROPTEST_CASES` if set, else `default`, never more than 64.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
        .min(64)
}

/// Storage starting from a snapshot at index 1, term 1, with the HardState at term 1, so the
/// first election is for term 2.
fn storage_at_term1(voters: &[u64], learners: &[u64]) -> MemStorage {
    let mut s = storage_with_voters(voters, learners);
    s.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 1,
    });
    s
}

/// A lone node of a group of `voters`, at term 1 (see `storage_at_term1`).
fn raw(id: u64, voters: &[u64], tweak: impl FnOnce(&mut Config)) -> RawNode<MemStorage> {
    raw_on(id, storage_at_term1(voters, &[]), tweak)
}

fn raw_on(id: u64, s: MemStorage, tweak: impl FnOnce(&mut Config)) -> RawNode<MemStorage> {
    let mut c = config(id, AppendMode::EtcdExact);
    tweak(&mut c);
    RawNode::new(&c, s).expect("valid node")
}

/// Handles one Ready the way the crate docs say (persist, then advance) and returns every
/// message it asked to send, early list first.
fn handle(n: &mut RawNode<MemStorage>) -> Vec<Message> {
    if !n.has_ready() {
        return Vec::new();
    }
    let rd = n.ready();
    let s = n.store_mut();
    if let Some(snap) = &rd.snapshot {
        s.apply_snapshot(snap.clone()).unwrap();
    }
    s.append(&rd.entries).unwrap();
    if let Some(hs) = rd.hard_state {
        s.set_hard_state(hs);
    }
    n.advance().unwrap();
    let mut out = rd.messages;
    out.extend(rd.persisted_messages);
    out
}

fn of_type(ms: &[Message], t: MessageType) -> Vec<Message> {
    ms.iter()
        .filter(|m| m.msg_type() == Some(t))
        .cloned()
        .collect()
}

fn lead(n: &RawNode<MemStorage>) -> u64 {
    n.basic_status().soft_state.leader_id
}

fn term(n: &RawNode<MemStorage>) -> u64 {
    n.basic_status().hard_state.term
}

// ---------------------------------------------------------------------------------------------
// §5.1 Terms

/// Puts node 1 of a 3-voter group into `role` and returns it with its term.
fn node_in_role(role: StateRole) -> RawNode<MemStorage> {
    let mut n = raw(1, &[1, 2, 3], |c| {
        c.pre_vote = role == StateRole::PreCandidate
    });
    match role {
        StateRole::Follower => {}
        StateRole::PreCandidate | StateRole::Candidate => {
            n.campaign().unwrap();
            handle(&mut n);
        }
        StateRole::Leader => {
            n.campaign().unwrap();
            handle(&mut n);
            let t = term(&n);
            n.step(msg(MessageType::MsgVoteResp, 2, 1, t)).unwrap();
            handle(&mut n);
        }
    }
    assert_eq!(n.role(), role);
    n
}

#[test]
fn higher_term_turns_every_role_into_follower() {
    let roles = [
        StateRole::Follower,
        StateRole::PreCandidate,
        StateRole::Candidate,
        StateRole::Leader,
    ];
    for role in roles {
        for t in [
            MessageType::MsgApp,
            MessageType::MsgHeartbeat,
            MessageType::MsgVote,
            MessageType::MsgAppResp,
        ] {
            let mut n = node_in_role(role);
            let old = term(&n);
            let mut m = msg(t, 2, 1, old + 5);
            if t == MessageType::MsgApp || t == MessageType::MsgVote {
                m.index = 1;
                m.log_term = 1;
            }
            n.step(m).unwrap();
            assert_eq!(n.role(), StateRole::Follower, "{role:?} stepping {t:?}");
            assert_eq!(term(&n), old + 5, "{role:?} adopts the term of {t:?}");
            // Only a message that only a leader of that term sends names the leader.
            let want_lead = if matches!(t, MessageType::MsgApp | MessageType::MsgHeartbeat) {
                2
            } else {
                NONE
            };
            assert_eq!(lead(&n), want_lead, "{role:?} stepping {t:?}");
            let hs = n.basic_status().hard_state;
            assert_eq!(hs.term, old + 5);
            // The new term is durable state: the next Ready carries it.
            let rd = n.ready();
            assert_eq!(rd.hard_state.map(|h| h.term), Some(old + 5));
        }
    }
}

#[test]
fn stale_term_messages_are_ignored_or_answered_per_etcd() {
    // etcd's rule (`answer_stale_leader` off): answered only with check-quorum.
    let stale_node = |check_quorum: bool| {
        let mut s = storage_with_voters(&[1, 2, 3], &[]);
        s.set_hard_state(HardState {
            term: 3,
            vote: 0,
            commit: 1,
        });
        raw_on(1, s, |c| {
            c.check_quorum = check_quorum;
            c.answer_stale_leader = false;
        })
    };

    // Without check_quorum or pre-vote a stale append, heartbeat or vote is dropped unanswered.
    for t in [
        MessageType::MsgApp,
        MessageType::MsgHeartbeat,
        MessageType::MsgVote,
        MessageType::MsgSnap,
    ] {
        let mut n = stale_node(false);
        handle(&mut n);
        let mut m = msg(t, 2, 1, 2);
        m.index = 1;
        m.log_term = 1;
        m.commit = 1;
        if t == MessageType::MsgApp {
            m.entries = vec![Entry {
                index: 2,
                term: 2,
                data: Bytes::from_static(b"stale"),
                ..Default::default()
            }];
        }
        if t == MessageType::MsgSnap {
            let mut snap = n.store().snapshot().unwrap();
            snap.metadata.as_mut().unwrap().index = 5;
            snap.metadata.as_mut().unwrap().term = 2;
            m.snapshot = Some(snap);
        }
        n.step(m).unwrap();
        assert_eq!(term(&n), 3);
        assert_eq!(lead(&n), NONE, "a stale {t:?} names no leader");
        assert_eq!(
            n.basic_status().hard_state.vote,
            NONE,
            "no vote for a stale {t:?}"
        );
        let out = handle(&mut n);
        assert!(out.is_empty(), "stale {t:?} answered with {out:?}");
        assert_eq!(
            n.store().last_index().unwrap(),
            1,
            "stale {t:?} changed the log"
        );
    }

    // A stale pre-vote is rejected, carrying the node's term so the sender learns it.
    let mut n = stale_node(false);
    handle(&mut n);
    let mut m = msg(MessageType::MsgPreVote, 2, 1, 2);
    m.index = 1;
    m.log_term = 1;
    n.step(m).unwrap();
    let out = handle(&mut n);
    let resp = of_type(&out, MessageType::MsgPreVoteResp);
    assert_eq!(resp.len(), 1);
    assert!(resp[0].reject);
    assert_eq!(resp[0].term, 3);
    assert_eq!(resp[0].to, 2);

    // With check_quorum (etcd), or by raftcore's default `answer_stale_leader` (after a
    // membership change no vote request may ever reach the old leader), a stale append or
    // heartbeat is answered by an empty MsgAppResp at the higher term, so a leader cut off by a
    // partition learns it was deposed.
    let default_node = || {
        let mut s = storage_with_voters(&[1, 2, 3], &[]);
        s.set_hard_state(HardState {
            term: 3,
            vote: 0,
            commit: 1,
        });
        raw_on(1, s, |_| {})
    };
    for t in [MessageType::MsgApp, MessageType::MsgHeartbeat] {
        for mut n in [stale_node(true), default_node()] {
            handle(&mut n);
            let mut m = msg(t, 2, 1, 2);
            m.index = 1;
            m.log_term = 1;
            n.step(m).unwrap();
            let out = handle(&mut n);
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(out[0].msg_type(), Some(MessageType::MsgAppResp));
            assert_eq!((out[0].to, out[0].term, out[0].reject), (2, 3, false));
            assert_eq!(term(&n), 3);
        }
    }

    // A leader ignores a stale acknowledgement: it does not count toward the commit.
    let mut n = node_in_role(StateRole::Leader);
    n.propose(Bytes::from_static(b"x")).unwrap();
    handle(&mut n);
    let before = n.basic_status().hard_state.commit;
    let last = n.store().last_index().unwrap();
    let mut ack = msg(MessageType::MsgAppResp, 2, 1, term(&n) - 1);
    ack.index = last;
    n.step(ack).unwrap();
    handle(&mut n);
    assert_eq!(n.basic_status().hard_state.commit, before);
    let mut ack = msg(MessageType::MsgAppResp, 2, 1, term(&n));
    ack.index = last;
    n.step(ack).unwrap();
    assert_eq!(
        n.basic_status().hard_state.commit,
        last,
        "a current ack commits"
    );
}

/// A malformed append (entries not following its index) at a higher term is rejected with
/// `Error::InvalidMessage`, which promises the message was rejected "before it could touch any
/// state": the node must not adopt its term, drop its vote or take its sender as leader.
#[test]
fn malformed_append_at_a_higher_term_is_rejected_without_adopting_the_term() {
    let mut n = raw(1, &[1, 2, 3], |_| {});
    let mut vote = msg(MessageType::MsgVote, 3, 1, 2);
    vote.index = 1;
    vote.log_term = 1;
    n.step(vote).unwrap();
    handle(&mut n);
    let before = n.basic_status();
    assert_eq!((before.hard_state.term, before.hard_state.vote), (2, 3));

    let entry = |index| Entry {
        index,
        term: 5,
        ..Default::default()
    };
    let mut m = msg(MessageType::MsgApp, 2, 1, 5);
    m.index = 1;
    m.log_term = 1;
    // A gap: index 2, then 4.
    m.entries = vec![entry(2), entry(4)];
    let r = n.step(m);
    assert!(
        matches!(r, Err(raftcore::Error::InvalidMessage(_))),
        "{r:?}"
    );
    let after = n.basic_status();
    assert_eq!(
        after.hard_state, before.hard_state,
        "the rejected append moved the term"
    );
    assert_eq!(after.soft_state, before.soft_state);
}

// ---------------------------------------------------------------------------------------------
// §5.2 Leader election

/// Ticks a fresh follower (or the node as it is) until it starts an election; returns the
/// number of ticks it took.
fn ticks_until_campaign(n: &mut RawNode<MemStorage>) -> usize {
    let t0 = term(n);
    for i in 1..=1000 {
        n.tick();
        if term(n) > t0 {
            return i;
        }
    }
    panic!("node never campaigned");
}

#[test]
fn election_timeout_is_randomized_in_range() {
    let et = 10;
    let mut all = Vec::new();
    let mut differ_between_nodes = 0;
    for seed in 0..60u64 {
        let mut per_node = Vec::new();
        for id in 1..=3 {
            let mut n = raw(id, &[1, 2, 3], |c| {
                c.seed = seed;
                c.election_tick = et;
            });
            // The first timeout as a follower, then the next one as a candidate: the timeout
            // is drawn again at every role change.
            let first = ticks_until_campaign(&mut n);
            assert_eq!(n.role(), StateRole::Candidate);
            handle(&mut n);
            let second = ticks_until_campaign(&mut n);
            for t in [first, second] {
                assert!(
                    (et..2 * et).contains(&t),
                    "seed {seed} node {id}: timeout {t} outside [{et}, {})",
                    2 * et
                );
            }
            per_node.push(first);
            all.push(first);
            all.push(second);

            // Deterministic: the same seed and id give the same timeout.
            let mut again = raw(id, &[1, 2, 3], |c| {
                c.seed = seed;
                c.election_tick = et;
            });
            assert_eq!(ticks_until_campaign(&mut again), first);
        }
        if per_node.iter().any(|&t| t != per_node[0]) {
            differ_between_nodes += 1;
        }
    }
    // The whole range is used, and nodes of one group rarely share a timeout.
    assert_eq!(*all.iter().min().unwrap(), et);
    assert_eq!(*all.iter().max().unwrap(), 2 * et - 1);
    assert!(
        differ_between_nodes >= 50,
        "only {differ_between_nodes}/60 seeds gave the 3 nodes different timeouts"
    );
    // Different seeds give node 1 different timeouts.
    let node1: std::collections::BTreeSet<usize> = (0..60u64)
        .map(|seed| {
            let mut n = raw(1, &[1, 2, 3], |c| c.seed = seed);
            ticks_until_campaign(&mut n)
        })
        .collect();
    assert!(node1.len() >= 5, "seeds gave node 1 only {node1:?}");
}

#[test]
fn follower_hearing_from_leader_never_campaigns() {
    for mode in MODES {
        let mut c = Cluster::new(3, mode);
        c.campaign(1);
        let t = c.term(1);
        c.tick_and_stabilize(100);
        assert_eq!(c.leader(), Some(1));
        for id in 1..=3 {
            assert_eq!(c.term(id), t, "node {id} moved the term");
        }
    }
}

#[test]
fn candidate_votes_for_itself_and_asks_every_voter() {
    for pre_vote in [false, true] {
        // Voters 1..5 and learner 6: the learner is never asked.
        let s = storage_at_term1(&[1, 2, 3, 4, 5], &[6]);
        let mut n = raw_on(1, s, |c| c.pre_vote = pre_vote);
        n.campaign().unwrap();
        let rd = n.ready();
        let hs = n.basic_status().hard_state;
        let want = if pre_vote {
            // A pre-candidate keeps its term and vote; the request carries the next term.
            assert!(rd.hard_state.is_none());
            assert_eq!((hs.term, hs.vote), (1, NONE));
            assert_eq!(n.role(), StateRole::PreCandidate);
            MessageType::MsgPreVote
        } else {
            assert_eq!(
                (hs.term, hs.vote),
                (2, 1),
                "votes for itself in the new term"
            );
            assert_eq!(n.role(), StateRole::Candidate);
            MessageType::MsgVote
        };
        let reqs: Vec<&Message> = rd
            .messages
            .iter()
            .chain(rd.persisted_messages.iter())
            .collect();
        let mut to: Vec<u64> = reqs.iter().map(|m| m.to).collect();
        to.sort_unstable();
        assert_eq!(to, vec![2, 3, 4, 5], "asks every other voter, once");
        for m in reqs {
            assert_eq!(m.msg_type(), Some(want));
            assert_eq!((m.from, m.term, m.log_term, m.index), (1, 2, 1, 1));
        }
    }
}

#[test]
fn candidate_wins_with_a_majority_of_votes() {
    // (group size, votes received from others, resulting role) — etcd's
    // TestLeaderElectionInOneRoundRPC.
    type Case = (u64, &'static [(u64, bool)], StateRole);
    let cases: &[Case] = &[
        (1, &[], StateRole::Leader),
        (3, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[(2, true)], StateRole::Leader),
        (
            5,
            &[(2, true), (3, true), (4, true), (5, true)],
            StateRole::Leader,
        ),
        (5, &[(2, true), (3, true), (4, true)], StateRole::Leader),
        (5, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[(2, false), (3, false)], StateRole::Follower),
        (
            5,
            &[(2, false), (3, false), (4, false), (5, false)],
            StateRole::Follower,
        ),
        (
            5,
            &[(2, true), (3, false), (4, false), (5, false)],
            StateRole::Follower,
        ),
        (3, &[], StateRole::Candidate),
        (5, &[(2, true)], StateRole::Candidate),
        (5, &[(2, false), (3, false)], StateRole::Candidate),
        (5, &[], StateRole::Candidate),
    ];
    for (i, &(size, votes, want)) in cases.iter().enumerate() {
        let voters: Vec<u64> = (1..=size).collect();
        let mut n = raw(1, &voters, |_| {});
        n.campaign().unwrap();
        handle(&mut n); // the self-vote counts once durable
        for &(from, granted) in votes {
            let mut m = msg(MessageType::MsgVoteResp, from, 1, 2);
            m.reject = !granted;
            n.step(m).unwrap();
        }
        assert_eq!(n.role(), want, "case {i}");
        assert_eq!(term(&n), 2, "case {i}");
    }
}

#[test]
fn one_vote_per_term_first_come_first_served() {
    // (vote already cast in term 1, candidate asking, rejected) — etcd's TestFollowerVote.
    let cases = [
        (NONE, 2, false),
        (NONE, 3, false),
        (2, 2, false),
        (3, 3, false),
        (2, 3, true),
        (3, 2, true),
    ];
    for (vote, cand, reject) in cases {
        let mut s = storage_with_voters(&[1, 2, 3], &[]);
        s.set_hard_state(HardState {
            term: 1,
            vote,
            commit: 1,
        });
        let mut n = raw_on(1, s, |_| {});
        let mut m = msg(MessageType::MsgVote, cand, 1, 1);
        m.index = 1;
        m.log_term = 1;
        n.step(m).unwrap();
        let out = handle(&mut n);
        let resp = of_type(&out, MessageType::MsgVoteResp);
        assert_eq!(resp.len(), 1);
        assert_eq!(
            (resp[0].to, resp[0].term, resp[0].reject),
            (cand, 1, reject)
        );
        let want_vote = if vote == NONE { cand } else { vote };
        assert_eq!(n.basic_status().hard_state.vote, want_vote);
    }

    // In one term: the first request wins, a competitor is refused, and a repeated request
    // from the first candidate (its response may have been lost) is granted again.
    let mut n = raw(1, &[1, 2, 3], |_| {});
    for (cand, reject) in [(2, false), (3, true), (2, false), (3, true)] {
        let mut m = msg(MessageType::MsgVote, cand, 1, 2);
        m.index = 1;
        m.log_term = 1;
        n.step(m).unwrap();
        let out = handle(&mut n);
        let resp = of_type(&out, MessageType::MsgVoteResp);
        assert_eq!(resp.len(), 1);
        assert_eq!(resp[0].reject, reject, "request from {cand}");
        assert_eq!(n.store().hard_state().vote, 2, "the vote is persisted");
    }
}

#[test]
fn candidate_steps_down_on_append_from_leader_of_its_term() {
    for t in [MessageType::MsgApp, MessageType::MsgHeartbeat] {
        let mut n = node_in_role(StateRole::Candidate);
        let ct = term(&n);

        // A stale append does not stop the campaign.
        let mut m = msg(t, 3, 1, ct - 1);
        m.index = 1;
        m.log_term = 1;
        n.step(m).unwrap();
        assert_eq!(n.role(), StateRole::Candidate);

        // An append of its own term means someone else won it.
        let mut m = msg(t, 3, 1, ct);
        m.index = 1;
        m.log_term = 1;
        m.commit = 1;
        n.step(m).unwrap();
        assert_eq!(n.role(), StateRole::Follower, "{t:?}");
        assert_eq!((term(&n), lead(&n)), (ct, 3), "{t:?}");
        // It keeps its vote for itself in that term.
        assert_eq!(n.basic_status().hard_state.vote, 1);
    }
}

#[test]
fn split_votes_resolve() {
    for mode in MODES {
        // Four voters: 1 and 2 campaign at once, 3 votes for 1 and 4 for 2. Nobody has a
        // majority of 3; the randomized timeouts then let one of them win a later term.
        let mut c = Cluster::new(4, mode);
        c.cut.insert((2, 3));
        c.cut.insert((1, 4));
        c.node(1).campaign().unwrap();
        c.node(2).campaign().unwrap();
        c.stabilize();
        assert_eq!(c.leader(), None, "the vote is split");
        assert_eq!(c.node(1).role(), StateRole::Candidate);
        assert_eq!(c.node(2).role(), StateRole::Candidate);
        let split_term = c.term(1);
        assert_eq!(c.term(2), split_term);
        c.heal();
        let mut rounds = 0;
        while c.leader().is_none() {
            c.tick_all();
            c.stabilize();
            rounds += 1;
            assert!(rounds < 200, "split vote never resolved");
        }
        let l = c.leader().unwrap();
        let t = c.term(l);
        assert!(t > split_term, "a later term resolves it");
        let leaders = c
            .nodes
            .iter()
            .flatten()
            .filter(|n| n.role() == StateRole::Leader)
            .count();
        assert_eq!(leaders, 1);
        c.propose(l, "after split").unwrap();
        c.stabilize();
        for id in 1..=4 {
            assert_eq!(c.payloads(id), vec![Bytes::from_static(b"after split")]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// §5.2–§5.4 Safety under randomized message loss

/// A tiny deterministic generator for the test's own choices.
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

/// Log Matching: if two logs hold an entry with the same index and term, they are identical
/// up to it. Checked on the stable logs (`process_readies` persists everything).
fn assert_log_matching(c: &mut Cluster) {
    let ids = c.ids.clone();
    let logs: Vec<(u64, Vec<Entry>)> = ids.iter().map(|&id| (id, c.log(id))).collect();
    for (a, la) in &logs {
        for (b, lb) in &logs {
            if a >= b {
                continue;
            }
            // Highest index where both hold an entry of the same term.
            let by_index = |l: &[Entry]| -> BTreeMap<u64, (u64, Entry)> {
                l.iter().map(|e| (e.index, (e.term, e.clone()))).collect()
            };
            let (ma, mb) = (by_index(la), by_index(lb));
            let top = ma
                .iter()
                .rev()
                .find(|(i, (t, _))| mb.get(i).is_some_and(|(tb, _)| tb == t))
                .map(|(i, _)| *i);
            if let Some(top) = top {
                for i in ma.keys().filter(|&&i| i <= top) {
                    if let Some((_, eb)) = mb.get(i) {
                        assert_eq!(&ma[i].1, eb, "logs of {a} and {b} differ at {i} <= {top}");
                    }
                }
            }
        }
    }
}

/// One randomized run: five voters, messages dropped at `drop_pct`%, the leader cut off now
/// and then, random ticks and proposals. Checks after every step: at most one leader per term, log matching, applied
/// sequences are prefixes of one another, and every leader holds every entry committed in an
/// earlier term.
/// With `compact_every`, nodes also snapshot and compact as they go (so lagging nodes catch up
/// through snapshots, which the lossy network may drop too); with `restarts`, nodes now and
/// then crash and restart from what they persisted.
fn safety_run(
    seed: u64,
    mode: AppendMode,
    drop_pct: u64,
    steps: usize,
    compact_every: Option<u64>,
    restarts: bool,
) {
    let cfg = |id| {
        let mut cfg = config(id, mode);
        cfg.seed = seed;
        cfg.election_tick = 5;
        cfg.max_size_per_msg = 256;
        cfg
    };
    let mut c = Cluster::with_configs((1..=5).map(cfg).collect(), &[1, 2, 3, 4, 5]);
    c.compact_every = compact_every;
    let mut rng = TestRng(seed ^ 0xABCD);
    let mut leader_of_term: BTreeMap<u64, u64> = BTreeMap::new();
    // Committed entries (index, term) -> the highest term any node had when it was first seen
    // applied: the term of the leader that committed it is at most that.
    let mut committed_seen: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut proposals = 0u64;
    for step in 0..steps {
        // Now and then the leader is cut off, or the network heals.
        if rng.chance(2) {
            if let Some(l) = c.leader() {
                c.isolate(l);
            }
        } else if rng.chance(3) {
            c.heal();
        }
        match rng.below(10) {
            0..=3 => {
                let id = 1 + rng.below(5);
                c.node(id).tick();
            }
            4 => {
                let id = 1 + rng.below(5);
                proposals += 1;
                let _ = c.propose(id, format!("p{proposals}"));
            }
            5 if restarts && rng.chance(10) => {
                let id = 1 + rng.below(5);
                c.restart_node(cfg(id));
            }
            _ => {}
        }
        c.process_readies();
        // Deliver what survives the lossy network; a lost snapshot is reported as failed.
        c.deliver_lossy(|| rng.chance(drop_pct));
        // Election safety.
        c.assert_one_leader_per_term(&mut leader_of_term, &format!("seed {seed} step {step}"));
        // State machine safety.
        c.assert_applied_consistent();
        let max_term = c.ids.clone().iter().map(|&id| c.term(id)).max().unwrap();
        for a in &c.applied {
            for e in a {
                committed_seen.entry((e.0, e.1)).or_insert(max_term);
            }
        }
        // Leader completeness.
        for id in c.ids.clone() {
            if c.node(id).role() != StateRole::Leader {
                continue;
            }
            let t = c.term(id);
            let log: BTreeMap<u64, u64> = c.log(id).iter().map(|e| (e.index, e.term)).collect();
            // Entries compacted into the leader's snapshot are checked by the state machine
            // comparison instead.
            let first = c.node(id).store().first_index().unwrap();
            for (&(i, et), &seen) in &committed_seen {
                if t > seen && i >= first {
                    assert_eq!(
                        log.get(&i),
                        Some(&et),
                        "seed {seed} step {step}: leader {id} of term {t} lacks committed entry {i}"
                    );
                }
            }
        }
        if step % 8 == 0 {
            assert_log_matching(&mut c);
        }
    }
    assert_log_matching(&mut c);
    let applied_under_loss = c.applied.iter().map(|a| a.len()).max().unwrap_or(0);
    if std::env::var("PAPER_STATS").is_ok() {
        eprintln!(
            "seed {seed} drop {drop_pct}: {} leader terms, {applied_under_loss} applied, {} snapshots sent",
            leader_of_term.len(),
            c.snap_reports.len()
        );
    }

    // Once the network heals, the group converges: every node follows one leader of the
    // highest term, and all commit indexes agree.
    c.heal();
    let settled = |c: &Cluster| -> Option<u64> {
        let ss: Vec<_> = (1..=5).map(|id| c.node_ref(id).basic_status()).collect();
        let l = ss[0].soft_state.leader_id;
        let same = ss.iter().all(|s| {
            s.soft_state.leader_id == l
                && s.hard_state.term == ss[0].hard_state.term
                && s.hard_state.commit == ss[0].hard_state.commit
        });
        (l != NONE && same).then_some(l)
    };
    let mut l = None;
    for _ in 0..200 {
        c.tick_all();
        c.stabilize();
        l = settled(&c);
        if l.is_some() {
            break;
        }
    }
    let l = l.unwrap_or_else(|| panic!("seed {seed}: no single leader after healing"));
    assert_eq!(c.node(l).role(), StateRole::Leader);
    c.propose(l, "final").unwrap();
    c.stabilize();
    let reference = c.log(l);
    let last_id = |c: &Cluster, id: u64| {
        let s = c.node_ref(id).store();
        let li = s.last_index().unwrap();
        (li, s.term(li).unwrap())
    };
    for id in 1..=5 {
        assert_eq!(
            last_id(&c, id),
            last_id(&c, l),
            "seed {seed}: last entry of {id}"
        );
        // Compaction points differ between nodes: compare from where both logs start.
        let from = c.node_ref(id).store().first_index().unwrap();
        let from = from.max(c.node_ref(l).store().first_index().unwrap());
        let tail =
            |l: &[Entry]| -> Vec<Entry> { l.iter().filter(|e| e.index >= from).cloned().collect() };
        assert_eq!(
            tail(&c.log(id)),
            tail(&reference),
            "seed {seed}: log of {id} after healing"
        );
        assert_eq!(
            c.applied_of(id),
            c.applied_of(l),
            "seed {seed}: applied of {id}"
        );
    }
    assert_eq!(c.payloads(l).last().unwrap(), &Bytes::from_static(b"final"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    #[test]
    fn election_safety_and_log_matching_under_message_loss(
        seed in any::<u64>(),
        drop_pct in 5u64..40,
        etcd in any::<bool>(),
    ) {
        let mode = if etcd { AppendMode::EtcdExact } else { AppendMode::Batched };
        safety_run(seed, mode, drop_pct, 400, None, false);
    }

    #[test]
    fn safety_under_loss_with_compaction_and_restarts(
        seed in any::<u64>(),
        drop_pct in 5u64..30,
        etcd in any::<bool>(),
        compact_every in 3u64..20,
    ) {
        let mode = if etcd { AppendMode::EtcdExact } else { AppendMode::Batched };
        safety_run(seed, mode, drop_pct, 400, Some(compact_every), true);
    }
}

#[test]
fn log_matching_after_drops_and_leader_change() {
    for mode in MODES {
        let mut c = Cluster::new(3, mode);
        c.campaign(1);
        // Node 3 misses some appends.
        c.cut.insert((1, 3));
        for i in 0..3 {
            c.propose(1, format!("a{i}")).unwrap();
            c.stabilize();
        }
        c.heal();
        c.propose(1, "a3").unwrap();
        c.stabilize();
        // Node 1 is cut off with an uncommitted tail of its own.
        c.isolate(1);
        for i in 0..3 {
            c.propose(1, format!("lost{i}")).unwrap();
            c.stabilize();
        }
        c.campaign(2);
        assert_eq!(c.node(2).role(), StateRole::Leader);
        for i in 0..3 {
            c.propose(2, format!("b{i}")).unwrap();
            c.stabilize();
        }
        assert_log_matching(&mut c);
        c.heal();
        c.tick_and_stabilize(3);
        assert_eq!(c.leader(), Some(2));
        let reference = c.log(2);
        for id in 1..=3 {
            assert_eq!(c.log(id), reference, "{mode:?}: node {id}'s log");
        }
        let want: Vec<Bytes> = ["a0", "a1", "a2", "a3", "b0", "b1", "b2"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        for id in 1..=3 {
            assert_eq!(c.payloads(id), want, "{mode:?}: node {id} applied");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// §5.4 Safety

#[test]
fn node_lacking_a_committed_entry_cannot_be_elected() {
    for mode in MODES {
        let mut c = Cluster::new(3, mode);
        c.campaign(1);
        // "x" is committed by 1 and 2 while 3 is cut off.
        c.isolate(3);
        c.propose(1, "x").unwrap();
        c.stabilize();
        let x_index = c.log(1).last().unwrap().index;
        assert_eq!(c.committed(1), x_index);
        assert!(c.log(3).iter().all(|e| e.index < x_index));

        // The leader goes away; 3 comes back and campaigns.
        c.heal();
        c.isolate(1);
        c.node(3).campaign().unwrap();
        c.process_readies();
        let votes: Vec<Message> = c.queue.iter().filter(|m| m.to == 2).cloned().collect();
        c.deliver();
        c.process_readies();
        let resp: Vec<Message> = c
            .queue
            .iter()
            .filter(|m| m.msg_type() == Some(MessageType::MsgVoteResp) && m.to == 3)
            .cloned()
            .collect();
        assert_eq!(votes.len(), 1);
        assert_eq!(resp.len(), 1);
        assert!(resp[0].reject, "2 holds x and refuses 3");
        c.stabilize();
        assert_ne!(c.node(3).role(), StateRole::Leader);

        // Any number of tries by 3 fail; 2 (which holds x) can win, and x stays committed.
        for _ in 0..3 {
            c.node(3).campaign().unwrap();
            c.stabilize();
            assert_ne!(c.node(3).role(), StateRole::Leader);
        }
        c.node(2).campaign().unwrap();
        c.stabilize();
        if c.node(2).role() != StateRole::Leader {
            // 3's higher term may have made the first try lose; the next one wins.
            c.node(2).campaign().unwrap();
            c.stabilize();
        }
        assert_eq!(c.node(2).role(), StateRole::Leader);
        assert_eq!(c.payloads(3), vec![Bytes::from_static(b"x")]);
    }
}

#[test]
fn vote_requires_an_up_to_date_log() {
    // The voter's log: index 1 (term 1), 2 and 3 (term 2), so its last entry is (term 2, 3).
    let voter = || {
        let mut s = storage_with_voters(&[1, 2, 3], &[]);
        s.append(&[
            Entry {
                index: 2,
                term: 2,
                ..Default::default()
            },
            Entry {
                index: 3,
                term: 2,
                ..Default::default()
            },
        ])
        .unwrap();
        s.set_hard_state(HardState {
            term: 2,
            vote: 0,
            commit: 1,
        });
        raw_on(1, s, |_| {})
    };
    // (candidate's last term, last index, granted)
    let cases = [
        (3, 1, true),  // higher last term, shorter log
        (3, 5, true),  // higher last term, longer log
        (2, 3, true),  // same last entry
        (2, 4, true),  // same term, longer
        (2, 2, false), // same term, shorter
        (1, 9, false), // lower last term, however long
        (1, 3, false),
    ];
    for (lt, li, granted) in cases {
        for pre_vote in [false, true] {
            let mut n = voter();
            let t = if pre_vote {
                MessageType::MsgPreVote
            } else {
                MessageType::MsgVote
            };
            let mut m = msg(t, 2, 1, 3);
            m.log_term = lt;
            m.index = li;
            n.step(m).unwrap();
            let out = handle(&mut n);
            let resp: Vec<&Message> = out.iter().filter(|m| m.to == 2).collect();
            assert_eq!(resp.len(), 1, "({lt}, {li})");
            assert_eq!(
                resp[0].reject, !granted,
                "{t:?} from a candidate at ({lt}, {li})"
            );
            if !pre_vote {
                let want = if granted { 2 } else { NONE };
                assert_eq!(n.basic_status().hard_state.vote, want);
            }
        }
    }
}

/// Figure 8: a leader may not count replicas to commit an entry of an earlier term; that
/// entry commits only together with an entry of the leader's own term.
#[test]
fn figure8_old_term_entry_commits_only_with_a_current_term_entry() {
    for mode in MODES {
        let cfg = |id| {
            let mut cfg = config(id, mode);
            // One entry per append message: the old entry and the new leader's empty entry
            // travel separately.
            cfg.max_size_per_msg = 0;
            cfg
        };
        let mut c = Cluster::with_configs((1..=3).map(cfg).collect(), &[1, 2, 3]);
        c.campaign(1); // term t, empty entry at index 2 committed everywhere
        let t = c.term(1);
        assert_eq!(c.committed(3), 2);

        // 1 appends e (index 3, term t) but nobody receives it.
        c.isolate(1);
        c.propose(1, "e").unwrap();
        c.stabilize();
        let e = c.log(1).last().unwrap().clone();
        assert_eq!((e.index, e.term), (3, t));

        // 2 wins term t+1 with 3's vote and appends its own entry at index 3, which nobody
        // receives: 2 is cut off right after the votes are in.
        c.heal();
        c.isolate(1);
        c.node(2).campaign().unwrap();
        for _ in 0..2 {
            c.process_readies();
            c.deliver();
        }
        assert_eq!(c.node(2).role(), StateRole::Leader);
        c.isolate(2);
        c.stabilize();
        assert_eq!(c.log(2).last().map(|e| (e.index, e.term)), Some((3, t + 1)));
        assert_eq!(c.log(3).last().map(|e| (e.index, e.term)), Some((2, t)));

        // 1 restarts (so it is no longer the stale leader of term t), comes back and wins term
        // t+2 with 3's vote (its (3, t) beats 3's (2, t)); it then brings 3 up to date one
        // append at a time.
        c.restart_node(cfg(1));
        c.heal();
        c.isolate(2);
        let mut saw_e_alone = false;
        let mut observe = |c: &mut Cluster| {
            for m in &c.queue {
                if m.msg_type() == Some(MessageType::MsgApp) && m.to == 3 {
                    assert!(m.entries.len() <= 1, "max_size_per_msg = 0: one entry each");
                    assert!(
                        m.commit <= 2 || m.commit >= 4,
                        "commit {} told to 3",
                        m.commit
                    );
                }
            }
            if c.node(1).role() != StateRole::Leader {
                return;
            }
            let matched3 = c
                .node(1)
                .status()
                .progress
                .iter()
                .find(|(id, _)| *id == 3)
                .map(|(_, p)| p.matched());
            if matched3 == Some(3) {
                // e is on 1 and 3, a majority, and 3 acknowledged it; the leader's own entry
                // of term t+2 is only on 1.
                saw_e_alone = true;
                assert_eq!(
                    c.committed(1),
                    2,
                    "{mode:?}: the leader committed e (an older term) by counting replicas"
                );
                assert_eq!(c.committed(3), 2);
            }
        };
        let mut tries = 0;
        while c.node(1).role() != StateRole::Leader {
            tries += 1;
            assert!(tries < 5, "1 never won");
            c.node(1).campaign().unwrap();
            for _ in 0..100 {
                let a = c.process_readies();
                let b = c.deliver();
                observe(&mut c);
                if !a && !b {
                    break;
                }
            }
        }
        assert_eq!(c.term(1), t + 2);
        assert!(saw_e_alone, "{mode:?}: never saw e acknowledged by 3 alone");

        // The new leader's entry (index 4) reached 3 too: e and it committed together.
        c.stabilize();
        assert_eq!(c.committed(1), 4, "{mode:?}");
        assert_eq!(c.committed(3), 4, "{mode:?}");
        assert_eq!(c.payloads(3), vec![Bytes::from_static(b"e")]);
        // 2's conflicting entry at index 3 is overwritten once it is back.
        c.heal();
        c.tick_and_stabilize(2);
        assert_eq!(c.payloads(2), vec![Bytes::from_static(b"e")]);
        assert!(prefix_related(c.applied_of(1), c.applied_of(2)));
    }
}
