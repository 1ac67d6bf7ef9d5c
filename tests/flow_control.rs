//! Flow control: each bound holds, and progress resumes once it clears. Every test runs in
//! both append modes.
//!
//! - `max_size_per_msg`: the entries of one append message encode to at most the limit,
//!   unless the message carries a single entry larger than it.
//! - `max_inflight_msgs` / `max_inflight_bytes`: the window of unacknowledged non-empty
//!   appends to one follower. The byte window is hard: a message carries only the entries that
//!   fit in the room left, so the payload in flight never exceeds `max_inflight_bytes` (an
//!   entry larger than the whole window goes alone when nothing else is in flight).
//! - `max_uncommitted_entries_size`: proposals past it are dropped until entries commit and
//!   apply.
//! - `max_committed_size_per_ready`: committed entries come out in pages.

mod common;

use bytes::Bytes;
use common::{config, Cluster};
use raftcore::raftpb::{Message, MessageType};
use raftcore::storage::entry_size;
use raftcore::tracker::ProgressState;
use raftcore::{AppendMode, Config, DropReason, Error, StateRole, Storage};
use std::cell::RefCell;
use std::rc::Rc;

const MODES: [AppendMode; 2] = [AppendMode::Batched, AppendMode::EtcdExact];

fn cluster(mode: AppendMode, tweak: impl Fn(&mut Config)) -> Cluster {
    let configs = (1..=3)
        .map(|id| {
            let mut c = config(id, mode);
            tweak(&mut c);
            c
        })
        .collect();
    let mut c = Cluster::with_configs(configs, &[1, 2, 3]);
    c.campaign(1);
    c
}

fn payload(i: usize, len: usize) -> Bytes {
    let mut v = format!("{i:06}").into_bytes();
    v.resize(len, b'x');
    Bytes::from(v)
}

fn is_app(m: &Message) -> bool {
    m.msg_type() == Some(MessageType::MsgApp)
}

fn payload_bytes(m: &Message) -> u64 {
    m.entries.iter().map(|e| e.data.len() as u64).sum()
}

fn encoded_bytes(m: &Message) -> u64 {
    m.entries.iter().map(entry_size).sum()
}

/// The appends sent to one follower and not yet acknowledged, as seen on the wire.
#[derive(Default)]
struct Window {
    follower: u64,
    /// (last index, payload bytes) of each non-empty append in flight.
    in_flight: Vec<(u64, u64)>,
    /// Non-empty appends sent so far.
    sent: usize,
    max_count: usize,
    max_bytes: u64,
}

impl Window {
    fn bytes(&self) -> u64 {
        self.in_flight.iter().map(|x| x.1).sum()
    }
    fn send(&mut self, m: &Message) {
        let last = m.entries.last().unwrap().index;
        self.in_flight.push((last, payload_bytes(m)));
        self.sent += 1;
        self.max_count = self.max_count.max(self.in_flight.len());
        self.max_bytes = self.max_bytes.max(self.bytes());
    }
    fn ack(&mut self, index: u64) {
        self.in_flight.retain(|&(last, _)| last > index);
    }
}

/// One round: Readies, then delivery. Non-empty appends to the window's follower go through
/// `on_send` (called before the window counts them) and `Window::send`; the follower's
/// answers to node 1 are held back while `hold` is set, and otherwise acknowledge the window.
fn round(
    c: &mut Cluster,
    w: &mut Window,
    hold: bool,
    held: &mut Vec<Message>,
    on_send: &mut dyn FnMut(&Window, &Message),
) {
    c.process_readies();
    let msgs = std::mem::take(&mut c.queue);
    let mut acks = Vec::new();
    for m in msgs {
        if is_app(&m) && m.to == w.follower && !m.entries.is_empty() {
            on_send(w, &m);
            w.send(&m);
        }
        if m.from == w.follower && m.to == 1 {
            if hold {
                held.push(m);
                continue;
            }
            if m.msg_type() == Some(MessageType::MsgAppResp) {
                assert!(!m.reject, "no loss here: no rejection expected");
                acks.push(m.index);
            }
        }
        c.queue.push(m);
    }
    // Everything the leader built is on the wire now, and no answer of this round has reached
    // it yet: its own window agrees with the wire.
    let pr = progress_of(c, w.follower);
    if pr.state() == ProgressState::Replicate {
        assert_eq!(
            pr.inflights().count(),
            w.in_flight.len(),
            "the tracker's count"
        );
        assert_eq!(pr.inflights().bytes(), w.bytes(), "the tracker's bytes");
    }
    for a in acks {
        w.ack(a);
    }
    c.deliver();
}

fn release(c: &mut Cluster, w: &mut Window, held: &mut Vec<Message>) {
    for m in held.drain(..) {
        if m.msg_type() == Some(MessageType::MsgAppResp) {
            w.ack(m.index);
        }
        c.queue.push(m);
    }
    c.deliver();
}

fn progress_of(c: &Cluster, id: u64) -> raftcore::tracker::Progress {
    c.node_ref(1)
        .status()
        .progress
        .into_iter()
        .find(|(i, _)| *i == id)
        .expect("leader tracks the follower")
        .1
}

// ---------------------------------------------------------------------------------------------

#[test]
fn max_size_per_msg_bounds_append_messages() {
    const LIMIT: u64 = 1000;
    for mode in MODES {
        let mut c = cluster(mode, |c| c.max_size_per_msg = LIMIT);
        let seen: Rc<RefCell<Vec<Message>>> = Rc::default();
        let sink = seen.clone();
        c.ready_hook = Some(Box::new(move |_, rd| {
            sink.borrow_mut()
                .extend(rd.messages.iter().filter(|m| is_app(m)).cloned());
        }));

        // 3 is cut off while 60 entries (one of them larger than the limit) commit.
        c.isolate(3);
        for i in 0..60 {
            let len = if i == 30 { 2500 } else { 100 };
            c.propose(1, payload(i, len)).unwrap();
            if i % 7 == 0 {
                c.stabilize();
            }
        }
        // And a burst proposed in one step.
        c.node(1)
            .propose_batch((60..80).map(|i| payload(i, 100)))
            .unwrap();
        c.stabilize();
        assert_eq!(c.payloads(2).len(), 80);
        c.heal();
        c.tick_and_stabilize(3);
        assert_eq!(c.payloads(3), c.payloads(1), "{mode:?}: 3 caught up");

        let seen = seen.borrow();
        let mut multi = 0;
        let mut oversized = 0;
        for m in seen.iter() {
            let size = encoded_bytes(m);
            assert!(
                size <= LIMIT || m.entries.len() == 1,
                "{mode:?}: {} entries of {size} bytes in one append",
                m.entries.len()
            );
            if m.entries.len() > 1 {
                multi += 1;
            }
            if size > LIMIT {
                oversized += 1;
                assert!(m.entries[0].data.len() == 2500);
            }
        }
        assert!(multi > 0, "{mode:?}: no append carried several entries");
        assert!(
            oversized > 0,
            "{mode:?}: the large entry never went out alone"
        );
        // Catch-up messages were filled up to the limit: 100-byte payloads encode to about
        // 108 bytes, so 9 fit in 1000.
        let fullest = seen.iter().map(|m| m.entries.len()).max().unwrap();
        assert_eq!(fullest, 9, "{mode:?}");
    }
}

/// Brings the followers to Replicate with one committed proposal.
fn warm_up(c: &mut Cluster) {
    c.propose(1, "warm").unwrap();
    c.stabilize();
    for id in [2, 3] {
        assert_eq!(progress_of(c, id).state(), ProgressState::Replicate);
    }
}

#[test]
fn max_inflight_msgs_bounds_unacknowledged_appends() {
    const MAX: usize = 3;
    for mode in MODES {
        let mut c = cluster(mode, |c| c.max_inflight_msgs = MAX);
        warm_up(&mut c);
        let mut w = Window {
            follower: 2,
            ..Default::default()
        };
        let mut held = Vec::new();
        // 2 receives everything but its answers are held back.
        let mut check = |w: &Window, _: &Message| {
            assert!(
                w.in_flight.len() < MAX,
                "{mode:?}: a message sent with {} in flight",
                w.in_flight.len()
            );
        };
        for i in 0..20 {
            c.propose(1, payload(i, 100)).unwrap();
            round(&mut c, &mut w, true, &mut held, &mut check);
        }
        for _ in 0..5 {
            round(&mut c, &mut w, true, &mut held, &mut check);
        }
        assert_eq!(w.max_count, MAX, "{mode:?}: the window filled");
        assert_eq!(w.sent, MAX, "{mode:?}: nothing more was sent");
        assert_eq!(progress_of(&c, 2).inflights().count(), MAX);
        // 3 answers, so everything commits meanwhile.
        assert_eq!(c.payloads(3).len(), 21);

        // The answers arrive: sending resumes, and 2 catches up.
        release(&mut c, &mut w, &mut held);
        for _ in 0..30 {
            round(&mut c, &mut w, false, &mut held, &mut check);
        }
        assert!(w.sent > MAX, "{mode:?}: sending did not resume");
        assert!(w.in_flight.is_empty());
        assert_eq!(c.payloads(2), c.payloads(1), "{mode:?}");
        assert_eq!(w.max_count, MAX);
    }
}

#[test]
fn max_inflight_bytes_bounds_unacknowledged_payload() {
    const MAX_BYTES: u64 = 1000;
    const MSG: u64 = 300;
    for mode in MODES {
        let mut c = cluster(mode, |c| {
            c.max_inflight_bytes = MAX_BYTES;
            c.max_size_per_msg = MSG;
        });
        warm_up(&mut c);
        let mut w = Window {
            follower: 2,
            ..Default::default()
        };
        let mut held = Vec::new();
        let mut check = |w: &Window, m: &Message| {
            assert!(
                w.bytes() < MAX_BYTES,
                "{mode:?}: a message sent with {} payload bytes in flight",
                w.bytes()
            );
            assert!(payload_bytes(m) <= MSG);
        };
        for i in 0..20 {
            c.node(1)
                .propose_batch((0..3).map(|j| payload(i * 3 + j, 100)))
                .unwrap();
            round(&mut c, &mut w, true, &mut held, &mut check);
        }
        assert_eq!(
            w.max_bytes, MAX_BYTES,
            "{mode:?}: the window filled, and no further"
        );
        let sent = w.sent;

        release(&mut c, &mut w, &mut held);
        for _ in 0..40 {
            round(&mut c, &mut w, false, &mut held, &mut check);
        }
        assert!(w.sent > sent, "{mode:?}: sending did not resume");
        assert_eq!(c.payloads(2), c.payloads(1), "{mode:?}");
        assert_eq!(c.payloads(2).len(), 61);
    }
}

/// The memory bound: a follower that never acknowledges anything costs the leader at most
/// `max_inflight_bytes` of in-flight payload, whatever the proposal rate.
#[test]
fn silent_follower_costs_at_most_the_inflight_window() {
    const MAX_BYTES: u64 = 8 * 1024;
    const MSG: u64 = 2 * 1024;
    for mode in MODES {
        let mut c = cluster(mode, |c| {
            c.max_inflight_bytes = MAX_BYTES;
            c.max_size_per_msg = MSG;
            c.max_inflight_msgs = 1 << 20;
        });
        warm_up(&mut c);
        let mut w = Window {
            follower: 3,
            ..Default::default()
        };
        let mut dropped = Vec::new();
        let mut check = |w: &Window, m: &Message| {
            assert!(w.bytes() < MAX_BYTES, "{mode:?}: sent past a full window");
            assert!(payload_bytes(m) <= MSG);
        };
        let mut n = 0;
        for r in 0..40 {
            // A high rate: 25 proposals of 512 bytes between two rounds, about 12 KiB per
            // round, more than the whole window.
            for _ in 0..25 {
                c.propose(1, payload(n, 512)).unwrap();
                n += 1;
            }
            if r % 3 == 0 {
                c.tick_all();
            }
            round(&mut c, &mut w, true, &mut dropped, &mut check);
            dropped.clear(); // 3's answers never arrive
            assert!(w.bytes() <= MAX_BYTES, "{mode:?}: {} in flight", w.bytes());
        }
        // The bound comes from the byte window (not from probing): 3 is replicating and
        // its window is full.
        let pr = progress_of(&c, 3);
        assert_eq!(pr.state(), ProgressState::Replicate);
        assert!(pr.inflights().full());
        c.stabilize();
        assert!(w.max_bytes >= MAX_BYTES, "{mode:?}: the window filled");
        // 1 and 2 committed everything meanwhile.
        assert_eq!(c.payloads(2).len(), n + 1);
        assert!(c.committed(1) > 900);
        // Precisely: the payload in flight never passed MAX_BYTES.
        assert!(w.max_bytes <= MAX_BYTES, "{mode:?}: {}", w.max_bytes);
        assert_eq!(c.node(1).role(), StateRole::Leader);
    }
}

#[test]
fn max_uncommitted_entries_size_drops_proposals_until_applied() {
    const LIMIT: u64 = 1000;
    for mode in MODES {
        let mut c = cluster(mode, |c| c.max_uncommitted_entries_size = LIMIT);
        // Nothing can commit while the leader is alone.
        c.isolate(1);
        let mut accepted = 0;
        let err = loop {
            match c.propose(1, payload(accepted, 100)) {
                Ok(()) => accepted += 1,
                Err(e) => break e,
            }
            c.stabilize();
            assert!(accepted <= 100, "never refused");
        };
        assert_eq!(
            err,
            Error::ProposalDropped(DropReason::UncommittedBudgetFull)
        );
        assert_eq!(accepted, 10, "{mode:?}: 10 x 100 bytes fit in 1000");
        let last = c.node(1).store().last_index().unwrap();
        // Still refused while uncommitted.
        assert_eq!(
            c.propose(1, payload(99, 100)),
            Err(Error::ProposalDropped(DropReason::UncommittedBudgetFull))
        );
        // An empty proposal carries no payload and is not refused.
        c.propose(1, Bytes::new()).unwrap();
        c.stabilize();
        assert_eq!(c.node(1).store().last_index().unwrap(), last + 1);

        // Once the entries commit and are applied, proposals are accepted again.
        c.heal();
        c.tick_and_stabilize(3);
        assert_eq!(c.payloads(1).len(), 10);
        assert_eq!(c.applied_index(1), c.committed(1));
        for i in 0..10 {
            c.propose(1, payload(100 + i, 100)).unwrap();
        }
        assert_eq!(
            c.propose(1, payload(200, 100)),
            Err(Error::ProposalDropped(DropReason::UncommittedBudgetFull))
        );
        c.stabilize();
        assert_eq!(c.payloads(3).len(), 20);

        // A single proposal larger than the limit is accepted when nothing is uncommitted,
        // so that it can make progress; then the next one waits.
        c.isolate(1);
        c.propose(1, payload(300, 5000)).unwrap();
        assert_eq!(
            c.propose(1, payload(301, 10)),
            Err(Error::ProposalDropped(DropReason::UncommittedBudgetFull))
        );
        c.heal();
        c.tick_and_stabilize(3);
        assert_eq!(c.payloads(2).len(), 21);
        c.propose(1, payload(302, 10)).unwrap();
    }
}

/// (node, [(index, encoded size)]) of every Ready that had committed entries.
type Pages = Rc<RefCell<Vec<(u64, Vec<(u64, u64)>)>>>;

#[test]
fn max_committed_size_per_ready_pages_committed_entries() {
    const PAGE: u64 = 1000;
    for mode in MODES {
        let mut c = cluster(mode, |c| c.max_committed_size_per_ready = PAGE);
        let pages: Pages = Rc::default();
        let sink = pages.clone();
        c.ready_hook = Some(Box::new(move |id, rd| {
            if !rd.committed_entries.is_empty() {
                let page = rd
                    .committed_entries
                    .iter()
                    .map(|e| (e.index, entry_size(e)))
                    .collect();
                sink.borrow_mut().push((id, page));
            }
        }));

        c.isolate(3);
        c.node(1)
            .propose_batch((0..50).map(|i| payload(i, if i == 25 { 3000 } else { 100 })))
            .unwrap();
        c.stabilize();
        c.heal();
        c.tick_and_stabilize(3);
        for id in 1..=3 {
            assert_eq!(c.payloads(id).len(), 50, "{mode:?}: node {id}");
        }

        let pages = pages.borrow();
        for id in 1..=3 {
            let mine: Vec<&Vec<(u64, u64)>> = pages
                .iter()
                .filter(|(n, _)| *n == id)
                .map(|(_, p)| p)
                .collect();
            let mut next = None;
            for p in &mine {
                let size: u64 = p.iter().map(|e| e.1).sum();
                assert!(
                    size <= PAGE || p.len() == 1,
                    "{mode:?}: node {id} got {} entries of {size} bytes in one Ready",
                    p.len()
                );
                for &(index, _) in p.iter() {
                    if let Some(n) = next {
                        assert_eq!(index, n, "{mode:?}: node {id} entries out of order");
                    }
                    next = Some(index + 1);
                }
            }
            // 49 entries of ~108 bytes and one of ~3000: at least 7 pages.
            assert!(
                mine.len() >= 7,
                "{mode:?}: node {id} got {} pages",
                mine.len()
            );
            assert_eq!(next, Some(c.committed(id) + 1));
        }
        assert_eq!(c.payloads(3), c.payloads(1));
    }
}

/// In Probe, a follower that does not answer gets one append, not one per proposal; a
/// heartbeat answer lets exactly one more (the same probe again) go out.
#[test]
fn probing_sends_one_append_until_the_follower_answers() {
    for mode in MODES {
        let mut c = cluster(mode, |_| {});
        warm_up(&mut c);
        c.node(1).report_unreachable(2);
        assert_eq!(progress_of(&c, 2).state(), ProgressState::Probe);
        let mut held: Vec<Message> = Vec::new();
        let mut appends: Vec<Message> = Vec::new();
        let step = |c: &mut Cluster, held: &mut Vec<Message>, appends: &mut Vec<Message>| {
            c.process_readies();
            for m in std::mem::take(&mut c.queue) {
                if is_app(&m) && m.to == 2 && !m.entries.is_empty() {
                    appends.push(m.clone());
                }
                if m.from == 2 {
                    held.push(m);
                } else {
                    c.queue.push(m);
                }
            }
            c.deliver();
        };
        for i in 0..10 {
            c.propose(1, payload(i, 10)).unwrap();
            step(&mut c, &mut held, &mut appends);
        }
        step(&mut c, &mut held, &mut appends);
        assert_eq!(appends.len(), 1, "{mode:?}: one probe while unanswered");

        // A heartbeat round: only 2's heartbeat answer gets through.
        c.node(1).tick();
        step(&mut c, &mut held, &mut appends);
        step(&mut c, &mut held, &mut appends);
        let hb: Vec<Message> = held
            .iter()
            .filter(|m| m.msg_type() == Some(MessageType::MsgHeartbeatResp))
            .cloned()
            .collect();
        assert!(!hb.is_empty());
        c.queue.extend(hb);
        c.deliver();
        step(&mut c, &mut held, &mut appends);
        assert_eq!(
            appends.len(),
            2,
            "{mode:?}: one more probe per heartbeat answer"
        );
        assert_eq!(
            appends[1].index, appends[0].index,
            "{mode:?}: the probe starts from the same place"
        );

        // Once 2 answers, it goes back to Replicate and catches up.
        held.retain(|m| m.msg_type() == Some(MessageType::MsgAppResp));
        c.queue.append(&mut held);
        c.deliver();
        c.stabilize();
        assert_eq!(progress_of(&c, 2).state(), ProgressState::Replicate);
        assert_eq!(c.payloads(2), c.payloads(1), "{mode:?}");
    }
}
