//! What a leader tracks about its group: the configuration, each peer's replication progress
//! with its flow control, and the votes of an election.

mod config;
mod inflights;
mod progress;
mod progress_map;
mod progress_tracker;
mod state;

pub use config::Config;
pub use inflights::Inflights;
pub use progress::Progress;
pub use progress_map::ProgressMap;
pub use progress_tracker::ProgressTracker;
pub use state::ProgressState;
