//! The window of append messages sent to one follower and not yet acknowledged.

/// One message in flight: the last index it carried and its payload size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Inflight {
    index: u64,
    bytes: u64,
}

/// A bounded FIFO of the append messages in flight to one follower, limited both in count
/// (`size`) and in payload bytes (`max_bytes`).
///
/// The ring buffer starts empty and doubles on demand up to `size`, so a huge `size` (even
/// `i32::MAX`) costs nothing until messages are actually in flight; the buffer is never larger
/// than twice the most messages that were in flight at once. Resetting the window (a state change of its progress) releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflights {
    /// Ring storage; its length is the ring's current capacity.
    buf: Vec<Inflight>,
    /// Position of the oldest message in `buf`.
    start: u32,
    /// Number of messages in flight.
    count: u32,
    /// Most messages allowed in flight.
    size: u32,
    /// Payload bytes in flight.
    bytes: u64,
    /// Most payload bytes allowed in flight; 0 means no limit.
    max_bytes: u64,
}

impl Inflights {
    /// A window of at most `size` messages and `max_bytes` payload bytes (0 or `u64::MAX`: no
    /// byte limit). Sizes beyond `u32::MAX` are treated as `u32::MAX`. Allocates nothing.
    pub(crate) fn new(size: usize, max_bytes: u64) -> Self {
        Inflights {
            buf: Vec::new(),
            start: 0,
            count: 0,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            bytes: 0,
            max_bytes: if max_bytes == u64::MAX { 0 } else { max_bytes },
        }
    }

    /// Records a message whose last entry is `index` and whose payload is `bytes` long. The
    /// caller must not add to a full window (checked in debug builds); a release build
    /// accepts the message anyway rather than lose track of it.
    pub(crate) fn add(&mut self, index: u64, bytes: u64) {
        debug_assert!(!self.full(), "cannot add into a full inflights");
        if self.count == u32::MAX {
            return;
        }
        if self.count as usize == self.buf.len() {
            self.grow();
        }
        let cap = self.buf.len();
        let mut pos = self.start as usize + self.count as usize;
        if pos >= cap {
            pos -= cap;
        }
        self.buf[pos] = Inflight { index, bytes };
        self.count += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Doubles the ring (1, 2, 4, ... up to `size`), moving the messages to its front.
    fn grow(&mut self) {
        let cap = self.buf.len();
        let size = self.size as usize;
        let mut new_cap = if cap == 0 { 1 } else { cap.saturating_mul(2) };
        if new_cap > size {
            // Past `size` only when a release build adds to a full window.
            new_cap = size.max(cap + 1);
        }
        let mut next = Vec::with_capacity(new_cap);
        let start = self.start as usize;
        let count = self.count as usize;
        let first = count.min(cap - start);
        next.extend_from_slice(&self.buf[start..start + first]);
        next.extend_from_slice(&self.buf[..count - first]);
        next.resize(new_cap, Inflight::default());
        self.buf = next;
        self.start = 0;
    }

    /// Frees every message whose index is at most `to` (they have been acknowledged).
    pub(crate) fn free_le(&mut self, to: u64) {
        if self.count == 0 || to < self.buf[self.start as usize].index {
            return;
        }
        let cap = self.buf.len();
        let mut pos = self.start as usize;
        let mut freed = 0u32;
        while freed < self.count {
            let m = self.buf[pos];
            if m.index > to {
                break;
            }
            self.bytes = self.bytes.saturating_sub(m.bytes);
            freed += 1;
            pos += 1;
            if pos == cap {
                pos = 0;
            }
        }
        self.count -= freed;
        // When empty, start over at the front of the buffer.
        self.start = if self.count == 0 { 0 } else { pos as u32 };
    }

    /// Whether no more messages may be sent: `size` messages or `max_bytes` bytes in flight.
    pub fn full(&self) -> bool {
        self.count == self.size || (self.max_bytes != 0 && self.bytes >= self.max_bytes)
    }

    /// Number of messages in flight.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Payload bytes in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The most messages allowed in flight.
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// The byte limit (0: none).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Slots currently allocated for the ring.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Forgets every message in flight and releases the buffer.
    pub(crate) fn reset(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.count = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (index, bytes) pairs in flight, oldest first.
    fn contents(inf: &Inflights) -> Vec<(u64, u64)> {
        (0..inf.count as usize)
            .map(|i| inf.buf[(inf.start as usize + i) % inf.buf.len()])
            .map(|m| (m.index, m.bytes))
            .collect()
    }

    #[test]
    fn allocates_nothing_until_used() {
        let inf = Inflights::new(i32::MAX as usize, 0);
        assert_eq!(inf.capacity(), 0);
        assert!(!inf.full());
        assert!(std::mem::size_of::<Inflights>() <= 56);
    }

    #[test]
    fn grows_by_doubling_up_to_size() {
        let mut inf = Inflights::new(10, 0);
        let mut caps = vec![];
        for i in 0..10 {
            inf.add(i, 1);
            caps.push(inf.capacity());
        }
        assert_eq!(caps, vec![1, 2, 4, 4, 8, 8, 8, 8, 10, 10]);
        assert!(inf.full());
        assert_eq!(inf.count(), 10);
        assert_eq!(inf.bytes(), 10);
    }

    #[test]
    fn wraps_around() {
        let mut inf = Inflights::new(10, 0);
        for i in 0..10 {
            inf.add(i, 100 + i);
        }
        inf.free_le(4);
        assert_eq!(inf.count(), 5);
        for i in 10..15 {
            inf.add(i, 100 + i);
        }
        assert!(inf.full());
        assert_eq!(inf.capacity(), 10);
        assert_eq!(
            contents(&inf),
            (5..15).map(|i| (i, 100 + i)).collect::<Vec<_>>()
        );
        inf.free_le(12);
        assert_eq!(contents(&inf), vec![(13, 113), (14, 114)]);
        assert_eq!(inf.bytes(), 227);
    }

    #[test]
    fn grows_while_wrapped() {
        let mut inf = Inflights::new(100, 0);
        for i in 0..4 {
            inf.add(i, 1);
        }
        inf.free_le(1);
        inf.add(4, 1);
        inf.add(5, 1); // wraps in the 4-slot ring
        inf.add(6, 1); // grows: the ring is linearised
        assert_eq!(contents(&inf), (2..7).map(|i| (i, 1)).collect::<Vec<_>>());
        assert_eq!(inf.capacity(), 8);
    }

    #[test]
    fn free_le_edges() {
        let mut inf = Inflights::new(10, 0);
        inf.free_le(100); // empty: no-op
        for i in 5..10 {
            inf.add(i, 1);
        }
        inf.free_le(4); // below the first: no-op
        assert_eq!(inf.count(), 5);
        inf.free_le(7);
        assert_eq!(contents(&inf), vec![(8, 1), (9, 1)]);
        inf.free_le(u64::MAX);
        assert_eq!(inf.count(), 0);
        assert_eq!(inf.start, 0);
        assert_eq!(inf.bytes(), 0);
    }

    #[test]
    fn byte_limit() {
        let mut inf = Inflights::new(10, 1000);
        inf.add(1, 400);
        inf.add(2, 500);
        assert!(!inf.full());
        inf.add(3, 100);
        assert!(inf.full());
        inf.free_le(1);
        assert!(!inf.full());
        assert_eq!(inf.bytes(), 600);
        // u64::MAX means no limit, as does 0.
        let mut unlimited = Inflights::new(10, u64::MAX);
        unlimited.add(1, u64::MAX);
        unlimited.add(2, u64::MAX);
        assert!(!unlimited.full());
        assert_eq!(unlimited.bytes(), u64::MAX);
    }

    #[test]
    fn reset_releases() {
        let mut inf = Inflights::new(10, 0);
        for i in 0..5 {
            inf.add(i, 3);
        }
        inf.reset();
        assert_eq!((inf.count(), inf.bytes(), inf.capacity()), (0, 0, 0));
        inf.add(9, 1);
        assert_eq!(contents(&inf), vec![(9, 1)]);
    }
}
