//! An MQTT connection as packets, built on mqtt-codec alone: [`PacketReader`] frames and
//! decodes what arrives (zero copy, with the codec's streaming [`Decoder`]), [`PacketWriter`]
//! encodes into one buffer and writes it in one go, and [`connect`] does the CONNECT /
//! CONNACK exchange.
//!
//! The two halves are separate values so that a reader task and a writer task can own one
//! each: a client that stops reading while it writes can deadlock against a broker that does
//! the same.

use bytes::BytesMut;
use mqtt_codec::{ConnAck, Connect, Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::ClientError;
use super::transport::{Connector, ReadHalf, WriteHalf};

/// How much the read buffer grows by when it is full.
const READ_CHUNK: usize = 64 * 1024;

/// Reads packets.
pub(crate) struct PacketReader {
    /// The transport.
    io: ReadHalf,
    /// Bytes received and not yet decoded.
    buf: BytesMut,
    /// The streaming decoder, set to the connection's version.
    decoder: Decoder,
}

impl PacketReader {
    /// A reader of packets of `version` from `io`.
    pub(crate) fn new(io: ReadHalf, version: ProtocolVersion) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder: Decoder::with_version(version).with_max_packet_size(MAX_PACKET_SIZE),
        }
    }

    /// The next packet; `None` when the broker closed the connection between packets.
    ///
    /// Cancel safe: bytes read are kept in the buffer, so this can be a `select!` branch.
    pub(crate) async fn next(&mut self) -> Result<Option<Packet>, ClientError> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(packet));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ClientError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the connection closed in the middle of a packet",
                    )))
                };
            }
        }
    }
}

/// Writes packets.
pub(crate) struct PacketWriter {
    /// The transport.
    io: WriteHalf,
    /// Encoded packets not yet written.
    buf: BytesMut,
    /// The connection's version.
    version: ProtocolVersion,
}

impl PacketWriter {
    /// A writer of packets of `version` to `io`.
    pub(crate) fn new(io: WriteHalf, version: ProtocolVersion) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            version,
        }
    }

    /// Encodes `packet` into the buffer; [`PacketWriter::flush`] sends it.
    pub(crate) fn queue(&mut self, packet: &Packet) -> Result<(), ClientError> {
        packet.encode(self.version, &mut self.buf)?;
        Ok(())
    }

    /// The buffer, for writers that encode in place (the benchmark's stamped payloads).
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// How many bytes wait to be written.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The connection's protocol version.
    pub(crate) fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Writes everything buffered.
    pub(crate) async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.buf.is_empty() {
            self.io.write_all_buf(&mut self.buf).await?;
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Queues `packet` and flushes.
    pub(crate) async fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        self.queue(packet)?;
        self.flush().await
    }

    /// Closes our side of the connection (after a DISCONNECT).
    pub(crate) async fn shutdown(&mut self) {
        // The broker may already be gone; there is nothing left to report then.
        let _ = self.io.shutdown().await;
    }
}

/// A connection the broker accepted.
pub(crate) struct Connection {
    /// The read half.
    pub(crate) reader: PacketReader,
    /// The write half.
    pub(crate) writer: PacketWriter,
    /// The broker's CONNACK (session present, assigned client id, limits).
    pub(crate) connack: ConnAck,
}

/// Opens a connection with `connector` and sends `connect`; returns once CONNACK accepts it.
///
/// A refusing CONNACK is [`ClientError::Refused`]; an AUTH challenge (extended
/// authentication) is refused too, since these tools cannot answer one.
pub(crate) async fn connect(
    connector: &Connector,
    connect: &Connect,
) -> Result<Connection, ClientError> {
    let (read, write) = connector.open().await?;
    let version = connect.version;
    let mut reader = PacketReader::new(read, version);
    let mut writer = PacketWriter::new(write, version);
    writer
        .send(&Packet::Connect(Box::new(connect.clone())))
        .await?;
    match reader.next().await? {
        Some(Packet::ConnAck(connack)) => {
            if connack.reason_code.is_error() {
                return Err(ClientError::Refused {
                    reason: connack.reason_code,
                    reason_string: connack
                        .properties
                        .reason_string
                        .as_ref()
                        .map(ToString::to_string),
                });
            }
            Ok(Connection {
                reader,
                writer,
                connack: *connack,
            })
        }
        Some(Packet::Auth(_)) => Err(ClientError::Protocol(
            "the broker started an extended authentication exchange, which this client \
             cannot continue"
                .to_owned(),
        )),
        Some(other) => Err(ClientError::Protocol(format!(
            "expected CONNACK, received {:?}",
            other.packet_type()
        ))),
        None => Err(ClientError::Closed),
    }
}
