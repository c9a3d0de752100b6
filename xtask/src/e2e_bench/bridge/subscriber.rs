//! The clients of the bridge scenarios that `nanomq bench` has no role for, over the raw
//! MQTT 3.1.1 of [`raw`](super::super::raw):
//!
//! - [`Subscriber`]: a QoS 1 subscriber on the upstream that counts the distinct messages it
//!   receives (by the stamp `nanomq bench` puts at the start of every payload: publisher,
//!   sequence number) and when the first and the last arrived. It reads through a buffer and
//!   writes its PUBACKs in batches, once it has read everything the socket had, so that the
//!   rate it measures is the brokers', not its own system calls'. Its session may be
//!   persistent, made beforehand ([`create_session`]) and resumed.
//! - [`StateWatch`]: a subscriber on the edge to the bridge's retained connection state
//!   (`$SYS/broker/connection/<client id>/state`, `1` or `0`, published by both brokers).

use std::collections::HashSet;
use std::io::{BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::super::raw::{self, packet, push_string};

/// How long a broker may take to answer CONNECT or SUBSCRIBE.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The first bytes of a `nanomq bench` payload (its stamp, see nanomq-bin/src/bench/stamp.rs).
const STAMP_MAGIC: &[u8; 4] = b"NQB1";

/// The first byte of a PUBACK and its remaining length.
const PUBACK: [u8; 2] = [0x40, 0x02];

/// A CONNECT (MQTT 3.1.1, no keep alive) as `client_id`, with a clean session or not.
fn connect_packet(client_id: &str, clean: bool) -> Result<Vec<u8>> {
    let flags = if clean { 0x02 } else { 0x00 };
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, flags, 0x00, 0x00];
    push_string(&mut body, client_id)?;
    packet(0x10, &body)
}

/// A SUBSCRIBE of `filter` at `qos`, packet id 1.
fn subscribe_packet(filter: &str, qos: u8) -> Result<Vec<u8>> {
    let mut body = vec![0x00, 0x01];
    push_string(&mut body, filter)?;
    body.push(qos);
    packet(raw::SUBSCRIBE, &body)
}

/// A connection whose reads go through a buffer.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Who it is, for error messages.
    name: &'static str,
}

impl Conn {
    /// Connects as `client_id` and waits for a successful CONNACK.
    fn open(addr: SocketAddr, name: &'static str, client_id: &str, clean: bool) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("{name}: cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut conn = Self {
            reader: BufReader::with_capacity(256 * 1024, stream),
            writer,
            name,
        };
        conn.write(&connect_packet(client_id, clean)?)?;
        let (first, body) = conn.read_packet()?;
        // Byte 0 of the body is the session-present flag.
        if first != 0x20 || body.get(1) != Some(&0x00) {
            bail!("{name}: refused (CONNACK {first:02x} {body:02x?})");
        }
        Ok(conn)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .with_context(|| format!("{}: cannot write", self.name))
    }

    /// One packet: its first byte and its body.
    fn read_packet(&mut self) -> Result<(u8, Vec<u8>)> {
        raw::read_from(&mut self.reader, self.name)
    }

    /// SUBSCRIBEs to `filter` at `qos` and waits for a SUBACK that grants it.
    fn subscribe(&mut self, filter: &str, qos: u8) -> Result<()> {
        self.write(&subscribe_packet(filter, qos)?)?;
        loop {
            let (first, body) = self.read_packet()?;
            match first & 0xF0 {
                raw::SUBACK if body == [0x00, 0x01, qos] => return Ok(()),
                raw::SUBACK => bail!("{}: SUBSCRIBE {filter} refused ({body:02x?})", self.name),
                // A retained message (the state watch) may come first.
                raw::PUBLISH => {}
                _ => bail!("{}: unexpected packet {first:02x}", self.name),
            }
        }
    }

    fn disconnect(mut self) -> Result<()> {
        self.write(&[0xE0, 0x00])
    }
}

/// A PUBLISH's parts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed<'a> {
    topic: &'a [u8],
    /// Its packet id (QoS 1 and 2).
    id: Option<[u8; 2]>,
    payload: &'a [u8],
}

/// The parts of a PUBLISH whose first byte is `first`.
fn parse_publish(first: u8, body: &[u8]) -> Option<Parsed<'_>> {
    let len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let topic = body.get(2..2 + len)?;
    let rest = body.get(2 + len..)?;
    if (first >> 1) & 0x03 == 0 {
        return Some(Parsed {
            topic,
            id: None,
            payload: rest,
        });
    }
    let id = [*rest.first()?, *rest.get(1)?];
    Some(Parsed {
        topic,
        id: Some(id),
        payload: rest.get(2..)?,
    })
}

/// The publisher and sequence number of a `nanomq bench` payload.
fn stamp(payload: &[u8]) -> Option<(u32, u64)> {
    let rest = payload.strip_prefix(STAMP_MAGIC)?;
    let publisher = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let seq = u64::from_be_bytes(rest.get(4..12)?.try_into().ok()?);
    Some((publisher, seq))
}

/// Makes the persistent session `client_id` on the broker at `addr`, subscribed to
/// `filter` at QoS 1, and leaves it offline: the broker queues what matches until the
/// subscriber comes back.
pub(crate) fn create_session(addr: SocketAddr, client_id: &str, filter: &str) -> Result<()> {
    let mut conn = Conn::open(addr, "persistent subscriber", client_id, false)?;
    conn.subscribe(filter, 1)?;
    conn.disconnect()
}

/// What a [`Subscriber`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    /// Distinct messages (publisher, sequence number).
    pub(crate) unique: u64,
    /// Messages received again.
    pub(crate) duplicates: u64,
    /// Messages without a `nanomq bench` stamp.
    pub(crate) foreign: u64,
    /// When the first distinct message arrived.
    pub(crate) first: Option<Instant>,
    /// When the last distinct message arrived.
    pub(crate) last: Option<Instant>,
    /// Whether it stopped because nothing came for its idle time (or its deadline passed)
    /// before it had all it expected.
    pub(crate) timed_out: bool,
}

impl Counted {
    /// Distinct messages per second from `since` (the first message's arrival if `None`)
    /// to the last; `None` without two points in time.
    pub(crate) fn rate(&self, since: Option<Instant>) -> Option<f64> {
        let from = since.or(self.first)?;
        let seconds = self.last?.checked_duration_since(from)?.as_secs_f64();
        (seconds > 0.0).then(|| self.unique as f64 / seconds)
    }
}

/// A QoS 1 subscriber counting in its own thread until it has the messages it expects.
#[derive(Debug)]
pub(crate) struct Subscriber {
    thread: JoinHandle<Result<Counted>>,
}

impl Subscriber {
    /// Connects as `client_id` to `addr`: with a clean session subscribing to `filter`, or,
    /// with `filter` `None`, resuming its persistent session (see [`create_session`]). Then
    /// counts until `expected` distinct messages came, nothing came for `idle`, or `deadline`
    /// passed. Returns once connected (and subscribed).
    pub(crate) fn start(
        addr: SocketAddr,
        client_id: &str,
        filter: Option<&str>,
        expected: u64,
        idle: Duration,
        deadline: Instant,
    ) -> Result<Self> {
        let mut conn = Conn::open(addr, "counting subscriber", client_id, filter.is_some())?;
        if let Some(filter) = filter {
            conn.subscribe(filter, 1)?;
        }
        conn.reader.get_ref().set_read_timeout(Some(idle))?;
        let thread = thread::spawn(move || count(conn, expected, deadline));
        Ok(Self { thread })
    }

    /// Waits for the count to end.
    pub(crate) fn finish(self) -> Result<Counted> {
        match self.thread.join() {
            Ok(counted) => counted,
            Err(_) => bail!("the counting subscriber's thread panicked"),
        }
    }
}

/// Reads PUBLISHes, acknowledging them, until `expected` distinct ones or a read times out.
fn count(mut conn: Conn, expected: u64, deadline: Instant) -> Result<Counted> {
    let mut seen: HashSet<(u32, u64)> = HashSet::with_capacity(expected as usize);
    let mut counted = Counted {
        unique: 0,
        duplicates: 0,
        foreign: 0,
        first: None,
        last: None,
        timed_out: false,
    };
    let mut acks: Vec<u8> = Vec::with_capacity(64 * 1024);
    while counted.unique < expected {
        if Instant::now() > deadline {
            counted.timed_out = true;
            break;
        }
        // Everything read so far is handled: acknowledge it before waiting for more.
        if conn.reader.buffer().is_empty() && !acks.is_empty() {
            conn.write(&acks)?;
            acks.clear();
        }
        let (first, body) = match conn.read_packet() {
            Ok(packet) => packet,
            Err(e)
                if e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    matches!(io.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                }) =>
            {
                counted.timed_out = true;
                break;
            }
            Err(e) => return Err(e),
        };
        if first & 0xF0 != raw::PUBLISH {
            bail!("counting subscriber: unexpected packet {first:02x}");
        }
        let Some(Parsed { id, payload, .. }) = parse_publish(first, &body) else {
            bail!("counting subscriber: malformed PUBLISH");
        };
        if let Some(id) = id {
            acks.extend_from_slice(&PUBACK);
            acks.extend_from_slice(&id);
        }
        match stamp(payload) {
            Some(key) if seen.insert(key) => {
                let now = Instant::now();
                counted.first.get_or_insert(now);
                counted.last = Some(now);
                counted.unique += 1;
            }
            Some(_) => counted.duplicates += 1,
            None => counted.foreign += 1,
        }
    }
    if !acks.is_empty() {
        conn.write(&acks)?;
    }
    // Its PUBACKs are out; a persistent session keeps nothing more for it.
    let _ = conn.disconnect();
    Ok(counted)
}

/// A subscriber to a bridge's connection state on its edge broker.
pub(crate) struct StateWatch {
    conn: Conn,
    topic: String,
}

impl StateWatch {
    /// Subscribes to the state of the bridge whose upstream client id is `client_id`.
    pub(crate) fn connect(addr: SocketAddr, client_id: &str) -> Result<Self> {
        let mut conn = Conn::open(addr, "bridge state watch", "bench-bridge-state", true)?;
        let topic = format!("$SYS/broker/connection/{client_id}/state");
        // The retained state comes after the SUBACK, or before it: both are read below.
        conn.write(&subscribe_packet(&topic, 0)?)?;
        Ok(Self { conn, topic })
    }

    /// Waits for the next state message (the retained one first) saying `value`.
    pub(crate) fn wait_for(&mut self, value: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "the bridge's state ({}) did not turn {value} within {timeout:?} (saw {seen:?})",
                    self.topic
                );
            }
            self.conn.reader.get_ref().set_read_timeout(Some(left))?;
            let (first, body) = match self.conn.read_packet() {
                Ok(packet) => packet,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "the bridge's state ({}) did not turn {value} within {timeout:?} \
                             (saw {seen:?})",
                            self.topic
                        )
                    });
                }
            };
            match first & 0xF0 {
                raw::SUBACK if body.get(2).is_some_and(|&code| code < 0x80) => {}
                raw::SUBACK => bail!("the edge refused the subscription to {}", self.topic),
                raw::PUBLISH => {
                    let Some(Parsed { payload, .. }) = parse_publish(first, &body) else {
                        bail!("bridge state watch: malformed PUBLISH");
                    };
                    let said = String::from_utf8_lossy(payload).into_owned();
                    if said == value {
                        return Ok(());
                    }
                    seen.push(said);
                }
                _ => bail!("bridge state watch: unexpected packet {first:02x}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_gives_its_topic_id_and_payload() {
        let mut body = Vec::new();
        push_string(&mut body, "bench/0").unwrap_or_default();
        body.extend_from_slice(&[0x12, 0x34]);
        body.extend_from_slice(b"NQB1\0\0\0\x02\0\0\0\0\0\0\0\x07rest");
        let parsed = parse_publish(0x32, &body).unwrap_or_default();
        assert_eq!(parsed.topic, b"bench/0");
        assert_eq!(parsed.id, Some([0x12, 0x34]));
        assert_eq!(stamp(parsed.payload), Some((2, 7)));
        // QoS 0: no packet id.
        let parsed = parse_publish(0x30, &body).unwrap_or_default();
        assert_eq!((parsed.id, parsed.payload.len()), (None, body.len() - 9));
        assert_eq!(stamp(b"1"), None);
        assert!(parse_publish(0x32, &[0x00]).is_none());
    }

    #[test]
    fn connect_asks_for_a_clean_or_a_persistent_session() {
        let persistent = connect_packet("s", false).unwrap_or_default();
        assert_eq!(persistent.get(9), Some(&0x00));
        let clean = connect_packet("s", true).unwrap_or_default();
        assert_eq!(clean.get(9), Some(&0x02));
    }

    #[test]
    fn the_rate_runs_from_the_given_start_or_the_first_message() {
        let start = Instant::now();
        let counted = Counted {
            unique: 1_000,
            duplicates: 0,
            foreign: 0,
            first: Some(start + Duration::from_millis(500)),
            last: Some(start + Duration::from_secs(1)),
            timed_out: false,
        };
        let from_first = counted.rate(None).unwrap_or_default();
        assert!((from_first - 2_000.0).abs() < 1e-6, "{from_first}");
        let from_start = counted.rate(Some(start)).unwrap_or_default();
        assert!((from_start - 1_000.0).abs() < 1e-6, "{from_start}");
        let empty = Counted {
            first: None,
            last: None,
            ..counted
        };
        assert_eq!(empty.rate(None), None);
    }
}
