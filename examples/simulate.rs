//! Runs the deterministic cluster simulator over a range of seeds.
//!
//! ```text
//! cargo run --release --features sim --example simulate -- --seeds 0..10000
//! cargo run --release --features sim --example simulate -- --seeds 42..43 --trace
//! ```
//!
//! Options:
//! - `--seeds A..B`   seeds A to B-1 (default 0..100); `--seeds S` is one seed
//! - `--events N`     events with faults on per seed, before the heal (default 2000)
//! - `--jobs J`       worker threads (default 1)
//! - `--trace`        print every event of each run as it happens, with the core's log lines
//! - `--tail N`       trace lines printed for each failing seed (default 60)
//! - `--no-liveness`  skip the liveness check after the heal
//! - `--fail-fast`    stop at the first safety violation
//! - `--quiet`        no progress line
//! - `--chart FILE`   (one seed) draw the run as a message-sequence chart, an SVG file: a lane
//!   per node, messages as arrows from send to delivery, drops, duplicates, crashes,
//!   partitions, role changes and the violation marked (see `raftcore::sim::chart`)
//! - `--chart-events N` scheduler events the chart draws (default 400, at most 5000): the
//!   first ones, or the last ones up to the violation when the run has one
//! - `--mode batched|etcd`, `--async on|off`: force an option the seed would otherwise draw
//!
//! Runs with lease-based reads within the clock bound of `docs/reads.md` count a stale read
//! as a violation; beyond the bound it is counted as `lease_stale` (progress line and the
//! `lease_reads:` line), never as a violation.
//!
//! The last line is `seeds=N events=E violations=V liveness=L events_per_sec=R`; the exit
//! status is non-zero when any seed broke a safety invariant.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftcore::sim::chart::{ChartOptions, DEFAULT_CHART_EVENTS};
use raftcore::sim::{run_config, run_config_charted, RunReport, SimConfig};
use raftcore::AppendMode;

struct Opts {
    from: u64,
    to: u64,
    events: u64,
    jobs: usize,
    trace: bool,
    tail: usize,
    liveness: bool,
    fail_fast: bool,
    quiet: bool,
    mode: Option<AppendMode>,
    async_writes: Option<bool>,
    chart: Option<String>,
    chart_events: u64,
}

/// `println!` that ignores a closed standard output (`| head`).
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}");
    eprintln!(
        "usage: simulate [--seeds A..B] [--events N] [--jobs J] [--trace] [--tail N] [--no-liveness] [--fail-fast] [--quiet] [--mode batched|etcd] [--async on|off] [--chart FILE] [--chart-events N]"
    );
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        from: 0,
        to: 100,
        events: 2000,
        jobs: 1,
        trace: false,
        tail: 60,
        liveness: true,
        fail_fast: false,
        quiet: false,
        mode: None,
        async_writes: None,
        chart: None,
        chart_events: DEFAULT_CHART_EVENTS,
    };
    let mut args = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> u64 {
        v.and_then(|s| s.replace('_', "").parse().ok())
            .unwrap_or_else(|| usage(&format!("{what} needs a number")))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seeds" => {
                let v = args.next().unwrap_or_else(|| usage("--seeds needs A..B"));
                if let Some((a, b)) = v.split_once("..") {
                    o.from = num(Some(a.into()), "--seeds");
                    o.to = num(Some(b.into()), "--seeds");
                } else {
                    o.from = num(Some(v), "--seeds");
                    o.to = o.from + 1;
                }
                if o.to <= o.from {
                    usage("--seeds A..B needs A < B");
                }
            }
            "--events" => o.events = num(args.next(), "--events"),
            "--jobs" => o.jobs = num(args.next(), "--jobs").max(1) as usize,
            "--tail" => o.tail = num(args.next(), "--tail") as usize,
            "--trace" => o.trace = true,
            "--no-liveness" => o.liveness = false,
            "--chart" => {
                o.chart = Some(args.next().unwrap_or_else(|| usage("--chart needs a file")))
            }
            "--chart-events" => o.chart_events = num(args.next(), "--chart-events"),
            "--fail-fast" => o.fail_fast = true,
            "--quiet" => o.quiet = true,
            "--mode" => {
                o.mode = Some(match args.next().as_deref() {
                    Some("batched") => AppendMode::Batched,
                    Some("etcd") => AppendMode::EtcdExact,
                    _ => usage("--mode is batched or etcd"),
                })
            }
            "--async" => {
                o.async_writes = Some(match args.next().as_deref() {
                    Some("on") => true,
                    Some("off") => false,
                    _ => usage("--async is on or off"),
                })
            }
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown option {other}")),
        }
    }
    if o.chart.is_some() && o.to - o.from != 1 {
        usage("--chart draws one run: give one seed (--seeds S)");
    }
    o
}

fn replay(o: &Opts, seed: u64) -> String {
    let mut s = format!(
        "cargo run --release --features sim --example simulate -- --seeds {}..{} --trace",
        seed,
        seed + 1
    );
    if o.events != 2000 {
        s.push_str(&format!(" --events {}", o.events));
    }
    if let Some(m) = o.mode {
        s.push_str(match m {
            AppendMode::Batched => " --mode batched",
            AppendMode::EtcdExact => " --mode etcd",
        });
    }
    if let Some(a) = o.async_writes {
        s.push_str(if a { " --async on" } else { " --async off" });
    }
    s
}

fn config(o: &Opts, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::from_seed(seed, o.events);
    cfg.liveness = o.liveness;
    if let Some(m) = o.mode {
        cfg.cluster.append_mode = m;
    }
    if let Some(a) = o.async_writes {
        cfg.cluster.async_storage_writes = a;
    }
    cfg
}

#[derive(Default)]
struct Totals {
    seeds: u64,
    events: u64,
    violations: u64,
    liveness: u64,
    committed: u64,
    crashes: u64,
    conf_changes: u64,
    snapshots: u64,
    reads: u64,
    lease_within_runs: u64,
    lease_within_reads: u64,
    lease_beyond_runs: u64,
    lease_beyond_reads: u64,
    lease_quick: u64,
    lease_stale: u64,
    quiesce_runs: u64,
    quiesce_ticks: u64,
    quiet_ticks: u64,
}

fn report_failure(o: &Opts, r: &RunReport) {
    let out = std::io::stdout();
    let mut out = out.lock();
    let cfg = config(o, r.seed);
    if let Some(v) = &r.violation {
        let _ = writeln!(
            out,
            "\nVIOLATION seed={} after {} events: {v}",
            r.seed, r.events
        );
    } else if let Some(l) = &r.liveness {
        let _ = writeln!(
            out,
            "\nLIVENESS seed={} after {} events: {l}",
            r.seed, r.events
        );
    }
    let _ = writeln!(out, "  run: {}", cfg.summary());
    if !o.trace && o.tail > 0 {
        let tail = &r.trace_tail[r.trace_tail.len().saturating_sub(o.tail)..];
        let _ = writeln!(out, "  last {} events:", tail.len());
        for l in tail {
            let _ = writeln!(out, "    {l}");
        }
    }
    let _ = writeln!(out, "  replay: {}", replay(o, r.seed));
}

fn main() -> ExitCode {
    let o = Arc::new(parse());
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(o.from));
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Mutex::new(Totals::default()));
    let failed: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));

    let mut handles = Vec::new();
    for _ in 0..o.jobs {
        let (o, next, stop, totals, failed) = (
            o.clone(),
            next.clone(),
            stop.clone(),
            totals.clone(),
            failed.clone(),
        );
        handles.push(std::thread::spawn(move || loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let seed = next.fetch_add(1, Ordering::Relaxed);
            if seed >= o.to {
                break;
            }
            if o.trace {
                out!("=== seed {seed}: {}", config(&o, seed).summary());
            }
            let r = if o.chart.is_some() {
                run_config_charted(config(&o, seed), o.tail.max(1), o.trace)
            } else {
                run_config(config(&o, seed), o.tail.max(1), o.trace)
            };
            if let (Some(path), Some(log)) = (&o.chart, &r.chart) {
                let opts = ChartOptions {
                    max_events: o.chart_events,
                    title: config(&o, seed).summary(),
                };
                let w = log.window(&opts);
                match std::fs::write(path, log.svg(&opts)) {
                    Ok(()) => match w {
                        Some(w) => out!(
                            "chart: {path} ({} lanes, events {}..={} of {})",
                            log.nodes().len(),
                            w.first_event,
                            w.last_event,
                            r.events
                        ),
                        None => out!("chart: {path} (nothing recorded)"),
                    },
                    Err(e) => eprintln!("cannot write {path}: {e}"),
                }
            }
            let mut t = totals.lock().expect("totals");
            t.seeds += 1;
            t.events += r.events;
            t.committed += r.committed;
            t.crashes += r.crashes;
            t.conf_changes += r.conf_changes;
            t.snapshots += r.snapshots_sent;
            t.reads += r.reads;
            match r.lease {
                Some(true) => {
                    t.lease_within_runs += 1;
                    t.lease_within_reads += r.lease_reads;
                }
                Some(false) => {
                    t.lease_beyond_runs += 1;
                    t.lease_beyond_reads += r.lease_reads;
                }
                None => {}
            }
            t.lease_stale += r.lease_stale;
            if r.quiesce {
                t.quiesce_runs += 1;
                t.quiesce_ticks += r.ticks;
                t.quiet_ticks += r.quiet_ticks;
            }
            t.lease_quick += r.lease_quick;
            if r.violation.is_some() {
                t.violations += 1;
                if o.fail_fast {
                    stop.store(true, Ordering::Relaxed);
                }
            } else if r.liveness.is_some() {
                t.liveness += 1;
            }
            drop(t);
            if r.violation.is_some() || r.liveness.is_some() {
                if r.violation.is_some() {
                    failed.lock().expect("failed").push(seed);
                }
                report_failure(&o, &r);
            }
            if o.trace {
                out!(
                    "=== seed {seed}: {} events, {} committed, violation: {}, liveness: {}",
                    r.events,
                    r.committed,
                    r.violation
                        .as_ref()
                        .map_or("none".into(), |v| v.to_string()),
                    r.liveness.as_deref().unwrap_or("ok")
                );
            }
        }));
    }

    // Progress line (on stderr) while the workers run.
    let total_seeds = o.to - o.from;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        if o.quiet || o.trace {
            continue;
        }
        let t = totals.lock().expect("totals");
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r{}/{} seeds  events={}  violations={}  liveness={}  lease_stale={}  {:.0} events/s  {:.0}s   ",
            t.seeds,
            total_seeds,
            t.events,
            t.violations,
            t.liveness,
            t.lease_stale,
            t.events as f64 / secs,
            secs
        );
    }
    for h in handles {
        if h.join().is_err() {
            eprintln!("a worker thread panicked");
        }
    }
    if !o.quiet && !o.trace {
        eprintln!();
    }
    let t = totals.lock().expect("totals");
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let failed = failed.lock().expect("failed");
    if !failed.is_empty() {
        let mut f = failed.clone();
        f.sort_unstable();
        out!("failing seeds:");
        for s in f {
            out!("  {}", replay(&o, s));
        }
    }
    out!(
        "committed={} crashes={} conf_changes={} snapshots={} reads={} seconds={:.1}",
        t.committed,
        t.crashes,
        t.conf_changes,
        t.snapshots,
        t.reads,
        secs
    );
    out!(
        "lease_reads: answered_at_once={} within_bound runs={} reads={} | beyond_bound runs={} reads={} lease_stale={}",
        t.lease_quick,
        t.lease_within_runs,
        t.lease_within_reads,
        t.lease_beyond_runs,
        t.lease_beyond_reads,
        t.lease_stale
    );
    out!(
        "quiescence: runs={} ticks_while_quiet={} of {} ({:.1}%)",
        t.quiesce_runs,
        t.quiet_ticks,
        t.quiesce_ticks,
        100.0 * t.quiet_ticks as f64 / t.quiesce_ticks.max(1) as f64
    );
    out!(
        "seeds={} events={} violations={} liveness={} events_per_sec={:.0}",
        t.seeds,
        t.events,
        t.violations,
        t.liveness,
        t.events as f64 / secs
    );
    if t.violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
