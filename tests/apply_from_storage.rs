//! `Config::apply_from_storage`: a node that leaves its committed entries in the storage for
//! the application to read applies exactly what a node handing out clones applies, in the
//! same Readies, and sends exactly the same messages.

mod common;

use bytes::Bytes;
use common::{config, storage_with_voters, Lcg};
use raftcore::raftpb::{ConfChange, ConfChangeType, Entry, Message};
use raftcore::testkit::{self, ConfOutcome, StateMachine};
use raftcore::{AppendMode, Config, MemStorage, RawNode};

/// Records every applied entry: index, term, payload and whether it was a conf change.
#[derive(Default)]
struct Recorder(Vec<(u64, u64, Bytes, bool)>);

impl StateMachine for Recorder {
    type Error = std::convert::Infallible;

    fn apply(&mut self, e: &Entry, conf: Option<&ConfOutcome>) -> Result<(), Self::Error> {
        self.0
            .push((e.index, e.term, e.data.clone(), conf.is_some()));
        Ok(())
    }
}

/// What a run produced: per node, the applied entries; the messages of every Ready in order;
/// the committed range of every Ready that had one.
#[derive(Debug, PartialEq)]
struct Run {
    applied: Vec<Vec<(u64, u64, Bytes, bool)>>,
    messages: Vec<String>,
    ranges: Vec<(u64, (u64, u64))>,
}

/// A 3-node group (a fourth added by a conf change midway) driven through ticks, proposals,
/// loss and reordering by a fixed schedule, each Ready handled by `testkit::handle_ready`,
/// compacting now and then late in the run. `max_apply` is the committed bytes per Ready.
fn run(mode: AppendMode, from_storage: bool, max_apply: u64) -> Run {
    let cfg = |id: u64| -> Config {
        let mut c = config(id, mode);
        c.seed = 99;
        c.pre_vote = true;
        c.max_committed_size_per_ready = max_apply;
        c.apply_from_storage = from_storage;
        c
    };
    let mut nodes: Vec<RawNode<MemStorage>> = (1..=4)
        .map(|id| {
            // Node 4 starts as no member and joins by the conf change below.
            RawNode::new(&cfg(id), storage_with_voters(&[1, 2, 3], &[])).unwrap()
        })
        .collect();
    let mut sms: Vec<Recorder> = (0..4).map(|_| Recorder::default()).collect();
    let mut sched = Lcg(11);
    let mut queue: Vec<Message> = Vec::new();
    let mut out = Run {
        applied: Vec::new(),
        messages: Vec::new(),
        ranges: Vec::new(),
    };
    for step in 0..4000u64 {
        if step == 1500 || step == 2000 {
            // Add node 4 (again, should the first proposal have been lost).
            for n in nodes.iter_mut().take(3) {
                let cc = ConfChange {
                    r#type: ConfChangeType::ConfChangeAddNode as i32,
                    node_id: 4,
                    ..Default::default()
                };
                let _ = n.propose_conf_change(cc);
            }
        }
        match sched.next() % 10 {
            0..=2 => {
                let i = (sched.next() % 4) as usize;
                nodes[i].tick();
            }
            3 | 4 => {
                let i = (sched.next() % 3) as usize;
                let _ = nodes[i].propose(Bytes::from(format!("p{step}")));
            }
            5 if !queue.is_empty() => {
                let j = (sched.next() as usize) % queue.len();
                let m = queue.remove(j);
                if sched.next() % 2 == 0 {
                    queue.push(m);
                }
            }
            6 if step > 2500 => {
                // Compact a node's log up to what every node applied, now and then (no node
                // then needs a snapshot).
                let i = (sched.next() % 4) as usize;
                let applied = nodes.iter().map(|n| n.basic_status().applied).min();
                let s = nodes[i].store_mut();
                if let Some(a) = applied.filter(|&a| a > s.first_index_of_log() + 20) {
                    s.compact(a - 10).unwrap();
                }
            }
            _ => {
                for m in std::mem::take(&mut queue) {
                    let to = m.to as usize - 1;
                    let _ = nodes[to].step(m);
                }
            }
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            if !n.has_ready() {
                continue;
            }
            let rd = n.ready();
            if from_storage {
                assert!(rd.committed_entries.is_empty());
            } else if let (Some(f), Some(l)) =
                (rd.committed_entries.first(), rd.committed_entries.last())
            {
                assert_eq!(rd.committed_range, Some((f.index, l.index)));
            } else {
                assert_eq!(rd.committed_range, None);
            }
            if let Some(r) = rd.committed_range {
                out.ranges.push((n.id(), r));
            }
            let mut sent = Vec::new();
            testkit::handle_ready(n, rd, &mut sms[i], &mut sent).unwrap();
            out.messages.push(format!("{} {sent:?}", n.id()));
            queue.extend(sent);
        }
    }
    out.applied = sms.into_iter().map(|r| r.0).collect();
    out
}

/// `MemStorage` has no public first index of its log beyond the trait's; this reads it.
trait FirstIndex {
    fn first_index_of_log(&self) -> u64;
}
impl FirstIndex for MemStorage {
    fn first_index_of_log(&self) -> u64 {
        raftcore::Storage::first_index(self).unwrap()
    }
}

#[test]
fn applying_from_storage_applies_and_sends_what_clones_would() {
    for mode in [AppendMode::Batched, AppendMode::EtcdExact] {
        // A tight apply budget cuts committed entries across Readies and storage chunks.
        for max_apply in [u64::MAX, 64] {
            let clones = run(mode, false, max_apply);
            let lent = run(mode, true, max_apply);
            let applied: usize = clones.applied.iter().map(Vec::len).sum();
            assert!(applied > 500, "{mode:?}: the schedule applies ({applied})");
            assert!(
                clones.applied[3].iter().any(|a| a.3),
                "{mode:?}: node 4 joined and applied the conf change"
            );
            assert!(
                clones.ranges.iter().any(|(_, (f, l))| l > f),
                "{mode:?}: some Ready applies several entries"
            );
            assert_eq!(clones, lent, "{mode:?} max_apply {max_apply}");
        }
    }
}

#[test]
fn apply_from_storage_needs_synchronous_writes() {
    let mut c = Config::new(1);
    c.apply_from_storage = true;
    c.async_storage_writes = true;
    assert!(c.validate().is_err());
    c.async_storage_writes = false;
    assert!(c.validate().is_ok());
}
