//! Replays the fuzz corpora as ordinary tests, so that every input the fuzzer kept (and every
//! crash once fixed) runs in CI without cargo-fuzz.
//!
//! `seed_corpus_is_current` checks that the hand-written seeds of `step_message` are in its
//! corpus; `WRITE_SEED_CORPUS=1 cargo test --test fuzz_corpus` rewrites them.

// Each target's logic includes the shared harness itself (the fuzz targets are separate
// crates); here several targets live in one crate.
#![allow(clippy::duplicate_mod)]

#[path = "fuzz_logic/api_sequence.rs"]
mod api_sequence;
#[path = "fuzz_logic/roundtrip.rs"]
mod roundtrip;
#[path = "fuzz_logic/step_message.rs"]
mod step_message;

use std::path::{Path, PathBuf};

mod common;
use common::msg;

use bytes::Bytes;
use raftcore::raftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message, MessageType, Snapshot,
    SnapshotMetadata,
};
use step_message::harness::Setup;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs `f` on every file of the target's corpus; a panic names the file.
fn replay(target: &str, f: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    let mut failed = Vec::new();
    for p in &files {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            failed.push(p.display().to_string());
        }
    }
    eprintln!("{target}: replayed {} inputs", files.len());
    assert!(
        failed.is_empty(),
        "{target}: failing corpus inputs:\n{}",
        failed.join("\n")
    );
}

#[test]
fn step_message_corpus() {
    replay("step_message", step_message::run);
}

#[test]
fn api_sequence_corpus() {
    replay("api_sequence", api_sequence::run);
}

#[test]
fn roundtrip_corpus() {
    replay("roundtrip", roundtrip::run);
}

fn entry(term: u64, index: u64, data: &'static [u8]) -> Entry {
    Entry {
        r#type: EntryType::EntryNormal as i32,
        term,
        index,
        data: Bytes::from_static(data),
    }
}

fn snapshot(index: u64, term: u64, cs: ConfState) -> Option<Snapshot> {
    Some(Snapshot {
        data: Bytes::from_static(b"state"),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(cs),
            index,
            term,
        }),
    })
}

fn voters(v: &[u64]) -> ConfState {
    ConfState {
        voters: v.to_vec(),
        ..Default::default()
    }
}

/// Control bytes: the target node (see step_message's docs).
const LEADER: u8 = 0;
const FOLLOWER: u8 = 1;
const CANDIDATE: u8 = 2;
const DELIVER: u8 = 16;
const KEEP_TO: u8 = 4;

/// A named seed: the set-up and the messages with their control bytes.
type Seed = (&'static str, Setup, Vec<(u8, Message)>);

/// The seed inputs: after set-up node 1 leads term 2 with entries 2..=4 committed, node 2
/// follows, node 3 campaigns in term 3 (term 2 with pre-vote).
fn seeds() -> Vec<Seed> {
    use MessageType::*;
    let plain = Setup::default();
    let prevote = Setup {
        pre_vote: true,
        check_quorum: true,
        ..Default::default()
    };
    let handed_over = Setup {
        hand_over: true,
        ..Default::default()
    };
    let exact_inflight = Setup {
        etcd_exact: true,
        inflight: true,
        ..Default::default()
    };
    let app = Message {
        log_term: 2,
        index: 4,
        commit: 4,
        entries: vec![entry(2, 5, b"x"), entry(2, 6, b"y")],
        ..msg(MsgApp, 1, 2, 2)
    };
    let remove3 = ConfChange {
        r#type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: 3,
        ..Default::default()
    };
    let cc_entry = Entry {
        r#type: EntryType::EntryConfChange as i32,
        term: 2,
        index: 5,
        data: Bytes::from(prost::Message::encode_to_vec(&remove3)),
    };
    vec![
        // Honest messages of each type.
        ("honest_app", plain, vec![(FOLLOWER, app.clone())]),
        (
            "honest_app_handed_over",
            handed_over,
            vec![(FOLLOWER, app.clone())],
        ),
        (
            "honest_app_resp",
            exact_inflight,
            vec![(
                LEADER,
                Message {
                    index: 5,
                    ..msg(MsgAppResp, 2, 1, 2)
                },
            )],
        ),
        (
            "honest_heartbeat",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    commit: 4,
                    ..msg(MsgHeartbeat, 1, 2, 2)
                },
            )],
        ),
        (
            "honest_heartbeat_resp",
            plain,
            vec![(LEADER, msg(MsgHeartbeatResp, 2, 1, 2))],
        ),
        (
            "honest_vote",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    log_term: 2,
                    index: 4,
                    ..msg(MsgVote, 3, 2, 3)
                },
            )],
        ),
        (
            "honest_vote_resp_wins",
            plain,
            vec![
                (CANDIDATE, msg(MsgVoteResp, 2, 3, 3)),
                (CANDIDATE | DELIVER, msg(MsgVoteResp, 1, 3, 3)),
            ],
        ),
        (
            "honest_prevote",
            prevote,
            vec![(
                FOLLOWER,
                Message {
                    log_term: 2,
                    index: 4,
                    ..msg(MsgPreVote, 3, 2, 3)
                },
            )],
        ),
        (
            "honest_prevote_resp",
            prevote,
            vec![(CANDIDATE, msg(MsgPreVoteResp, 2, 3, 3))],
        ),
        (
            "honest_snap",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    snapshot: snapshot(10, 2, voters(&[1, 2, 3])),
                    ..msg(MsgSnap, 1, 2, 2)
                },
            )],
        ),
        (
            "honest_prop_forwarded",
            plain,
            vec![(
                LEADER,
                Message {
                    entries: vec![entry(0, 0, b"fwd")],
                    ..msg(MsgProp, 2, 1, 0)
                },
            )],
        ),
        (
            "honest_read_index",
            plain,
            vec![(
                LEADER | DELIVER,
                Message {
                    entries: vec![entry(0, 0, b"ctx")],
                    ..msg(MsgReadIndex, 2, 1, 0)
                },
            )],
        ),
        (
            "honest_read_index_resp",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    index: 4,
                    entries: vec![entry(0, 0, b"ctx")],
                    ..msg(MsgReadIndexResp, 1, 2, 2)
                },
            )],
        ),
        (
            "honest_transfer_leader",
            plain,
            vec![(LEADER | DELIVER, msg(MsgTransferLeader, 2, 1, 2))],
        ),
        (
            "honest_timeout_now",
            plain,
            vec![(FOLLOWER | DELIVER, msg(MsgTimeoutNow, 1, 2, 2))],
        ),
        (
            "honest_conf_change_committed",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    log_term: 2,
                    index: 4,
                    commit: 5,
                    entries: vec![cc_entry],
                    ..msg(MsgApp, 1, 2, 2)
                },
            )],
        ),
        // Hostile ones (see HOSTILE-INPUT.md).
        (
            "hostile_term0_heartbeat",
            plain,
            vec![(CANDIDATE, msg(MsgHeartbeat, 1, 3, 0))],
        ),
        (
            "hostile_max_term_vote",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    log_term: u64::MAX,
                    index: u64::MAX,
                    ..msg(MsgVote, 3, 2, u64::MAX)
                },
            )],
        ),
        (
            "hostile_edge_term_app",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    log_term: 2,
                    index: 4,
                    commit: u64::MAX / 4,
                    entries: vec![entry(u64::MAX / 4, 5, b"z")],
                    ..msg(MsgApp, 1, 2, u64::MAX / 4)
                },
            )],
        ),
        (
            "hostile_commit_past_log",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    commit: 1000,
                    ..msg(MsgHeartbeat, 1, 2, 2)
                },
            )],
        ),
        (
            "hostile_entries_not_consecutive",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    log_term: 2,
                    index: 4,
                    commit: 9,
                    entries: vec![entry(2, 5, b"a"), entry(1, 9, b"b"), entry(2, 0, b"c")],
                    ..msg(MsgApp, 1, 2, 2)
                },
            )],
        ),
        (
            "hostile_snapshot_confstate",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    snapshot: snapshot(
                        20,
                        3,
                        ConfState {
                            voters: vec![0, 2, 2],
                            learners: vec![2],
                            auto_leave: true,
                            ..Default::default()
                        },
                    ),
                    ..msg(MsgSnap, 1, 2, 3)
                },
            )],
        ),
        (
            "hostile_snapshot_sole_voter",
            plain,
            vec![(
                FOLLOWER,
                Message {
                    snapshot: snapshot(u64::MAX / 4, 3, voters(&[2])),
                    ..msg(MsgSnap, 1, 2, 3)
                },
            )],
        ),
        (
            "hostile_ack_past_log",
            plain,
            vec![(
                LEADER,
                Message {
                    index: 1000,
                    ..msg(MsgAppResp, 2, 1, 2)
                },
            )],
        ),
        (
            "hostile_prop_with_term_no_entries",
            plain,
            vec![
                (FOLLOWER, msg(MsgProp, 3, 2, 7)),
                (LEADER, msg(MsgReadIndex, 2, 1, 5)),
            ],
        ),
        (
            "hostile_local_types",
            plain,
            vec![
                (FOLLOWER, msg(MsgHup, 1, 2, 2)),
                (LEADER, msg(MsgStorageAppendResp, u64::MAX, 1, 2)),
                (
                    LEADER,
                    Message {
                        index: 1000,
                        ..msg(MsgAppResp, 1, 1, 2)
                    },
                ),
            ],
        ),
        (
            "hostile_stranger_and_misrouted",
            plain,
            vec![
                (LEADER, msg(MsgHeartbeatResp, 9, 1, 2)),
                (FOLLOWER | KEEP_TO, msg(MsgApp, 1, 3, 2)),
            ],
        ),
    ]
}

/// The hand-written seeds of `step_message` are in its corpus, byte for byte. With
/// `WRITE_SEED_CORPUS=1` the test writes them instead (after a change of the input format).
#[test]
fn seed_corpus_is_current() {
    let dir = corpus_dir("step_message");
    let write = std::env::var_os("WRITE_SEED_CORPUS").is_some();
    let mut files: Vec<(String, Vec<u8>)> = seeds()
        .into_iter()
        .map(|(name, setup, msgs)| {
            (
                format!("seed_{name}"),
                step_message::encode_input(setup, &msgs),
            )
        })
        .collect();
    // Two inputs of the field-by-field form.
    files.push((
        "seed_structured_a".into(),
        vec![0u8, 0x01, 0x03, 0x02, 2, 2, 3, 2, 0x01, 2, 1, 2, 0x61, 2],
    ));
    files.push((
        "seed_structured_b".into(),
        vec![
            0x1fu8, 0x32, 0x07, 0x01, 0x02, 2, 2, 2, 0x02, 4, 3, 0x01, 0x02, 0x03, 0, 2, 2,
        ],
    ));
    for (name, data) in files {
        let path = dir.join(&name);
        if write {
            std::fs::create_dir_all(&dir).expect("create the corpus directory");
            std::fs::write(&path, &data).expect("write a seed");
        } else {
            let have = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (WRITE_SEED_CORPUS=1 writes it)", path.display())
            });
            assert_eq!(
                have,
                data,
                "{} is stale (WRITE_SEED_CORPUS=1 rewrites it)",
                path.display()
            );
        }
    }
}

/// The harness itself: every set-up reaches its roles, and the untouched group commits.
#[test]
fn harness_sets_up_every_role() {
    use raftcore::StateRole;
    for b in 0..128u8 {
        let setup = Setup::from_byte(b);
        let mut c = step_message::harness::Cluster::new(setup);
        assert_eq!(c.node(1).role(), StateRole::Leader);
        assert_eq!(c.node(2).role(), StateRole::Follower);
        let want = match (setup.no_candidate, setup.pre_vote) {
            (true, _) => StateRole::Follower,
            (false, true) => StateRole::PreCandidate,
            (false, false) => StateRole::Candidate,
        };
        assert_eq!(c.node(3).role(), want, "{setup:?}");
        c.check_liveness();
        assert!(
            c.nodes.iter().filter(|n| !n.probes.is_empty()).count() >= 2,
            "{setup:?}\n{}",
            c.describe()
        );
    }
}
