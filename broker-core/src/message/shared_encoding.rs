//! A PUBLISH encoded once for every subscriber that receives a message the same way.
//!
//! Fanned out to many sessions, a message used to be encoded once per subscriber, though
//! most of them get the very same bytes: only the packet identifier differs. The first
//! subscriber to send it encodes it into a [`SharedEncoding`] held by the message; the
//! others copy those bytes and write their own identifier into them. Only the plain case
//! is shared: no DUP, no per-delivery properties (subscription identifiers, message expiry,
//! topic alias, properties passed through); a subscriber that needs anything else, or a
//! variant other than the one encoded first, encodes its own packet as before.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use mqtt_codec::{PacketId, QoS};

/// How a subscriber receives a message, as far as its bytes go (beyond the packet id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Variant {
    /// MQTT 5 (a property length byte) or 3.1/3.1.1 (none).
    pub(crate) v5: bool,
    /// The QoS delivered with.
    pub(crate) qos: QoS,
    /// The retain flag delivered with.
    pub(crate) retain: bool,
}

/// The encoded packet of one [`Variant`].
#[derive(Debug)]
pub(crate) struct Encoded {
    variant: Variant,
    bytes: Bytes,
    /// Where the packet identifier's two bytes are (QoS 1 and 2).
    packet_id_at: Option<usize>,
}

impl Encoded {
    /// `bytes`, an encoded PUBLISH of `variant`, if it parses as one: the packet id's place
    /// is read from its own fixed header and topic length.
    pub(crate) fn new(variant: Variant, bytes: Bytes) -> Option<Self> {
        let packet_id_at = if variant.qos == QoS::AtMostOnce {
            None
        } else {
            // Fixed header: the type byte, then the remaining length (1 to 4 bytes).
            let len_bytes = bytes.iter().skip(1).take(4).position(|b| b & 0x80 == 0)? + 1;
            let topic_at = 1 + len_bytes;
            let topic_len = u16::from_be_bytes([*bytes.get(topic_at)?, *bytes.get(topic_at + 1)?]);
            let at = topic_at + 2 + usize::from(topic_len);
            Some((at + 2 <= bytes.len()).then_some(at)?)
        };
        Some(Self {
            variant,
            bytes,
            packet_id_at,
        })
    }

    /// The packet's length.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends the packet with `packet_id` (none at QoS 0) to `out`.
    pub(crate) fn append_to(&self, packet_id: Option<PacketId>, out: &mut bytes::BytesMut) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        if let (Some(at), Some(id)) = (self.packet_id_at, packet_id)
            && let Some(slot) = out.get_mut(start + at..start + at + 2)
        {
            slot.copy_from_slice(&id.get().to_be_bytes());
        }
    }
}

/// A message's shared encoding: enabled when it is routed to more than one session, made
/// by the first subscriber that sends it.
#[derive(Default)]
pub(crate) struct SharedEncoding {
    /// Set by routing once it knows the message goes to more than one session, before any
    /// delivery is queued (the queue's lock orders it before every subscriber's read).
    enabled: AtomicBool,
    encoded: OnceLock<Option<Encoded>>,
}

impl SharedEncoding {
    /// Enables it: the message goes to more than one session.
    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether the message goes to more than one session.
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// The encoding of `variant`: made with `encode` by the first caller, shared with every
    /// later one of the same variant; `None` when not enabled or made for another variant.
    pub(crate) fn get(
        &self,
        variant: Variant,
        encode: impl FnOnce() -> Option<Encoded>,
    ) -> Option<&Encoded> {
        if !self.is_enabled() {
            return None;
        }
        self.encoded
            .get_or_init(encode)
            .as_ref()
            .filter(|e| e.variant == variant)
    }
}

impl fmt::Debug for SharedEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedEncoding")
            .field("enabled", &self.enabled.load(Ordering::Relaxed))
            .field("encoded", &self.encoded.get().is_some())
            .finish()
    }
}

// A cache: a copy of the message starts without one, and it takes no part in equality.
impl Clone for SharedEncoding {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for SharedEncoding {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SharedEncoding {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use bytes::BytesMut;
    use mqtt_codec::{Packet, PacketId, ProtocolVersion, Publish, PublishQoS, TopicName};

    use super::*;

    fn encode(version: ProtocolVersion, qos: QoS, id: u16, topic: &str, payload: usize) -> Bytes {
        let mut publish = Publish::new(
            TopicName::new(topic).unwrap(),
            Bytes::from(vec![7u8; payload]),
        );
        publish.qos = PublishQoS::with_packet_id(qos, PacketId::new(id).unwrap());
        let mut buf = BytesMut::new();
        Packet::Publish(publish).encode(version, &mut buf).unwrap();
        buf.freeze()
    }

    #[test]
    fn the_shared_bytes_with_another_packet_id_are_that_packet_s_own_encoding() {
        // Remaining lengths of 1, 2 and 3 bytes, both protocol families, QoS 1 and 2.
        for payload in [10, 200, 20_000] {
            for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
                for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
                    let variant = Variant {
                        v5: version.is_v5(),
                        qos,
                        retain: false,
                    };
                    let shared =
                        Encoded::new(variant, encode(version, qos, 1, "a/b", payload)).unwrap();
                    let mut out = BytesMut::from(&b"xy"[..]);
                    shared.append_to(PacketId::new(0xBEEF), &mut out);
                    let own = encode(version, qos, 0xBEEF, "a/b", payload);
                    assert_eq!(&out[2..], &own[..], "{version:?} {qos:?} {payload}");
                    assert_eq!(shared.len(), own.len());
                }
            }
        }
    }

    #[test]
    fn qos_0_is_copied_as_it_is() {
        let variant = Variant {
            v5: false,
            qos: QoS::AtMostOnce,
            retain: false,
        };
        let mut publish = Publish::new(TopicName::new("t").unwrap(), Bytes::from_static(b"p"));
        publish.qos = PublishQoS::AtMostOnce;
        let mut buf = BytesMut::new();
        Packet::Publish(publish)
            .encode(ProtocolVersion::V3_1_1, &mut buf)
            .unwrap();
        let bytes = buf.freeze();
        let shared = Encoded::new(variant, bytes.clone()).unwrap();
        let mut out = BytesMut::new();
        shared.append_to(None, &mut out);
        assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn only_the_variant_encoded_first_is_shared_and_only_when_enabled() {
        let v = |qos| Variant {
            v5: false,
            qos,
            retain: false,
        };
        let bytes = encode(ProtocolVersion::V3_1_1, QoS::AtLeastOnce, 1, "t", 3);
        let cache = SharedEncoding::default();
        assert!(cache.get(v(QoS::AtLeastOnce), || unreachable!()).is_none());
        cache.enable();
        let made = cache.get(v(QoS::AtLeastOnce), || {
            Encoded::new(v(QoS::AtLeastOnce), bytes.clone())
        });
        assert!(made.is_some());
        assert!(cache.get(v(QoS::AtLeastOnce), || unreachable!()).is_some());
        assert!(cache.get(v(QoS::ExactlyOnce), || unreachable!()).is_none());
        // A truncated packet is not shared.
        assert!(Encoded::new(v(QoS::AtLeastOnce), bytes.slice(..4)).is_none());
    }
}
