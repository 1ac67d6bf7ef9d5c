//! The record of a run: a ring of the last events (printed with a violation) or, when replaying
//! with a full trace, every event as it happens, with the core's own log lines between them.

use std::fmt;
use std::io::Write;

use crate::raftpb::{Message, MessageType};

/// A message, in the few fields a trace shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgSummary {
    /// The message type.
    pub ty: i32,
    /// Sender.
    pub from: u64,
    /// Recipient.
    pub to: u64,
    /// Term.
    pub term: u64,
    /// Log term.
    pub log_term: u64,
    /// Index.
    pub index: u64,
    /// Commit index.
    pub commit: u64,
    /// Number of entries.
    pub entries: u32,
    /// Rejection flag.
    pub reject: bool,
    /// Snapshot index, if the message carries one.
    pub snap: u64,
}

impl MsgSummary {
    /// The summary of `m`.
    pub fn of(m: &Message) -> Self {
        MsgSummary {
            ty: m.r#type,
            from: m.from,
            to: m.to,
            term: m.term,
            log_term: m.log_term,
            index: m.index,
            commit: m.commit,
            entries: m.entries.len() as u32,
            reject: m.reject,
            snap: m.snapshot_index(),
        }
    }
}

fn id(x: u64) -> String {
    match x {
        u64::MAX => "AppendThread".into(),
        x if x == u64::MAX - 1 => "ApplyThread".into(),
        x => x.to_string(),
    }
}

impl fmt::Display for MsgSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = MessageType::try_from(self.ty)
            .map(|t| t.as_str_name())
            .unwrap_or("?");
        write!(
            f,
            "{}->{} {} term={}",
            id(self.from),
            id(self.to),
            name,
            self.term
        )?;
        if self.log_term != 0 || self.index != 0 {
            write!(f, " log_term={} index={}", self.log_term, self.index)?;
        }
        if self.commit != 0 {
            write!(f, " commit={}", self.commit)?;
        }
        if self.entries != 0 {
            write!(f, " entries={}", self.entries)?;
        }
        if self.reject {
            f.write_str(" reject")?;
        }
        if self.snap != 0 {
            write!(f, " snap={}", self.snap)?;
        }
        Ok(())
    }
}

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A message was delivered and stepped (`result` is the step's error, if any).
    Deliver(MsgSummary, Option<String>),
    /// A message was lost (dropped, cut by a partition, or its recipient was down).
    Lost(MsgSummary, &'static str),
    /// A message was sent; `copies` is 0 when the network drops it, 2 when it duplicates it.
    Send(MsgSummary, u8),
    /// A node ticked.
    Tick,
    /// A node took a Ready.
    Ready {
        /// Entries to persist.
        entries: u32,
        /// Committed entries to apply.
        committed: u32,
        /// Early messages.
        msgs: u32,
        /// Snapshot index, 0 for none.
        snap: u64,
        /// HardState `(term, vote, commit)`, when it changed.
        hs: Option<(u64, u64, u64)>,
        /// Released reads.
        reads: u32,
        /// The role, when it changed.
        role: Option<String>,
    },
    /// A node's Ready (or append work item) was made durable.
    Persist,
    /// A node sent its late messages, applied and advanced.
    Finish,
    /// A node applied entries `from..=to`.
    Apply(u64, u64),
    /// A node crashed; the text says where its Ready handling was.
    Crash(&'static str),
    /// A node restarted from its persisted state, at this applied index.
    Restart(u64),
    /// A node was started (a new member) or stopped for good (removed from the group).
    Lifecycle(&'static str),
    /// A client proposal (its id) and the result.
    Propose(u64, Option<String>),
    /// A read_index read (its id) and the result.
    Read(u64, Option<String>),
    /// A read was released at an index.
    ReadState(u64, u64),
    /// A membership change was proposed.
    ConfChange(String, Option<String>),
    /// A membership change was applied.
    ConfApplied(u64, String),
    /// The storage was compacted: snapshot index, compaction index.
    Compact(u64, u64),
    /// A leadership transfer was asked.
    Transfer(u64),
    /// The network changed (partitions), or the run changed phase.
    Note(String),
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// The event's number in the run.
    pub event: u64,
    /// Simulated time.
    pub time: u64,
    /// The node the event happened at (0 for the network or the world).
    pub node: u64,
    /// What happened.
    pub what: What,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:<6} t={:<8} ", self.event, self.time)?;
        if self.node != 0 {
            write!(f, "n{} ", self.node)?;
        }
        let e = |x: &Option<String>| x.as_ref().map(|s| format!(" -> {s}")).unwrap_or_default();
        match &self.what {
            What::Deliver(m, r) => write!(f, "deliver {m}{}", e(r)),
            What::Lost(m, why) => write!(f, "lost ({why}) {m}"),
            What::Send(m, 0) => write!(f, "send {m} [dropped]"),
            What::Send(m, 2) => write!(f, "send {m} [duplicated]"),
            What::Send(m, _) => write!(f, "send {m}"),
            What::Tick => f.write_str("tick"),
            What::Ready {
                entries,
                committed,
                msgs,
                snap,
                hs,
                reads,
                role,
            } => {
                f.write_str("ready")?;
                if let Some(r) = role {
                    write!(f, " role={r}")?;
                }
                if let Some((t, v, c)) = hs {
                    write!(f, " hs=(term {t}, vote {v}, commit {c})")?;
                }
                if *snap != 0 {
                    write!(f, " snapshot={snap}")?;
                }
                write!(f, " entries={entries} committed={committed} msgs={msgs}")?;
                if *reads != 0 {
                    write!(f, " reads={reads}")?;
                }
                Ok(())
            }
            What::Persist => f.write_str("persist"),
            What::Finish => f.write_str("send late messages, apply, advance"),
            What::Apply(a, b) => write!(f, "apply {a}..={b}"),
            What::Crash(s) => write!(f, "CRASH ({s})"),
            What::Restart(a) => write!(f, "restart (applied {a})"),
            What::Lifecycle(s) => f.write_str(s),
            What::Propose(id, r) => write!(f, "propose w{id}{}", e(r)),
            What::Read(id, r) => write!(f, "read_index r{id}{}", e(r)),
            What::ReadState(id, i) => write!(f, "read r{id} released at index {i}"),
            What::ConfChange(s, r) => write!(f, "propose conf change {s}{}", e(r)),
            What::ConfApplied(i, s) => write!(f, "applied conf change at {i}: {s}"),
            What::Compact(s, c) => write!(f, "snapshot at {s}, compact to {c}"),
            What::Transfer(to) => write!(f, "transfer leadership to {to}"),
            What::Note(s) => f.write_str(s),
        }
    }
}

/// The trace of a run: the last `cap` lines, and every line printed when `echo` is set.
#[derive(Debug, Clone)]
pub struct Trace {
    ring: Vec<TraceLine>,
    next: usize,
    cap: usize,
    /// Print every line to standard output as it is recorded.
    pub echo: bool,
}

impl Trace {
    /// A trace keeping the last `cap` lines.
    pub fn new(cap: usize, echo: bool) -> Self {
        Trace {
            ring: Vec::with_capacity(cap.min(1024)),
            next: 0,
            cap: cap.max(1),
            echo,
        }
    }

    /// Records a line.
    pub fn push(&mut self, line: TraceLine) {
        if self.echo {
            // A closed pipe (`| head`) must not look like a panic of the core.
            let _ = writeln!(std::io::stdout(), "{line}");
        }
        if self.ring.len() < self.cap {
            self.ring.push(line);
        } else {
            self.ring[self.next] = line;
        }
        self.next = (self.next + 1) % self.cap;
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<TraceLine> {
        if self.ring.len() < self.cap {
            return self.ring.clone();
        }
        let mut v = self.ring[self.next..].to_vec();
        v.extend_from_slice(&self.ring[..self.next]);
        v
    }

    /// The kept lines as text.
    pub fn render(&self) -> Vec<String> {
        self.lines().iter().map(|l| l.to_string()).collect()
    }
}

/// A `slog` drain that prints the core's log lines, indented, between the trace lines.
pub struct PrintDrain {
    /// The node the lines come from.
    pub node: u64,
}

impl slog::Drain for PrintDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        // The record's key-values, in the order they were written (slog hands them over
        // last first).
        let mut kv = KvText(Vec::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
        kv.0.reverse();
        let _ = writeln!(
            std::io::stdout(),
            "                     n{} | {} {}",
            self.node,
            record.msg(),
            kv.0.join(" ")
        );
        Ok(())
    }
}

/// Collects `key=value` pairs of a log record.
struct KvText(Vec<String>);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        // The node is the lane already.
        if key != "raft_id" {
            self.0.push(format!("{key}={val}"));
        }
        Ok(())
    }
}
