//! The leader's view of each follower (`Status::progress`) as appends go out and come back:
//! `next_idx` moves ahead optimistically, the window fills and pauses the flow, probing sends
//! one append at a time.

use crate::common::{config, msg, Cluster};
use raftcore::raftpb::MessageType;
use raftcore::tracker::{Progress, ProgressState};
use raftcore::AppendMode;

fn progress(c: &mut Cluster, leader: u64, id: u64) -> Progress {
    c.node(leader)
        .status()
        .progress
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, p)| p)
        .expect("a member's progress")
}

fn cluster(max_inflight: usize) -> Cluster {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, AppendMode::Batched);
            c.max_inflight_msgs = max_inflight;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    c
}

#[test]
fn replicate_moves_next_ahead_and_fills_the_window() {
    let mut c = cluster(2);
    let last = c.node(1).last_index();
    let p = progress(&mut c, 1, 2);
    assert_eq!(p.state(), ProgressState::Replicate);
    assert_eq!((p.matched(), p.next_idx()), (last, last + 1));
    assert_eq!(p.inflights().count(), 0);

    assert_eq!(p.inflights().size(), 2);
    assert_eq!(p.inflights().max_bytes(), 0, "no byte limit");
    assert_eq!(p.inflights().capacity(), 0, "nothing allocated until used");

    // Sent, not yet acknowledged.
    c.propose(1, "a").unwrap();
    c.process_readies();
    let p = progress(&mut c, 1, 2);
    assert_eq!(p.next_idx(), last + 2, "next moves past the entry sent");
    assert_eq!(p.matched(), last);
    assert_eq!(p.inflights().count(), 1);
    assert_eq!(p.inflights().bytes(), 1, "one payload byte in flight");
    assert!(!p.msg_app_flow_paused());

    c.propose(1, "b").unwrap();
    c.process_readies();
    let p = progress(&mut c, 1, 2);
    assert_eq!(p.next_idx(), last + 3);
    assert_eq!(p.inflights().count(), 2);
    assert!(p.msg_app_flow_paused(), "a full window pauses the flow");
    let queued = c.queue.len();

    // A third proposal waits for room in the window.
    c.propose(1, "c").unwrap();
    c.process_readies();
    let p = progress(&mut c, 1, 2);
    assert_eq!(p.next_idx(), last + 3);
    assert!(c.queue.len() >= queued);

    c.stabilize();
    let p = progress(&mut c, 1, 2);
    assert_eq!((p.matched(), p.next_idx()), (last + 3, last + 4));
    assert_eq!(
        p.sent_commit(),
        c.node(1).commit(),
        "the follower was told the commit"
    );
    assert_eq!(p.inflights().count(), 0);
    assert!(!p.msg_app_flow_paused());
    assert_eq!(c.payloads(2).len(), 3);
}

#[test]
fn probe_sends_one_append_then_waits() {
    let mut c = cluster(8);
    // Node 3 misses appends; the leader hears it is unreachable and goes back to probing.
    c.isolate(3);
    c.propose(1, "a").unwrap();
    c.stabilize();
    c.node(1).report_unreachable(3);
    let p = progress(&mut c, 1, 3);
    assert_eq!(p.state(), ProgressState::Probe);
    let next = p.next_idx();
    assert!(!p.msg_app_flow_paused());
    c.propose(1, "b").unwrap();
    c.process_readies();
    let p = progress(&mut c, 1, 3);
    assert!(p.msg_app_flow_paused(), "a probe waits for its answer");
    assert_eq!(p.next_idx(), next, "probing does not move next ahead");
    assert_eq!(p.inflights().count(), 0);
    c.heal();
    c.tick_and_stabilize(3);
    let p = progress(&mut c, 1, 3);
    assert_eq!(p.state(), ProgressState::Replicate);
    assert_eq!(p.matched(), c.node(1).last_index());
}

/// Leader 1 of {1, 2, 3}, batched, with messages of at most 100 bytes and a 100-byte
/// in-flight window per follower.
fn small_window_cluster() -> Cluster {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, AppendMode::Batched);
            c.max_size_per_msg = 100;
            c.max_inflight_bytes = 100;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    c
}

#[test]
fn an_entry_larger_than_the_byte_window_goes_alone_when_nothing_is_in_flight() {
    let mut c = small_window_cluster();
    assert_eq!(progress(&mut c, 1, 2).state(), ProgressState::Replicate);
    assert_eq!(progress(&mut c, 1, 2).inflights().max_bytes(), 100);
    let big = bytes::Bytes::from(vec![b'x'; 150]);
    c.propose(1, big.clone()).unwrap();
    c.process_readies();
    let apps: Vec<_> = c
        .queue
        .iter()
        .filter(|m| m.to == 2 && !m.entries.is_empty())
        .collect();
    assert_eq!(apps.len(), 1, "the large entry is sent at once");
    assert_eq!(apps[0].entries[0].data, big);
    // While it is in flight, nothing more goes to that follower.
    c.propose(1, "small").unwrap();
    c.process_readies();
    let to2 = c
        .queue
        .iter()
        .filter(|m| m.to == 2 && !m.entries.is_empty())
        .count();
    assert_eq!(to2, 1, "the window is over its bytes");
    c.stabilize();
    assert_eq!(c.payloads(2), vec![big, bytes::Bytes::from("small")]);
}

#[test]
fn entries_fill_the_byte_window_and_stop_at_its_edge() {
    let mut c = small_window_cluster();
    // Three 30-byte payloads fit the 100-byte window together, a fourth does not; a message
    // (at most 100 encoded bytes) holds two of them.
    let p = |i: u8| bytes::Bytes::from(vec![i; 30]);
    c.node(1).propose_batch((1..=4).map(p)).unwrap();
    c.process_readies();
    let sizes: Vec<usize> = c
        .queue
        .iter()
        .filter(|m| m.to == 2 && !m.entries.is_empty())
        .map(|m| m.entries.len())
        .collect();
    assert_eq!(sizes, vec![2, 1]);
    assert_eq!(progress(&mut c, 1, 2).inflights().bytes(), 90);
    c.stabilize();
    assert_eq!(c.payloads(2), (1..=4).map(p).collect::<Vec<_>>());
}

/// A rejection's hint moves a probing leader back to just after the hint; a hint without a
/// term (log_term 0) is taken as it is.
#[test]
fn rejection_hint_without_a_term_is_taken_as_is() {
    let mut c = cluster(8);
    for i in 0..5 {
        c.propose(1, format!("e{i}")).unwrap();
    }
    c.stabilize();
    let last = c.node(1).last_index();
    assert_eq!(last, 7);
    // Node 2 wins an election; its first appends are still queued.
    c.node(2).campaign().unwrap();
    for _ in 0..2 {
        c.process_readies();
        c.deliver();
    }
    c.process_readies();
    assert_eq!(c.leader(), Some(2));
    let probe = c
        .queue
        .iter()
        .find(|m| m.from == 2 && m.to == 3 && m.msg_type() == Some(MessageType::MsgApp))
        .expect("a probe to 3")
        .clone();
    let p = progress(&mut c, 2, 3);
    assert_eq!(p.state(), ProgressState::Probe);
    assert_eq!(p.next_idx(), probe.index + 1);
    c.queue.clear();
    let mut r = msg(MessageType::MsgAppResp, 3, 2, c.node(2).term());
    r.reject = true;
    r.index = probe.index;
    r.reject_hint = 4;
    r.log_term = 0;
    c.node(2).step(r).unwrap();
    let p = progress(&mut c, 2, 3);
    assert_eq!(p.next_idx(), 5, "probing resumes right after the hint");
    // The next probe goes from there.
    c.process_readies();
    let again = c
        .queue
        .iter()
        .find(|m| m.to == 3 && m.msg_type() == Some(MessageType::MsgApp))
        .expect("a new probe")
        .clone();
    assert_eq!(again.index, 4);
    c.stabilize();
    c.tick_and_stabilize(2);
    assert_eq!(c.node(3).last_index(), c.node(2).last_index());
}

/// While a snapshot is on its way, an acknowledgement that does not reach the leader's log
/// (a late answer to an older append) records the match but keeps waiting for the snapshot.
#[test]
fn late_ack_during_snapshot_keeps_waiting() {
    let mut c = cluster(8);
    c.isolate(3);
    for i in 0..6 {
        c.propose(1, format!("e{i}")).unwrap();
    }
    c.stabilize();
    let snap = c.snapshot_and_compact(1).expect("a snapshot");
    assert!(c.node(1).first_index() > 5);
    c.node(1).report_unreachable(3);
    // The next append to 3 would start below the compacted log: a snapshot goes instead.
    c.propose(1, "x").unwrap();
    c.process_readies();
    let p = progress(&mut c, 1, 3);
    assert_eq!(p.state(), ProgressState::Snapshot);
    assert_eq!(p.pending_snapshot(), snap);
    assert!(c
        .queue
        .iter()
        .any(|m| m.to == 3 && m.msg_type() == Some(MessageType::MsgSnap)));
    c.queue.clear();

    let mut ack = msg(MessageType::MsgAppResp, 3, 1, c.node(1).term());
    ack.index = 4;
    c.node(1).step(ack).unwrap();
    c.process_readies();
    let p = progress(&mut c, 1, 3);
    assert_eq!(p.state(), ProgressState::Snapshot);
    assert_eq!(p.matched(), 4);
    assert!(
        !c.queue.iter().any(|m| m.to == 3),
        "nothing more is sent while the snapshot is pending: {:?}",
        c.queue
    );
}

/// A rejection is a rejection even when it names an index past the leader's log: the
/// follower goes back to probing.
#[test]
fn rejection_past_the_log_sends_the_follower_back_to_probing() {
    let mut c = cluster(8);
    c.propose(1, "a").unwrap();
    c.stabilize();
    let last = c.node(1).last_index();
    assert_eq!(progress(&mut c, 1, 2).state(), ProgressState::Replicate);
    let mut r = msg(MessageType::MsgAppResp, 2, 1, c.node(1).term());
    r.reject = true;
    r.index = last + 5;
    r.reject_hint = last;
    c.node(1).step(r).unwrap();
    let p = progress(&mut c, 1, 2);
    assert_eq!(p.state(), ProgressState::Probe);
    assert_eq!(p.next_idx(), last + 1);
    c.stabilize();
    assert_eq!(progress(&mut c, 1, 2).state(), ProgressState::Replicate);
}

#[test]
fn check_quorum_marks_silent_followers_inactive() {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, AppendMode::Batched);
            c.check_quorum = true;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    c.isolate(3);
    // One election timeout of ticks: the quorum check starts a new round of activity.
    for _ in 0..10 {
        c.node(1).tick();
        c.stabilize();
    }
    assert_eq!(c.leader(), Some(1));
    assert!(progress(&mut c, 1, 2).recent_active());
    assert!(!progress(&mut c, 1, 3).recent_active());
}

#[test]
fn a_new_member_is_probed_as_soon_as_it_is_added() {
    use raftcore::raftpb::{ConfChange, ConfChangeType};
    let mut c = cluster(8);
    c.propose(1, "a").unwrap();
    c.stabilize();
    c.add_node(config(4, AppendMode::Batched), raftcore::MemStorage::new());
    let cc = ConfChange {
        r#type: ConfChangeType::ConfChangeAddLearnerNode as i32,
        node_id: 4,
        ..Default::default()
    };
    c.node(1).propose_conf_change(cc).unwrap();
    // No tick: the leader reaches out to the new member when it applies the change.
    let sent_to_4 = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = sent_to_4.clone();
    c.ready_hook = Some(Box::new(move |id, rd| {
        if id == 1 {
            let n = rd.messages.iter().filter(|m| m.to == 4).count();
            seen.set(seen.get() + n);
        }
    }));
    c.stabilize();
    assert_eq!(c.node(1).conf_state().learners, vec![4]);
    assert!(sent_to_4.get() > 0, "the new member was contacted");
    let p = progress(&mut c, 1, 4);
    assert!(p.is_learner());
}
