//! Checking what a client sends against the broker's [`Limits`](crate::config::Limits): the
//! check for topic names and filters, which limit was passed, and the per-connection record
//! that logs each limit once (a client that keeps hitting one does not flood the log).

use std::sync::atomic::Ordering;

use mqtt_codec::ClientId;

use crate::config::Limits;
use crate::metrics::Metrics;

/// One of the limits of [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    TopicLevels,
    TopicLength,
    FiltersPerPacket,
    Subscriptions,
    Connections,
}

impl Limit {
    /// Its configuration key, for the log line an operator reads.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::TopicLevels => "limits.max_topic_levels",
            Self::TopicLength => "limits.max_topic_length",
            Self::FiltersPerPacket => "limits.max_filters_per_packet",
            Self::Subscriptions => "limits.max_subscriptions",
            Self::Connections => "limits.max_connections",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Counts one refusal; how many there have been.
    pub(crate) fn count(self, metrics: &Metrics) -> u64 {
        let counter = match self {
            Self::TopicLevels => &metrics.limit_topic_levels,
            Self::TopicLength => &metrics.limit_topic_length,
            Self::FiltersPerPacket => &metrics.limit_filters_per_packet,
            Self::Subscriptions => &metrics.limit_subscriptions,
            Self::Connections => &metrics.limit_connections,
        };
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Limits {
    /// Whether a topic name or filter is within the length and level limits. The levels of
    /// a shared subscription's `$share/{group}/` count too: they are part of what the
    /// client sent, and the length bound covers them anyway.
    pub(crate) fn check_topic(&self, topic: &str) -> Result<(), Limit> {
        if topic.len() > self.max_topic_length {
            return Err(Limit::TopicLength);
        }
        // Counting separators is enough: levels = separators + 1.
        if topic.bytes().filter(|&b| b == b'/').count() >= self.max_topic_levels {
            return Err(Limit::TopicLevels);
        }
        Ok(())
    }

    /// Whether a topic name or filter is within the length and level limits (what a
    /// configuration checks its own filters with before the broker would refuse them).
    pub fn allows_topic(&self, topic: &str) -> bool {
        self.check_topic(topic).is_ok()
    }
}

/// The limits one connection has passed: each is counted every time and logged the first.
#[derive(Debug, Default)]
pub(crate) struct LimitLog(u8);

impl LimitLog {
    /// Records that `client` passed `limit` (`what` says with what).
    pub(crate) fn exceeded(
        &mut self,
        limit: Limit,
        metrics: &Metrics,
        client: &ClientId,
        what: &str,
    ) {
        limit.count(metrics);
        if self.0 & limit.bit() == 0 {
            self.0 |= limit.bit();
            tracing::warn!(client = %client, limit = limit.key(), "{what}: refused (logged once per connection)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_length_are_bounded_just_past_the_limit() {
        let limits = Limits {
            max_topic_levels: 3,
            max_topic_length: 10,
            ..Limits::default()
        };
        assert_eq!(limits.check_topic("a/b/c"), Ok(()));
        assert_eq!(limits.check_topic("a/b/c/d"), Err(Limit::TopicLevels));
        assert_eq!(limits.check_topic("//"), Ok(()));
        assert_eq!(limits.check_topic("///"), Err(Limit::TopicLevels));
        assert_eq!(limits.check_topic("abcdefghij"), Ok(()));
        assert_eq!(limits.check_topic("abcdefghijk"), Err(Limit::TopicLength));
    }

    #[test]
    fn each_limit_is_logged_once_and_counted_every_time() {
        let metrics = Metrics::default();
        let mut log = LimitLog::default();
        let client = ClientId::new("c").unwrap_or_else(|_| unreachable!());
        for _ in 0..3 {
            log.exceeded(Limit::TopicLevels, &metrics, &client, "filter");
        }
        log.exceeded(Limit::Subscriptions, &metrics, &client, "filter");
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.limits.topic_levels, 3);
        assert_eq!(snapshot.limits.subscriptions, 1);
        assert_eq!(log.0, Limit::TopicLevels.bit() | Limit::Subscriptions.bit());
    }
}
