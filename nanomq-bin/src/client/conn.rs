//! Packets over a connection, for `nanomq bench`, which drives packets itself (stamped
//! payloads written in place, its own acknowledgement accounting): mqtt-client's
//! [`mqtt_client::io`] reader and writer with this binary's [`ClientError`], and the bare
//! CONNECT / CONNACK exchange. `nanomq pub` and `sub` use [`mqtt_client::Client`] instead.

use bytes::BytesMut;
use mqtt_codec::{ConnAck, Connect, Packet, ProtocolVersion};

use super::error::ClientError;
use super::transport::Connector;

/// Reads packets.
pub(crate) struct PacketReader(mqtt_client::io::PacketReader);

impl PacketReader {
    /// The next packet; `None` when the broker closed the connection between packets.
    /// Cancel safe.
    pub(crate) async fn next(&mut self) -> Result<Option<Packet>, ClientError> {
        Ok(self.0.next().await?)
    }
}

/// Writes packets.
pub(crate) struct PacketWriter(mqtt_client::io::PacketWriter);

impl PacketWriter {
    /// Encodes `packet` into the buffer; [`PacketWriter::flush`] sends it.
    pub(crate) fn queue(&mut self, packet: &Packet) -> Result<(), ClientError> {
        Ok(self.0.queue(packet)?)
    }

    /// The buffer, for writers that encode in place.
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        self.0.buffer()
    }

    /// How many bytes wait to be written.
    pub(crate) fn buffered(&self) -> usize {
        self.0.buffered()
    }

    /// The connection's protocol version.
    pub(crate) fn version(&self) -> ProtocolVersion {
        self.0.version()
    }

    /// Writes everything buffered.
    pub(crate) async fn flush(&mut self) -> Result<(), ClientError> {
        Ok(self.0.flush().await?)
    }

    /// Queues `packet` and flushes.
    pub(crate) async fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        Ok(self.0.send(packet).await?)
    }

    /// Closes our side of the connection (after a DISCONNECT).
    pub(crate) async fn shutdown(&mut self) {
        self.0.shutdown().await;
    }
}

/// A connection the broker accepted.
pub(crate) struct Connection {
    /// The read half.
    pub(crate) reader: PacketReader,
    /// The write half.
    pub(crate) writer: PacketWriter,
    /// The broker's CONNACK.
    pub(crate) connack: ConnAck,
}

/// Opens a connection with `connector` and sends `connect`; returns once CONNACK accepts it.
pub(crate) async fn connect(
    connector: &Connector,
    connect: &Connect,
) -> Result<Connection, ClientError> {
    let conn = mqtt_client::io::connect(connector, connect).await?;
    Ok(Connection {
        reader: PacketReader(conn.reader),
        writer: PacketWriter(conn.writer),
        connack: conn.connack,
    })
}
