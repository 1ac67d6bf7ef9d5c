//! ReadIndex requests waiting for a quorum to confirm the leader's leadership.
//!
//! Each request gets a position (1, 2, 3, ...). Heartbeats carry the position of the newest
//! pending request as an 8-byte little-endian context; a follower echoes it, and the leader
//! keeps the highest position each voter acknowledged. Every request whose position a quorum
//! acknowledged is released with the commit index recorded when it was queued. Positions,
//! rather than request contexts, make retried or duplicated contexts harmless.

use crate::raftpb::Message;
use std::collections::VecDeque;

/// The most reads that may wait for a quorum at once; further requests are dropped.
pub const MAX_PENDING_READS: usize = 4096;

/// A read request and the commit index it was answered with.
#[derive(Debug, Clone)]
pub(crate) struct PendingRead {
    pub index: u64,
    pub req: Message,
    pub pos: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct ReadOnly {
    /// Requests held until the leader commits an entry of its term.
    pub held: Vec<Message>,
    pending: VecDeque<PendingRead>,
    next_pos: u64,
    /// Highest position acknowledged per node, sorted by id.
    acks: Vec<(u64, u64)>,
    /// Lease mode: the latest heartbeat send tick acknowledged per node, sorted by id.
    lease_acks: Vec<(u64, u64)>,
}

impl Default for ReadOnly {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadOnly {
    pub fn new() -> Self {
        ReadOnly {
            held: Vec::new(),
            pending: VecDeque::new(),
            next_pos: 1,
            acks: Vec::new(),
            lease_acks: Vec::new(),
        }
    }

    /// Queues a request answered with `index` once confirmed. Returns false when full.
    pub fn add_request(&mut self, index: u64, req: Message, self_id: u64) -> bool {
        if self.pending.len() >= MAX_PENDING_READS {
            return false;
        }
        let pos = self.next_pos;
        self.next_pos += 1;
        self.pending.push_back(PendingRead { index, req, pos });
        self.record(self_id, pos);
        true
    }

    /// Whether any read waits (held or pending confirmation).
    pub fn has_pending(&self) -> bool {
        !self.held.is_empty() || !self.pending.is_empty()
    }

    /// The heartbeat context for the newest pending request, if any.
    pub fn last_pending_ctx(&self) -> Option<bytes::Bytes> {
        self.pending
            .back()
            .map(|r| bytes::Bytes::copy_from_slice(&r.pos.to_le_bytes()))
    }

    /// The heartbeat context in lease mode: the newest pending read's position (0 if none)
    /// and the tick the heartbeat is sent at.
    pub fn lease_ctx(&self, tick: u64) -> bytes::Bytes {
        let pos = self.pending.back().map_or(0, |r| r.pos);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&pos.to_le_bytes());
        b[8..].copy_from_slice(&tick.to_le_bytes());
        bytes::Bytes::copy_from_slice(&b)
    }

    /// Records the send tick echoed by a lease-mode heartbeat response (bytes 8..16 of its
    /// context).
    pub fn recv_lease_ack(&mut self, from: u64, ctx: &[u8], now: u64) {
        if let Ok(b) = <[u8; 8]>::try_from(ctx.get(8..16).unwrap_or_default()) {
            self.record_lease(from, u64::from_le_bytes(b), now);
        }
    }

    /// Records that `from` heard from this leader no earlier than `tick`. A tick from the
    /// future is ignored.
    pub fn record_lease(&mut self, from: u64, tick: u64, now: u64) {
        if tick > now {
            return;
        }
        match self.lease_acks.binary_search_by_key(&from, |a| a.0) {
            Ok(i) => self.lease_acks[i].1 = self.lease_acks[i].1.max(tick),
            Err(i) => self.lease_acks.insert(i, (from, tick)),
        }
    }

    /// The latest heartbeat send tick `id` acknowledged (lease mode).
    pub fn lease_acked(&self, id: u64) -> Option<u64> {
        self.lease_acks
            .binary_search_by_key(&id, |a| a.0)
            .ok()
            .map(|i| self.lease_acks[i].1)
    }

    /// Records an acknowledgement carried in a heartbeat response. Returns false if the context
    /// is not a position this leader handed out.
    pub fn recv_ack(&mut self, from: u64, ctx: &[u8]) -> bool {
        // Safe mode sends the position alone; lease mode appends the send tick.
        if ctx.len() != 8 && ctx.len() != 16 {
            return false;
        }
        let Ok(b) = <[u8; 8]>::try_from(&ctx[..8]) else {
            return false;
        };
        let pos = u64::from_le_bytes(b);
        if pos == 0 || pos >= self.next_pos {
            return false;
        }
        self.record(from, pos);
        true
    }

    fn record(&mut self, id: u64, pos: u64) {
        match self.acks.binary_search_by_key(&id, |a| a.0) {
            Ok(i) => self.acks[i].1 = self.acks[i].1.max(pos),
            Err(i) => self.acks.insert(i, (id, pos)),
        }
    }

    /// The acknowledged position of `id` (for the quorum computation).
    pub fn acked(&self, id: u64) -> Option<u64> {
        self.acks
            .binary_search_by_key(&id, |a| a.0)
            .ok()
            .map(|i| self.acks[i].1)
    }

    /// Releases every request at or below `confirmed_pos`, oldest first.
    pub fn advance(&mut self, confirmed_pos: u64) -> Vec<PendingRead> {
        let mut out = Vec::new();
        while self.pending.front().is_some_and(|r| r.pos <= confirmed_pos) {
            out.extend(self.pending.pop_front());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_release_in_order() {
        let mut ro = ReadOnly::new();
        assert!(ro.last_pending_ctx().is_none());
        assert!(ro.add_request(5, Message::default(), 1));
        assert!(ro.add_request(6, Message::default(), 1));
        let ctx = ro.last_pending_ctx().unwrap();
        assert!(ro.recv_ack(2, &ctx));
        assert!(!ro.recv_ack(2, b"bogus"));
        assert!(!ro.recv_ack(2, &99u64.to_le_bytes()));
        assert_eq!(ro.acked(2), Some(2));
        let released = ro.advance(1);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].index, 5);
        assert_eq!(ro.advance(2).len(), 1);
        assert!(ro.last_pending_ctx().is_none());
    }
}
