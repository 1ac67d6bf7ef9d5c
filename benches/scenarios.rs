//! The scenario bench of `../shared/bench/SCENARIOS.md`: the same work the peer harnesses do,
//! printed as `scenario=<name> value=<number> unit=<unit>` lines on stdout (the headline
//! first), diagnostics on stderr.
//!
//! ```text
//! cargo bench --bench scenarios -- --scenario NAME [--etcd-exact] [--n N] [--batch B]
//!     [--payload P] [--groups G] [--msgs M] [--per-msg K]
//! ```
//!
//! NAME is one of throughput3, throughput5, idle_memory, tick_idle, follower_append. The default
//! configuration (`AppendMode::Batched`) runs unless `--etcd-exact` asks for etcd's message
//! behaviour (`AppendMode::EtcdExact`, one append per proposal); its figures are named
//! `<scenario>+etcd_exact`. Without `--scenario`, every scenario runs (the append-sensitive ones
//! in both modes), each in a child process of its own so that resident-memory figures are not
//! disturbed by an earlier scenario. Allocations are counted over the timed loop only, by a
//! thread-local counting global allocator. `--bench` (passed by `cargo bench`) is ignored.

mod common;

use std::process::{exit, Command};
use std::time::Instant;

use bytes::Bytes;
use raftcore::raftpb::{Message, MessageType};
use raftcore::{AppendMode, MemStorage, RawNode};
use std::sync::Arc;

use common::alloc::{self, Counting};
use common::cluster::{
    bench_config, bench_storage, handle_ready, ApplyState, Cluster, FollowerAppend, IdleGroups,
};
use common::mem::rss_bytes;

#[global_allocator]
static ALLOC: Counting = Counting;

const SCENARIOS: [&str; 6] = [
    "throughput3",
    "throughput5",
    "idle_memory",
    "tick_idle",
    "follower_append",
    "groups_million",
];

struct Args {
    scenario: Option<String>,
    mode: AppendMode,
    n: u64,
    batch: u64,
    payload: usize,
    groups: Option<usize>,
    msgs: usize,
    per_msg: usize,
    /// The size flags given on the command line, passed on to child processes.
    passthrough: Vec<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: cargo bench --bench scenarios -- [--scenario {}] [--etcd-exact] [--n N] [--batch B] \
         [--payload P] [--groups G] [--msgs M] [--per-msg K]",
        SCENARIOS.join("|")
    );
    exit(2)
}

fn num<T: std::str::FromStr>(flag: &str, s: Option<String>) -> T {
    let s = s.unwrap_or_else(|| usage(&format!("{flag} needs a value")));
    s.parse()
        .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {s}")))
}

fn parse_args() -> Args {
    let mut a = Args {
        scenario: None,
        mode: AppendMode::default(),
        n: 200_000,
        batch: 64,
        payload: 128,
        groups: None,
        msgs: 4000,
        per_msg: 64,
        passthrough: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let f = flag.as_str();
        match f {
            "--bench" => {}
            "--scenario" => {
                a.scenario = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--scenario needs a value")),
                )
            }
            "--etcd-exact" => a.mode = AppendMode::EtcdExact,
            "--n" | "--batch" | "--payload" | "--groups" | "--msgs" | "--per-msg" => {
                let v = it.next();
                if let Some(v) = &v {
                    a.passthrough.extend([flag.clone(), v.clone()]);
                }
                match f {
                    "--n" => a.n = num(f, v),
                    "--batch" => a.batch = num(f, v),
                    "--payload" => a.payload = num(f, v),
                    "--groups" => a.groups = Some(num(f, v)),
                    "--msgs" => a.msgs = num(f, v),
                    _ => a.per_msg = num(f, v),
                }
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if a.n == 0 || a.batch == 0 || a.msgs < 2 || a.per_msg == 0 {
        usage("--n, --batch and --per-msg must be positive, --msgs at least 2");
    }
    a
}

/// One result line on stdout.
fn report(name: &str, value: f64, unit: &str) {
    println!("scenario={name} value={value:.3} unit={unit}");
}

/// The figure name of a scenario in the chosen mode.
fn tagged(scenario: &str, mode: AppendMode) -> String {
    match mode {
        AppendMode::EtcdExact => format!("{scenario}+etcd_exact"),
        _ => scenario.to_string(),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("FAILED: {msg}");
    exit(1)
}

fn main() {
    let a = parse_args();
    let Some(scenario) = a.scenario.clone() else {
        run_all(&a);
        return;
    };
    eprintln!("raftcore {} mode={:?}", env!("CARGO_PKG_VERSION"), a.mode);
    match scenario.as_str() {
        "throughput3" => throughput(&a, 3),
        "throughput5" => throughput(&a, 5),
        "idle_memory" => idle_memory(&a),
        "tick_idle" => tick_idle(&a),
        "follower_append" => follower_append(&a),
        "groups_million" => groups_million(&a),
        other => usage(&format!("unknown scenario {other}")),
    }
}

/// Every scenario (the append-sensitive ones in both modes), each in a child process.
fn run_all(a: &Args) {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    let mut runs: Vec<(&str, bool)> = Vec::new();
    for s in SCENARIOS {
        runs.push((s, false));
        if matches!(s, "throughput3" | "throughput5" | "follower_append") {
            runs.push((s, true));
        }
    }
    let mut failed = false;
    for (s, exact) in runs {
        let mut cmd = Command::new(&exe);
        cmd.args(["--scenario", s]);
        if exact {
            cmd.arg("--etcd-exact");
        }
        cmd.args(&a.passthrough);
        match cmd.status() {
            Ok(st) if st.success() => {}
            Ok(st) => {
                eprintln!("scenario {s} (etcd_exact={exact}) failed: {st}");
                failed = true;
            }
            Err(e) => {
                eprintln!("scenario {s}: cannot start {}: {e}", exe.display());
                failed = true;
            }
        }
    }
    if failed {
        exit(1);
    }
}

/// throughput3 / throughput5: node 1 is elected and its first entry applied everywhere
/// (untimed); then, until `n` proposals are applied on every node, the leader proposes `batch`
/// entries (one `propose` call each, clones of one `Bytes`) and one round runs.
fn throughput(a: &Args, voters: u64) {
    let name = tagged(&format!("throughput{voters}"), a.mode);
    let mut c = Cluster::new(voters, a.mode);
    c.elect(1);
    let payload = Bytes::from(vec![0x5a; a.payload]);
    drop(payload.clone()); // make the buffer shared now, not inside the timed loop
    let (rounds0, delivered0) = (c.rounds, c.delivered);

    let alloc0 = alloc::snapshot();
    let t0 = Instant::now();
    let mut proposed = 0u64;
    while c.min_applied_entries() < a.n {
        let k = a.batch.min(a.n - proposed);
        for _ in 0..k {
            c.propose(1, payload.clone());
        }
        proposed += k;
        if !c.round() && k == 0 {
            fail(&format!(
                "{name}: the cluster stalled at {} applied entries of {}",
                c.min_applied_entries(),
                a.n
            ));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let allocs = alloc::snapshot().since(alloc0);

    for id in 1..=voters {
        let s = c.apply_state(id);
        if s.applied_entries != a.n || s.applied_bytes != a.n * a.payload as u64 {
            fail(&format!(
                "{name}: node {id} applied {} entries / {} bytes, expected {} / {}",
                s.applied_entries,
                s.applied_bytes,
                a.n,
                a.n * a.payload as u64
            ));
        }
    }
    let rounds = c.rounds - rounds0;
    let delivered = c.delivered - delivered0;
    eprintln!(
        "{name}: delivered messages by type (incl. election): {:?}",
        c.message_histogram()
    );
    if c.step_errors > 0 {
        eprintln!(
            "{name}: WARNING: {} step calls returned an error",
            c.step_errors
        );
    }
    eprintln!(
        "{name}: n={} batch={} payload={} elapsed={secs:.4}s rounds={rounds} messages={delivered}",
        a.n, a.batch, a.payload
    );
    let n = a.n as f64;
    report(&name, n / secs, "ops/s");
    report(&format!("{name}.ns_per_proposal"), secs * 1e9 / n, "ns");
    report(
        &format!("{name}.msgs_per_proposal"),
        delivered as f64 / n,
        "msgs",
    );
    report(
        &format!("{name}.allocs_per_proposal"),
        allocs.calls as f64 / n,
        "allocs",
    );
    report(
        &format!("{name}.alloc_bytes_per_proposal"),
        allocs.bytes as f64 / n,
        "bytes",
    );
}

/// idle_memory: VmRSS before and after creating `groups` idle followers, per group; then the
/// same after every group handled one heartbeat from its leader.
fn idle_memory(a: &Args) {
    let groups = a.groups.unwrap_or(100_000);
    if groups == 0 {
        usage("--groups must be positive");
    }
    let rss = || rss_bytes().unwrap_or_else(|| fail("cannot read VmRSS from /proc/self/status"));
    let rss0 = rss();
    let alloc0 = alloc::snapshot();
    let t0 = Instant::now();
    let mut g = IdleGroups::new(groups);
    let create_secs = t0.elapsed().as_secs_f64();
    let allocs = alloc::snapshot().since(alloc0);
    let rss1 = rss();
    g.heartbeat_all();
    let rss2 = rss();
    if g.following() != groups {
        fail(&format!(
            "idle_memory: only {} of {groups} groups follow their leader",
            g.following()
        ));
    }
    eprintln!(
        "idle_memory: groups={} rss_before={rss0} rss_after_create={rss1} rss_after_heartbeat={rss2} create_time={create_secs:.3}s",
        g.len()
    );
    eprintln!(
        "idle_memory: size_of RawNode<MemStorage>={} (of which MemStorage={}), heap per group at creation: {} allocations, {} bytes",
        std::mem::size_of::<raftcore::RawNode<raftcore::MemStorage>>(),
        std::mem::size_of::<raftcore::MemStorage>(),
        allocs.calls as f64 / groups as f64,
        allocs.bytes as f64 / groups as f64,
    );
    let per = |x: u64| x.saturating_sub(rss0) as f64 / groups as f64;
    report("idle_memory", per(rss1), "bytes/group");
    report("idle_memory.after_heartbeat", per(rss2), "bytes/group");
    report(
        "idle_memory.create_ns_per_group",
        create_secs * 1e9 / groups as f64,
        "ns",
    );
    report(
        "idle_memory.allocs_per_group",
        allocs.calls as f64 / groups as f64,
        "allocs",
    );
    report(
        "idle_memory.alloc_bytes_per_group",
        allocs.bytes as f64 / groups as f64,
        "bytes",
    );
    drop(g);
}

/// tick_idle: `groups` (10000) followers that heard from their leader. Each repetition re-sends
/// a heartbeat to every node (untimed), then times passes of `tick(); has_ready()` over all of
/// them, fewer than the election timeout, so none campaigns (checked). Two warm-up repetitions
/// are not counted.
fn tick_idle(a: &Args) {
    const WARMUP: usize = 2;
    const REPS: usize = 10;
    let election_tick = 10; // bench_config's
    let passes = election_tick - 2;
    let groups = a.groups.unwrap_or(10_000);
    if groups == 0 {
        usage("--groups must be positive");
    }
    let mut g = IdleGroups::new(groups);
    let mut total = 0f64;
    let mut best = f64::MAX;
    for rep in 0..WARMUP + REPS {
        g.heartbeat_all();
        for _ in 0..passes {
            let t0 = Instant::now();
            let ready = g.tick_all();
            let dt = t0.elapsed().as_secs_f64();
            if ready != 0 {
                fail(&format!(
                    "tick_idle: {ready} idle followers produced a Ready"
                ));
            }
            if rep >= WARMUP {
                total += dt;
                best = best.min(dt);
            }
        }
    }
    if g.following() != groups {
        fail("tick_idle: a follower lost its leader");
    }
    let samples = (REPS * passes) as f64;
    eprintln!("tick_idle: groups={groups} reps={REPS} (+{WARMUP} warm-up) passes/rep={passes} total={total:.4}s");
    report(
        "tick_idle",
        total * 1e9 / (samples * groups as f64),
        "ns/group",
    );
    report(
        "tick_idle.best_pass",
        best * 1e9 / groups as f64,
        "ns/group",
    );
}

/// follower_append: one follower steps `msgs` appends of `per_msg` entries each and handles the
/// Ready after every message. Value: wall time per entry.
fn follower_append(a: &Args) {
    let name = tagged("follower_append", a.mode);
    let payload = Bytes::from(vec![0x5a; a.payload]);
    let mut f = FollowerAppend::new(a.msgs, a.per_msg, payload, a.mode);
    let entries = (a.msgs * a.per_msg) as u64;
    let alloc0 = alloc::snapshot();
    let t0 = Instant::now();
    let errors = f.run();
    let secs = t0.elapsed().as_secs_f64();
    let allocs = alloc::snapshot().since(alloc0);

    if errors > 0 {
        fail(&format!("{name}: {errors} appends were refused"));
    }
    if f.last_index() != f.last_sent {
        fail(&format!(
            "{name}: stable last index {} != {} sent",
            f.last_index(),
            f.last_sent
        ));
    }
    // Everything but the last message's entries is committed and applied.
    let sm = f.apply_state();
    let want = entries - a.per_msg as u64;
    if sm.applied_index != f.last_sent - a.per_msg as u64
        || sm.applied_entries != want
        || sm.applied_bytes != want * a.payload as u64
    {
        fail(&format!(
            "{name}: applied index {} entries {} bytes {}, expected {} / {want} / {}",
            sm.applied_index,
            sm.applied_entries,
            sm.applied_bytes,
            f.last_sent - a.per_msg as u64,
            want * a.payload as u64
        ));
    }
    if f.responses != a.msgs as u64 {
        fail(&format!(
            "{name}: {} responses for {} messages",
            f.responses, a.msgs
        ));
    }
    eprintln!(
        "{name}: msgs={} per_msg={} payload={} elapsed={secs:.4}s",
        a.msgs, a.per_msg, a.payload
    );
    report(&name, secs * 1e9 / entries as f64, "ns/entry");
    report(
        &format!("{name}.ns_per_msg"),
        secs * 1e9 / a.msgs as f64,
        "ns/msg",
    );
    report(
        &format!("{name}.allocs_per_entry"),
        allocs.calls as f64 / entries as f64,
        "allocs",
    );
    report(
        &format!("{name}.alloc_bytes_per_entry"),
        allocs.bytes as f64 / entries as f64,
        "bytes",
    );
}

/// groups_million: `groups` (1,000,000) followers (id 2) of their own 3-voter groups with
/// `Config::quiesce`, each handed one heartbeat from leader 1 and then its `MsgQuiesce`, its
/// Ready handled after each (the answers dropped). Headline: VmRSS after minus before, per
/// group. Then passes of `tick()` + `has_ready()` over all groups (after one warm-up pass):
/// `groups_million.tick_ns` (mean per group), `.tick_best_ns` (best pass), and
/// `.msgs_per_pass`, the messages the timed passes produced (any Ready is taken and its
/// messages counted).
fn groups_million(a: &Args) {
    const PASSES: usize = 10;
    let groups = a.groups.unwrap_or(1_000_000);
    if groups == 0 {
        usage("--groups must be positive");
    }
    let rss = || rss_bytes().unwrap_or_else(|| fail("cannot read VmRSS from /proc/self/status"));
    let mut cfg = bench_config(2, a.mode);
    cfg.quiesce = true;
    let cfg = Arc::new(cfg);
    let rss0 = rss();
    let t0 = Instant::now();
    let mut nodes: Vec<RawNode<MemStorage>> = Vec::with_capacity(groups);
    let mut sm = ApplyState::default();
    let mut out = Vec::new();
    for _ in 0..groups {
        let mut node = RawNode::with_shared_config(2, 0, Arc::clone(&cfg), bench_storage(3))
            .unwrap_or_else(|e| fail(&format!("RawNode::with_shared_config: {e}")));
        for t in [MessageType::MsgHeartbeat, MessageType::MsgQuiesce] {
            node.step(Message {
                r#type: t as i32,
                from: 1,
                to: 2,
                term: 1,
                commit: 1,
                index: 1,
                ..Default::default()
            })
            .unwrap_or_else(|e| fail(&format!("step {t:?}: {e}")));
            handle_ready(&mut node, &mut sm, &mut out);
            out.clear();
        }
        if !node.is_quiet() {
            fail("groups_million: a follower did not go quiet");
        }
        nodes.push(node);
    }
    let create_secs = t0.elapsed().as_secs_f64();
    let rss1 = rss();
    let mut total = 0f64;
    let mut best = f64::MAX;
    let mut msgs = 0usize;
    for pass in 0..=PASSES {
        let t = Instant::now();
        let mut ready = 0usize;
        for node in &mut nodes {
            node.tick();
            ready += node.has_ready() as usize;
        }
        let dt = t.elapsed().as_secs_f64();
        if ready > 0 {
            for node in &mut nodes {
                if node.has_ready() {
                    handle_ready(node, &mut sm, &mut out);
                }
            }
            if pass > 0 {
                msgs += out.len();
            }
            out.clear();
        }
        if pass > 0 {
            total += dt;
            best = best.min(dt);
        }
    }
    if nodes.iter().any(|n| !n.is_quiet()) {
        fail("groups_million: a group woke while ticking");
    }
    eprintln!(
        "groups_million: groups={groups} rss_before={rss0} rss_after={rss1} create_time={create_secs:.2}s passes={PASSES} size_of RawNode<MemStorage>={}",
        std::mem::size_of::<RawNode<MemStorage>>()
    );
    report(
        "groups_million",
        rss1.saturating_sub(rss0) as f64 / groups as f64,
        "bytes/group",
    );
    report(
        "groups_million.tick_ns",
        total * 1e9 / (PASSES * groups) as f64,
        "ns/group",
    );
    report(
        "groups_million.tick_best_ns",
        best * 1e9 / groups as f64,
        "ns/group",
    );
    report("groups_million.pass_ms", total * 1e3 / PASSES as f64, "ms");
    report(
        "groups_million.msgs_per_pass",
        msgs as f64 / PASSES as f64,
        "msgs",
    );
    drop(nodes);
}
