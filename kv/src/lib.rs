//! raftkv: a replicated key-value server on raftcore, over real TCP and real disks.
//! `ARCHITECTURE.md` beside this crate draws the tasks and channels.

pub mod sm;
pub mod wal;
