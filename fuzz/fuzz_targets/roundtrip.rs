//! See `tests/fuzz_logic/roundtrip.rs` for the input format and the checks.
//!
//! `cargo fuzz run --sanitizer none roundtrip` (stable toolchain).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_logic/roundtrip.rs"]
mod roundtrip;

fuzz_target!(|data: &[u8]| {
    roundtrip::run(data);
});
