//! cargo-fuzz target: `check_manifest` from fuzz/checks.rs on arbitrary bytes.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_manifest(data));
