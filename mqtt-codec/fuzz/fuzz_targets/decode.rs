#![no_main]
//! Fuzz target `decode`: arbitrary bytes, read by a decoder of each mode, must never panic
//! and must decode the same however they are cut into reads. See `../checks.rs`.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // each target runs only its own check
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_decode(data));
