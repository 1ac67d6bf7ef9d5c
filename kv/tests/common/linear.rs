//! A linearizability checker for a key-value store, in the style of Wing & Gong with Lowe's
//! memoization (as Knossos and porcupine do): keys are independent registers, so each key's
//! history is checked on its own.
//!
//! An operation whose outcome is unknown (a timeout, a lost connection) never returned: its
//! return time is infinite, so it may take effect at any point after its call, or (by being
//! ordered last) never be observed.

use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Put or delete (`None`): the register becomes this.
    Write(Option<String>),
    /// A read that observed this.
    Read(Option<String>),
}

#[derive(Debug, Clone)]
pub struct Op {
    pub key: String,
    pub kind: OpKind,
    /// Invocation time (any monotonic unit).
    pub call: u64,
    /// Completion time; `None` when the outcome is unknown.
    pub ret: Option<u64>,
}

/// Checks a whole history. `Err` names the first key whose history is not linearizable.
pub fn check(history: &[Op]) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        // A read whose outcome is unknown constrains nothing.
        if op.ret.is_none() && matches!(op.kind, OpKind::Read(_)) {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        if !check_register(&ops) {
            let mut text = String::new();
            for o in &ops {
                text.push_str(&format!("  {:?} [{} .. {:?}]\n", o.kind, o.call, o.ret));
            }
            return Err(format!(
                "history of key {key:?} is not linearizable ({} ops):\n{text}",
                ops.len()
            ));
        }
    }
    Ok(())
}

/// One register, starting absent.
fn check_register(ops: &[&Op]) -> bool {
    let n = ops.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| ops[i].call);
    let ret = |i: usize| ops[i].ret.unwrap_or(u64::MAX);
    // Values interned to small ids: 0 = absent.
    let mut values: Vec<Option<String>> = vec![None];
    let mut id_of = |v: &Option<String>| -> u32 {
        if let Some(p) = values.iter().position(|x| x == v) {
            p as u32
        } else {
            values.push(v.clone());
            (values.len() - 1) as u32
        }
    };
    let kinds: Vec<(bool, u32)> = ops
        .iter()
        .map(|o| match &o.kind {
            OpKind::Write(v) => (true, id_of(v)),
            OpKind::Read(v) => (false, id_of(v)),
        })
        .collect();
    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, u32)> = HashSet::new();
    // Depth-first search with an explicit stack of (chosen op, previous state).
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut state = 0u32;
    let mut count = 0;
    // Candidate cursor per depth: the position in `order` to try next.
    let mut cursor: Vec<usize> = vec![0];
    loop {
        if count == n {
            return true;
        }
        // The earliest return among pending ops bounds which ops may go next.
        let min_ret = order
            .iter()
            .filter(|&&i| done[i / 64] & (1 << (i % 64)) == 0)
            .map(|&i| ret(i))
            .min()
            .unwrap_or(u64::MAX);
        let depth_cursor = cursor.last_mut().expect("cursor");
        let mut advanced = false;
        while *depth_cursor < n {
            let i = order[*depth_cursor];
            *depth_cursor += 1;
            if done[i / 64] & (1 << (i % 64)) != 0 {
                continue;
            }
            if ops[i].call > min_ret {
                break;
            }
            let (is_write, v) = kinds[i];
            let next_state = if is_write {
                v
            } else if v == state {
                state
            } else {
                continue;
            };
            done[i / 64] |= 1 << (i % 64);
            if seen.insert((done.clone(), next_state)) {
                stack.push((i, state));
                state = next_state;
                count += 1;
                cursor.push(0);
                advanced = true;
                break;
            }
            done[i / 64] &= !(1 << (i % 64));
        }
        if !advanced {
            // Backtrack.
            cursor.pop();
            let Some((i, prev)) = stack.pop() else {
                return false;
            };
            done[i / 64] &= !(1 << (i % 64));
            state = prev;
            count -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str, v: Option<&str>, call: u64, ret: Option<u64>) -> Op {
        Op {
            key: key.into(),
            kind: OpKind::Write(v.map(String::from)),
            call,
            ret,
        }
    }

    fn r(key: &str, v: Option<&str>, call: u64, ret: u64) -> Op {
        Op {
            key: key.into(),
            kind: OpKind::Read(v.map(String::from)),
            call,
            ret: Some(ret),
        }
    }

    #[test]
    fn accepts_linearizable_and_rejects_stale_reads() {
        // Sequential: write a, read a.
        assert!(check(&[w("k", Some("a"), 0, Some(1)), r("k", Some("a"), 2, 3)]).is_ok());
        // A read after a completed write must not see the old value.
        assert!(check(&[
            w("k", Some("a"), 0, Some(1)),
            w("k", Some("b"), 2, Some(3)),
            r("k", Some("a"), 4, 5)
        ])
        .is_err());
        // Concurrent write: either value may be read.
        assert!(check(&[
            w("k", Some("a"), 0, Some(1)),
            w("k", Some("b"), 2, Some(10)),
            r("k", Some("a"), 3, 4),
            r("k", Some("b"), 5, 6)
        ])
        .is_ok());
        // ... but not back again once the new one was seen.
        assert!(check(&[
            w("k", Some("a"), 0, Some(1)),
            w("k", Some("b"), 2, Some(10)),
            r("k", Some("b"), 3, 4),
            r("k", Some("a"), 5, 6)
        ])
        .is_err());
        // An unknown write may take effect late, or never.
        assert!(check(&[
            w("k", Some("a"), 0, None),
            r("k", None, 1, 2),
            r("k", Some("a"), 3, 4)
        ])
        .is_ok());
        assert!(check(&[w("k", Some("a"), 0, None), r("k", None, 1, 2)]).is_ok());
        // A read of a value nobody wrote.
        assert!(check(&[r("k", Some("z"), 0, 1)]).is_err());
        // A delete.
        assert!(check(&[
            w("k", Some("a"), 0, Some(1)),
            w("k", None, 2, Some(3)),
            r("k", None, 4, 5)
        ])
        .is_ok());
    }
}
