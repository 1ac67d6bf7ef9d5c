//! Regression tests for what an independent random-message fuzzer and honest 3-node runs found
//! at the boundary of the core, and for the trust model of docs/security.md: forged messages
//! from non-members, the term space, forwarded proposals, acknowledgements that outlive their
//! entries, and `ready()` called twice before `advance()`.

mod common;

use bytes::Bytes;
use common::msg;
use raftcore::raftpb::{ConfState, Entry, Message, MessageType, Snapshot, SnapshotMetadata};
use raftcore::{
    Config, Error, MemStorage, RawNode, Reason, StateRole, MAX_REMOTE_VALUE, MAX_TERM_JUMP,
    MAX_UNCONFIRMED_TERM_JUMP,
};

/// A stranger: authenticated by the transport, but in no configuration the nodes know.
const STRANGER: u64 = 99;

fn storage(voters: &[u64]) -> MemStorage {
    let mut s = MemStorage::new();
    s.apply_snapshot(Snapshot {
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: voters.to_vec(),
                ..Default::default()
            }),
            index: 1,
            term: 1,
        }),
        ..Default::default()
    })
    .expect("fresh storage takes a snapshot");
    s
}

fn config(id: u64, check_quorum: bool) -> Config {
    let mut c = Config::new(id);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.max_size_per_msg = 1 << 20;
    c.check_quorum = check_quorum;
    c.pre_vote = check_quorum;
    c.seed = 7;
    c
}

/// Three nodes over a perfect in-memory network, driven by the Ready loop of the crate docs.
struct Group {
    nodes: Vec<RawNode<MemStorage>>,
    queue: Vec<Message>,
    applied: Vec<Vec<Bytes>>,
}

impl Group {
    fn new(check_quorum: bool) -> Group {
        let voters = [1, 2, 3];
        Group {
            nodes: voters
                .iter()
                .map(|&id| RawNode::new(&config(id, check_quorum), storage(&voters)).unwrap())
                .collect(),
            queue: Vec::new(),
            applied: vec![Vec::new(); 3],
        }
    }

    fn node(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        &mut self.nodes[id as usize - 1]
    }

    fn process(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            if !n.has_ready() {
                continue;
            }
            any = true;
            let rd = n.ready();
            self.queue.extend(rd.messages);
            let s = n.store_mut();
            if let Some(snap) = rd.snapshot {
                s.apply_snapshot(snap).unwrap();
            }
            s.append(&rd.entries).unwrap();
            if let Some(hs) = rd.hard_state {
                s.set_hard_state(hs);
            }
            self.queue.extend(rd.persisted_messages);
            for e in rd.committed_entries {
                if !e.data.is_empty() && e.r#type == 0 {
                    self.applied[i].push(e.data);
                }
            }
            n.advance().unwrap();
        }
        any
    }

    fn deliver(&mut self) -> bool {
        let msgs = std::mem::take(&mut self.queue);
        let any = !msgs.is_empty();
        for m in msgs {
            let to = m.to;
            // Honest traffic is never refused by the gate.
            self.node(to).step(m).expect("honest message accepted");
        }
        any
    }

    fn stabilize(&mut self) {
        for _ in 0..1000 {
            let a = self.process();
            let b = self.deliver();
            if !a && !b {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|n| n.role() == StateRole::Leader)
            .map(|n| n.id())
    }

    /// Ticks everyone until the group has a leader that commits a fresh proposal on all three
    /// nodes. Returns the leader.
    fn recover_and_commit(&mut self, payload: &'static str) -> u64 {
        for _ in 0..500 {
            for n in &mut self.nodes {
                n.tick();
            }
            self.stabilize();
            if let Some(l) = self.leader() {
                if self
                    .node(l)
                    .propose(Bytes::from_static(payload.as_bytes()))
                    .is_ok()
                {
                    self.stabilize();
                    let want = Bytes::from_static(payload.as_bytes());
                    if self.applied.iter().all(|a| a.contains(&want)) {
                        return l;
                    }
                }
            }
        }
        panic!("the group did not recover: terms {:?}", self.terms());
    }

    fn terms(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.term()).collect()
    }
}

fn elected(check_quorum: bool) -> Group {
    let mut g = Group::new(check_quorum);
    g.node(1).campaign().unwrap();
    g.stabilize();
    assert_eq!(g.leader(), Some(1));
    g.node(1).propose(Bytes::from_static(b"first")).unwrap();
    g.stabilize();
    g
}

fn refused(r: raftcore::Result<()>, why: Reason) {
    assert_eq!(r, Err(Error::InvalidMessage(why)));
}

#[test]
fn forged_timeout_now_cannot_cut_a_node_off() {
    for cq in [false, true] {
        let mut g = elected(cq);
        let term = g.node(2).term();
        // From a stranger, 2^48 ahead: refused, nothing changes.
        let m = msg(
            MessageType::MsgTimeoutNow,
            STRANGER,
            2,
            term + MAX_TERM_JUMP,
        );
        refused(g.node(2).step(m), Reason::TimeoutNowNotFromLeader);
        // From a member that is not the leader: refused too.
        let m = msg(MessageType::MsgTimeoutNow, 3, 2, term + MAX_TERM_JUMP);
        refused(g.node(2).step(m), Reason::TimeoutNowNotFromLeader);
        assert_eq!(g.node(2).term(), term);
        assert_eq!(g.node(2).role(), StateRole::Follower);
        g.recover_and_commit("after timeout-now");
        assert!(g.applied[1].contains(&Bytes::from_static(b"after timeout-now")));
    }
}

#[test]
fn a_forged_term_jump_that_gets_in_does_not_cut_the_node_off() {
    for cq in [false, true] {
        let mut g = elected(cq);
        let term = g.node(2).term();
        // A leader message from a stranger is taken (a new member's configuration may lag
        // behind its leader), up to the unconfirmed bound; more is refused.
        let far = msg(
            MessageType::MsgHeartbeat,
            STRANGER,
            2,
            term + MAX_UNCONFIRMED_TERM_JUMP + 1,
        );
        refused(g.node(2).step(far), Reason::TermTooFarAhead);
        let hb = msg(
            MessageType::MsgHeartbeat,
            STRANGER,
            2,
            term + MAX_UNCONFIRMED_TERM_JUMP,
        );
        g.node(2).step(hb).unwrap();
        assert_eq!(g.node(2).term(), term + MAX_UNCONFIRMED_TERM_JUMP);
        // Its answer goes to the stranger; the group then elects and commits with node 2.
        g.process();
        g.queue.retain(|m| m.to != STRANGER);
        let leader = g.recover_and_commit("after jump");
        assert!(g
            .terms()
            .iter()
            .all(|&t| t >= term + MAX_UNCONFIRMED_TERM_JUMP));
        assert!(
            g.applied[1].contains(&Bytes::from_static(b"after jump")),
            "leader {leader}"
        );
    }
}

#[test]
fn exhausting_the_term_space_takes_at_least_2_pow_32_forged_rounds() {
    // The bound, stated: each round moves the group's terms by at most
    // MAX_UNCONFIRMED_TERM_JUMP plus the election that follows, and terms stop at
    // MAX_REMOTE_VALUE.
    const { assert!(MAX_REMOTE_VALUE / (MAX_UNCONFIRMED_TERM_JUMP + 1000) >= 1 << 32) };

    let mut g = elected(true);
    let start = g.node(1).term();
    let rounds = 8u64;
    for round in 0..rounds {
        // A burst of forged heartbeats, each as far ahead of the node's current term as the
        // gate might allow: only the first gets in, the rest are refused until members have
        // caught up with it.
        let mut accepted = 0;
        for _ in 0..1000 {
            let t = g.node(2).term() + MAX_UNCONFIRMED_TERM_JUMP;
            if g.node(2)
                .step(msg(MessageType::MsgHeartbeat, STRANGER, 2, t))
                .is_ok()
            {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 1, "round {round}");
        g.process();
        g.queue.retain(|m| m.to != STRANGER);
        g.recover_and_commit(["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"][round as usize]);
    }
    let end = *g.terms().iter().max().unwrap();
    // 8000 forged messages moved the terms by at most one bound per round (plus elections).
    assert!(
        end <= start + rounds * (MAX_UNCONFIRMED_TERM_JUMP + 100),
        "{end}"
    );
}

#[test]
fn members_are_followed_within_the_member_window() {
    let mut g = elected(false);
    let term = g.node(2).term();
    // A member's term is taken far past the stranger bound (members are trusted), up to the
    // window no honest member can leave.
    let m = msg(
        MessageType::MsgHeartbeatResp,
        2,
        1,
        term + MAX_TERM_JUMP + 1,
    );
    refused(g.node(1).step(m), Reason::TermTooFarAhead);
    let m = msg(
        MessageType::MsgHeartbeatResp,
        2,
        1,
        term + MAX_UNCONFIRMED_TERM_JUMP * 4,
    );
    g.node(1).step(m).unwrap();
    assert_eq!(g.node(1).term(), term + MAX_UNCONFIRMED_TERM_JUMP * 4);
    g.recover_and_commit("after member jump");
}

#[test]
fn strangers_cannot_change_a_members_state() {
    // Take a candidate's campaign away.
    let mut g = elected(false);
    let n2 = g.node(2);
    n2.campaign().unwrap();
    assert_eq!(n2.role(), StateRole::Candidate);
    let term = n2.term();
    refused(
        n2.step(msg(MessageType::MsgApp, STRANGER, 2, term)),
        Reason::LeaderNotMember,
    );
    refused(
        n2.step(msg(MessageType::MsgHeartbeat, STRANGER, 2, term)),
        Reason::LeaderNotMember,
    );
    assert_eq!(n2.role(), StateRole::Candidate);

    // Take a vote.
    let mut g = elected(false);
    let n3 = g.node(3);
    let (term, vote) = (n3.term(), n3.basic_status().hard_state.vote);
    let mut v = msg(MessageType::MsgVote, STRANGER, 3, term + 1);
    v.index = 1000;
    v.log_term = term + 1;
    refused(n3.step(v.clone()), Reason::VoteFromNonMember);
    v.r#type = MessageType::MsgPreVote as i32;
    refused(n3.step(v), Reason::VoteFromNonMember);
    assert_eq!((n3.term(), n3.basic_status().hard_state.vote), (term, vote));

    // Force an election over a lease (check-quorum on): a transfer vote or MsgTimeoutNow.
    let mut g = elected(true);
    let n3 = g.node(3);
    let term = n3.term();
    let mut v = msg(MessageType::MsgVote, STRANGER, 3, term + 1);
    v.context = Bytes::from_static(b"CampaignTransfer");
    v.index = 1000;
    v.log_term = term + 1;
    refused(n3.step(v), Reason::VoteFromNonMember);
    refused(
        n3.step(msg(MessageType::MsgTimeoutNow, STRANGER, 3, term)),
        Reason::TimeoutNowNotFromLeader,
    );
    assert_eq!(
        (n3.term(), n3.role(), n3.leader_id()),
        (term, StateRole::Follower, 1)
    );

    // Install a snapshot that makes node 1 the sole voter.
    let mut g = elected(false);
    g.node(1)
        .step(msg(MessageType::MsgHeartbeatResp, 2, 1, 5))
        .unwrap();
    let n1 = g.node(1);
    assert_eq!(n1.role(), StateRole::Follower);
    let term = n1.term();
    let mut s = msg(MessageType::MsgSnap, STRANGER, 1, term);
    s.snapshot = Some(Snapshot {
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1],
                ..Default::default()
            }),
            index: 100,
            term,
        }),
        ..Default::default()
    });
    refused(n1.step(s), Reason::SnapshotFromNonMember);
    assert_eq!(n1.conf_state().voters, vec![1, 2, 3]);
    assert!(n1.last_index() < 100);
}

#[test]
fn a_proposal_forwarded_back_to_its_first_node_commits() {
    let mut g = elected(false);
    // Node 2 proposes; its forward to leader 1 is held in the network.
    g.node(2)
        .propose(Bytes::from_static(b"round trip"))
        .unwrap();
    g.process();
    let held: Vec<Message> = g
        .queue
        .iter()
        .filter(|m| m.r#type == MessageType::MsgProp as i32)
        .cloned()
        .collect();
    g.queue.retain(|m| m.r#type != MessageType::MsgProp as i32);
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].from, held[0].to), (2, 1));
    // Leadership moves to node 2 meanwhile.
    g.node(1).transfer_leader(2);
    g.stabilize();
    assert_eq!(g.leader(), Some(2));
    // The held proposal reaches node 1, which forwards it to its new leader: node 2, its
    // first node. It must commit, not be refused as "from this node".
    g.queue.extend(held);
    g.stabilize();
    for (i, a) in g.applied.iter().enumerate() {
        assert!(
            a.contains(&Bytes::from_static(b"round trip")),
            "node {} applied {a:?}",
            i + 1
        );
    }
}

fn ents(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last)
        .map(|i| Entry {
            index: i,
            term,
            data: Bytes::from(format!("e{i}t{term}")),
            ..Default::default()
        })
        .collect()
}

/// A follower (node 2) that acknowledged entries 2..=11 of a term-2 leader (node 1) in the
/// Ready being built.
fn follower_with_queued_ack() -> RawNode<MemStorage> {
    let mut n = RawNode::new(&config(2, false), storage(&[1, 2, 3])).unwrap();
    let mut app = msg(MessageType::MsgApp, 1, 2, 2);
    app.index = 1;
    app.log_term = 1;
    app.commit = 1;
    app.entries = ents(2, 11, 2);
    n.step(app).unwrap();
    n
}

fn acks(rd: &raftcore::Ready) -> Vec<(u64, u64)> {
    rd.persisted_messages
        .iter()
        .filter(|m| m.r#type == MessageType::MsgAppResp as i32 && !m.reject)
        .map(|m| (m.to, m.index))
        .collect()
}

#[test]
fn no_acknowledgement_outlives_its_entries() {
    // A conflicting append from a newer leader truncates 6..=11 in the same Ready.
    let mut n = follower_with_queued_ack();
    let mut app = msg(MessageType::MsgApp, 3, 2, 3);
    app.index = 5;
    app.log_term = 2;
    app.commit = 1;
    app.entries = ents(6, 7, 3);
    n.step(app).unwrap();
    let rd = n.ready();
    assert_eq!(
        acks(&rd),
        vec![(3, 7)],
        "the ack of 11 to node 1 is taken back"
    );
    assert_eq!(rd.entries.last().map(|e| (e.index, e.term)), Some((7, 3)));

    // A snapshot at 9 of a newer term replaces the log in the same Ready.
    let mut n = follower_with_queued_ack();
    let mut s = msg(MessageType::MsgSnap, 3, 2, 3);
    s.snapshot = Some(Snapshot {
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            }),
            index: 9,
            term: 3,
        }),
        ..Default::default()
    });
    n.step(s).unwrap();
    let rd = n.ready();
    assert!(rd.snapshot.is_some());
    assert_eq!(
        acks(&rd),
        vec![(3, 9)],
        "only the snapshot's own ack is left"
    );

    // Without a conflict nothing is taken back.
    let mut n = follower_with_queued_ack();
    let mut app = msg(MessageType::MsgApp, 1, 2, 2);
    app.index = 11;
    app.log_term = 2;
    app.entries = ents(12, 12, 2);
    n.step(app).unwrap();
    assert_eq!(acks(&n.ready()), vec![(1, 11), (1, 12)]);
}

#[test]
fn ready_twice_before_advance_keeps_applying() {
    let mut c = config(1, false);
    c.max_committed_size_per_ready = 1 << 20;
    let mut n = RawNode::new(&c, storage(&[1])).unwrap();
    n.campaign().unwrap();
    let mut applied: Vec<Bytes> = Vec::new();
    let persist_apply = |n: &mut RawNode<MemStorage>, applied: &mut Vec<Bytes>| {
        let rd = n.ready();
        let s = n.store_mut();
        s.append(&rd.entries).unwrap();
        if let Some(hs) = rd.hard_state {
            s.set_hard_state(hs);
        }
        for e in rd.committed_entries {
            if !e.data.is_empty() {
                applied.push(e.data);
            }
        }
    };
    let settle = |n: &mut RawNode<MemStorage>, applied: &mut Vec<Bytes>| {
        while n.has_ready() {
            persist_apply(n, applied);
            n.advance().unwrap();
        }
    };
    settle(&mut n, &mut applied);
    assert_eq!(n.role(), StateRole::Leader);
    n.propose(Bytes::from_static(b"a")).unwrap();
    persist_apply(&mut n, &mut applied); // entries [a]
    n.advance().unwrap();
    n.propose(Bytes::from_static(b"b")).unwrap();
    persist_apply(&mut n, &mut applied); // commits a, appends b
    assert_eq!(applied, vec![Bytes::from_static(b"a")]);
    // The mistake: a second ready() before advance(), with committed entries in the first.
    n.propose(Bytes::from_static(b"c")).unwrap();
    persist_apply(&mut n, &mut applied);
    n.advance().unwrap();
    settle(&mut n, &mut applied);
    for p in [b"d", b"e", b"f"] {
        n.propose(Bytes::from_static(p)).unwrap();
        settle(&mut n, &mut applied);
    }
    let want: Vec<Bytes> = [b"a", b"b", b"c", b"d", b"e", b"f"]
        .iter()
        .map(|p| Bytes::from_static(*p))
        .collect();
    assert_eq!(applied, want);
    assert_eq!(n.applied(), n.last_index());
    assert_eq!(n.commit(), n.last_index());
}

/// Found by the simulator (seed 6009120, async storage writes): a candidate that won with the
/// votes of others before its own vote (and term) were durable started leading; crashed before
/// the write, it came back at its old term, won the same term again (the others' votes for it
/// stood) and appended a different entry at an index its first incarnation had replicated with
/// the same term. A candidate now leads only once its own vote is durable.
#[test]
fn a_candidate_leads_only_once_its_own_vote_is_durable() {
    let mut c1 = config(1, false);
    c1.async_storage_writes = true;
    let mut n1 = RawNode::new(&c1, storage(&[1, 2, 3])).unwrap();
    let mut others: Vec<RawNode<MemStorage>> = [2, 3]
        .iter()
        .map(|&id| RawNode::new(&config(id, false), storage(&[1, 2, 3])).unwrap())
        .collect();
    n1.campaign().unwrap();
    let rd = n1.ready();
    let (local, votes): (Vec<Message>, Vec<Message>) = rd
        .messages
        .into_iter()
        .partition(|m| m.to == raftcore::LOCAL_APPEND_THREAD);
    assert_eq!(votes.len(), 2, "{votes:?}");
    // The others grant at once; node 1's own write has not happened yet.
    for v in votes {
        let n = &mut others[v.to as usize - 2];
        n.step(v).unwrap();
        let rd = n.ready();
        let s = n.store_mut();
        if let Some(hs) = rd.hard_state {
            s.set_hard_state(hs);
        }
        for resp in rd.persisted_messages {
            assert_eq!(resp.r#type, MessageType::MsgVoteResp as i32);
            assert!(!resp.reject);
            n1.step(resp).unwrap();
        }
        n.advance().unwrap();
    }
    assert_eq!(
        n1.role(),
        StateRole::Candidate,
        "a quorum granted, own vote not durable"
    );
    // The append thread writes the term and vote, then hands back the responses.
    let append = local.into_iter().next().expect("a MsgStorageAppend");
    assert_eq!((append.term, append.vote), (n1.term(), 1));
    for resp in append.responses {
        n1.step_local(resp).unwrap();
    }
    assert_eq!(n1.role(), StateRole::Leader);
}
