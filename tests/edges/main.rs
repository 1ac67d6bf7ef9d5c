//! Corners of the core that the scenario tests do not reach, one concern per module: behaviour
//! that mutation testing showed no other test observed (docs/testing.md). One test binary, so
//! that a rebuild links once.

#[path = "../common/mod.rs"]
mod common;

mod append_acks;
mod async_writes;
mod bootstrap;
mod conf_change_proposals;
mod election_edges;
mod input_gate;
mod learner_promotion;
mod local_messages;
mod progress_flow;
mod proposal_limits;
mod quorum_edges;
mod raw_node_views;
mod read_contexts;
mod recycle;
mod restart;
mod snapshot_reports;
mod tracker_edges;
mod transfer_and_removal;
