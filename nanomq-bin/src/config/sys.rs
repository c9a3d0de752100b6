//! `[sys]`: the broker's `$SYS` topics. Every `interval` the broker publishes Mosquitto's
//! statistics topics (`$SYS/broker/...`, retained), and with `client_events` NanoMQ's
//! connection events (`$SYS/brokers/connected`, `$SYS/brokers/disconnected`) as clients
//! come and go.

use std::time::Duration;

use serde::Deserialize;

use super::Problems;
use crate::units::HumanDuration;

/// The shortest interval besides 0 (off): Mosquitto's `sys_interval` counts whole seconds,
/// and a shorter one would only make subscribers busy.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The `[sys]` table, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SysConfig {
    /// How often the statistics are published; `None` is never.
    pub(crate) interval: Option<Duration>,
    /// Whether each client's connection and disconnection is published.
    pub(crate) client_events: bool,
}

impl Default for SysConfig {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(10)),
            client_events: true,
        }
    }
}

/// `[sys]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [sys] table")]
pub(super) struct RawSys {
    interval: HumanDuration,
    client_events: bool,
}

impl Default for RawSys {
    fn default() -> Self {
        let d = SysConfig::default();
        Self {
            interval: HumanDuration(d.interval.unwrap_or_default()),
            client_events: d.client_events,
        }
    }
}

impl RawSys {
    /// The settings; a problem for an interval shorter than a second (other than 0).
    pub(super) fn validate(self, problems: &mut Problems) -> SysConfig {
        let interval = self.interval.0;
        if !interval.is_zero() && interval < MIN_INTERVAL {
            problems.add(
                "sys.interval",
                format!(
                    "must be 0 (no $SYS statistics) or at least 1s, got {}",
                    humantime::format_duration(interval)
                ),
            );
        }
        SysConfig {
            interval: (!interval.is_zero()).then_some(interval),
            client_events: self.client_events,
        }
    }
}
