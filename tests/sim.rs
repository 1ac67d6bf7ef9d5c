//! The simulator as a test: a short smoke range of seeds, a property test over fault plans, a
//! property test over explicit schedules, and checks that the checks catch what they must.

use proptest::prelude::*;
use raftcore::sim::chart::{
    kind_class, ChartEvent, ChartOptions, ChartRecord, Lane, MAX_CHART_EVENTS,
};
use raftcore::sim::{
    check_schedule, run_config, run_config_charted, run_seed, strategies, Action, Action::*,
    Checker, ContractBreach, SimConfig, ViolationKind, World, MAX_NODES, TICK,
};
use raftcore::{ReadOnlyOption, StateRole};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A proptest config with `default` cases (or `PROPTEST_CASES`), no failure files, and a
/// fixed generator seed unless `PROPTEST_RNG_SEED` asks for another: CI runs the same cases
/// every time, and a failure replays.
fn config(default: u32) -> ProptestConfig {
    let mut c = ProptestConfig {
        cases: cases(default),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x5EED_2026);
    }
    c
}

#[test]
fn smoke_seeds() {
    for seed in 0..50 {
        let r = run_seed(seed, 2000);
        assert!(
            r.violation.is_none(),
            "seed {seed}: {:?}\n{}",
            r.violation,
            r.trace_tail.join("\n")
        );
        assert!(r.events >= 2000, "seed {seed} ran only {} events", r.events);
    }
}

/// Regression: stale reads through the single-voter fast path of `MsgReadIndex`, which
/// answered at once with the leader's commit index (a) before it had committed an entry of
/// its term and (b) when the one voter was another node. The seeds were found by running the
/// simulator with each half of the fix undone: seeds 843 and 80 release a stale read when a
/// sole-voter leader answers before its first commit of the term (a), seeds 2876 and 2145 when
/// a leader answers from the fast path while another node is the one voter (b).
#[test]
fn single_voter_read_index_is_linearizable() {
    for seed in [843, 80, 2876, 2145] {
        let r = run_seed(seed, 2000);
        assert!(r.violation.is_none(), "seed {seed}: {:?}", r.violation);
    }
}

#[test]
fn a_run_replays_exactly() {
    let a = run_seed(3, 1200);
    let b = run_seed(3, 1200);
    assert_eq!(
        (a.events, a.sim_time, a.committed, a.crashes, a.acked_writes),
        (b.events, b.sim_time, b.committed, b.crashes, b.acked_writes)
    );
}

#[test]
fn calm_runs_commit_and_stay_live() {
    for seed in 0..4 {
        let r = run_config(SimConfig::calm(seed, 1500), 40, false);
        assert!(r.violation.is_none(), "{:?}", r.violation);
        assert!(r.liveness.is_none(), "{:?}", r.liveness);
        assert!(r.committed > 20, "only {} committed", r.committed);
        assert!(r.acked_writes > 10);
    }
}

#[test]
fn checker_refuses_two_entries_at_one_committed_index() {
    let mut c = Checker::new();
    c.committed(1, 3, 10, 3, 0x1111).unwrap();
    let v = c.committed(2, 4, 10, 4, 0x2222).unwrap_err();
    assert_eq!(v.kind, ViolationKind::CommittedConflict);
    let mut c = Checker::new();
    c.applied_state(1, 10, 7).unwrap();
    assert_eq!(
        c.applied_state(2, 10, 8).unwrap_err().kind,
        ViolationKind::AppliedStateConflict
    );
    c.write_acked(12);
    assert_eq!(
        c.read_released(1, 0, c.read_floor(), 11).unwrap_err().kind,
        ViolationKind::StaleRead
    );
}

/// An application that sends vote and append responses before persisting is caught: a node
/// that crashes after voting forgets its vote and votes again.
#[test]
fn sending_before_persisting_is_caught() {
    let mut found = None;
    for seed in 0..300 {
        let mut cfg = SimConfig::from_seed(seed, 2000);
        cfg.breach = Some(ContractBreach::SendBeforePersist);
        cfg.faults.crash_in_ready_ppm = 100_000;
        cfg.liveness = false;
        let r = run_config(cfg, 40, false);
        if let Some(v) = r.violation {
            found = Some((seed, v));
            break;
        }
    }
    let (seed, v) = found.expect("a breach of the Ready contract went unnoticed for 300 seeds");
    eprintln!("caught at seed {seed}: {v}");
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn safety_holds_under_any_fault_plan(cfg in strategies::sim_config(600)) {
        let seed = cfg.seed;
        let r = World::new(cfg, 60, false).run();
        prop_assert!(r.violation.is_none(), "seed {}: {:?}\n{}", seed, r.violation, r.trace_tail.join("\n"));
    }

    #[test]
    fn safety_holds_under_any_schedule(
        cluster in strategies::cluster_spec(),
        actions in strategies::schedule(150),
    ) {
        let mut cfg = SimConfig::calm(7, 0);
        cfg.cluster = cluster;
        if let Err((v, trace)) = check_schedule(&cfg, &actions) {
            prop_assert!(false, "{}\n{}", v, trace.join("\n"));
        }
    }
}

/// A run that breaks the Ready contract is found by the property test over whole runs, and
/// proptest shrinks it (fewer nodes, fewer faults, fewer events) to a short trace.
#[test]
fn a_failing_run_shrinks() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases(64).max(64),
        max_shrink_iters: 400,
        ..config(64)
    });
    let strategy = (100u64..3000, strategies::sim_config(0));
    let run = |(events, cfg): &(u64, SimConfig)| {
        let mut cfg = cfg.clone();
        cfg.events = *events;
        cfg.liveness = false;
        cfg.breach = Some(ContractBreach::SendBeforePersist);
        cfg.faults.crash_in_ready_ppm = cfg.faults.crash_in_ready_ppm.max(200_000);
        // Three voters or more and a fixed membership: the breach, nothing else, is on trial.
        cfg.cluster.voters = cfg.cluster.voters.max(3);
        cfg.workload.conf_change_every = 0;
        run_config(cfg, 80, false)
    };
    let result = runner.run(&strategy, |input| match run(&input).violation {
        None => Ok(()),
        Some(v) => Err(TestCaseError::fail(v.to_string())),
    });
    match result {
        Err(proptest::test_runner::TestError::Fail(why, input)) => {
            let r = run(&input);
            eprintln!(
                "shrunk to {} events, {} voters: {why}\n{}",
                r.events,
                input.1.cluster.voters,
                r.trace_tail.join("\n")
            );
            assert!(r.violation.is_some());
        }
        other => panic!("the breach was not found: {other:?}"),
    }
}

/// Raft's Figure 8 as an explicit schedule: a leader of term 3 gets an entry of term 1
/// replicated to a majority and must not count it as committed; the leader of term 4 then
/// replaces it. A core that commits it (counting replicas of an earlier-term entry) is caught
/// by the commit-rule check, and without that check by the committed ledger.
#[test]
fn figure_8_schedule_is_safe() {
    let mut cfg = SimConfig::calm(1, 0);
    cfg.cluster.voters = 3;
    cfg.cluster.spare = 0;
    cfg.cluster.max_size_per_msg = 0;
    let acts = vec![
        // n1 leads term 1; everyone has its empty entry (index 2).
        Campaign(0),
        Settle,
        // n1, cut off, appends index 3 (term 1) that no one gets, and restarts.
        Isolate(0),
        Propose(0),
        Settle,
        Crash(0),
        Restart(0),
        // n2 leads term 2 with n3's vote; its empty entry (index 3, term 2) reaches no one.
        Campaign(1),
        Process(1),
        DeliverTo(2),
        Process(2),
        DeliverTo(1),
        Process(1),
        Process(1),
        DropTo(2),
        DropTo(2),
        Crash(1),
        Restart(1),
        Heal,
        // n1 leads term 3 with n3's vote (n3 lacks index 3), while n2 is cut off.
        Isolate(1),
        Campaign(0),
        Settle,
        Campaign(0),
        Process(0),
        DeliverTo(2),
        Process(2),
        DeliverTo(0),
        Process(0),
        Process(0),
        // n1 probes n3 one entry at a time: n3 gets index 3 (term 1) and acknowledges it.
        DeliverTo(2),
        Process(2),
        DeliverTo(0),
        Process(0),
        DeliverTo(2),
        Process(2),
        DeliverTo(0),
        Process(0),
        // n1 is lost before n3 gets index 4 (term 3).
        DropTo(2),
        DropTo(2),
        Crash(0),
        Heal,
        // n2 leads term 4 with n3's vote and replicates index 3 (term 2) over n3's.
        Campaign(1),
        Settle,
        Campaign(1),
        Settle,
    ];
    match check_schedule(&cfg, &acts) {
        Ok(r) => assert!(r.committed >= 3, "committed {}", r.committed),
        Err((v, trace)) => panic!("{v}\n{}", trace.join("\n")),
    }
}

#[test]
fn explicit_schedule_elects_and_commits() {
    let cfg = SimConfig::calm(5, 0);
    let mut acts = vec![Action::Campaign(0), Action::Settle];
    for i in 0..5 {
        acts.push(Action::Propose(i % 3));
        acts.push(Action::Settle);
    }
    acts.extend([
        Action::Crash(1),
        Action::Propose(0),
        Action::Settle,
        Action::Restart(1),
        Action::Settle,
    ]);
    let mut w = World::scripted(cfg, 400, false);
    for a in acts {
        if let Err(v) = w.apply(a) {
            panic!("{v}\n{}", w.trace().join("\n"));
        }
    }
    let trace = w.trace().join("\n");
    let r = w.into_report();
    assert!(r.committed >= 7, "committed {}\n{trace}", r.committed);
    assert!(r.acked_writes >= 6, "acked {}", r.acked_writes);
    assert_eq!(r.leader_terms, 1);
}

/// The elements of an SVG document as `(name, attributes text)`, checking that it is
/// well-formed: tags balance, one root element, nothing but whitespace outside it.
fn svg_elements(svg: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        if stack.is_empty() {
            assert!(
                rest[..open].trim().is_empty(),
                "text outside the root: {:?}",
                &rest[..open]
            );
        }
        let close = rest[open..].find('>').expect("an unclosed tag") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "unbalanced </{name}>"
            );
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body
            .split_whitespace()
            .next()
            .expect("a tag name")
            .to_string();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "bad tag name {name:?}"
        );
        if stack.is_empty() {
            roots += 1;
        }
        out.push((name.clone(), body.to_string()));
        if !self_closing {
            stack.push(name);
        }
    }
    assert!(rest.trim().is_empty(), "text after the root");
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(roots, 1, "one root element");
    out
}

/// The value of attribute `name` in a tag's text.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

fn classes<'a>(elems: &'a [(String, String)], name: &'a str) -> Vec<&'a str> {
    elems
        .iter()
        .filter(|(n, _)| n == name)
        .filter_map(|(_, t)| attr(t, "class"))
        .collect()
}

/// `simulate --chart`: the SVG of a short run with every fault on is one well-formed `<svg>`
/// document with one lane per node, an arrow for every message delivered in the window (so
/// one at least of each kind delivered), a crossed stub for every message the network
/// dropped, a crossed arrow for every message lost on arrival, a cross per crash and a
/// leader band when a node led; a shorter window draws only its own events.
#[test]
fn chart_draws_the_run() {
    let mut cfg = SimConfig::from_seed(11, 400);
    cfg.faults.drop_ppm = 60_000;
    cfg.faults.dup_ppm = 40_000;
    cfg.faults.crash_every = 4 * TICK;
    cfg.liveness = false;
    let r = run_config_charted(cfg.clone(), 40, false);
    assert!(r.violation.is_none(), "{:?}", r.violation);
    let log = r.chart.as_deref().expect("a chart record");
    let nodes = cfg.cluster.voters + cfg.cluster.learners + cfg.cluster.spare;
    assert_eq!(log.nodes().len(), nodes.min(MAX_NODES));

    let check = |max_events: u64| {
        let opts = ChartOptions {
            max_events,
            title: cfg.summary(),
        };
        let w = log.window(&opts).expect("a window");
        assert_eq!(w.first_event, 0);
        assert!(w.last_event < max_events);
        let svg = log.svg(&opts);
        let elems = svg_elements(&svg);
        assert_eq!(elems[0].0, "svg", "the root is <svg>");
        assert_eq!(elems.iter().filter(|(n, _)| n == "svg").count(), 1);
        let groups = classes(&elems, "g");
        assert_eq!(
            groups.iter().filter(|c| **c == "lane").count(),
            log.nodes().len()
        );

        // What the run did inside the window.
        let recs: Vec<&ChartRecord> = log.in_window(&w).collect();
        let mut kinds = std::collections::BTreeSet::new();
        let (mut delivered, mut dropped, mut lost, mut crashes, mut led) = (0, 0, 0, 0, false);
        for r in &recs {
            match &r.what {
                ChartEvent::Deliver { msg, .. } => {
                    delivered += 1;
                    kinds.insert(kind_class(msg.ty));
                }
                ChartEvent::Send { copies: 0, .. } => dropped += 1,
                ChartEvent::Lost { .. } => lost += 1,
                ChartEvent::Crash { .. } => crashes += 1,
                ChartEvent::Lane {
                    lane: Lane::Up(StateRole::Leader),
                    ..
                } => led = true,
                _ => {}
            }
        }
        let lines = classes(&elems, "line");
        let arrows: Vec<&&str> = lines
            .iter()
            .filter(|c| c.starts_with("msg ") && c.ends_with(" delivered"))
            .collect();
        assert_eq!(arrows.len(), delivered, "an arrow per delivered message");
        for k in &kinds {
            assert!(
                arrows.iter().any(|c| c.split(' ').any(|x| x == k)),
                "no arrow for delivered {k}"
            );
        }
        let paths = classes(&elems, "path");
        assert_eq!(
            paths.iter().filter(|c| **c == "cross drop-mark").count(),
            dropped
        );
        assert_eq!(
            lines.iter().filter(|c| c.ends_with(" drop")).count(),
            dropped
        );
        assert_eq!(
            paths.iter().filter(|c| **c == "cross lost-mark").count(),
            lost
        );
        assert_eq!(paths.iter().filter(|c| **c == "crash").count(), crashes);
        let rects = classes(&elems, "rect");
        assert_eq!(rects.contains(&"band leader"), led);
        assert!(!classes(&elems, "line").contains(&"violation"));
        (delivered, dropped, crashes, led)
    };
    let (delivered, dropped, crashes, led) = check(MAX_CHART_EVENTS);
    // The run had what the chart is meant to show.
    assert!(
        delivered > 20 && dropped > 0 && crashes > 0 && led,
        "delivered={delivered} dropped={dropped} crashes={crashes} led={led}"
    );
    let (short, ..) = check(200);
    assert!(short > 0 && short < delivered);
}

/// A run that ends in a violation is charted up to it: the window is the last events, and
/// the violation is drawn once.
#[test]
fn chart_ends_at_the_violation() {
    let breach = |seed| {
        let mut cfg = SimConfig::from_seed(seed, 2000);
        cfg.breach = Some(ContractBreach::SendBeforePersist);
        cfg.faults.crash_in_ready_ppm = 100_000;
        cfg.liveness = false;
        cfg
    };
    let seed = (0..300)
        .find(|&s| run_config(breach(s), 1, false).violation.is_some())
        .expect("a breach caught within 300 seeds");
    let r = run_config_charted(breach(seed), 1, false);
    let v = r.violation.expect("the same violation again");
    let log = r.chart.expect("a chart record");
    let opts = ChartOptions {
        max_events: 120,
        title: String::new(),
    };
    let w = log.window(&opts).expect("a window");
    let last = log.records().last().expect("records");
    assert!(matches!(last.what, ChartEvent::Violation { .. }));
    assert_eq!(w.last_event, last.event);
    assert_eq!(w.last_event - w.first_event + 1, 120);
    let svg = log.svg(&opts);
    let elems = svg_elements(&svg);
    assert_eq!(
        classes(&elems, "line")
            .iter()
            .filter(|c| **c == "violation")
            .count(),
        1
    );
    let kind = format!("{:?}", v.kind);
    assert!(svg.contains(&format!("VIOLATION at event {}: {kind}", last.event)));
}

/// Lease-based reads: the schedule where the lease fails, a leader's clock standing still
/// while the followers' run on (the drift `docs/reads.md` rules out). Node 1 leads and holds
/// its lease; cut off, it does not tick, while node 3 ticks an election timeout and votes
/// for node 2, which commits and acknowledges a write; node 1 then answers a read from its
/// lease, below that write. Run as a configuration within the clock bound, that is a
/// violation; run as one beyond the bound, it is counted in `lease_stale` and the run passes.
#[test]
fn stale_lease_reads_beyond_the_bound_are_counted_apart() {
    let et = 6;
    let mut schedule = vec![Campaign(0), Settle, TickAll, Settle, Isolate(0)];
    schedule.extend(std::iter::repeat_n(Tick(2), et));
    schedule.extend([Campaign(1), Settle, Propose(1), Settle, Read(0), Process(0)]);

    let mut beyond = SimConfig::calm(7, 0);
    beyond.cluster.election_tick = et;
    beyond.cluster.check_quorum = true;
    beyond.cluster.read_only_option = ReadOnlyOption::LeaseBased;
    beyond.faults.tick_skew_pct = 30;
    assert_eq!(beyond.lease_within_bound(), Some(false));
    let r =
        check_schedule(&beyond, &schedule).unwrap_or_else(|(v, t)| panic!("{v}\n{}", t.join("\n")));
    assert_eq!(r.lease, Some(false));
    assert_eq!(
        r.lease_stale, 1,
        "the lease read below the acknowledged write is counted"
    );
    assert!(
        r.lease_quick >= 1,
        "answered from the lease, without a round trip"
    );

    let mut within = beyond.clone();
    within.within_lease_bound();
    assert_eq!(within.lease_within_bound(), Some(true));
    let (v, _) = check_schedule(&within, &schedule).expect_err("a stale read within the bound");
    assert_eq!(v.kind, ViolationKind::StaleRead);

    // In safe mode the same schedule releases no stale read: node 1 cannot confirm it.
    let mut safe = beyond.clone();
    safe.cluster.read_only_option = ReadOnlyOption::Safe;
    let r = check_schedule(&safe, &schedule).unwrap_or_else(|(v, _)| panic!("{v}"));
    assert_eq!((r.lease, r.lease_stale), (None, 0));
}

/// Seeds draw lease-based reads within the clock bound (checked like safe reads) and beyond
/// it; both kinds release reads, most of them answered from the lease, and the runs within
/// the bound pass.
#[test]
fn lease_reads_within_the_bound_are_linearizable() {
    let (mut within, mut beyond, mut quick, mut reads) = (0, 0, 0, 0);
    for seed in 0..120 {
        let cfg = SimConfig::from_seed(seed, 1500);
        match cfg.lease_within_bound() {
            Some(true) => {
                assert!(cfg.cluster.check_quorum);
                within += 1;
                let r = run_config(cfg, 60, false);
                assert!(
                    r.violation.is_none(),
                    "seed {seed}: {:?}\n{}",
                    r.violation,
                    r.trace_tail.join("\n")
                );
                assert_eq!(r.lease, Some(true));
                reads += r.lease_reads;
                quick += r.lease_quick;
            }
            Some(false) => beyond += 1,
            None => {}
        }
    }
    assert!(
        within >= 5 && beyond >= 2,
        "within={within} beyond={beyond}"
    );
    assert!(quick > 0 && quick <= reads, "quick={quick} reads={reads}");
}

/// Regression: seed 5016096 removed node 2, stopped it for good, then applied a joint
/// configuration (proposed before the removal applied) that adds it back as a voter, and the
/// heal found no quorum. A removed node is now stopped only when no member's log holds a conf
/// change adding it back.
#[test]
fn a_node_added_back_is_not_stopped() {
    let r = run_seed(5_016_096, 2000);
    assert!(r.violation.is_none(), "{:?}", r.violation);
    assert!(r.liveness.is_none(), "{:?}", r.liveness);
}
