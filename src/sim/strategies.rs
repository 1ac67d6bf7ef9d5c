//! proptest strategies for simulated runs, for users who property-test their own invariants
//! over raftcore clusters and for raftcore's own tests.
//!
//! - [`cluster_spec`], [`fault_plan`], [`workload`] and [`sim_config`] generate whole runs for
//!   the scheduler ([`crate::sim::World::run`]); proptest shrinks a failing one toward fewer
//!   nodes, fewer faults and fewer events.
//! - [`action`] and [`schedule`] generate explicit schedules of [`Action`]s
//!   ([`crate::sim::check_schedule`]); a failing schedule shrinks to a short one whose trace
//!   reads as a story.
//!
//! ```
//! use proptest::prelude::*;
//! use raftcore::sim::{check_schedule, strategies, SimConfig};
//!
//! proptest!(ProptestConfig::with_cases(4), |(actions in strategies::schedule(60))| {
//!     let cfg = SimConfig::calm(1, 0);
//!     if let Err((v, trace)) = check_schedule(&cfg, &actions) {
//!         panic!("{v}\n{}", trace.join("\n"));
//!     }
//! });
//! ```

use proptest::prelude::*;

use crate::config::{AppendMode, ReadOnlyOption};

use super::config::{ClusterSpec, FaultPlan, SimConfig, Workload, TICK};
use super::world::Action;

/// Clusters of 1 to 5 voters (and up to one learner and two spare nodes), with every mode the
/// core offers (applying from storage only with synchronous writes, which it needs).
pub fn cluster_spec() -> impl Strategy<Value = ClusterSpec> {
    (
        (1usize..=5, 0usize..=1, 0usize..=2, 3usize..=8),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (
            prop_oneof![Just(0u64), Just(64), Just(4096), Just(1 << 20)],
            prop_oneof![Just(1usize), Just(4), Just(256)],
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((voters, learners, spare, et), (pv, cq, etcd, asyn), (msg, infl, sdr, lent))| {
                ClusterSpec {
                    voters,
                    learners,
                    spare,
                    election_tick: et,
                    heartbeat_tick: 1,
                    pre_vote: pv,
                    check_quorum: cq,
                    append_mode: if etcd {
                        AppendMode::EtcdExact
                    } else {
                        AppendMode::Batched
                    },
                    async_storage_writes: asyn,
                    apply_from_storage: lent && !asyn,
                    hand_over_entries: lent && !asyn,
                    max_size_per_msg: msg,
                    max_inflight_msgs: infl,
                    max_committed_size_per_ready: 0,
                    step_down_on_removal: sdr,
                    quiesce: false,
                    read_only_option: ReadOnlyOption::Safe,
                }
            },
        )
}

/// Fault plans from none at all to heavy loss, long partitions and frequent crashes.
/// Shrinking lowers the rates toward a quiet network.
pub fn fault_plan() -> impl Strategy<Value = FaultPlan> {
    (
        (0u32..=100_000, 0u32..=50_000, 0u32..=30_000),
        (0u64..=30, 0u64..=30),
        (0u64..=30, 0u64..=20),
        (0u32..=30_000, 0u32..=600_000, 0u32..=50),
    )
        .prop_map(
            |((drop, dup, long), (pe, pl), (ce, dl), (aim, slow, skew))| FaultPlan {
                drop_ppm: drop,
                dup_ppm: dup,
                min_delay: 10,
                max_delay: 500,
                long_delay_ppm: long,
                long_delay: 20 * TICK,
                partition_every: pe * TICK,
                partition_len: pl.max(1) * TICK,
                one_way_ppm: 400_000,
                crash_every: ce * TICK,
                down_len: dl.max(1) * TICK,
                crash_in_ready_ppm: aim,
                unsafe_crash_ppm: 50_000,
                slow_disk_ppm: slow,
                slow_disk_max: 2 * TICK,
                tick_skew_pct: skew,
                tick_jitter: true,
                min_down: 0,
            },
        )
}

/// Workloads mixing proposals, reads, membership changes, compactions and transfers.
pub fn workload() -> impl Strategy<Value = Workload> {
    (
        1u64..=8,
        prop_oneof![Just(0u64), Just(16), Just(200)],
        1u64..=8,
        0u64..=40,
        0u64..=20,
        0u64..=60,
    )
        .prop_map(|(p, pay, r, cc, co, tr)| Workload {
            propose_every: p * TICK / 4,
            max_payload: pay,
            read_every: r * TICK / 2,
            conf_change_every: cc * TICK,
            compact_every: co * TICK,
            transfer_every: tr * TICK,
            idle_every: 0,
            idle_len: 0,
            wake_every: 0,
        })
}

/// Whole runs of `events` events: a seed, a cluster, a fault plan and a workload.
pub fn sim_config(events: u64) -> impl Strategy<Value = SimConfig> {
    (
        any::<u64>(),
        cluster_spec(),
        fault_plan(),
        workload(),
        prop_oneof![Just(None), (1u64..=30, 1u64..=40).prop_map(Some)],
    )
        .prop_map(move |(seed, cluster, faults, workload, quiet)| {
            let mut cfg = SimConfig {
                seed,
                events,
                liveness: true,
                cluster,
                faults,
                workload,
                breach: None,
            };
            // Quiescence: idle spells, wake-ups and the failure detector.
            if let Some((every, len)) = quiet {
                cfg.with_quiescence(every * TICK, len * TICK, 10 * TICK);
            }
            cfg
        })
}

/// One action of an explicit schedule. Deliveries, ticks and Ready handling are the most
/// frequent, as in a real run; crashes, partitions and membership changes are rarer.
pub fn action() -> impl Strategy<Value = Action> {
    let n = any::<u8>();
    prop_oneof![
        20 => n.prop_map(Action::Deliver),
        2 => n.prop_map(Action::Drop),
        1 => n.prop_map(Action::Duplicate),
        6 => n.prop_map(Action::DeliverTo),
        1 => n.prop_map(Action::DropTo),
        4 => n.prop_map(Action::Tick),
        3 => Just(Action::TickAll),
        2 => n.prop_map(Action::Campaign),
        6 => n.prop_map(Action::Ready),
        6 => n.prop_map(Action::Advance),
        8 => n.prop_map(Action::Process),
        2 => n.prop_map(Action::Crash),
        2 => n.prop_map(Action::Restart),
        5 => n.prop_map(Action::Propose),
        2 => n.prop_map(Action::Read),
        1 => n.prop_map(Action::ConfChange),
        1 => n.prop_map(Action::Compact),
        1 => (n, n).prop_map(|(a, b)| Action::Transfer(a, b)),
        1 => n.prop_map(Action::Isolate),
        1 => (n, n).prop_map(|(a, b)| Action::CutOneWay(a, b)),
        1 => Just(Action::Heal),
        2 => Just(Action::Settle),
    ]
}

/// Explicit schedules of up to `max_len` actions. A failing schedule shrinks by dropping
/// actions and simplifying the rest.
pub fn schedule(max_len: usize) -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(action(), 0..=max_len)
}
