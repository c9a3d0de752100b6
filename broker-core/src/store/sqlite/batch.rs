//! One batch of changes being applied in its transaction ([`Batch`]): each change turned
//! into the rows it touches, with the statements that come by the thousand prepared once per
//! batch ([`Hot`]).

use mqtt_codec::SubscriptionId;
use rusqlite::{CachedStatement, Connection, params};

use super::columns::{encode, expiry_to_sql, sql_int, state_to_sql, unix_ms};
use super::index::{Index, Place, Touched};
use super::{INSERT_SEGMENT, SEGMENT_BYTES, Scratch};
use crate::store::StoreOp;

/// One batch being applied: its transaction, and what the writer keeps.
pub(super) struct Batch<'a, 't> {
    /// The transaction.
    tx: &'t Connection,
    hot: Hot<'t>,
    index: &'a mut Index,
    scratch: &'a mut Scratch,
}

impl<'a, 't> Batch<'a, 't> {
    /// A batch in transaction `tx`, over the writer's `index` and `scratch`.
    pub(super) fn new(tx: &'t Connection, index: &'a mut Index, scratch: &'a mut Scratch) -> Self {
        Self {
            tx,
            hot: Hot::default(),
            index,
            scratch,
        }
    }

    /// Applies one change. A change about a session that is not stored (it ended before
    /// the change reached the store) is skipped.
    pub(super) fn apply(&mut self, op: &StoreOp) -> rusqlite::Result<()> {
        let tx = self.tx;
        let scratch = &mut *self.scratch;
        match op {
            StoreOp::Session {
                key,
                client_id,
                expiry,
                disconnected_at,
            } => {
                // An existing session keeps its client id, as in MemoryStore.
                tx.prepare_cached(
                    "INSERT INTO sessions (key, client_id, expiry, disconnected_at) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (key) DO UPDATE \
                     SET expiry = excluded.expiry, disconnected_at = excluded.disconnected_at",
                )?
                .execute(params![
                    sql_int(*key),
                    client_id.as_str(),
                    expiry_to_sql(*expiry),
                    disconnected_at.map(unix_ms),
                ])?;
                scratch.sessions.insert(sql_int(*key));
            }
            StoreOp::SessionEnded { key } => self.end_session(*key)?,
            StoreOp::Subscribed {
                session,
                subscription,
            } => {
                if !scratch.sessions.contains(&sql_int(*session)) {
                    return Ok(());
                }
                // REPLACE gives a replaced subscription a new `ord`: it moves to the end, as in
                // MemoryStore.
                let ord = next_ord(scratch);
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO subscriptions (session, filter, options, id, ord) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    sql_int(*session),
                    subscription.filter.as_str(),
                    subscription.options.to_byte(),
                    subscription.id.map(SubscriptionId::get),
                    ord,
                ])?;
            }
            StoreOp::Unsubscribed { session, filter } => {
                tx.prepare_cached("DELETE FROM subscriptions WHERE session = ?1 AND filter = ?2")?
                    .execute(params![sql_int(*session), filter.as_str()])?;
            }
            StoreOp::Queued { session, delivery } => {
                if !scratch.sessions.contains(&sql_int(*session))
                    || self.index.locate(*session, delivery.seq).is_some()
                {
                    return Ok(());
                }
                let placed = scratch.segment.queue(*session, delivery)?;
                self.index.add_building(*session, delivery.seq, placed);
                if scratch.segment.size() >= SEGMENT_BYTES {
                    self.seal()?;
                }
            }
            StoreOp::Progressed {
                session,
                seq,
                state,
            } => {
                match self.index.locate(*session, *seq) {
                    Some(Place::Building(placed)) => scratch.segment.set_state(placed, *state),
                    Some(Place::Stored { segment, entry })
                        if !self.index.is_done(segment, entry) =>
                    {
                        let (packet_id, state) = state_to_sql(*state);
                        Hot::prepared(&mut self.hot.progressed, tx, PROGRESSED)?
                            .execute(params![sql_int(*session), sql_int(*seq), packet_id, state])?;
                        self.index.add_state(*session, *seq);
                    }
                    _ => {}
                }
            }
            StoreOp::Completed { session, seq, .. } => match self.index.locate(*session, *seq) {
                Some(Place::Building(placed)) => scratch.segment.mark_done(placed),
                Some(Place::Stored { segment, entry }) => {
                    self.index.mark_done(segment, entry);
                    if self.index.remove_state(*session, *seq) {
                        Hot::prepared(&mut self.hot.state_done, tx, STATE_DONE)?
                            .execute([sql_int(*session), sql_int(*seq)])?;
                    }
                }
                None => {}
            },
            StoreOp::Qos2Received { session, packet_id } => {
                if !scratch.sessions.contains(&sql_int(*session)) {
                    return Ok(());
                }
                let ord = next_ord(scratch);
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO inbound_qos2 (session, packet_id, ord) \
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![sql_int(*session), packet_id.get(), ord])?;
            }
            StoreOp::Qos2Released { session, packet_id } => {
                tx.prepare_cached(
                    "DELETE FROM inbound_qos2 WHERE session = ?1 AND packet_id = ?2",
                )?
                .execute(params![sql_int(*session), packet_id.get()])?;
            }
            StoreOp::Retained { message } => {
                encode(&message.message, &mut scratch.packet)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO retained (topic, id, packet, expires_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    message.message.topic.as_str(),
                    sql_int(message.id),
                    scratch.packet.as_ref(),
                    message.expires_at.map(unix_ms),
                ])?;
            }
            StoreOp::RetainedCleared { topic } => {
                tx.prepare_cached("DELETE FROM retained WHERE topic = ?1")?
                    .execute([topic.as_str()])?;
            }
            StoreOp::WillScheduled { will } => {
                encode(&will.message.message, &mut scratch.packet)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO wills \
                     (client_id, id, packet, expires_at, expiry_interval, fire_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    will.client_id.as_str(),
                    sql_int(will.message.id),
                    scratch.packet.as_ref(),
                    will.message.expires_at.map(unix_ms),
                    will.expiry_interval,
                    unix_ms(will.fire_at),
                ])?;
            }
            StoreOp::WillDone { client_id } => {
                tx.prepare_cached("DELETE FROM wills WHERE client_id = ?1")?
                    .execute([client_id.as_str()])?;
            }
        }
        Ok(())
    }

    /// A session ended: it goes, with everything it holds.
    fn end_session(&mut self, key: u64) -> rusqlite::Result<()> {
        let tx = self.tx;
        self.scratch.sessions.remove(&sql_int(key));
        for building in self.index.end_session(key) {
            self.scratch.segment.drop_run(building);
        }
        if self.index.remove_states_of(key) {
            tx.prepare_cached("DELETE FROM delivery_states WHERE session = ?1")?
                .execute([sql_int(key)])?;
        }
        for sql in [
            "DELETE FROM subscriptions WHERE session = ?1",
            "DELETE FROM inbound_qos2 WHERE session = ?1",
            "DELETE FROM sessions WHERE key = ?1",
        ] {
            tx.prepare_cached(sql)?.execute([sql_int(key)])?;
        }
        Ok(())
    }

    /// Writes the segment being built, if it holds anything.
    pub(super) fn seal(&mut self) -> rusqlite::Result<()> {
        if self.scratch.segment.is_empty() {
            return Ok(());
        }
        let Some(segment) = self.scratch.segment.finish()? else {
            return Ok(());
        };
        let id = self.index.next_segment_id();
        Hot::prepared(&mut self.hot.insert_segment, self.tx, INSERT_SEGMENT)?
            .execute(params![id, segment.data])?;
        self.index.sealed(id, &segment);
        self.scratch.segment.recycle(segment.data);
        Ok(())
    }

    /// See [`write_touched`].
    pub(super) fn write_touched(&mut self) -> rusqlite::Result<Vec<i64>> {
        write_touched(self.tx, self.index)
    }
}

/// Writes the done bitmaps that changed, and deletes the segments all done; returns the
/// ids of those deleted.
pub(super) fn write_touched(conn: &Connection, index: &mut Index) -> rusqlite::Result<Vec<i64>> {
    let mut deleted = Vec::new();
    for (id, touched) in index.take_touched() {
        match touched {
            Touched::Done(done) => {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO segment_done (segment, done) VALUES (?1, ?2)",
                )?
                .execute(params![id, done])?;
            }
            Touched::Empty => {
                conn.prepare_cached("DELETE FROM segments WHERE id = ?1")?
                    .execute([id])?;
                conn.prepare_cached("DELETE FROM segment_done WHERE segment = ?1")?
                    .execute([id])?;
                deleted.push(id);
            }
        }
    }
    Ok(deleted)
}

const PROGRESSED: &str = "INSERT OR REPLACE INTO delivery_states (session, seq, packet_id, state) \
     VALUES (?1, ?2, ?3, ?4)";
const STATE_DONE: &str = "DELETE FROM delivery_states WHERE session = ?1 AND seq = ?2";

/// The statements of the changes that come by the thousand, taken from rusqlite's
/// statement cache once per batch rather than once per change (a cache lookup hashes the
/// SQL text).
#[derive(Default)]
struct Hot<'t> {
    insert_segment: Option<CachedStatement<'t>>,
    progressed: Option<CachedStatement<'t>>,
    state_done: Option<CachedStatement<'t>>,
}

impl<'t> Hot<'t> {
    /// The statement in `slot`, prepared on first use in this batch.
    fn prepared<'s>(
        slot: &'s mut Option<CachedStatement<'t>>,
        conn: &'t Connection,
        sql: &str,
    ) -> rusqlite::Result<&'s mut CachedStatement<'t>> {
        if slot.is_none() {
            *slot = Some(conn.prepare_cached(sql)?);
        }
        slot.as_mut().ok_or(rusqlite::Error::InvalidQuery)
    }
}

fn next_ord(scratch: &mut Scratch) -> i64 {
    let ord = scratch.next_ord;
    scratch.next_ord = ord.saturating_add(1);
    ord
}
