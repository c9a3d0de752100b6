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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio_util::codec::{Decoder as _, Encoder as _};

    use super::*;
    use crate::{ClientId, ConnAck, Connect, Publish, ReasonCode, TopicName};

    #[test]
    fn a_server_codec_learns_the_version_from_connect() {
        let mut client = MqttCodec::new(Decoder::with_version(ProtocolVersion::V5));
        let mut server = MqttCodec::new(Decoder::new());
        let mut wire = BytesMut::new();
        let connect = Packet::Connect(Box::new(Connect::new(
            ProtocolVersion::V5,
            ClientId::new("c").unwrap(),
        )));
        client.encode(&connect, &mut wire).unwrap();
        assert_eq!(server.decode(&mut wire).unwrap(), Some(connect));
        assert_eq!(server.decoder_mut().version(), Some(ProtocolVersion::V5));

        // The server now encodes MQTT 5: a CONNACK carries a properties length byte.
        server
            .encode(Packet::ConnAck(Box::default()), &mut wire)
            .unwrap();
        assert_eq!(&wire[..], &[0x20, 0x03, 0x00, 0x00, 0x00]);
        assert_eq!(
            client.decode(&mut wire).unwrap(),
            Some(Packet::ConnAck(Box::default()))
        );
    }

    #[test]
    fn before_connect_packets_are_encoded_as_3_1_1() {
        let mut server = MqttCodec::new(Decoder::new());
        let refusal = ConnAck {
            reason_code: ReasonCode::UnsupportedProtocolVersion,
            ..ConnAck::default()
        };
        let mut wire = BytesMut::new();
        server
            .encode(Packet::ConnAck(Box::new(refusal)), &mut wire)
            .unwrap();
        assert_eq!(&wire[..], &[0x20, 0x02, 0x00, 0x01]);
    }

    #[test]
    fn the_outgoing_limit_refuses_large_packets() {
        let mut codec = MqttCodec::new(Decoder::with_version(ProtocolVersion::V3_1_1));
        codec.set_max_outgoing_packet_size(16);
        let publish = Packet::Publish(Publish::new(
            TopicName::new("t").unwrap(),
            Bytes::from(vec![0; 32]),
        ));
        let mut wire = BytesMut::new();
        let err = codec.encode(&publish, &mut wire).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Encode(EncodeError::PacketTooLarge { size: 37, max: 16 })
        ));
        assert!(wire.is_empty());
    }

    #[test]
    fn decode_errors_surface_as_codec_errors() {
        let mut codec = MqttCodec::new(Decoder::new());
        let mut wire = BytesMut::from(&[0x30, 0x00][..]);
        assert!(matches!(
            codec.decode(&mut wire),
            Err(CodecError::Decode(DecodeError::ProtocolVersionUnknown(_)))
        ));
    }
}
