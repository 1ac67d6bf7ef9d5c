//! Fuzz logic: encode/decode round trips of every raftpb message, and the text helpers on
//! whatever decodes. Shared by `fuzz/fuzz_targets/roundtrip.rs` and `tests/fuzz_corpus.rs`.

use prost::Message as _;
use raftcore::describe::{describe_entry, describe_message, describe_snapshot};
use raftcore::raftpb::{
    conf_change_from_string, conf_change_to_string, conf_changes_from_string,
    conf_changes_to_string, ConfChange, ConfChangeTransition, ConfChangeV2, ConfState, Entry,
    HardState, Message, Snapshot,
};

/// Decoding `data` as `T` either fails or gives a value that encodes to bytes which decode to
/// the same value and encode to the same bytes again (the canonical form is a fixed point).
fn check<T: prost::Message + Default + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    let v = T::decode(data).ok()?;
    let bytes = v.encode_to_vec();
    let again = T::decode(&bytes[..]).expect("re-decoding an encoded value");
    assert_eq!(v, again, "decode(encode(v)) != v");
    assert_eq!(
        again.encode_to_vec(),
        bytes,
        "encoding is not a fixed point"
    );
    assert_eq!(
        v.encoded_len(),
        bytes.len(),
        "encoded_len disagrees with the encoding"
    );
    Some(v)
}

/// etcd's `Entry.Size()`: the proto3 encoding plus two bytes (key, varint 0) for each of
/// type, term and index that is zero, since etcd always encodes them.
fn etcd_size(e: &Entry) -> u64 {
    let zeros = [e.r#type == 0, e.term == 0, e.index == 0]
        .iter()
        .filter(|&&z| z)
        .count() as u64;
    e.encoded_len() as u64 + 2 * zeros
}

/// The whole target.
pub fn run(data: &[u8]) {
    if let Some(m) = check::<Message>(data) {
        let _ = describe_message(&m, None);
        for e in &m.entries {
            assert_eq!(
                raftcore::storage::entry_size(e),
                etcd_size(e),
                "entry_size disagrees with the encoding"
            );
        }
    }
    if let Some(e) = check::<Entry>(data) {
        let _ = describe_entry(&e, None);
        assert_eq!(raftcore::storage::entry_size(&e), etcd_size(&e));
    }
    if let Some(s) = check::<Snapshot>(data) {
        let _ = describe_snapshot(&s);
        let _ = raftcore::confchange::validate_conf_state(&s.conf_state());
    }
    check::<HardState>(data);
    if let Some(cs) = check::<ConfState>(data) {
        // A ConfState that validates restores to an equivalent one.
        if raftcore::confchange::validate_conf_state(&cs).is_ok() {
            let mut trk = raftcore::tracker::ProgressTracker::new(16, 0);
            raftcore::confchange::restore(&mut trk, 1, &cs).expect("a valid ConfState restores");
            assert!(trk.conf_state().equivalent(&cs), "restore changed {cs:?}");
        }
    }
    if let Some(cc) = check::<ConfChange>(data) {
        let v2 = cc.as_v2();
        assert_eq!(v2.changes.len(), 1);
    }
    if let Some(cc) = check::<ConfChangeV2>(data) {
        // The token form round-trips for known change types.
        let known = cc.changes.iter().all(|c| (0..4).contains(&c.r#type));
        if known {
            let text = conf_changes_to_string(&cc.changes);
            let back = conf_changes_from_string(&text).expect("own token text parses");
            assert_eq!(back, cc.changes, "token text {text:?}");
            // So does the whole change with its transition (without the context).
            if ConfChangeTransition::try_from(cc.transition).is_ok() {
                let text = conf_change_to_string(&cc);
                let back = conf_change_from_string(&text).expect("own conf change text parses");
                let want = ConfChangeV2 {
                    context: Default::default(),
                    ..cc.clone()
                };
                assert_eq!(back, want, "conf change text {text:?}");
            }
        }
        let _ = cc.enter_joint();
        let _ = cc.leave_joint();
    }
    // Arbitrary text as conf-change tokens never panics.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ccs) = conf_changes_from_string(text) {
            let _ = conf_changes_to_string(&ccs);
        }
        if let Ok(cc) = conf_change_from_string(text) {
            let again = conf_change_to_string(&cc);
            assert_eq!(conf_change_from_string(&again), Ok(cc), "text {text:?}");
        }
    }
}
