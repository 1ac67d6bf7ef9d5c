//! The reference Ready loop for in-memory groups (behind the `testkit` cargo feature).
//!
//! [`handle_ready`] carries out the Ready contract of the crate docs for a node over
//! [`MemStorage`] in the default (synchronous) mode, and [`handle_ready_async`] does the same
//! for a node with [`Config::async_storage_writes`](crate::Config::async_storage_writes),
//! doing the append and apply work at once. The application's state machine is anything that
//! implements [`StateMachine`]: it sees every committed entry in order (conf changes after the
//! node applied them with [`RawNode::apply_conf_change`]) and every snapshot the node installs.
//!
//! [`TestRng`] is the seeded random stream for tests and simulations built on the kit.
//!
//! The parts of the loop are public too, for drivers that spread a Ready over time (a slow
//! disk, a crash between the persist and the late messages): [`Persist`] is what one Ready or
//! one `MsgStorageAppend` asks to write, and [`apply_committed`] applies committed entries.
//!
//! ```
//! use bytes::Bytes;
//! use raftcore::raftpb::{ConfState, Entry, Message};
//! use raftcore::testkit::{handle_ready, storage_with_conf_state, ConfOutcome, StateMachine};
//! use raftcore::{Config, RawNode, StateRole};
//!
//! /// A state machine that keeps the payloads it applied.
//! #[derive(Default)]
//! struct Payloads(Vec<Bytes>);
//!
//! impl StateMachine for Payloads {
//!     type Error = std::convert::Infallible;
//!     fn apply(&mut self, entry: &Entry, conf: Option<&ConfOutcome>) -> Result<(), Self::Error> {
//!         if conf.is_none() && !entry.data.is_empty() {
//!             self.0.push(entry.data.clone());
//!         }
//!         Ok(())
//!     }
//! }
//!
//! // A single-voter group.
//! let storage = storage_with_conf_state(ConfState { voters: vec![1], ..Default::default() });
//! let mut node = RawNode::new(&Config::new(1), storage).unwrap();
//! let mut sm = Payloads::default();
//! let mut outbox: Vec<Message> = Vec::new(); // a single voter sends nothing
//! node.campaign().unwrap();
//! while node.has_ready() {
//!     let rd = node.ready();
//!     handle_ready(&mut node, rd, &mut sm, &mut outbox).unwrap();
//! }
//! assert_eq!(node.role(), StateRole::Leader);
//! node.propose(Bytes::from_static(b"hello")).unwrap();
//! while node.has_ready() {
//!     let rd = node.ready();
//!     handle_ready(&mut node, rd, &mut sm, &mut outbox).unwrap();
//! }
//! assert_eq!(sm.0, vec![Bytes::from_static(b"hello")]);
//! assert!(outbox.is_empty());
//! ```

use std::fmt;

mod rng;
pub use rng::TestRng;

use crate::raftpb::{
    ConfChange, ConfChangeI, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message,
    Snapshot, SnapshotMetadata,
};
use crate::{
    Error, MemStorage, RawNode, ReadState, Ready, SoftState, Storage, LOCAL_APPEND_THREAD,
    LOCAL_APPLY_THREAD,
};

/// The application's state machine, as the loop drives it.
pub trait StateMachine {
    /// What the state machine may stop the loop with.
    type Error;

    /// Applies one committed entry. Entries come in index order, each exactly once per
    /// incarnation of the node (after a [`restore`](Self::restore), from the snapshot's index
    /// on). `conf` is `Some` for a conf-change entry, which the loop has already handed to
    /// [`RawNode::apply_conf_change`]: it says what came of it. Empty normal entries (a new
    /// leader's first entry) are applied too.
    fn apply(&mut self, entry: &Entry, conf: Option<&ConfOutcome>) -> Result<(), Self::Error>;

    /// Replaces the state with a snapshot's (`snapshot.data`, at `snapshot.index()`), before
    /// the snapshot is written to storage. The default does nothing.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error> {
        let _ = snapshot;
        Ok(())
    }
}

/// What became of a committed conf-change entry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfOutcome {
    /// The node applied the change; `conf_state` is the configuration now in force.
    Applied {
        /// The change, decoded from the entry.
        change: ConfChangeI,
        /// The configuration after the change.
        conf_state: ConfState,
    },
    /// The node refused the change (the configuration did not change). A committed change can
    /// be refused: the core checks it only when it is applied.
    Refused {
        /// The change, decoded from the entry.
        change: ConfChangeI,
        /// Why the node refused it.
        error: Error,
    },
    /// The entry's data is not a conf change; the node was not told about it.
    Undecodable(prost::DecodeError),
}

impl ConfOutcome {
    /// The configuration now in force, when the change was applied.
    pub fn conf_state(&self) -> Option<&ConfState> {
        match self {
            ConfOutcome::Applied { conf_state, .. } => Some(conf_state),
            _ => None,
        }
    }

    /// The change, when the entry decoded.
    pub fn change(&self) -> Option<&ConfChangeI> {
        match self {
            ConfOutcome::Applied { change, .. } | ConfOutcome::Refused { change, .. } => {
                Some(change)
            }
            ConfOutcome::Undecodable(_) => None,
        }
    }
}

/// Decodes a conf-change entry: `None` for a normal entry.
#[inline]
pub fn decode_conf_change(entry: &Entry) -> Option<Result<ConfChangeI, prost::DecodeError>> {
    match entry.entry_type() {
        EntryType::EntryNormal => None,
        t => Some(decode_conf_change_data(t, entry)),
    }
}

fn decode_conf_change_data(t: EntryType, entry: &Entry) -> Result<ConfChangeI, prost::DecodeError> {
    use prost::Message as _;
    if t == EntryType::EntryConfChange {
        ConfChange::decode(entry.data.clone()).map(ConfChangeI::V1)
    } else {
        ConfChangeV2::decode(entry.data.clone()).map(ConfChangeI::V2)
    }
}

/// Why the loop stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadyError<E> {
    /// The node or its storage refused something (a write, `advance`, `step_local`).
    Core(Error),
    /// The state machine stopped the loop.
    App(E),
}

impl<E: fmt::Display> fmt::Display for ReadyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadyError::Core(e) => e.fmt(f),
            ReadyError::App(e) => write!(f, "state machine: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ReadyError<E> {}

/// What one Ready (or one `MsgStorageAppend`) asks to write to stable storage (rule 1 of the
/// Ready contract).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Persist {
    /// A snapshot to install.
    pub snapshot: Option<Snapshot>,
    /// Entries to append (after the snapshot, if any).
    pub entries: Vec<Entry>,
    /// A HardState to write.
    pub hard_state: Option<HardState>,
}

impl Persist {
    /// Takes the snapshot, entries and HardState out of a Ready.
    pub fn take_from_ready(rd: &mut Ready) -> Persist {
        Persist {
            snapshot: rd.snapshot.take(),
            entries: std::mem::take(&mut rd.entries),
            hard_state: rd.hard_state.take(),
        }
    }

    /// Takes what a `MsgStorageAppend` asks to write out of it: its snapshot, its entries, and
    /// its term, vote and commit as a HardState (none when all three are 0). Its `responses`
    /// stay in the message.
    pub fn take_from_message(m: &mut Message) -> Persist {
        let hs = HardState {
            term: m.term,
            vote: m.vote,
            commit: m.commit,
        };
        Persist {
            snapshot: m.snapshot.take(),
            entries: std::mem::take(&mut m.entries),
            hard_state: (!hs.is_empty()).then_some(hs),
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.entries.is_empty() && self.hard_state.is_none()
    }

    /// Writes to `store`: the snapshot, then the entries, then the HardState.
    pub fn write(mut self, store: &mut MemStorage) -> crate::Result<()> {
        self.write_in_place(store)
    }

    /// [`Persist::write`], moving the entries out: `self.entries` is left empty with its
    /// capacity (a Ready's vector to recycle).
    fn write_in_place(&mut self, store: &mut MemStorage) -> crate::Result<()> {
        if let Some(snap) = self.snapshot.take() {
            store.apply_snapshot(snap)?;
        }
        if !self.entries.is_empty() {
            store.append_from(&mut self.entries)?;
        }
        if let Some(hs) = self.hard_state.take() {
            store.set_hard_state(hs);
        }
        Ok(())
    }

    /// Restores `sm` from the snapshot (if any), then writes to `store` (see
    /// [`write`](Self::write)).
    pub fn restore_and_write<M: StateMachine>(
        mut self,
        store: &mut MemStorage,
        sm: &mut M,
    ) -> Result<(), ReadyError<M::Error>> {
        self.restore_and_write_in_place(store, sm)
    }

    /// [`Persist::restore_and_write`], leaving `self.entries` empty with its capacity.
    fn restore_and_write_in_place<M: StateMachine>(
        &mut self,
        store: &mut MemStorage,
        sm: &mut M,
    ) -> Result<(), ReadyError<M::Error>> {
        if let Some(snap) = &self.snapshot {
            sm.restore(snap).map_err(ReadyError::App)?;
        }
        self.write_in_place(store).map_err(ReadyError::Core)
    }
}

/// Applies committed entries in order (rule 3 of the Ready contract): each conf change goes to
/// [`RawNode::apply_conf_change`] first, then every entry to `sm`.
pub fn apply_committed<S: Storage, M: StateMachine>(
    node: &mut RawNode<S>,
    entries: &[Entry],
    sm: &mut M,
) -> Result<(), M::Error> {
    for e in entries {
        let Some(cc) = decode_conf_change(e) else {
            sm.apply(e, None)?;
            continue;
        };
        let conf = match cc {
            Ok(change) => match node.apply_conf_change(&change) {
                Ok(conf_state) => ConfOutcome::Applied { change, conf_state },
                Err(error) => ConfOutcome::Refused { change, error },
            },
            Err(err) => ConfOutcome::Undecodable(err),
        };
        sm.apply(e, Some(&conf))?;
    }
    Ok(())
}

/// [`apply_committed`] of the entries `first..=last` read from the node's storage, where the
/// Ready was persisted ([`Config::apply_from_storage`](crate::Config::apply_from_storage)):
/// normal entries are applied where they lie, a conf change is cloned (the node applies it).
///
/// # Panics
/// If the storage does not hold the range: the Ready was not persisted, or the log was
/// compacted past what is applied (both break the Ready contract).
pub fn apply_committed_from_storage<M: StateMachine>(
    node: &mut RawNode<MemStorage>,
    first: u64,
    last: u64,
    sm: &mut M,
) -> Result<(), M::Error> {
    let mut next = first;
    while next <= last {
        let mut conf = None;
        let slices = node
            .store()
            .entries_ref(next, last + 1)
            .unwrap_or_else(|e| panic!("entries {next}..={last} to apply: {e}"));
        'read: for s in slices {
            for e in s {
                if e.r#type != EntryType::EntryNormal as i32 {
                    conf = Some(e.clone());
                    break 'read;
                }
                sm.apply(e, None)?;
                next += 1;
            }
        }
        if let Some(e) = conf {
            apply_committed(node, std::slice::from_ref(&e), sm)?;
            next += 1;
        }
    }
    Ok(())
}

/// A storage that starts from a snapshot at index 1, term 1, without data, whose configuration
/// is `cs`: how a member of a new group can start (the members of a group all start from the
/// same configuration).
pub fn storage_with_conf_state(cs: ConfState) -> MemStorage {
    let mut s = MemStorage::new();
    s.apply_snapshot(Snapshot {
        metadata: Some(SnapshotMetadata {
            conf_state: Some(cs),
            index: 1,
            term: 1,
        }),
        ..Default::default()
    })
    .expect("an empty storage takes a snapshot at index 1");
    s
}

/// What a handled Ready leaves to the caller.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Handled {
    /// The Ready's soft state (leader and role, when they changed).
    pub soft_state: Option<SoftState>,
    /// Reads released by `read_index`: serve each once the state machine applied its index.
    pub read_states: Vec<ReadState>,
}

/// Handles one Ready of a node in synchronous mode, as the crate docs prescribe: the Ready's
/// `messages` go to `out` at once; the snapshot (restored into `sm` first), entries and
/// HardState are written to the node's storage; then the `persisted_messages` go to `out`;
/// the committed entries are applied ([`apply_committed`]); and the node advances. `out`
/// receives the messages in the order the node produced them, to be delivered by the caller
/// (which must also [`report_snapshot`](RawNode::report_snapshot) every `MsgSnap` it sends).
pub fn handle_ready<M: StateMachine>(
    node: &mut RawNode<MemStorage>,
    mut rd: Ready,
    sm: &mut M,
    out: &mut Vec<Message>,
) -> Result<Handled, ReadyError<M::Error>> {
    out.append(&mut rd.messages);
    let mut persist = Persist::take_from_ready(&mut rd);
    persist.restore_and_write_in_place(node.store_mut(), sm)?;
    // The entries moved into storage; their vector goes back to the Ready to be recycled.
    rd.entries = persist.entries;
    out.append(&mut rd.persisted_messages);
    match rd.committed_range {
        Some((first, last)) if rd.committed_entries.is_empty() => {
            apply_committed_from_storage(node, first, last, sm)
        }
        _ => apply_committed(node, &rd.committed_entries, sm),
    }
    .map_err(ReadyError::App)?;
    node.advance().map_err(ReadyError::Core)?;
    let handled = Handled {
        soft_state: rd.soft_state,
        read_states: std::mem::take(&mut rd.read_states),
    };
    // Its vectors serve the next Ready.
    node.recycle(rd);
    Ok(handled)
}

/// Handles one Ready of a node with asynchronous storage writes, doing the storage work at
/// once: each `MsgStorageAppend` is written ([`Persist::take_from_message`], a snapshot
/// restored into `sm` first) and each `MsgStorageApply` applied ([`apply_committed`]) in the
/// order they come; their responses addressed to the node itself are handed back with
/// [`RawNode::step_local`] once all the work is done (a response it refuses as not local is an
/// error; any other error stepping it returns is ignored, as for a message from the network),
/// the others go to `out` in order with the Ready's other messages. The Ready's own `entries`, `snapshot`, `hard_state` and
/// `committed_entries` are not used: the work items carry them.
pub fn handle_ready_async<M: StateMachine>(
    node: &mut RawNode<MemStorage>,
    mut rd: Ready,
    sm: &mut M,
    out: &mut Vec<Message>,
) -> Result<Handled, ReadyError<M::Error>> {
    let id = node.id();
    let mut local = Vec::new();
    for mut m in rd.messages.drain(..) {
        match m.to {
            LOCAL_APPEND_THREAD => {
                Persist::take_from_message(&mut m).restore_and_write(node.store_mut(), sm)?;
            }
            LOCAL_APPLY_THREAD => {
                apply_committed(node, &m.entries, sm).map_err(ReadyError::App)?;
            }
            _ => {
                out.push(m);
                continue;
            }
        }
        for r in m.responses {
            if r.to == id {
                local.push(r);
            } else {
                out.push(r);
            }
        }
    }
    out.append(&mut rd.persisted_messages);
    for r in local {
        // Once the node took the response as its own, what stepping it returned is the node's
        // business, as for a message from the network.
        if let Err(e @ Error::InvalidMessage(_)) = node.step_local(r) {
            return Err(ReadyError::Core(e));
        }
    }
    let handled = Handled {
        soft_state: rd.soft_state,
        read_states: std::mem::take(&mut rd.read_states),
    };
    node.recycle(rd);
    Ok(handled)
}

#[cfg(test)]
mod tests;
