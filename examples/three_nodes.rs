//! Three Raft nodes in one process, talking through an in-memory network.
//!
//! Each node has its own `MemStorage` and runs the Ready loop of the crate docs through the test
//! kit's reference loop (`raftcore::testkit::handle_ready`, feature `testkit`): persist the
//! Ready's snapshot, entries and hard state; send `messages` at once and `persisted_messages`
//! only after persisting; apply the committed entries (conf changes with `apply_conf_change`)
//! to the application's state machine (here a list of commands that prints what it applies);
//! `advance`. The clock ticks until a leader is elected, then the leader proposes a few
//! commands and the program prints each one as it commits and is applied on every node.
//!
//! Run it with `cargo run --example three_nodes`. It exits 0 once every node has applied every
//! command, and 1 if that does not happen within a bounded number of ticks.

use std::collections::VecDeque;

use bytes::Bytes;
use raftcore::raftpb::{ConfState, Entry, HardState, Message};
use raftcore::testkit::{self, ConfOutcome, StateMachine};
use raftcore::{Config, MemStorage, RawNode, StateRole};

const IDS: [u64; 3] = [1, 2, 3];
const COMMANDS: [&str; 5] = ["set x = 1", "set y = 2", "incr x", "del y", "set z = 42"];

/// One member: the Raft node and the application's state machine beside it.
struct Node {
    raft: RawNode<MemStorage>,
    app: Commands,
    /// The commit index last reported.
    commit: u64,
}

/// The application's state machine: the commands applied, in order.
struct Commands {
    id: u64,
    applied: Vec<String>,
}

impl StateMachine for Commands {
    type Error = std::convert::Infallible;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Result<(), Self::Error> {
        let id = self.id;
        match conf {
            None if e.data.is_empty() => {
                // The empty entry a new leader appends to commit its term.
                println!(
                    "node {id}: applied entry {} (a new leader's empty entry)",
                    e.index
                );
            }
            None => {
                let cmd = String::from_utf8_lossy(&e.data).into_owned();
                println!(
                    "node {id}: applied entry {} (term {}): {cmd:?}",
                    e.index, e.term
                );
                self.applied.push(cmd);
            }
            Some(ConfOutcome::Applied { conf_state, .. }) => println!(
                "node {id}: applied conf change {}: voters {:?}",
                e.index, conf_state.voters
            ),
            Some(ConfOutcome::Refused { error, .. }) => {
                println!("node {id}: conf change {} refused: {error}", e.index)
            }
            Some(other) => println!("node {id}: conf change {}: {other:?}", e.index),
        }
        Ok(())
    }
}

/// A fresh node whose storage starts from a snapshot holding the group's configuration.
fn new_node(id: u64) -> Node {
    let mut storage = testkit::storage_with_conf_state(ConfState {
        voters: IDS.to_vec(),
        ..Default::default()
    });
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
        app: Commands {
            id,
            applied: Vec::new(),
        },
        commit: 1,
    }
}

/// Handles one Ready of `node`, if it has one, with the test kit's reference loop (the crate's
/// Ready contract). Messages to send go to `net`, in the order the node produced them.
fn handle_ready(node: &mut Node, net: &mut VecDeque<Message>) {
    if !node.raft.has_ready() {
        return;
    }
    let id = node.raft.id();
    let rd = node.raft.ready();

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
    if let Some(hs) = rd.hard_state.filter(|hs| hs.commit > node.commit) {
        let (from, to) = (node.commit + 1, hs.commit);
        if from == to {
            println!("node {id}: entry {to} is committed");
        } else {
            println!("node {id}: entries {from}..={to} are committed");
        }
        node.commit = hs.commit;
    }

    // Persist, send (early messages at once, the others after the persist), apply, advance.
    let mut out = Vec::new();
    testkit::handle_ready(&mut node.raft, rd, &mut node.app, &mut out).expect("the Ready loop");
    net.extend(out);
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
        if nodes.iter().all(|n| n.app.applied == want) {
            for n in &nodes {
                let st = n.raft.basic_status();
                println!(
                    "node {}: term {}, commit {}, applied {}, {} commands",
                    st.id,
                    st.hard_state.term,
                    st.hard_state.commit,
                    st.applied,
                    n.app.applied.len()
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
        eprintln!("node {}: applied {:?}", n.raft.id(), n.app.applied);
    }
    eprintln!("not every node applied every command");
    std::process::exit(1);
}
