//! How values are kept in the store's columns and blobs: integers, times, expiries,
//! delivery states, identifiers, and messages as encoded MQTT 5 PUBLISH packets. Each
//! conversion has its inverse here, and the inverse refuses what the forward one cannot
//! have written.

use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU16;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_codec::{
    ClientId, Decoder, Packet, PacketId, ProtocolVersion, Publish, PublishQoS, QoS, SubscriptionId,
};

use super::LoadError;
use crate::SessionExpiry;
use crate::message::Message;
use crate::store::DeliveryState;

/// `DeliveryState` as the `state` column holds it.
pub(super) const STATE_QUEUED: i64 = 0;
pub(super) const STATE_AWAITING_PUBACK: i64 = 1;
pub(super) const STATE_AWAITING_PUBREC: i64 = 2;
pub(super) const STATE_AWAITING_PUBCOMP: i64 = 3;

/// `SessionExpiry::Immediately` in the `expiry` column (`NULL` is `Never`; a session that
/// ends with its connection is not normally stored, but is not refused).
pub(super) const EXPIRY_IMMEDIATELY: i64 = -1;

/// The hash of a session key, message id or segment id. They are integers the broker hands
/// out in sequence, and the writer looks them up for every delivery: a multiply spreads them
/// over a table at a fraction of SipHash's cost (no peer chooses them, so there is nothing
/// to defend against).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IdHash(u64);

/// Builds [`IdHash`]es.
pub(super) type IdBuild = BuildHasherDefault<IdHash>;

impl Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

/// Encodes a message as an MQTT 5 PUBLISH into `buf`. The packet identifier means nothing
/// here (each delivery gets its own when it is sent), but a QoS 1/2 PUBLISH must carry one:
/// it is 1.
pub(super) fn encode(message: &Message, buf: &mut BytesMut) -> rusqlite::Result<()> {
    buf.clear();
    if message.properties.is_none() {
        return encode_plain(message, buf);
    }
    let mut publish = Publish::new(message.topic.clone(), message.payload.clone());
    publish.qos = PublishQoS::with_packet_id(message.qos, PacketId::from(NonZeroU16::MIN));
    publish.retain = message.retain;
    publish.properties = message.properties.clone();
    Packet::Publish(publish)
        .encode(ProtocolVersion::V5, buf)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(())
}

/// [`encode`] for a message without properties (nearly all of them), written directly
/// rather than through a `Publish` (which costs two reference counts and the codec's
/// general path): the same bytes, as the tests check.
fn encode_plain(message: &Message, buf: &mut BytesMut) -> rusqlite::Result<()> {
    let too_large = || {
        rusqlite::Error::ToSqlConversionFailure(
            format!(
                "a PUBLISH of {} bytes is larger than MQTT allows",
                message.payload.len()
            )
            .into(),
        )
    };
    let topic = message.topic.as_str().as_bytes();
    let topic_len = u16::try_from(topic.len()).map_err(|_| too_large())?;
    let packet_id = usize::from(message.qos != QoS::AtMostOnce) * 2;
    // Topic, packet identifier, property length (0), payload.
    let remaining = 2 + topic.len() + packet_id + 1 + message.payload.len();
    if remaining > MAX_REMAINING_LENGTH {
        return Err(too_large());
    }
    buf.reserve(5 + remaining);
    buf.put_u8(0x30 | (message.qos.as_u8() << 1) | u8::from(message.retain));
    let mut rest = remaining;
    loop {
        let byte = (rest % 128) as u8;
        rest /= 128;
        if rest == 0 {
            buf.put_u8(byte);
            break;
        }
        buf.put_u8(byte | 0x80);
    }
    buf.put_u16(topic_len);
    buf.put_slice(topic);
    if packet_id > 0 {
        buf.put_u16(1);
    }
    buf.put_u8(0);
    buf.put_slice(&message.payload);
    Ok(())
}

/// The largest Remaining Length MQTT can express (four bytes of variable byte integer).
const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Decodes what [`encode`] wrote.
pub(super) fn decode(packet: Bytes) -> Result<Message, String> {
    match Decoder::with_version(ProtocolVersion::V5).decode_bytes(&packet) {
        Ok(Some((Packet::Publish(mut p), len))) if len == packet.len() => {
            let (qos, retain, properties) = (p.qos.qos(), p.retain, p.properties.take());
            let (topic, payload) = p.into_parts();
            Ok(Message::new(topic, payload, qos, retain, properties))
        }
        Ok(Some((_, len))) if len != packet.len() => {
            Err(format!("{} bytes after the PUBLISH", packet.len() - len))
        }
        Ok(Some((other, _))) => Err(format!("a {:?} instead of a PUBLISH", other.packet_type())),
        Ok(None) => Err("a truncated PUBLISH".to_owned()),
        Err(e) => Err(format!("an invalid PUBLISH ({e})")),
    }
}

/// A `u64` as SQLite's signed integer, bit for bit (values above `i64::MAX` come back as
/// they went in, though SQLite sorts them as negative).
pub(super) fn sql_int(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

/// The inverse of [`sql_int`].
pub(super) fn from_sql_int(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

/// Milliseconds since the Unix epoch (negative before it), saturating.
pub(super) fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => {
            i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| ms.saturating_neg())
        }
    }
}

pub(super) fn optional_time(ms: Option<i64>) -> Result<Option<SystemTime>, LoadError> {
    ms.map(from_unix_ms).transpose()
}

pub(super) fn client_id_from_sql(id: String) -> Result<ClientId, LoadError> {
    ClientId::new(id.clone())
        .map_err(|e| LoadError::Corrupt(format!("invalid client id {id:?}: {e}")))
}

/// The inverse of [`unix_ms`].
pub(super) fn from_unix_ms(ms: i64) -> Result<SystemTime, LoadError> {
    let offset = Duration::from_millis(ms.unsigned_abs());
    let at = if ms >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    at.ok_or_else(|| LoadError::Corrupt(format!("time {ms} ms is out of range")))
}

pub(super) fn expiry_to_sql(expiry: SessionExpiry) -> Option<i64> {
    match expiry {
        SessionExpiry::Immediately => Some(EXPIRY_IMMEDIATELY),
        SessionExpiry::After(after) => Some(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
        SessionExpiry::Never => None,
    }
}

pub(super) fn expiry_from_sql(value: Option<i64>) -> Result<SessionExpiry, LoadError> {
    match value {
        None => Ok(SessionExpiry::Never),
        Some(EXPIRY_IMMEDIATELY) => Ok(SessionExpiry::Immediately),
        Some(ms) => u64::try_from(ms)
            .map(|ms| SessionExpiry::After(Duration::from_millis(ms)))
            .map_err(|_| LoadError::Corrupt(format!("invalid session expiry {ms}"))),
    }
}

/// A delivery state as its `(packet_id, state)` columns.
pub(super) fn state_to_sql(state: DeliveryState) -> (Option<u16>, i64) {
    match state {
        DeliveryState::Queued => (None, STATE_QUEUED),
        DeliveryState::AwaitingPubAck(id) => (Some(id.get()), STATE_AWAITING_PUBACK),
        DeliveryState::AwaitingPubRec(id) => (Some(id.get()), STATE_AWAITING_PUBREC),
        DeliveryState::AwaitingPubComp(id) => (Some(id.get()), STATE_AWAITING_PUBCOMP),
    }
}

pub(super) fn state_from_sql(
    packet_id: Option<i64>,
    state: i64,
) -> Result<DeliveryState, LoadError> {
    let id = || {
        packet_id
            .ok_or_else(|| {
                LoadError::Corrupt(format!("delivery state {state} without a packet id"))
            })
            .and_then(packet_id_from_sql)
    };
    match state {
        STATE_QUEUED => Ok(DeliveryState::Queued),
        STATE_AWAITING_PUBACK => Ok(DeliveryState::AwaitingPubAck(id()?)),
        STATE_AWAITING_PUBREC => Ok(DeliveryState::AwaitingPubRec(id()?)),
        STATE_AWAITING_PUBCOMP => Ok(DeliveryState::AwaitingPubComp(id()?)),
        other => Err(LoadError::Corrupt(format!(
            "invalid delivery state {other}"
        ))),
    }
}

pub(super) fn packet_id_from_sql(value: i64) -> Result<PacketId, LoadError> {
    u16::try_from(value)
        .ok()
        .and_then(PacketId::new)
        .ok_or_else(|| LoadError::Corrupt(format!("invalid packet id {value}")))
}

pub(super) fn qos_from_sql(value: i64) -> Result<QoS, LoadError> {
    u8::try_from(value)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| LoadError::Corrupt(format!("invalid QoS {value}")))
}

pub(super) fn subscription_id_from_sql(value: i64) -> Result<SubscriptionId, LoadError> {
    u32::try_from(value)
        .ok()
        .and_then(SubscriptionId::new)
        .ok_or_else(|| LoadError::Corrupt(format!("invalid subscription id {value}")))
}

/// Subscription identifiers are kept as consecutive little-endian `u32`s (`NULL` for none).
pub(super) fn subscription_ids_from_sql(
    blob: Option<Vec<u8>>,
) -> Result<Vec<SubscriptionId>, LoadError> {
    let Some(blob) = blob else {
        return Ok(Vec::new());
    };
    let chunks = blob.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return Err(LoadError::Corrupt(format!(
            "subscription identifiers of {} bytes",
            blob.len()
        )));
    }
    chunks
        .map(|chunk| {
            let bytes = <[u8; 4]>::try_from(chunk)
                .map_err(|_| LoadError::Corrupt("a short subscription identifier".to_owned()))?;
            subscription_id_from_sql(i64::from(u32::from_le_bytes(bytes)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_encode_as_the_codec_does_and_decode_back() {
        use mqtt_codec::{PublishProperties, TopicName};
        let topic = |t: &str| TopicName::new(t).unwrap_or_else(|_| unreachable!());
        for (qos, retain, payload_len) in [
            (QoS::AtMostOnce, false, 0),
            (QoS::AtLeastOnce, true, 64),
            (QoS::ExactlyOnce, false, 200),
            (QoS::AtLeastOnce, false, 20_000),
            (QoS::AtLeastOnce, false, 3_000_000),
        ] {
            let message = Message::new(
                topic("a/b/c"),
                Bytes::from(vec![7u8; payload_len]),
                qos,
                retain,
                None,
            );
            let mut fast = BytesMut::new();
            encode(&message, &mut fast).unwrap_or_else(|_| unreachable!());
            let mut publish = Publish::new(message.topic.clone(), message.payload.clone());
            publish.qos = PublishQoS::with_packet_id(qos, PacketId::from(NonZeroU16::MIN));
            publish.retain = retain;
            let mut codec = BytesMut::new();
            Packet::Publish(publish)
                .encode(ProtocolVersion::V5, &mut codec)
                .unwrap_or_else(|_| unreachable!());
            assert_eq!(fast, codec, "{qos:?} {retain} {payload_len}");
            let back = decode(fast.freeze()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (back.qos, back.retain, back.payload.len()),
                (qos, retain, payload_len)
            );
        }
        let with = Message::new(
            topic("p"),
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            false,
            Some(Box::new(PublishProperties {
                content_type: Some("text/plain".into()),
                ..PublishProperties::default()
            })),
        );
        let mut buf = BytesMut::new();
        encode(&with, &mut buf).unwrap_or_else(|_| unreachable!());
        let back = decode(buf.freeze()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.properties, with.properties);
    }

    #[test]
    fn integers_and_times_round_trip() {
        for v in [0, 1, i64::MAX as u64, u64::MAX] {
            assert_eq!(from_sql_int(sql_int(v)), v);
        }
        for ms in [0, 1, 1_700_000_000_123, -5_000] {
            assert_eq!(unix_ms(from_unix_ms(ms).unwrap()), ms);
        }
        for e in [
            SessionExpiry::Never,
            SessionExpiry::Immediately,
            SessionExpiry::After(Duration::ZERO),
            SessionExpiry::After(Duration::from_secs(3600)),
        ] {
            assert_eq!(expiry_from_sql(expiry_to_sql(e)).unwrap(), e);
        }
    }
}
