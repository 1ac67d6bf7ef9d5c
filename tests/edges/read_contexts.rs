//! What heartbeats carry for reads: nothing when no read is pending (Safe mode, as etcd), the
//! position of the newest pending read while one is (echoed back, it confirms the read), and
//! with lease-based reads also the tick the heartbeat was sent at.

use crate::common::{config, Cluster};
use raftcore::raftpb::{Message, MessageType};
use raftcore::{AppendMode, ReadOnlyOption};

fn cluster(opt: ReadOnlyOption) -> Cluster {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, AppendMode::Batched);
            c.read_only_option = opt;
            c.check_quorum = opt == ReadOnlyOption::LeaseBased;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    c
}

fn heartbeats(c: &mut Cluster) -> Vec<Message> {
    c.process_readies();
    c.queue
        .iter()
        .filter(|m| m.msg_type() == Some(MessageType::MsgHeartbeat))
        .cloned()
        .collect()
}

#[test]
fn safe_heartbeats_carry_the_pending_read_only() {
    let mut c = cluster(ReadOnlyOption::Safe);
    c.node(1).tick();
    let hb = heartbeats(&mut c);
    assert_eq!(hb.len(), 2);
    assert!(hb.iter().all(|m| m.context.is_empty()), "{hb:?}");
    c.stabilize();

    c.node(1).read_index("r1".into()).unwrap();
    let hb = heartbeats(&mut c);
    assert_eq!(hb.len(), 2);
    assert!(hb.iter().all(|m| m.context.len() == 8), "{hb:?}");
    c.stabilize();
    let rd = c.node(1).ready();
    assert!(
        rd.read_states.is_empty(),
        "released in the Ready the cluster handled"
    );
    // The read was released when the echoes came back.
    c.node(1).read_index("r2".into()).unwrap();
    c.process_readies();
    c.deliver();
    c.process_readies();
    c.deliver();
    let rd = c.node(1).ready();
    let ctxs: Vec<_> = rd
        .read_states
        .iter()
        .map(|r| r.request_ctx.clone())
        .collect();
    assert_eq!(ctxs, vec![bytes::Bytes::from("r2")]);
}

#[test]
fn lease_heartbeats_carry_their_tick() {
    let mut c = cluster(ReadOnlyOption::LeaseBased);
    c.node(1).tick();
    let hb = heartbeats(&mut c);
    assert_eq!(hb.len(), 2);
    for m in &hb {
        assert_eq!(m.context.len(), 16, "{m:?}");
        let tick = u64::from_le_bytes(m.context[8..16].try_into().unwrap());
        assert!(tick >= 1, "stamped with the leader's tick");
    }
}

#[test]
fn lease_read_is_served_at_once_after_answers_in_the_same_tick() {
    let mut c = cluster(ReadOnlyOption::LeaseBased);
    // Heartbeats go out and their answers come back within each tick.
    c.tick_and_stabilize(12);
    c.node(1).read_index("lease".into()).unwrap();
    // No message round: the lease answers.
    let rd = c.node(1).ready();
    let ctxs: Vec<_> = rd
        .read_states
        .iter()
        .map(|r| r.request_ctx.clone())
        .collect();
    assert_eq!(ctxs, vec![bytes::Bytes::from("lease")]);
    assert_eq!(rd.read_states[0].index, c.node(1).commit());
}

#[test]
fn lease_read_is_served_at_once_after_answers_a_tick_later() {
    let mut c = cluster(ReadOnlyOption::LeaseBased);
    c.stabilize();
    // Each round: the leader ticks and heartbeats; the answers arrive after its next tick, so
    // every acknowledged send tick is below the leader's clock when it is recorded. Enough
    // rounds that the lease from the election's same-tick answers has run out.
    for _ in 0..12 {
        c.node(1).tick();
        c.process_readies();
        c.deliver(); // heartbeats to the followers
        c.process_readies(); // their answers, queued
        c.node(1).tick(); // the next heartbeats wait in the leader's next Ready
        c.deliver(); // the answers, a tick late
    }
    c.process_readies();
    assert_eq!(
        read_at_once(&mut c, "late"),
        vec![bytes::Bytes::from("late")],
        "served from the lease"
    );
}

/// Asks leader 1 for a read with context `ctx`; the contexts its next Ready releases.
fn read_at_once(c: &mut Cluster, ctx: &'static str) -> Vec<bytes::Bytes> {
    c.node(1).read_index(ctx.into()).unwrap();
    let rd = c.node(1).ready();
    rd.read_states
        .iter()
        .map(|r| r.request_ctx.clone())
        .collect()
}

/// With quiescence, the quiescing exchange carries the lease's tick like a heartbeat: a group
/// that was quiet long enough for the lease to run out, woken for one exchange, serves a read
/// from the lease the answers renewed.
#[test]
fn msg_quiesce_carries_the_lease_tick() {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, AppendMode::Batched);
            c.read_only_option = ReadOnlyOption::LeaseBased;
            c.check_quorum = true;
            c.quiesce = true;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    c.tick_and_stabilize(3);
    assert!(c.node_ref(1).is_quiet());
    // Quiet far past the lease.
    c.tick_and_stabilize(30);
    assert!(c.node_ref(1).is_quiet());
    // One exchange: the leader wakes, sends MsgQuiesce at its next tick, the answers come
    // back and it is quiet again.
    c.node(1).wake();
    c.tick_and_stabilize(1);
    assert!(c.node_ref(1).is_quiet());
    assert_eq!(
        read_at_once(&mut c, "after"),
        vec![bytes::Bytes::from("after")],
        "served from the lease"
    );
}

/// Lease-based leader 1 of {1, 2, 3} whose heartbeats at one tick were all answered; then
/// `lag` more ticks whose heartbeats are lost. Whether a read is then served at once.
fn lease_serves_after(lag: usize) -> bool {
    let mut c = cluster(ReadOnlyOption::LeaseBased);
    c.stabilize();
    c.tick_and_stabilize(1);
    for _ in 0..lag {
        c.node(1).tick();
        c.process_readies();
        c.queue.clear();
    }
    c.node(1).read_index("lagging".into()).unwrap();
    let rd = c.node(1).ready();
    !rd.read_states.is_empty()
}

#[test]
fn the_lease_lasts_election_tick_less_two_ticks_from_the_answered_heartbeat() {
    // election_tick is 10: answers to a heartbeat sent at tick t cover reads until t + 8.
    for lag in 0..=8 {
        assert!(lease_serves_after(lag), "lag {lag}");
    }
    for lag in 9..=10 {
        assert!(!lease_serves_after(lag), "lag {lag}");
    }
}

#[test]
fn a_transfer_in_progress_suspends_the_lease() {
    let mut c = cluster(ReadOnlyOption::LeaseBased);
    c.stabilize();
    c.tick_and_stabilize(1);
    // Node 3 is cut off, so the transfer waits for it to catch up.
    c.isolate(3);
    c.propose(1, "x").unwrap();
    c.stabilize();
    c.node(1).transfer_leader(3);
    assert_eq!(c.node(1).basic_status().lead_transferee, 3);
    c.node(1).read_index("during".into()).unwrap();
    let rd = c.node(1).ready();
    assert!(rd.read_states.is_empty(), "not from the lease");
}
