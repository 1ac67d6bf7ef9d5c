//! Pieces shared by the benchmark targets: a counting allocator, the process's resident memory,
//! and in-memory raftcore clusters driven the way `../shared/bench/SCENARIOS.md` prescribes.
//!
//! A bench target includes this with `mod common;`. The counting allocator is only a type here:
//! the target that wants it installs it with `#[global_allocator]`.

#![allow(dead_code)]

pub mod alloc;
pub mod cluster;
pub mod mem;
