//! cargo-fuzz target: `check_filter` from fuzz/checks.rs on arbitrary bytes.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_filter(data));
