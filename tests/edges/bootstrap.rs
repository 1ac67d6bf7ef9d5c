//! `RawNode::bootstrap`: a group started from empty storage with one ConfChange entry per
//! peer, committed at term 1.

use bytes::Bytes;
use raftcore::raftpb::{ConfChange, ConfChangeType, EntryType};
use raftcore::testkit::Persist;
use raftcore::{Config, Error, MemStorage, Peer, RawNode, StateRole};

fn peers(ids: &[u64]) -> Vec<Peer> {
    ids.iter()
        .map(|&id| Peer {
            id,
            context: Bytes::from(format!("ctx{id}")),
        })
        .collect()
}

fn node(id: u64) -> RawNode<MemStorage> {
    let mut c = Config::new(id);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.max_size_per_msg = 1 << 20;
    RawNode::new(&c, MemStorage::new()).unwrap()
}

#[test]
fn bootstrap_commits_one_conf_change_per_peer() {
    let mut n = node(1);
    n.bootstrap(&peers(&[1, 2, 3])).unwrap();
    assert_eq!(n.conf_state().voters, vec![1, 2, 3]);
    assert_eq!(n.term(), 1);
    assert_eq!(n.commit(), 3);
    assert_eq!(n.last_index(), 3);
    let mut rd = n.ready();
    let hs = rd
        .hard_state
        .expect("the first Ready carries the HardState");
    assert_eq!((hs.term, hs.commit), (1, 3));
    assert_eq!(rd.entries.len(), 3);
    assert_eq!(rd.committed_entries.len(), 3);
    for (i, e) in rd.committed_entries.iter().enumerate() {
        assert_eq!(e.entry_type(), EntryType::EntryConfChange);
        assert_eq!((e.index, e.term), (i as u64 + 1, 1));
        let cc: ConfChange = prost::Message::decode(&e.data[..]).unwrap();
        assert_eq!(cc.r#type, ConfChangeType::ConfChangeAddNode as i32);
        assert_eq!(cc.node_id, i as u64 + 1);
        assert_eq!(cc.context, Bytes::from(format!("ctx{}", i + 1)));
    }
    Persist::take_from_ready(&mut rd)
        .write(n.store_mut())
        .unwrap();
    n.advance().unwrap();
    // A bootstrapped single voter elects itself.
    let mut solo = node(7);
    solo.bootstrap(&peers(&[7])).unwrap();
    let handle = |n: &mut RawNode<MemStorage>| {
        while n.has_ready() {
            let mut rd = n.ready();
            Persist::take_from_ready(&mut rd)
                .write(n.store_mut())
                .unwrap();
            n.advance().unwrap();
        }
    };
    // A node with configuration changes committed and not applied does not campaign.
    solo.campaign().unwrap();
    assert_eq!(solo.role(), StateRole::Follower);
    assert_eq!(solo.term(), 1);
    // Once the bootstrap entries are applied, it does.
    handle(&mut solo);
    assert_eq!(solo.applied(), 1);
    solo.campaign().unwrap();
    handle(&mut solo);
    assert_eq!(solo.role(), StateRole::Leader);
    assert_eq!(solo.term(), 2);
}

#[test]
fn bootstrap_needs_peers_and_empty_storage() {
    assert!(matches!(
        node(1).bootstrap(&[]),
        Err(Error::ConfigInvalid(_))
    ));
    let mut n = node(1);
    n.bootstrap(&peers(&[1])).unwrap();
    let mut rd = n.ready();
    Persist::take_from_ready(&mut rd)
        .write(n.store_mut())
        .unwrap();
    n.advance().unwrap();
    assert!(matches!(
        n.bootstrap(&peers(&[1])),
        Err(Error::ConfigInvalid(_))
    ));
}
