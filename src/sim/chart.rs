//! A message-sequence chart of one run, drawn as a hand-written SVG.
//!
//! A [`World`](super::World) with [`record_chart`](super::World::record_chart) on keeps a
//! [`ChartLog`]: every send (with its fate: delivered, duplicated, dropped by the network,
//! lost to a partition or a down node), every delivery, every role change, crash, restart,
//! start and stop of a node, every partition, the heal and the violation. [`ChartLog::svg`]
//! draws a window of it:
//!
//! * one horizontal lane per node the run may start, time running left to right;
//! * a band on the lane while the node leads (gold), campaigns (blue, pre-candidates lighter)
//!   or is down (grey), and a red strip, while a partition lasts, along the lanes of the
//!   running nodes it cuts links of (its text, in the strip's title, says which);
//! * a message as an arrow from its sender's lane at the send time to its recipient's lane at
//!   the delivery time, coloured by kind; a duplicated message's copies are dashed; a message
//!   the network dropped is a short stub ending in a red cross, one lost to a partition or a
//!   down recipient an arrow ending in a red cross at the time it was lost;
//! * crashes as black crosses, restarts as circles, the heal as a green line and the
//!   violation, if any, as a red line with its text at the top.
//!
//! Every element carries a `<title>`, so a browser shows the message or the event under the
//! pointer.
//!
//! # Bounds
//! The chart draws at most [`ChartOptions::max_events`] scheduler events (default
//! [`DEFAULT_CHART_EVENTS`], never more than [`MAX_CHART_EVENTS`]): the first ones of the run,
//! or, when the run ended in a violation, the last ones, up to the violation. At most
//! [`MAX_ARROWS`] messages are drawn; the header says when more were left out. The plot is at
//! most about [`MAX_PLOT_WIDTH`] pixels wide.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::raftpb::MessageType;
use crate::StateRole;

use super::config::TICK;
use super::trace::MsgSummary;

/// Scheduler events a chart draws unless told otherwise.
pub const DEFAULT_CHART_EVENTS: u64 = 400;
/// The most scheduler events a chart draws.
pub const MAX_CHART_EVENTS: u64 = 5000;
/// The most messages a chart draws.
pub const MAX_ARROWS: usize = 6000;
/// The widest plot, in pixels (the time scale shrinks to fit).
pub const MAX_PLOT_WIDTH: f64 = 12_000.0;

/// What a node is doing, as a chart shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Not started yet, or stopped for good.
    Absent,
    /// Down after a crash.
    Down,
    /// Up, in this role.
    Up(StateRole),
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartEvent {
    /// A message was sent; `copies` is 0 when the network dropped it, 2 when it duplicated
    /// it. `id` ties the send to its deliveries.
    Send {
        /// The message's number in the run.
        id: u64,
        /// The message.
        msg: MsgSummary,
        /// Copies the network carries.
        copies: u8,
    },
    /// A copy of message `id` was delivered and stepped.
    Deliver {
        /// The message's number.
        id: u64,
        /// The message.
        msg: MsgSummary,
    },
    /// A copy of message `id` was lost on arrival (partition, recipient down, no such node).
    Lost {
        /// The message's number.
        id: u64,
        /// The message.
        msg: MsgSummary,
        /// Why.
        why: &'static str,
    },
    /// A node's state changed.
    Lane {
        /// The node.
        node: u64,
        /// Its new state.
        lane: Lane,
    },
    /// A node crashed (the text says where its Ready handling was).
    Crash {
        /// The node.
        node: u64,
        /// Where.
        why: &'static str,
    },
    /// A node restarted from its persisted state.
    Restart {
        /// The node.
        node: u64,
    },
    /// A partition started: the cut links `(from, to)` (node ids) and a description.
    Partition {
        /// Its number.
        pid: u64,
        /// The cut links.
        links: Vec<(u64, u64)>,
        /// A description.
        text: String,
    },
    /// A partition ended.
    PartitionEnd {
        /// Its number.
        pid: u64,
    },
    /// The faults healed.
    Heal,
    /// The run stopped on a safety violation.
    Violation {
        /// Its text.
        text: String,
    },
}

/// One recorded event with its place in the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartRecord {
    /// Scheduler events done before it (events recorded while handling one scheduler event
    /// share the number).
    pub event: u64,
    /// Simulated time.
    pub time: u64,
    /// What happened.
    pub what: ChartEvent,
}

/// The record of a run a chart is drawn from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChartLog {
    nodes: Vec<u64>,
    records: Vec<ChartRecord>,
    lanes: BTreeMap<u64, Lane>,
}

/// How to draw a chart.
#[derive(Debug, Clone)]
pub struct ChartOptions {
    /// Scheduler events to draw (capped at [`MAX_CHART_EVENTS`]).
    pub max_events: u64,
    /// A line of text for the header (the run's options).
    pub title: String,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            max_events: DEFAULT_CHART_EVENTS,
            title: String::new(),
        }
    }
}

/// The part of a run a chart draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartWindow {
    /// First scheduler event drawn.
    pub first_event: u64,
    /// Last scheduler event drawn.
    pub last_event: u64,
    /// Simulated time of the first record drawn.
    pub from: u64,
    /// Simulated time of the last record drawn.
    pub to: u64,
}

impl ChartLog {
    /// An empty log for a run whose nodes are `nodes` (ids).
    pub fn new(nodes: Vec<u64>) -> Self {
        let lanes = nodes.iter().map(|&n| (n, Lane::Absent)).collect();
        ChartLog {
            nodes,
            records: Vec::new(),
            lanes,
        }
    }

    /// The nodes (one lane each).
    pub fn nodes(&self) -> &[u64] {
        &self.nodes
    }

    /// Every recorded event, in order.
    pub fn records(&self) -> &[ChartRecord] {
        &self.records
    }

    /// Records an event.
    pub fn push(&mut self, event: u64, time: u64, what: ChartEvent) {
        self.records.push(ChartRecord { event, time, what });
    }

    /// Records the state of `node` if it changed.
    pub fn lane(&mut self, event: u64, time: u64, node: u64, lane: Lane) {
        let cur = self.lanes.entry(node).or_insert(Lane::Absent);
        if *cur != lane {
            *cur = lane;
            self.push(event, time, ChartEvent::Lane { node, lane });
        }
    }

    /// The window `opts` draws: the first `max_events` events, or the last ones when the run
    /// ended in a violation. `None` when nothing was recorded.
    pub fn window(&self, opts: &ChartOptions) -> Option<ChartWindow> {
        let n = opts.max_events.clamp(1, MAX_CHART_EVENTS);
        let first = self.records.first()?;
        let last = self.records.last()?;
        let violation = matches!(last.what, ChartEvent::Violation { .. });
        let (lo, hi) = if violation {
            (last.event.saturating_sub(n - 1), last.event)
        } else {
            (
                first.event,
                first.event.saturating_add(n - 1).min(last.event),
            )
        };
        let inside = || {
            self.records
                .iter()
                .filter(|r| r.event >= lo && r.event <= hi)
        };
        Some(ChartWindow {
            first_event: lo,
            last_event: hi,
            from: inside().map(|r| r.time).min()?,
            to: inside().map(|r| r.time).max()?,
        })
    }

    /// The records inside `w`.
    pub fn in_window(&self, w: &ChartWindow) -> impl Iterator<Item = &ChartRecord> {
        let (lo, hi) = (w.first_event, w.last_event);
        self.records
            .iter()
            .filter(move |r| r.event >= lo && r.event <= hi)
    }

    /// The chart as an SVG document.
    pub fn svg(&self, opts: &ChartOptions) -> String {
        Drawing::new(self, opts).render()
    }
}

// ------------------------------------------------------------------------------------------
// Drawing.

const LEFT: f64 = 70.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 130.0;
const LANE_H: f64 = 70.0;
const BAND_H: f64 = 16.0;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// The CSS class of a message kind (`k-MsgApp`).
pub fn kind_class(ty: i32) -> String {
    let name = MessageType::try_from(ty)
        .map(|t| t.as_str_name())
        .unwrap_or("Unknown");
    format!("k-{name}")
}

/// A partition in force: the nodes it cuts off (those running when it started), its text,
/// when it started.
type OpenPartition = (BTreeSet<u64>, String, u64);

/// The nodes of `links` that are running (a partition says nothing about the others).
fn cut_nodes(links: &[(u64, u64)], state: &BTreeMap<u64, Lane>) -> BTreeSet<u64> {
    links
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .filter(|n| state.get(n).is_some_and(|l| *l != Lane::Absent))
        .collect()
}

struct SendInfo {
    time: u64,
    copies: u8,
    fates: u8,
}

struct Drawing<'a> {
    log: &'a ChartLog,
    opts: &'a ChartOptions,
    out: String,
    w: Option<ChartWindow>,
    scale: f64,
    lane_of: BTreeMap<u64, usize>,
}

impl<'a> Drawing<'a> {
    fn new(log: &'a ChartLog, opts: &'a ChartOptions) -> Self {
        let w = log.window(opts);
        let span = w.map_or(TICK, |w| (w.to - w.from).max(TICK)) as f64;
        // 120 pixels per tick, less when the window is long.
        let scale = (120.0 / TICK as f64).min(MAX_PLOT_WIDTH / span);
        let lane_of = log.nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        Drawing {
            log,
            opts,
            out: String::new(),
            w,
            scale,
            lane_of,
        }
    }

    fn x(&self, t: u64) -> f64 {
        let from = self.w.map_or(0, |w| w.from);
        LEFT + (t.saturating_sub(from)) as f64 * self.scale
    }

    fn y(&self, node: u64) -> Option<f64> {
        self.lane_of
            .get(&node)
            .map(|&i| TOP + i as f64 * LANE_H + LANE_H / 2.0)
    }

    fn width(&self) -> f64 {
        let span = self.w.map_or(0, |w| w.to - w.from);
        LEFT + span as f64 * self.scale + RIGHT
    }

    fn height(&self) -> f64 {
        TOP + self.log.nodes.len() as f64 * LANE_H + 30.0
    }

    fn render(mut self) -> String {
        let (wd, ht) = (self.width(), self.height());
        let _ = writeln!(
            self.out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{wd:.0}" height="{ht:.0}" viewBox="0 0 {wd:.0} {ht:.0}" font-family="monospace" font-size="11">"#
        );
        self.style();
        let Some(w) = self.w else {
            self.out
                .push_str("<text x=\"10\" y=\"20\">nothing recorded</text>\n</svg>\n");
            return self.out;
        };
        let _ = writeln!(self.out, "<title>{}</title>", esc(&self.opts.title));
        self.text(10.0, 18.0, "header", &self.opts.title.clone());
        let head = format!(
            "events {}..={} (t={:.2}..{:.2} ticks); at most {} events are drawn: the first ones, or the last ones up to a violation",
            w.first_event,
            w.last_event,
            w.from as f64 / TICK as f64,
            w.to as f64 / TICK as f64,
            self.opts.max_events.clamp(1, MAX_CHART_EVENTS)
        );
        self.text(10.0, 34.0, "header", &head);
        self.legend();
        self.grid(&w);
        self.lanes(&w);
        self.arrows(&w);
        self.marks(&w);
        self.out.push_str("</svg>\n");
        self.out
    }

    fn style(&mut self) {
        self.out.push_str(
            "<defs>\n<marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#333\"/></marker>\n</defs>\n<style>\n\
.lane-line{stroke:#999;stroke-width:1}\n\
.lane-label{font-weight:bold;font-size:13px}\n\
.band.leader{fill:#f5c518;opacity:.8}\n\
.band.candidate{fill:#5b9bd5;opacity:.7}\n\
.band.precandidate{fill:#b4d0ee;opacity:.8}\n\
.band.down{fill:#999;opacity:.6}\n\
.partition{fill:#e33;opacity:.35}\n\
.grid{stroke:#eee;stroke-width:1}\n\
.msg{stroke-width:1.2;fill:none}\n\
.msg.dup{stroke-dasharray:5 3}\n\
.msg.lost,.msg.drop{stroke-dasharray:2 2}\n\
.cross{stroke:#d00;stroke-width:2.5}\n\
.crash{stroke:#000;stroke-width:3}\n\
.restart{fill:none;stroke:#090;stroke-width:2}\n\
.heal{stroke:#090;stroke-width:2;stroke-dasharray:6 3}\n\
.violation{stroke:#d00;stroke-width:3}\n\
.violation-text{fill:#d00;font-weight:bold;font-size:13px}\n\
.k-MsgApp,.k-MsgAppResp{stroke:#1f5fbf}\n\
.k-MsgHeartbeat,.k-MsgHeartbeatResp{stroke:#aaa}\n\
.k-MsgVote,.k-MsgVoteResp{stroke:#8e44ad}\n\
.k-MsgPreVote,.k-MsgPreVoteResp{stroke:#d35400}\n\
.k-MsgSnap{stroke:#16a085;stroke-width:2.5}\n\
.k-MsgReadIndex,.k-MsgReadIndexResp{stroke:#00a0a0}\n\
.k-MsgTimeoutNow,.k-MsgTransferLeader{stroke:#c0392b}\n\
.k-MsgProp{stroke:#555}\n\
</style>\n",
        );
    }

    fn text(&mut self, x: f64, y: f64, class: &str, s: &str) {
        let _ = writeln!(
            self.out,
            r#"<text class="{class}" x="{x:.1}" y="{y:.1}">{}</text>"#,
            esc(s)
        );
    }

    fn legend(&mut self) {
        let items: [(&str, &str); 10] = [
            ("band leader", "leader"),
            ("band candidate", "candidate"),
            ("band precandidate", "pre-candidate"),
            ("band down", "down"),
            ("partition", "cut by a partition"),
            ("k-MsgApp", "MsgApp(Resp)"),
            ("k-MsgHeartbeat", "heartbeat"),
            ("k-MsgVote", "vote"),
            ("k-MsgPreVote", "pre-vote"),
            ("k-MsgSnap", "snapshot"),
        ];
        self.out.push_str("<g class=\"legend\">\n");
        let mut x = 10.0;
        for (class, label) in items {
            if class.starts_with("k-") {
                let _ = writeln!(
                    self.out,
                    r#"<line class="msg {class} swatch" x1="{x:.0}" y1="56" x2="{:.0}" y2="56"/>"#,
                    x + 18.0
                );
            } else {
                let _ = writeln!(
                    self.out,
                    r#"<rect class="{class} swatch" x="{x:.0}" y="50" width="18" height="12"/>"#
                );
            }
            self.text(x + 22.0, 60.0, "legend-text", label);
            x += 30.0 + label.len() as f64 * 7.0;
        }
        self.text(
            10.0,
            80.0,
            "legend-text",
            "dashed: duplicated copy; red cross: dropped or lost message; black cross: crash; circle: restart; green line: heal; red line: violation",
        );
        self.out.push_str("</g>\n");
    }

    fn grid(&mut self, w: &ChartWindow) {
        let span_ticks = (w.to - w.from) / TICK + 1;
        let step = (span_ticks / 40).max(1) * TICK;
        let mut t = w.from.div_ceil(TICK) * TICK;
        let bottom = self.height() - 20.0;
        self.out.push_str("<g class=\"axis\">\n");
        while t <= w.to {
            let x = self.x(t);
            let _ = writeln!(
                self.out,
                r#"<line class="grid" x1="{x:.1}" y1="{:.0}" x2="{x:.1}" y2="{bottom:.0}"/>"#,
                TOP - 10.0
            );
            self.text(x + 2.0, TOP - 12.0, "tick", &format!("{}", t / TICK));
            t += step;
        }
        self.out.push_str("</g>\n");
    }

    /// Lanes with their bands (roles, downtime) and partition strips.
    fn lanes(&mut self, w: &ChartWindow) {
        // State at the window's start.
        let mut state: BTreeMap<u64, Lane> =
            self.log.nodes.iter().map(|&n| (n, Lane::Absent)).collect();
        let mut parts: BTreeMap<u64, OpenPartition> = BTreeMap::new();
        for r in &self.log.records {
            if r.event >= w.first_event {
                break;
            }
            match &r.what {
                ChartEvent::Lane { node, lane } => {
                    state.insert(*node, *lane);
                }
                ChartEvent::Partition { pid, links, text } => {
                    parts.insert(*pid, (cut_nodes(links, &state), text.clone(), w.from));
                }
                ChartEvent::PartitionEnd { pid } => {
                    parts.remove(pid);
                }
                _ => {}
            }
        }
        // Bands: (node, from, to, lane); partition strips: (node, from, to, text).
        let mut since: BTreeMap<u64, u64> = state.keys().map(|&n| (n, w.from)).collect();
        let mut bands = Vec::new();
        let mut strips = Vec::new();
        let mut close_part = |(nodes, text, from): OpenPartition, to: u64| {
            for n in nodes {
                strips.push((n, from, to, text.clone()));
            }
        };
        for r in self.log.in_window(w) {
            match &r.what {
                ChartEvent::Lane { node, lane } => {
                    let old = state.insert(*node, *lane).unwrap_or(Lane::Absent);
                    let s = since.insert(*node, r.time).unwrap_or(w.from);
                    bands.push((*node, s, r.time, old));
                }
                ChartEvent::Partition { pid, links, text } => {
                    parts.insert(*pid, (cut_nodes(links, &state), text.clone(), r.time));
                }
                ChartEvent::PartitionEnd { pid } => {
                    if let Some(p) = parts.remove(pid) {
                        close_part(p, r.time);
                    }
                }
                _ => {}
            }
        }
        for (n, lane) in &state {
            bands.push((*n, since[n], w.to, *lane));
        }
        for (_, p) in std::mem::take(&mut parts) {
            close_part(p, w.to);
        }
        let right = self.width() - RIGHT;
        for &n in &self.log.nodes.clone() {
            let y = self.y(n).unwrap_or(0.0);
            let _ = writeln!(self.out, r#"<g class="lane" data-node="{n}">"#);
            let _ = writeln!(
                self.out,
                r#"<line class="lane-line" x1="{LEFT:.0}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}"/>"#
            );
            self.text(10.0, y + 4.0, "lane-label", &format!("n{n}"));
            for &(bn, from, to, lane) in &bands {
                if bn != n {
                    continue;
                }
                let (class, what) = match lane {
                    Lane::Up(StateRole::Leader) => ("leader", "leader"),
                    Lane::Up(StateRole::Candidate) => ("candidate", "candidate"),
                    Lane::Up(StateRole::PreCandidate) => ("precandidate", "pre-candidate"),
                    Lane::Down => ("down", "down"),
                    _ => continue,
                };
                let (x1, x2) = (self.x(from), self.x(to));
                let _ = writeln!(
                    self.out,
                    r#"<rect class="band {class}" x="{x1:.1}" y="{:.1}" width="{:.1}" height="{BAND_H:.0}"><title>n{n} {what} t={:.2}..{:.2}</title></rect>"#,
                    y - BAND_H / 2.0,
                    (x2 - x1).max(1.0),
                    from as f64 / TICK as f64,
                    to as f64 / TICK as f64
                );
            }
            for (sn, from, to, text) in &strips {
                if *sn != n {
                    continue;
                }
                let (x1, x2) = (self.x(*from), self.x(*to));
                let _ = writeln!(
                    self.out,
                    r#"<rect class="partition" x="{x1:.1}" y="{:.1}" width="{:.1}" height="5"><title>partition {}</title></rect>"#,
                    y + BAND_H / 2.0 + 2.0,
                    (x2 - x1).max(1.0),
                    esc(text)
                );
            }
            self.out.push_str("</g>\n");
        }
    }

    fn arrows(&mut self, w: &ChartWindow) {
        // Sends, from the whole run (a message sent before the window may arrive in it).
        let mut sends: BTreeMap<u64, SendInfo> = BTreeMap::new();
        for r in &self.log.records {
            if r.event > w.last_event {
                break;
            }
            match &r.what {
                ChartEvent::Send { id, copies, .. } => {
                    sends.insert(
                        *id,
                        SendInfo {
                            time: r.time,
                            copies: *copies,
                            fates: 0,
                        },
                    );
                }
                ChartEvent::Deliver { id, .. } | ChartEvent::Lost { id, .. } => {
                    if let Some(s) = sends.get_mut(id) {
                        s.fates += 1;
                    }
                }
                _ => {}
            }
        }
        let mut drawn = 0usize;
        let mut left_out = 0usize;
        let records: Vec<&ChartRecord> = self.log.in_window(w).collect();
        self.out.push_str("<g class=\"messages\">\n");
        for r in records {
            if drawn >= MAX_ARROWS {
                if matches!(
                    r.what,
                    ChartEvent::Send { .. } | ChartEvent::Deliver { .. } | ChartEvent::Lost { .. }
                ) {
                    left_out += 1;
                }
                continue;
            }
            match &r.what {
                ChartEvent::Send { id, msg, copies } => {
                    let (Some(y1), Some(y2)) = (self.y(msg.from), self.y(msg.to)) else {
                        continue;
                    };
                    let x1 = self.x(r.time);
                    if *copies == 0 {
                        // Dropped by the network: a stub towards the recipient, crossed out.
                        let (x2, y2) = (x1 + 14.0, y1 + (y2 - y1) * 0.3);
                        self.arrow(*id, msg, "drop", x1, y1, x2, y2, false, "dropped");
                        self.cross(x2, y2, "cross drop-mark");
                        drawn += 1;
                    } else if let Some(s) = sends.get(id) {
                        if s.fates < s.copies && r.event <= w.last_event {
                            // Still in flight at the end of the window.
                            let x2 = self.width() - RIGHT;
                            let yy = y1 + (y2 - y1) * 0.5;
                            self.arrow(*id, msg, "inflight", x1, y1, x2, yy, false, "in flight");
                            drawn += 1;
                        }
                    }
                }
                ChartEvent::Deliver { id, msg } | ChartEvent::Lost { id, msg, .. } => {
                    let (Some(y1), Some(y2)) = (self.y(msg.from), self.y(msg.to)) else {
                        continue;
                    };
                    let (t1, dup) = sends
                        .get(id)
                        .map_or((w.from, false), |s| (s.time.max(w.from), s.copies == 2));
                    let (x1, x2) = (self.x(t1), self.x(r.time));
                    let mut class = String::new();
                    if dup {
                        class.push_str("dup ");
                    }
                    if let ChartEvent::Lost { why, .. } = &r.what {
                        class.push_str("lost");
                        self.arrow(*id, msg, &class, x1, y1, x2, y2, false, why);
                        self.cross(x2, y2, "cross lost-mark");
                    } else {
                        class.push_str("delivered");
                        self.arrow(*id, msg, &class, x1, y1, x2, y2, true, "delivered");
                    }
                    drawn += 1;
                }
                _ => {}
            }
        }
        self.out.push_str("</g>\n");
        if left_out > 0 {
            let s = format!("{left_out} more message events in the window were left out (at most {MAX_ARROWS} are drawn)");
            self.text(10.0, 110.0, "header", &s);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn arrow(
        &mut self,
        id: u64,
        msg: &MsgSummary,
        class: &str,
        x1: f64,
        y1: f64,
        x2: f64,
        y2: f64,
        head: bool,
        fate: &str,
    ) {
        let _ = writeln!(
            self.out,
            r#"<line class="msg {} {class}" data-msg="{id}" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}"{}><title>m{id} {} ({})</title></line>"#,
            kind_class(msg.ty),
            if head {
                r#" marker-end="url(#arrow)""#
            } else {
                ""
            },
            esc(&msg.to_string()),
            esc(fate)
        );
    }

    fn cross(&mut self, x: f64, y: f64, class: &str) {
        let d = 4.0;
        let _ = writeln!(
            self.out,
            r#"<path class="{class}" d="M {:.1} {:.1} L {:.1} {:.1} M {:.1} {:.1} L {:.1} {:.1}"/>"#,
            x - d,
            y - d,
            x + d,
            y + d,
            x - d,
            y + d,
            x + d,
            y - d
        );
    }

    /// Crashes, restarts, the heal and the violation.
    fn marks(&mut self, w: &ChartWindow) {
        let records: Vec<&ChartRecord> = self.log.in_window(w).collect();
        let (top, bottom) = (TOP - 6.0, self.height() - 20.0);
        for r in records {
            let x = self.x(r.time);
            match &r.what {
                ChartEvent::Crash { node, why } => {
                    let Some(y) = self.y(*node) else { continue };
                    let _ = writeln!(
                        self.out,
                        "<g class=\"crash-mark\"><title>n{node} crashed ({}) at t={:.2}</title>",
                        esc(why),
                        r.time as f64 / TICK as f64
                    );
                    self.cross(x, y, "crash");
                    self.out.push_str("</g>\n");
                }
                ChartEvent::Restart { node } => {
                    let Some(y) = self.y(*node) else { continue };
                    let _ = writeln!(
                        self.out,
                        r#"<circle class="restart" cx="{x:.1}" cy="{y:.1}" r="6"><title>n{node} restarted at t={:.2}</title></circle>"#,
                        r.time as f64 / TICK as f64
                    );
                }
                ChartEvent::Heal => {
                    let _ = writeln!(
                        self.out,
                        r#"<line class="heal" x1="{x:.1}" y1="{top:.0}" x2="{x:.1}" y2="{bottom:.0}"><title>faults heal</title></line>"#
                    );
                }
                ChartEvent::Violation { text } => {
                    let _ = writeln!(
                        self.out,
                        r#"<g class="violation-mark"><line class="violation" x1="{x:.1}" y1="{top:.0}" x2="{x:.1}" y2="{bottom:.0}"/><title>{}</title></g>"#,
                        esc(text)
                    );
                    self.text(
                        10.0,
                        96.0,
                        "violation-text",
                        &format!("VIOLATION at event {}: {text}", r.event),
                    );
                }
                _ => {}
            }
        }
    }
}
