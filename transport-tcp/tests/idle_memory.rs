//! Heap held per idle TCP connection, counted by an instrumented global allocator: clients
//! connect (MQTT 5, keep alive 600 s, as `nanomq bench conn` does) and go quiet, and the live
//! bytes the broker's side holds for them (by then dormant: the session, the dormant
//! connection in the pool, the registry entry, CONNECT's bytes) are divided by their number.
//! The bound keeps what issue 15 took out from coming back: no task while quiet, nothing
//! allocated for a will, aliases or acknowledgements the connection does not have.
//!
//! A release build measures what the broker ships (`cargo test --release -p transport-tcp
//! --test idle_memory -- --nocapture` prints it); `IDLE_EXIT=1` ends the process with the
//! connections open, for a heap profiler's report of what they hold (heaptrack's leaks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::alloc::System;
use std::io::{Read, Write};
use std::time::Duration;

use broker_core::{Broker, MqttConfig};
use bytes::BytesMut;
use mqtt_codec::{ClientId, Connect, Packet, ProtocolVersion};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Connections measured (each also an fd on the client side: with the warm-up ones, well
/// under the usual limit of 1,024 open files).
const CLIENTS: usize = 400;

/// Connections opened before the measurement, so that what grows once (maps, thread state)
/// is not counted per connection.
const WARM_UP: usize = 50;

/// The bound on heap bytes per idle connection. The connections are dormant by the time
/// they are counted (see broker-core's `connection::dormant`): release builds hold about
/// 890 B (the session 256, the dormant connection's box 320, its client record 80, its slot
/// and deadline in the pool, ...) where a task of its own took 1,690 B. The bound fails a
/// connection that keeps its task, or a box that grows into the next size class.
const BOUND: f64 = 960.0;

/// How long the connections are left to go quiet (and dormant) before a count.
const SETTLE: Duration = Duration::from_millis(1_200);

#[test]
fn idle_connection_heap() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = Broker::new(MqttConfig::default());
    let listener = runtime
        .block_on(transport_tcp::bind("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(transport_tcp::serve(
        listener,
        broker,
        std::future::pending::<()>(),
    ));
    let connect_bytes = |n: usize| {
        let mut connect = Connect::new(
            ProtocolVersion::V5,
            ClientId::new(format!("bench-{n}")).unwrap(),
        );
        connect.keep_alive = 600;
        let mut out = BytesMut::new();
        Packet::Connect(Box::new(connect))
            .encode(ProtocolVersion::V5, &mut out)
            .unwrap();
        out.to_vec()
    };
    let mut clients = Vec::new();
    let open = |n: usize| {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(&connect_bytes(n)).unwrap();
        let mut connack = [0u8; 64];
        let read = stream.read(&mut connack).unwrap();
        assert!(read >= 4, "no CONNACK");
        stream
    };
    for n in 0..WARM_UP {
        clients.push(open(n));
    }
    // Past the moment quiet connections go dormant (half a second): the pool's thread has
    // started, and the warm-up connections do not leave their tasks within the region.
    std::thread::sleep(SETTLE);
    let region = Region::new(GLOBAL);
    let mut buffers = Vec::with_capacity(CLIENTS);
    for n in WARM_UP..WARM_UP + CLIENTS {
        buffers.push(open(n));
    }
    std::thread::sleep(SETTLE);
    let change = region.change();
    let bytes = change.bytes_allocated as isize - change.bytes_deallocated as isize
        + change.bytes_reallocated;
    let count = change.allocations as isize - change.deallocations as isize;
    let per_connection = bytes as f64 / CLIENTS as f64;
    println!(
        "heap per idle connection: {per_connection:.0} B in {:.2} allocations",
        count as f64 / CLIENTS as f64
    );
    if std::env::var_os("IDLE_EXIT").is_some() {
        std::process::exit(0);
    }
    assert!(
        per_connection <= BOUND,
        "{per_connection:.0} B per idle connection, more than {BOUND}"
    );
    drop(buffers);
    drop(clients);
}
