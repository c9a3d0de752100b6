//! `[mqtt]`: the protocol settings of broker-core's `MqttConfig` (packet size, queues,
//! in-flight window, keep alive, retained and shared-subscription behaviour).

use broker_core::{DropPolicy, MqttConfig, QueueFull, SharedStrategy};
use serde::Deserialize;

use super::Problems;
use crate::units::{ByteSize, Expiry, HumanDuration};

/// The smallest `mqtt.max_packet_size` accepted: below this not even a CONNECT fits.
const MIN_PACKET_SIZE: u64 = 64;

/// The largest packet MQTT can express: a 5-byte fixed header and 268,435,455 bytes.
const MAX_PACKET_SIZE: u64 = 268_435_460;

/// `[mqtt]`. Integers are read as TOML's `i64` and range-checked in `validate`, so that every
/// out-of-range value gets the same kind of message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [mqtt] table")]
pub(super) struct RawMqtt {
    max_packet_size: ByteSize,
    max_mqueue_len: i64,
    max_mqueue_bytes: ByteSize,
    mqueue_drop: RawDropPolicy,
    mqueue_full: RawQueueFull,
    mqueue_full_wait: HumanDuration,
    queue_qos0: bool,
    max_inflight: i64,
    retry_interval: HumanDuration,
    keepalive_multiplier: f64,
    session_expiry_default: Expiry,
    max_topic_alias: i64,
    server_keep_alive: i64,
    connect_timeout: HumanDuration,
    shared_strategy: RawSharedStrategy,
}

impl Default for RawMqtt {
    fn default() -> Self {
        let d = MqttConfig::default();
        Self {
            max_packet_size: ByteSize(d.max_packet_size.into()),
            max_mqueue_len: i64::try_from(d.max_mqueue_len).unwrap_or(i64::MAX),
            max_mqueue_bytes: ByteSize(u64::try_from(d.max_mqueue_bytes).unwrap_or(u64::MAX)),
            mqueue_drop: d.mqueue_drop.into(),
            mqueue_full: d.mqueue_full.into(),
            mqueue_full_wait: HumanDuration(d.mqueue_full_wait),
            queue_qos0: d.queue_qos0,
            max_inflight: d.max_inflight.into(),
            retry_interval: HumanDuration(d.retry_interval),
            keepalive_multiplier: d.keepalive_multiplier.into(),
            session_expiry_default: d
                .session_expiry_default
                .map_or(Expiry::Never, Expiry::After),
            max_topic_alias: d.max_topic_alias.into(),
            server_keep_alive: d.server_keep_alive.map_or(0, i64::from),
            connect_timeout: HumanDuration(d.connect_timeout),
            shared_strategy: d.shared_strategy.into(),
        }
    }
}

/// `mqtt.mqueue_drop`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawDropPolicy {
    DropOldest,
    DropNewest,
}

impl From<DropPolicy> for RawDropPolicy {
    fn from(policy: DropPolicy) -> Self {
        match policy {
            DropPolicy::DropOldest => Self::DropOldest,
            DropPolicy::DropNewest => Self::DropNewest,
        }
    }
}

impl From<RawDropPolicy> for DropPolicy {
    fn from(policy: RawDropPolicy) -> Self {
        match policy {
            RawDropPolicy::DropOldest => Self::DropOldest,
            RawDropPolicy::DropNewest => Self::DropNewest,
        }
    }
}

/// `mqtt.mqueue_full`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawQueueFull {
    Backpressure,
    Drop,
}

impl From<QueueFull> for RawQueueFull {
    fn from(full: QueueFull) -> Self {
        match full {
            QueueFull::Backpressure => Self::Backpressure,
            QueueFull::Drop => Self::Drop,
        }
    }
}

impl From<RawQueueFull> for QueueFull {
    fn from(full: RawQueueFull) -> Self {
        match full {
            RawQueueFull::Backpressure => Self::Backpressure,
            RawQueueFull::Drop => Self::Drop,
        }
    }
}

/// `mqtt.shared_strategy`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawSharedStrategy {
    RoundRobin,
    Random,
}

impl From<SharedStrategy> for RawSharedStrategy {
    fn from(strategy: SharedStrategy) -> Self {
        match strategy {
            SharedStrategy::RoundRobin => Self::RoundRobin,
            SharedStrategy::Random => Self::Random,
        }
    }
}

impl From<RawSharedStrategy> for SharedStrategy {
    fn from(strategy: RawSharedStrategy) -> Self {
        match strategy {
            RawSharedStrategy::RoundRobin => Self::RoundRobin,
            RawSharedStrategy::Random => Self::Random,
        }
    }
}

impl RawMqtt {
    /// The broker's settings; problems for values out of range.
    pub(super) fn validate(self, problems: &mut Problems) -> MqttConfig {
        let defaults = MqttConfig::default();
        let max_packet_size =
            if (MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&self.max_packet_size.0) {
                u32::try_from(self.max_packet_size.0).unwrap_or(u32::MAX)
            } else {
                problems.add(
                "mqtt.max_packet_size",
                format!(
                    "must be between {MIN_PACKET_SIZE} bytes and 256MB ({MAX_PACKET_SIZE} bytes), \
                     got {} bytes",
                    self.max_packet_size.0
                ),
            );
                defaults.max_packet_size
            };
        let max_mqueue_len = problems
            .in_range("mqtt.max_mqueue_len", self.max_mqueue_len, 1, i64::MAX)
            .unwrap_or(defaults.max_mqueue_len);
        let max_mqueue_bytes = match usize::try_from(self.max_mqueue_bytes.0) {
            Ok(bytes) if bytes > 0 => bytes,
            _ => {
                problems.add(
                    "mqtt.max_mqueue_bytes",
                    format!(
                        "must be between 1 byte and {} bytes, got {} bytes",
                        usize::MAX,
                        self.max_mqueue_bytes.0
                    ),
                );
                defaults.max_mqueue_bytes
            }
        };
        let max_inflight = problems
            .in_range("mqtt.max_inflight", self.max_inflight, 1, u16::MAX.into())
            .unwrap_or(defaults.max_inflight);
        let keepalive_multiplier = if self.keepalive_multiplier >= 1.0
            && self.keepalive_multiplier <= f64::from(u16::MAX)
        {
            // In range, so the conversion loses only precision nobody configures.
            #[allow(clippy::cast_possible_truncation)]
            let multiplier = self.keepalive_multiplier as f32;
            multiplier
        } else {
            problems.add(
                "mqtt.keepalive_multiplier",
                format!(
                    "must be between 1.0 and 65535, got {}",
                    self.keepalive_multiplier
                ),
            );
            defaults.keepalive_multiplier
        };
        let max_topic_alias = problems
            .in_range(
                "mqtt.max_topic_alias",
                self.max_topic_alias,
                0,
                u16::MAX.into(),
            )
            .unwrap_or(defaults.max_topic_alias);
        let server_keep_alive = problems
            .in_range::<u16>(
                "mqtt.server_keep_alive",
                self.server_keep_alive,
                0,
                u16::MAX.into(),
            )
            .filter(|&seconds| seconds > 0);
        MqttConfig {
            max_packet_size,
            max_mqueue_len,
            max_mqueue_bytes,
            mqueue_drop: self.mqueue_drop.into(),
            mqueue_full: self.mqueue_full.into(),
            mqueue_full_wait: problems.positive("mqtt.mqueue_full_wait", self.mqueue_full_wait.0),
            queue_qos0: self.queue_qos0,
            max_inflight,
            retry_interval: problems.positive("mqtt.retry_interval", self.retry_interval.0),
            keepalive_multiplier,
            session_expiry_default: match self.session_expiry_default {
                Expiry::Never => None,
                Expiry::After(duration) => Some(duration),
            },
            max_topic_alias,
            server_keep_alive,
            connect_timeout: problems.positive("mqtt.connect_timeout", self.connect_timeout.0),
            shared_strategy: self.shared_strategy.into(),
            // From [limits], set by the caller.
            limits: defaults.limits,
        }
    }
}
