//! Reading a session's queued deliveries back while the broker runs (a persistent session
//! whose queue is longer than the broker keeps in memory drains into what is stored).
//!
//! A segment holds the deliveries of one batch for every session, up to 4 MiB, and a
//! session reads a few hundred of them at a time: reading whole segments would read each
//! one again for every session and every window. So the reader keeps, for the segments it
//! read lately, a [`Directory`]: where each run and message is in the blob, and where the
//! last read of each run stopped. Entries and messages are then read with SQLite's
//! incremental blob I/O, only the bytes wanted. A message read for one session is shared
//! with every other session that still holds it (a fan-out stores it once).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use rusqlite::Connection;
use rusqlite::blob::Blob;

use super::columns::{IdBuild, decode, optional_time};
use super::index::Index;
use super::segment::{self, ParsedMessage, Reader};
use crate::message::Message;
use crate::store::{DeliveryState, StoredDelivery, StoredMessage, from_wall_clock};

/// Directories kept (each a few bytes per run and per message of its segment).
const CACHED_SEGMENTS: usize = 64;

/// Bytes of a run's entries read at a time.
const CHUNK: usize = 16 * 1024;

/// The smallest entry (no subscription identifiers).
const ENTRY_HEADER: usize = 13;

/// Where things are in one stored segment.
#[derive(Debug)]
struct Directory {
    messages: Vec<CachedMessage>,
    /// Its runs, by the number of their first entry.
    runs: HashMap<u32, RunAt, IdBuild>,
}

#[derive(Debug)]
struct CachedMessage {
    at: ParsedMessage,
    /// The message as last read, while some session holds it.
    read: Weak<Message>,
}

/// A run's entries in the blob, and where the last read of it stopped.
#[derive(Debug, Clone, Copy)]
struct RunAt {
    count: u32,
    end: usize,
    /// The next entry not read, and its byte position.
    next: (u32, usize),
    start: usize,
}

/// The directories of the segments read lately.
#[derive(Debug, Default)]
pub(super) struct QueueReader {
    directories: HashMap<i64, Directory, IdBuild>,
    /// Segment ids, least recently used first.
    used: VecDeque<i64>,
}

impl QueueReader {
    /// Forgets segment `id` (deleted, or never written: its id may be given again).
    pub(super) fn forget(&mut self, id: i64) {
        if self.directories.remove(&id).is_some() {
            self.used.retain(|&u| u != id);
        }
    }

    /// Forgets every segment (after a failed batch, whose segment ids are given again).
    pub(super) fn clear(&mut self) {
        self.directories.clear();
        self.used.clear();
    }

    /// Up to `limit` of `session`'s queued deliveries from `from_seq` on, in order.
    pub(super) fn read(
        &mut self,
        conn: &Connection,
        index: &Index,
        session: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, String> {
        let mut out = Vec::new();
        for run in index.stored_runs_from(session, from_seq) {
            if out.len() >= limit {
                break;
            }
            let blob = conn
                .blob_open(rusqlite::MAIN_DB, c"segments", c"data", run.segment, true)
                .map_err(|e| format!("segment {}: {e}", run.segment))?;
            let directory = self.directory(run.segment, &blob)?;
            let corrupt = |e: String| format!("segment {}: {e}", run.segment);
            let at = *directory
                .runs
                .get(&run.base)
                .ok_or_else(|| corrupt(format!("no run at entry {}", run.base)))?;
            if at.count != run.len {
                return Err(corrupt(format!(
                    "a run of {} entries where the index has {}",
                    at.count, run.len
                )));
            }
            let skip = u32::try_from(from_seq.saturating_sub(run.first)).unwrap_or(u32::MAX);
            let (mut offset, mut pos) = if at.next.0 <= skip {
                at.next
            } else {
                (0, at.start)
            };
            let mut chunk = Chunk::default();
            let message_count = u32::try_from(directory.messages.len()).unwrap_or(u32::MAX);
            while offset < run.len && out.len() < limit {
                let entry = chunk
                    .entry_at(&blob, pos, at.end)
                    .map_err(|e| corrupt(format!("entry {offset} of run {}: {e}", run.base)))?;
                let len = entry.len();
                let seq = run.first + u64::from(offset);
                let wanted = offset >= skip
                    && !index.is_done(run.segment, run.base + offset)
                    && !index.has_state(session, seq);
                if wanted {
                    let parsed = segment::parse_entry(&mut Reader::new(entry), message_count)
                        .map_err(corrupt)?;
                    if parsed.state == DeliveryState::Queued {
                        let cached = directory
                            .messages
                            .get_mut(parsed.message as usize)
                            .ok_or_else(|| corrupt(format!("no message {}", parsed.message)))?;
                        out.push(StoredDelivery {
                            seq,
                            message: message(cached, &blob).map_err(corrupt)?,
                            qos: parsed.qos,
                            retain: parsed.retain,
                            subscription_ids: parsed.subscription_ids,
                            state: DeliveryState::Queued,
                        });
                    }
                }
                pos += len;
                offset += 1;
            }
            if let Some(at) = directory.runs.get_mut(&run.base) {
                at.next = (offset, pos);
            }
        }
        Ok(out)
    }

    /// The directory of `segment`, read from `blob` if it is not kept.
    fn directory(&mut self, segment: i64, blob: &Blob<'_>) -> Result<&mut Directory, String> {
        if self.directories.contains_key(&segment) {
            self.used.retain(|&u| u != segment);
        } else {
            let mut data = vec![0; blob.len()];
            blob.read_at_exact(&mut data, 0)
                .map_err(|e| format!("segment {segment}: {e}"))?;
            let directory = read_directory(&data).map_err(|e| format!("segment {segment}: {e}"))?;
            if self.used.len() >= CACHED_SEGMENTS
                && let Some(oldest) = self.used.pop_front()
            {
                self.directories.remove(&oldest);
            }
            self.directories.insert(segment, directory);
        }
        self.used.push_back(segment);
        self.directories
            .get_mut(&segment)
            .ok_or_else(|| format!("segment {segment} vanished"))
    }
}

/// The directory of the segment `data`.
fn read_directory(data: &[u8]) -> Result<Directory, String> {
    let mut r = Reader::new(data);
    let messages = segment::parse_messages(&mut r)?
        .into_iter()
        .map(|at| CachedMessage {
            at,
            read: Weak::new(),
        })
        .collect();
    let mut runs = HashMap::default();
    let mut base = 0u32;
    for _ in 0..r.u32()? {
        let _session = r.u64()?;
        let _first = r.u64()?;
        let count = r.u32()?;
        let start = r.pos();
        for _ in 0..count {
            let rest = data.get(r.pos()..).unwrap_or_default();
            let len = segment::entry_len(rest).ok_or_else(|| format!("truncated at {start}"))?;
            r.take(len)?;
        }
        runs.insert(
            base,
            RunAt {
                count,
                end: r.pos(),
                next: (0, start),
                start,
            },
        );
        base = base
            .checked_add(count)
            .ok_or_else(|| "more than 2^32 deliveries".to_owned())?;
    }
    Ok(Directory { messages, runs })
}

/// `cached`'s message: the one some session holds, or read again.
fn message(cached: &mut CachedMessage, blob: &Blob<'_>) -> Result<StoredMessage, String> {
    let id = cached.at.id;
    let expires_at = optional_time(cached.at.expires_at).map_err(|e| format!("{e:?}"))?;
    if let Some(message) = cached.read.upgrade() {
        return Ok(StoredMessage {
            id,
            message,
            expires_at,
        });
    }
    let range = cached.at.packet.clone();
    let mut packet = vec![0; range.len()];
    blob.read_at_exact(&mut packet, range.start)
        .map_err(|e| format!("message {id}: {e}"))?;
    let mut message = decode(Bytes::from(packet)).map_err(|e| format!("message {id} holds {e}"))?;
    // Made the broker's already (expiry on its clock, its store identifier kept), so that
    // every session it goes to can share it.
    message.expires_at = expires_at.map(from_wall_clock);
    message.store_id = OnceLock::from(id);
    let message = Arc::new(message);
    cached.read = Arc::downgrade(&message);
    Ok(StoredMessage {
        id,
        message,
        expires_at,
    })
}

/// The bytes of a run read so far: a window of the blob.
#[derive(Debug, Default)]
struct Chunk {
    data: Vec<u8>,
    /// The blob position of `data[0]`.
    start: usize,
}

impl Chunk {
    /// The entry at blob position `pos`, reading more of the run (which ends at `end`) if
    /// it is not here whole.
    fn entry_at(&mut self, blob: &Blob<'_>, pos: usize, end: usize) -> Result<&[u8], String> {
        if !self.holds(pos, ENTRY_HEADER) {
            self.fill(blob, pos, ENTRY_HEADER, end)?;
        }
        let whole = self
            .data
            .get(pos - self.start..)
            .and_then(segment::entry_len)
            .ok_or("the run ends inside an entry")?;
        if !self.holds(pos, whole) {
            self.fill(blob, pos, whole, end)?;
        }
        let at = pos - self.start;
        self.data
            .get(at..at + whole)
            .ok_or_else(|| "the run ends inside an entry".to_owned())
    }

    /// Whether the `len` bytes at blob position `pos` are here.
    fn holds(&self, pos: usize, len: usize) -> bool {
        pos >= self.start && pos + len <= self.start + self.data.len()
    }

    /// Reads the run from `pos`: at least `len` bytes, up to a chunk, not past `end`.
    fn fill(&mut self, blob: &Blob<'_>, pos: usize, len: usize, end: usize) -> Result<(), String> {
        let wanted = len.max(CHUNK).min(end.saturating_sub(pos));
        if wanted < len {
            return Err("the run ends inside an entry".to_owned());
        }
        self.data.resize(wanted, 0);
        blob.read_at_exact(&mut self.data, pos)
            .map_err(|e| e.to_string())?;
        self.start = pos;
        Ok(())
    }
}
