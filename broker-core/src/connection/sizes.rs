//! The sizes an idle connection pays for, pinned: every connection holds one of each for its
//! whole life (in its task or on the heap), so a field added here costs ten thousand idle
//! connections its size ten thousand times. What an idle connection does not use is boxed
//! or allocated on first use (the will, topic aliases, held acknowledgements, QoS 2
//! identifiers); grow these only knowingly, and move what is rarely used behind a box.
//!
//! Struct layouts do not depend on the optimization level, so these hold in debug and
//! release alike (the task's future, which does, is measured by
//! transport-tcp/tests/idle_memory.rs).

use std::mem::size_of;

use super::driver::Driver;
use super::io::PacketReader;
use crate::ConnParam;
use crate::pipe::StreamPipe;
use crate::session::{SessionShared, SessionState};

#[test]
fn connection_state_stays_compact() {
    // In the task: the pipe's parameters and the driver (in the task of an awake
    // connection only: a quiet one goes dormant and lets its task go).
    assert!(size_of::<ConnParam>() <= 208, "{}", size_of::<ConnParam>());
    assert!(
        size_of::<Driver<'static, StreamPipe<tokio::net::TcpStream>>>() <= 216,
        "{}",
        size_of::<Driver<'static, StreamPipe<tokio::net::TcpStream>>>()
    );
    assert!(
        size_of::<PacketReader>() <= 48,
        "{}",
        size_of::<PacketReader>()
    );
}

#[test]
fn a_session_fits_its_allocator_class() {
    // The session's `Arc` (two counters and the session): at most 256 bytes, one of
    // jemalloc's size classes (the next is 320).
    let arc_inner = 2 * size_of::<usize>() + size_of::<SessionShared>();
    assert!(arc_inner <= 256, "{arc_inner}");
    assert!(
        size_of::<SessionState>() <= 96,
        "{}",
        size_of::<SessionState>()
    );
    // Its connection as the operator sees it, boxed: within the 80-byte class.
    assert!(
        size_of::<crate::ClientRecord>() <= 80,
        "{}",
        size_of::<crate::ClientRecord>()
    );
}

#[test]
fn a_dormant_connection_fits_its_allocator_class() {
    // What a dormant connection holds in the pool, boxed: within jemalloc's 320-byte class.
    assert!(
        size_of::<super::dormant::Dormant>() <= 320,
        "{}",
        size_of::<super::dormant::Dormant>()
    );
}
