//! The signals the broker answers: SIGINT (Ctrl-C) and SIGTERM (service managers, `kill`)
//! stop it; SIGHUP re-reads the configuration file (see `reload`), as daemons do.

use std::io;

use tokio::signal::unix::{Signal as Stream, SignalKind, signal};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGINT or SIGTERM (its name): stop.
    Stop(&'static str),
    /// SIGHUP: reload the configuration.
    Reload,
}

/// SIGINT, SIGTERM and SIGHUP, caught from the moment this is built: from then on they no
/// longer kill the process, they are reported by [`Signals::recv`].
#[derive(Debug)]
pub(crate) struct Signals {
    /// SIGINT.
    interrupt: Stream,
    /// SIGTERM.
    terminate: Stream,
    /// SIGHUP.
    hangup: Stream,
}

impl Signals {
    /// Starts catching SIGINT, SIGTERM and SIGHUP.
    pub(crate) fn install() -> io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub(crate) async fn recv(&mut self) -> Signal {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Signal::Stop("SIGINT"),
            Some(()) = self.terminate.recv() => Signal::Stop("SIGTERM"),
            Some(()) = self.hangup.recv() => Signal::Reload,
            // Every stream closed (tokio's signal driver gone): no signal will ever come.
            else => std::future::pending().await,
        }
    }

    /// Waits for the next SIGINT or SIGTERM and returns its name; a SIGHUP meanwhile is
    /// taken and ignored (said so in the log): there is nothing to reload into while
    /// stopping.
    pub(crate) async fn recv_stop(&mut self) -> &'static str {
        loop {
            match self.recv().await {
                Signal::Stop(name) => return name,
                Signal::Reload => {
                    tracing::info!("SIGHUP while shutting down: no reload");
                }
            }
        }
    }
}
