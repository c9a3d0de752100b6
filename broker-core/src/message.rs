//! A published message as the broker holds it: shared by every subscriber it is routed to
//! (one `Arc`, one payload `Bytes`, never copied per subscriber).

mod shared_encoding;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::{PublishProperties, QoS, TopicName};

pub(crate) use self::shared_encoding::{Encoded, SharedEncoding, Variant};

/// A message accepted from a publisher (or a will).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: TopicName,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// Whether it was published retained.
    pub retain: bool,
    /// Properties passed through to subscribers (payload format, content type, response
    /// topic, correlation data, user properties). Topic alias, subscription identifiers and
    /// message expiry are per delivery and not kept here. `None` when there are none.
    pub properties: Option<Box<PublishProperties>>,
    /// When the message expires, if the publisher gave it an expiry interval.
    pub expires_at: Option<Instant>,
    /// The session that published it, for no-local subscriptions.
    pub publisher: Option<u64>,
    /// Its identifier in the session store, given when it is first stored.
    pub(crate) store_id: OnceLock<u64>,
    /// Its PUBLISH as most of its subscribers get it, when it goes to more than one.
    pub(crate) shared_encoding: SharedEncoding,
}

impl Message {
    /// A message without expiry or publisher.
    pub fn new(
        topic: TopicName,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Option<Box<PublishProperties>>,
    ) -> Self {
        Self {
            topic,
            payload,
            qos,
            retain,
            properties,
            expires_at: None,
            publisher: None,
            store_id: OnceLock::new(),
            shared_encoding: SharedEncoding::default(),
        }
    }

    /// Whether the message has expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The Message Expiry Interval to forward at `now`: the time left, in whole seconds,
    /// rounded up so a message is never sent with 0 while it still has time.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// Sets the expiry from a Message Expiry Interval received at `now`.
    pub fn with_expiry_interval(mut self, interval: Option<u32>, now: Instant) -> Self {
        self.expires_at = interval.map(|s| now + Duration::from_secs(u64::from(s)));
        self
    }
}
