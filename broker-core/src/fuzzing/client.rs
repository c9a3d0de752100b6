//! One scripted client: an in-memory stream served by the broker, a task that reads
//! everything the broker sends (so the broker never waits on a full pipe), and what that
//! task saw: the packets, the acknowledgements the client owes, and anything the broker
//! sent that a client could hold against it.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::BytesMut;
use mqtt_codec::{Connect, Decoder, Packet, PacketId, ProtocolVersion, QoS};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;

use super::input::AckKind;
use crate::{Broker, TransportInfo, TransportKind};

/// How many bytes the in-memory pipe holds each way.
const PIPE_CAPACITY: usize = 64 * 1024;

/// How many received packets a client keeps for the report.
const KEPT_PACKETS: usize = 1000;

/// What a client's reader saw on its current connection and before.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Every packet received, on every connection of this client (the first
    /// [`KEPT_PACKETS`]).
    pub(super) packets: Vec<Packet>,
    /// Acknowledgements the client owes, in the order they became due.
    pub(super) owed: Vec<(AckKind, PacketId)>,
    /// QoS 1/2 messages the broker has sent on this connection and the client has not
    /// finished acknowledging.
    outstanding: HashSet<u16>,
    /// How many of those the broker may have at once (its window towards this client), or
    /// `None` while that cannot be told (bytes the script did not build went out).
    window: Option<usize>,
    /// What the broker did wrong, as seen from this client.
    pub(super) violations: Vec<String>,
}

impl Seen {
    fn observe(&mut self, packet: Packet) {
        match &packet {
            Packet::Publish(publish) => {
                if let Some(id) = publish.qos.packet_id() {
                    let kind = match publish.qos.qos() {
                        QoS::ExactlyOnce => AckKind::PubRec,
                        _ => AckKind::PubAck,
                    };
                    self.owed.push((kind, id));
                    self.outstanding.insert(id.get());
                    if let Some(window) = self.window
                        && self.outstanding.len() > window
                    {
                        self.violations.push(format!(
                            "the broker has {} QoS 1/2 messages in flight to a client whose \
                             window is {window}",
                            self.outstanding.len()
                        ));
                        self.window = None;
                    }
                }
            }
            Packet::PubRel(ack) => self.owed.push((AckKind::PubComp, ack.packet_id)),
            Packet::PubRec(ack) if !ack.reason_code.is_error() => {
                self.owed.push((AckKind::PubRel, ack.packet_id));
            }
            _ => {}
        }
        if self.packets.len() < KEPT_PACKETS {
            self.packets.push(packet);
        }
    }

    /// Notes an acknowledgement the client sent: the exchanges it ends leave the window.
    pub(super) fn acknowledged(&mut self, kind: AckKind, id: PacketId, refused: bool) {
        let ends = match kind {
            AckKind::PubAck | AckKind::PubComp => true,
            AckKind::PubRec => refused,
            AckKind::PubRel => false,
        };
        if ends {
            self.outstanding.remove(&id.get());
        }
    }

    /// Stops checking the window: the client sent bytes whose effect is unknown.
    pub(super) fn unscripted(&mut self) {
        self.window = None;
    }
}

/// One client slot of the script: at most one open connection at a time.
pub(super) struct Client {
    /// The client's end of the current connection, until it closes its side.
    writer: Option<WriteHalf<DuplexStream>>,
    /// The reader of the current connection.
    reader: Option<JoinHandle<()>>,
    /// The broker's task serving the current connection, and those of earlier ones.
    pub(super) served: Vec<JoinHandle<()>>,
    /// What the reader saw.
    pub(super) seen: Arc<Mutex<Seen>>,
    /// The version packets are built for: that of the last CONNECT built for this client.
    pub(super) version: ProtocolVersion,
    /// The last CONNECT built for this client, for reconnecting.
    pub(super) last_connect: Option<Connect>,
}

impl Client {
    pub(super) fn new() -> Self {
        Self {
            writer: None,
            reader: None,
            served: Vec::new(),
            seen: Arc::default(),
            version: ProtocolVersion::V5,
            last_connect: None,
        }
    }

    /// Whether a connection is open (the client's side).
    pub(super) fn is_open(&self) -> bool {
        self.writer.is_some()
    }

    /// Opens a new connection to `broker`. When the first bytes will be a CONNECT the script
    /// built (`connect`), the reader decodes what the broker sends with its version and
    /// limits, and the broker's window towards the client is checked.
    pub(super) fn open(&mut self, broker: &Arc<Broker>, connect: Option<&Connect>, inflight: u16) {
        self.close();
        let (client, server) = tokio::io::duplex(PIPE_CAPACITY);
        let transport = TransportInfo::new(TransportKind::Memory, None);
        self.served.push(tokio::spawn(
            Arc::clone(broker).serve_connection(server, transport),
        ));
        let (read, write) = tokio::io::split(client);
        let mut decoder = None;
        {
            let mut seen = self.seen.lock();
            seen.owed.clear();
            seen.outstanding.clear();
            seen.window = None;
            if let Some(connect) = connect {
                let mut d = Decoder::with_version(connect.version);
                let mut window = usize::from(inflight.max(1));
                if connect.version.is_v5() {
                    if let Some(max) = connect.properties.maximum_packet_size {
                        d.set_max_packet_size(max.get());
                    }
                    if let Some(max) = connect.properties.receive_maximum {
                        window = window.min(usize::from(max.get()));
                    }
                }
                seen.window = Some(window);
                decoder = Some(d);
            }
        }
        self.reader = Some(tokio::spawn(read_all(
            read,
            Arc::clone(&self.seen),
            decoder,
        )));
        self.writer = Some(write);
    }

    /// Writes `bytes` on the open connection; a connection the broker closed takes nothing.
    pub(super) async fn write(&mut self, bytes: &[u8]) {
        if let Some(writer) = &mut self.writer
            && writer.write_all(bytes).await.is_err()
        {
            self.writer = None;
        }
    }

    /// Closes the client's sending side (the broker reads end of stream) and keeps reading.
    pub(super) async fn half_close(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = writer.shutdown().await;
        }
    }

    /// Drops the connection: both directions close.
    pub(super) fn close(&mut self) {
        self.writer = None;
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

/// Reads what the broker sends until the connection closes, decoding it if a decoder is
/// given: bytes that do not decode are a violation, and decoding stops there.
async fn read_all(
    mut read: ReadHalf<DuplexStream>,
    seen: Arc<Mutex<Seen>>,
    mut decoder: Option<Decoder>,
) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Some(d) = decoder.as_mut() else {
            buf.clear();
            continue;
        };
        loop {
            match d.decode(&mut buf) {
                Ok(Some(packet)) => seen.lock().observe(packet),
                Ok(None) => break,
                Err(e) => {
                    seen.lock()
                        .violations
                        .push(format!("the broker sent bytes that do not decode: {e}"));
                    decoder = None;
                    buf.clear();
                    break;
                }
            }
        }
    }
}
