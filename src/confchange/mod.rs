//! Configuration changes: computing the configuration that results from a change (simple, or
//! entering and leaving a joint configuration), rebuilding one from a ConfState, and checking
//! a ConfState that came from the network.

mod changer;
mod invariants;
mod restore;
mod validate;

pub use changer::Changer;
pub use restore::restore;
pub use validate::validate_conf_state;

use crate::raftpb::{ConfChangeSingle, ConfChangeType};
use std::fmt::Write as _;

/// The changes as etcd prints them: `ConfChangeAddNode(1) ConfChangeRemoveNode(2)`, ids in
/// decimal; an unknown change type prints as its number.
pub fn describe(ccs: &[ConfChangeSingle]) -> String {
    let mut out = String::new();
    for cc in ccs {
        if !out.is_empty() {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = match ConfChangeType::try_from(cc.r#type) {
            Ok(t) => write!(out, "{}({})", t.as_str_name(), cc.node_id),
            Err(_) => write!(out, "{}({})", cc.r#type, cc.node_id),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_changes() {
        let ccs = [
            ConfChangeSingle {
                r#type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: 1,
            },
            ConfChangeSingle {
                r#type: ConfChangeType::ConfChangeRemoveNode as i32,
                node_id: 2,
            },
            ConfChangeSingle {
                r#type: 9,
                node_id: 12,
            },
        ];
        assert_eq!(
            describe(&ccs),
            "ConfChangeAddNode(1) ConfChangeRemoveNode(2) 9(12)"
        );
        assert_eq!(describe(&[]), "");
    }
}
