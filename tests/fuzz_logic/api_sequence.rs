//! Fuzz logic: structured sequences of API calls and message deliveries on an honest 3-node
//! group (ticks, proposals, campaigns, reads, transfers, unreachable reports, forget-leader,
//! conf changes, and a network that delivers, drops, duplicates and reorders). Shared by
//! `fuzz/fuzz_targets/api_sequence.rs` and `tests/fuzz_corpus.rs`.
//!
//! Input: byte 0 picks the set-up (append mode, pre-vote, check-quorum, async writes); then
//! every two bytes are one operation (an opcode and an argument). Checks, besides no panic
//! and the Ready checks of the harness: at most one leader per term, and every node's applied
//! entries agree on their terms index by index (one committed ledger).

#[path = "harness.rs"]
pub mod harness;

use bytes::Bytes;
use harness::{Cluster, Setup};
use raftcore::raftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use raftcore::StateRole;
use std::collections::BTreeMap;

const MAX_OPS: usize = 400;

/// The whole target.
pub fn run(data: &[u8]) {
    let Some((&setup, ops)) = data.split_first() else {
        return;
    };
    let mut setup = Setup::from_byte(setup);
    // Network faults are this target's job; start from a settled group.
    setup.inflight = false;
    let mut c = Cluster::new(setup);
    let n = c.nodes.len();
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    let mut ledger: BTreeMap<u64, u64> = BTreeMap::new();
    let mut proposal = 0u64;
    for op in ops.chunks(2).take(MAX_OPS) {
        let (code, arg) = (op[0], op.get(1).copied().unwrap_or(0));
        let i = arg as usize % n;
        let id = i as u64 + 1;
        let other = (arg as u64 / 3) % n as u64 + 1;
        if c.nodes[i].stopped {
            continue;
        }
        match code % 16 {
            0 | 1 => c.nodes[i].raw.tick(),
            2 => {
                proposal += 1;
                let _ = c.nodes[i].raw.propose(Bytes::from(format!("p{proposal}")));
            }
            3 => {
                let _ = c.nodes[i].raw.campaign();
            }
            4 => {
                let _ = c.nodes[i].raw.read_index(Bytes::from(vec![arg]));
            }
            5 => c.nodes[i].raw.transfer_leader(other),
            6 => c.nodes[i].raw.report_unreachable(other),
            7 => {
                let _ = c.nodes[i].raw.forget_leader();
            }
            8 => {
                let ty = match arg % 3 {
                    0 => ConfChangeType::ConfChangeAddNode,
                    1 => ConfChangeType::ConfChangeAddLearnerNode,
                    _ => ConfChangeType::ConfChangeRemoveNode,
                };
                let transition = match (arg / 3) % 3 {
                    0 => ConfChangeTransition::Auto,
                    1 => ConfChangeTransition::JointImplicit,
                    _ => ConfChangeTransition::JointExplicit,
                };
                let changes = if arg & 0x80 != 0 {
                    vec![]
                } else {
                    vec![ConfChangeSingle {
                        r#type: ty as i32,
                        node_id: other,
                    }]
                };
                let _ = c.nodes[i].raw.propose_conf_change(ConfChangeV2 {
                    transition: transition as i32,
                    changes,
                    context: Bytes::new(),
                });
            }
            9 | 10 => {
                // Deliver one message (reordering: any position).
                if !c.net.is_empty() {
                    let k = arg as usize % c.net.len();
                    let m = c.net.remove(k);
                    let to = (m.to - 1) as usize;
                    if !c.nodes[to].stopped {
                        let _ = c.nodes[to].raw.step(m);
                    }
                }
            }
            11 => {
                if !c.net.is_empty() {
                    let k = arg as usize % c.net.len();
                    c.net.remove(k);
                }
            }
            12 => {
                if !c.net.is_empty() {
                    let k = arg as usize % c.net.len();
                    let m = c.net[k].clone();
                    c.net.push(m);
                }
            }
            13 | 14 => {
                c.handle_ready(i);
            }
            _ => {
                c.pass();
            }
        }
        // At most one leader per term.
        for node in &c.nodes {
            if node.raw.role() == StateRole::Leader {
                let term = node.raw.basic_status().hard_state.term;
                let lid = node.raw.id();
                if let Some(&prev) = leaders.get(&term) {
                    assert_eq!(prev, lid, "two leaders in term {term}: {prev} and {lid}");
                }
                leaders.insert(term, lid);
            }
        }
        // One ledger: every applied index has one term across nodes.
        for node in &c.nodes {
            for (&index, &term) in &node.applied_terms {
                if let Some(&t) = ledger.get(&index) {
                    assert_eq!(
                        t,
                        term,
                        "index {index} applied with terms {t} and {term}; node {}",
                        node.raw.id()
                    );
                } else {
                    ledger.insert(index, term);
                }
            }
        }
        let _ = id;
    }
}
