//! Micro-benchmarks of raftcore's hot paths, with criterion: each bench times one operation,
//! with its set-up outside the timed part. See docs/benchmarks.md for what each measures.
//!
//! ```text
//! cargo bench --bench micro [-- FILTER] [--save-baseline NAME | --baseline NAME]
//! ```
//!
//! Every node is configured as the scenario bench configures it (`common::cluster::
//! bench_config`: default `AppendMode::Batched`, 1 MiB per append, 256 appends in flight) and
//! starts from `bench_storage` (a snapshot at index 1, term 1, of voters 1..=n).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use raftcore::quorum::{AckedIndexer, MajorityConfig};
use raftcore::raftpb::{Entry, EntryType, Message, MessageType};
use raftcore::{AppendMode, MemStorage, RawNode, StateRole, Storage};

use common::cluster::{bench_config, bench_storage, handle_ready, ApplyState};

/// The payload of every entry: 128 bytes, one shared buffer.
fn payload() -> Bytes {
    Bytes::from(vec![0x5a; 128])
}

fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    Message {
        r#type: t as i32,
        from,
        to,
        term,
        ..Default::default()
    }
}

/// A node and the state needed to handle its Readies; messages it sends are dropped.
struct Node {
    node: RawNode<MemStorage>,
    sm: ApplyState,
    out: Vec<Message>,
}

impl Node {
    fn new(id: u64, voters: u64) -> Node {
        let node = RawNode::new(
            &bench_config(id, AppendMode::default()),
            bench_storage(voters),
        )
        .expect("RawNode::new");
        Node {
            node,
            sm: ApplyState {
                applied_index: 1,
                ..Default::default()
            },
            out: Vec::new(),
        }
    }

    /// Handles Readies until there is none (persist, apply, advance), dropping the messages.
    fn settle(&mut self) {
        while handle_ready(&mut self.node, &mut self.sm, &mut self.out) {
            self.out.clear();
        }
    }

    /// Drops the applied prefix of the stored log, so a long run keeps a short log.
    fn compact(&mut self) {
        let applied = self.node.applied();
        let first = self.node.store().first_index().expect("first_index");
        if applied >= first {
            self.node
                .store_mut()
                .compact(applied)
                .expect("compact to the applied index");
        }
    }

    fn step(&mut self, m: Message) {
        self.node.step(m).expect("step");
    }
}

// ---------------------------------------------------------------------------------------------
// MsgApp on a follower.

/// Follower 2 of {1, 2, 3} in term 1, fed consecutive appends from leader 1.
struct Follower {
    n: Node,
    /// The last index sent.
    last: u64,
    payload: Bytes,
}

impl Follower {
    fn new() -> Follower {
        Follower {
            n: Node::new(2, 3),
            last: 1, // the snapshot's index
            payload: payload(),
        }
    }

    /// The next `count` appends of `per_msg` entries each, as leader 1 sends them: consecutive
    /// indexes, `commit` = the last index of the previous message.
    fn appends(&mut self, count: u64, per_msg: u64) -> Vec<Message> {
        (0..count)
            .map(|_| {
                let prev = self.last;
                self.last += per_msg;
                Message {
                    log_term: 1,
                    index: prev,
                    commit: prev,
                    entries: (prev + 1..=self.last)
                        .map(|index| Entry {
                            r#type: EntryType::EntryNormal as i32,
                            term: 1,
                            index,
                            data: self.payload.clone(),
                        })
                        .collect(),
                    ..msg(MessageType::MsgApp, 1, 2, 1)
                }
            })
            .collect()
    }

    /// Times `iters` appends of `per_msg` entries, built `chunk` at a time outside the timed
    /// part. With `ready_each`, each step is followed by its Ready (persist, apply, advance)
    /// inside the timed part; without, only the steps are timed and the Ready of the whole
    /// chunk is handled afterwards. The log is compacted between chunks, untimed.
    fn run(&mut self, iters: u64, per_msg: u64, chunk: u64, ready_each: bool) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let count = left.min(chunk);
            left -= count;
            let msgs = self.appends(count, per_msg);
            let start = Instant::now();
            for m in msgs {
                self.n.step(m);
                if ready_each {
                    handle_ready(&mut self.n.node, &mut self.n.sm, &mut self.n.out);
                    self.n.out.clear();
                }
            }
            total += start.elapsed();
            self.n.settle();
            self.n.compact();
        }
        assert_eq!(
            self.n.node.last_index(),
            self.last,
            "every append was taken"
        );
        total
    }
}

fn follower_msgapp(c: &mut Criterion) {
    let mut g = c.benchmark_group("follower_msgapp");
    for per_msg in [1u64, 64] {
        g.throughput(Throughput::Elements(per_msg));
        // Step only: the Ready of 64 appends is handled afterwards, untimed.
        g.bench_function(BenchmarkId::new("step", per_msg), |b| {
            let mut f = Follower::new();
            b.iter_custom(|iters| f.run(iters, per_msg, 64, false));
        });
        // Step and its Ready: persist the entries to MemStorage, apply, advance.
        g.bench_function(BenchmarkId::new("step_ready", per_msg), |b| {
            let mut f = Follower::new();
            b.iter_custom(|iters| f.run(iters, per_msg, 1024, true));
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// MsgAppResp on a leader.

/// Node 1 made leader of {1, 2, 3} in term 2 (vote granted by 2), with both followers in
/// replicate state and the leader's first entry committed and applied.
fn leader() -> Node {
    let mut n = Node::new(1, 3);
    n.node.campaign().expect("campaign");
    n.settle();
    let term = n.node.term();
    n.step(msg(MessageType::MsgVoteResp, 2, 1, term));
    assert_eq!(n.node.role(), StateRole::Leader);
    n.settle();
    let last = n.node.last_index();
    for from in [2, 3] {
        n.step(Message {
            index: last,
            ..msg(MessageType::MsgAppResp, from, 1, term)
        });
    }
    n.settle();
    assert_eq!(
        n.node.applied(),
        last,
        "the leader's first entry is applied"
    );
    n
}

/// Proposes `count` entries in one batch on the leader `n` and handles the Ready (persisted,
/// appends dropped). Returns the index before them.
fn propose(n: &mut Node, count: u64, payload: &Bytes) -> u64 {
    let before = n.node.last_index();
    n.node
        .propose_batch((0..count).map(|_| payload.clone()))
        .expect("propose");
    n.settle();
    before
}

fn leader_msgappresp(c: &mut Criterion) {
    const CHUNK: u64 = 1024;
    let mut g = c.benchmark_group("leader_msgappresp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ack_commit", |b| {
        let mut n = leader();
        let payload = payload();
        let term = n.node.term();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let count = left.min(CHUNK);
                left -= count;
                // `count` entries in flight to both followers; follower 2 acks them one by
                // one, each ack moving its match index and the commit index by one.
                let base = propose(&mut n, count, &payload);
                let acks: Vec<Message> = (base + 1..=base + count)
                    .map(|index| Message {
                        index,
                        ..msg(MessageType::MsgAppResp, 2, 1, term)
                    })
                    .collect();
                let start = Instant::now();
                for m in acks {
                    n.step(m);
                }
                total += start.elapsed();
                assert_eq!(n.node.commit(), base + count);
                // Follower 3 catches up too, untimed, so compaction never leaves it behind.
                n.step(Message {
                    index: base + count,
                    ..msg(MessageType::MsgAppResp, 3, 1, term)
                });
                n.settle();
                n.compact();
            }
            total
        });
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Committed index of a majority.

/// Acknowledged indexes by voter id, in a small vector sorted by id (as the progress tracker
/// keeps them).
struct Acks(Vec<(u64, u64)>);

impl AckedIndexer for Acks {
    fn acked_index(&self, voter_id: u64) -> Option<u64> {
        self.0
            .binary_search_by_key(&voter_id, |e| e.0)
            .ok()
            .map(|i| self.0[i].1)
    }
}

fn committed_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("committed_index");
    for voters in [3u64, 5, 7] {
        let cfg: MajorityConfig = (1..=voters).collect();
        // Distinct indexes in no particular order.
        let acks = Acks((1..=voters).map(|id| (id, 1000 + id * 7 % 11)).collect());
        g.bench_function(BenchmarkId::from_parameter(voters), |b| {
            b.iter(|| black_box(&cfg).committed_index(black_box(&acks)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// ready() + advance().

/// Follower 2 of {1, 2, 3} that heard a heartbeat from leader 1 and handled its Ready: nothing
/// to do.
fn quiet_follower() -> Node {
    let mut n = Node::new(2, 3);
    n.step(Message {
        commit: 1,
        ..msg(MessageType::MsgHeartbeat, 1, 2, 1)
    });
    n.settle();
    assert!(!n.node.has_ready());
    n
}

/// A leader whose next Ready is full: 64 new entries to persist, appends to both followers,
/// a new commit index in the HardState and 64 committed entries to apply.
fn full_leader() -> Node {
    let mut n = leader();
    let payload = payload();
    let term = n.node.term();
    let base = propose(&mut n, 64, &payload);
    n.step(Message {
        index: base + 64,
        ..msg(MessageType::MsgAppResp, 2, 1, term)
    });
    // 64 more, left in the unstable log.
    n.node
        .propose_batch((0..64).map(|_| payload.clone()))
        .expect("propose");
    n
}

fn ready_advance(c: &mut Criterion) {
    let mut g = c.benchmark_group("ready_advance");
    g.bench_function("empty", |b| {
        let mut n = quiet_follower();
        b.iter(|| {
            let rd = n.node.ready();
            n.node.advance().expect("advance");
            rd
        });
        assert!(!n.node.has_ready());
    });

    let full = full_leader();
    {
        // What the timed Ready holds.
        let mut probe = full.node.clone();
        let rd = probe.ready();
        assert_eq!(rd.entries.len(), 64);
        // Named, not cloned: the bench config applies from storage.
        assert_eq!(rd.committed_range.map(|(f, l)| l - f + 1), Some(64));
        assert!(rd.hard_state.is_some());
        assert_eq!(rd.messages.len(), 2, "one append to each follower");
    }
    // The storage is not written between ready() and advance(): the node is dropped after.
    g.bench_function("full_64", |b| {
        b.iter_batched(
            || full.node.clone(),
            |mut node| {
                let rd = node.ready();
                node.advance().expect("advance");
                (node, rd)
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(
    benches,
    follower_msgapp,
    leader_msgappresp,
    committed_index,
    ready_advance
);
criterion_main!(benches);
