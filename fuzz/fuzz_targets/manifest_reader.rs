//! Fuzz target: the manifest reader, bytes in, manifests and diagnostics out.
//!
//! The checks live in tests/fuzz_property.rs, shared with the `fuzz_regressions` test that
//! replays every input the fuzzer once failed on: no panic, plan and validate read the file
//! alike, and every spec read survives the status branch. libFuzzer adds the time and
//! memory limits (scripts/fuzz.sh).

#![no_main]

#[path = "../../tests/fuzz_property.rs"]
mod fuzz_property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_property::read_as_everyone_does(data));
