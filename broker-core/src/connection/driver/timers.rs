//! What the driver does without input: the keep-alive deadline, MQTT 3.1.1 resends on a
//! live connection, the held buffers' release once the client has been quiet, and the
//! deadline of a publisher's wait for room in full queues.

use std::time::Duration;

use bytes::BytesMut;
use mqtt_codec::ReasonCode;
use tokio::time::Instant;

use super::{Driver, Exit};
use crate::pipe::Pipe;

/// How long a connection keeps its read and write buffers after the last bytes it read:
/// a busy one reuses them (allocating both anew for every packet cost a pair of QoS 1
/// clients some 500 instructions a message), an idle one gives them back this long after
/// its traffic stops.
const KEEP_BUFFERS: Duration = Duration::from_millis(250);

impl<P: Pipe> Driver<'_, P> {
    /// The next time something must happen without input: keep alive, a retry, the
    /// buffers' release, going dormant.
    /// When the connection is closed for silence: keep alive x multiplier after the last
    /// bytes received; `None` without keep alive.
    pub(super) fn keep_alive_deadline(&self) -> Option<Instant> {
        let keep_alive = self.param().keep_alive;
        // Not reading (held behind a full queue), the broker cannot hear the client.
        (keep_alive > 0 && self.flow.reading()).then(|| {
            let limit = f64::from(keep_alive) * f64::from(self.broker.config.keepalive_multiplier);
            self.last_received + Duration::from_secs_f64(limit)
        })
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let param = self.param();
        let keep_alive = self.keep_alive_deadline();
        let retry = if param.version.is_v5() {
            None
        } else {
            let interval = self.broker.config.retry_interval;
            self.session
                .state
                .lock()
                .next_retry(interval)
                .map(Instant::from_std)
        };
        // Held buffers are given back once the client has been quiet a while.
        let idle_read_buffer = self.reader.buf.is_empty() && self.reader.buf.capacity() > 0;
        let release = (self.out.capacity() > 0 || idle_read_buffer)
            .then(|| self.last_received + KEEP_BUFFERS);
        let dormancy = self.dormancy_deadline(Instant::now());
        [keep_alive, retry, self.flow.deadline(), release, dormancy]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the client sent something a moment ago, so that the buffers stay.
    pub(super) fn keeps_buffers(&self) -> bool {
        self.active && self.last_received.elapsed() < KEEP_BUFFERS
    }

    pub(super) fn on_timer(&mut self) -> Option<Exit> {
        let now = Instant::now();
        if !self.keeps_buffers() {
            // Quiet: what the buffers hold is nothing (a partial packet stays).
            if self.out.is_empty() {
                self.out = BytesMut::new();
            }
            if self.reader.buf.is_empty() {
                self.reader.buf = BytesMut::new();
            }
        }
        let param = self.param();
        if self
            .keep_alive_deadline()
            .is_some_and(|deadline| now >= deadline)
        {
            tracing::debug!(client = %param.client_id, "keep alive timeout");
            return Some(Exit::Closed(ReasonCode::KeepAliveTimeout));
        }
        if !param.version.is_v5() {
            // MQTT 3.1.1 allows resending unacknowledged messages on a live connection.
            let interval = self.broker.config.retry_interval;
            let due = now.into_std() - interval;
            let mut state = self.session.state.lock();
            for f in state.inflight.iter_mut() {
                if f.sent_at.is_some_and(|at| at <= due) {
                    f.sent_at = None;
                }
            }
        }
        self.wait_ran_out(now);
        None
    }
}
