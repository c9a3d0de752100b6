#![no_main]
//! Fuzz target `roundtrip`: every packet decoded from arbitrary bytes must encode, to exactly
//! its `encoded_len`, and decode back to itself. See `../checks.rs`.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // each target runs only its own check
#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_roundtrip(data));
