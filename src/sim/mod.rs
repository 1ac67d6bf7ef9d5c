//! Deterministic cluster simulation, protocol invariants and property-test strategies
//! (behind the `sim` cargo feature).
//!
//! A [`World`] runs N [`RawNode`](crate::RawNode)s over a simulated network and simulated
//! storage, in the style of FoundationDB's and TigerBeetle's simulators: one thread, simulated
//! time, and every choice (which message arrives next, which is lost, which node crashes, what
//! the clients ask) drawn from one seeded generator ([`SimRng`]), so a run replays exactly
//! from its seed.
//!
//! # Faults
//! Messages are lost, duplicated, reordered and delayed (some for many election timeouts);
//! partitions, symmetric and one-way, start and heal; nodes crash and restart from what they
//! persisted, losing everything else; crashes are also aimed inside the handling of a Ready
//! (before its persist finishes, and between the persist and the sending of its late
//! messages), most often at the Readies where a lost persist does most harm (a vote, above all
//! one another candidate of the same term also asks for; a leader's commit moving), and a
//! third of the random crashes hit the leader; disks are slow (a Ready stays unpersisted while
//! the node keeps stepping messages); nodes tick at different rates. Some runs use asynchronous storage writes, whose
//! `MsgStorageAppend` / `MsgStorageApply` work is done late and answered with
//! [`step_local`](crate::RawNode::step_local).
//!
//! # Workload
//! Client proposals with unique payloads, `read_index` reads, membership changes through
//! `ConfChange` and `ConfChangeV2` (adding and removing voters and learners, promotions,
//! demotions, joint configurations left automatically or explicitly), leadership transfers,
//! and log compaction: the application snapshots its state machine at its applied index and
//! compacts the storage, so slow followers need `MsgSnap`.
//!
//! # Checks (after every event)
//! The [`Checker`] keeps one committed ledger (index → term and hash of the entry) that every
//! node's committed prefix must agree with; the applied state is a hash chain of the applied
//! entries, carried in snapshot data, so nodes must agree at every index whether they got
//! there by entries or by snapshot; commit index, applied index and term never go backwards
//! within an incarnation; at most one leader per term; a new leader holds every entry
//! committed before its term; a leader moves its commit index only onto an entry of its own
//! term (it never counts replicas of an older entry, Raft's Figure 8); what a node persisted
//! as committed survives its crash; a read released at index *i* is at or above every write
//! acknowledged before the read was asked.
//! Liveness is reported apart from safety: after the faults heal (no more loss, links in order
//! with delays under half an election timeout, clocks at one rate, crashed members restarted,
//! removed ones stopped once the new voters hold the change durably and no member's log holds
//! a conf change adding them back), a leader must appear and
//! a proposal it accepts must commit within 20 election timeouts (plus the time to ship the
//! backlog the faults left behind, one flow-control window per round trip).
//!
//! # The simulated application
//! It follows the Ready contract of the crate docs: persist (snapshot, entries, HardState),
//! then send the late messages, apply, advance; with asynchronous writes it works off the
//! `MsgStorageAppend` / `MsgStorageApply` queues in order and hands the responses back with
//! `step_local`. It writes and applies with the parts of the test kit's reference loop
//! ([`Persist`](crate::testkit::Persist), [`apply_committed`](crate::testkit::apply_committed))
//! rather than [`handle_ready`](crate::testkit::handle_ready), because it spreads each Ready
//! over simulated time (a slow disk, crashes aimed between its steps). Its state machine is durable only through snapshots: a restarted node starts
//! from its storage's snapshot (`Config::applied` = the snapshot index) and applies the rest
//! again. It snapshots at its applied index (never past its durable commit index) and compacts,
//! and snapshots on demand when the stored snapshot predates a follower that needs one.
//! `read_index` is checked in both modes. Lease-based reads (`ReadOnlyOption::LeaseBased`, in
//! a share of the runs with `check_quorum`) rely on the bound on clock drift `docs/reads.md`
//! states, which the simulator otherwise breaks on purpose: most lease runs keep within it
//! (every node ticks at one rate without jitter, and a crashed node stays down longer than
//! its lease promise, [`SimConfig::within_lease_bound`]), and a stale read there is a
//! violation; the others keep skewed, jittery clocks, and a stale read there is counted in
//! [`RunReport::lease_stale`], never reported as a violation.
//!
//! A client write is *acknowledged* when the node it was proposed at applies it; a proposal is
//! *accepted* (for liveness) when a leader's `propose` returns `Ok` after the heal.
//!
//! # Running
//! ```
//! use raftcore::sim::{run_seed, SimConfig, World};
//!
//! // One run of seed 7, 500 events with every fault on, then the heal.
//! let report = run_seed(7, 500);
//! assert!(report.violation.is_none(), "{:?}", report.violation);
//!
//! // The same run, built by hand (a config can be edited before the run).
//! let mut cfg = SimConfig::from_seed(7, 500);
//! cfg.liveness = false;
//! let report = World::new(cfg, 50, false).run();
//! assert!(report.violation.is_none());
//! ```
//! Many seeds: `cargo run --release --features sim --example simulate -- --seeds 0..1000`.
//!
//! The [`strategies`] module has proptest strategies for cluster specs, fault plans,
//! workloads and explicit schedules of [`Action`]s; a failing schedule shrinks to a short one,
//! and [`check_schedule`] returns the trace of the failing run.

pub mod chart;
mod checker;
mod config;
mod node;
mod rng;
pub mod strategies;
mod trace;
mod world;

pub use checker::{
    chain_genesis, chain_next, decode_state, encode_state, entry_hash, Checker, Violation,
    ViolationKind,
};
pub use config::{ClusterSpec, ContractBreach, FaultPlan, SimConfig, Workload, MAX_NODES, TICK};
pub use rng::{hash_bytes, mix64, SimRng};
pub use trace::{MsgSummary, PrintDrain, Trace, TraceLine, What};
pub use world::{Action, RunReport, World};

/// Lines of trace kept for the report of a failing run.
pub const TRACE_TAIL: usize = 60;

/// Runs `cfg` on its scheduler, turning a panic of the core into a [`ViolationKind::Panic`].
pub fn run_config(cfg: SimConfig, trace_cap: usize, echo: bool) -> RunReport {
    let seed = cfg.seed;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        World::new(cfg, trace_cap, echo).run()
    })) {
        Ok(r) => r,
        Err(p) => RunReport {
            seed,
            violation: Some(Violation::new(ViolationKind::Panic, panic_text(&p))),
            ..Default::default()
        },
    }
}

/// Runs `cfg` like [`run_config`], keeping the record of the run for a message-sequence
/// chart in [`RunReport::chart`] (also when the core panics: the chart then ends at the
/// panic, drawn as the violation).
pub fn run_config_charted(cfg: SimConfig, trace_cap: usize, echo: bool) -> RunReport {
    let seed = cfg.seed;
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        World::new(cfg, trace_cap, echo)
    }));
    let mut w = match built {
        Ok(w) => w,
        Err(p) => {
            return RunReport {
                seed,
                violation: Some(Violation::new(ViolationKind::Panic, panic_text(&p))),
                ..Default::default()
            }
        }
    };
    w.record_chart();
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run_events())) {
        w.set_violation(Violation::new(ViolationKind::Panic, panic_text(&p)));
    }
    w.finish_report()
}

/// Runs seed `seed` with every option drawn from it and `events` events of faults.
pub fn run_seed(seed: u64, events: u64) -> RunReport {
    run_config(SimConfig::from_seed(seed, events), TRACE_TAIL, false)
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// Runs an explicit schedule on a world built from `cfg` and returns the first violation with
/// the trace of the run (the last `TRACE_TAIL` lines), or the report of the run.
pub fn check_schedule(
    cfg: &SimConfig,
    actions: &[Action],
) -> Result<RunReport, (Violation, Vec<String>)> {
    let cfg = cfg.clone();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut w = World::scripted(cfg, TRACE_TAIL, false);
        for &a in actions {
            if let Err(v) = w.apply(a) {
                return Err((v, w.trace()));
            }
        }
        Ok(w.into_report())
    }));
    match out {
        Ok(r) => r,
        Err(p) => Err((
            Violation::new(ViolationKind::Panic, panic_text(&p)),
            Vec::new(),
        )),
    }
}
