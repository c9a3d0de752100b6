//! `[limits]`: what one client may make the broker hold or do (broker-core's `Limits`).

use broker_core::Limits;
use serde::Deserialize;

use super::Problems;
use crate::units::ByteSize;

/// `[limits]`, read as TOML integers and range-checked in `validate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [limits] table")]
pub(super) struct RawLimits {
    max_topic_levels: i64,
    max_topic_length: ByteSize,
    max_filters_per_packet: i64,
    max_subscriptions: i64,
    max_connections: i64,
}

impl Default for RawLimits {
    fn default() -> Self {
        let d = Limits::default();
        let int = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Self {
            max_topic_levels: int(d.max_topic_levels),
            max_topic_length: ByteSize(u64::try_from(d.max_topic_length).unwrap_or(u64::MAX)),
            max_filters_per_packet: int(d.max_filters_per_packet),
            max_subscriptions: int(d.max_subscriptions),
            max_connections: int(d.max_connections),
        }
    }
}

/// MQTT's own bound on a topic's length, and so on its levels.
const MQTT_MAX_TOPIC: i64 = u16::MAX as i64;

impl RawLimits {
    /// The limits; problems for values out of range.
    pub(super) fn validate(self, problems: &mut Problems) -> Limits {
        let d = Limits::default();
        let length = i64::try_from(self.max_topic_length.0).unwrap_or(i64::MAX);
        Limits {
            max_topic_levels: problems
                .in_range(
                    "limits.max_topic_levels",
                    self.max_topic_levels,
                    1,
                    MQTT_MAX_TOPIC,
                )
                .unwrap_or(d.max_topic_levels),
            max_topic_length: problems
                .in_range("limits.max_topic_length", length, 1, MQTT_MAX_TOPIC)
                .unwrap_or(d.max_topic_length),
            max_filters_per_packet: problems
                .in_range(
                    "limits.max_filters_per_packet",
                    self.max_filters_per_packet,
                    1,
                    i64::MAX,
                )
                .unwrap_or(d.max_filters_per_packet),
            max_subscriptions: problems
                .in_range(
                    "limits.max_subscriptions",
                    self.max_subscriptions,
                    1,
                    i64::MAX,
                )
                .unwrap_or(d.max_subscriptions),
            max_connections: problems
                .in_range("limits.max_connections", self.max_connections, 1, i64::MAX)
                .unwrap_or(d.max_connections),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn limits(table: &str) -> Result<Limits, String> {
        let text = format!("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[limits]\n{table}");
        parse(&text)
            .map(|config| config.mqtt.limits)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_key_is_read() {
        let read = limits(
            "max_topic_levels = 200\nmax_topic_length = \"1KB\"\nmax_filters_per_packet = 8\n\
             max_subscriptions = 100\nmax_connections = 5000",
        );
        assert_eq!(
            read,
            Ok(Limits {
                max_topic_levels: 200,
                max_topic_length: 1024,
                max_filters_per_packet: 8,
                max_subscriptions: 100,
                max_connections: 5000,
            })
        );
        assert_eq!(limits(""), Ok(Limits::default()));
    }

    #[test]
    fn a_value_out_of_range_is_refused_naming_the_key() {
        for (table, key) in [
            ("max_topic_levels = 0", "limits.max_topic_levels"),
            ("max_topic_levels = 65536", "limits.max_topic_levels"),
            ("max_topic_length = \"64KB\"", "limits.max_topic_length"),
            (
                "max_filters_per_packet = -1",
                "limits.max_filters_per_packet",
            ),
            ("max_subscriptions = 0", "limits.max_subscriptions"),
            ("max_connections = 0", "limits.max_connections"),
        ] {
            let error = limits(table).expect_err(table);
            assert!(error.contains(key), "{table}: {error}");
        }
        let error = limits("max_topics = 3").expect_err("unknown key");
        assert!(error.contains("max_topics"), "{error}");
    }
}
