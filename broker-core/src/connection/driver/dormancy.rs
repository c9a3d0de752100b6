//! When a driver lets its connection go dormant (see `connection::dormant`), and what it
//! keeps meanwhile.

use mqtt_codec::Decoder;
use tokio::time::Instant;

use super::Driver;
use super::lazy::Aliases;
use crate::connection::dormant::{DORMANT_AFTER, Sleeping, socket_of};
use crate::limits::LimitLog;
use crate::pipe::Pipe;

/// What a driver keeps from one spell awake to the next: all else it holds is empty when
/// it goes dormant, or is taken anew when it wakes (the limits).
pub(crate) struct Kept {
    /// The decoder, set to the client's version (what the client sent after its CONNECT,
    /// in the first spell, comes beside; a dormant connection has nothing buffered).
    pub(super) decoder: Decoder,
    pub(super) last_received: Instant,
    pub(super) aliases: Option<Box<Aliases>>,
    pub(super) limit_log: LimitLog,
    pub(super) denials: u32,
    /// Whether the client has sent anything since CONNECT.
    pub(super) active: bool,
    /// Whether the connection has been awake before (a kick then closes with a reason
    /// string, as on any live connection).
    pub(super) resumed: bool,
    /// Whether the pool refused the connection: it stays awake.
    pub(super) sleepless: bool,
}

impl Kept {
    /// A connection's first spell, just after its CONNACK.
    pub(crate) fn new(decoder: Decoder) -> Self {
        Self {
            decoder,
            last_received: Instant::now(),
            aliases: None,
            limit_log: LimitLog::default(),
            denials: 0,
            active: false,
            resumed: false,
            sleepless: false,
        }
    }

    /// The pool could not take the connection: it does not try again.
    pub(crate) fn stay_awake(&mut self) {
        self.sleepless = true;
    }
}

impl<'a, P: Pipe> Driver<'a, P> {
    /// When the connection may go dormant, if it is of a kind that can and that moment is
    /// still to come (the timer wakes the driver for it).
    pub(super) fn dormancy_deadline(&self, now: Instant) -> Option<Instant> {
        let at = self.stirred + DORMANT_AFTER;
        (at > now && self.may_sleep_kind()).then_some(at)
    }

    /// Whether this connection can ever go dormant: a plain TCP stream, a pool to take it.
    fn may_sleep_kind(&self) -> bool {
        !self.sleepless
            && std::any::TypeId::of::<P::Stream>()
                == std::any::TypeId::of::<tokio::net::TcpStream>()
            && self.broker.dormant.available()
    }

    /// Whether the connection goes dormant now: quiet for [`DORMANT_AFTER`], its buffers
    /// given back, nothing held or waited for but its client, its session and its
    /// deadline. The state it leaves with, if so.
    pub(super) fn falls_asleep(&mut self) -> Option<Sleeping> {
        // The clock last: this runs every round, and a busy connection, which holds its
        // buffers, is told no without reading it.
        let quiet = self.reader.buf.capacity() == 0
            && self.out.capacity() == 0
            && self.held_acks.is_empty()
            && self.holding.is_none()
            && self.flow.is_idle()
            && self.rare.is_empty()
            && self.stirred.elapsed() >= DORMANT_AFTER;
        if !quiet || !self.may_sleep_kind() {
            return None;
        }
        let Some(fd) = socket_of(self.pipe.stream()) else {
            self.sleepless = true;
            return None;
        };
        self.count_allowed();
        self.reader.flush_counts(&self.broker.metrics);
        self.session.state.lock().release_idle();
        let deadline = self.next_deadline();
        Some(Sleeping {
            kept: Kept {
                decoder: self.reader.decoder,
                last_received: self.last_received,
                aliases: self.aliases.take(),
                limit_log: std::mem::take(&mut self.limit_log),
                denials: self.denials,
                active: self.active,
                resumed: true,
                sleepless: false,
            },
            fd,
            deadline,
        })
    }
}
