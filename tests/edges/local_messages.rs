//! `RawNode::step_local` takes only the storage responses it documents, each from its own
//! sender to this node; `RawNode::step` takes none of them.

use raftcore::raftpb::{Message, MessageType};
use raftcore::{Config, Error, MemStorage, RawNode, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD};

fn node() -> RawNode<MemStorage> {
    let mut c = Config::new(1);
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.async_storage_writes = true;
    let s = raftcore::testkit::storage_with_conf_state(raftcore::raftpb::ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    });
    RawNode::new(&c, s).unwrap()
}

fn m(t: MessageType, from: u64, to: u64) -> Message {
    Message {
        r#type: t as i32,
        from,
        to,
        ..Default::default()
    }
}

fn misuse(r: raftcore::Result<()>) -> bool {
    matches!(r, Err(Error::AsyncStorageMisuse(_)))
}

#[test]
fn storage_responses_only_from_their_thread_to_this_node() {
    let cases = [
        (MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD),
        (MessageType::MsgStorageApplyResp, LOCAL_APPLY_THREAD),
    ];
    for (t, thread) in cases {
        assert!(!misuse(node().step_local(m(t, thread, 1))), "{t:?}");
        assert!(
            misuse(node().step_local(m(t, thread, 2))),
            "{t:?} to another node"
        );
        assert!(misuse(node().step_local(m(t, 2, 1))), "{t:?} from a peer");
        let other = if thread == LOCAL_APPEND_THREAD {
            LOCAL_APPLY_THREAD
        } else {
            LOCAL_APPEND_THREAD
        };
        assert!(
            misuse(node().step_local(m(t, other, 1))),
            "{t:?} from the other thread"
        );
    }
}

#[test]
fn own_acknowledgements_only_from_and_to_this_node() {
    for t in [MessageType::MsgAppResp, MessageType::MsgVoteResp] {
        let mut n = node();
        n.campaign().unwrap();
        let term = n.term();
        let mut ack = m(t, 1, 1);
        ack.term = term;
        assert!(!misuse(n.step_local(ack.clone())), "{t:?}");
        let mut from_peer = ack.clone();
        from_peer.from = 2;
        assert!(misuse(node().step_local(from_peer)), "{t:?} from a peer");
        let mut to_peer = ack;
        to_peer.to = 2;
        assert!(misuse(node().step_local(to_peer)), "{t:?} to a peer");
    }
    // Messages that never come back from storage.
    for t in [
        MessageType::MsgHeartbeat,
        MessageType::MsgApp,
        MessageType::MsgHup,
    ] {
        assert!(misuse(node().step_local(m(t, 1, 1))), "{t:?}");
    }
}

#[test]
fn step_refuses_storage_responses() {
    for (t, from) in [
        (MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD),
        (MessageType::MsgStorageApplyResp, LOCAL_APPLY_THREAD),
    ] {
        assert!(matches!(
            node().step(m(t, from, 1)),
            Err(Error::StepLocalMsg)
        ));
    }
}
