//! A store in an SQLite database file: what [`super::MemoryStore`] keeps, in tables, so that
//! it survives the process (and, with [`SyncPolicy::Always`], the machine).
//!
//! - **One transaction per batch.** The writer thread hands over thousands of changes at a
//!   time; each batch is one `IMMEDIATE` transaction, so a commit (and its fsync) is paid
//!   once per batch, not per change.
//! - **A row per batch, not per message.** The deliveries a batch queues are written as one
//!   [`segment`] row holding them and their messages (each message once, however many
//!   sessions it is queued for). What happens to them later is small: a bit per delivery
//!   that is done (`segment_done`), a row per delivery in flight (`delivery_states`). A
//!   segment goes when its last delivery is done.
//! - **No reads on the write path.** The writer keeps an [`index::Index`] of where each
//!   stored delivery is, and the keys of the stored sessions, so no change needs a query to
//!   find what it is about. Both are built from the file, and built again after a failed
//!   batch rather than rolled back.
//! - **Idempotent changes.** Inserts are `INSERT OR IGNORE` / `OR REPLACE`, a delivery
//!   already stored is not stored again, deletes of what is gone are no-ops, and a change
//!   about a session that no longer exists (a message queued for a session ended in an
//!   earlier batch) is skipped, as [`super::MemoryStore`] does: a retried batch, or one that
//!   arrives after the session ended, never fails.
//! - **Never emptied by accident.** A file that cannot be read, is not a database, is
//!   damaged, or holds someone else's tables is refused with an error naming it; the store
//!   creates its schema only in a file that is new or empty.
//! - **Bounded on disk.** Deleted rows free their pages for reuse; the WAL is checkpointed
//!   automatically every [`WAL_AUTOCHECKPOINT_BYTES`] and truncated back to
//!   [`WAL_SIZE_LIMIT`] when it has grown past it.
//!
//! A message's topic, payload, QoS, retain flag and properties are kept as an encoded MQTT 5
//! PUBLISH (the codec is the format the broker already trusts); its expiry beside it, as a
//! wall-clock time. Units are in [`columns`].

mod batch;
mod columns;
mod index;
mod migrate;
mod queue_read;
mod read;
mod segment;

use std::collections::HashSet;
use std::path::Path;

use bytes::BytesMut;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::{Snapshot, Store, StoreError, StoreOp, StoredDelivery, SyncPolicy};
use batch::{Batch, write_touched};
use columns::{IdBuild, sql_int};
use index::Index;
use queue_read::QueueReader;
use segment::SegmentBuilder;

/// The schema this code reads and writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

/// The tables of [`SCHEMA`], sorted: a file at [`SCHEMA_VERSION`] must hold exactly these.
const TABLES: [&str; 8] = [
    "delivery_states",
    "inbound_qos2",
    "retained",
    "segment_done",
    "segments",
    "sessions",
    "subscriptions",
    "wills",
];

/// The schema, with [`SCHEMA_SEGMENTS`]. Tables keyed by session use `WITHOUT ROWID` (one
/// B-tree, rows stored in key order, so a session's rows are together); the ones holding
/// message bodies keep a rowid, as SQLite advises for large rows. `segment_done` is apart from `segments` because SQLite
/// rewrites a whole row to change one column: a bitmap update must not copy megabytes of
/// messages. There are no foreign keys: the writer keeps the references right itself, and
/// `load` removes anything left dangling.
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

/// The tables of the deliveries, new in schema version 2 (see [`segment`]).
const SCHEMA_SEGMENTS: &str = "
CREATE TABLE segments (
    id   INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE segment_done (
    segment INTEGER PRIMARY KEY,
    done    BLOB NOT NULL
);
CREATE TABLE delivery_states (
    session   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    packet_id INTEGER,
    state     INTEGER NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
";

/// A segment is written once it holds about this much, even in the middle of a batch: a
/// segment stays whole until its last delivery is done, so smaller ones give space back
/// sooner, and one batch of large messages does not become one huge row.
const SEGMENT_BYTES: usize = 4 * 1024 * 1024;

/// The page size of a new file. Segments are large blobs, written as chains of overflow
/// pages: 16 KiB pages make a quarter of the WAL frames (two writes each) and checkpoint
/// copies that 4 KiB pages would, which measured about 10% more messages per second with
/// `sync = "periodic"` (and the same with `"always"`). A file keeps the page size it was
/// created with.
const PAGE_SIZE: i64 = 16 * 1024;

/// WAL bytes after which a commit checkpoints (SQLite's default of 1000 pages at 4 KiB).
/// Larger would make fewer, longer checkpoints, and a larger WAL file.
const WAL_AUTOCHECKPOINT_BYTES: i64 = 4000 * 1024;

/// The size the WAL file is truncated back to when it is reset after a checkpoint, so one
/// huge batch does not leave a huge file behind forever.
const WAL_SIZE_LIMIT: u64 = 8 * 1024 * 1024;

const INSERT_SEGMENT: &str = "INSERT INTO segments (id, data) VALUES (?1, ?2)";

/// Enough for every statement `apply` uses (rusqlite's default cache holds 16).
const STATEMENT_CACHE: usize = 32;

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
    /// Where the stored deliveries are; `None` until it is built from the file (by `load`,
    /// or before the first batch), and again after a failed batch.
    index: Option<Index>,
    /// The segment of the current batch.
    segment: SegmentBuilder,
    /// The next value of the `ord` columns, which keep subscriptions and inbound QoS 2
    /// identifiers in the order [`super::MemoryStore`] gives them back in.
    next_ord: i64,
    /// The encoded PUBLISH of a retained message or will being written (reused).
    packet: BytesMut,
    /// The keys of the stored sessions, so that a delivery for a session that has ended is
    /// skipped without asking the database. After a failed batch it is read again from
    /// the file.
    sessions: Keys,
    /// How many queued deliveries of each session `load` reads (and reads again, when the
    /// index is built again after a failed batch).
    window: usize,
    /// Reads queued deliveries back while the broker runs.
    reader: QueueReader,
}

/// Session keys, as stored.
type Keys = HashSet<i64, IdBuild>;

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
        let max_ord = read::max_ord(&conn).map_err(|e| classify(e, &location))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let sessions = live_sessions(&conn).map_err(|e| classify(e, &location))?;
        Ok(Self {
            conn,
            _lock: lock,
            location,
            scratch: Scratch {
                next_ord: max_ord.saturating_add(1),
                sessions,
                window: usize::MAX,
                ..Scratch::default()
            },
        })
    }

    fn apply_batch(&mut self, batch: &[StoreOp]) -> Result<(), LoadError> {
        let Self { conn, scratch, .. } = self;
        // IMMEDIATE: take the write lock at BEGIN rather than at the first write.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut index = match scratch.index.take() {
            Some(index) => index,
            None => read::read_all(&tx, scratch.window)?.index,
        };
        let mut writing = Batch::new(&tx, &mut index, scratch);
        for op in batch {
            writing.apply(op)?;
        }
        writing.seal()?;
        let deleted = writing.write_touched()?;
        drop(writing);
        tx.commit()?;
        for id in deleted {
            scratch.reader.forget(id);
        }
        scratch.index = Some(index);
        Ok(())
    }
}

impl Store for SqliteStore {
    fn load(&mut self, window: usize) -> Result<Snapshot, StoreError> {
        self.scratch.window = window;
        let loaded = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let loaded = read::read_all(&tx, window)?;
            tx.commit()?;
            Ok::<_, LoadError>(loaded)
        })()
        .map_err(|e| e.into_store_error(&self.location))?;
        self.scratch.index = Some(loaded.index);
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
            Ok(()) => Ok(()),
            Err(e) => {
                // The transaction rolled back when it was dropped. The index and the
                // segment being built are thrown away (the index is built again from the
                // file before the retry), and the sessions are what the file says (if it
                // can say: if not, the retry reads them again).
                self.scratch.index = None;
                self.scratch.segment.finish().ok();
                self.scratch.reader.clear();
                if let Ok(sessions) = live_sessions(&self.conn) {
                    self.scratch.sessions = sessions;
                }
                let reason = match e {
                    LoadError::Sql(e) => e.to_string(),
                    LoadError::Unreadable(reason) | LoadError::Corrupt(reason) => reason,
                };
                Err(StoreError::Write {
                    location: self.location.clone(),
                    reason,
                })
            }
        }
    }

    fn read_queued(
        &mut self,
        session: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let Self {
            conn,
            scratch,
            location,
            ..
        } = self;
        let index = match &mut scratch.index {
            Some(index) => index,
            None => {
                // Built again after a failed batch, as the next batch would.
                let built = (|| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let index = read::read_all(&tx, scratch.window)?.index;
                    tx.commit()?;
                    Ok::<_, LoadError>(index)
                })()
                .map_err(|e| e.into_store_error(location))?;
                scratch.index.insert(built)
            }
        };
        scratch
            .reader
            .read(conn, index, session, from_seq, limit)
            .map_err(|reason| StoreError::Corrupt {
                location: location.clone(),
                reason,
            })
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
            // Only while the file is empty; `VACUUM` would be needed later.
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch(SCHEMA_SEGMENTS)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        }
        0 => {
            return Err(LoadError::Corrupt(format!(
                "it holds tables that are not a session store's ({})",
                tables.join(", ")
            )));
        }
        1 if tables == migrate::V1_TABLES => migrate::from_v1(conn)?,
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
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        (WAL_AUTOCHECKPOINT_BYTES / page_size.max(512)).max(1),
    )?;
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

/// The keys of the stored sessions.
fn live_sessions(conn: &Connection) -> rusqlite::Result<Keys> {
    let mut stmt = conn.prepare("SELECT key FROM sessions")?;
    stmt.query_map([], |r| r.get(0))?.collect()
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
