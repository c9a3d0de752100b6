//! Mosquitto (Debian's `mosquitto`) as a peer of the end-to-end bench: its configuration,
//! equivalent to nanomq's ([`mosquitto_config`]), a fresh instance on a free loopback port
//! (or a given one: the bridge scenarios restart an upstream where its bridges expect it),
//! and where it is installed ([`find_mosquitto`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};

use super::{Extra, MAX_INFLIGHT, MAX_QUEUED, Running, command, free_port, serving, start_timeout};

/// Mosquitto's configuration, equivalent to [`super::nanomq_config`].
pub(crate) fn mosquitto_config(port: u16) -> String {
    format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         max_inflight_messages {MAX_INFLIGHT}\n\
         max_queued_messages {MAX_QUEUED}\n\
         set_tcp_nodelay true\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n"
    )
}

pub(super) fn start_mosquitto(binary: &Path, dir: &Path, extra: &Extra) -> Result<Running> {
    launch(binary, dir, free_port()?, &extra.mosquitto, &extra.wrapper)
}

/// Starts Mosquitto on `port` (the bridge scenarios restart an upstream where its bridges
/// expect it), with its files in `dir` and `extra` appended to its configuration.
pub(crate) fn start_mosquitto_on(
    binary: &Path,
    dir: &Path,
    port: u16,
    extra: &str,
) -> Result<Running> {
    launch(binary, dir, port, extra, &[])
}

/// Starts Mosquitto on `port`, under `wrapper` if any (see [`super::Extra::wrapper`]).
fn launch(
    binary: &Path,
    dir: &Path,
    port: u16,
    extra: &str,
    wrapper: &[String],
) -> Result<Running> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let conf = dir.join("mosquitto.conf");
    fs::write(&conf, mosquitto_config(port) + extra)
        .with_context(|| format!("cannot write {}", conf.display()))?;
    let child = command(binary, wrapper)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    serving("mosquitto", child, port, start_timeout(wrapper))
}

/// Mosquitto's path, if installed (Debian puts it in /usr/sbin, which is not always on PATH).
pub(crate) fn find_mosquitto() -> Option<PathBuf> {
    super::find_program(
        "mosquitto",
        [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")],
    )
}
