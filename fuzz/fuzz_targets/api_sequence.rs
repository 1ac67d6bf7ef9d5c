//! See `tests/fuzz_logic/api_sequence.rs` for the input format and the checks.
//!
//! `cargo fuzz run --sanitizer none api_sequence` (stable toolchain).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_logic/api_sequence.rs"]
mod api_sequence;

fuzz_target!(|data: &[u8]| {
    api_sequence::run(data);
});
