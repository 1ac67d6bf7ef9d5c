//! raftkv: a replicated key-value server on raftcore, over real TCP and real disks.
//! `ARCHITECTURE.md` beside this crate draws the tasks and channels.

pub mod bench;
pub mod http;
pub mod local;
pub mod metrics;
pub mod node;
pub mod server;
pub mod sm;
pub mod tls;
pub mod transport;
pub mod wal;
