//! The signals that stop the broker: SIGINT (Ctrl-C) and SIGTERM (service managers, `kill`).

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, caught from the moment this is built: from then on they no longer kill
/// the process, they are reported by [`Signals::recv`].
#[derive(Debug)]
pub(crate) struct Signals {
    /// SIGINT.
    interrupt: Signal,
    /// SIGTERM.
    terminate: Signal,
}

impl Signals {
    /// Starts catching SIGINT and SIGTERM.
    pub(crate) fn install() -> io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM and returns its name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.interrupt.recv() => "SIGINT",
            Some(()) = self.terminate.recv() => "SIGTERM",
            // Both streams closed (tokio's signal driver gone): no signal will ever come.
            else => std::future::pending().await,
        }
    }
}
