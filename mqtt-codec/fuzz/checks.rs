//! The checks the fuzz targets run, kept apart from libFuzzer so that
//! `mqtt-codec/tests/fuzz_regressions.rs` runs them too (both include this file with
//! `#[path]`), over the seed corpus and every crash input kept as a regression.
//!
//! Every check panics when the codec misbehaves and returns quietly otherwise; an input
//! the codec rightly refuses is not a failure.
//!
//! # Input format (both targets)
//!
//! Byte 0 sets the scene, the rest is the byte stream a peer sent:
//! - bits 0-1: the decoder. 0: the server side of a new connection ([`Decoder::new`], only
//!   CONNECT accepted until it names the version); 1: MQTT 3.1; 2: MQTT 3.1.1; 3: MQTT 5.0.
//! - bits 2-7: where the stream is cut in two for the streaming check, in 63rds of its length
//!   (0: before the first byte, 63: after the last).

use bytes::{Buf, Bytes, BytesMut};
use mqtt_codec::{DecodeError, Decoder, EncodeError, Packet, ProtocolVersion};

/// A fuzz input, split into its parts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input<'a> {
    /// The decoder the stream is read with.
    pub(crate) decoder: Decoder,
    /// Where the streaming check cuts the stream: `0..=stream.len()`.
    pub(crate) split: usize,
    /// The bytes the peer sent.
    pub(crate) stream: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits `data` as the module documentation says; `None` for an empty input.
    pub(crate) fn parse(data: &'a [u8]) -> Option<Self> {
        let (&scene, stream) = data.split_first()?;
        let decoder = match scene & 0b11 {
            0 => Decoder::new(),
            1 => Decoder::with_version(ProtocolVersion::V3_1),
            2 => Decoder::with_version(ProtocolVersion::V3_1_1),
            _ => Decoder::with_version(ProtocolVersion::V5),
        };
        let split = usize::from(scene >> 2) * stream.len() / 63;
        Some(Self {
            decoder,
            split,
            stream,
        })
    }

    /// The first input byte that selects `decoder` (a version, or `None` for the server side)
    /// and cuts the stream near its middle. For writing seeds.
    pub(crate) fn scene_byte(version: Option<ProtocolVersion>) -> u8 {
        let mode = match version {
            None => 0,
            Some(ProtocolVersion::V3_1) => 1,
            Some(ProtocolVersion::V3_1_1) => 2,
            Some(ProtocolVersion::V5) => 3,
        };
        32 << 2 | mode
    }
}

/// Everything a decoder makes of a stream: the packets, then how it stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The packets decoded, in order.
    pub(crate) packets: Vec<Packet>,
    /// `Ok(bytes left over)` when the decoder wanted more, or the error that stopped it.
    pub(crate) end: Result<Vec<u8>, DecodeError>,
    /// The decoder's protocol version at the end.
    pub(crate) version: Option<ProtocolVersion>,
}

/// Feeds `chunks` one after the other to `decoder`, decoding after each until the decoder
/// wants more bytes or fails.
pub(crate) fn decode_chunks(mut decoder: Decoder, chunks: &[&[u8]]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    assert!(
                        buf.len() < before,
                        "decode returned {packet:?} but consumed nothing"
                    );
                    packets.push(packet);
                }
                Ok(None) => {
                    assert_eq!(
                        buf.len(),
                        before,
                        "decode returned Ok(None) but consumed bytes"
                    );
                    break;
                }
                Err(err) => {
                    return Outcome {
                        packets,
                        end: Err(err),
                        version: decoder.version(),
                    };
                }
            }
        }
    }
    Outcome {
        packets,
        end: Ok(buf.to_vec()),
        version: decoder.version(),
    }
}

/// Decodes all of `stream` with [`Decoder::decode_bytes`], which consumes nothing itself.
pub(crate) fn decode_bytes_stream(mut decoder: Decoder, stream: &[u8]) -> Outcome {
    let mut bytes = Bytes::copy_from_slice(stream);
    let mut packets = Vec::new();
    let end = loop {
        match decoder.decode_bytes(&bytes) {
            Ok(Some((packet, used))) => {
                assert!(
                    (2..=bytes.len()).contains(&used),
                    "decode_bytes returned {packet:?} taking {used} of {} bytes",
                    bytes.len()
                );
                bytes.advance(used);
                packets.push(packet);
            }
            Ok(None) => break Ok(bytes.to_vec()),
            Err(err) => break Err(err),
        }
    };
    Outcome {
        packets,
        end,
        version: decoder.version(),
    }
}

/// The `decode` target: decoding must not panic, and must not depend on how the stream is
/// cut into reads: the whole buffer at once, two chunks cut where the input says, one byte
/// at a time, and `decode_bytes` must all give the same packets and the same end.
pub(crate) fn check_decode(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let whole = decode_chunks(input.decoder, &[input.stream]);

    let (head, tail) = input.stream.split_at(input.split);
    let halves = decode_chunks(input.decoder, &[head, tail]);
    assert_eq!(
        whole, halves,
        "the stream decodes differently when cut in two after byte {}",
        input.split
    );

    let bytes: Vec<&[u8]> = input.stream.chunks(1).collect();
    let bytewise = decode_chunks(input.decoder, &bytes);
    assert_eq!(
        whole, bytewise,
        "the stream decodes differently when fed one byte at a time"
    );

    let borrowed = decode_bytes_stream(input.decoder, input.stream);
    assert_eq!(
        whole, borrowed,
        "decode_bytes decodes the stream differently from decode"
    );
}

/// The `roundtrip` target: every packet decoded from the stream must encode (in the version
/// it was decoded in; CONNECT in its own), to exactly `encoded_len` bytes, and decode from
/// that encoding, by a fresh decoder of that version, to the same packet.
pub(crate) fn check_roundtrip(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let mut decoder = input.decoder;
    let mut buf = BytesMut::from(input.stream);
    loop {
        let known = decoder.version();
        let packet = match decoder.decode(&mut buf) {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(_) => return,
        };
        let version = match (&packet, known) {
            (Packet::Connect(connect), _) => connect.version,
            (_, Some(version)) => version,
            (other, None) => panic!("{other:?} was decoded before the protocol version was known"),
        };
        check_packet_roundtrip(&packet, version);
    }
}

/// Encodes `packet`, which was decoded in `version`, and decodes it again.
pub(crate) fn check_packet_roundtrip(packet: &Packet, version: ProtocolVersion) {
    let len = packet.encoded_len(version).unwrap_or_else(|err| {
        panic!("encoded_len({version}) fails for a packet that was decoded: {err:?}\n{packet:#?}")
    });
    let mut wire = BytesMut::new();
    let written = packet.encode(version, &mut wire).unwrap_or_else(|err| {
        panic!("encode({version}) fails for a packet that was decoded: {err:?}\n{packet:#?}")
    });
    assert_eq!(
        written, len,
        "encode({version}) wrote a size other than encoded_len said\n{packet:#?}"
    );
    assert_eq!(
        wire.len(),
        written,
        "encode({version}) returned a size other than it wrote\n{packet:#?}"
    );

    check_limits(packet, version, &wire);

    let mut again = wire.clone();
    let mut fresh = Decoder::with_version(version);
    assert_eq!(
        fresh.decode(&mut again),
        Ok(Some(packet.clone())),
        "the encoding ({version}) {:02x?} does not decode to the packet it came from",
        wire.as_ref()
    );
    assert!(
        again.is_empty(),
        "{} bytes of the encoding were not read back",
        again.len()
    );

    if let Packet::Connect(connect) = packet {
        // A server learns the version from CONNECT itself.
        let mut server = Decoder::new();
        let mut again = wire.clone();
        assert_eq!(
            server.decode(&mut again),
            Ok(Some(packet.clone())),
            "a server-side decoder reads the CONNECT encoding differently"
        );
        assert_eq!(server.version(), Some(connect.version));
    }
}

/// The encoder's refusals: a buffer one byte short and a maximum packet size one byte short
/// are refused with nothing written; exactly enough of either is accepted, with the same
/// bytes as `wire`.
fn check_limits(packet: &Packet, version: ProtocolVersion, wire: &[u8]) {
    let len = wire.len();

    let mut exact = vec![0_u8; len];
    assert_eq!(
        packet.encode(version, &mut exact.as_mut_slice()),
        Ok(len),
        "encoding into a buffer of exactly encoded_len bytes fails"
    );
    assert_eq!(exact, wire, "encoding into a slice writes other bytes");

    let mut short = vec![0_u8; len - 1];
    assert_eq!(
        packet.encode(version, &mut short.as_mut_slice()),
        Err(EncodeError::BufferTooSmall {
            needed: len,
            remaining: len - 1
        }),
        "encoding into a buffer one byte short is not refused as such"
    );
    assert!(
        short.iter().all(|&byte| byte == 0),
        "a refused encode wrote into the buffer"
    );

    let Ok(max) = u32::try_from(len) else {
        return;
    };
    let mut limited = BytesMut::new();
    assert_eq!(
        packet.encode_limited(version, max, &mut limited),
        Ok(len),
        "encode_limited refuses a packet of exactly the maximum size"
    );
    assert_eq!(limited.as_ref(), wire);
    let mut refused = BytesMut::new();
    assert_eq!(
        packet.encode_limited(version, max - 1, &mut refused),
        Err(EncodeError::PacketTooLarge {
            size: len,
            max: max - 1
        }),
        "encode_limited accepts a packet over the maximum size"
    );
    assert!(refused.is_empty(), "a refused encode_limited wrote bytes");
}
