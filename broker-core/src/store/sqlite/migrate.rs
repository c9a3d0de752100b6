//! Opening a file of schema version 1, which kept a row per delivery (`deliveries`) and per
//! message (`messages`): its deliveries, with their states, are moved into segments and the
//! two tables dropped, in one transaction, so the file is either converted whole or left
//! as it was. The other tables are the same in both versions.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{Connection, TransactionBehavior, params};

use super::columns::{
    IdBuild, decode, from_sql_int, optional_time, qos_from_sql, state_from_sql,
    subscription_ids_from_sql,
};
use super::segment::SegmentBuilder;
use super::{INSERT_SEGMENT, LoadError, SCHEMA_SEGMENTS, SCHEMA_VERSION, SEGMENT_BYTES};
use crate::store::{StoredDelivery, StoredMessage};

/// The tables of schema version 1, sorted.
pub(super) const V1_TABLES: [&str; 7] = [
    "deliveries",
    "inbound_qos2",
    "messages",
    "retained",
    "sessions",
    "subscriptions",
    "wills",
];

/// Converts a version 1 file to the current version.
pub(super) fn from_v1(conn: &mut Connection) -> Result<(), LoadError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA_SEGMENTS)?;
    let messages = v1_messages(&tx)?;
    let mut segment = SegmentBuilder::default();
    let mut next_id = 1i64;
    let mut moved = 0u64;
    {
        // Deliveries of missing sessions or messages are left behind (v1's own load
        // removed them too).
        let mut stmt = tx.prepare(
            "SELECT session, seq, message, qos, retain, subscription_ids, packet_id, state \
             FROM deliveries WHERE session IN (SELECT key FROM sessions) \
             ORDER BY session, seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let Some(message) = messages.get(&row.get::<_, i64>(2)?) else {
                continue;
            };
            let delivery = StoredDelivery {
                seq: from_sql_int(row.get(1)?),
                message: message.clone(),
                qos: qos_from_sql(row.get(3)?)?,
                retain: row.get(4)?,
                subscription_ids: subscription_ids_from_sql(row.get(5)?)?,
                state: state_from_sql(row.get(6)?, row.get(7)?)?,
            };
            segment.queue(from_sql_int(row.get(0)?), &delivery)?;
            moved += 1;
            if segment.size() >= SEGMENT_BYTES {
                write(&tx, &mut segment, &mut next_id)?;
            }
        }
    }
    write(&tx, &mut segment, &mut next_id)?;
    tx.execute_batch("DROP TABLE deliveries; DROP TABLE messages;")?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    tracing::info!(
        deliveries = moved,
        "session store: converted from schema version 1 to {SCHEMA_VERSION}"
    );
    Ok(())
}

fn v1_messages(conn: &Connection) -> Result<HashMap<i64, StoredMessage, IdBuild>, LoadError> {
    let mut messages = HashMap::default();
    let mut stmt = conn.prepare("SELECT id, packet, expires_at FROM messages")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let message = decode(Bytes::from(row.get::<_, Vec<u8>>(1)?))
            .map_err(|e| LoadError::Corrupt(format!("message {id} holds {e}")))?;
        messages.insert(
            id,
            StoredMessage {
                id: from_sql_int(id),
                message: Arc::new(message),
                expires_at: optional_time(row.get(2)?)?,
            },
        );
    }
    Ok(messages)
}

fn write(
    conn: &Connection,
    segment: &mut SegmentBuilder,
    next_id: &mut i64,
) -> Result<(), LoadError> {
    if let Some(finished) = segment.finish()? {
        conn.execute(INSERT_SEGMENT, params![*next_id, finished.data])?;
        *next_id += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::store::sqlite::SqliteStore;
    use crate::store::sqlite::columns::{encode, sql_int};
    use crate::store::{DeliveryState, Store, SyncPolicy};
    use mqtt_codec::{PacketId, QoS, TopicName};
    use std::time::Duration;

    /// Schema version 1, as the broker before segments created it.
    const V1_SCHEMA: &str = "
        CREATE TABLE sessions (key INTEGER PRIMARY KEY, client_id TEXT NOT NULL,
            expiry INTEGER, disconnected_at INTEGER);
        CREATE TABLE subscriptions (session INTEGER NOT NULL, filter TEXT NOT NULL,
            options INTEGER NOT NULL, id INTEGER, ord INTEGER NOT NULL,
            PRIMARY KEY (session, filter)) WITHOUT ROWID;
        CREATE TABLE messages (id INTEGER PRIMARY KEY, packet BLOB NOT NULL, expires_at INTEGER);
        CREATE TABLE deliveries (session INTEGER NOT NULL, seq INTEGER NOT NULL,
            message INTEGER NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
            subscription_ids BLOB, packet_id INTEGER, state INTEGER NOT NULL,
            PRIMARY KEY (session, seq)) WITHOUT ROWID;
        CREATE TABLE inbound_qos2 (session INTEGER NOT NULL, packet_id INTEGER NOT NULL,
            ord INTEGER NOT NULL, PRIMARY KEY (session, packet_id)) WITHOUT ROWID;
        CREATE TABLE retained (topic TEXT PRIMARY KEY, id INTEGER NOT NULL,
            packet BLOB NOT NULL, expires_at INTEGER);
        CREATE TABLE wills (client_id TEXT PRIMARY KEY, id INTEGER NOT NULL,
            packet BLOB NOT NULL, expires_at INTEGER, expiry_interval INTEGER,
            fire_at INTEGER NOT NULL);
        PRAGMA user_version = 1;
    ";

    fn packet(topic: &str, payload: &'static [u8]) -> Vec<u8> {
        let message = Message::new(
            TopicName::new(topic).unwrap_or_else(|_| unreachable!()),
            Bytes::from_static(payload),
            QoS::ExactlyOnce,
            false,
            None,
        );
        let mut buf = bytes::BytesMut::new();
        encode(&message, &mut buf).unwrap_or_else(|_| unreachable!());
        buf.to_vec()
    }

    #[test]
    fn a_version_1_file_opens_with_its_deliveries_in_segments() {
        let dir = std::env::temp_dir().join(format!(
            "broker-core-migrate-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|_| unreachable!());
        let path = dir.join("v1.db");
        {
            let db = Connection::open(&path).unwrap_or_else(|_| unreachable!());
            db.execute_batch(V1_SCHEMA)
                .unwrap_or_else(|_| unreachable!());
            db.execute_batch(
                "INSERT INTO sessions VALUES (1, 'c1', NULL, 5);
                 INSERT INTO sessions VALUES (-2, 'big', 60000, NULL);
                 INSERT INTO subscriptions VALUES (1, 'a/#', 1, 7, 1);
                 INSERT INTO inbound_qos2 VALUES (1, 9, 2);",
            )
            .unwrap_or_else(|_| unreachable!());
            let mut insert = db
                .prepare("INSERT INTO messages VALUES (?1, ?2, ?3)")
                .unwrap_or_else(|_| unreachable!());
            for (id, topic, expires) in [(10, "a/1", None), (11, "a/2", Some(1_700_000_000_000i64))]
            {
                insert
                    .execute(params![id, packet(topic, b"payload"), expires])
                    .unwrap_or_else(|_| unreachable!());
            }
            let mut insert = db
                .prepare("INSERT INTO deliveries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .unwrap_or_else(|_| unreachable!());
            let ids: Vec<u8> = [7u32, 9].iter().flat_map(|i| i.to_le_bytes()).collect();
            for row in [
                params![1, 1, 10, 1, false, Some(ids.clone()), Some(3), 1],
                params![1, 2, 11, 2, true, None::<Vec<u8>>, Some(4), 3],
                params![1, 3, 10, 1, false, None::<Vec<u8>>, None::<i64>, 0],
                params![
                    sql_int(u64::MAX - 1),
                    sql_int(u64::MAX),
                    11,
                    1,
                    false,
                    None::<Vec<u8>>,
                    None::<i64>,
                    0
                ],
                // A session that is gone: left behind.
                params![5, 1, 10, 1, false, None::<Vec<u8>>, None::<i64>, 0],
            ] {
                insert.execute(row).unwrap_or_else(|_| unreachable!());
            }
        }
        let mut store = SqliteStore::open(&path, SyncPolicy::Periodic(Duration::from_millis(100)))
            .unwrap_or_else(|e| panic!("{e}"));
        let snapshot = store.load(usize::MAX).unwrap_or_else(|e| panic!("{e}"));
        let one = snapshot
            .sessions
            .iter()
            .find(|s| s.key == 1)
            .unwrap_or_else(|| unreachable!());
        assert_eq!((one.subscriptions.len(), one.inbound_qos2.len()), (1, 1));
        let got: Vec<(u64, u64, &str, DeliveryState, usize)> = one
            .deliveries
            .iter()
            .map(|d| {
                (
                    d.seq,
                    d.message.id,
                    d.message.message.topic.as_str(),
                    d.state,
                    d.subscription_ids.len(),
                )
            })
            .collect();
        let pid = |id| PacketId::new(id).unwrap_or_else(|| unreachable!());
        assert_eq!(
            got,
            [
                (1, 10, "a/1", DeliveryState::AwaitingPubAck(pid(3)), 2),
                (2, 11, "a/2", DeliveryState::AwaitingPubComp(pid(4)), 0),
                (3, 10, "a/1", DeliveryState::Queued, 0),
            ]
        );
        assert!(Arc::ptr_eq(
            &one.deliveries[0].message.message,
            &one.deliveries[2].message.message
        ));
        assert!(one.deliveries[1].retain && one.deliveries[1].message.expires_at.is_some());
        let big = snapshot
            .sessions
            .iter()
            .find(|s| s.key == u64::MAX - 1)
            .unwrap_or_else(|| unreachable!());
        assert_eq!(
            big.deliveries.iter().map(|d| d.seq).collect::<Vec<_>>(),
            [u64::MAX]
        );
        drop(store);

        let db = Connection::open(&path).unwrap_or_else(|_| unreachable!());
        let version: i64 = db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(version, SCHEMA_VERSION);
        let segments: i64 = db
            .query_row("SELECT count(*) FROM segments", [], |r| r.get(0))
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(segments, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
