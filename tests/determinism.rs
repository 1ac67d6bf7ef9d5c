//! Determinism: the same seed and the same inputs give identical Readies; another seed gives
//! other election timeouts.

mod common;

use bytes::Bytes;
use common::{config, deliver_all, lose_or_reorder, storage_with_voters, Lcg};
use raftcore::raftpb::Message;
use raftcore::{AppendMode, MemStorage, RawNode};

/// Drives a 3-node group through ticks, proposals, message loss and reordering chosen by a
/// fixed schedule, and returns the transcript of every Ready.
fn transcript(seed: u64, mode: AppendMode) -> Vec<String> {
    let mut nodes: Vec<RawNode<MemStorage>> = (1..=3)
        .map(|id| {
            let mut c = config(id, mode);
            c.seed = seed;
            c.pre_vote = true;
            RawNode::new(&c, storage_with_voters(&[1, 2, 3], &[])).unwrap()
        })
        .collect();
    let mut sched = Lcg(7); // the schedule is the same for every seed
    let mut queue: Vec<Message> = Vec::new();
    let mut out = Vec::new();
    for step in 0..3000u64 {
        match sched.next() % 10 {
            0..=3 => {
                let i = (sched.next() % 3) as usize;
                nodes[i].tick();
            }
            4 => {
                let i = (sched.next() % 3) as usize;
                let _ = nodes[i].propose(Bytes::from(format!("p{step}")));
            }
            5 if !queue.is_empty() => lose_or_reorder(&mut sched, &mut queue),
            _ => deliver_all(&mut nodes, &mut queue),
        }
        for n in nodes.iter_mut() {
            if !n.has_ready() {
                continue;
            }
            let rd = n.ready();
            out.push(format!("{} {:?}", n.id(), rd));
            let s = n.store_mut();
            if let Some(snap) = &rd.snapshot {
                s.apply_snapshot(snap.clone()).unwrap();
            }
            s.append(&rd.entries).unwrap();
            if let Some(hs) = rd.hard_state {
                s.set_hard_state(hs);
            }
            queue.extend(rd.messages);
            queue.extend(rd.persisted_messages);
            n.advance().unwrap();
        }
    }
    out
}

#[test]
fn same_seed_same_readies() {
    for mode in [AppendMode::Batched, AppendMode::EtcdExact] {
        let a = transcript(1234, mode);
        let b = transcript(1234, mode);
        assert!(
            a.len() > 100,
            "the schedule should produce work ({} readies)",
            a.len()
        );
        assert_eq!(a, b, "{mode:?}: two runs with one seed diverged");
        assert!(
            a.iter().any(|r| r.contains("Leader")),
            "{mode:?}: a leader should have been elected"
        );
    }
}

#[test]
fn other_seed_other_timeouts() {
    let a = transcript(1, AppendMode::Batched);
    let b = transcript(2, AppendMode::Batched);
    assert_ne!(
        a, b,
        "the seed should change the election timeouts and so the run"
    );
}
