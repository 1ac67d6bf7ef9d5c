//! `RawNode`'s read-only views (log bounds and terms, status) after several elections, and
//! building nodes over a shared config.

use crate::common::{config, Cluster};
use raftcore::{AppendMode, Config, Error, RawNode, StateRole};
use std::sync::Arc;

#[test]
fn log_views_after_elections_in_later_terms() {
    let mut c = Cluster::new(3, AppendMode::Batched);
    c.campaign(1);
    c.propose(1, "a").unwrap();
    c.stabilize();
    c.campaign(2);
    c.campaign(3);
    c.propose(3, "b").unwrap();
    c.stabilize();
    assert_eq!(c.leader(), Some(3));
    for id in 1..=3 {
        let n = c.node(id);
        let t = n.term();
        assert_eq!(t, 3, "three elections, one term each");
        // The log: the snapshot at 1, then one empty entry per leader and the proposals.
        assert_eq!(n.first_index(), 2);
        assert_eq!(n.last_index(), 6);
        assert_eq!(n.last_term(), 3);
        assert_eq!(n.term_at(6).unwrap(), 3);
        assert_eq!(n.term_at(4).unwrap(), 2);
        assert_eq!(n.term_at(3).unwrap(), 1);
        assert_eq!(n.commit(), 6);
        assert_eq!(n.applied(), 6);
        assert_eq!(n.leader_id(), 3);
        assert_eq!(n.id(), id);
        assert_eq!(n.basic_status().hard_state.term, 3);
        assert_eq!(n.basic_status().soft_state.leader_id, 3);
        let want = if id == 3 {
            StateRole::Leader
        } else {
            StateRole::Follower
        };
        assert_eq!(n.role(), want);
        assert_eq!(n.conf_state().voters, vec![1, 2, 3]);
    }
    // Only a leader reports progress.
    assert_eq!(c.node(3).status().progress.len(), 3);
    assert!(c.node(1).status().progress.is_empty());
    assert_eq!(c.node(3).progress().count(), 3);
}

fn shared(cfg: &Config) -> Arc<Config> {
    Arc::new(cfg.validated().unwrap())
}

#[test]
fn nodes_over_one_shared_config() {
    let mut base = config(1, AppendMode::Batched);
    base.max_committed_size_per_ready = 0;
    let cfg = shared(&base);
    assert_eq!(cfg.max_committed_size_per_ready, cfg.max_size_per_msg);
    let nodes: Vec<_> = (1..=3)
        .map(|id| {
            RawNode::with_shared_config(
                id,
                0,
                cfg.clone(),
                crate::common::storage_with_voters(&[1, 2, 3], &[]),
            )
            .expect("a validated shared config")
        })
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.id(), i as u64 + 1, "the id argument, not the config's");
    }
    // A config that was not validated (its derived limit is not filled in) is refused.
    let raw = Arc::new(base.clone());
    assert!(matches!(
        RawNode::with_shared_config(
            2,
            0,
            raw,
            crate::common::storage_with_voters(&[1, 2, 3], &[])
        ),
        Err(Error::ConfigInvalid(_))
    ));
    // An invalid one too, whatever the id.
    let mut bad = (*cfg).clone();
    bad.heartbeat_tick = 0;
    assert!(RawNode::with_shared_config(
        2,
        0,
        Arc::new(bad),
        crate::common::storage_with_voters(&[1, 2, 3], &[])
    )
    .is_err());
}

#[test]
fn ready_is_empty_only_when_it_asks_nothing() {
    use raftcore::raftpb::{HardState, Message};
    use raftcore::Ready;
    assert!(Ready::default().is_empty());
    type Set = fn(&mut Ready);
    let each: [Set; 8] = [
        |r| r.soft_state = Some(Default::default()),
        |r| r.hard_state = Some(HardState::default()),
        |r| r.read_states = vec![Default::default()],
        |r| r.entries = vec![Default::default()],
        |r| r.snapshot = Some(Default::default()),
        |r| r.committed_entries = vec![Default::default()],
        |r| r.messages = vec![Message::default()],
        |r| r.persisted_messages = vec![Message::default()],
    ];
    for (i, set) in each.iter().enumerate() {
        let mut r = Ready::default();
        set(&mut r);
        assert!(!r.is_empty(), "field {i}");
    }
    // must_sync alone asks nothing.
    let mut r = Ready::default();
    r.must_sync = true;
    assert!(r.is_empty());
}
