//! Text forms of messages, entries, snapshots and Readies, byte-compatible with etcd-io/raft's
//! `Describe*` helpers. The interaction tests compare these texts with etcd's scenario files,
//! and log lines use them so that both projects' logs read alike.
//!
//! Ids of message endpoints print in lower-case hex (with `None`, `AppendThread` and
//! `ApplyThread` for the special targets); terms, indexes, votes and the ids inside
//! configurations print in decimal, as etcd does.

use std::fmt::{self, Write as _};

use prost::Message as _;

use crate::config::{LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NONE};
use crate::raftpb::{
    conf_changes_to_string, ConfChange, ConfChangeTransition, ConfChangeType, ConfChangeV2,
    ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot,
};

/// Formats an entry payload. `None` means the default, [`go_quote`].
pub type EntryFormatter<'a> = Option<&'a dyn Fn(&[u8]) -> String>;

/// Quotes bytes the way Go's `strconv.Quote` (and `%q`) does: printable Unicode is kept,
/// `\a \b \f \n \r \t \v \\ \"` are escaped, invalid UTF-8 and control bytes become `\xHH`,
/// other non-printable characters `\uHHHH` or `\UHHHHHHHH`.
///
/// Go decides "printable" with the Unicode tables of `unicode.IsPrint`. Without those tables
/// this function treats as non-printable: control characters, every space character except
/// U+0020, line and paragraph separators, the common format characters (soft hyphen,
/// zero-width and bidirectional marks, BOM, ...), private-use characters, noncharacters and
/// the planes with no assigned characters. That covers every character likely in test data;
/// a character unassigned in Unicode but inside an assigned block may be kept where Go would
/// escape it.
pub fn go_quote(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() + 2);
    out.push('"');
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            quote_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

fn quote_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if is_go_printable(c) => out.push(c),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// An approximation of Go's `unicode.IsPrint` (see [`go_quote`]).
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u,
        // format characters (Cf)
        0x00ad
        | 0x0600..=0x0605
        | 0x061c
        | 0x06dd
        | 0x070f
        | 0x0890..=0x0891
        | 0x08e2
        | 0x180e
        | 0x200b..=0x200f
        | 0x202a..=0x202e
        | 0x2060..=0x2064
        | 0x2066..=0x206f
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0x110bd
        | 0x110cd
        | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f
        // private use (Co)
        | 0xe000..=0xf8ff
        | 0xf0000..=0x10ffff
        // noncharacters
        | 0xfdd0..=0xfdef
        | 0xfffe..=0xffff
        // planes without assigned characters (besides the tags block above)
        | 0x40000..=0xdffff
        | 0xe0000
        | 0xe0002..=0xe001f
        | 0xe0080..=0xe00ff
        | 0xe01f0..=0xeffff)
        && u & 0xfffe != 0xfffe
}

/// The name of a message endpoint: `None` for 0, `AppendThread` / `ApplyThread` for the local
/// storage threads, otherwise the id in lower-case hex.
pub fn describe_target(id: u64) -> String {
    match id {
        NONE => "None".to_string(),
        LOCAL_APPEND_THREAD => "AppendThread".to_string(),
        LOCAL_APPLY_THREAD => "ApplyThread".to_string(),
        id => format!("{id:x}"),
    }
}

/// The name of a message type (`MsgApp`, ...), or its number when unknown.
pub fn message_type_name(t: i32) -> String {
    match MessageType::try_from(t) {
        Ok(t) => t.as_str_name().to_string(),
        Err(_) => t.to_string(),
    }
}

fn entry_type_name(t: i32) -> String {
    match EntryType::try_from(t) {
        Ok(t) => t.as_str_name().to_string(),
        Err(_) => t.to_string(),
    }
}

fn conf_change_type_name(t: i32) -> String {
    match ConfChangeType::try_from(t) {
        Ok(t) => t.as_str_name().to_string(),
        Err(_) => t.to_string(),
    }
}

fn transition_name(t: i32) -> String {
    match ConfChangeTransition::try_from(t) {
        Ok(t) => t.as_str_name().to_string(),
        Err(_) => t.to_string(),
    }
}

/// `<term>/<index> <Type>` followed by the formatted payload: the quoted data of a normal
/// entry (or `f(data)`), the change tokens (`v2 l3 r1`) of a conf-change entry, or the decode
/// error of a corrupt one.
pub fn describe_entry(e: &Entry, f: EntryFormatter<'_>) -> String {
    let formatted = match EntryType::try_from(e.r#type) {
        Ok(EntryType::EntryNormal) => match f {
            Some(f) => f(&e.data),
            None => go_quote(&e.data),
        },
        Ok(EntryType::EntryConfChange) => match ConfChange::decode(&e.data[..]) {
            Ok(cc) => conf_changes_to_string(&cc.as_v2().changes),
            Err(err) => err.to_string(),
        },
        Ok(EntryType::EntryConfChangeV2) => match ConfChangeV2::decode(&e.data[..]) {
            Ok(cc) => conf_changes_to_string(&cc.changes),
            Err(err) => err.to_string(),
        },
        Err(_) => String::new(),
    };
    let mut s = format!("{}/{} {}", e.term, e.index, entry_type_name(e.r#type));
    if !formatted.is_empty() {
        s.push(' ');
        s.push_str(&formatted);
    }
    s
}

/// One [`describe_entry`] line (with its newline) per entry.
pub fn describe_entries(ents: &[Entry], f: EntryFormatter<'_>) -> String {
    let mut s = String::new();
    for e in ents {
        s.push_str(&describe_entry(e, f));
        s.push('\n');
    }
    s
}

/// `[1 2 3]`, as Go prints a `[]uint64` with `%v`.
fn go_u64_slice(ids: &[u64]) -> String {
    let mut s = String::from("[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{id}");
    }
    s.push(']');
    s
}

/// `Voters:[1 2 3] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false`.
pub fn describe_conf_state(cs: &ConfState) -> String {
    format!(
        "Voters:{} VotersOutgoing:{} Learners:{} LearnersNext:{} AutoLeave:{}",
        go_u64_slice(&cs.voters),
        go_u64_slice(&cs.voters_outgoing),
        go_u64_slice(&cs.learners),
        go_u64_slice(&cs.learners_next),
        cs.auto_leave
    )
}

/// `Index:<i> Term:<t> ConfState:<describe_conf_state>`.
pub fn describe_snapshot(s: &Snapshot) -> String {
    let (index, term, cs) = match &s.metadata {
        Some(m) => (m.index, m.term, m.conf_state.clone().unwrap_or_default()),
        None => (0, 0, ConfState::default()),
    };
    format!(
        "Index:{index} Term:{term} ConfState:{}",
        describe_conf_state(&cs)
    )
}

/// `Term:<t>` + ` Vote:<v>` (when set) + ` Commit:<c>`.
pub fn describe_hard_state(hs: &HardState) -> String {
    let mut s = format!("Term:{}", hs.term);
    if hs.vote != 0 {
        let _ = write!(s, " Vote:{}", hs.vote);
    }
    let _ = write!(s, " Commit:{}", hs.commit);
    s
}

/// `Lead:<lead> State:<state>`; `state` prints as `StateFollower`, `StateLeader`, ...
pub fn describe_soft_state(lead: u64, state: impl fmt::Display) -> String {
    format!("Lead:{lead} State:{state}")
}

/// A message on one line (more for several entries, a snapshot or nested responses), without
/// a trailing newline. See FORMAT.md §2 of the etcd reference material.
pub fn describe_message(m: &Message, f: EntryFormatter<'_>) -> String {
    let mut s = String::new();
    write_message(&mut s, "", m, f);
    s
}

fn write_message(s: &mut String, indent: &str, m: &Message, f: EntryFormatter<'_>) {
    let _ = write!(
        s,
        "{indent}{}->{} {} Term:{} Log:{}/{}",
        describe_target(m.from),
        describe_target(m.to),
        message_type_name(m.r#type),
        m.term,
        m.log_term,
        m.index
    );
    if m.reject {
        let _ = write!(s, " Rejected (Hint: {})", m.reject_hint);
    }
    if m.commit != 0 {
        let _ = write!(s, " Commit:{}", m.commit);
    }
    if m.vote != 0 {
        let _ = write!(s, " Vote:{}", m.vote);
    }
    match m.entries.len() {
        0 => {}
        1 => {
            let _ = write!(s, " Entries:[{}]", describe_entry(&m.entries[0], f));
        }
        _ => {
            s.push_str(" Entries:[");
            for e in &m.entries {
                let _ = write!(s, "\n{indent}  {}", describe_entry(e, f));
            }
            let _ = write!(s, "\n{indent}]");
        }
    }
    if let Some(snap) = &m.snapshot {
        if !snap.is_empty() {
            let _ = write!(s, "\n{indent}  Snapshot: {}", describe_snapshot(snap));
        }
    }
    if !m.responses.is_empty() {
        s.push_str(" Responses:[");
        let inner = format!("{indent}  ");
        for r in &m.responses {
            s.push('\n');
            write_message(s, &inner, r, f);
        }
        let _ = write!(s, "\n{indent}]");
    }
}

/// A conf change as log lines show it: `transition:ConfChangeTransitionAuto
/// changes:{type:ConfChangeAddNode node_id:2} context:"..."` (each part only when present;
/// node ids in decimal).
pub fn describe_conf_change(cc: &ConfChangeV2) -> String {
    let mut s = format!("transition:{}", transition_name(cc.transition));
    for c in &cc.changes {
        let _ = write!(
            s,
            " changes:{{type:{} node_id:{}}}",
            conf_change_type_name(c.r#type),
            c.node_id
        );
    }
    if !cc.context.is_empty() {
        let _ = write!(s, " context:{}", go_quote(&cc.context));
    }
    s
}

/// The parts of a Ready that [`describe_ready_parts`] prints, borrowed.
#[derive(Default)]
pub struct ReadyParts<'a> {
    /// Whether the Ready must be synced.
    pub must_sync: bool,
    /// The leader id and role name, when the soft state changed.
    pub soft_state: Option<(u64, &'a dyn fmt::Display)>,
    /// The hard state, when it changed.
    pub hard_state: Option<&'a HardState>,
    /// Released reads: (index, request context).
    pub read_states: Vec<(u64, &'a [u8])>,
    /// Entries to persist.
    pub entries: &'a [Entry],
    /// A snapshot to persist.
    pub snapshot: Option<&'a Snapshot>,
    /// Entries to apply.
    pub committed_entries: &'a [Entry],
    /// Messages, in the order they are printed.
    pub messages: Vec<&'a Message>,
}

/// The text etcd's `DescribeReady` prints: `Ready MustSync=<b>:` followed by one section per
/// present part, or `<empty Ready>` (without a newline) when nothing is present.
pub fn describe_ready_parts(rd: &ReadyParts<'_>, f: EntryFormatter<'_>) -> String {
    let mut s = String::new();
    if let Some((lead, state)) = rd.soft_state {
        s.push_str(&describe_soft_state(lead, state));
        s.push('\n');
    }
    if let Some(hs) = rd.hard_state {
        if !hs.is_empty() {
            let _ = writeln!(s, "HardState {}", describe_hard_state(hs));
        }
    }
    if !rd.read_states.is_empty() {
        // Go's %v of []ReadState: [{12 [102 111 111]} ...]
        s.push_str("ReadStates [");
        for (i, (index, ctx)) in rd.read_states.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let bytes: Vec<u64> = ctx.iter().map(|b| u64::from(*b)).collect();
            let _ = write!(s, "{{{index} {}}}", go_u64_slice(&bytes));
        }
        s.push_str("]\n");
    }
    if !rd.entries.is_empty() {
        s.push_str("Entries:\n");
        s.push_str(&describe_entries(rd.entries, f));
    }
    if let Some(snap) = rd.snapshot {
        if !snap.is_empty() {
            let _ = writeln!(s, "Snapshot {}", describe_snapshot(snap));
        }
    }
    if !rd.committed_entries.is_empty() {
        s.push_str("CommittedEntries:\n");
        s.push_str(&describe_entries(rd.committed_entries, f));
    }
    if !rd.messages.is_empty() {
        s.push_str("Messages:\n");
        for m in &rd.messages {
            s.push_str(&describe_message(m, f));
            s.push('\n');
        }
    }
    if s.is_empty() {
        return "<empty Ready>".to_string();
    }
    format!("Ready MustSync={}:\n{s}", rd.must_sync)
}

/// The text etcd's `DescribeReady` prints for a [`crate::Ready`]: the early messages, then the
/// ones sent after the persist.
pub fn describe_ready(rd: &crate::Ready, f: EntryFormatter<'_>) -> String {
    let state = rd.soft_state.map(|ss| ss.raft_state);
    let parts = ReadyParts {
        must_sync: rd.must_sync,
        soft_state: match (&rd.soft_state, &state) {
            (Some(ss), Some(st)) => Some((ss.leader_id, st as &dyn fmt::Display)),
            _ => None,
        },
        hard_state: rd.hard_state.as_ref(),
        read_states: rd
            .read_states
            .iter()
            .map(|r| (r.index, &r.request_ctx[..]))
            .collect(),
        entries: &rd.entries,
        snapshot: rd.snapshot.as_ref(),
        committed_entries: &rd.committed_entries,
        messages: rd
            .messages
            .iter()
            .chain(rd.persisted_messages.iter())
            .collect(),
    };
    describe_ready_parts(&parts, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftpb::{conf_changes_from_string, SnapshotMetadata};
    use bytes::Bytes;

    fn ent(term: u64, index: u64, ty: EntryType, data: Vec<u8>) -> Entry {
        Entry {
            term,
            index,
            r#type: ty as i32,
            data: Bytes::from(data),
        }
    }

    fn msg(ty: MessageType, from: u64, to: u64, term: u64) -> Message {
        Message {
            r#type: ty as i32,
            from,
            to,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(go_quote(b""), "\"\"");
        assert_eq!(go_quote(b"prop_1"), "\"prop_1\"");
        assert_eq!(go_quote(b"\"foo\""), r#""\"foo\"""#);
        assert_eq!(go_quote(b"a\\b"), r#""a\\b""#);
        assert_eq!(go_quote(b"\x07\x08\x0c\n\r\t\x0b"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(go_quote(b"\x00\x01\x1f\x7f"), r#""\x00\x01\x1f\x7f""#);
        // Invalid UTF-8: each bad byte on its own.
        assert_eq!(go_quote(b"\xff\xfe"), r#""\xff\xfe""#);
        assert_eq!(go_quote(b"a\xe2\x82b"), r#""a\xe2\x82b""#);
        assert_eq!(go_quote(b"\xed\xa0\x80"), r#""\xed\xa0\x80""#);
        // Multi-byte printable characters are kept.
        assert_eq!(
            go_quote("héllo ∞ 日本 😀".as_bytes()),
            "\"héllo ∞ 日本 😀\""
        );
        // Non-printable runes.
        assert_eq!(go_quote("\u{85}".as_bytes()), r#""\u0085""#);
        assert_eq!(go_quote("\u{a0}".as_bytes()), r#""\u00a0""#);
        assert_eq!(go_quote("\u{200b}".as_bytes()), r#""\u200b""#);
        assert_eq!(go_quote("\u{feff}".as_bytes()), r#""\ufeff""#);
        assert_eq!(go_quote("\u{2028}".as_bytes()), r#""\u2028""#);
        assert_eq!(go_quote("\u{e000}".as_bytes()), r#""\ue000""#);
        assert_eq!(go_quote("\u{f0000}".as_bytes()), r#""\U000f0000""#);
        assert_eq!(go_quote("\u{1fffe}".as_bytes()), r#""\U0001fffe""#);
        // A well-formed U+FFFD is printable.
        assert_eq!(go_quote("\u{fffd}".as_bytes()), "\"\u{fffd}\"");
        // ' needs no escape in Go's double-quoted form.
        assert_eq!(go_quote(b"it's"), "\"it's\"");
    }

    #[test]
    fn entries() {
        assert_eq!(
            describe_entry(&ent(1, 11, EntryType::EntryNormal, vec![]), None),
            "1/11 EntryNormal \"\""
        );
        assert_eq!(
            describe_entry(
                &ent(1, 12, EntryType::EntryNormal, b"\"foo\"".to_vec()),
                None
            ),
            r#"1/12 EntryNormal "\"foo\"""#
        );
        let v1 = ConfChange {
            r#type: ConfChangeType::ConfChangeRemoveNode as i32,
            node_id: 1,
            ..Default::default()
        };
        assert_eq!(
            describe_entry(
                &ent(1, 4, EntryType::EntryConfChange, v1.encode_to_vec()),
                None
            ),
            "1/4 EntryConfChange r1"
        );
        let v2 = ConfChangeV2 {
            changes: conf_changes_from_string("r1 v4").unwrap(),
            ..Default::default()
        };
        assert_eq!(
            describe_entry(
                &ent(1, 4, EntryType::EntryConfChangeV2, v2.encode_to_vec()),
                None
            ),
            "1/4 EntryConfChangeV2 r1 v4"
        );
        assert_eq!(
            describe_entry(&ent(1, 6, EntryType::EntryConfChangeV2, vec![]), None),
            "1/6 EntryConfChangeV2"
        );
        let upper = |d: &[u8]| String::from_utf8_lossy(d).to_uppercase();
        assert_eq!(
            describe_entry(
                &ent(2, 3, EntryType::EntryNormal, b"ab".to_vec()),
                Some(&upper)
            ),
            "2/3 EntryNormal AB"
        );
        let empty = |_: &[u8]| String::new();
        assert_eq!(
            describe_entry(
                &ent(2, 3, EntryType::EntryNormal, b"ab".to_vec()),
                Some(&empty)
            ),
            "2/3 EntryNormal"
        );
        let unknown = Entry {
            term: 1,
            index: 2,
            r#type: 9,
            data: Bytes::new(),
        };
        assert_eq!(describe_entry(&unknown, None), "1/2 9");
        assert_eq!(
            describe_entries(
                &[
                    ent(1, 11, EntryType::EntryNormal, vec![]),
                    ent(1, 12, EntryType::EntryNormal, b"prop_1".to_vec())
                ],
                None
            ),
            "1/11 EntryNormal \"\"\n1/12 EntryNormal \"prop_1\"\n"
        );
        // A corrupt conf change prints the decode error rather than failing.
        let bad = describe_entry(&ent(1, 4, EntryType::EntryConfChangeV2, vec![0xff]), None);
        assert!(bad.starts_with("1/4 EntryConfChangeV2 "), "{bad}");
    }

    #[test]
    fn simple_messages() {
        let mut m = msg(MessageType::MsgVote, 1, 2, 1);
        m.log_term = 1;
        m.index = 10;
        assert_eq!(describe_message(&m, None), "1->2 MsgVote Term:1 Log:1/10");

        let mut m = msg(MessageType::MsgAppResp, 3, 2, 2);
        m.log_term = 1;
        m.index = 4;
        m.reject = true;
        m.reject_hint = 3;
        assert_eq!(
            describe_message(&m, None),
            "3->2 MsgAppResp Term:2 Log:1/4 Rejected (Hint: 3)"
        );

        let mut m = msg(MessageType::MsgHeartbeat, 1, 2, 1);
        m.commit = 11;
        m.context = Bytes::from_static(b"ctx");
        assert_eq!(
            describe_message(&m, None),
            "1->2 MsgHeartbeat Term:1 Log:0/0 Commit:11"
        );

        let mut m = msg(MessageType::MsgProp, 4, 1, 0);
        m.entries = vec![ent(0, 0, EntryType::EntryConfChangeV2, vec![])];
        assert_eq!(
            describe_message(&m, None),
            "4->1 MsgProp Term:0 Log:0/0 Entries:[0/0 EntryConfChangeV2]"
        );

        let mut m = msg(MessageType::MsgApp, 1, 2, 1);
        m.log_term = 1;
        m.index = 10;
        m.commit = 10;
        m.entries = vec![ent(1, 11, EntryType::EntryNormal, vec![])];
        assert_eq!(
            describe_message(&m, None),
            "1->2 MsgApp Term:1 Log:1/10 Commit:10 Entries:[1/11 EntryNormal \"\"]"
        );

        let m = Message {
            r#type: 99,
            from: 0x1a,
            to: 0,
            ..Default::default()
        };
        assert_eq!(describe_message(&m, None), "1a->None 99 Term:0 Log:0/0");
    }

    #[test]
    fn multi_entry_and_snapshot_messages() {
        let v3 = ConfChangeV2 {
            changes: conf_changes_from_string("v3").unwrap(),
            ..Default::default()
        };
        let mut m = msg(MessageType::MsgApp, 2, 3, 2);
        m.log_term = 1;
        m.index = 3;
        m.commit = 4;
        m.entries = vec![
            ent(1, 4, EntryType::EntryConfChangeV2, v3.encode_to_vec()),
            ent(2, 5, EntryType::EntryNormal, vec![]),
        ];
        assert_eq!(
            describe_message(&m, None),
            "2->3 MsgApp Term:2 Log:1/3 Commit:4 Entries:[\n  1/4 EntryConfChangeV2 v3\n  2/5 EntryNormal \"\"\n]"
        );

        let mut m = msg(MessageType::MsgSnap, 1, 2, 1);
        m.snapshot = Some(Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: vec![1, 2],
                    ..Default::default()
                }),
                index: 4,
                term: 1,
            }),
        });
        assert_eq!(
            describe_message(&m, None),
            "1->2 MsgSnap Term:1 Log:0/0\n  Snapshot: Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false"
        );
        // An empty snapshot is not shown.
        let mut m = msg(MessageType::MsgSnap, 1, 2, 1);
        m.snapshot = Some(Snapshot::default());
        assert_eq!(describe_message(&m, None), "1->2 MsgSnap Term:1 Log:0/0");
    }

    #[test]
    fn storage_messages_with_responses() {
        let mut app = msg(MessageType::MsgStorageAppend, 1, LOCAL_APPEND_THREAD, 1);
        app.commit = 10;
        app.vote = 1;
        app.responses = vec![msg(MessageType::MsgVoteResp, 1, 1, 1)];
        assert_eq!(
            describe_message(&app, None),
            "1->AppendThread MsgStorageAppend Term:1 Log:0/0 Commit:10 Vote:1 Responses:[\n  1->1 MsgVoteResp Term:1 Log:0/0\n]"
        );

        let e = ent(1, 11, EntryType::EntryNormal, vec![]);
        let mut app = msg(MessageType::MsgStorageAppend, 1, LOCAL_APPEND_THREAD, 0);
        app.entries = vec![e.clone()];
        let mut r1 = msg(MessageType::MsgAppResp, 1, 1, 1);
        r1.index = 11;
        let mut r2 = msg(MessageType::MsgStorageAppendResp, LOCAL_APPEND_THREAD, 1, 1);
        r2.log_term = 1;
        r2.index = 11;
        app.responses = vec![r1, r2];
        assert_eq!(
            describe_message(&app, None),
            "1->AppendThread MsgStorageAppend Term:0 Log:0/0 Entries:[1/11 EntryNormal \"\"] Responses:[\n  1->1 MsgAppResp Term:1 Log:0/11\n  AppendThread->1 MsgStorageAppendResp Term:1 Log:1/11\n]"
        );

        let mut apply = msg(MessageType::MsgStorageApply, 1, LOCAL_APPLY_THREAD, 0);
        apply.entries = vec![e.clone()];
        let mut resp = msg(MessageType::MsgStorageApplyResp, LOCAL_APPLY_THREAD, 1, 0);
        resp.entries = vec![e.clone()];
        apply.responses = vec![resp];
        let want = "1->ApplyThread MsgStorageApply Term:0 Log:0/0 Entries:[1/11 EntryNormal \"\"] Responses:[\n  ApplyThread->1 MsgStorageApplyResp Term:0 Log:0/0 Entries:[1/11 EntryNormal \"\"]\n]";
        assert_eq!(describe_message(&apply, None), want);

        // Nested indentation of multi-entry responses.
        let mut apply2 = apply.clone();
        apply2.responses[0]
            .entries
            .push(ent(1, 12, EntryType::EntryNormal, vec![]));
        assert_eq!(
            describe_message(&apply2, None),
            "1->ApplyThread MsgStorageApply Term:0 Log:0/0 Entries:[1/11 EntryNormal \"\"] Responses:[\n  ApplyThread->1 MsgStorageApplyResp Term:0 Log:0/0 Entries:[\n    1/11 EntryNormal \"\"\n    1/12 EntryNormal \"\"\n  ]\n]"
        );
    }

    #[test]
    fn states() {
        assert_eq!(
            describe_hard_state(&HardState {
                term: 1,
                vote: 1,
                commit: 12
            }),
            "Term:1 Vote:1 Commit:12"
        );
        assert_eq!(
            describe_hard_state(&HardState {
                term: 1,
                vote: 0,
                commit: 4
            }),
            "Term:1 Commit:4"
        );
        assert_eq!(
            describe_soft_state(1, "StateFollower"),
            "Lead:1 State:StateFollower"
        );
        let cs = ConfState {
            voters: vec![1, 2, 3],
            voters_outgoing: vec![1],
            auto_leave: true,
            ..Default::default()
        };
        assert_eq!(
            describe_conf_state(&cs),
            "Voters:[1 2 3] VotersOutgoing:[1] Learners:[] LearnersNext:[] AutoLeave:true"
        );
        assert_eq!(
            describe_snapshot(&Snapshot::default()),
            "Index:0 Term:0 ConfState:Voters:[] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false"
        );
    }

    #[test]
    fn conf_change_text() {
        let cc = ConfChangeV2 {
            changes: conf_changes_from_string("v2 r13").unwrap(),
            ..Default::default()
        };
        assert_eq!(
            describe_conf_change(&cc),
            "transition:ConfChangeTransitionAuto changes:{type:ConfChangeAddNode node_id:2} changes:{type:ConfChangeRemoveNode node_id:13}"
        );
        let cc = ConfChangeV2 {
            transition: ConfChangeTransition::JointExplicit as i32,
            context: Bytes::from_static(b"x\n"),
            ..Default::default()
        };
        assert_eq!(
            describe_conf_change(&cc),
            r#"transition:ConfChangeTransitionJointExplicit context:"x\n""#
        );
    }

    #[test]
    fn ready() {
        assert_eq!(
            describe_ready_parts(&ReadyParts::default(), None),
            "<empty Ready>"
        );
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 12,
        };
        let entries = vec![ent(1, 12, EntryType::EntryNormal, b"prop_1".to_vec())];
        let mut r1 = msg(MessageType::MsgAppResp, 3, 1, 1);
        r1.index = 12;
        let state = "StateFollower";
        let parts = ReadyParts {
            must_sync: true,
            soft_state: Some((1, &state)),
            hard_state: Some(&hs),
            entries: &entries,
            committed_entries: &entries,
            messages: vec![&r1, &r1],
            ..Default::default()
        };
        assert_eq!(
            describe_ready_parts(&parts, None),
            "Ready MustSync=true:\nLead:1 State:StateFollower\nHardState Term:1 Vote:1 Commit:12\nEntries:\n1/12 EntryNormal \"prop_1\"\nCommittedEntries:\n1/12 EntryNormal \"prop_1\"\nMessages:\n3->1 MsgAppResp Term:1 Log:0/12\n3->1 MsgAppResp Term:1 Log:0/12\n"
        );

        let snap = Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: vec![1, 2],
                    ..Default::default()
                }),
                index: 4,
                term: 1,
            }),
        };
        let hs = HardState {
            term: 1,
            vote: 0,
            commit: 4,
        };
        let parts = ReadyParts {
            hard_state: Some(&hs),
            snapshot: Some(&snap),
            read_states: vec![(12, b"foo")],
            ..Default::default()
        };
        assert_eq!(
            describe_ready_parts(&parts, None),
            "Ready MustSync=false:\nHardState Term:1 Commit:4\nReadStates [{12 [102 111 111]}]\nSnapshot Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false\n"
        );
    }
}
