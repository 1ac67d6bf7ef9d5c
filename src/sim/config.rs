//! What a simulated run looks like: the cluster, the faults and the workload. A run is fully
//! described by a [`SimConfig`]; [`SimConfig::from_seed`] derives one from a seed, so the seed
//! alone replays a run.

use crate::config::{AppendMode, ReadOnlyOption};

use super::rng::SimRng;

/// Simulated time units in one base tick. Node tick intervals, network delays and disk
/// latencies are expressed in these units.
pub const TICK: u64 = 1000;

/// The most nodes (initial and added by membership changes) a run may ever start.
pub const MAX_NODES: usize = 9;

/// The cluster and the Raft options of its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Voters at the start (ids `1..=voters`).
    pub voters: usize,
    /// Learners at the start (the ids after the voters).
    pub learners: usize,
    /// Nodes that membership changes may add over the run (fresh ids after the initial ones).
    pub spare: usize,
    /// `Config::election_tick`.
    pub election_tick: usize,
    /// `Config::heartbeat_tick`.
    pub heartbeat_tick: usize,
    /// `Config::pre_vote`.
    pub pre_vote: bool,
    /// `Config::check_quorum`.
    pub check_quorum: bool,
    /// `Config::append_mode`.
    pub append_mode: AppendMode,
    /// `Config::async_storage_writes`.
    pub async_storage_writes: bool,
    /// `Config::apply_from_storage` (synchronous writes only): the simulated application
    /// reads the entries to apply from the node's storage.
    pub apply_from_storage: bool,
    /// `Config::hand_over_entries` (synchronous writes only): a Ready's entries are moved out
    /// of the node, which reads them back from its storage.
    pub hand_over_entries: bool,
    /// `Config::max_size_per_msg`.
    pub max_size_per_msg: u64,
    /// `Config::max_inflight_msgs`.
    pub max_inflight_msgs: usize,
    /// `Config::max_committed_size_per_ready` (0: the default).
    pub max_committed_size_per_ready: u64,
    /// `Config::step_down_on_removal`.
    pub step_down_on_removal: bool,
    /// `Config::quiesce`. Runs with it have idle spells in their workload (so groups go
    /// quiet), random `wake()` calls, and a failure detector that reports crashed, stopped and
    /// cut-off peers (`report_peer_down`).
    pub quiesce: bool,
    /// `Config::read_only_option`. Lease-based reads (which need `check_quorum`) rely on
    /// bounded clock drift: a stale lease read is a violation only in runs within the bound
    /// (see [`SimConfig::lease_within_bound`]), and is counted apart beyond it.
    pub read_only_option: ReadOnlyOption,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            voters: 3,
            learners: 0,
            spare: 2,
            election_tick: 6,
            heartbeat_tick: 1,
            pre_vote: false,
            check_quorum: false,
            append_mode: AppendMode::Batched,
            async_storage_writes: false,
            apply_from_storage: false,
            hand_over_entries: false,
            max_size_per_msg: 1 << 16,
            max_inflight_msgs: 64,
            max_committed_size_per_ready: 0,
            step_down_on_removal: false,
            quiesce: false,
            read_only_option: ReadOnlyOption::Safe,
        }
    }
}

/// The faults of a run. Probabilities are in parts per million; intervals are means in
/// simulated time units ([`TICK`] per base tick), 0 meaning "never".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// Probability that a message is lost.
    pub drop_ppm: u32,
    /// Probability that a message is delivered twice.
    pub dup_ppm: u32,
    /// Shortest network delay.
    pub min_delay: u64,
    /// Longest ordinary network delay (messages overtake each other below it).
    pub max_delay: u64,
    /// Probability that a message is held back for long (up to `long_delay`).
    pub long_delay_ppm: u32,
    /// Longest delay of a held-back message.
    pub long_delay: u64,
    /// Mean time between partitions.
    pub partition_every: u64,
    /// Longest partition.
    pub partition_len: u64,
    /// Probability that a partition is one-way (links cut in one direction only).
    pub one_way_ppm: u32,
    /// Mean time between crashes.
    pub crash_every: u64,
    /// Longest time a crashed node stays down.
    pub down_len: u64,
    /// Probability, per Ready, of a crash aimed inside its handling: before its persist
    /// finishes or between the persist and the sending of its late messages.
    pub crash_in_ready_ppm: u32,
    /// Probability that a crash may take the cluster below a live quorum.
    pub unsafe_crash_ppm: u32,
    /// Probability that a node's disk is slow.
    pub slow_disk_ppm: u32,
    /// Longest persist (or apply) latency of a slow disk.
    pub slow_disk_max: u64,
    /// Largest difference between node tick rates, in percent of the base rate.
    pub tick_skew_pct: u32,
    /// Whether each tick interval varies by up to 5% around the node's rate.
    pub tick_jitter: bool,
    /// Shortest time a crashed node stays down (0: no minimum). Lease-based reads need a
    /// crashed node to stay down longer than its lease promise (`docs/reads.md`).
    pub min_down: u64,
}

impl FaultPlan {
    /// No faults: a perfect network, no crashes, fast disks, equal clocks.
    pub fn none() -> Self {
        FaultPlan {
            drop_ppm: 0,
            dup_ppm: 0,
            min_delay: 20,
            max_delay: 200,
            long_delay_ppm: 0,
            long_delay: 0,
            partition_every: 0,
            partition_len: 0,
            one_way_ppm: 0,
            crash_every: 0,
            down_len: 0,
            crash_in_ready_ppm: 0,
            unsafe_crash_ppm: 0,
            slow_disk_ppm: 0,
            slow_disk_max: 0,
            tick_skew_pct: 0,
            tick_jitter: true,
            min_down: 0,
        }
    }
}

impl Default for FaultPlan {
    /// Every fault on, at moderate rates.
    fn default() -> Self {
        FaultPlan {
            drop_ppm: 20_000,
            dup_ppm: 10_000,
            min_delay: 20,
            max_delay: 400,
            long_delay_ppm: 10_000,
            long_delay: 20 * TICK,
            partition_every: 12 * TICK,
            partition_len: 15 * TICK,
            one_way_ppm: 300_000,
            crash_every: 15 * TICK,
            down_len: 12 * TICK,
            crash_in_ready_ppm: 5_000,
            unsafe_crash_ppm: 100_000,
            slow_disk_ppm: 300_000,
            slow_disk_max: 2 * TICK,
            tick_skew_pct: 30,
            tick_jitter: true,
            min_down: 0,
        }
    }
}

/// What the clients and the operator do. Intervals are means in simulated time units, 0
/// meaning "never".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Mean time between client proposals.
    pub propose_every: u64,
    /// Largest random padding of a proposal's payload, in bytes.
    pub max_payload: u64,
    /// Mean time between `read_index` reads.
    pub read_every: u64,
    /// Mean time between membership changes.
    pub conf_change_every: u64,
    /// Mean time between log compactions (a snapshot at a node's applied index).
    pub compact_every: u64,
    /// Mean time between leadership transfers.
    pub transfer_every: u64,
    /// Mean time between idle spells (no proposals, reads, membership changes or transfers),
    /// 0 for none.
    pub idle_every: u64,
    /// Longest idle spell.
    pub idle_len: u64,
    /// Mean time between `wake()` calls on a random node, 0 for none.
    pub wake_every: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            propose_every: TICK / 3,
            max_payload: 64,
            read_every: TICK,
            conf_change_every: 20 * TICK,
            compact_every: 8 * TICK,
            transfer_every: 40 * TICK,
            idle_every: 0,
            idle_len: 0,
            wake_every: 0,
        }
    }
}

/// Everything that defines a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed of the run's random choices.
    pub seed: u64,
    /// Scheduler events to run with faults on, before the faults heal.
    pub events: u64,
    /// Whether to check liveness after the faults heal.
    pub liveness: bool,
    /// The cluster.
    pub cluster: ClusterSpec,
    /// The faults.
    pub faults: FaultPlan,
    /// The workload.
    pub workload: Workload,
    /// Break the Ready contract on purpose (to show that the checks catch it).
    pub breach: Option<ContractBreach>,
}

/// Ways for the simulated application to break the Ready contract on purpose. The checks must
/// report each; the tests use them to show that they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractBreach {
    /// Send the late messages (vote and append responses) before the persist, as if they were
    /// early ones.
    SendBeforePersist,
}

impl SimConfig {
    /// The run of `seed`: every option drawn from the seed, all faults on (at rates drawn from
    /// the seed too), `events` events before the heal.
    pub fn from_seed(seed: u64, events: u64) -> Self {
        let mut r = SimRng::new(seed).fork(0xC0F1);
        let voters = [1, 3, 3, 3, 5, 5, 4, 2][r.index(8)];
        // From a stream of its own, so that every other option of a seed stays what it was.
        let mut lent = SimRng::new(seed).fork(0xA991);
        let (from_storage, hand_over) = (lent.coin(), lent.coin());
        let learners = if r.chance(250_000) { 1 } else { 0 };
        let cluster = ClusterSpec {
            voters,
            learners,
            spare: r.range(0, 3) as usize,
            election_tick: r.range(3, 8) as usize,
            heartbeat_tick: 1,
            pre_vote: r.coin(),
            check_quorum: r.coin(),
            append_mode: if r.coin() {
                AppendMode::Batched
            } else {
                AppendMode::EtcdExact
            },
            async_storage_writes: r.chance(300_000),
            apply_from_storage: false,
            hand_over_entries: false,
            max_size_per_msg: [0, 64, 256, 4096, 1 << 20][r.index(5)],
            max_inflight_msgs: [1, 2, 4, 16, 256][r.index(5)],
            max_committed_size_per_ready: [0, 0, 0, 100, 1 << 20][r.index(5)],
            step_down_on_removal: r.coin(),
            quiesce: false,
            read_only_option: ReadOnlyOption::Safe,
        };
        let mut cluster = cluster;
        cluster.apply_from_storage = from_storage && !cluster.async_storage_writes;
        cluster.hand_over_entries = hand_over && !cluster.async_storage_writes;
        let scale = |r: &mut SimRng, base: u64| base / 2 + r.below(base + 1);
        let faults = FaultPlan {
            drop_ppm: r.range(0, 60_000) as u32,
            dup_ppm: r.range(0, 30_000) as u32,
            min_delay: r.range(5, 50),
            max_delay: r.range(100, 900),
            long_delay_ppm: r.range(0, 30_000) as u32,
            long_delay: r.range(2, 30) * TICK,
            partition_every: scale(&mut r, 12 * TICK),
            partition_len: r.range(2, 25) * TICK,
            one_way_ppm: r.range(0, 600_000) as u32,
            crash_every: scale(&mut r, 15 * TICK),
            down_len: r.range(1, 20) * TICK,
            crash_in_ready_ppm: r.range(1_000, 20_000) as u32,
            unsafe_crash_ppm: r.range(0, 200_000) as u32,
            slow_disk_ppm: r.range(0, 600_000) as u32,
            slow_disk_max: r.range(TICK / 4, 3 * TICK),
            tick_skew_pct: r.range(0, 50) as u32,
            tick_jitter: true,
            min_down: 0,
        };
        let workload = Workload {
            propose_every: r.range(TICK / 8, TICK),
            max_payload: [0, 16, 64, 300][r.index(4)],
            read_every: r.range(TICK / 4, 3 * TICK),
            conf_change_every: scale(&mut r, 20 * TICK),
            compact_every: scale(&mut r, 8 * TICK),
            transfer_every: scale(&mut r, 40 * TICK),
            idle_every: 0,
            idle_len: 0,
            wake_every: 0,
        };
        let mut cfg = SimConfig {
            seed,
            events,
            liveness: true,
            cluster,
            faults,
            workload,
            breach: None,
        };
        // Quiescence, from a stream of its own (the draws above stay as they were): idle spells
        // long enough for the group to go quiet, and wake-ups.
        let mut q = SimRng::new(seed).fork(0x0051_E7CE);
        if q.chance(350_000) {
            let (every, len) = (q.range(5, 30) * TICK, q.range(3, 40) * TICK);
            let wake = [0, 4 * TICK, 20 * TICK][q.index(3)];
            cfg.with_quiescence(every, len, wake);
        }
        // Lease-based reads, from a stream of their own (the draws above stay as they were).
        let mut l = SimRng::new(seed).fork(0x001E_A5E5);
        if cfg.cluster.check_quorum && l.chance(400_000) {
            if l.chance(650_000) {
                cfg.within_lease_bound();
            } else {
                cfg.cluster.read_only_option = ReadOnlyOption::LeaseBased;
                cfg.faults.min_down = cfg.lease_min_down();
                cfg.faults.tick_skew_pct = cfg.faults.tick_skew_pct.max(10);
            }
        }
        cfg
    }

    /// Turns quiescence on, with idle spells every `idle_every` (each up to `idle_len`) and a
    /// `wake()` every `wake_every` (0: none), all in simulated time units.
    pub fn with_quiescence(&mut self, idle_every: u64, idle_len: u64, wake_every: u64) {
        self.cluster.quiesce = true;
        self.workload.idle_every = idle_every;
        self.workload.idle_len = idle_len;
        self.workload.wake_every = wake_every;
    }

    /// The shortest downtime that outlasts a lease promise: a follower refuses votes for
    /// `election_tick` of its ticks after hearing from its leader, and a slow clock (up to
    /// half the base rate) stretches that; two election timeouts and a tick cover it.
    pub fn lease_min_down(&self) -> u64 {
        (2 * self.cluster.election_tick as u64 + 1) * TICK
    }

    /// Switches the run to lease-based reads within the bound `docs/reads.md` states: every
    /// node ticks at the one base rate, without jitter (no follower's clock runs faster than
    /// a leader's), and a crashed node stays down for [`lease_min_down`](Self::lease_min_down)
    /// (a restarted node would grant votes at once). Turns `check_quorum` on.
    pub fn within_lease_bound(&mut self) {
        self.cluster.check_quorum = true;
        self.cluster.read_only_option = ReadOnlyOption::LeaseBased;
        self.faults.tick_skew_pct = 0;
        self.faults.tick_jitter = false;
        self.faults.min_down = self.faults.min_down.max(self.lease_min_down());
    }

    /// For runs with lease-based reads: whether the clocks stay within the bound
    /// `docs/reads.md` states (see [`within_lease_bound`](Self::within_lease_bound)).
    /// `None` for safe reads.
    pub fn lease_within_bound(&self) -> Option<bool> {
        if self.cluster.read_only_option != ReadOnlyOption::LeaseBased {
            return None;
        }
        Some(
            self.faults.tick_skew_pct == 0
                && !self.faults.tick_jitter
                && self.faults.min_down >= self.lease_min_down(),
        )
    }

    /// A fault-free run of `seed` (for examples and quick checks).
    pub fn calm(seed: u64, events: u64) -> Self {
        SimConfig {
            seed,
            events,
            liveness: true,
            cluster: ClusterSpec::default(),
            faults: FaultPlan::none(),
            workload: Workload::default(),
            breach: None,
        }
    }

    /// One line describing the run's options.
    pub fn summary(&self) -> String {
        let c = &self.cluster;
        format!(
            "seed={} voters={} learners={} spare={} election_tick={} pre_vote={} check_quorum={} mode={:?} async={} apply_from_storage={} hand_over_entries={} max_size_per_msg={} max_inflight={} step_down_on_removal={} drop={}ppm dup={}ppm{}{}",
            self.seed, c.voters, c.learners, c.spare, c.election_tick, c.pre_vote, c.check_quorum,
            c.append_mode, c.async_storage_writes, c.apply_from_storage, c.hand_over_entries, c.max_size_per_msg, c.max_inflight_msgs,
            c.step_down_on_removal, self.faults.drop_ppm, self.faults.dup_ppm,
            if c.quiesce {
                format!(
                    " quiesce(idle every {} for up to {} ticks, wake every {})",
                    self.workload.idle_every / TICK,
                    self.workload.idle_len / TICK,
                    self.workload.wake_every / TICK
                )
            } else {
                String::new()
            },
            match self.lease_within_bound() {
                None => "",
                Some(true) => " reads=lease(within bound)",
                Some(false) => " reads=lease(beyond bound)",
            }
        )
    }
}
