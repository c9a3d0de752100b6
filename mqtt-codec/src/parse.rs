//! The nom parsers every packet body is built from: integers, variable byte integers,
//! strings and binary data, each returning slices of the frame rather than copies.
//!
//! Body parsers run over exactly the bytes the fixed header announced, so they use nom's
//! `complete` primitives: running out of input is an error, never "incomplete".

use bytes::Bytes;
use bytestring::ByteString;
use nom::IResult;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32};

use crate::topic::check_mqtt_string;
use crate::{DecodeError, PacketId};

/// A nom result with our error type.
pub(crate) type PResult<'a, T> = IResult<&'a [u8], T, DecodeError>;

/// The largest value a variable byte integer can hold (four bytes of seven bits).
pub const MAX_VARIABLE_INTEGER: u32 = 268_435_455;

pub(crate) fn fail<T>(err: DecodeError) -> Result<T, nom::Err<DecodeError>> {
    Err(nom::Err::Error(err))
}

pub(crate) fn u8(i: &[u8]) -> PResult<'_, u8> {
    be_u8(i)
}

pub(crate) fn u16(i: &[u8]) -> PResult<'_, u16> {
    be_u16(i)
}

pub(crate) fn u32(i: &[u8]) -> PResult<'_, u32> {
    be_u32(i)
}

/// A variable byte integer from a complete body (a property length, a subscription id).
pub(crate) fn varint(i: &[u8]) -> PResult<'_, u32> {
    match decode_varint(i) {
        VarInt::Value(value, len) => Ok((i.get(len..).unwrap_or_default(), value)),
        VarInt::Incomplete => fail(DecodeError::UnexpectedEnd),
        VarInt::Malformed => fail(DecodeError::MalformedVariableInteger),
    }
}

/// The outcome of reading a variable byte integer from the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarInt {
    /// The value and the number of bytes it took.
    Value(u32, usize),
    /// The buffer ends inside the integer.
    Incomplete,
    /// More than four bytes, or a longer encoding than the value needs.
    Malformed,
}

/// Reads a variable byte integer. Shared by the streaming fixed-header check and the
/// complete-body parser above, which differ only in what running out of bytes means.
pub(crate) fn decode_varint(i: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for (n, &byte) in i.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * n);
        if byte & 0x80 == 0 {
            // A final byte of zero after the first means the value fit in fewer bytes.
            if n > 0 && byte == 0 {
                return VarInt::Malformed;
            }
            return VarInt::Value(value, n + 1);
        }
    }
    if i.len() >= 4 {
        VarInt::Malformed
    } else {
        VarInt::Incomplete
    }
}

/// The number of bytes `value` takes as a variable byte integer.
pub(crate) const fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` (at most [`MAX_VARIABLE_INTEGER`]) as a variable byte integer.
pub(crate) fn put_varint(buf: &mut impl bytes::BufMut, mut value: usize) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// Two-byte length-prefixed binary data, as a slice of `frame`.
pub(crate) fn binary<'a>(frame: &Bytes, i: &'a [u8]) -> PResult<'a, Bytes> {
    let (i, len) = be_u16(i)?;
    let (i, raw) = take(len)(i)?;
    Ok((i, frame.slice_ref(raw)))
}

/// Two-byte length-prefixed bytes that must be an MQTT string: UTF-8 without U+0000.
pub(crate) fn string<'a>(frame: &Bytes, i: &'a [u8]) -> PResult<'a, ByteString> {
    let (i, raw) = binary(frame, i)?;
    let s = ByteString::try_from(raw).or_else(|_| fail(DecodeError::InvalidUtf8))?;
    match check_mqtt_string(&s) {
        Ok(()) => Ok((i, s)),
        Err(e) => fail(DecodeError::InvalidString(e)),
    }
}

/// A packet identifier, which must not be zero.
pub(crate) fn packet_id(i: &[u8]) -> PResult<'_, PacketId> {
    let (i, id) = be_u16(i)?;
    match PacketId::new(id) {
        Some(id) => Ok((i, id)),
        None => fail(DecodeError::ZeroPacketId),
    }
}

/// Fails unless the body has been read to its end.
pub(crate) fn end(i: &[u8]) -> Result<(), DecodeError> {
    if i.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::TrailingBytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_from_the_specification_table() {
        for (bytes, value) in [
            (&[0x00][..], 0),
            (&[0x7F], 127),
            (&[0x80, 0x01], 128),
            (&[0xFF, 0x7F], 16_383),
            (&[0x80, 0x80, 0x01], 16_384),
            (&[0xFF, 0xFF, 0x7F], 2_097_151),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
            (&[0xFF, 0xFF, 0xFF, 0x7F], 268_435_455),
        ] {
            assert_eq!(decode_varint(bytes), VarInt::Value(value, bytes.len()));
            assert_eq!(varint_len(value as usize), bytes.len());
            let mut out = Vec::new();
            put_varint(&mut out, value as usize);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn varints_refuse_five_bytes_and_padding() {
        assert_eq!(decode_varint(&[0xFF, 0xFF, 0xFF, 0xFF]), VarInt::Malformed);
        assert_eq!(decode_varint(&[0x80, 0x00]), VarInt::Malformed);
        assert_eq!(decode_varint(&[0xFF, 0xFF]), VarInt::Incomplete);
        assert_eq!(decode_varint(&[]), VarInt::Incomplete);
    }
}
