//! Reading the store back, once, at start-up: sessions with their subscriptions,
//! deliveries (from the segments, with the states of those in flight; of the queued ones,
//! only a window: see [`Windowed`]) and inbound QoS 2 identifiers; retained messages;
//! delayed wills. Whatever refers to something gone is removed on the way, and the
//! writer's [`Index`] is built from what was read.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use bytes::Bytes;
use mqtt_codec::{SubscriptionOptions, TopicFilter};
use rusqlite::Connection;

use super::columns::{
    IdBuild, client_id_from_sql, decode, expiry_from_sql, from_sql_int, from_unix_ms,
    optional_time, packet_id_from_sql, sql_int, state_from_sql, subscription_id_from_sql,
};
use super::index::Index;
use super::segment::{self, bit, set_bit};
use super::{LoadError, write_touched};
use crate::message::Message;
use crate::store::window::Windowed;
use crate::store::{DeliveryState, Snapshot, StoredDelivery, StoredMessage, StoredSession};
use crate::store::{StoredSubscription, StoredWill};

/// What `load` read.
pub(super) struct Loaded {
    pub(super) snapshot: Snapshot,
    /// Where the stored deliveries are.
    pub(super) index: Index,
    /// The largest `ord` in use.
    pub(super) max_ord: i64,
}

/// Removes what refers to nothing, then reads everything (of each session's queued
/// deliveries, the first `window`), inside the caller's transaction. Deliveries whose
/// session is gone are marked done, and segments left with none are deleted.
pub(super) fn read_all(conn: &Connection, window: usize) -> Result<Loaded, LoadError> {
    remove_orphans(conn)?;
    let mut sessions = read_sessions(conn)?;
    read_subscriptions(conn, &mut sessions)?;
    let mut states = read_delivery_states(conn)?;
    let mut index = read_segments(conn, &mut sessions, &mut states, window)?;
    remove_stale_states(conn, states)?;
    write_touched(conn, &mut index)?;
    read_inbound_qos2(conn, &mut sessions)?;
    let retained = read_retained(conn)?;
    let wills = read_wills(conn)?;
    let max_ord = max_ord(conn)?;
    Ok(Loaded {
        snapshot: Snapshot {
            sessions: sessions.list,
            retained,
            wills,
        },
        index,
        max_ord,
    })
}

/// Sessions being read, findable by their key as stored.
struct Sessions {
    /// In `u64` key order, as MemoryStore gives them.
    list: Vec<StoredSession>,
    index: HashMap<i64, usize>,
}

impl Sessions {
    /// After `remove_orphans`, every row read belongs to a session: `None` cannot happen.
    fn get_mut(&mut self, key: i64) -> Option<&mut StoredSession> {
        self.index.get(&key).and_then(|&i| self.list.get_mut(i))
    }

    /// Where the session stored as `key` is in `list`.
    fn position(&self, key: i64) -> Option<usize> {
        self.index.get(&key).copied()
    }
}

fn read_sessions(conn: &Connection) -> Result<Sessions, LoadError> {
    let mut list = Vec::new();
    let mut stmt = conn.prepare("SELECT key, client_id, expiry, disconnected_at FROM sessions")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let key = from_sql_int(row.get(0)?);
        list.push(StoredSession {
            key,
            client_id: client_id_from_sql(row.get(1)?)?,
            expiry: expiry_from_sql(row.get(2)?)?,
            disconnected_at: optional_time(row.get(3)?)?,
            subscriptions: Vec::new(),
            deliveries: Vec::new(),
            inbound_qos2: Vec::new(),
            unread: None,
        });
    }
    // SQLite sorts keys above i64::MAX first.
    list.sort_by_key(|s| s.key);
    let index = list
        .iter()
        .enumerate()
        .map(|(i, s)| (sql_int(s.key), i))
        .collect();
    Ok(Sessions { list, index })
}

fn read_subscriptions(conn: &Connection, sessions: &mut Sessions) -> Result<(), LoadError> {
    let mut stmt = conn
        .prepare("SELECT session, filter, options, id FROM subscriptions ORDER BY session, ord")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let filter: String = row.get(1)?;
        let options: i64 = row.get(2)?;
        let subscription = StoredSubscription {
            options: u8::try_from(options)
                .ok()
                .and_then(SubscriptionOptions::from_byte)
                .ok_or_else(|| {
                    LoadError::Corrupt(format!(
                        "invalid subscription options {options} for {filter:?}"
                    ))
                })?,
            filter: TopicFilter::new(filter.clone())
                .map_err(|e| LoadError::Corrupt(format!("invalid topic filter {filter:?}: {e}")))?,
            id: row
                .get::<_, Option<i64>>(3)?
                .map(subscription_id_from_sql)
                .transpose()?,
        };
        if let Some(s) = sessions.get_mut(row.get(0)?) {
            s.subscriptions.push(subscription);
        }
    }
    Ok(())
}

/// Reads the segments: their deliveries not done go to their sessions (in flight with the
/// state `states` gives them, which is taken from it), each sharing its message with the
/// other deliveries of the same message id; entries of sessions that are gone are marked
/// done.
fn read_segments(
    conn: &Connection,
    sessions: &mut Sessions,
    states: &mut States,
    window: usize,
) -> Result<Index, LoadError> {
    let max_segment: i64 =
        conn.query_row("SELECT coalesce(max(id), 0) FROM segments", [], |r| {
            r.get(0)
        })?;
    let mut index = Index::new(max_segment);
    let mut windows: Vec<Windowed> = sessions
        .list
        .iter()
        .map(|_| Windowed::new(window))
        .collect();
    // Weak: a message left unread by every session must not stay in memory for the load.
    let mut messages: HashMap<u64, (Weak<Message>, Option<SystemTime>), IdBuild> =
        HashMap::default();
    let mut stmt = conn.prepare(
        "SELECT s.id, s.data, d.done FROM segments AS s \
         LEFT JOIN segment_done AS d ON d.segment = s.id ORDER BY s.id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let corrupt = |e: String| LoadError::Corrupt(format!("segment {id}: {e}"));
        let data = row
            .get_ref(1)?
            .as_blob()
            .map_err(|e| corrupt(format!("data is {e}")))?;
        let parsed = segment::parse(data).map_err(corrupt)?;
        let bitmap_len = (parsed.entries as usize).div_ceil(8);
        let mut done = row
            .get::<_, Option<Vec<u8>>>(2)?
            .unwrap_or_else(|| vec![0; bitmap_len]);
        if done.len() != bitmap_len {
            return Err(corrupt(format!(
                "a done bitmap of {} bytes for {} deliveries",
                done.len(),
                parsed.entries
            )));
        }
        // The payload sizes of this segment's messages, for the deliveries only counted.
        let mut payload_lens: Vec<Option<usize>> = vec![None; parsed.messages.len()];
        let mut runs = Vec::with_capacity(parsed.runs.len());
        let (mut base, mut live, mut touched) = (0u32, 0u32, false);
        for run in parsed.runs {
            let len = u32::try_from(run.entries.len()).map_err(|e| corrupt(e.to_string()))?;
            let Some(at) = sessions.position(sql_int(run.session)) else {
                for entry in base..base + len {
                    touched |= !bit(&done, entry);
                    set_bit(&mut done, entry);
                }
                base += len;
                continue;
            };
            let windowed = windows
                .get_mut(at)
                .ok_or_else(|| corrupt("a session without its window".to_owned()))?;
            runs.push((run.session, run.first, len, base));
            // `parse` checked that the run's sequence numbers do not overflow.
            for (offset, entry) in (0u64..).zip(run.entries) {
                let seq = run.first.wrapping_add(offset);
                let done_already = bit(&done, base);
                base += 1;
                if done_already {
                    continue;
                }
                live += 1;
                let state = match states.remove(&(run.session, seq)) {
                    Some(state) => {
                        index.add_state(run.session, seq);
                        state
                    }
                    None => entry.state,
                };
                let found = parsed
                    .messages
                    .get(entry.message as usize)
                    .ok_or_else(|| corrupt(format!("no message {}", entry.message)))?;
                let packet = || data.get(found.packet.clone()).unwrap_or_default();
                if windowed.counts_only(seq, state) {
                    let size = match payload_lens.get(entry.message as usize).copied().flatten() {
                        Some(size) => size,
                        None => {
                            let message = decode(Bytes::copy_from_slice(packet()))
                                .map_err(|e| corrupt(format!("message {} holds {e}", found.id)))?;
                            let size = message.payload.len();
                            if let Some(slot) = payload_lens.get_mut(entry.message as usize) {
                                *slot = Some(size);
                            }
                            size
                        }
                    };
                    windowed.count(seq, size, found.id);
                    continue;
                }
                let message = match messages
                    .get(&found.id)
                    .and_then(|(m, at)| Some((m.upgrade()?, *at)))
                {
                    Some((message, expires_at)) => StoredMessage {
                        id: found.id,
                        message,
                        expires_at,
                    },
                    None => {
                        // A copy: a message kept for long must not keep its whole segment
                        // in memory.
                        let message = decode(Bytes::copy_from_slice(packet()))
                            .map_err(|e| corrupt(format!("message {} holds {e}", found.id)))?;
                        let stored = StoredMessage {
                            id: found.id,
                            message: Arc::new(message),
                            expires_at: optional_time(found.expires_at)?,
                        };
                        messages.insert(
                            found.id,
                            (Arc::downgrade(&stored.message), stored.expires_at),
                        );
                        stored
                    }
                };
                windowed.keep(StoredDelivery {
                    seq,
                    message,
                    qos: entry.qos,
                    retain: entry.retain,
                    subscription_ids: entry.subscription_ids,
                    state,
                });
            }
        }
        index.add_stored(id, live, done, &runs, touched || live == 0);
    }
    for (session, windowed) in sessions.list.iter_mut().zip(windows) {
        (session.deliveries, session.unread) = windowed.finish();
    }
    Ok(index)
}

/// The states of deliveries in flight, by session and sequence number.
type States = HashMap<(u64, u64), DeliveryState, IdBuild>;

fn read_delivery_states(conn: &Connection) -> Result<States, LoadError> {
    let mut states = States::default();
    let mut stmt = conn.prepare("SELECT session, seq, packet_id, state FROM delivery_states")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (key, seq): (i64, i64) = (row.get(0)?, row.get(1)?);
        let state = state_from_sql(row.get(2)?, row.get(3)?)?;
        states.insert((from_sql_int(key), from_sql_int(seq)), state);
    }
    Ok(states)
}

/// Deletes the states no delivery read took: their delivery is not stored, or done.
fn remove_stale_states(conn: &Connection, stale: States) -> Result<(), LoadError> {
    if !stale.is_empty() {
        tracing::warn!(
            removed = stale.len(),
            "session store: removed states of deliveries that are not stored"
        );
    }
    for (session, seq) in stale.into_keys() {
        conn.prepare_cached("DELETE FROM delivery_states WHERE session = ?1 AND seq = ?2")?
            .execute([sql_int(session), sql_int(seq)])?;
    }
    Ok(())
}

fn read_inbound_qos2(conn: &Connection, sessions: &mut Sessions) -> Result<(), LoadError> {
    let mut stmt =
        conn.prepare("SELECT session, packet_id FROM inbound_qos2 ORDER BY session, ord")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let packet_id = packet_id_from_sql(row.get(1)?)?;
        if let Some(s) = sessions.get_mut(row.get(0)?) {
            s.inbound_qos2.push(packet_id);
        }
    }
    Ok(())
}

fn read_retained(conn: &Connection) -> Result<Vec<StoredMessage>, LoadError> {
    let mut retained = Vec::new();
    let mut stmt = conn.prepare("SELECT topic, id, packet, expires_at FROM retained")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let topic: String = row.get(0)?;
        let message = decode(Bytes::from(row.get::<_, Vec<u8>>(2)?)).map_err(|e| {
            LoadError::Corrupt(format!("the retained message of {topic:?} holds {e}"))
        })?;
        retained.push(StoredMessage {
            id: from_sql_int(row.get(1)?),
            message: Arc::new(message),
            expires_at: optional_time(row.get(3)?)?,
        });
    }
    Ok(retained)
}

fn read_wills(conn: &Connection) -> Result<Vec<StoredWill>, LoadError> {
    let mut wills = Vec::new();
    let mut stmt = conn
        .prepare("SELECT client_id, id, packet, expires_at, expiry_interval, fire_at FROM wills")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let client_id = client_id_from_sql(row.get(0)?)?;
        let message = decode(Bytes::from(row.get::<_, Vec<u8>>(2)?)).map_err(|e| {
            LoadError::Corrupt(format!("the will of {:?} holds {e}", client_id.as_str()))
        })?;
        wills.push(StoredWill {
            client_id,
            message: StoredMessage {
                id: from_sql_int(row.get(1)?),
                message: Arc::new(message),
                expires_at: optional_time(row.get(3)?)?,
            },
            expiry_interval: row.get(4)?,
            fire_at: from_unix_ms(row.get(5)?)?,
        });
    }
    Ok(wills)
}

/// The largest `ord` in use (0 if none).
pub(super) fn max_ord(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT max(coalesce((SELECT max(ord) FROM subscriptions), 0), \
                    coalesce((SELECT max(ord) FROM inbound_qos2), 0))",
        [],
        |r| r.get(0),
    )
}

/// Deletes rows whose session or segment is gone. The writer never leaves any; this keeps a
/// damaged or hand-edited file from holding them forever, and says so.
fn remove_orphans(conn: &Connection) -> rusqlite::Result<()> {
    const ORPHANS: [(&str, &str); 4] = [
        (
            "subscriptions of missing sessions",
            "DELETE FROM subscriptions WHERE session NOT IN (SELECT key FROM sessions)",
        ),
        (
            "inbound QoS 2 identifiers of missing sessions",
            "DELETE FROM inbound_qos2 WHERE session NOT IN (SELECT key FROM sessions)",
        ),
        (
            "delivery states of missing sessions",
            "DELETE FROM delivery_states WHERE session NOT IN (SELECT key FROM sessions)",
        ),
        (
            "done bitmaps of missing segments",
            "DELETE FROM segment_done WHERE segment NOT IN (SELECT id FROM segments)",
        ),
    ];
    for (what, sql) in ORPHANS {
        let removed = conn.execute(sql, [])?;
        if removed > 0 {
            tracing::warn!(removed, "session store: removed {what}");
        }
    }
    Ok(())
}
