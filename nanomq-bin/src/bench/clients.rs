//! The three kinds of benchmark client, each one connection driven by a reader future and a
//! writer future in the same task:
//!
//! - [`publish`]: stamped messages at a rate or as fast as the in-flight window allows,
//!   counting acknowledgements (QoS 1: PUBACK; QoS 2: PUBREC, PUBREL, PUBCOMP);
//! - [`receive`]: checks every message against the [`Tracker`] and the latency histogram,
//!   acknowledging in batches;
//! - [`idle`]: stays connected, pinging as keep alive requires.
//!
//! Live totals go to the shared [`Live`] counters, read once a second by the progress line.

use std::collections::HashSet;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{
    Ack, Disconnect, Packet, PacketId, Publish, PublishQoS, QoS, ReasonCode, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::histogram::Histogram;
use super::stamp::{Stamp, now_ns};
use super::tracker::{Seen, Tracker};
use crate::client::ClientError;
use crate::client::conn::{Connection, PacketReader, PacketWriter};

/// Write when this much is buffered, even if more could be added.
const FLUSH_AT: usize = 32 * 1024;

/// Totals shared by every client of a run.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Connections accepted.
    pub(crate) connected: AtomicU64,
    /// Connections that failed or were refused.
    pub(crate) connect_failed: AtomicU64,
    /// Messages written.
    pub(crate) sent: AtomicU64,
    /// Acknowledgements received (PUBACK, or PUBCOMP for QoS 2).
    pub(crate) acked: AtomicU64,
    /// Messages received, duplicates included.
    pub(crate) received: AtomicU64,
    /// Distinct messages received.
    pub(crate) unique: AtomicU64,
    /// Connections lost while running.
    pub(crate) lost_connections: AtomicU64,
}

impl Live {
    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What a publisher did.
#[derive(Debug, Clone, Default)]
pub(crate) struct PubOutcome {
    /// Messages written (sequence numbers 0 to `sent - 1`).
    pub(crate) sent: u64,
    /// Messages acknowledged with success.
    pub(crate) acked: u64,
    /// Acknowledgements with a failure reason code.
    pub(crate) ack_errors: u64,
    /// When the last message was written.
    pub(crate) last_sent: Option<Instant>,
    /// When the last successful acknowledgement arrived.
    pub(crate) last_acked: Option<Instant>,
    /// Why the connection ended early, if it did.
    pub(crate) error: Option<String>,
}

/// What a subscriber saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubOutcome {
    /// Messages per publisher.
    pub(crate) tracker: Tracker,
    /// End-to-end latency of the distinct messages, in nanoseconds.
    pub(crate) latency: Histogram,
    /// When the last distinct message arrived.
    pub(crate) last_received: Option<Instant>,
    /// Why the connection ended early, if it did.
    pub(crate) error: Option<String>,
}

/// From a publisher's reader to its writer.
#[derive(Debug, Clone, Copy)]
enum Returned {
    /// This identifier is free again.
    Free(PacketId),
    /// PUBREC arrived: send PUBREL.
    Release(PacketId),
}

/// The parameters of one publisher.
#[derive(Debug, Clone)]
pub(crate) struct PubSpec {
    /// Its index: the stamp's publisher id.
    pub(crate) index: u32,
    /// Where it publishes.
    pub(crate) topic: TopicName,
    /// QoS.
    pub(crate) qos: QoS,
    /// Payload size.
    pub(crate) size: usize,
    /// Messages to send, at most.
    pub(crate) count: Option<u64>,
    /// Time between messages (`None`: no pause).
    pub(crate) interval: Option<Duration>,
    /// In-flight window we want (capped by the broker's Receive Maximum).
    pub(crate) inflight: u16,
    /// Keep alive in seconds (0: off).
    pub(crate) keepalive: u16,
}

/// Publishes from `start` until `stop` (or `count` messages), then waits for the
/// outstanding acknowledgements until `drain_until`, and disconnects.
pub(crate) async fn publish(
    conn: Connection,
    spec: PubSpec,
    live: &Live,
    start: Instant,
    stop: Instant,
    drain_until: Instant,
) -> PubOutcome {
    let Connection {
        reader,
        writer,
        connack,
    } = conn;
    let broker_max = connack
        .properties
        .receive_maximum
        .map_or(u16::MAX, NonZeroU16::get);
    let window = spec.inflight.min(broker_max).max(1);
    let (returned_tx, returned_rx) = mpsc::unbounded_channel();
    let mut written = Written::default();
    let times = [start, stop, drain_until];
    let (error, acks) = {
        let reading = read_acks(reader, returned_tx, live);
        let writing = write_publishes(
            writer,
            &spec,
            window,
            returned_rx,
            live,
            &mut written,
            times,
        );
        tokio::pin!(reading, writing);
        tokio::select! {
            result = &mut writing => {
                // The broker closes the connection after our DISCONNECT; count the acks
                // that came before.
                let counts = match tokio::time::timeout(Duration::from_secs(1), &mut reading).await {
                    Ok(Ok(counts) | Err((counts, _))) => counts,
                    Err(_) => Acks::default(),
                };
                (result.err(), counts)
            }
            read = &mut reading => match read {
                Ok(counts) => (Some(ClientError::Closed), counts),
                Err((counts, e)) => (Some(e), counts),
            },
        }
    };
    if error.is_some() {
        Live::add(&live.lost_connections, 1);
    }
    PubOutcome {
        sent: written.sent,
        acked: acks.acked,
        ack_errors: acks.failed,
        last_sent: written.last_sent,
        last_acked: acks.last,
        error: error.map(|e| e.to_string()),
    }
}

/// How far a publisher's writer got.
#[derive(Debug, Default)]
struct Written {
    /// Messages written.
    sent: u64,
    /// When the last one was.
    last_sent: Option<Instant>,
}

/// The acknowledgements a publisher received.
#[derive(Debug, Clone, Copy, Default)]
struct Acks {
    /// Successful ones.
    acked: u64,
    /// With a failure reason code.
    failed: u64,
    /// When the last successful one arrived.
    last: Option<Instant>,
}

/// Reads acknowledgements until the connection ends.
async fn read_acks(
    mut reader: PacketReader,
    returned: mpsc::UnboundedSender<Returned>,
    live: &Live,
) -> Result<Acks, (Acks, ClientError)> {
    let mut acks = Acks::default();
    loop {
        let packet = match reader.next().await {
            Ok(Some(packet)) => packet,
            Ok(None) => return Ok(acks),
            Err(e) => return Err((acks, e)),
        };
        let (ack, release) = match packet {
            Packet::PubAck(ack) | Packet::PubComp(ack) => (ack, false),
            Packet::PubRec(ack) => {
                let release = !ack.reason_code.is_error();
                (ack, release)
            }
            Packet::Disconnect(d) => {
                let e = ClientError::Disconnected {
                    reason: d.reason_code,
                    reason_string: d.properties.reason_string.as_ref().map(ToString::to_string),
                };
                return Err((acks, e));
            }
            _ => continue,
        };
        if release {
            let _ = returned.send(Returned::Release(ack.packet_id));
            continue;
        }
        if ack.reason_code.is_error() {
            acks.failed += 1;
        } else {
            acks.acked += 1;
            acks.last = Some(Instant::now());
            Live::add(&live.acked, 1);
        }
        // The writer may be gone already (it stopped waiting); nothing to return then.
        let _ = returned.send(Returned::Free(ack.packet_id));
    }
}

/// Writes the messages, within the window; then waits for the window to empty, and sends
/// DISCONNECT. `times` is [start, stop, drain until].
async fn write_publishes(
    mut writer: PacketWriter,
    spec: &PubSpec,
    window: u16,
    mut returned: mpsc::UnboundedReceiver<Returned>,
    live: &Live,
    written: &mut Written,
    times: [Instant; 3],
) -> Result<(), ClientError> {
    let [start, stop, drain_until] = times;
    let version = writer.version();
    let size = spec.size.max(super::stamp::STAMP_LEN);
    // Only the length of this payload is used: the stamp and padding are written in place.
    let mut publish = Publish::new(spec.topic.clone(), Bytes::from(vec![0u8; size]));
    let mut free: Vec<PacketId> = (1..=window).rev().filter_map(PacketId::new).collect();
    let with_ids = spec.qos != QoS::AtMostOnce;
    let keepalive =
        (spec.keepalive > 0).then(|| Duration::from_secs(u64::from(spec.keepalive)) / 2);
    let mut unflushed = 0u64;
    let mut last_write = Instant::now();
    let mut seq = 0u64;
    'publishing: loop {
        if spec.count.is_some_and(|c| seq >= c) {
            break;
        }
        let now = Instant::now();
        if now >= stop {
            break;
        }
        if let Some(interval) = spec.interval {
            let due = start + interval.mul_f64(seq as f64);
            if due > now {
                flush(&mut writer, &mut unflushed, live).await?;
                last_write = Instant::now();
                tokio::time::sleep_until(due.min(stop)).await;
                continue;
            }
        }
        while let Ok(r) = returned.try_recv() {
            take_back(r, &mut free, &mut writer)?;
        }
        let id = if with_ids {
            loop {
                if let Some(id) = free.pop() {
                    break Some(id);
                }
                flush(&mut writer, &mut unflushed, live).await?;
                last_write = Instant::now();
                tokio::select! {
                    r = returned.recv() => match r {
                        Some(r) => take_back(r, &mut free, &mut writer)?,
                        None => return Err(ClientError::Closed),
                    },
                    () = tokio::time::sleep_until(stop) => break 'publishing,
                }
            }
        } else {
            None
        };
        publish.qos = match id {
            Some(id) => PublishQoS::with_packet_id(spec.qos, id),
            None => PublishQoS::AtMostOnce,
        };
        let buf = writer.buffer();
        publish.encode_header(version, u32::MAX, buf)?;
        Stamp {
            publisher: spec.index,
            seq,
            sent_ns: now_ns(),
        }
        .write(size, buf);
        seq += 1;
        written.sent = seq;
        unflushed += 1;
        if writer.buffered() >= FLUSH_AT {
            flush(&mut writer, &mut unflushed, live).await?;
            last_write = Instant::now();
        }
        if keepalive.is_some_and(|k| last_write.elapsed() > k) {
            writer.queue(&Packet::PingReq)?;
        }
    }
    flush(&mut writer, &mut unflushed, live).await?;
    written.last_sent = Some(Instant::now());
    // Wait for what is in flight.
    while with_ids && free.len() < usize::from(window) {
        tokio::select! {
            r = returned.recv() => match r {
                Some(r) => {
                    take_back(r, &mut free, &mut writer)?;
                    if writer.buffered() > 0 {
                        writer.flush().await?;
                    }
                }
                None => return Err(ClientError::Closed),
            },
            () = tokio::time::sleep_until(drain_until) => break,
        }
    }
    writer
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await?;
    writer.shutdown().await;
    Ok(())
}

/// Handles an identifier coming back from the reader.
fn take_back(
    r: Returned,
    free: &mut Vec<PacketId>,
    writer: &mut PacketWriter,
) -> Result<(), ClientError> {
    match r {
        Returned::Free(id) => free.push(id),
        Returned::Release(id) => writer.queue(&Packet::PubRel(Ack::new(id)))?,
    }
    Ok(())
}

/// Writes what is buffered and counts the messages in it as sent.
async fn flush(
    writer: &mut PacketWriter,
    unflushed: &mut u64,
    live: &Live,
) -> Result<(), ClientError> {
    writer.flush().await?;
    Live::add(&live.sent, *unflushed);
    *unflushed = 0;
    Ok(())
}

/// Subscribes `conn` to `filter` and waits for the SUBACK.
pub(crate) async fn subscribe(
    conn: &mut Connection,
    filter: &TopicFilter,
    qos: QoS,
) -> Result<(), ClientError> {
    let id = PacketId::from(NonZeroU16::MIN);
    conn.writer
        .send(&Packet::Subscribe(Subscribe {
            packet_id: id,
            subscriptions: vec![Subscription {
                filter: filter.clone(),
                options: SubscriptionOptions::new(qos),
            }],
            properties: Default::default(),
        }))
        .await?;
    loop {
        match conn.reader.next().await? {
            Some(Packet::SubAck(ack)) if ack.packet_id == id => {
                return match ack.reason_codes.first() {
                    Some(reason) if !reason.is_error() => Ok(()),
                    Some(reason) => Err(ClientError::SubscribeRefused {
                        filter: filter.to_string(),
                        reason: *reason,
                    }),
                    None => Err(ClientError::Protocol("an empty SUBACK".to_owned())),
                };
            }
            Some(_) => {}
            None => return Err(ClientError::Closed),
        }
    }
}

/// Sends DISCONNECT (leaving a persistent session to the broker) and waits for the broker
/// to close the connection, so that the session is offline when this returns.
pub(crate) async fn disconnect(conn: Connection) -> Result<(), ClientError> {
    let Connection {
        mut reader,
        mut writer,
        ..
    } = conn;
    writer
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await?;
    writer.shutdown().await;
    // Whatever still arrives is dropped: the broker keeps it for the session.
    loop {
        match reader.next().await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return Ok(()),
        }
    }
}

/// What a subscriber's reader asks its writer to send.
#[derive(Debug, Clone, Copy)]
enum Answer {
    PubAck(PacketId),
    PubRec(PacketId),
    PubComp(PacketId),
    Ping,
}

/// Receives until `stop` turns true; then disconnects.
pub(crate) async fn receive(
    conn: Connection,
    live: &Live,
    mut stop: watch::Receiver<bool>,
    keepalive: u16,
) -> SubOutcome {
    let Connection { reader, writer, .. } = conn;
    let (answers_tx, answers_rx) = mpsc::unbounded_channel();
    let mut outcome = SubOutcome::default();
    let reading = async {
        let result = read_messages(
            reader,
            &answers_tx,
            live,
            &mut stop,
            keepalive,
            &mut outcome,
        )
        .await;
        // Closing the channel ends the writer.
        drop(answers_tx);
        result
    };
    let writing = write_answers(writer, answers_rx);
    let (read, written) = tokio::join!(reading, writing);
    if let Some(e) = read.err().or(written.err()) {
        Live::add(&live.lost_connections, 1);
        outcome.error = Some(e.to_string());
    }
    outcome
}

/// The reading half of [`receive`].
async fn read_messages(
    mut reader: PacketReader,
    answers: &mpsc::UnboundedSender<Answer>,
    live: &Live,
    stop: &mut watch::Receiver<bool>,
    keepalive: u16,
    outcome: &mut SubOutcome,
) -> Result<(), ClientError> {
    let ping_every = (keepalive > 0).then(|| Duration::from_secs(u64::from(keepalive)) / 2);
    let mut next_ping = ping_every.map(|p| Instant::now() + p);
    let mut qos2_pending: HashSet<PacketId> = HashSet::new();
    loop {
        let packet = tokio::select! {
            biased;
            _ = stop.changed() => return Ok(()),
            () = crate::client::publish::sleep_until_opt(next_ping) => {
                let _ = answers.send(Answer::Ping);
                next_ping = ping_every.map(|p| Instant::now() + p);
                continue;
            }
            packet = reader.next() => packet?.ok_or(ClientError::Closed)?,
        };
        let publish = match packet {
            Packet::Publish(publish) => publish,
            Packet::PubRel(rel) => {
                qos2_pending.remove(&rel.packet_id);
                let _ = answers.send(Answer::PubComp(rel.packet_id));
                continue;
            }
            Packet::Disconnect(d) => {
                return Err(ClientError::Disconnected {
                    reason: d.reason_code,
                    reason_string: d.properties.reason_string.as_ref().map(ToString::to_string),
                });
            }
            _ => continue,
        };
        match publish.qos {
            PublishQoS::AtMostOnce => {}
            PublishQoS::AtLeastOnce(id) => {
                let _ = answers.send(Answer::PubAck(id));
            }
            PublishQoS::ExactlyOnce(id) => {
                let _ = answers.send(Answer::PubRec(id));
                if !qos2_pending.insert(id) {
                    // A resend before our PUBREC got there: not a new message.
                    continue;
                }
            }
        }
        Live::add(&live.received, 1);
        let Some(stamp) = Stamp::read(publish.payload()) else {
            outcome.tracker.foreign += 1;
            continue;
        };
        match outcome.tracker.record(stamp.publisher, stamp.seq) {
            Seen::New | Seen::OutOfOrder => {
                Live::add(&live.unique, 1);
                outcome
                    .latency
                    .record(now_ns().saturating_sub(stamp.sent_ns));
                outcome.last_received = Some(Instant::now());
            }
            Seen::Duplicate | Seen::Foreign => {}
        }
    }
}

/// The writing half of [`receive`]: acknowledgements in batches, then DISCONNECT.
async fn write_answers(
    mut writer: PacketWriter,
    mut answers: mpsc::UnboundedReceiver<Answer>,
) -> Result<(), ClientError> {
    let mut batch = Vec::with_capacity(256);
    while answers.recv_many(&mut batch, 256).await > 0 {
        for answer in batch.drain(..) {
            writer.queue(&match answer {
                Answer::PubAck(id) => Packet::PubAck(Ack::new(id)),
                Answer::PubRec(id) => Packet::PubRec(Ack::new(id)),
                Answer::PubComp(id) => Packet::PubComp(Ack::new(id)),
                Answer::Ping => Packet::PingReq,
            })?;
        }
        writer.flush().await?;
    }
    writer
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await?;
    writer.shutdown().await;
    Ok(())
}

/// Stays connected until `stop`, pinging as keep alive needs; then disconnects.
pub(crate) async fn idle(
    conn: Connection,
    live: &Live,
    mut stop: watch::Receiver<bool>,
    keepalive: u16,
) -> Result<(), ClientError> {
    let Connection {
        mut reader,
        mut writer,
        ..
    } = conn;
    let ping_every = (keepalive > 0).then(|| Duration::from_secs(u64::from(keepalive)) / 2);
    let result = loop {
        let next_ping = ping_every.map(|p| Instant::now() + p);
        tokio::select! {
            _ = stop.changed() => break Ok(()),
            () = crate::client::publish::sleep_until_opt(next_ping) => {
                if let Err(e) = writer.send(&Packet::PingReq).await {
                    break Err(e);
                }
            }
            packet = reader.next() => match packet {
                Ok(Some(Packet::Disconnect(d))) => break Err(ClientError::Disconnected {
                    reason: d.reason_code,
                    reason_string: d.properties.reason_string.as_ref().map(ToString::to_string),
                }),
                Ok(Some(_)) => {}
                Ok(None) => break Err(ClientError::Closed),
                Err(e) => break Err(e),
            },
        }
    };
    if result.is_err() {
        Live::add(&live.lost_connections, 1);
        return result;
    }
    writer
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await?;
    writer.shutdown().await;
    Ok(())
}
