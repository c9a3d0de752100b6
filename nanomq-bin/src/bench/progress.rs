//! Live progress on standard error, once a second: connections, then the rates of messages
//! sent, acknowledged and received. On a terminal it is a progress bar (indicatif) over the
//! run's duration; otherwise one line per second, so that logs stay readable.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::time::Instant;

use super::clients::Live;
use super::run::Phase;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Not at all (`--quiet`).
    Off,
    /// A line per second.
    Lines,
    /// A progress bar.
    Bar,
}

impl Mode {
    /// The mode for this standard error.
    pub(crate) fn detect(quiet: bool) -> Self {
        if quiet {
            Self::Off
        } else if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines
        }
    }
}

/// The counters at one tick.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    connected: u64,
    failed: u64,
    sent: u64,
    acked: u64,
    received: u64,
}

impl Snapshot {
    fn take(live: &Live) -> Self {
        Self {
            connected: Live::get(&live.connected),
            failed: Live::get(&live.connect_failed),
            sent: Live::get(&live.sent),
            acked: Live::get(&live.acked),
            received: Live::get(&live.received),
        }
    }
}

/// Shows progress until the phase is [`Phase::Done`].
pub(crate) async fn show(
    mode: Mode,
    live: Arc<Live>,
    mut phase: watch::Receiver<Phase>,
    clients: u64,
    duration: Duration,
) {
    if mode == Mode::Off {
        return;
    }
    let bar = (mode == Mode::Bar).then(|| {
        let bar = ProgressBar::new(duration.as_secs().max(1));
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:25}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let began = Instant::now();
    let mut last = Snapshot::default();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Done {
                    break;
                }
                continue;
            }
        }
        let now = Snapshot::take(&live);
        let current = *phase.borrow();
        let line = match current {
            Phase::Connecting => format!(
                "connecting {}/{} ({} failed)",
                now.connected, clients, now.failed
            ),
            Phase::Running(_) | Phase::Draining | Phase::Done => format!(
                "{}conns {}/{}  sent {}/s  acked {}/s  recv {}/s  (total recv {})",
                if current == Phase::Draining {
                    "draining  "
                } else {
                    ""
                },
                now.connected,
                clients,
                now.sent - last.sent,
                now.acked - last.acked,
                now.received - last.received,
                now.received
            ),
        };
        last = now;
        match &bar {
            Some(bar) => {
                if let Phase::Running(start) = current {
                    bar.set_position(start.elapsed().as_secs());
                }
                bar.set_message(line);
                bar.tick();
            }
            None => eprintln!("[{:>4}s] {line}", began.elapsed().as_secs()),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
