//! Three Raft nodes in one process, talking through an in-memory network.
//!
//! Each node has its own `MemStorage` and runs the Ready loop of the crate docs: persist the
//! Ready's snapshot, entries and hard state; send `messages` at once and `persisted_messages`
//! only after persisting; apply the committed entries (conf changes with `apply_conf_change`);
//! `advance`. The clock ticks until a leader is elected, then the leader proposes a few
//! commands and the program prints each one as it commits and is applied on every node.
//!
//! Run it with `cargo run --example three_nodes`. It exits 0 once every node has applied every
//! command, and 1 if that does not happen within a bounded number of ticks.

use std::collections::VecDeque;

use bytes::Bytes;
use prost::Message as _;
use raftcore::raftpb::{
    ConfChange, ConfChangeI, ConfChangeV2, ConfState, EntryType, HardState, Message, Snapshot,
    SnapshotMetadata,
};
use raftcore::{Config, MemStorage, RawNode, StateRole};

const IDS: [u64; 3] = [1, 2, 3];
const COMMANDS: [&str; 5] = ["set x = 1", "set y = 2", "incr x", "del y", "set z = 42"];

/// One member: the Raft node and the application's state machine beside it.
struct Node {
    raft: RawNode<MemStorage>,
    /// The commands this node has applied, in order.
    applied: Vec<String>,
    /// The commit index last reported.
    commit: u64,
}

/// A fresh node whose storage starts from a snapshot holding the group's configuration.
fn new_node(id: u64) -> Node {
    let mut storage = MemStorage::new();
    storage
        .apply_snapshot(Snapshot {
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: IDS.to_vec(),
                    ..Default::default()
                }),
                index: 1,
                term: 1,
            }),
            ..Default::default()
        })
        .expect("apply the initial snapshot");
    storage.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 1,
    });
    let mut cfg = Config::new(id);
    cfg.election_tick = 10;
    cfg.heartbeat_tick = 1;
    cfg.max_size_per_msg = 1 << 20;
    // Each node draws its election timeouts from its own generator: the seed makes runs
    // repeatable.
    cfg.seed = 7;
    Node {
        raft: RawNode::new(&cfg, storage).expect("create the node"),
        applied: Vec::new(),
        commit: 1,
    }
}

/// Handles one Ready of `node`, if it has one, following the crate's Ready contract. Messages
/// to send go to `net`.
fn handle_ready(node: &mut Node, net: &mut VecDeque<Message>) {
    if !node.raft.has_ready() {
        return;
    }
    let id = node.raft.id();
    let mut rd = node.raft.ready();

    if let Some(ss) = rd.soft_state {
        if ss.raft_state == StateRole::Leader {
            let term = node.raft.basic_status().hard_state.term;
            println!("node {id}: became leader at term {term}");
        } else if ss.leader_id != 0 {
            println!(
                "node {id}: follows leader {} ({})",
                ss.leader_id, ss.raft_state
            );
        } else {
            println!("node {id}: {} with no leader known", ss.raft_state);
        }
    }

    // Rule 2, first half: these messages may leave before the write (the leader replicates
    // while it writes its own log).
    net.extend(rd.messages.drain(..));

    // Rule 1: persist the snapshot, the entries and the hard state.
    if let Some(snap) = rd.snapshot.take() {
        node.raft
            .store_mut()
            .apply_snapshot(snap)
            .expect("persist the snapshot");
    }
    node.raft
        .store_mut()
        .append(&rd.entries)
        .expect("persist the entries");
    if let Some(hs) = rd.hard_state {
        node.raft.store_mut().set_hard_state(hs);
        if hs.commit > node.commit {
            let (from, to) = (node.commit + 1, hs.commit);
            if from == to {
                println!("node {id}: entry {to} is committed");
            } else {
                println!("node {id}: entries {from}..={to} are committed");
            }
            node.commit = hs.commit;
        }
    }

    // Rule 2, second half: answers that promise durable state leave only now.
    net.extend(rd.persisted_messages.drain(..));

    // Rule 3: apply what is committed, in order.
    for e in &rd.committed_entries {
        match e.entry_type() {
            EntryType::EntryNormal if e.data.is_empty() => {
                // The empty entry a new leader appends to commit its term.
                println!(
                    "node {id}: applied entry {} (a new leader's empty entry)",
                    e.index
                );
            }
            EntryType::EntryNormal => {
                let cmd = String::from_utf8_lossy(&e.data).into_owned();
                println!(
                    "node {id}: applied entry {} (term {}): {cmd:?}",
                    e.index, e.term
                );
                node.applied.push(cmd);
            }
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                let cc = if e.entry_type() == EntryType::EntryConfChange {
                    ConfChange::decode(e.data.clone()).map(ConfChangeI::V1)
                } else {
                    ConfChangeV2::decode(e.data.clone()).map(ConfChangeI::V2)
                };
                match cc.map(|cc| node.raft.apply_conf_change(&cc)) {
                    Ok(Ok(cs)) => println!(
                        "node {id}: applied conf change {}: voters {:?}",
                        e.index, cs.voters
                    ),
                    Ok(Err(err)) => println!("node {id}: conf change {} refused: {err}", e.index),
                    Err(err) => println!("node {id}: conf change {} undecodable: {err}", e.index),
                }
            }
        }
    }

    // Rule 4.
    node.raft.advance().expect("advance");
}

/// Delivers every message in flight (and what they cause) until the network is quiet.
fn settle(nodes: &mut [Node], net: &mut VecDeque<Message>) {
    loop {
        for node in nodes.iter_mut() {
            handle_ready(node, net);
        }
        if net.is_empty() {
            return;
        }
        while let Some(m) = net.pop_front() {
            let Some(to) = nodes.iter_mut().find(|n| n.raft.id() == m.to) else {
                continue;
            };
            if let Err(e) = to.raft.step(m) {
                println!("node {}: dropped a message: {e}", to.raft.id());
            }
        }
    }
}

fn leader(nodes: &[Node]) -> Option<usize> {
    nodes
        .iter()
        .position(|n| n.raft.role() == StateRole::Leader)
}

fn main() {
    let mut nodes: Vec<Node> = IDS.iter().map(|&id| new_node(id)).collect();
    let mut net = VecDeque::new();
    println!("three nodes {IDS:?}, no leader yet: ticking until one is elected");

    let mut ticks = 0;
    let lead = loop {
        if let Some(i) = leader(&nodes) {
            break i;
        }
        if ticks == 200 {
            eprintln!("no leader after {ticks} ticks");
            std::process::exit(1);
        }
        for node in nodes.iter_mut() {
            node.raft.tick();
        }
        ticks += 1;
        settle(&mut nodes, &mut net);
    };
    let lead_id = nodes[lead].raft.id();
    println!(
        "after {ticks} ticks node {lead_id} leads; proposing {} commands",
        COMMANDS.len()
    );

    for cmd in COMMANDS {
        println!("node {lead_id}: propose {cmd:?}");
        if let Err(e) = nodes[lead].raft.propose(Bytes::from_static(cmd.as_bytes())) {
            eprintln!("node {lead_id}: proposal {cmd:?} refused: {e}");
            std::process::exit(1);
        }
    }

    let want: Vec<String> = COMMANDS.iter().map(|c| c.to_string()).collect();
    for _ in 0..100 {
        settle(&mut nodes, &mut net);
        if nodes.iter().all(|n| n.applied == want) {
            for n in &nodes {
                let st = n.raft.basic_status();
                println!(
                    "node {}: term {}, commit {}, applied {}, {} commands",
                    st.id,
                    st.hard_state.term,
                    st.hard_state.commit,
                    st.applied,
                    n.applied.len()
                );
            }
            println!(
                "every node applied all {} commands in the same order",
                want.len()
            );
            return;
        }
        // Heartbeats carry the commit index to followers that have not heard it yet.
        for node in nodes.iter_mut() {
            node.raft.tick();
        }
    }
    for n in &nodes {
        eprintln!("node {}: applied {:?}", n.raft.id(), n.applied);
    }
    eprintln!("not every node applied every command");
    std::process::exit(1);
}
