//! Fuzz logic of the `step_message` target: arbitrary bytes become a sequence of raftpb
//! `Message`s stepped into the nodes of a real 3-node group (a leader, a follower and a
//! candidate or pre-candidate, built by driving the group there). Checked: nothing panics,
//! `step` answers Ok or an error, what the nodes hand the application stays sane (see
//! `harness.rs`), and afterwards the honest group still elects a leader and commits a proposal
//! on a majority.
//!
//! Shared by `fuzz/fuzz_targets/step_message.rs` and `tests/fuzz_corpus.rs` through `#[path]`.
//!
//! # Input format
//!
//! Byte 0 chooses the set-up ([`harness::Setup::from_byte`]: append mode, pre-vote,
//! check-quorum, appends left in flight, no candidate, asynchronous storage writes, entries
//! handed over and applied from the storage). Then messages follow until the input
//! ends, each introduced by a control byte:
//!
//! - bits 0-1: the target node (0 → node 1, the leader; 1 → node 2, a follower; 2 → node 3, the
//!   candidate; 3 → node 1);
//! - bit 2: keep the message's own `to` (otherwise it is set to the target);
//! - bit 3: the message is a prost encoding: a length byte (255: two more bytes, little
//!   endian) and that many bytes; otherwise the message is built field by field from the
//!   following bytes ([`build`]) with values near the target's term and log, 0 and u64::MAX;
//! - bit 4: afterwards, deliver what the honest nodes have sent so far (one pass);
//! - bit 5: afterwards, tick the target once;
//! - bit 6: do not handle the target's Ready right after this message;
//! - bit 7: first, the leader (node 1) proposes an honest entry.

#![allow(dead_code)]

#[path = "harness.rs"]
pub mod harness;

use bytes::Bytes;
use prost::Message as _;
use raftcore::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeV2, ConfState, Entry, Message, Snapshot,
    SnapshotMetadata,
};
use raftcore::MAX_REMOTE_VALUE;

use harness::{Cluster, Setup};

/// Messages stepped per input at most (the rest of a long input is ignored).
const MAX_MSGS: usize = 64;

/// Reads bytes; past the end it reads zeros.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    pub fn u64_raw(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    /// A value chosen around `base`: 0, u64::MAX, the base itself or near it, the edge of
    /// what the core accepts from the network, or any 64-bit value.
    pub fn value(&mut self, base: u64) -> u64 {
        match self.u8() % 16 {
            0 => 0,
            1 => u64::MAX,
            2 | 3 => base,
            4 => base.saturating_add(1),
            5 => base.saturating_sub(1),
            6 => base.saturating_add(u64::from(self.u8())),
            7 => base.saturating_sub(u64::from(self.u8())),
            8 => MAX_REMOTE_VALUE,
            9 => MAX_REMOTE_VALUE + 1,
            10 => self.u64_raw(),
            11 => u64::MAX - 1,
            12 => 1,
            _ => u64::from(self.u8()),
        }
    }

    /// A node id: mostly a member, sometimes 0, a stranger, a local thread id or anything.
    pub fn node_id(&mut self) -> u64 {
        match self.u8() % 10 {
            0..=5 => u64::from(self.u8() % 3) + 1,
            6 => 0,
            7 => 4,
            8 => u64::MAX - (u64::from(self.u8()) & 1),
            _ => self.u64_raw(),
        }
    }

    fn small_bytes(&mut self) -> Bytes {
        let n = usize::from(self.u8() % 8);
        Bytes::copy_from_slice(self.take(n))
    }

    fn ids(&mut self, max: u8) -> Vec<u64> {
        let n = self.u8() % (max + 1);
        (0..n).map(|_| self.node_id()).collect()
    }
}

/// An arbitrary conf-change payload (V1 or V2), so that hostile conf changes can be committed.
fn conf_change_data(r: &mut Reader<'_>, v2: bool) -> Bytes {
    if v2 {
        let n = r.u8() % 4;
        let changes = (0..n)
            .map(|_| ConfChangeSingle {
                r#type: i32::from(r.u8() % 5),
                node_id: r.node_id(),
            })
            .collect();
        let cc = ConfChangeV2 {
            transition: i32::from(r.u8() % 4),
            changes,
            context: Bytes::new(),
        };
        Bytes::from(cc.encode_to_vec())
    } else {
        let cc = ConfChange {
            r#type: i32::from(r.u8() % 5),
            node_id: r.node_id(),
            context: Bytes::new(),
            id: u64::from(r.u8()),
        };
        Bytes::from(cc.encode_to_vec())
    }
}

/// Builds a message field by field. `term`, `commit` and `last` are the target's, so that
/// many values land near the ones the core compares them with.
pub fn build(r: &mut Reader<'_>, term: u64, commit: u64, last: u64) -> Message {
    let t = r.u8();
    let msg_type = if t < 0xf0 {
        i32::from(t % 24)
    } else {
        i32::from_le_bytes([r.u8(), r.u8(), r.u8(), r.u8()])
    };
    let mut m = Message {
        r#type: msg_type,
        from: r.node_id(),
        term: r.value(term),
        log_term: r.value(term),
        index: r.value(last),
        commit: r.value(commit),
        ..Default::default()
    };
    let flags = r.u8();
    if flags & 1 != 0 {
        let n = usize::from(r.u8() % 6);
        let sequential = r.bool();
        let mut index = m.index;
        for _ in 0..n {
            index = if sequential {
                index.saturating_add(1)
            } else {
                r.value(last)
            };
            let ty = r.u8() % 4;
            let data = match ty {
                1 => conf_change_data(r, false),
                2 => conf_change_data(r, true),
                _ => r.small_bytes(),
            };
            m.entries.push(Entry {
                r#type: if ty == 3 {
                    i32::from(r.u8())
                } else {
                    i32::from(ty)
                },
                term: r.value(term),
                index,
                data,
            });
        }
    }
    if flags & 2 != 0 {
        let cs = ConfState {
            voters: r.ids(4),
            learners: r.ids(2),
            voters_outgoing: r.ids(3),
            learners_next: r.ids(2),
            auto_leave: r.bool(),
        };
        m.snapshot = Some(Snapshot {
            data: r.small_bytes(),
            metadata: Some(SnapshotMetadata {
                conf_state: if r.bool() { Some(cs) } else { None },
                index: r.value(last),
                term: r.value(term),
            }),
        });
    }
    if flags & 4 != 0 {
        m.reject = true;
        m.reject_hint = r.value(last);
    }
    if flags & 8 != 0 {
        m.context = if r.bool() {
            Bytes::from_static(b"CampaignTransfer")
        } else {
            r.small_bytes()
        };
    }
    if flags & 16 != 0 {
        m.vote = r.node_id();
    }
    if flags & 32 != 0 {
        m.responses.push(Message {
            r#type: i32::from(r.u8() % 24),
            from: r.node_id(),
            to: r.node_id(),
            term: r.value(term),
            index: r.value(last),
            ..Default::default()
        });
    }
    if flags & 64 != 0 {
        m.to = r.node_id();
    }
    m
}

/// Runs one input (see the module docs for its format).
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let setup = Setup::from_byte(r.u8());
    let mut c = Cluster::new(setup);

    let mut steps = 0;
    while !r.is_empty() && steps < MAX_MSGS {
        steps += 1;
        let control = r.u8();
        let target = [1u64, 2, 3, 1][usize::from(control & 3)];
        let i = (target - 1) as usize;
        if control & 128 != 0 {
            // An honest proposal on the leader; refused when node 1 no longer leads.
            let _ = c.node(1).propose(Bytes::from_static(b"honest"));
            c.handle_ready(0);
        }
        let mut m = if control & 8 != 0 {
            let mut len = usize::from(r.u8());
            if len == 255 {
                len = usize::from(u16::from_le_bytes([r.u8(), r.u8()]));
            }
            match Message::decode(r.take(len)) {
                Ok(m) => m,
                Err(_) => continue,
            }
        } else {
            let (term, commit, last) = c.bases(i);
            build(&mut r, term, commit, last)
        };
        if control & 4 == 0 {
            m.to = target;
        }
        // Ok or an error are both answers; a panic is the failure.
        let _ = c.node(target).step(m);
        if control & 64 == 0 {
            c.handle_ready(i);
        }
        if control & 32 != 0 {
            c.node(target).tick();
        }
        if control & 16 != 0 {
            c.pass();
        }
    }
    // The nodes keep working: their Readies are sane, and honest traffic gets a proposal
    // committed on a majority.
    c.check_liveness();
}

/// Encodes an input of the prost form: the set-up byte, then each message with its control
/// byte (bit 3 is set here) and length. Used to write the seed corpus.
pub fn encode_input(setup: Setup, msgs: &[(u8, Message)]) -> Vec<u8> {
    let mut out = vec![setup.to_byte()];
    for (control, m) in msgs {
        let bytes = m.encode_to_vec();
        out.push(control | 8);
        if bytes.len() < 255 {
            out.push(bytes.len() as u8);
        } else {
            let len = u16::try_from(bytes.len()).expect("seed messages are small");
            out.push(255);
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&bytes);
    }
    out
}
