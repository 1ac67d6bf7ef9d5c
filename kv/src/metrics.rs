//! Counters and a histogram, printed in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raftcore::raftpb::MessageType;

/// Upper bounds (seconds) of the fsync latency histogram buckets.
const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Message types are small enums; counters per type live in fixed arrays.
const MSG_TYPES: usize = 32;

/// The node's metrics.
pub struct Metrics {
    /// Proposals handed to the core.
    pub proposals: AtomicU64,
    /// Proposals the core refused (no leader, transfer in progress, ...).
    pub proposals_dropped: AtomicU64,
    /// Entries applied to the state machine.
    pub applied_entries: AtomicU64,
    /// Readies handled.
    pub readies: AtomicU64,
    /// Peer messages received and dropped (full queue, bad frame, wrong sender).
    pub received_dropped: AtomicU64,
    /// Snapshots built locally.
    pub snapshots_built: AtomicU64,
    /// Snapshots received and installed.
    pub snapshots_installed: AtomicU64,
    sent: [AtomicU64; MSG_TYPES],
    dropped: [AtomicU64; MSG_TYPES],
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS.len()],
    fsync_count: AtomicU64,
    fsync_sum_us: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            proposals: AtomicU64::new(0),
            proposals_dropped: AtomicU64::new(0),
            applied_entries: AtomicU64::new(0),
            readies: AtomicU64::new(0),
            received_dropped: AtomicU64::new(0),
            snapshots_built: AtomicU64::new(0),
            snapshots_installed: AtomicU64::new(0),
            sent: std::array::from_fn(|_| AtomicU64::new(0)),
            dropped: std::array::from_fn(|_| AtomicU64::new(0)),
            fsync_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            fsync_count: AtomicU64::new(0),
            fsync_sum_us: AtomicU64::new(0),
        }
    }
}

fn slot(t: i32) -> usize {
    (t.max(0) as usize).min(MSG_TYPES - 1)
}

fn type_name(i: usize) -> String {
    MessageType::try_from(i as i32)
        .map(|t| format!("{t:?}"))
        .unwrap_or_else(|_| format!("Type{i}"))
}

impl Metrics {
    /// Counts a message sent to a peer.
    pub fn sent(&self, msg_type: i32) {
        self.sent[slot(msg_type)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message that could not be sent (full queue, too large, no route, isolated).
    pub fn dropped(&self, msg_type: i32) {
        self.dropped[slot(msg_type)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one fsync's duration.
    pub fn fsync(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in FSYNC_BUCKETS.iter().enumerate() {
            if s <= *b {
                self.fsync_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.fsync_count.fetch_add(1, Ordering::Relaxed);
        self.fsync_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text, with the gauges given by the caller.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        };
        counter(
            &mut out,
            "raftkv_proposals_total",
            "Proposals handed to the core.",
            &self.proposals,
        );
        counter(
            &mut out,
            "raftkv_proposals_dropped_total",
            "Proposals the core dropped.",
            &self.proposals_dropped,
        );
        counter(
            &mut out,
            "raftkv_applied_entries_total",
            "Committed entries applied to the state machine.",
            &self.applied_entries,
        );
        counter(
            &mut out,
            "raftkv_readies_total",
            "Ready batches handled.",
            &self.readies,
        );
        counter(
            &mut out,
            "raftkv_received_dropped_total",
            "Peer messages dropped on receipt.",
            &self.received_dropped,
        );
        counter(
            &mut out,
            "raftkv_snapshots_built_total",
            "Snapshots built locally.",
            &self.snapshots_built,
        );
        counter(
            &mut out,
            "raftkv_snapshots_installed_total",
            "Snapshots received and installed.",
            &self.snapshots_installed,
        );
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        for (name, help, arr) in [
            (
                "raftkv_messages_sent_total",
                "Messages sent to peers, by type.",
                &self.sent,
            ),
            (
                "raftkv_messages_dropped_total",
                "Messages not sent, by type.",
                &self.dropped,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (i, v) in arr.iter().enumerate() {
                let n = v.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(out, "{name}{{type=\"{}\"}} {n}", type_name(i));
                }
            }
        }
        let name = "raftkv_fsync_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Latency of WAL fsyncs.\n# TYPE {name} histogram"
        );
        for (i, b) in FSYNC_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.fsync_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.fsync_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.fsync_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_type_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.sent(MessageType::MsgApp as i32);
        m.sent(MessageType::MsgApp as i32);
        m.dropped(MessageType::MsgSnap as i32);
        m.fsync(Duration::from_millis(3));
        let text = m.render(&[("raftkv_apply_lag", "Committed minus applied.", 7)]);
        assert!(text.contains("raftkv_messages_sent_total{type=\"MsgApp\"} 2"));
        assert!(text.contains("raftkv_messages_dropped_total{type=\"MsgSnap\"} 1"));
        assert!(text.contains("raftkv_fsync_seconds_bucket{le=\"0.002\"} 0"));
        assert!(text.contains("raftkv_fsync_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("raftkv_fsync_seconds_count 1"));
        assert!(text.contains("raftkv_apply_lag 7"));
    }
}
