//! rumqttd (bytebeamio's broker, the crate `rumqttd` 0.20) as a peer of the end-to-end
//! bench: its whole configuration written here ([`rumqttd_config`]), a fresh instance per
//! scenario on a free loopback port, and where `cargo install` put it ([`find_rumqttd`]).
//!
//! rumqttd does not keep a queue per session: each subscription filter has a commit log (a
//! ring of in-memory segments) that every matching PUBLISH is appended to, and each
//! subscriber reads it through its own cursor. A subscriber that falls further behind than
//! the log holds loses what was dropped from it, QoS 1 included; publishers are never held.
//! The log's size is therefore rumqttd's equivalent of our queue length.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::{MAX_INFLIGHT, Running, Tuning, command, free_port, serving, start_timeout};

/// Bytes rumqttd counts per bench message in its logs: 4, the topic (`bench/<run>/pairs/<i>`
/// and the like, at most about 32 bytes) and the 64-byte payload every scenario sends.
pub(crate) const MESSAGE_BYTES: u64 = 4 + 32 + 64;

/// Segments per log. The log drops its oldest segment when a new one is needed, so it
/// always holds at least `SEGMENTS - 1` full segments: with 9, at least the queue length and
/// at most an eighth more.
pub(crate) const SEGMENTS: u64 = 9;

/// rumqttd refuses segments smaller than this.
const MIN_SEGMENT_BYTES: u64 = 1024;

/// Connections the router accepts. nanomq has no such limit; this is far above what any
/// scenario opens (10,000 idle connections by default). The router reserves its tables'
/// capacity at start, but untouched capacity is not resident memory.
pub(crate) const MAX_CONNECTIONS: usize = 100_000;

/// nanomq's largest packet (`max_packet_size`, 1 MiB by default), as rumqttd's largest
/// incoming packet.
pub(crate) const MAX_PACKET_BYTES: usize = 1024 * 1024;

/// nanomq's `connect_timeout` (10 s): how long a new connection may take to send CONNECT.
pub(crate) const CONNECT_TIMEOUT_MS: u16 = 10_000;

/// How many PUBLISHes rumqttd's connection reads from its socket before it hands them to
/// the router (its `max_inflight_count`, despite the name; 100 in rumqttd's own
/// configuration, kept).
pub(crate) const READ_BATCH: usize = 100;

/// QoS 0 messages the router reads from a log for one subscriber at a time (rumqttd's
/// default, kept).
pub(crate) const QOS0_BATCH: u64 = 200;

/// rumqttd's configuration for the benchmarks, listening on `127.0.0.1:port`, with a log per
/// filter sized for `tuning.max_queued` bench messages.
///
/// What has no equivalent:
/// - the in-flight window: rumqttd's outgoing QoS 1/2 window is a constant of its router
///   (100 messages, `MAX_INFLIGHT` in its `router/iobufs.rs`), which the others are given
///   ([`MAX_INFLIGHT`]); and as MQTT 3.1.1 cannot announce an incoming window, the bench's publishers keep
///   theirs at 32 for every broker;
/// - the queue length in messages: the logs are sized in bytes ([`MESSAGE_BYTES`] per
///   message), per filter rather than per session, and never hold a publisher back
///   (nanomq's `mqueue_full = "backpressure"`);
/// - the queue's byte limit (`tuning.max_queued_bytes`) and the store (`tuning.store`):
///   rumqttd keeps everything in memory;
/// - TCP_NODELAY: rumqttd has no setting for it.
///
/// No console, no Prometheus exporter, no metrics timer, no WebSocket or MQTT 5 server:
/// every scenario rumqttd runs speaks MQTT 3.1.1 over TCP. `next_connection_delay_ms = 0`:
/// rumqttd would otherwise pause after each accept (1 ms in its own configuration), which
/// nanomq and Mosquitto do not. `dynamic_filters = true`: a PUBLISH to a topic no one
/// subscribes to is accepted (and the retained messages kept), as MQTT has it.
pub(crate) fn rumqttd_config(port: u16, tuning: &Tuning) -> String {
    let log_bytes = u64::from(tuning.max_queued) * MESSAGE_BYTES;
    let segment_bytes = log_bytes.div_ceil(SEGMENTS - 1).max(MIN_SEGMENT_BYTES);
    format!(
        "# Written by cargo xtask bench; nanomq's in-flight window is {MAX_INFLIGHT}, its \
         queue {} messages.\n\
         id = 0\n\n\
         [router]\n\
         max_connections = {MAX_CONNECTIONS}\n\
         max_outgoing_packet_count = {QOS0_BATCH}\n\
         max_segment_size = {segment_bytes}\n\
         max_segment_count = {SEGMENTS}\n\n\
         [v4.1]\n\
         name = \"v4-1\"\n\
         listen = \"127.0.0.1:{port}\"\n\
         next_connection_delay_ms = 0\n\n\
         [v4.1.connections]\n\
         connection_timeout_ms = {CONNECT_TIMEOUT_MS}\n\
         max_payload_size = {MAX_PACKET_BYTES}\n\
         max_inflight_count = {READ_BATCH}\n\
         dynamic_filters = true\n",
        tuning.max_queued
    )
}

/// Starts rumqttd with its configuration in `dir` (under `wrapper` if any, see
/// [`super::Extra::wrapper`]), and waits until it accepts connections.
pub(super) fn start_rumqttd(
    binary: &Path,
    dir: &Path,
    tuning: &Tuning,
    wrapper: &[String],
) -> Result<Running> {
    let port = free_port()?;
    // rumqttd picks the configuration's format by its extension.
    let conf = dir.join("rumqttd.toml");
    fs::write(&conf, rumqttd_config(port, tuning))
        .with_context(|| format!("cannot write {}", conf.display()))?;
    let child = command(binary, wrapper)
        .arg("--config")
        .arg(&conf)
        // No banner; warnings and errors only (its default level).
        .arg("--quiet")
        // Plain text in the log tail of an error message.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    // Its log goes to standard output, a panic to standard error: both kept.
    serving("rumqttd", child, port, start_timeout(wrapper))
}

/// rumqttd's path, if installed: on `PATH`, or where `cargo install` puts binaries
/// (`$CARGO_HOME/bin`, `~/.cargo/bin`), which is not always on `PATH`.
pub(crate) fn find_rumqttd() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    super::find_program("rumqttd", cargo_home.map(|home| home.join("bin")))
}

/// The version `rumqttd --version` prints (`rumqttd 0.20.0`), for the report.
pub(crate) fn version(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next()?.trim();
    (output.status.success() && !line.is_empty()).then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::e2e_bench::broker::MAX_QUEUED;

    /// The value of `key = value` in `config`.
    fn value<'a>(config: &'a str, key: &str) -> Option<&'a str> {
        config
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(" = "))
    }

    #[test]
    fn the_configuration_listens_on_loopback_alone_with_nothing_else_served() {
        let config = rumqttd_config(40_001, &Tuning::default());
        assert!(config.contains("[v4.1]\nname = \"v4-1\"\nlisten = \"127.0.0.1:40001\"\n"));
        assert_eq!(config.matches("listen = ").count(), 1, "{config}");
        for absent in [
            "[v5",
            "[ws",
            "[console",
            "[prometheus",
            "[metrics",
            "[bridge",
        ] {
            assert!(!config.contains(absent), "{absent}: {config}");
        }
        assert_eq!(value(&config, "id"), Some("0"));
        assert_eq!(value(&config, "next_connection_delay_ms"), Some("0"));
        assert_eq!(value(&config, "dynamic_filters"), Some("true"));
    }

    #[test]
    fn the_limits_are_nanomq_s_where_rumqttd_has_them() {
        let config = rumqttd_config(40_001, &Tuning::default());
        assert_eq!(value(&config, "max_connections"), Some("100000"));
        assert_eq!(value(&config, "max_payload_size"), Some("1048576"));
        assert_eq!(value(&config, "connection_timeout_ms"), Some("10000"));
        // 2,048 messages of 100 bytes over 8 of the 9 segments.
        assert_eq!(value(&config, "max_segment_size"), Some("25600"));
        assert_eq!(value(&config, "max_segment_count"), Some("9"));
    }

    #[test]
    fn the_logs_hold_at_least_the_queue_length_and_at_most_an_eighth_more() {
        for max_queued in [1, 10, MAX_QUEUED, 100_000] {
            let tuning = Tuning {
                max_queued,
                ..Tuning::default()
            };
            let config = rumqttd_config(1, &tuning);
            let segment: u64 = value(&config, "max_segment_size")
                .and_then(|v| v.parse().ok())
                .unwrap_or_default();
            assert!(segment >= MIN_SEGMENT_BYTES, "{max_queued}: {segment}");
            // Always held: all but the segment being filled.
            let held = (SEGMENTS - 1) * segment / MESSAGE_BYTES;
            assert!(held >= u64::from(max_queued), "{max_queued}: {held}");
            if segment > MIN_SEGMENT_BYTES {
                let most = SEGMENTS * segment / MESSAGE_BYTES;
                assert!(
                    most * 8 <= u64::from(max_queued) * 9 + 9 * 8,
                    "{max_queued}: {most}"
                );
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_version_line_is_read_from_a_program_s_output() {
        use std::os::unix::fs::PermissionsExt as _;
        // A stand-in that answers `--version` as clap does, and fails otherwise.
        let dir = std::env::temp_dir().join(format!("xtask-rumqttd-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("rumqttd");
        fs::write(
            &fake,
            "#!/bin/sh\n[ \"$1\" = --version ] || exit 2\necho 'rumqttd 0.20.0'\necho more\n",
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(version(&fake), Some("rumqttd 0.20.0".to_owned()));
        assert_eq!(version(Path::new("/bin/false")), None);
        assert_eq!(version(Path::new("/no/such/rumqttd")), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
