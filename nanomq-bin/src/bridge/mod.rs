//! Bridges to upstream brokers (`[[bridges]]`).
//!
//! A bridge is a session of the local broker (`local`: its forwards are that session's
//! subscriptions, its queue that session's queue, in the store with persistence on) and a
//! client of the upstream (`remote`: one sans-IO connection per attempt, each with the
//! limits of its own CONNACK). `link` relays between them; a local message is acknowledged
//! to the local broker only once the upstream has acknowledged it. `topics` maps topics
//! across. Attempts go through the servers in order (failover), then wait with exponential
//! backoff and jitter up to `backoff_max`. `manager` keeps the running bridges by name, each
//! with its own stop channel, so a reload can start, stop or replace one.

mod link;
mod local;
mod manager;
mod remote;
mod topics;

pub(crate) use manager::Bridges;

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_client::{ConnectOptions, Connector};

use crate::config::BridgeConfig;
use link::{Ended, Relay};
use remote::Remote;

/// The first wait after a failed round of attempts.
const BACKOFF_START: Duration = Duration::from_millis(200);

/// A link that stood this long counts as healthy: the next failure starts the backoff over.
const HEALTHY: Duration = Duration::from_secs(10);

/// One bridge: attempts, links and waits until it is stopped.
async fn run(
    config: Arc<BridgeConfig>,
    connectors: Vec<Connector>,
    mut relay: Relay,
    counters: Arc<broker_core::BridgeCounters>,
) {
    let options = connect_options(&config);
    let mut backoff = Backoff::new(config.backoff_max);
    let mut attempts = 0_u64;
    relay.publish_state(false);
    'bridge: while !relay.stopping() {
        for connector in &connectors {
            if attempts > 0 {
                counters.reconnected();
            }
            attempts += 1;
            let state = relay.take_state();
            let (remote, params) = match Remote::connect(connector, &options, state).await {
                Ok(connected) => connected,
                Err((error, state)) => {
                    relay.put_state(state);
                    tracing::debug!(bridge = %config.name, server = %connector.endpoint(), %error, "connection attempt failed");
                    continue;
                }
            };
            tracing::info!(
                bridge = %config.name,
                server = %connector.endpoint(),
                session_present = params.session_present,
                receive_maximum = params.receive_maximum,
                maximum_packet_size = params.maximum_packet_size,
                topic_alias_maximum = params.topic_alias_maximum,
                "bridge connected"
            );
            counters.set_connected(true);
            relay.publish_state(true);
            let since = Instant::now();
            let ended = relay.run(remote, &params).await;
            counters.set_connected(false);
            relay.publish_state(false);
            match ended {
                Ended::Lost(error) => {
                    tracing::warn!(bridge = %config.name, server = %connector.endpoint(), %error, "bridge disconnected");
                    if since.elapsed() >= HEALTHY {
                        // The preferred server first again, at once.
                        backoff.reset();
                        continue 'bridge;
                    }
                    // A link that drops at once is not retried at once.
                    break;
                }
                Ended::Stopped => break 'bridge,
                Ended::LocalGone => {
                    tracing::info!(bridge = %config.name, "the local broker is stopping; bridge ends");
                    return;
                }
            }
        }
        let wait = backoff.next();
        tracing::debug!(bridge = %config.name, ?wait, "every server failed; waiting");
        match relay.wait(wait).await {
            None => {}
            Some(Ended::Stopped) => break,
            Some(Ended::LocalGone | Ended::Lost(_)) => return,
        }
    }
    tracing::info!(bridge = %config.name, "bridge stopped");
    relay.close().await;
}

/// The CONNECT every attempt sends.
fn connect_options(config: &BridgeConfig) -> ConnectOptions {
    let v5 = config.version.is_v5();
    let mut options = ConnectOptions::new(config.client_id.as_str())
        .version(config.version)
        .clean_start(config.clean_start)
        .keep_alive(config.keep_alive);
    options.username.clone_from(&config.username);
    options.password = config.password.clone().map(Into::into);
    options.bridge = !v5;
    options.manual_acks = true;
    if v5 {
        options.session_expiry = Some(config.session_expiry);
        options.receive_maximum = NonZeroU16::new(config.max_inflight);
    }
    options
}

/// Exponential backoff with jitter.
struct Backoff {
    /// The next wait before jitter.
    next: Duration,
    /// The longest.
    max: Duration,
    /// xorshift state, for the jitter.
    seed: u64,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        Self {
            next: BACKOFF_START.min(max),
            max,
            seed,
        }
    }

    /// The next wait: between half and all of the current step, which then doubles.
    fn next(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let fraction = 0.5 + (self.seed % 1000) as f64 / 2000.0;
        step.mul_f64(fraction)
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_maximum() {
        let mut backoff = Backoff::new(Duration::from_secs(2));
        let waits: Vec<_> = (0..8).map(|_| backoff.next()).collect();
        assert!(waits[0] >= BACKOFF_START / 2 && waits[0] <= BACKOFF_START);
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(2)));
        assert!(waits[7] >= Duration::from_secs(1));
        backoff.reset();
        assert!(backoff.next() <= BACKOFF_START);
    }
}
