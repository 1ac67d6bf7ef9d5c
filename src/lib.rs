//! raftcore: the Raft consensus protocol as a pure, deterministic state machine, with the
//! semantics of etcd-io/raft.
//!
//! The core does no IO: no sockets, no files, no clock, no threads. Time is [`RawNode::tick`];
//! messages come in through [`RawNode::step`]; everything the node wants done comes out of
//! [`RawNode::ready`] as a [`Ready`]. Randomness (election timeouts) comes from a generator
//! seeded by [`Config::seed`] and the node id, so the same inputs and seed give the same
//! outputs.
//!
//! # The Ready contract
//!
//! In the default (synchronous) mode, the application loops: tick on a timer, step what the
//! network delivers, propose, and whenever [`RawNode::has_ready`] is true:
//!
//! 1. Take `let rd = node.ready()`. Persist `rd.snapshot` (if any), append `rd.entries` and
//!    write `rd.hard_state` (if any) to stable storage. `rd.must_sync` says whether the write
//!    must be synced to disk before going on.
//! 2. Send `rd.messages` at any time, even before step 1 is done (a leader writes its log in
//!    parallel with replicating it). Send `rd.persisted_messages` (append and vote responses,
//!    which promise durable state) only once step 1 is durable. Messages a node addresses to
//!    itself never appear: `advance` handles them.
//! 3. Apply `rd.committed_entries` in order, after step 1 (they may include entries of this
//!    same Ready). Apply a conf-change entry with [`RawNode::apply_conf_change`]. Serve the
//!    reads in `rd.read_states` once the applied index reaches their index. With
//!    [`Config::apply_from_storage`], `rd.committed_entries` is empty: apply the entries
//!    `rd.committed_range` names, reading them from your storage after step 1 (the core
//!    clones none of them, and you drop none).
//!
//!    With [`Config::hand_over_entries`], `rd.entries` are moved out of the node rather than
//!    cloned: write them to the storage (step 1) before any other call into the node. Until
//!    `advance` the node reads them back from there when it needs them (checking each
//!    against the term it keeps); a read that finds them not written yet waits (an append to
//!    a follower until `advance`, entries to apply until a later Ready).
//! 4. Call [`RawNode::advance`]. A `MsgSnap` that was sent obliges a later
//!    [`RawNode::report_snapshot`].
//! 5. Calling `ready()` again before `advance()` is allowed: the new Ready holds only what is
//!    new, and the next `advance()` acknowledges every Ready handed out since the last one, so
//!    carry out steps 1-3 for all of them before calling it.
//! 6. Optionally, hand the handled Ready back with [`RawNode::recycle`]: the next Readies fill
//!    its vectors instead of allocating new ones. Take out what you keep first (drain the
//!    messages into the transport, move the entries into storage); the rest is dropped.
//!
//! Network input goes through one gate ([`RawNode::step`]): a message that breaks a rule is
//! refused with [`Error::InvalidMessage`] and a [`Reason`], and changes nothing. The trust
//! model (what the transport must authenticate, what a sender outside the configuration may
//! do) is in `docs/security.md` in the repository. A dropped proposal says why
//! ([`Error::ProposalDropped`] with a [`DropReason`]).
//!
//! With [`Config::async_storage_writes`], persisting and applying happen on other threads:
//! `rd.messages` carries a `MsgStorageAppend` (to [`LOCAL_APPEND_THREAD`]) and a
//! `MsgStorageApply` (to [`LOCAL_APPLY_THREAD`]); once the write (or apply) is done, hand each
//! of the message's `responses` back with [`RawNode::step_local`] (or send it, when it is
//! addressed to another node). `advance` is not called: it returns an error in that mode.
//! Never compact the log or take a snapshot past the commit index of the last HardState the
//! append thread made durable: a node restarted from such storage would find its applied index
//! past its commit index and refuse to start.
//!
//! ```
//! use bytes::Bytes;
//! use raftcore::{Config, MemStorage, RawNode};
//! use raftcore::raftpb::{ConfState, Snapshot, SnapshotMetadata};
//!
//! // A single-voter group whose storage starts from a snapshot holding its configuration.
//! let mut storage = MemStorage::new();
//! storage
//!     .apply_snapshot(Snapshot {
//!         metadata: Some(SnapshotMetadata {
//!             conf_state: Some(ConfState { voters: vec![1], ..Default::default() }),
//!             index: 1,
//!             term: 1,
//!         }),
//!         ..Default::default()
//!     })
//!     .unwrap();
//! let mut node = RawNode::new(&Config::new(1), storage).unwrap();
//! node.campaign().unwrap();
//! node.propose(Bytes::from_static(b"hello")).ok(); // dropped until a leader exists
//!
//! let mut applied = Vec::new();
//! let mut proposed = false;
//! while node.has_ready() {
//!     let rd = node.ready();
//!     // 1. persist
//!     if let Some(hs) = rd.hard_state {
//!         node.store_mut().set_hard_state(hs);
//!     }
//!     node.store_mut().append(&rd.entries).unwrap();
//!     // 2. send rd.messages and rd.persisted_messages (none: a single node)
//!     // 3. apply
//!     applied.extend(rd.committed_entries.iter().map(|e| e.index));
//!     // 4. advance
//!     node.advance().unwrap();
//!     if node.role() == raftcore::StateRole::Leader && !proposed {
//!         node.propose(Bytes::from_static(b"hello")).unwrap();
//!         proposed = true;
//!     }
//! }
//! assert_eq!(applied, vec![2, 3]);
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod confchange;
pub mod config;
pub mod describe;
mod entry_chunks;
pub mod error;
mod lazy_vec;
mod log;
mod log_unstable;
pub mod quorum;
mod raft;
pub mod raftpb;
mod raw_node;
mod read_only;
mod rng;
#[cfg(feature = "sim")]
pub mod sim;
pub mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tracker;

pub use config::{
    AppendMode, Config, ReadOnlyOption, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NONE, NO_LIMIT,
};
pub use error::{DropReason, Error, Result, StorageError};
pub use raft::{
    ReadState, Reason, SoftState, StateRole, MAX_REMOTE_VALUE, MAX_TERM_JUMP,
    MAX_UNCONFIRMED_TERM_JUMP,
};
pub use raw_node::{BasicStatus, Peer, RawNode, Ready, SnapshotStatus, Status};
pub use read_only::MAX_PENDING_READS;
pub use storage::{MemStorage, RaftState, Storage};
