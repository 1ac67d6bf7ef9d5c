//! Arbitrary bytes → raftpb messages stepped into a 3-node group's leader, follower and
//! candidate; see `tests/fuzz_logic/step_message.rs` for the input format and the checks.
//!
//! `cargo fuzz run --sanitizer none step_message` (stable toolchain).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_logic/step_message.rs"]
mod step_message;

fuzz_target!(|data: &[u8]| {
    step_message::run(data);
});
