//! An MQTT connection as packets: [`PacketReader`] frames and decodes what arrives (zero
//! copy, with the codec's streaming [`Decoder`]), [`PacketWriter`] encodes into one buffer
//! and writes it in one go. The [`crate::Client`] driver runs on these; [`connect`] does a
//! bare CONNECT / CONNACK exchange for callers that drive packets themselves (a load
//! generator, a test).
//!
//! The two halves are separate values so that a reader task and a writer task can own one
//! each: a client that stops reading while it writes can deadlock against a broker that does
//! the same.

use bytes::BytesMut;
use mqtt_codec::{ConnAck, Connect, Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, ProtocolError};
use crate::transport::{Connector, ReadHalf, WriteHalf};

/// How much the read buffer grows by when it is full.
const READ_CHUNK: usize = 64 * 1024;

/// Reads packets.
pub struct PacketReader {
    /// The transport.
    io: ReadHalf,
    /// Bytes received and not yet decoded.
    buf: BytesMut,
    /// The streaming decoder, set to the connection's version.
    decoder: Decoder,
}

impl PacketReader {
    /// A reader of packets of `version` from `io`.
    pub fn new(io: ReadHalf, version: ProtocolVersion) -> Self {
        Self::with_max_packet_size(io, version, MAX_PACKET_SIZE)
    }

    /// A reader that refuses packets larger than `max` (our Maximum Packet Size).
    pub fn with_max_packet_size(io: ReadHalf, version: ProtocolVersion, max: u32) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder: Decoder::with_version(version).with_max_packet_size(max),
        }
    }

    /// The next packet; `None` when the broker closed the connection between packets.
    ///
    /// Cancel safe: bytes read are kept in the buffer, so this can be a `select!` branch.
    pub async fn next(&mut self) -> Result<Option<Packet>, Error> {
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
                    Err(Error::from(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the connection closed in the middle of a packet",
                    )))
                };
            }
        }
    }
}

/// Writes packets.
pub struct PacketWriter {
    /// The transport.
    io: WriteHalf,
    /// Encoded packets not yet written.
    buf: BytesMut,
    /// The connection's version.
    version: ProtocolVersion,
}

impl PacketWriter {
    /// A writer of packets of `version` to `io`.
    pub fn new(io: WriteHalf, version: ProtocolVersion) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            version,
        }
    }

    /// Encodes `packet` into the buffer; [`PacketWriter::flush`] sends it.
    pub fn queue(&mut self, packet: &Packet) -> Result<(), Error> {
        packet.encode(self.version, &mut self.buf)?;
        Ok(())
    }

    /// The buffer, for writers that encode in place (the benchmark's stamped payloads).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// How many bytes wait to be written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The connection's protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if !self.buf.is_empty() {
            self.io.write_all_buf(&mut self.buf).await?;
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Queues `packet` and flushes.
    pub async fn send(&mut self, packet: &Packet) -> Result<(), Error> {
        self.queue(packet)?;
        self.flush().await
    }

    /// Closes our side of the connection (after a DISCONNECT).
    pub async fn shutdown(&mut self) {
        // The broker may already be gone; there is nothing left to report then.
        let _ = self.io.shutdown().await;
    }
}

/// A connection the broker accepted.
pub struct Connection {
    /// The read half.
    pub reader: PacketReader,
    /// The write half.
    pub writer: PacketWriter,
    /// The broker's CONNACK (session present, assigned client id, limits).
    pub connack: ConnAck,
}

/// Opens a connection with `connector` and sends `connect`; returns once CONNACK accepts it.
///
/// A refusing CONNACK is [`Error::Refused`]; an AUTH challenge (extended
/// authentication) is refused too, since these tools cannot answer one.
pub async fn connect(connector: &Connector, connect: &Connect) -> Result<Connection, Error> {
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
                return Err(Error::Refused {
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
        Some(Packet::Auth(_)) => Err(ProtocolError::Auth.into()),
        Some(other) => Err(ProtocolError::Unexpected(other.packet_type()).into()),
        None => Err(Error::Closed),
    }
}
