//! raftkv: a replicated key-value server on raftcore.
