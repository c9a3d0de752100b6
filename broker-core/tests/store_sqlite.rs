//! `SqliteStore` against its specification, `MemoryStore`: the same changes load back as the
//! same snapshot after the file is closed and opened again. Also: messages shared by
//! deliveries are stored once and deleted with their last delivery; retried and failed
//! batches leave no trace; files that are not a session store are refused, named, and left
//! as they were; churn does not grow the file.

// broker-core's dev-dependency on itself turns the `sqlite` feature (and `rusqlite`) on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_core::{
    DeliveryState, MemoryStore, Message, SessionExpiry, Snapshot, SqliteStore, Store, StoreError,
    StoreOp, StoredDelivery, StoredMessage, StoredSubscription, StoredWill, SyncPolicy,
};
use bytes::Bytes;
use mqtt_codec::{
    ClientId, PacketId, PayloadFormat, PublishProperties, QoS, RetainHandling, SubscriptionId,
    SubscriptionOptions, TopicFilter, TopicName, UserProperty,
};
use support::TempDir;

/// A wall-clock time in whole milliseconds (what the store keeps).
fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

fn properties() -> Box<PublishProperties> {
    Box::new(PublishProperties {
        payload_format_indicator: Some(PayloadFormat::Utf8),
        response_topic: Some(TopicName::new("reply/here").unwrap()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        content_type: Some("text/plain".into()),
        user_properties: vec![UserProperty::new("k", "v"), UserProperty::new("k", "w")],
        ..PublishProperties::default()
    })
}

fn message(
    id: u64,
    topic: &str,
    payload: &'static [u8],
    qos: QoS,
    expires_at: Option<SystemTime>,
) -> StoredMessage {
    StoredMessage {
        id,
        message: Arc::new(Message::new(
            TopicName::new(topic).unwrap(),
            Bytes::from_static(payload),
            qos,
            false,
            None,
        )),
        expires_at,
    }
}

fn with_properties(mut m: StoredMessage) -> StoredMessage {
    let mut inner = (*m.message).clone();
    inner.properties = Some(properties());
    inner.retain = true;
    m.message = Arc::new(inner);
    m
}

fn delivery(seq: u64, message: &StoredMessage, qos: QoS, ids: &[u32]) -> StoredDelivery {
    StoredDelivery {
        seq,
        message: message.clone(),
        qos,
        retain: seq.is_multiple_of(2),
        subscription_ids: ids
            .iter()
            .map(|&i| SubscriptionId::new(i).unwrap())
            .collect(),
        state: DeliveryState::Queued,
    }
}

fn session(key: u64, client_id: &str, expiry: SessionExpiry) -> StoreOp {
    StoreOp::Session {
        key,
        client_id: ClientId::new(client_id).unwrap(),
        expiry,
        disconnected_at: None,
    }
}

fn queued(session: u64, delivery: StoredDelivery) -> StoreOp {
    StoreOp::Queued { session, delivery }
}

fn completed(session: u64, seq: u64, message: u64) -> StoreOp {
    StoreOp::Completed {
        session,
        seq,
        message,
    }
}

fn subscribed(
    session: u64,
    filter: &str,
    options: SubscriptionOptions,
    id: Option<u32>,
) -> StoreOp {
    StoreOp::Subscribed {
        session,
        subscription: StoredSubscription {
            filter: TopicFilter::new(filter).unwrap(),
            options,
            id: id.and_then(SubscriptionId::new),
        },
    }
}

fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

/// A snapshot as text, in a canonical order (MemoryStore keeps retained messages and wills
/// in hash maps), so two snapshots compare with `assert_eq!` and print their difference.
fn canonical(mut snapshot: Snapshot) -> String {
    snapshot
        .retained
        .sort_by(|a, b| a.message.topic.as_str().cmp(b.message.topic.as_str()));
    snapshot
        .wills
        .sort_by(|a, b| a.client_id.as_str().cmp(b.client_id.as_str()));
    format!("{snapshot:#?}")
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SyncPolicy::Periodic(Duration::from_millis(100))).unwrap()
}

/// Rows in `table`, read through a connection of the test's own.
fn rows(db: &rusqlite::Connection, table: &str) -> i64 {
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Every delivery: `load` with no window.
const ALL: usize = usize::MAX;

const TABLES: [&str; 8] = [
    "sessions",
    "subscriptions",
    "segments",
    "segment_done",
    "delivery_states",
    "inbound_qos2",
    "retained",
    "wills",
];

/// How many times `needle` occurs in the stored segments.
fn occurrences_in_segments(db: &rusqlite::Connection, needle: &[u8]) -> usize {
    let blobs: Vec<Vec<u8>> = db
        .prepare("SELECT data FROM segments")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    blobs
        .iter()
        .map(|b| b.windows(needle.len()).filter(|w| *w == needle).count())
        .sum()
}

/// Batches that use every kind of change, including changes about sessions, deliveries and
/// messages that do not exist, and keys and sequence numbers above `i64::MAX`.
fn every_kind_of_change() -> Vec<Vec<StoreOp>> {
    let m1 = with_properties(message(
        1,
        "a/b",
        b"one",
        QoS::AtLeastOnce,
        Some(at(10_000)),
    ));
    let m2 = message(2, "a/c", b"two", QoS::ExactlyOnce, None);
    let m3 = message(3, "a/d", b"", QoS::AtLeastOnce, Some(at(1)));
    let big = u64::MAX - 1;
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::SendIfNew,
    };
    let first = vec![
        session(1, "c1", SessionExpiry::After(Duration::from_secs(3600))),
        StoreOp::Session {
            key: 2,
            client_id: ClientId::new("c2").unwrap(),
            expiry: SessionExpiry::Never,
            disconnected_at: Some(at(5)),
        },
        session(3, "c3", SessionExpiry::Immediately),
        session(big, "big", SessionExpiry::After(Duration::ZERO)),
        subscribed(1, "a/#", options, Some(7)),
        subscribed(1, "b/+", SubscriptionOptions::new(QoS::ExactlyOnce), None),
        // Replaced: it moves behind b/+, as in MemoryStore.
        subscribed(1, "a/#", SubscriptionOptions::new(QoS::AtMostOnce), Some(8)),
        subscribed(
            2,
            "$share/g/x",
            SubscriptionOptions::new(QoS::AtLeastOnce),
            None,
        ),
        subscribed(
            2,
            "y",
            SubscriptionOptions::new(QoS::AtLeastOnce),
            Some(268_435_455),
        ),
        subscribed(3, "z", SubscriptionOptions::new(QoS::AtLeastOnce), None),
        StoreOp::Unsubscribed {
            session: 2,
            filter: TopicFilter::new("$share/g/x").unwrap(),
        },
        queued(1, delivery(1, &m1, QoS::AtLeastOnce, &[7])),
        queued(2, delivery(1, &m1, QoS::AtLeastOnce, &[])),
        queued(1, delivery(2, &m2, QoS::ExactlyOnce, &[7, 9])),
        queued(1, delivery(3, &m2, QoS::AtLeastOnce, &[])),
        queued(3, delivery(1, &m3, QoS::AtLeastOnce, &[])),
        // Sequence numbers increase in the order of queueing, past i64::MAX.
        queued(big, delivery(4, &m3, QoS::AtLeastOnce, &[])),
        queued(big, delivery(u64::MAX, &m3, QoS::AtLeastOnce, &[1])),
        StoreOp::Qos2Received {
            session: 1,
            packet_id: pid(5),
        },
        StoreOp::Qos2Received {
            session: 1,
            packet_id: pid(3),
        },
        StoreOp::Qos2Received {
            session: 1,
            packet_id: pid(65535),
        },
        StoreOp::Qos2Received {
            session: 1,
            packet_id: pid(3),
        },
        StoreOp::Qos2Received {
            session: 3,
            packet_id: pid(1),
        },
        StoreOp::Retained {
            message: with_properties(message(10, "r/1", b"r1", QoS::AtLeastOnce, None)),
        },
        StoreOp::Retained {
            message: message(11, "r/2", b"r2", QoS::AtMostOnce, Some(at(99))),
        },
        StoreOp::WillScheduled {
            will: StoredWill {
                client_id: ClientId::new("c1").unwrap(),
                message: with_properties(message(0, "will/c1", b"bye", QoS::ExactlyOnce, None)),
                expiry_interval: Some(60),
                fire_at: at(5_000),
            },
        },
        StoreOp::WillScheduled {
            will: StoredWill {
                client_id: ClientId::new("c9").unwrap(),
                message: message(0, "will/c9", b"bye", QoS::AtMostOnce, Some(at(7))),
                expiry_interval: None,
                fire_at: at(6_000),
            },
        },
    ];
    let second = vec![
        // An existing session keeps its client id; its expiry and disconnection change.
        StoreOp::Session {
            key: 1,
            client_id: ClientId::new("other").unwrap(),
            expiry: SessionExpiry::After(Duration::from_millis(1500)),
            disconnected_at: Some(at(20)),
        },
        StoreOp::Progressed {
            session: 1,
            seq: 1,
            state: DeliveryState::AwaitingPubAck(pid(10)),
        },
        StoreOp::Progressed {
            session: 1,
            seq: 2,
            state: DeliveryState::AwaitingPubRec(pid(11)),
        },
        StoreOp::Progressed {
            session: 1,
            seq: 2,
            state: DeliveryState::AwaitingPubComp(pid(11)),
        },
        StoreOp::Progressed {
            session: 1,
            seq: 3,
            state: DeliveryState::AwaitingPubRec(pid(65535)),
        },
        StoreOp::Progressed {
            session: 1,
            seq: 99,
            state: DeliveryState::AwaitingPubAck(pid(1)),
        },
        StoreOp::Progressed {
            session: 77,
            seq: 1,
            state: DeliveryState::AwaitingPubAck(pid(1)),
        },
        completed(2, 1, 1),
        completed(2, 77, 1),
        completed(77, 1, 1),
        StoreOp::Qos2Released {
            session: 1,
            packet_id: pid(3),
        },
        StoreOp::Qos2Released {
            session: 1,
            packet_id: pid(4),
        },
        StoreOp::Retained {
            message: message(12, "r/1", b"r1 again", QoS::ExactlyOnce, None),
        },
        StoreOp::RetainedCleared {
            topic: TopicName::new("r/2").unwrap(),
        },
        StoreOp::RetainedCleared {
            topic: TopicName::new("nothing/here").unwrap(),
        },
        StoreOp::WillDone {
            client_id: ClientId::new("c9").unwrap(),
        },
        StoreOp::WillDone {
            client_id: ClientId::new("nobody").unwrap(),
        },
        StoreOp::SessionEnded { key: 3 },
        StoreOp::SessionEnded { key: 42 },
        queued(42, delivery(1, &m1, QoS::AtLeastOnce, &[])),
        subscribed(42, "q", SubscriptionOptions::new(QoS::AtLeastOnce), None),
        StoreOp::Qos2Received {
            session: 42,
            packet_id: pid(1),
        },
        StoreOp::Unsubscribed {
            session: 42,
            filter: TopicFilter::new("q").unwrap(),
        },
    ];
    vec![first, second]
}

#[test]
fn every_change_round_trips_like_the_memory_store() {
    let dir = TempDir::new("round-trip");
    // Inside a directory that does not exist yet: `open` creates it.
    let path = dir.join("nested/store.db");
    let mut memory = MemoryStore::new();
    let mut sqlite = SqliteStore::open(&path, SyncPolicy::Always).unwrap();
    for batch in every_kind_of_change() {
        memory.apply(&batch).unwrap();
        sqlite.apply(&batch).unwrap();
    }
    let expected = canonical(memory.load(ALL).unwrap());
    assert_eq!(canonical(sqlite.load(ALL).unwrap()), expected);
    drop(sqlite);

    let mut sqlite = open(&path);
    let snapshot = sqlite.load(ALL).unwrap();
    // Deliveries of one message share one `Message`.
    let one = snapshot.sessions.iter().find(|s| s.key == 1).unwrap();
    let (d2, d3) = (&one.deliveries[1], &one.deliveries[2]);
    assert_eq!((d2.message.id, d3.message.id), (2, 2));
    assert!(Arc::ptr_eq(&d2.message.message, &d3.message.message));
    assert_eq!(canonical(snapshot), expected);

    // Loading again (orphan sweep, counts rebuilt) changes nothing.
    assert_eq!(canonical(sqlite.load(ALL).unwrap()), expected);
}

#[test]
fn a_message_is_stored_once_and_goes_with_its_last_delivery() {
    let dir = TempDir::new("sharing");
    let path = dir.join("store.db");
    let mut store = open(&path);
    let db = rusqlite::Connection::open(&path).unwrap();
    let m = message(7, "t", b"shared payload", QoS::AtLeastOnce, None);
    let mut batch: Vec<StoreOp> = (1..=3)
        .map(|k| session(k, &format!("c{k}"), SessionExpiry::Never))
        .collect();
    batch.extend((1..=3).map(|k| queued(k, delivery(1, &m, QoS::AtLeastOnce, &[]))));
    store.apply(&batch).unwrap();
    // One segment for the batch, holding the message once for its three deliveries.
    assert_eq!(rows(&db, "segments"), 1);
    assert_eq!(occurrences_in_segments(&db, b"shared payload"), 1);

    store.apply(&[completed(1, 1, 7)]).unwrap();
    store.apply(&[completed(2, 1, 7)]).unwrap();
    assert_eq!((rows(&db, "segments"), rows(&db, "segment_done")), (1, 1));

    // Where the deliveries are is rebuilt from the file by `open`, without `load`.
    drop(store);
    let mut store = open(&path);
    store.apply(&[completed(3, 1, 7)]).unwrap();
    assert_eq!((rows(&db, "segments"), rows(&db, "segment_done")), (0, 0));

    // A message queued again after its segment went is stored again.
    store
        .apply(&[queued(1, delivery(2, &m, QoS::AtLeastOnce, &[]))])
        .unwrap();
    assert_eq!(occurrences_in_segments(&db, b"shared payload"), 1);
    let snapshot = store.load(ALL).unwrap();
    assert_eq!(
        snapshot.sessions[0].deliveries[0].message.message.payload,
        "shared payload"
    );
}

#[test]
fn a_large_batch_is_split_into_segments_that_later_changes_find() {
    static BIG: [u8; 100_000] = [7; 100_000];
    let dir = TempDir::new("split");
    let path = dir.join("store.db");
    let mut store = open(&path);
    let mut memory = MemoryStore::new();
    let mut batch = vec![
        session(1, "c1", SessionExpiry::Never),
        session(2, "c2", SessionExpiry::Never),
    ];
    // About 6 MB: more than one segment holds.
    for seq in 1..=60 {
        let m = message(seq, "big", &BIG, QoS::AtLeastOnce, None);
        batch.push(queued(1, delivery(seq, &m, QoS::AtLeastOnce, &[])));
        if seq % 20 == 0 {
            batch.push(queued(2, delivery(seq / 20, &m, QoS::ExactlyOnce, &[])));
        }
    }
    // Changes within the same batch, to deliveries in the segment already written and in
    // the one still being built.
    batch.extend([
        StoreOp::Progressed {
            session: 1,
            seq: 1,
            state: DeliveryState::AwaitingPubAck(pid(1)),
        },
        completed(1, 2, 2),
        completed(2, 1, 20),
        StoreOp::Progressed {
            session: 1,
            seq: 60,
            state: DeliveryState::AwaitingPubAck(pid(2)),
        },
        completed(1, 59, 59),
    ]);
    store.apply(&batch).unwrap();
    memory.apply(&batch).unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(rows(&db, "segments"), 2);
    let later = [
        completed(1, 3, 3),
        StoreOp::Progressed {
            session: 2,
            seq: 3,
            state: DeliveryState::AwaitingPubRec(pid(9)),
        },
    ];
    store.apply(&later).unwrap();
    memory.apply(&later).unwrap();
    drop(store);
    let mut store = open(&path);
    assert_eq!(
        canonical(store.load(ALL).unwrap()),
        canonical(memory.load(ALL).unwrap())
    );
    // Everything done: both segments go.
    let rest: Vec<StoreOp> = (1..=60)
        .map(|seq| completed(1, seq, seq))
        .chain((1..=3).map(|seq| completed(2, seq, seq * 20)))
        .collect();
    store.apply(&rest).unwrap();
    assert_eq!(
        (
            rows(&db, "segments"),
            rows(&db, "segment_done"),
            rows(&db, "delivery_states")
        ),
        (0, 0, 0)
    );
}

#[test]
fn session_ended_removes_everything_it_held() {
    let dir = TempDir::new("session-ended");
    let path = dir.join("store.db");
    let mut store = open(&path);
    let db = rusqlite::Connection::open(&path).unwrap();
    let shared = message(1, "shared", b"s", QoS::AtLeastOnce, None);
    let own = message(2, "own", b"o", QoS::ExactlyOnce, None);
    store
        .apply(&[
            session(1, "c1", SessionExpiry::Never),
            session(2, "c2", SessionExpiry::Never),
            subscribed(1, "a", SubscriptionOptions::new(QoS::AtLeastOnce), None),
            subscribed(1, "b", SubscriptionOptions::new(QoS::AtLeastOnce), Some(1)),
            queued(1, delivery(1, &shared, QoS::AtLeastOnce, &[])),
            queued(1, delivery(2, &own, QoS::ExactlyOnce, &[1])),
            queued(1, delivery(3, &own, QoS::AtLeastOnce, &[])),
            queued(2, delivery(1, &shared, QoS::AtLeastOnce, &[])),
            StoreOp::Qos2Received {
                session: 1,
                packet_id: pid(9),
            },
        ])
        .unwrap();
    store
        .apply(&[StoreOp::Progressed {
            session: 1,
            seq: 2,
            state: DeliveryState::AwaitingPubRec(pid(4)),
        }])
        .unwrap();
    assert_eq!(
        (rows(&db, "segments"), rows(&db, "delivery_states")),
        (1, 1)
    );

    store.apply(&[StoreOp::SessionEnded { key: 1 }]).unwrap();
    assert_eq!(rows(&db, "sessions"), 1);
    assert_eq!(rows(&db, "subscriptions"), 0);
    assert_eq!(rows(&db, "inbound_qos2"), 0);
    assert_eq!(rows(&db, "delivery_states"), 0);
    // The segment stays for the delivery session 2 still waits for.
    assert_eq!((rows(&db, "segments"), rows(&db, "segment_done")), (1, 1));
    let snapshot = store.load(ALL).unwrap();
    assert_eq!(snapshot.sessions.len(), 1);
    assert_eq!(snapshot.sessions[0].deliveries.len(), 1);
    assert_eq!(
        snapshot.sessions[0].deliveries[0]
            .message
            .message
            .topic
            .as_str(),
        "shared"
    );

    store.apply(&[StoreOp::SessionEnded { key: 2 }]).unwrap();
    for table in TABLES {
        assert_eq!(rows(&db, table), 0, "{table}");
    }
}

#[test]
fn applying_a_batch_twice_is_harmless() {
    let dir = TempDir::new("twice");
    let mut once = open(&dir.join("once.db"));
    let twice_path = dir.join("twice.db");
    let mut twice = open(&twice_path);
    let mut memory = MemoryStore::new();
    for batch in every_kind_of_change() {
        once.apply(&batch).unwrap();
        twice.apply(&batch).unwrap();
        twice.apply(&batch).unwrap();
        memory.apply(&batch).unwrap();
        memory.apply(&batch).unwrap();
    }
    let expected = canonical(once.load(ALL).unwrap());
    assert_eq!(canonical(twice.load(ALL).unwrap()), expected);
    assert_eq!(canonical(memory.load(ALL).unwrap()), expected);

    // The deliveries were stored once, not per application: completing them deletes their
    // segment.
    let db = rusqlite::Connection::open(&twice_path).unwrap();
    let segments = rows(&db, "segments");
    let m = message(50, "t", b"x", QoS::AtLeastOnce, None);
    let batch = [
        queued(1, delivery(10, &m, QoS::AtLeastOnce, &[])),
        queued(2, delivery(10, &m, QoS::AtLeastOnce, &[])),
    ];
    twice.apply(&batch).unwrap();
    twice.apply(&batch).unwrap();
    twice.apply(&[completed(1, 10, 50)]).unwrap();
    twice.apply(&[completed(2, 10, 50)]).unwrap();
    twice.apply(&[completed(2, 10, 50)]).unwrap();
    assert_eq!(rows(&db, "segments"), segments);
}

#[test]
fn a_failed_batch_leaves_nothing_behind() {
    let dir = TempDir::new("failed");
    let path = dir.join("store.db");
    let mut store = open(&path);
    let db = rusqlite::Connection::open(&path).unwrap();
    store
        .apply(&[session(1, "c1", SessionExpiry::Never)])
        .unwrap();
    // A trigger of the test's own makes the last change of the batch fail.
    db.execute_batch(
        "CREATE TRIGGER fail BEFORE INSERT ON wills BEGIN SELECT RAISE(ABORT, 'injected'); END",
    )
    .unwrap();
    let m = message(5, "t", b"x", QoS::AtLeastOnce, None);
    let batch = [
        queued(1, delivery(1, &m, QoS::AtLeastOnce, &[])),
        StoreOp::WillScheduled {
            will: StoredWill {
                client_id: ClientId::new("c1").unwrap(),
                message: message(0, "w", b"w", QoS::AtMostOnce, None),
                expiry_interval: None,
                fire_at: at(0),
            },
        },
    ];
    let err = store.apply(&batch).unwrap_err();
    assert!(matches!(err, StoreError::Write { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(rows(&db, "segments"), 0);

    // The retry succeeds, and the delivery is stored once: its completion deletes it.
    db.execute_batch("DROP TRIGGER fail").unwrap();
    store.apply(&batch).unwrap();
    assert_eq!((rows(&db, "segments"), rows(&db, "wills")), (1, 1));
    store.apply(&[completed(1, 1, 5)]).unwrap();
    assert_eq!(rows(&db, "segments"), 0);
}

#[test]
fn changes_for_an_ended_session_are_skipped() {
    let dir = TempDir::new("ended");
    let path = dir.join("store.db");
    let mut store = open(&path);
    let mut memory = MemoryStore::new();
    let m = message(1, "t", b"x", QoS::AtLeastOnce, None);
    let first = [session(1, "c1", SessionExpiry::Never)];
    let second = [StoreOp::SessionEnded { key: 1 }];
    // Arrives after the session ended, in a later batch.
    let third = [
        queued(1, delivery(1, &m, QoS::AtLeastOnce, &[])),
        subscribed(1, "a", SubscriptionOptions::new(QoS::AtLeastOnce), None),
        StoreOp::Qos2Received {
            session: 1,
            packet_id: pid(1),
        },
        StoreOp::Progressed {
            session: 1,
            seq: 1,
            state: DeliveryState::AwaitingPubAck(pid(2)),
        },
    ];
    for batch in [&first[..], &second, &third] {
        store.apply(batch).unwrap();
        memory.apply(batch).unwrap();
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    for table in TABLES {
        assert_eq!(rows(&db, table), 0, "{table}");
    }
    assert_eq!(
        canonical(store.load(ALL).unwrap()),
        canonical(memory.load(ALL).unwrap())
    );
}

/// Whether `err` is one `open` may give for a file that is not a store, naming `path`.
fn assert_refused(err: &StoreError, path: &Path) {
    assert!(
        matches!(
            err,
            StoreError::Unreadable { .. } | StoreError::Corrupt { .. }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn random_bytes_are_refused_and_left_unchanged() {
    let dir = TempDir::new("random");
    let path = dir.join("store.db");
    // xorshift: arbitrary bytes, the same in every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..65_536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    for sync in [
        SyncPolicy::Always,
        SyncPolicy::Periodic(Duration::from_secs(1)),
    ] {
        let err = SqliteStore::open(&path, sync).unwrap_err();
        assert!(matches!(err, StoreError::Unreadable { .. }), "{err:?}");
        assert_refused(&err, &path);
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn foreign_newer_and_damaged_databases_are_refused_and_left_unchanged() {
    let dir = TempDir::new("foreign");

    let foreign = dir.join("foreign.db");
    let db = rusqlite::Connection::open(&foreign).unwrap();
    db.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    drop(db);
    let before = std::fs::read(&foreign).unwrap();
    let err = SqliteStore::open(&foreign, SyncPolicy::Always).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_refused(&err, &foreign);
    assert!(err.to_string().contains("accounts"), "{err}");
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    let newer = dir.join("newer.db");
    drop(open(&newer));
    let db = rusqlite::Connection::open(&newer).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let err = SqliteStore::open(&newer, SyncPolicy::Always).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_refused(&err, &newer);
    assert!(err.to_string().contains("99"), "{err}");

    // A store whose pages were overwritten.
    let damaged = dir.join("damaged.db");
    let mut store = open(&damaged);
    let payload: &'static [u8] = &[0xAB; 3000];
    let m = message(1, "t", payload, QoS::AtLeastOnce, None);
    let mut batch = Vec::new();
    for k in 0..200 {
        batch.push(session(k, &format!("client-{k}"), SessionExpiry::Never));
        batch.push(queued(k, delivery(1, &m, QoS::AtLeastOnce, &[])));
        batch.push(subscribed(
            k,
            "a/b",
            SubscriptionOptions::new(QoS::AtLeastOnce),
            None,
        ));
    }
    store.apply(&batch).unwrap();
    // Closing the last connection checkpoints the WAL into the file and removes it.
    drop(store);
    let mut bytes = std::fs::read(&damaged).unwrap();
    assert!(bytes.len() > 8 * 4096, "{}", bytes.len());
    for b in &mut bytes[2 * 4096..5 * 4096] {
        *b = 0x5A;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let err = SqliteStore::open(&damaged, SyncPolicy::Always).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_refused(&err, &damaged);
    assert_eq!(std::fs::read(&damaged).unwrap(), bytes);
}

#[test]
fn a_directory_or_unreadable_file_is_refused() {
    let dir = TempDir::new("unreadable");

    let directory = dir.join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let err = SqliteStore::open(&directory, SyncPolicy::Always).unwrap_err();
    assert!(matches!(err, StoreError::Unreadable { .. }), "{err:?}");
    assert_refused(&err, &directory);

    // Its parent directory cannot be created: a file is in the way.
    let blocked = dir.join("a-file/store.db");
    std::fs::write(dir.join("a-file"), b"not a directory").unwrap();
    let err = SqliteStore::open(&blocked, SyncPolicy::Always).unwrap_err();
    assert!(matches!(err, StoreError::Unreadable { .. }), "{err:?}");
    assert_refused(&err, &blocked);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;

        let path = dir.join("store.db");
        let mut store = open(&path);
        store
            .apply(&[session(1, "c1", SessionExpiry::Never)])
            .unwrap();
        drop(store);
        let set_mode = |mode| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        // Root reads and writes whatever the mode says: then there is nothing to test.
        set_mode(0o000);
        if std::fs::File::open(&path).is_err() {
            let err = SqliteStore::open(&path, SyncPolicy::Always).unwrap_err();
            assert!(matches!(err, StoreError::Unreadable { .. }), "{err:?}");
            assert_refused(&err, &path);
        } else {
            eprintln!("skipped: mode 000 does not stop this user from reading");
        }
        set_mode(0o444);
        if std::fs::OpenOptions::new().write(true).open(&path).is_err() {
            let err = SqliteStore::open(&path, SyncPolicy::Always).unwrap_err();
            assert!(matches!(err, StoreError::Unreadable { .. }), "{err:?}");
            assert_refused(&err, &path);
        } else {
            eprintln!("skipped: mode 444 does not stop this user from writing");
        }
        set_mode(0o644);
        // Refusing it did not damage it.
        let snapshot = open(&path).load(ALL).unwrap();
        assert_eq!(snapshot.sessions.len(), 1);
    }
}

/// The file's logical size in pages, through the test's connection.
fn page_count(db: &rusqlite::Connection) -> i64 {
    db.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn churn_leaves_no_rows_and_the_file_stops_growing() {
    const ROUNDS: u64 = 20;
    const SESSIONS: u64 = 500;
    static PAYLOAD: [u8; 512] = [0x42; 512];
    let dir = TempDir::new("churn");
    let path = dir.join("store.db");
    let wal = dir.join("store.db-wal");
    let mut store = open(&path);
    let db = rusqlite::Connection::open(&path).unwrap();
    let mut pages = Vec::new();
    let mut checkpointed = Vec::new();
    let mut largest_wal = 0;
    for round in 1..=ROUNDS {
        let base = round * 10_000;
        let shared = message(base, "churn/shared", &PAYLOAD, QoS::AtLeastOnce, None);
        let mut start = Vec::new();
        let mut end = Vec::new();
        for i in 0..SESSIONS {
            let key = base + i;
            let own = message(
                base + 1 + i,
                "churn/own",
                &PAYLOAD,
                QoS::ExactlyOnce,
                Some(at(i)),
            );
            start.push(session(
                key,
                &format!("churn-{i}"),
                SessionExpiry::After(Duration::from_secs(60)),
            ));
            start.push(subscribed(
                key,
                "churn/#",
                SubscriptionOptions::new(QoS::ExactlyOnce),
                Some(1),
            ));
            start.push(queued(key, delivery(1, &shared, QoS::AtLeastOnce, &[1])));
            start.push(queued(key, delivery(2, &own, QoS::ExactlyOnce, &[1])));
            start.push(StoreOp::Qos2Received {
                session: key,
                packet_id: pid(7),
            });
            end.push(StoreOp::Progressed {
                session: key,
                seq: 1,
                state: DeliveryState::AwaitingPubAck(pid(1)),
            });
            if i % 2 == 0 {
                end.push(completed(key, 2, base + 1 + i));
            }
            end.push(StoreOp::SessionEnded { key });
        }
        store.apply(&start).unwrap();
        // One segment, holding the shared message once and each session's own.
        assert_eq!(rows(&db, "segments"), 1);
        let size: i64 = db
            .query_row("SELECT length(data) FROM segments", [], |r| r.get(0))
            .unwrap();
        let messages = (SESSIONS + 1) as i64 * 512;
        assert!(messages < size && size < messages * 5 / 4, "{size}");
        store.apply(&end).unwrap();
        largest_wal = largest_wal.max(file_size(&wal));
        pages.push(page_count(&db));
        if round == 5 || round == ROUNDS {
            let (busy, _, _): (i64, i64, i64) = db
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
            assert_eq!(busy, 0);
            checkpointed.push(file_size(&path));
        }
    }
    for table in TABLES {
        assert_eq!(rows(&db, table), 0, "{table}");
    }
    eprintln!(
        "pages per round: {pages:?}; file after rounds 5 and {ROUNDS}: {checkpointed:?}; largest WAL: {largest_wal}"
    );
    // Freed pages are reused: the file holds one round's worth, whatever the number of rounds.
    let (at5, last) = (pages[4], pages[pages.len() - 1]);
    assert!(last <= at5 + 4, "{pages:?}");
    assert!(
        checkpointed[1] <= checkpointed[0] + 4 * 4096,
        "{checkpointed:?}"
    );
    // The WAL is checkpointed and reused: about 1000 pages (4 MiB) plus one batch at most,
    // where 20 rounds without checkpoints would write well over 10 MiB.
    assert!(largest_wal <= 6 * 1024 * 1024, "{largest_wal}");
}

#[test]
fn a_second_store_on_the_same_file_is_refused() {
    let dir = TempDir::new("locked");
    let path = dir.join("nanomq.db");
    let mut first = SqliteStore::open(&path, SyncPolicy::Always).unwrap();
    first.load(ALL).unwrap();
    first.apply(&[StoreOp::SessionEnded { key: 1 }]).unwrap();
    let error = SqliteStore::open(&path, SyncPolicy::Always)
        .and_then(|mut second| second.load(ALL).map(|_| ()))
        .expect_err("two stores on one file");
    let text = error.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("another broker"),
        "{text}"
    );
    drop(first);
    let mut again = SqliteStore::open(&path, SyncPolicy::Always).unwrap();
    again.load(ALL).unwrap();
}

/// What a read of queued deliveries gave, for comparing two stores.
fn summary(read: &[StoredDelivery]) -> Vec<String> {
    read.iter()
        .map(|d| {
            format!(
                "{} {} {:?} {:?} {:?} {} {:?} {:?} {:?}",
                d.seq,
                d.message.id,
                d.message.message.topic,
                d.message.message.payload,
                d.qos,
                d.retain,
                d.subscription_ids,
                d.state,
                d.message.expires_at
            )
        })
        .collect()
}

#[test]
fn queued_deliveries_read_back_as_memory_store_gives_them() {
    let dir = TempDir::new("read-queued");
    let mut sqlite = open(&dir.join("s.db"));
    let mut memory = MemoryStore::new();
    let mut apply = |batch: &[StoreOp]| {
        sqlite.apply(batch).unwrap();
        memory.apply(batch).unwrap();
    };
    apply(&[
        session(1, "a", SessionExpiry::Never),
        session(2, "b", SessionExpiry::Never),
    ]);
    // Three batches (segments), each holding both sessions' deliveries interleaved, one
    // message shared by both; some with subscription identifiers, some expiring.
    let mut seq = 0;
    for batch in 0..3u64 {
        let mut ops = Vec::new();
        for i in 0..120u64 {
            seq += 1;
            let id = 1000 * (batch + 1) + i;
            let expires = (i % 7 == 0).then(|| at(id));
            let m = message(id, &format!("t/{i}"), b"payload", QoS::AtLeastOnce, expires);
            let m = if i % 5 == 0 { with_properties(m) } else { m };
            let ids: &[u32] = if i % 3 == 0 { &[7, 9] } else { &[] };
            ops.push(queued(1, delivery(seq, &m, QoS::AtLeastOnce, ids)));
            ops.push(queued(2, delivery(seq, &m, QoS::ExactlyOnce, &[])));
        }
        apply(&ops);
    }
    // Some done, some in flight: a read gives neither.
    apply(&[
        completed(1, 5, 1004),
        completed(1, 130, 2009),
        StoreOp::Progressed {
            session: 1,
            seq: 6,
            state: DeliveryState::AwaitingPubAck(pid(3)),
        },
    ]);
    for (session, from, limit) in [
        (1, 1, 50),
        (1, 51, 50),
        (1, 101, 50),
        (1, 151, 400),
        // Again from the start, and from inside a run the last read went past.
        (1, 1, 10),
        (1, 60, 3),
        (2, 100, 200),
        (2, 361, 10),
        (3, 1, 10),
    ] {
        let got = sqlite.read_queued(session, from, limit).unwrap();
        let want = memory.read_queued(session, from, limit).unwrap();
        assert_eq!(
            summary(&got),
            summary(&want),
            "{session} from {from}, {limit}"
        );
    }
    let all = sqlite.read_queued(1, 1, 1000).unwrap();
    assert_eq!(all.len(), 360 - 3);
    // One message, read for both sessions, is one copy while they hold it.
    let a = sqlite.read_queued(1, 1, 1).unwrap();
    let b = sqlite.read_queued(2, 1, 1).unwrap();
    assert!(Arc::ptr_eq(&a[0].message.message, &b[0].message.message));
}
