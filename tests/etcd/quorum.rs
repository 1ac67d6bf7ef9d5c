//! The quorum suite's handler (etcd's `quorum/datadriven_test.go`).
//!
//! `committed cfg=(ids) [cfgj=(ids)|cfgj=zero] idx=(n|_,...)` prints the bar chart of the
//! acknowledged indexes and the committed index; `vote cfg=(..) [cfgj=..] votes=(y|n|_,...)`
//! prints the election result. Values are given per voter in order of first appearance
//! across `cfg` then `cfgj`. `cfgj` (even `zero`, an empty half) makes the config joint.
//!
//! Each result is cross-checked against alternative computations (swapped halves, joining
//! with an empty or the same config, a brute-force count, monotonicity under changed acks or
//! votes); a disagreement prints `<value> <-- via <check>` before the result, a line no golden
//! file contains.

use super::datadriven::TestData;
use raftcore::quorum::{DisplayIndex, JointConfig, MajorityConfig, VoteResult};
use std::fmt::Write as _;

pub fn new_handler() -> crate::Handler {
    Box::new(|td: &TestData| match run(td) {
        Ok(out) => out,
        Err(e) => format!("error: {e}\n"),
    })
}

/// The parsed arguments of a case.
struct Case {
    cfg: MajorityConfig,
    /// The outgoing half, when the case is joint.
    cfgj: Option<MajorityConfig>,
    /// Voter ids in order of first appearance in `cfg` then `cfgj`.
    ids: Vec<u64>,
    idx: Vec<Option<u64>>,
    votes: Vec<Option<bool>>,
}

fn parse_ids(vals: &[String]) -> Result<Vec<u64>, String> {
    vals.iter()
        .map(|v| v.parse::<u64>().map_err(|e| format!("bad id {v:?}: {e}")))
        .collect()
}

fn parse(td: &TestData) -> Result<Case, String> {
    let mut case = Case {
        cfg: MajorityConfig::new(),
        cfgj: None,
        ids: vec![],
        idx: vec![],
        votes: vec![],
    };
    let push = |ids: &mut Vec<u64>, id: u64| {
        if !ids.contains(&id) {
            ids.push(id);
        }
    };
    for arg in &td.cmd_args {
        match arg.key.as_str() {
            "cfg" => {
                for id in parse_ids(&arg.vals)? {
                    case.cfg.insert(id);
                    push(&mut case.ids, id);
                }
            }
            "cfgj" => {
                let mut half = MajorityConfig::new();
                if arg.vals != ["zero"] {
                    for id in parse_ids(&arg.vals)? {
                        half.insert(id);
                    }
                }
                case.cfgj = Some(half);
            }
            "idx" => {
                for v in &arg.vals {
                    case.idx.push(match v.as_str() {
                        "_" => None,
                        _ => match v.parse::<u64>() {
                            Ok(0) => return Err("use '_' as index for an unknown ack".into()),
                            Ok(n) => Some(n),
                            Err(e) => return Err(format!("bad index {v:?}: {e}")),
                        },
                    });
                }
            }
            "votes" => {
                for v in &arg.vals {
                    case.votes.push(match v.as_str() {
                        "y" => Some(true),
                        "n" => Some(false),
                        "_" => None,
                        _ => return Err(format!("unknown vote: {v}")),
                    });
                }
            }
            other => return Err(format!("unknown arg {other}")),
        }
    }
    // The outgoing half's ids come after all of cfg's, whatever the argument order.
    if let Some(half) = &case.cfgj {
        for id in half.iter() {
            push(&mut case.ids, id);
        }
    }
    Ok(case)
}

/// Pairs each voter with its value, checking that there is one value per voter.
fn lookup<T: Copy>(ids: &[u64], vals: &[Option<T>]) -> Result<Vec<(u64, Option<T>)>, String> {
    if ids.len() != vals.len() {
        return Err(format!(
            "mismatched input (explicit or _) for voters {ids:?}: {} values",
            vals.len()
        ));
    }
    Ok(ids.iter().copied().zip(vals.iter().copied()).collect())
}

fn get<T: Copy>(table: &[(u64, Option<T>)], id: u64) -> Option<T> {
    table.iter().find(|e| e.0 == id).and_then(|e| e.1)
}

fn run(td: &TestData) -> Result<String, String> {
    let case = parse(td)?;
    match td.cmd.as_str() {
        "committed" => committed(&case),
        "vote" => vote(&case),
        other => Err(format!("unknown command: {other}")),
    }
}

fn committed(case: &Case) -> Result<String, String> {
    let acks = lookup(&case.ids, &case.idx)?;
    let l = |id: u64| get(&acks, id);
    let mut out = String::new();
    let mut checks = String::new();
    let mut differs = |got: u64, via: &str, want: u64| {
        if got != want {
            let _ = writeln!(checks, "{} <-- via {via}", DisplayIndex(got));
        }
    };

    let joint = case
        .cfgj
        .as_ref()
        .map(|half| JointConfig::new(case.cfg.clone(), half.clone()));
    let idx = match &joint {
        Some(j) => {
            out.push_str(&j.describe(&l));
            let idx = j.committed_index(&l);
            let swapped = JointConfig::new(j.outgoing.clone(), j.incoming.clone());
            differs(swapped.committed_index(&l), "symmetry", idx);
            idx
        }
        None => {
            let c = &case.cfg;
            out.push_str(&c.describe(&l));
            let idx = c.committed_index(&l);
            let zero = MajorityConfig::new();
            let with_zero = JointConfig::new(c.clone(), zero.clone());
            differs(with_zero.committed_index(&l), "zero-joint quorum", idx);
            let zero_first = JointConfig::new(zero, c.clone());
            differs(
                zero_first.committed_index(&l),
                "zero-joint quorum (swapped)",
                idx,
            );
            let with_self = JointConfig::new(c.clone(), c.clone());
            differs(with_self.committed_index(&l), "self-joint quorum", idx);
            idx
        }
    };
    let halves = [Some(&case.cfg), case.cfgj.as_ref()];
    let brute = halves
        .iter()
        .flatten()
        .map(|h| brute_force_committed(h, &l))
        .min()
        .unwrap_or(u64::MAX);
    differs(brute, "brute force", idx);

    // Changing one voter's ack: raising it never lowers the committed index, and lowering an
    // ack that is above the committed index down to it leaves the committed index alone.
    let eval = |overlay: &dyn Fn(u64) -> Option<u64>| match &joint {
        Some(j) => j.committed_index(&overlay),
        None => case.cfg.committed_index(&overlay),
    };
    for &id in &case.ids {
        let cur = l(id);
        let raised = cur.unwrap_or(0).saturating_add(1);
        let got = eval(&|v| if v == id { Some(raised) } else { l(v) });
        if got < idx {
            differs(got, &format!("raising the ack of {id}"), idx);
        }
        if cur.is_some_and(|a| a > idx) {
            let got = eval(&|v| if v == id { Some(idx) } else { l(v) });
            differs(
                got,
                &format!("lowering the ack of {id} to the committed index"),
                idx,
            );
        }
    }

    out.push_str(&checks);
    let _ = writeln!(out, "{}", DisplayIndex(idx));
    Ok(out)
}

/// The largest index that at least a majority of `c` has acknowledged, by counting.
fn brute_force_committed(c: &MajorityConfig, l: &impl Fn(u64) -> Option<u64>) -> u64 {
    if c.is_empty() {
        return u64::MAX;
    }
    let acks: Vec<u64> = c.iter().map(|id| l(id).unwrap_or(0)).collect();
    acks.iter()
        .copied()
        .filter(|&x| acks.iter().filter(|&&a| a >= x).count() * 2 > acks.len())
        .max()
        .unwrap_or(0)
}

fn vote(case: &Case) -> Result<String, String> {
    let votes = lookup(&case.ids, &case.votes)?;
    let v = |id: u64| get(&votes, id);
    let mut checks = String::new();
    let mut differs = |got: VoteResult, via: &str, want: VoteResult| {
        if got != want {
            let _ = writeln!(checks, "{got} <-- via {via}");
        }
    };

    let joint = case
        .cfgj
        .as_ref()
        .map(|half| JointConfig::new(case.cfg.clone(), half.clone()));
    let eval = |f: &dyn Fn(u64) -> Option<bool>| match &joint {
        Some(j) => j.vote_result(&f),
        None => case.cfg.vote_result(&f),
    };
    let r = eval(&v);
    match &joint {
        Some(j) => {
            let swapped = JointConfig::new(j.outgoing.clone(), j.incoming.clone());
            differs(swapped.vote_result(&v), "symmetry", r);
        }
        None => {
            let c = &case.cfg;
            let zero = MajorityConfig::new();
            let with_zero = JointConfig::new(c.clone(), zero.clone());
            differs(with_zero.vote_result(&v), "zero-joint quorum", r);
            let zero_first = JointConfig::new(zero, c.clone());
            differs(zero_first.vote_result(&v), "zero-joint quorum (swapped)", r);
            let with_self = JointConfig::new(c.clone(), c.clone());
            differs(with_self.vote_result(&v), "self-joint quorum", r);
        }
    }
    let halves: Vec<VoteResult> = [Some(&case.cfg), case.cfgj.as_ref()]
        .iter()
        .flatten()
        .map(|h| brute_force_vote(h, &v))
        .collect();
    let brute = if halves.contains(&VoteResult::Lost) {
        VoteResult::Lost
    } else if halves.iter().all(|&h| h == VoteResult::Won) {
        VoteResult::Won
    } else {
        VoteResult::Pending
    };
    differs(brute, "brute force", r);

    // A pending election is one the missing votes can still decide either way; a decided one
    // stays decided whatever they are.
    let all_yes = eval(&|id| Some(v(id).unwrap_or(true)));
    let all_no = eval(&|id| Some(v(id).unwrap_or(false)));
    let (want_yes, want_no) = match r {
        VoteResult::Pending => (VoteResult::Won, VoteResult::Lost),
        decided => (decided, decided),
    };
    differs(all_yes, "granting the missing votes", want_yes);
    differs(all_no, "rejecting the missing votes", want_no);

    Ok(format!("{checks}{r}\n"))
}

/// The election result of one majority, by counting against the quorum size.
fn brute_force_vote(c: &MajorityConfig, v: &impl Fn(u64) -> Option<bool>) -> VoteResult {
    let n = c.len();
    if n == 0 {
        return VoteResult::Won;
    }
    let yes = c.iter().filter(|&id| v(id) == Some(true)).count();
    let no = c.iter().filter(|&id| v(id) == Some(false)).count();
    let quorum = n / 2 + 1;
    if yes >= quorum {
        VoteResult::Won
    } else if no > n - quorum {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}
