//! `max_uncommitted_entries_size` at its exact boundary, the uncommitted bytes released when
//! several Readies are handed out before one `advance()`, and `max_committed_size_per_ready`
//! counting the bytes handed out and not yet applied.

use crate::common::{config, Cluster};
use bytes::Bytes;
use raftcore::testkit::Persist;
use raftcore::{AppendMode, Error};

fn cluster(limit: u64) -> Cluster {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, AppendMode::Batched);
            c.max_uncommitted_entries_size = limit;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    c
}

fn bytes(n: usize) -> Bytes {
    Bytes::from(vec![b'p'; n])
}

#[test]
fn uncommitted_limit_admits_exactly_the_limit() {
    let mut c = cluster(200);
    // Nothing commits while the followers are cut off.
    c.isolate(1);
    c.propose(1, bytes(100)).unwrap();
    c.propose(1, bytes(100))
        .expect("100 + 100 is exactly the limit");
    assert!(matches!(
        c.propose(1, bytes(1)),
        Err(Error::ProposalDropped(_))
    ));
    c.stabilize();
    c.heal();
    c.tick_and_stabilize(3);
    assert_eq!(c.payloads(2), vec![bytes(100), bytes(100)]);
    // Once applied, the room is back.
    c.propose(1, bytes(200)).unwrap();
}

#[test]
fn uncommitted_limit_admits_exactly_the_limit_in_batches() {
    let mut c = cluster(200);
    c.isolate(1);
    c.node(1).propose_batch([bytes(60), bytes(40)]).unwrap();
    c.node(1)
        .propose_batch([bytes(50), bytes(50)])
        .expect("100 + 100 is exactly the limit");
    assert!(matches!(
        c.node(1).propose_batch([bytes(1)]),
        Err(Error::ProposalDropped(_))
    ));
    // An empty payload is never refused.
    c.node(1).propose_batch([Bytes::new()]).unwrap();
    c.propose(1, Bytes::new()).unwrap();
    c.stabilize();
    c.heal();
    c.tick_and_stabilize(3);
    assert_eq!(c.payloads(3).len(), 4);
}

#[test]
fn a_proposal_larger_than_the_limit_passes_when_nothing_is_uncommitted() {
    for batch in [false, true] {
        let mut c = cluster(100);
        c.isolate(1);
        let big = || bytes(150);
        let first = if batch {
            c.node(1).propose_batch([big()])
        } else {
            c.propose(1, big())
        };
        first.expect("the first proposal always passes, so a large one can make progress");
        let second = if batch {
            c.node(1).propose_batch([bytes(1)])
        } else {
            c.propose(1, bytes(1))
        };
        assert!(matches!(second, Err(Error::ProposalDropped(_))));
        // Over the limit now, an empty payload still passes.
        c.propose(1, Bytes::new()).unwrap();
        c.node(1).propose_batch([Bytes::new()]).unwrap();
        c.stabilize();
        c.heal();
        c.tick_and_stabilize(3);
        assert_eq!(c.payloads(2), vec![big()]);
    }
}

/// Persists a Ready's writes on the leader without advancing it.
fn persist(c: &mut Cluster, rd: &mut raftcore::Ready) {
    let mut q = std::mem::take(&mut rd.messages);
    q.append(&mut rd.persisted_messages);
    c.queue.append(&mut q);
    Persist::take_from_ready(rd)
        .write(c.node(1).store_mut())
        .unwrap();
}

#[test]
fn readies_before_one_advance_release_all_their_uncommitted_bytes() {
    let mut c = cluster(101);
    // Entry A (100 bytes) committed and handed out in one Ready, not advanced.
    c.propose(1, bytes(100)).unwrap();
    let mut rd = c.node(1).ready();
    persist(&mut c, &mut rd);
    c.node(1).advance().unwrap();
    c.stabilize_followers();
    let mut rd_a = c.node(1).ready();
    assert_eq!(rd_a.committed_entries.last().unwrap().data, bytes(100));
    persist(&mut c, &mut rd_a);
    // Entry B (1 byte) proposed, replicated, committed and handed out in further Readies,
    // still before any advance.
    c.propose(1, bytes(1)).unwrap();
    let mut rd = c.node(1).ready();
    persist(&mut c, &mut rd);
    c.stabilize_followers();
    let mut rd_b = c.node(1).ready();
    assert_eq!(rd_b.committed_entries.last().unwrap().data, bytes(1));
    persist(&mut c, &mut rd_b);
    c.node(1).advance().unwrap();
    // Both are applied: nothing is uncommitted, so a proposal of the whole limit passes
    // (with a single byte left over, it would not: 1 + 101 > 101).
    c.propose(1, bytes(101))
        .expect("the advance released all 101 bytes");
}

#[test]
fn committed_entries_wait_while_the_applying_bytes_reach_the_limit() {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, AppendMode::Batched);
            c.max_committed_size_per_ready = 100;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    c.propose(1, bytes(200)).unwrap();
    let mut rd = c.node(1).ready();
    persist(&mut c, &mut rd);
    c.node(1).advance().unwrap();
    c.stabilize_followers();
    // One entry over the limit is handed out alone, and not applied yet.
    let mut rd_big = c.node(1).ready();
    assert_eq!(rd_big.committed_entries.len(), 1);
    persist(&mut c, &mut rd_big);
    c.propose(1, bytes(1)).unwrap();
    let mut rd = c.node(1).ready();
    persist(&mut c, &mut rd);
    c.stabilize_followers();
    assert_eq!(c.node(1).commit(), rd_big.committed_entries[0].index + 1);
    // Committed, but its bytes would go past the limit: it waits for the advance.
    let mut rd = c.node(1).ready();
    assert!(
        rd.committed_entries.is_empty(),
        "{:?}",
        rd.committed_entries
    );
    persist(&mut c, &mut rd);
    c.node(1).advance().unwrap();
    let rd = c.node(1).ready();
    assert_eq!(rd.committed_entries.len(), 1);
    assert_eq!(rd.committed_entries[0].data, bytes(1));
}

#[test]
fn many_large_readies_before_one_advance() {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, AppendMode::Batched);
            c.max_size_per_msg = 1 << 20;
            c.max_committed_size_per_ready = 1 << 30;
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    let big = 1 << 16;
    for _ in 0..5 {
        c.propose(1, bytes(big)).unwrap();
        let mut rd = c.node(1).ready();
        persist(&mut c, &mut rd);
        c.stabilize_followers();
        let mut rd = c.node(1).ready();
        assert_eq!(rd.committed_entries.len(), 1);
        persist(&mut c, &mut rd);
    }
    // One advance acknowledges the five Readies' entries (their sizes add up).
    c.node(1).advance().unwrap();
    assert_eq!(c.node(1).applied(), c.node(1).commit());
    c.propose(1, bytes(1)).unwrap();
    let mut rd = c.node(1).ready();
    persist(&mut c, &mut rd);
    c.node(1).advance().unwrap();
    c.stabilize_followers();
    let rd = c.node(1).ready();
    assert_eq!(rd.committed_entries.len(), 1);
}

trait Followers {
    fn stabilize_followers(&mut self);
}

impl Followers for Cluster {
    /// Delivers the queue and lets the followers answer, and steps their answers into the
    /// leader without handling the leader's Ready.
    fn stabilize_followers(&mut self) {
        for _ in 0..10 {
            let msgs = std::mem::take(&mut self.queue);
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                let to = m.to;
                let _ = self.node(to).step(m);
            }
            for id in [2, 3] {
                while self.node(id).has_ready() {
                    let rd = self.node(id).ready();
                    let mut q = rd.messages.clone();
                    q.extend(rd.persisted_messages.clone());
                    let mut rd = rd;
                    Persist::take_from_ready(&mut rd)
                        .write(self.node(id).store_mut())
                        .unwrap();
                    self.node(id).advance().unwrap();
                    self.queue.append(&mut q);
                }
            }
        }
    }
}
