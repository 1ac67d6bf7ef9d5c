//! Runs etcd-io/raft's datadriven scenario files (and raftcore's own, in `tests/testdata/`)
//! through raftcore's harnesses and compares the outputs.
//!
//! The etcd tree is found in `$ETCD_RAFT_TESTDATA`, else in `../shared/etcd-raft` beside the
//! checkout; without either, the etcd suites are reported as skipped. Files listed in
//! `tests/etcd-passing.txt` must pass; the others are only reported. raftcore's own files must
//! all pass. Runner flags (`--nocapture`, filters) are accepted and ignored.

mod etcd {
    pub mod confchange;
    pub mod datadriven;
    pub mod interaction;
    pub mod quorum;
}

use etcd::datadriven::{parse_file, TestData};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A per-file handler: gets each case in order, returns the output to compare.
pub type Handler = Box<dyn FnMut(&TestData) -> String>;

/// How outputs of a suite are compared.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// Whole output, byte for byte.
    Exact,
    /// Logger lines dropped on both sides; a lone `ok` counts as empty.
    SkipLogLines,
}

struct Suite {
    name: &'static str,
    dir: PathBuf,
    compare: Compare,
    new_handler: fn() -> Handler,
    /// Files that must pass (None: all must pass).
    must_pass: Option<Vec<String>>,
}

fn is_log_line(l: &str) -> bool {
    let t = l.trim_start();
    ["DEBUG ", "INFO ", "WARN ", "ERROR ", "FATAL "]
        .iter()
        .any(|p| t.starts_with(p))
}

fn normalize(s: &str, how: Compare) -> Vec<String> {
    match how {
        Compare::Exact => s.lines().map(str::to_string).collect(),
        Compare::SkipLogLines => {
            let v: Vec<String> = s
                .lines()
                .filter(|l| !is_log_line(l))
                .map(str::to_string)
                .collect();
            if v.len() == 1 && v[0] == "ok" {
                vec![]
            } else {
                v
            }
        }
    }
}

/// Runs one file; Ok(()) or the failure report.
fn run_file(path: &Path, suite: &Suite) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let cases = parse_file(&name, &text)?;
    let mut handler = (suite.new_handler)();
    for td in &cases {
        let got = catch_unwind(AssertUnwindSafe(|| handler(td))).map_err(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("{}: `{}` panicked: {msg}", td.pos, directive(td))
        })?;
        let mut got = got;
        if !got.is_empty() && !got.ends_with('\n') {
            got.push('\n');
        }
        let want = normalize(&td.expected, suite.compare);
        let have = normalize(&got, suite.compare);
        if want != have {
            let i = want
                .iter()
                .zip(have.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(have.len()));
            let w = want.get(i).map_or("<end of output>", |s| s.as_str());
            let h = have.get(i).map_or("<end of output>", |s| s.as_str());
            return Err(format!(
                "{}: `{}`: output line {} differs\n    want: {w}\n    got:  {h}\n--- full output ---\n{got}--- expected ---\n{}",
                td.pos,
                directive(td),
                i + 1,
                td.expected
            ));
        }
    }
    Ok(())
}

fn directive(td: &TestData) -> String {
    let mut s = td.cmd.clone();
    for a in &td.cmd_args {
        s.push(' ');
        s.push_str(&a.key);
        match a.vals.len() {
            0 => {}
            1 => {
                s.push('=');
                s.push_str(&a.vals[0]);
            }
            _ => {
                s.push_str("=(");
                s.push_str(&a.vals.join(", "));
                s.push(')');
            }
        }
    }
    s
}

fn etcd_root() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ETCD_RAFT_TESTDATA") {
        return Some(PathBuf::from(p));
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/etcd-raft");
    beside.is_dir().then_some(beside)
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pass_list: Vec<String> = std::fs::read_to_string(manifest.join("tests/etcd-passing.txt"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let listed = |suite: &str| -> Option<Vec<String>> {
        Some(
            pass_list
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{suite}/")).map(str::to_string))
                .collect(),
        )
    };

    let mut suites = Vec::new();
    match etcd_root() {
        Some(root) => {
            suites.push(Suite {
                name: "interaction",
                dir: root.join("testdata"),
                compare: Compare::SkipLogLines,
                new_handler: etcd::interaction::new_handler,
                must_pass: listed("interaction"),
            });
            suites.push(Suite {
                name: "quorum",
                dir: root.join("quorum/testdata"),
                compare: Compare::Exact,
                new_handler: etcd::quorum::new_handler,
                must_pass: listed("quorum"),
            });
            suites.push(Suite {
                name: "confchange",
                dir: root.join("confchange/testdata"),
                compare: Compare::Exact,
                new_handler: etcd::confchange::new_handler,
                must_pass: listed("confchange"),
            });
        }
        None => println!(
            "etcd suites skipped: set ETCD_RAFT_TESTDATA or put etcd-raft at ../shared/etcd-raft"
        ),
    }
    suites.push(Suite {
        name: "raftcore",
        dir: manifest.join("tests/testdata"),
        compare: Compare::SkipLogLines,
        new_handler: etcd::interaction::new_handler,
        must_pass: None,
    });

    let filter: Option<String> = std::env::var("ETCD_FILTER").ok();
    let mut required_failures = 0;
    let mut total_passed = 0;
    let mut total_failed = 0;
    for suite in &suites {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&suite.dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "txt"))
                .collect(),
            Err(_) => {
                println!(
                    "etcd {}: folder {} missing, skipped",
                    suite.name,
                    suite.dir.display()
                );
                continue;
            }
        };
        files.sort();
        let (mut passed, mut failed) = (0, 0);
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if filter
                .as_ref()
                .is_some_and(|flt| !name.contains(flt.as_str()))
            {
                continue;
            }
            let required = suite
                .must_pass
                .as_ref()
                .is_none_or(|l| l.iter().any(|n| n == &name));
            match run_file(f, suite) {
                Ok(()) => {
                    passed += 1;
                    println!("etcd {} {name}: pass", suite.name);
                }
                Err(report) => {
                    failed += 1;
                    if required {
                        required_failures += 1;
                        println!("etcd {} {name}: FAIL (on the pass list)", suite.name);
                        for l in report.lines() {
                            println!("    {l}");
                        }
                    } else {
                        println!("etcd {} {name}: FAIL", suite.name);
                        let short: Vec<&str> = report.lines().take(3).collect();
                        for l in short {
                            println!("    {l}");
                        }
                    }
                }
            }
        }
        println!("etcd {}: {passed} passed, {failed} failed", suite.name);
        total_passed += passed;
        total_failed += failed;
    }
    println!(
        "etcd total: {total_passed} passed, {total_failed} failed, {required_failures} required failures"
    );
    if required_failures > 0 {
        std::process::exit(1);
    }
}
