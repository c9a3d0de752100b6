//! The streaming decoder: finds whole frames in a buffer and decodes them, remembering the
//! connection's protocol version and maximum packet size.

use bytes::{Bytes, BytesMut};

use crate::parse::{VarInt, decode_varint};
use crate::{DecodeError, FixedHeader, Packet, PacketType, ProtocolVersion, Publish};

/// The largest packet MQTT can express: a 5-byte fixed header and 268,435,455 bytes of body.
pub const MAX_PACKET_SIZE: u32 = 268_435_460;

/// A streaming decoder for one connection.
///
/// A server starts with [`Decoder::new`]: the version is unknown, only CONNECT is accepted,
/// and the version it names is used from then on. A client starts with
/// [`Decoder::with_version`].
///
/// ```
/// use bytes::BytesMut;
/// use mqtt_codec::{Decoder, Packet, ProtocolVersion};
///
/// let mut decoder = Decoder::with_version(ProtocolVersion::V3_1_1);
/// let mut buf = BytesMut::from(&[0xD0, 0x00, 0xC0][..]); // PINGRESP, half a PINGREQ
/// assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingResp)));
/// assert_eq!(decoder.decode(&mut buf), Ok(None)); // waits for the rest
/// buf.extend_from_slice(&[0x00]);
/// assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingReq)));
/// assert!(buf.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder for the server side of a new connection: it accepts only CONNECT until one
    /// has set the version.
    pub const fn new() -> Self {
        Self {
            version: None,
            max_packet_size: MAX_PACKET_SIZE,
        }
    }

    /// A decoder for a connection whose version is known (the client side, or a server
    /// resuming after CONNECT).
    pub const fn with_version(version: ProtocolVersion) -> Self {
        Self {
            version: Some(version),
            max_packet_size: MAX_PACKET_SIZE,
        }
    }

    /// Refuses packets larger than `max` bytes (fixed header included), before buffering
    /// their body.
    pub const fn with_max_packet_size(mut self, max: u32) -> Self {
        self.max_packet_size = max;
        self
    }

    /// The protocol version, once known.
    pub const fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the protocol version.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// The maximum packet size in force.
    pub const fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the maximum packet size.
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// Decodes the packet at the front of `buf` and removes its bytes from `buf`.
    ///
    /// Returns `Ok(None)` if `buf` does not hold a whole packet yet (nothing is consumed),
    /// and an error as soon as the bytes present prove the packet invalid. The packet's
    /// strings and payload share `buf`'s memory: nothing is copied.
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        // The hot path: a PUBLISH on a connection whose version is known, with its remaining
        // length complete and within the limit. Anything else, including every error the
        // fixed header can have, takes the general path.
        if let (Some(version), Some(&first)) = (self.version, buf.first())
            && first >> 4 == PacketType::Publish as u8
            && (first >> 1) & 0b11 != 3
            && let VarInt::Value(remaining, len_bytes) =
                decode_varint(buf.get(1..).unwrap_or_default())
            && 1 + len_bytes + remaining as usize <= self.max_packet_size as usize
        {
            let header_len = 1 + len_bytes;
            let frame_len = header_len + remaining as usize;
            if buf.len() < frame_len {
                return Ok(None);
            }
            let frame = buf.split_to(frame_len).freeze();
            return match Publish::decode(frame, header_len, first & 0x0F, version) {
                Ok(publish) => Ok(Some(Packet::Publish(publish))),
                Err(e) => Err(e),
            };
        }
        self.decode_general(buf)
    }

    /// [`Decoder::decode`] for every packet but the hot path's.
    #[inline(never)]
    fn decode_general(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf, self.version, self.max_packet_size)? else {
            return Ok(None);
        };
        if buf.len() < header.frame_len() {
            // No `reserve` here: the peer's length is not a reason to allocate ahead of data.
            return Ok(None);
        }
        let frame = buf.split_to(header.frame_len()).freeze();
        self.decode_frame(&header, frame).map(Some)
    }

    /// Decodes the packet at the front of `buf` without consuming anything; returns the
    /// packet and the number of bytes it took. For analysers and proxies that hold `Bytes`.
    pub fn decode_bytes(&mut self, buf: &Bytes) -> Result<Option<(Packet, usize)>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf, self.version, self.max_packet_size)? else {
            return Ok(None);
        };
        if buf.len() < header.frame_len() {
            return Ok(None);
        }
        let frame = buf.slice(..header.frame_len());
        Ok(Some((
            self.decode_frame(&header, frame)?,
            header.frame_len(),
        )))
    }

    fn decode_frame(&mut self, header: &FixedHeader, frame: Bytes) -> Result<Packet, DecodeError> {
        // Before CONNECT the fixed header check lets only CONNECT through, and CONNECT
        // carries its own version, so the fallback is never used to read a body.
        let version = self.version.unwrap_or(ProtocolVersion::V5);
        let packet = Packet::decode(header, frame, version)?;
        if let (None, Packet::Connect(connect)) = (self.version, &packet) {
            self.version = Some(connect.version);
        }
        Ok(packet)
    }
}
