//! How fast the session stores apply batches of changes, as the journal's writer thread
//! hands them over: each batch queues 5,000 QoS 1 deliveries over 100 persistent sessions
//! and completes the 5,000 the previous batch queued. Either one message goes to all 100
//! sessions (fan-out: SQLite keeps it once for its 100 deliveries), or every delivery has a
//! message of its own. `MemoryStore` runs in the same group as the baseline. Run with
//! `cargo bench -p broker-core --bench store`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_core::{
    DeliveryState, MemoryStore, Message, SessionExpiry, SqliteStore, Store, StoreOp,
    StoredDelivery, StoredMessage, SyncPolicy,
};
use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::{ClientId, QoS, TopicName};

const SESSIONS: u64 = 100;
const PER_SESSION: u64 = 50;

fn message(id: u64) -> StoredMessage {
    StoredMessage {
        id,
        message: Arc::new(Message::new(
            TopicName::new("bench/topic").unwrap(),
            Bytes::from_static(&[0x42; 64]),
            QoS::AtLeastOnce,
            false,
            None,
        )),
        expires_at: None,
    }
}

/// The changes of batch `n`.
fn batch(n: u64, fan_out: bool) -> Vec<StoreOp> {
    let id = |seq: u64, k: u64| if fan_out { seq } else { seq * SESSIONS + k };
    let mut ops = Vec::with_capacity((2 * SESSIONS * PER_SESSION) as usize);
    for i in 0..PER_SESSION {
        let seq = n * PER_SESSION + i + 1;
        let shared = message(seq);
        for k in 0..SESSIONS {
            if n > 0 {
                let old = seq - PER_SESSION;
                ops.push(StoreOp::Completed {
                    session: k,
                    seq: old,
                    message: id(old, k),
                });
            }
            let message = if fan_out {
                shared.clone()
            } else {
                message(id(seq, k))
            };
            ops.push(StoreOp::Queued {
                session: k,
                delivery: StoredDelivery {
                    seq,
                    message,
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    subscription_ids: Vec::new(),
                    state: DeliveryState::Queued,
                },
            });
        }
    }
    ops
}

fn sessions() -> Vec<StoreOp> {
    (0..SESSIONS)
        .map(|k| StoreOp::Session {
            key: k,
            client_id: ClientId::new(format!("c{k}")).unwrap(),
            expiry: SessionExpiry::Never,
            disconnected_at: None,
        })
        .collect()
}

fn run(c: &mut Criterion, name: &str, mut store: impl Store, fan_out: bool) {
    store.apply(&sessions()).unwrap();
    let mut group = c.benchmark_group(if fan_out { "fan_out" } else { "own_messages" });
    group.throughput(Throughput::Elements(2 * SESSIONS * PER_SESSION));
    store.apply(&batch(0, fan_out)).unwrap();
    let mut n = 0;
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        // The changes are built outside the measurement: it measures the store alone.
        b.iter_batched(
            || {
                n += 1;
                batch(n, fan_out)
            },
            |ops| store.apply(&ops).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn stores(c: &mut Criterion) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("nanomq-store-bench-{}-{nanos}", std::process::id()));
    for fan_out in [true, false] {
        run(c, "memory", MemoryStore::new(), fan_out);
        for (name, sync) in [
            (
                "sqlite_periodic",
                SyncPolicy::Periodic(Duration::from_millis(100)),
            ),
            ("sqlite_always", SyncPolicy::Always),
        ] {
            let path = dir.join(format!("{name}-{fan_out}.db"));
            run(c, name, SqliteStore::open(&path, sync).unwrap(), fan_out);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, stores);
criterion_main!(benches);
