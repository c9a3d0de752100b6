//! Segments: the deliveries one batch queued, with the messages they carry, written as one
//! blob in one row.
//!
//! A row per delivery costs a B-tree insert per message (and another for the message),
//! which was the whole of the writer's time at full speed. A segment costs one insert per
//! batch, and holds each message once however many of the batch's deliveries share it.
//! What happens to a delivery afterwards is kept beside it: whether it is done, in the
//! segment's bitmap (table `segment_done`), and where an unfinished exchange stands, in
//! `delivery_states`. A segment is deleted when all its deliveries are done.
//!
//! Layout, little-endian:
//!
//! ```text
//! segment := format:u8 message_count:u32 message* run_count:u32 run*
//! message := id:u64 has_expiry:u8 [expires_at:i64 (Unix ms)] len:u32 PUBLISH:len bytes
//! run     := session:u64 first_seq:u64 count:u32 entry{count}
//! entry   := message:u32 qos:u8 retain:u8 state:u8 packet_id:u16 ids:u32 id:u32{ids}
//! ```
//!
//! A run holds one session's deliveries with the consecutive sequence numbers `first_seq ..
//! first_seq + count`. Entries are numbered across the runs in order; the done bitmap has
//! bit `i % 8` of byte `i / 8` for entry `i`. A message is an MQTT 5 PUBLISH as
//! [`super::columns::encode`] writes it; `message` in an entry is its position in the
//! segment.

use std::collections::HashMap;
use std::ops::Range;

use bytes::BytesMut;
use mqtt_codec::{PacketId, QoS, SubscriptionId};

use super::columns::{IdBuild, encode, unix_ms};
use crate::store::{DeliveryState, StoredDelivery, StoredMessage};

/// The first byte of every segment this code writes.
const FORMAT: u8 = 1;

/// A delivery state as an entry's `state` byte (with `packet_id` 0 when queued).
const QUEUED: u8 = 0;
const AWAITING_PUBACK: u8 = 1;
const AWAITING_PUBREC: u8 = 2;
const AWAITING_PUBCOMP: u8 = 3;

/// Where [`SegmentBuilder::queue`] put a delivery: its run in the segment being built, and
/// its place in that run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placed {
    pub(super) run: u32,
    pub(super) offset: u32,
}

/// The segment of the current batch, filled as its `Queued` changes are met. A delivery
/// stays changeable (its state, whether it is done) until [`SegmentBuilder::finish`].
#[derive(Debug, Default)]
pub(super) struct SegmentBuilder {
    /// The segment: its header and messages, serialized as each message is first met (the
    /// message count is filled in and the runs appended by `finish`).
    data: Vec<u8>,
    message_count: u32,
    /// Position in the segment by message id.
    message_index: HashMap<u64, u32, IdBuild>,
    runs: Vec<BuildRun>,
    /// The run each session's next delivery may extend.
    open_runs: HashMap<u64, u32, IdBuild>,
    /// The subscription identifiers of every entry, one after another.
    ids: Vec<u32>,
    entries: usize,
    /// The PUBLISH being encoded (reused).
    packet: BytesMut,
}

#[derive(Debug)]
struct BuildRun {
    session: u64,
    first: u64,
    entries: Vec<BuildEntry>,
    /// Its session ended within the batch: the run is not written.
    dropped: bool,
}

#[derive(Debug, Clone, Copy)]
struct BuildEntry {
    message: u32,
    qos: QoS,
    retain: bool,
    state: DeliveryState,
    /// Range of `SegmentBuilder::ids`.
    ids: (u32, u32),
    done: bool,
}

/// A finished segment.
#[derive(Debug)]
pub(super) struct Finished {
    pub(super) data: Vec<u8>,
    /// Its runs, as written.
    pub(super) runs: Vec<SealedRun>,
    pub(super) entries: u32,
    /// The done bitmap (all zero unless a delivery ended in the batch that queued it).
    pub(super) done: Vec<u8>,
    /// Entries not done.
    pub(super) live: u32,
}

/// A run as written: which builder run it was, and where its entries start.
#[derive(Debug, Clone, Copy)]
pub(super) struct SealedRun {
    pub(super) run: u32,
    pub(super) session: u64,
    pub(super) base: u32,
}

impl SegmentBuilder {
    /// Whether nothing is queued since the last `finish`.
    pub(super) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// About how many bytes the segment would take.
    pub(super) fn size(&self) -> usize {
        self.data.len() + self.entries * 16 + self.ids.len() * 4
    }

    /// Adds `delivery` for `session`; its message is written with the first delivery of it.
    pub(super) fn queue(
        &mut self,
        session: u64,
        delivery: &StoredDelivery,
    ) -> rusqlite::Result<Placed> {
        let message = match self.message_index.get(&delivery.message.id) {
            Some(&index) => index,
            None => self.push_message(&delivery.message)?,
        };
        let start = len_u32(self.ids.len())?;
        self.ids
            .extend(delivery.subscription_ids.iter().map(|id| id.get()));
        let entry = BuildEntry {
            message,
            qos: delivery.qos,
            retain: delivery.retain,
            state: delivery.state,
            ids: (start, len_u32(self.ids.len())?),
            done: false,
        };
        let extends = self.open_runs.get(&session).copied().filter(|&run| {
            self.runs.get(run as usize).is_some_and(|r| {
                u64::try_from(r.entries.len())
                    .ok()
                    .and_then(|len| r.first.checked_add(len))
                    == Some(delivery.seq)
            })
        });
        let run = match extends {
            Some(run) => run,
            None => {
                let run = len_u32(self.runs.len())?;
                self.runs.push(BuildRun {
                    session,
                    first: delivery.seq,
                    entries: Vec::new(),
                    dropped: false,
                });
                self.open_runs.insert(session, run);
                run
            }
        };
        let entries = &mut self
            .runs
            .get_mut(run as usize)
            .ok_or(rusqlite::Error::InvalidQuery)?
            .entries;
        let offset = len_u32(entries.len())?;
        entries.push(entry);
        self.entries += 1;
        Ok(Placed { run, offset })
    }

    fn push_message(&mut self, message: &StoredMessage) -> rusqlite::Result<u32> {
        encode(&message.message, &mut self.packet)?;
        let out = &mut self.data;
        if out.is_empty() {
            out.push(FORMAT);
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        out.extend_from_slice(&message.id.to_le_bytes());
        match message.expires_at {
            Some(at) => {
                out.push(1);
                out.extend_from_slice(&unix_ms(at).to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&len_u32(self.packet.len())?.to_le_bytes());
        out.extend_from_slice(&self.packet);
        let index = self.message_count;
        self.message_count += 1;
        self.message_index.insert(message.id, index);
        Ok(index)
    }

    fn entry(&mut self, place: Placed) -> Option<&mut BuildEntry> {
        self.runs
            .get_mut(place.run as usize)?
            .entries
            .get_mut(place.offset as usize)
    }

    /// A delivery of this batch moved on.
    pub(super) fn set_state(&mut self, place: Placed, state: DeliveryState) {
        if let Some(entry) = self.entry(place) {
            entry.state = state;
        }
    }

    /// A delivery of this batch ended.
    pub(super) fn mark_done(&mut self, place: Placed) {
        if let Some(entry) = self.entry(place) {
            entry.done = true;
        }
    }

    /// The session of run `run` ended: the run is not written.
    pub(super) fn drop_run(&mut self, run: u32) {
        if let Some(r) = self.runs.get_mut(run as usize) {
            r.dropped = true;
            if self.open_runs.get(&r.session) == Some(&run) {
                self.open_runs.remove(&r.session);
            }
        }
    }

    /// The segment, if any of its runs is still wanted; the builder is empty afterwards.
    /// Give its data back with [`SegmentBuilder::recycle`] once it is written.
    pub(super) fn finish(&mut self) -> rusqlite::Result<Option<Finished>> {
        let result = self.serialize();
        self.data.clear();
        self.message_count = 0;
        self.message_index.clear();
        self.runs.clear();
        self.open_runs.clear();
        self.ids.clear();
        self.entries = 0;
        result
    }

    /// Takes back the buffer of a finished segment, so that the next one is written into
    /// memory already mapped (a fresh multi-megabyte buffer per batch costs page faults).
    pub(super) fn recycle(&mut self, mut data: Vec<u8>) {
        if self.data.capacity() < data.capacity() {
            data.clear();
            self.data = data;
        }
    }

    fn serialize(&mut self) -> rusqlite::Result<Option<Finished>> {
        let kept: Vec<u32> = (0..)
            .zip(&self.runs)
            .filter(|(_, r)| !r.dropped && !r.entries.is_empty())
            .map(|(run, _)| run)
            .collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let entries: usize = kept
            .iter()
            .filter_map(|&run| self.runs.get(run as usize))
            .map(|r| r.entries.len())
            .sum();
        let data = &mut self.data;
        match data.get_mut(1..5) {
            Some(count) => count.copy_from_slice(&self.message_count.to_le_bytes()),
            // Every run has an entry, and every entry a message: the header is there.
            None => return Err(rusqlite::Error::InvalidQuery),
        }
        data.reserve(4 + kept.len() * 20 + entries * 15 + self.ids.len() * 4);
        data.extend_from_slice(&len_u32(kept.len())?.to_le_bytes());
        let mut done = vec![0u8; entries.div_ceil(8)];
        let mut runs = Vec::with_capacity(kept.len());
        let mut live = 0u32;
        let mut index = 0u32;
        for run in kept {
            let Some(r) = self.runs.get(run as usize) else {
                continue;
            };
            runs.push(SealedRun {
                run,
                session: r.session,
                base: index,
            });
            data.extend_from_slice(&r.session.to_le_bytes());
            data.extend_from_slice(&r.first.to_le_bytes());
            data.extend_from_slice(&len_u32(r.entries.len())?.to_le_bytes());
            for e in &r.entries {
                let (state, packet_id) = state_code(e.state);
                data.extend_from_slice(&e.message.to_le_bytes());
                data.push(e.qos.as_u8());
                data.push(u8::from(e.retain));
                data.push(state);
                data.extend_from_slice(&packet_id.to_le_bytes());
                let ids = self
                    .ids
                    .get(e.ids.0 as usize..e.ids.1 as usize)
                    .unwrap_or_default();
                data.extend_from_slice(&len_u32(ids.len())?.to_le_bytes());
                for id in ids {
                    data.extend_from_slice(&id.to_le_bytes());
                }
                if e.done {
                    set_bit(&mut done, index);
                } else {
                    live += 1;
                }
                index += 1;
            }
        }
        Ok(Some(Finished {
            data: std::mem::take(data),
            runs,
            entries: index,
            done,
            live,
        }))
    }
}

/// A length as the `u32` the layout keeps it in.
fn len_u32(len: usize) -> rusqlite::Result<u32> {
    u32::try_from(len).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn state_code(state: DeliveryState) -> (u8, u16) {
    match state {
        DeliveryState::Queued => (QUEUED, 0),
        DeliveryState::AwaitingPubAck(id) => (AWAITING_PUBACK, id.get()),
        DeliveryState::AwaitingPubRec(id) => (AWAITING_PUBREC, id.get()),
        DeliveryState::AwaitingPubComp(id) => (AWAITING_PUBCOMP, id.get()),
    }
}

fn state_from_code(state: u8, packet_id: u16) -> Result<DeliveryState, String> {
    let id = || PacketId::new(packet_id).ok_or_else(|| format!("state {state} with packet id 0"));
    match (state, packet_id) {
        (QUEUED, 0) => Ok(DeliveryState::Queued),
        (AWAITING_PUBACK, _) => Ok(DeliveryState::AwaitingPubAck(id()?)),
        (AWAITING_PUBREC, _) => Ok(DeliveryState::AwaitingPubRec(id()?)),
        (AWAITING_PUBCOMP, _) => Ok(DeliveryState::AwaitingPubComp(id()?)),
        _ => Err(format!(
            "invalid delivery state {state} (packet id {packet_id})"
        )),
    }
}

/// Whether bit `index` of a done bitmap is set (bits past its end are not).
pub(super) fn bit(done: &[u8], index: u32) -> bool {
    done.get(index as usize / 8)
        .is_some_and(|byte| byte & (1 << (index % 8)) != 0)
}

/// Sets bit `index` of a done bitmap, which is long enough for it.
pub(super) fn set_bit(done: &mut [u8], index: u32) {
    if let Some(byte) = done.get_mut(index as usize / 8) {
        *byte |= 1 << (index % 8);
    }
}

/// A segment as read back.
#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) messages: Vec<ParsedMessage>,
    pub(super) runs: Vec<ParsedRun>,
    /// Entries in all runs.
    pub(super) entries: u32,
}

#[derive(Debug)]
pub(super) struct ParsedMessage {
    pub(super) id: u64,
    /// Unix milliseconds.
    pub(super) expires_at: Option<i64>,
    /// Where its PUBLISH is in the segment.
    pub(super) packet: Range<usize>,
}

#[derive(Debug)]
pub(super) struct ParsedRun {
    pub(super) session: u64,
    pub(super) first: u64,
    pub(super) entries: Vec<ParsedEntry>,
}

#[derive(Debug)]
pub(super) struct ParsedEntry {
    /// Its message's position in `Parsed::messages`.
    pub(super) message: u32,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) state: DeliveryState,
    pub(super) subscription_ids: Vec<SubscriptionId>,
}

/// Reads a segment; an error says what is wrong with it.
pub(super) fn parse(data: &[u8]) -> Result<Parsed, String> {
    let mut r = Reader::new(data);
    let messages = parse_messages(&mut r)?;
    let message_count = len_u32(messages.len()).map_err(|e| e.to_string())?;
    let run_count = r.u32()?;
    let mut runs = Vec::new();
    let mut total = 0u32;
    for _ in 0..run_count {
        let session = r.u64()?;
        let first = r.u64()?;
        let count = r.u32()?;
        if count == 0 || first.checked_add(u64::from(count) - 1).is_none() {
            return Err(format!(
                "a run of {count} deliveries from sequence number {first}"
            ));
        }
        total = total
            .checked_add(count)
            .ok_or_else(|| "more than 2^32 deliveries".to_owned())?;
        let mut entries = Vec::new();
        for _ in 0..count {
            entries.push(parse_entry(&mut r, message_count)?);
        }
        runs.push(ParsedRun {
            session,
            first,
            entries,
        });
    }
    if r.pos != data.len() {
        return Err(format!("{} bytes after the segment", data.len() - r.pos));
    }
    Ok(Parsed {
        messages,
        runs,
        entries: total,
    })
}

/// Reads the format byte and the messages of a segment (`r` at its start).
pub(super) fn parse_messages(r: &mut Reader<'_>) -> Result<Vec<ParsedMessage>, String> {
    let format = r.u8()?;
    if format != FORMAT {
        return Err(format!("segment format {format}, expected {FORMAT}"));
    }
    let message_count = r.u32()?;
    let mut messages = Vec::new();
    for _ in 0..message_count {
        let id = r.u64()?;
        let expires_at = match r.u8()? {
            0 => None,
            1 => Some(r.i64()?),
            other => return Err(format!("expiry flag {other} at byte {}", r.pos - 1)),
        };
        let len = r.u32()? as usize;
        let start = r.pos;
        r.take(len)?;
        messages.push(ParsedMessage {
            id,
            expires_at,
            packet: start..start + len,
        });
    }
    Ok(messages)
}

/// The bytes of the entry at the start of `data`, if its header is there (13 bytes, the
/// last four its count of subscription identifiers).
pub(super) fn entry_len(data: &[u8]) -> Option<usize> {
    let ids = data.get(9..13)?;
    let ids = u32::from_le_bytes(<[u8; 4]>::try_from(ids).ok()?);
    Some(13 + ids as usize * 4)
}

/// Reads one entry of a run, whose message must be one of the segment's `message_count`.
pub(super) fn parse_entry(r: &mut Reader<'_>, message_count: u32) -> Result<ParsedEntry, String> {
    let message = r.u32()?;
    if message >= message_count {
        return Err(format!(
            "a delivery of message {message} of {message_count}"
        ));
    }
    let qos = r.u8()?;
    let qos = QoS::from_u8(qos).ok_or_else(|| format!("invalid QoS {qos}"))?;
    let retain = match r.u8()? {
        0 => false,
        1 => true,
        other => return Err(format!("retain flag {other}")),
    };
    let state = r.u8()?;
    let state = state_from_code(state, r.u16()?)?;
    let ids = r.u32()?;
    let mut subscription_ids = Vec::new();
    for _ in 0..ids {
        let id = r.u32()?;
        subscription_ids
            .push(SubscriptionId::new(id).ok_or_else(|| format!("invalid subscription id {id}"))?);
    }
    Ok(ParsedEntry {
        message,
        qos,
        retain,
        state,
        subscription_ids,
    })
}

/// Reads the layout's integers, saying where the data ran out.
pub(super) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Where it is.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let bytes = self
            .pos
            .checked_add(len)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or_else(|| format!("truncated at byte {} of {}", self.pos, self.data.len()))?;
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| format!("truncated at byte {}", self.pos))
    }

    pub(super) fn u8(&mut self) -> Result<u8, String> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    pub(super) fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(super) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(super) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use mqtt_codec::TopicName;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn delivery(seq: u64, id: u64, ids: &[u32]) -> StoredDelivery {
        let topic = TopicName::new(format!("t/{id}")).unwrap_or_else(|_| unreachable!());
        StoredDelivery {
            seq,
            message: StoredMessage {
                id,
                message: Arc::new(Message::new(
                    topic,
                    bytes::Bytes::from(vec![id as u8; 3]),
                    QoS::ExactlyOnce,
                    false,
                    None,
                )),
                expires_at: id
                    .is_multiple_of(2)
                    .then(|| UNIX_EPOCH + Duration::from_millis(id)),
            },
            qos: QoS::AtLeastOnce,
            retain: id == 1,
            subscription_ids: ids.iter().filter_map(|&i| SubscriptionId::new(i)).collect(),
            state: DeliveryState::Queued,
        }
    }

    fn pid(id: u16) -> PacketId {
        PacketId::new(id).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn a_segment_reads_back_as_written() {
        let mut b = SegmentBuilder::default();
        // Session 1: seq 5, 6 (one run), then 9 (another); session 2 interleaved.
        let p = [
            b.queue(1, &delivery(5, 10, &[7])).unwrap(),
            b.queue(2, &delivery(1, 10, &[])).unwrap(),
            b.queue(1, &delivery(6, 11, &[1, 268_435_455])).unwrap(),
            b.queue(1, &delivery(9, 12, &[])).unwrap(),
            b.queue(3, &delivery(u64::MAX, 1, &[])).unwrap(),
        ];
        assert_eq!(
            p.map(|p| (p.run, p.offset)),
            [(0, 0), (1, 0), (0, 1), (2, 0), (3, 0)]
        );
        b.set_state(p[2], DeliveryState::AwaitingPubRec(pid(65535)));
        b.mark_done(p[1]);
        b.drop_run(3);
        let f = b.finish().unwrap().unwrap();
        assert!(b.is_empty());
        assert_eq!((f.entries, f.live), (4, 3));
        let bases: Vec<(u32, u64, u32)> =
            f.runs.iter().map(|r| (r.run, r.session, r.base)).collect();
        assert_eq!(bases, [(0, 1, 0), (1, 2, 2), (2, 1, 3)]);
        assert!(bit(&f.done, 2) && !bit(&f.done, 0) && !bit(&f.done, 3));

        let parsed = parse(&f.data).unwrap();
        assert_eq!(parsed.entries, 4);
        // Message 10 once, though two deliveries carry it; message 1 (dropped run) too.
        let ids: Vec<u64> = parsed.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [10, 11, 12, 1]);
        assert_eq!(parsed.messages[0].expires_at, Some(10));
        assert_eq!(parsed.messages[1].expires_at, None);
        let runs: Vec<(u64, u64, usize)> = parsed
            .runs
            .iter()
            .map(|r| (r.session, r.first, r.entries.len()))
            .collect();
        assert_eq!(runs, [(1, 5, 2), (2, 1, 1), (1, 9, 1)]);
        let e = &parsed.runs[0].entries[1];
        assert_eq!(e.message, 1);
        assert_eq!(e.state, DeliveryState::AwaitingPubRec(pid(65535)));
        assert_eq!(
            e.subscription_ids
                .iter()
                .map(|i| i.get())
                .collect::<Vec<_>>(),
            [1, 268_435_455]
        );
        let packet = &f.data[parsed.messages[1].packet.clone()];
        let message = super::super::columns::decode(bytes::Bytes::copy_from_slice(packet)).unwrap();
        assert_eq!(message.topic.as_str(), "t/11");
    }

    #[test]
    fn nothing_to_write_gives_no_segment() {
        let mut b = SegmentBuilder::default();
        assert!(b.finish().unwrap().is_none());
        b.queue(1, &delivery(1, 1, &[])).unwrap();
        b.drop_run(0);
        assert!(b.finish().unwrap().is_none());
        // The dropped run is not extended by its session's next delivery.
        let p = b.queue(1, &delivery(2, 2, &[])).unwrap();
        assert_eq!((p.run, p.offset), (0, 0));
    }

    #[test]
    fn damaged_segments_are_refused_not_misread() {
        let mut b = SegmentBuilder::default();
        b.queue(1, &delivery(1, 1, &[3])).unwrap();
        b.queue(1, &delivery(2, 2, &[])).unwrap();
        let data = b.finish().unwrap().unwrap().data;
        assert!(parse(&data).is_ok());
        // Every truncation, and a byte too many.
        for len in 0..data.len() {
            assert!(parse(&data[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(parse(&longer).is_err());
        // Every single-byte change either reads back (a value changed within its range) or
        // is refused; none panics.
        for i in 0..data.len() {
            for v in [0u8, 1, 2, 3, 0x7f, 0xff] {
                let mut changed = data.clone();
                changed[i] = v;
                let _ = parse(&changed);
            }
        }
        let mut format = data.clone();
        format[0] = 2;
        assert!(parse(&format).unwrap_err().contains("format 2"));
    }
}
