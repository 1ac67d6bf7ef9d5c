//! raftcore: the Raft consensus protocol as a pure, deterministic state machine.

pub mod config;
pub mod describe;
pub mod error;
pub mod raftpb;
pub mod storage;

pub use config::{
    AppendMode, Config, ReadOnlyOption, LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NONE, NO_LIMIT,
};
pub use error::{Error, Result, StorageError};
pub use storage::{RaftState, Storage};
