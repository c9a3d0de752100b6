//! A store in an SQLite database file: what [`super::MemoryStore`] keeps, in tables, so that
//! it survives the process (and, with [`SyncPolicy::Always`], the machine).
//!
//! - **One transaction per batch.** The writer thread hands over thousands of changes at a
//!   time; each batch is one `IMMEDIATE` transaction of cached prepared statements, so a
//!   commit (and its fsync) is paid once per batch, not per change.
//! - **No reads on the write path.** A message is stored once, however many sessions it is
//!   queued for: deliveries refer to it by id, and the store counts the references in memory
//!   (rebuilt from the table when the file is opened or loaded) to know, without a query,
//!   when the first delivery must insert the message and when the last one must delete it.
//!   A failed batch puts the counts back as they were (an undo log), so the caller may retry
//!   it. Likewise the keys of the stored sessions are kept in memory, so a change about a
//!   session that has ended is skipped without a query.
//! - **Idempotent changes.** Inserts are `INSERT OR IGNORE` / `OR REPLACE`, deletes of what
//!   is gone are no-ops, and a change about a session that no longer exists (a message queued
//!   for a session ended in an earlier batch) is skipped, as [`super::MemoryStore`] does: a
//!   retried batch, or one that arrives after the session ended, never fails.
//! - **Never emptied by accident.** A file that cannot be read, is not a database, is
//!   damaged, or holds someone else's tables is refused with an error naming it; the store
//!   creates its schema only in a file that is new or empty.
//! - **Bounded on disk.** Deleted rows free their pages for reuse; the WAL is checkpointed
//!   automatically every [`WAL_AUTOCHECKPOINT_PAGES`] and truncated back to
//!   [`WAL_SIZE_LIMIT`] when it has grown past it.
//!
//! A message's topic, payload, QoS, retain flag and properties are kept as an encoded MQTT 5
//! PUBLISH (the codec is the format the broker already trusts, and decoding it back is
//! zero-copy); its expiry is a separate column, as a wall-clock time.
//!
//! Units: instants are Unix milliseconds (`INTEGER`, negative before 1970); a session expiry
//! is `NULL` for never, `-1` for immediately, otherwise milliseconds. `u64` keys, sequence
//! numbers and message ids are stored bit for bit as SQLite's signed 64-bit integers.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    ClientId, Decoder, Packet, PacketId, ProtocolVersion, Publish, PublishQoS, QoS, SubscriptionId,
    SubscriptionOptions, TopicFilter,
};
use rusqlite::{
    CachedStatement, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction,
    TransactionBehavior, params,
};

use super::{DeliveryState, Snapshot, Store, StoreError, StoreOp, StoredDelivery};
use super::{StoredMessage, StoredSession, StoredSubscription, StoredWill, SyncPolicy};
use crate::SessionExpiry;
use crate::message::Message;

/// The schema this code reads and writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The tables of [`SCHEMA`], sorted: a file at [`SCHEMA_VERSION`] must hold exactly these.
const TABLES: [&str; 7] = [
    "deliveries",
    "inbound_qos2",
    "messages",
    "retained",
    "sessions",
    "subscriptions",
    "wills",
];

/// The schema. Tables keyed by session use `WITHOUT ROWID` (one B-tree, rows stored in key
/// order, so a session's rows are together); the ones holding message bodies keep a rowid,
/// as SQLite advises for large rows. There are no foreign keys: the writer keeps the
/// references right itself, and `load` removes anything left dangling.
const SCHEMA: &str = "
CREATE TABLE sessions (
    key             INTEGER PRIMARY KEY,
    client_id       TEXT NOT NULL,
    expiry          INTEGER,
    disconnected_at INTEGER
);
CREATE TABLE subscriptions (
    session INTEGER NOT NULL,
    filter  TEXT NOT NULL,
    options INTEGER NOT NULL,
    id      INTEGER,
    ord     INTEGER NOT NULL,
    PRIMARY KEY (session, filter)
) WITHOUT ROWID;
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY,
    packet     BLOB NOT NULL,
    expires_at INTEGER
);
CREATE TABLE deliveries (
    session          INTEGER NOT NULL,
    seq              INTEGER NOT NULL,
    message          INTEGER NOT NULL,
    qos              INTEGER NOT NULL,
    retain           INTEGER NOT NULL,
    subscription_ids BLOB,
    packet_id        INTEGER,
    state            INTEGER NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE TABLE inbound_qos2 (
    session   INTEGER NOT NULL,
    packet_id INTEGER NOT NULL,
    ord       INTEGER NOT NULL,
    PRIMARY KEY (session, packet_id)
) WITHOUT ROWID;
CREATE TABLE retained (
    topic      TEXT PRIMARY KEY,
    id         INTEGER NOT NULL,
    packet     BLOB NOT NULL,
    expires_at INTEGER
);
CREATE TABLE wills (
    client_id       TEXT PRIMARY KEY,
    id              INTEGER NOT NULL,
    packet          BLOB NOT NULL,
    expires_at      INTEGER,
    expiry_interval INTEGER,
    fire_at         INTEGER NOT NULL
);
";

/// WAL pages after which a commit checkpoints (SQLite's default, stated so it is not lost):
/// about 4 MiB with 4 KiB pages. Larger would make fewer, longer checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 1000;

/// The size the WAL file is truncated back to when it is reset after a checkpoint, so one
/// huge batch does not leave a huge file behind forever.
const WAL_SIZE_LIMIT: u64 = 8 * 1024 * 1024;

/// Enough for every statement `apply` uses (rusqlite's default cache holds 16).
const STATEMENT_CACHE: usize = 32;

/// `DeliveryState` as the `state` column holds it.
const STATE_QUEUED: i64 = 0;
const STATE_AWAITING_PUBACK: i64 = 1;
const STATE_AWAITING_PUBREC: i64 = 2;
const STATE_AWAITING_PUBCOMP: i64 = 3;

/// `SessionExpiry::Immediately` in the `expiry` column (`NULL` is `Never`; a session that
/// ends with its connection is not normally stored, but is not refused).
const EXPIRY_IMMEDIATELY: i64 = -1;

/// A [`Store`] in an SQLite database file (WAL mode).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    /// Held while the store is open; declared after `conn`, so released after it closes.
    _lock: std::fs::File,
    /// The path, as errors name it.
    location: String,
    scratch: Scratch,
}

/// What `apply` keeps between and within batches.
#[derive(Debug, Default)]
struct Scratch {
    /// How many deliveries refer to each stored message.
    refs: RefCounts,
    /// The next value of the `ord` columns, which keep subscriptions and inbound QoS 2
    /// identifiers in the order [`super::MemoryStore`] gives them back in.
    next_ord: i64,
    /// The encoded PUBLISH being written (reused: no allocation per message).
    packet: BytesMut,
    /// The messages of the deliveries a `SessionEnded` deleted.
    released: Vec<i64>,
    /// The keys of the stored sessions, so that a delivery for a session that has ended is
    /// skipped without asking the database for every delivery. After a failed batch it is
    /// read again from the file.
    sessions: Keys,
}

/// Session keys.
type Keys = HashSet<i64, BuildHasherDefault<IdHash>>;

/// Reference counts by message identifier.
type Counts = HashMap<i64, u32, BuildHasherDefault<IdHash>>;

/// The hash of a message identifier. Identifiers are sequential integers, and the counts
/// are read and written for every delivery: a multiply spreads them over the table at a
/// fraction of SipHash's cost (no peer chooses them, so there is nothing to defend against).
#[derive(Debug, Default, Clone, Copy)]
struct IdHash(u64);

impl Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, n: i64) {
        let h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

/// Reference counts of stored messages, by message id. A batch changes them in place and
/// notes each count's value before its first change, so that a failed batch can put them
/// back exactly as they match the tables (one hash lookup per change, not one per map).
#[derive(Debug, Default)]
struct RefCounts {
    committed: Counts,
    /// The counts the current batch changed, with their values before it (0: absent).
    undo: Vec<(i64, u32)>,
}

impl RefCounts {
    fn get(&self, message: i64) -> u32 {
        self.committed.get(&message).copied().unwrap_or(0)
    }

    fn set(&mut self, message: i64, count: u32) {
        let before = if count == 0 {
            self.committed.remove(&message)
        } else {
            self.committed.insert(message, count)
        };
        self.undo.push((message, before.unwrap_or(0)));
    }

    fn commit(&mut self) {
        self.undo.clear();
        if self.undo.capacity() > 64 * 1024 {
            self.undo = Vec::new();
        }
    }

    fn rollback(&mut self) {
        // Newest first: a count changed twice ends at its value from before the first.
        while let Some((message, before)) = self.undo.pop() {
            if before == 0 {
                self.committed.remove(&message);
            } else {
                self.committed.insert(message, before);
            }
        }
    }

    fn reset(&mut self, committed: Counts) {
        self.committed = committed;
        self.undo.clear();
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if missing) the database at `path`.
    ///
    /// `SyncPolicy::Always` -> `PRAGMA synchronous=FULL` (a committed batch survives power
    /// loss); `Periodic(_)` -> `synchronous=NORMAL` (survives a crash of the process).
    ///
    /// A file that cannot be opened or is not a database gives [`StoreError::Unreadable`];
    /// one that is damaged, written by another schema version or holding other tables gives
    /// [`StoreError::Corrupt`]. Such a file is left as it is.
    pub fn open(path: impl AsRef<Path>, sync: SyncPolicy) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        let unreadable = |reason: String| StoreError::Unreadable {
            location: location.clone(),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| unreadable(format!("cannot create {}: {e}", parent.display())))?;
        }
        // SQLite's own message for a directory is only "unable to open database file".
        if path.is_dir() {
            return Err(unreadable("it is a directory".to_owned()));
        }
        let lock = lock_file(path).map_err(unreadable)?;
        // No SQLITE_OPEN_URI: a path is a path, even if it starts with "file:".
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|e| classify(e, &location))?;
        // SQLite silently opens a write-protected file read-only; every batch would then
        // fail, so say why now.
        if conn
            .is_readonly("main")
            .map_err(|e| classify(e, &location))?
        {
            return Err(unreadable("the file is read-only".to_owned()));
        }
        prepare(&mut conn, sync).map_err(|e| e.into_store_error(&location))?;
        let (refs, max_ord) = reference_counts(&conn).map_err(|e| classify(e, &location))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let sessions = live_sessions(&conn).map_err(|e| classify(e, &location))?;
        Ok(Self {
            conn,
            _lock: lock,
            location,
            scratch: Scratch {
                refs: RefCounts {
                    committed: refs,
                    undo: Vec::new(),
                },
                next_ord: max_ord.saturating_add(1),
                packet: BytesMut::new(),
                released: Vec::new(),
                sessions,
            },
        })
    }

    fn apply_batch(&mut self, batch: &[StoreOp]) -> rusqlite::Result<()> {
        let Self { conn, scratch, .. } = self;
        // IMMEDIATE: take the write lock at BEGIN rather than at the first write.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut hot = Hot::default();
        for op in batch {
            apply_op(&tx, &mut hot, op, scratch)?;
        }
        drop(hot);
        tx.commit()
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let loaded = read_all(&mut self.conn).map_err(|e| e.into_store_error(&self.location))?;
        self.scratch.refs.reset(loaded.refs);
        self.scratch.next_ord = loaded.max_ord.saturating_add(1);
        self.scratch.sessions = loaded
            .snapshot
            .sessions
            .iter()
            .map(|s| sql_int(s.key))
            .collect();
        Ok(loaded.snapshot)
    }

    fn apply(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.apply_batch(batch) {
            Ok(()) => {
                self.scratch.refs.commit();
                Ok(())
            }
            Err(e) => {
                // The transaction rolled back when it was dropped; so do the counts, and
                // the sessions are what the file says (if it can say: if not, the retry
                // reads them again).
                self.scratch.refs.rollback();
                if let Ok(sessions) = live_sessions(&self.conn) {
                    self.scratch.sessions = sessions;
                }
                Err(StoreError::Write {
                    location: self.location.clone(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// Takes the lock that makes a broker the only one using the database at `path`: an
/// exclusive advisory lock on `PATH.lock`, held until the store is dropped. A second broker
/// started on the same file would otherwise interleave its writes with ours. A file of its
/// own, not the database: SQLite's locks on the database are its business (and closing
/// another descriptor of the database file would drop them).
fn lock_file(path: &Path) -> Result<std::fs::File, String> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another broker is using it (it holds the lock on {})",
            lock_path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("cannot lock {}: {e}", lock_path.display()))
        }
    }
}

/// Checks the file, creates the schema in a new one, and sets the pragmas.
fn prepare(conn: &mut Connection, sync: SyncPolicy) -> Result<(), LoadError> {
    // The first read of the file: "file is not a database" shows here.
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    quick_check(conn)?;
    let tables = table_names(conn)?;
    match version {
        0 if tables.is_empty() => {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        }
        0 => {
            return Err(LoadError::Corrupt(format!(
                "it holds tables that are not a session store's ({})",
                tables.join(", ")
            )));
        }
        SCHEMA_VERSION if tables == TABLES => {}
        SCHEMA_VERSION => {
            return Err(LoadError::Corrupt(format!(
                "its tables ({}) are not those of schema version {SCHEMA_VERSION} ({})",
                tables.join(", "),
                TABLES.join(", ")
            )));
        }
        other => {
            return Err(LoadError::Corrupt(format!(
                "it has schema version {other}; this broker reads version {SCHEMA_VERSION}"
            )));
        }
    }
    // Only now that the file is known to be ours: switching to WAL writes its header.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LoadError::Unreadable(format!(
            "cannot switch it to WAL mode (journal mode is {mode})"
        )));
    }
    let synchronous = match sync {
        SyncPolicy::Always => "FULL",
        SyncPolicy::Periodic(_) => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    // The pragma answers with the limit set; nothing to check in it.
    let _: i64 =
        conn.pragma_update_and_check(None, "journal_size_limit", WAL_SIZE_LIMIT, |r| r.get(0))?;
    Ok(())
}

/// `PRAGMA quick_check`: the structure of every page, without the slower index checks.
fn quick_check(conn: &Connection) -> Result<(), LoadError> {
    let mut stmt = conn.prepare("PRAGMA quick_check(20)")?;
    let problems = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if problems.len() == 1 && problems.first().is_some_and(|p| p == "ok") {
        return Ok(());
    }
    Err(LoadError::Corrupt(format!(
        "integrity check failed: {}",
        problems.join("; ")
    )))
}

/// The names of the file's own tables (not SQLite's internal ones), sorted.
fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// The reference count of every stored message, and the largest `ord` in use.
fn reference_counts(conn: &Connection) -> rusqlite::Result<(Counts, i64)> {
    let mut refs = Counts::default();
    let mut stmt = conn.prepare("SELECT message, count(*) FROM deliveries GROUP BY message")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        refs.insert(row.get(0)?, row.get(1)?);
    }
    let max_ord = max_ord(conn)?;
    Ok((refs, max_ord))
}

/// The keys of the stored sessions.
fn live_sessions(conn: &Connection) -> rusqlite::Result<Keys> {
    let mut stmt = conn.prepare("SELECT key FROM sessions")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Applies one change inside the batch's transaction. A change about a session that is not
/// stored (it ended before the change reached the store) is skipped.
fn apply_op<'t>(
    tx: &'t Transaction<'_>,
    hot: &mut Hot<'t>,
    op: &StoreOp,
    scratch: &mut Scratch,
) -> rusqlite::Result<()> {
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
        StoreOp::SessionEnded { key } => {
            let key = sql_int(*key);
            scratch.sessions.remove(&key);
            // Collected first: the messages are deleted once the statement is done.
            let mut released = std::mem::take(&mut scratch.released);
            released.clear();
            {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM deliveries WHERE session = ?1 RETURNING message",
                )?;
                let mut rows = stmt.query([key])?;
                while let Some(row) = rows.next()? {
                    released.push(row.get(0)?);
                }
            }
            for &message in &released {
                release(tx, hot, &mut scratch.refs, message)?;
            }
            scratch.released = released;
            tx.prepare_cached("DELETE FROM subscriptions WHERE session = ?1")?
                .execute([key])?;
            tx.prepare_cached("DELETE FROM inbound_qos2 WHERE session = ?1")?
                .execute([key])?;
            tx.prepare_cached("DELETE FROM sessions WHERE key = ?1")?
                .execute([key])?;
        }
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
        StoreOp::Queued { session, delivery } => queue(tx, hot, scratch, *session, delivery)?,
        StoreOp::Progressed {
            session,
            seq,
            state,
        } => {
            let (packet_id, state) = state_to_sql(*state);
            Hot::prepared(&mut hot.progressed, tx, PROGRESSED)?.execute(params![
                sql_int(*session),
                sql_int(*seq),
                packet_id,
                state
            ])?;
        }
        StoreOp::Completed { session, seq, .. } => {
            // The row says which message it held; that is what the counts are about.
            let message: Option<i64> = Hot::prepared(&mut hot.completed, tx, COMPLETED)?
                .query_row([sql_int(*session), sql_int(*seq)], |r| r.get(0))
                .optional()?;
            if let Some(message) = message {
                release(tx, hot, &mut scratch.refs, message)?;
            }
        }
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
            tx.prepare_cached("DELETE FROM inbound_qos2 WHERE session = ?1 AND packet_id = ?2")?
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

/// `StoreOp::Queued`: the delivery, if its session exists and it is not there yet, and the
/// message with its first delivery.
fn queue<'t>(
    tx: &'t Transaction<'_>,
    hot: &mut Hot<'t>,
    scratch: &mut Scratch,
    session: u64,
    delivery: &StoredDelivery,
) -> rusqlite::Result<()> {
    if !scratch.sessions.contains(&sql_int(session)) {
        return Ok(());
    }
    let message = sql_int(delivery.message.id);
    let (packet_id, state) = state_to_sql(delivery.state);
    let subscription_ids = (!delivery.subscription_ids.is_empty()).then(|| {
        delivery
            .subscription_ids
            .iter()
            .flat_map(|id| id.get().to_le_bytes())
            .collect::<Vec<u8>>()
    });
    // 0 rows: this is a retry and the delivery is there already; the message is not
    // referred to once more.
    let inserted =
        Hot::prepared(&mut hot.insert_delivery, tx, INSERT_DELIVERY)?.execute(params![
            sql_int(session),
            sql_int(delivery.seq),
            message,
            delivery.qos.as_u8(),
            delivery.retain,
            subscription_ids,
            packet_id,
            state,
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    let count = scratch.refs.get(message);
    if count == 0 {
        encode(&delivery.message.message, &mut scratch.packet)?;
        Hot::prepared(&mut hot.insert_message, tx, INSERT_MESSAGE)?.execute(params![
            message,
            scratch.packet.as_ref(),
            delivery.message.expires_at.map(unix_ms),
        ])?;
    }
    scratch.refs.set(message, count.saturating_add(1));
    Ok(())
}

/// One delivery of `message` is gone: the message goes with the last one.
fn release<'t>(
    tx: &'t Transaction<'_>,
    hot: &mut Hot<'t>,
    refs: &mut RefCounts,
    message: i64,
) -> rusqlite::Result<()> {
    let count = refs.get(message).saturating_sub(1);
    refs.set(message, count);
    if count == 0 {
        Hot::prepared(&mut hot.delete_message, tx, DELETE_MESSAGE)?.execute([message])?;
    }
    Ok(())
}

/// A delivery's row (0 rows: this is a retry and the row is there already). Only for a
/// session in `Scratch::sessions`.
const INSERT_DELIVERY: &str = "INSERT OR IGNORE INTO deliveries \
     (session, seq, message, qos, retain, subscription_ids, packet_id, state) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
/// REPLACE: no delivery refers to a row that may be there, so it can be overwritten.
const INSERT_MESSAGE: &str =
    "INSERT OR REPLACE INTO messages (id, packet, expires_at) VALUES (?1, ?2, ?3)";
const PROGRESSED: &str =
    "UPDATE deliveries SET packet_id = ?3, state = ?4 WHERE session = ?1 AND seq = ?2";
const COMPLETED: &str = "DELETE FROM deliveries WHERE session = ?1 AND seq = ?2 RETURNING message";
const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE id = ?1";

/// The statements of the changes every message makes, taken from rusqlite's statement
/// cache once per batch rather than once per change (a cache lookup hashes the SQL text:
/// it was a tenth of the writer's time).
#[derive(Default)]
struct Hot<'t> {
    insert_delivery: Option<CachedStatement<'t>>,
    insert_message: Option<CachedStatement<'t>>,
    progressed: Option<CachedStatement<'t>>,
    completed: Option<CachedStatement<'t>>,
    delete_message: Option<CachedStatement<'t>>,
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

/// Encodes a message as an MQTT 5 PUBLISH into `buf`.
fn encode(message: &Message, buf: &mut BytesMut) -> rusqlite::Result<()> {
    let mut publish = Publish::new(message.topic.clone(), message.payload.clone());
    // The packet identifier means nothing here (each delivery gets its own when it is
    // sent), but a QoS 1/2 PUBLISH must carry one.
    publish.qos = PublishQoS::with_packet_id(message.qos, PacketId::from(NonZeroU16::MIN));
    publish.retain = message.retain;
    publish.properties = message.properties.clone();
    buf.clear();
    Packet::Publish(publish)
        .encode(ProtocolVersion::V5, buf)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(())
}

/// Decodes what [`encode`] wrote.
fn decode(packet: Vec<u8>) -> Result<Message, String> {
    let packet = Bytes::from(packet);
    match Decoder::with_version(ProtocolVersion::V5).decode_bytes(&packet) {
        Ok(Some((Packet::Publish(mut p), len))) if len == packet.len() => {
            let (qos, retain, properties) = (p.qos.qos(), p.retain, p.properties.take());
            let (topic, payload) = p.into_parts();
            Ok(Message::new(topic, payload, qos, retain, properties))
        }
        Ok(Some((_, len))) if len != packet.len() => {
            Err(format!("{} bytes after the PUBLISH", packet.len() - len))
        }
        Ok(Some((other, _))) => Err(format!("a {:?} instead of a PUBLISH", other.packet_type())),
        Ok(None) => Err("a truncated PUBLISH".to_owned()),
        Err(e) => Err(format!("an invalid PUBLISH ({e})")),
    }
}

/// Why `open` or `load` failed, before it is given the store's location.
#[derive(Debug)]
enum LoadError {
    Sql(rusqlite::Error),
    Unreadable(String),
    Corrupt(String),
}

impl From<rusqlite::Error> for LoadError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl LoadError {
    fn into_store_error(self, location: &str) -> StoreError {
        match self {
            Self::Sql(e) => classify(e, location),
            Self::Unreadable(reason) => StoreError::Unreadable {
                location: location.to_owned(),
                reason,
            },
            Self::Corrupt(reason) => StoreError::Corrupt {
                location: location.to_owned(),
                reason,
            },
        }
    }
}

/// An SQLite error met while opening or reading: damage, or values of the wrong type, is
/// `Corrupt`; anything else (permissions, not a database, I/O) is `Unreadable`.
fn classify(e: rusqlite::Error, location: &str) -> StoreError {
    let corrupt = matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt))
        || matches!(
            e,
            rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::IntegralValueOutOfRange(..)
        );
    if corrupt {
        StoreError::Corrupt {
            location: location.to_owned(),
            reason: e.to_string(),
        }
    } else {
        StoreError::Unreadable {
            location: location.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// What `load` read.
struct Loaded {
    snapshot: Snapshot,
    refs: Counts,
    max_ord: i64,
}

/// Removes what refers to nothing, then reads everything, in one transaction.
fn read_all(conn: &mut Connection) -> Result<Loaded, LoadError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    remove_orphans(&tx)?;
    let messages = read_messages(&tx)?;
    let mut sessions = read_sessions(&tx)?;
    read_subscriptions(&tx, &mut sessions)?;
    let refs = read_deliveries(&tx, &mut sessions, &messages)?;
    read_inbound_qos2(&tx, &mut sessions)?;
    let retained = read_retained(&tx)?;
    let wills = read_wills(&tx)?;
    let max_ord = max_ord(&tx)?;
    tx.commit()?;
    Ok(Loaded {
        snapshot: Snapshot {
            sessions: sessions.list,
            retained,
            wills,
        },
        refs,
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
}

fn read_messages(tx: &Transaction<'_>) -> Result<HashMap<i64, StoredMessage>, LoadError> {
    let mut messages = HashMap::new();
    let mut stmt = tx.prepare("SELECT id, packet, expires_at FROM messages")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let message = decode(row.get(1)?)
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

fn read_sessions(tx: &Transaction<'_>) -> Result<Sessions, LoadError> {
    let mut list = Vec::new();
    let mut stmt = tx.prepare("SELECT key, client_id, expiry, disconnected_at FROM sessions")?;
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

fn read_subscriptions(tx: &Transaction<'_>, sessions: &mut Sessions) -> Result<(), LoadError> {
    let mut stmt =
        tx.prepare("SELECT session, filter, options, id FROM subscriptions ORDER BY session, ord")?;
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

/// Reads the deliveries, each sharing its message with the others of the same id, and
/// counts the references to each message.
fn read_deliveries(
    tx: &Transaction<'_>,
    sessions: &mut Sessions,
    messages: &HashMap<i64, StoredMessage>,
) -> Result<Counts, LoadError> {
    let mut refs: Counts = Counts::default();
    let mut stmt = tx.prepare(
        "SELECT session, seq, message, qos, retain, subscription_ids, packet_id, state \
         FROM deliveries ORDER BY session, seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let message_id: i64 = row.get(2)?;
        // `remove_orphans` deleted the deliveries of missing messages.
        let message = messages.get(&message_id).cloned().ok_or_else(|| {
            LoadError::Corrupt(format!(
                "a delivery refers to a missing message {message_id}"
            ))
        })?;
        let delivery = StoredDelivery {
            seq: from_sql_int(row.get(1)?),
            message,
            qos: qos_from_sql(row.get(3)?)?,
            retain: row.get(4)?,
            subscription_ids: subscription_ids_from_sql(row.get(5)?)?,
            state: state_from_sql(row.get(6)?, row.get(7)?)?,
        };
        if let Some(s) = sessions.get_mut(row.get(0)?) {
            let count = refs.entry(message_id).or_insert(0);
            *count = count.saturating_add(1);
            s.deliveries.push(delivery);
        }
    }
    for s in &mut sessions.list {
        // Already in order unless a seq is above i64::MAX (SQLite sorts it first).
        s.deliveries.sort_by_key(|d| d.seq);
    }
    Ok(refs)
}

fn read_inbound_qos2(tx: &Transaction<'_>, sessions: &mut Sessions) -> Result<(), LoadError> {
    let mut stmt =
        tx.prepare("SELECT session, packet_id FROM inbound_qos2 ORDER BY session, ord")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let packet_id = packet_id_from_sql(row.get(1)?)?;
        if let Some(s) = sessions.get_mut(row.get(0)?) {
            s.inbound_qos2.push(packet_id);
        }
    }
    Ok(())
}

fn read_retained(tx: &Transaction<'_>) -> Result<Vec<StoredMessage>, LoadError> {
    let mut retained = Vec::new();
    let mut stmt = tx.prepare("SELECT topic, id, packet, expires_at FROM retained")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let topic: String = row.get(0)?;
        let message = decode(row.get(2)?).map_err(|e| {
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

fn read_wills(tx: &Transaction<'_>) -> Result<Vec<StoredWill>, LoadError> {
    let mut wills = Vec::new();
    let mut stmt = tx
        .prepare("SELECT client_id, id, packet, expires_at, expiry_interval, fire_at FROM wills")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let client_id = client_id_from_sql(row.get(0)?)?;
        let message = decode(row.get(2)?).map_err(|e| {
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
fn max_ord(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT max(coalesce((SELECT max(ord) FROM subscriptions), 0), \
                    coalesce((SELECT max(ord) FROM inbound_qos2), 0))",
        [],
        |r| r.get(0),
    )
}

/// Deletes rows whose session or message is gone. The writer never leaves any; this keeps a
/// damaged or hand-edited file from holding them forever, and says so.
fn remove_orphans(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    const ORPHANS: [(&str, &str); 5] = [
        (
            "subscriptions of missing sessions",
            "DELETE FROM subscriptions WHERE session NOT IN (SELECT key FROM sessions)",
        ),
        (
            "inbound QoS 2 identifiers of missing sessions",
            "DELETE FROM inbound_qos2 WHERE session NOT IN (SELECT key FROM sessions)",
        ),
        (
            "deliveries of missing sessions",
            "DELETE FROM deliveries WHERE session NOT IN (SELECT key FROM sessions)",
        ),
        (
            "deliveries of missing messages",
            "DELETE FROM deliveries WHERE message NOT IN (SELECT id FROM messages)",
        ),
        (
            "messages without deliveries",
            "DELETE FROM messages WHERE id NOT IN (SELECT message FROM deliveries)",
        ),
    ];
    for (what, sql) in ORPHANS {
        let removed = tx.execute(sql, [])?;
        if removed > 0 {
            tracing::warn!(removed, "session store: removed {what}");
        }
    }
    Ok(())
}

/// A `u64` as SQLite's signed integer, bit for bit (values above `i64::MAX` come back as
/// they went in, though SQLite sorts them as negative).
fn sql_int(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

/// The inverse of [`sql_int`].
fn from_sql_int(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

/// Milliseconds since the Unix epoch (negative before it), saturating.
fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => {
            i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| ms.saturating_neg())
        }
    }
}

fn optional_time(ms: Option<i64>) -> Result<Option<SystemTime>, LoadError> {
    ms.map(from_unix_ms).transpose()
}

fn client_id_from_sql(id: String) -> Result<ClientId, LoadError> {
    ClientId::new(id.clone())
        .map_err(|e| LoadError::Corrupt(format!("invalid client id {id:?}: {e}")))
}

/// The inverse of [`unix_ms`].
fn from_unix_ms(ms: i64) -> Result<SystemTime, LoadError> {
    let offset = Duration::from_millis(ms.unsigned_abs());
    let at = if ms >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    at.ok_or_else(|| LoadError::Corrupt(format!("time {ms} ms is out of range")))
}

fn expiry_to_sql(expiry: SessionExpiry) -> Option<i64> {
    match expiry {
        SessionExpiry::Immediately => Some(EXPIRY_IMMEDIATELY),
        SessionExpiry::After(after) => Some(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
        SessionExpiry::Never => None,
    }
}

fn expiry_from_sql(value: Option<i64>) -> Result<SessionExpiry, LoadError> {
    match value {
        None => Ok(SessionExpiry::Never),
        Some(EXPIRY_IMMEDIATELY) => Ok(SessionExpiry::Immediately),
        Some(ms) => u64::try_from(ms)
            .map(|ms| SessionExpiry::After(Duration::from_millis(ms)))
            .map_err(|_| LoadError::Corrupt(format!("invalid session expiry {ms}"))),
    }
}

/// A delivery state as its `(packet_id, state)` columns.
fn state_to_sql(state: DeliveryState) -> (Option<u16>, i64) {
    match state {
        DeliveryState::Queued => (None, STATE_QUEUED),
        DeliveryState::AwaitingPubAck(id) => (Some(id.get()), STATE_AWAITING_PUBACK),
        DeliveryState::AwaitingPubRec(id) => (Some(id.get()), STATE_AWAITING_PUBREC),
        DeliveryState::AwaitingPubComp(id) => (Some(id.get()), STATE_AWAITING_PUBCOMP),
    }
}

fn state_from_sql(packet_id: Option<i64>, state: i64) -> Result<DeliveryState, LoadError> {
    let id = || {
        packet_id
            .ok_or_else(|| {
                LoadError::Corrupt(format!("delivery state {state} without a packet id"))
            })
            .and_then(packet_id_from_sql)
    };
    match state {
        STATE_QUEUED => Ok(DeliveryState::Queued),
        STATE_AWAITING_PUBACK => Ok(DeliveryState::AwaitingPubAck(id()?)),
        STATE_AWAITING_PUBREC => Ok(DeliveryState::AwaitingPubRec(id()?)),
        STATE_AWAITING_PUBCOMP => Ok(DeliveryState::AwaitingPubComp(id()?)),
        other => Err(LoadError::Corrupt(format!(
            "invalid delivery state {other}"
        ))),
    }
}

fn packet_id_from_sql(value: i64) -> Result<PacketId, LoadError> {
    u16::try_from(value)
        .ok()
        .and_then(PacketId::new)
        .ok_or_else(|| LoadError::Corrupt(format!("invalid packet id {value}")))
}

fn qos_from_sql(value: i64) -> Result<QoS, LoadError> {
    u8::try_from(value)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| LoadError::Corrupt(format!("invalid QoS {value}")))
}

fn subscription_id_from_sql(value: i64) -> Result<SubscriptionId, LoadError> {
    u32::try_from(value)
        .ok()
        .and_then(SubscriptionId::new)
        .ok_or_else(|| LoadError::Corrupt(format!("invalid subscription id {value}")))
}

/// Subscription identifiers are kept as consecutive little-endian `u32`s (`NULL` for none).
fn subscription_ids_from_sql(blob: Option<Vec<u8>>) -> Result<Vec<SubscriptionId>, LoadError> {
    let Some(blob) = blob else {
        return Ok(Vec::new());
    };
    let chunks = blob.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return Err(LoadError::Corrupt(format!(
            "subscription identifiers of {} bytes",
            blob.len()
        )));
    }
    chunks
        .map(|chunk| {
            let bytes = <[u8; 4]>::try_from(chunk)
                .map_err(|_| LoadError::Corrupt("a short subscription identifier".to_owned()))?;
            subscription_id_from_sql(i64::from(u32::from_le_bytes(bytes)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_times_round_trip() {
        for v in [0, 1, i64::MAX as u64, u64::MAX] {
            assert_eq!(from_sql_int(sql_int(v)), v);
        }
        for ms in [0, 1, 1_700_000_000_123, -5_000] {
            assert_eq!(unix_ms(from_unix_ms(ms).unwrap()), ms);
        }
        for e in [
            SessionExpiry::Never,
            SessionExpiry::Immediately,
            SessionExpiry::After(Duration::ZERO),
            SessionExpiry::After(Duration::from_secs(3600)),
        ] {
            assert_eq!(expiry_from_sql(expiry_to_sql(e)).unwrap(), e);
        }
    }

    #[test]
    fn refcounts_roll_back() {
        let mut refs = RefCounts::default();
        refs.set(1, 2);
        refs.commit();
        refs.set(1, 0);
        refs.set(2, 1);
        assert_eq!((refs.get(1), refs.get(2)), (0, 1));
        refs.rollback();
        assert_eq!((refs.get(1), refs.get(2)), (2, 0));
        refs.set(1, 0);
        refs.commit();
        assert!(refs.committed.is_empty());
    }
}
