//! The connect storm of the access-control scenarios: one `nanomq bench conn` in a thread of
//! its own, connecting clients at a steady [`RATE`] (each a user of the password file, so
//! that each CONNECT costs the broker a `$7$` check when it has the file) and holding them,
//! while `nanomq bench latency` measures beside it whether routing waits for the password
//! checks. The rate is paced, not as fast as the broker takes them: within what both brokers
//! can check on this machine, so that what the storm costs the pair is the broker's doing,
//! not a load generator that takes every core.

use std::path::Path;
use std::process::Command;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::access_files::CREDENTIALS;

/// CONNECTs per second.
pub(crate) const RATE: u32 = 1_000;

/// A storm in progress.
#[derive(Debug)]
pub(crate) struct Storm {
    thread: JoinHandle<Result<Stormed>>,
}

/// What a storm did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Stormed {
    /// Connections the broker accepted.
    pub(crate) connected: u64,
    /// Connections refused or timed out.
    pub(crate) failed: u64,
    /// From the first CONNECT to the last CONNACK, seconds.
    pub(crate) seconds: f64,
}

impl Stormed {
    /// Accepted connections per second over the storm.
    pub(crate) fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.connected as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl Storm {
    /// Starts `seconds` of storm against the broker that `connect_args` (`nanomq bench`
    /// flags) reach, with `client` (`nanomq bench`).
    pub(crate) fn start(client: &Path, connect_args: Vec<String>, seconds: u64) -> Self {
        let mut command = Command::new(client);
        let count = u64::from(RATE) * seconds;
        command
            .args(["bench", "conn", "-c", &count.to_string()])
            .args([
                "--connect-rate",
                &RATE.to_string(),
                "-d",
                "100ms",
                "-k",
                "600",
            ])
            .args(CREDENTIALS)
            .args(connect_args)
            .args(["--json", "--quiet"]);
        let timeout = Duration::from_secs(seconds + 60);
        Self {
            thread: thread::spawn(move || storm(command, timeout)),
        }
    }

    /// Waits for the storm's end.
    pub(crate) fn finish(self) -> Result<Stormed> {
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => bail!("the connect storm's thread panicked"),
        }
    }
}

/// Runs the storm's `nanomq bench conn`.
fn storm(command: Command, timeout: Duration) -> Result<Stormed> {
    let (status, stdout, stderr) = super::run_bounded(command, timeout)?;
    let report = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .with_context(|| {
            format!("the connect storm's nanomq bench printed no report ({status}):\n{stderr}")
        })?;
    let count = |p: &str| report.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Ok(Stormed {
        connected: count("/connections/connected"),
        failed: count("/connections/failed"),
        seconds: report
            .pointer("/elapsed_s/connecting")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_over_the_whole_storm() {
        let stormed = Stormed {
            connected: 3_000,
            failed: 0,
            seconds: 1.5,
        };
        assert_eq!(stormed.rate(), 2_000.0);
        assert_eq!(Stormed::default().rate(), 0.0);
    }
}
