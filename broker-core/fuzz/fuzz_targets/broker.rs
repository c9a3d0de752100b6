#![no_main]
//! Fuzz target `broker`: the input is a script for four in-memory clients of one broker
//! (`broker_core::fuzzing`, whose documentation gives the format). A panic anywhere, a
//! broker whose state is inconsistent afterwards, or a client that received something it
//! should not have, is a crash. `tests/fuzz_regressions.rs` replays the crash inputs kept in
//! `tests/fuzz_regressions/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = broker_core::fuzzing::run(data) {
        panic!("{failure}");
    }
});
