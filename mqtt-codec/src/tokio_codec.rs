//! `tokio_util::codec` glue (feature `tokio-codec`): use [`MqttCodec`] with `Framed`.

use bytes::BytesMut;

use crate::{DecodeError, Decoder, EncodeError, MAX_PACKET_SIZE, Packet, ProtocolVersion};

/// An error from [`MqttCodec`]: the transport's, or the codec's.
#[derive(Debug)]
#[non_exhaustive]
pub enum CodecError {
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The peer sent an invalid packet.
    Decode(DecodeError),
    /// A packet could not be encoded.
    Encode(EncodeError),
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Decode(e) => write!(f, "invalid packet from peer: {e}"),
            Self::Encode(e) => write!(f, "cannot encode packet: {e}"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Decode(e) => Some(e),
            Self::Encode(e) => Some(e),
        }
    }
}

impl From<std::io::Error> for CodecError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A [`Decoder`] and an encoder sharing one connection's version, for `tokio_util::codec`.
///
/// Before the version is known (a server refusing a CONNECT it could not read), packets
/// other than CONNECT are encoded as MQTT 3.1.1, which every client can parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MqttCodec {
    decoder: Decoder,
    max_outgoing_packet_size: u32,
}

impl MqttCodec {
    /// A codec around `decoder`, sending packets of any size.
    pub const fn new(decoder: Decoder) -> Self {
        Self {
            decoder,
            max_outgoing_packet_size: MAX_PACKET_SIZE,
        }
    }

    /// Refuses to send packets larger than `max` (the peer's Maximum Packet Size).
    pub fn set_max_outgoing_packet_size(&mut self, max: u32) {
        self.max_outgoing_packet_size = max;
    }

    /// The decoder, to read or change the version and incoming limit.
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    fn encode_packet(&self, packet: &Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        let version = self.decoder.version().unwrap_or(ProtocolVersion::V3_1_1);
        let len = packet.encoded_len(version).map_err(CodecError::Encode)?;
        dst.reserve(len);
        packet
            .encode_limited(version, self.max_outgoing_packet_size, dst)
            .map_err(CodecError::Encode)?;
        Ok(())
    }
}

impl tokio_util::codec::Decoder for MqttCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        self.decoder.decode(src).map_err(CodecError::Decode)
    }
}

impl tokio_util::codec::Encoder<Packet> for MqttCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_packet(&packet, dst)
    }
}

impl tokio_util::codec::Encoder<&Packet> for MqttCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: &Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_packet(packet, dst)
    }
}
