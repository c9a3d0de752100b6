//! `[log]`: the level, and whether the log goes to the console or to rotated files.

use std::path::PathBuf;

use serde::Deserialize;

use super::Problems;

/// The least severe level that is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogLevel {
    /// Everything.
    Trace,
    /// Per-connection detail (a rejected packet, a closed connection).
    Debug,
    /// Start, stop, listeners.
    Info,
    /// Something went wrong but the broker carries on.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The level as a tracing filter directive.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// When a log file is replaced by a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Rotation {
    /// One file, appended to.
    Never,
    /// A new file every day, the date appended to its name.
    Daily,
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogTarget {
    /// Standard error.
    Console,
    /// A file.
    File {
        /// Its directory (created if missing).
        dir: PathBuf,
        /// Its name within `dir`.
        file: String,
        /// When a new file is started.
        rotation: Rotation,
    },
}

/// The `[log]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogConfig {
    /// The least severe level logged (`RUST_LOG`, when set, overrides it).
    pub(crate) level: LogLevel,
    /// Where the log goes.
    pub(crate) target: LogTarget,
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [log] table")]
pub(super) struct RawLog {
    level: LogLevel,
    to: RawLogTo,
    dir: PathBuf,
    file: String,
    rotation: Rotation,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            to: RawLogTo::Console,
            dir: PathBuf::from("logs"),
            file: "nanomq.log".to_owned(),
            rotation: Rotation::Never,
        }
    }
}

/// `log.to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawLogTo {
    Console,
    File,
}

impl RawLog {
    /// Where and what to log; problems for an unusable directory or file name.
    pub(super) fn validate(self, problems: &mut Problems) -> LogConfig {
        if self.dir.as_os_str().is_empty() {
            problems.add("log.dir", "must not be empty");
        }
        if self.file.is_empty() || self.file == "." || self.file == ".." {
            problems.add(
                "log.file",
                format!("must be a file name, got \"{}\"", self.file),
            );
        } else if self.file.contains(['/', '\\']) {
            problems.add(
                "log.file",
                format!(
                    "must be a file name without a directory (put the directory in log.dir), \
                     got \"{}\"",
                    self.file
                ),
            );
        }
        let target = match self.to {
            RawLogTo::Console => LogTarget::Console,
            RawLogTo::File => LogTarget::File {
                dir: self.dir,
                file: self.file,
                rotation: self.rotation,
            },
        };
        LogConfig {
            level: self.level,
            target,
        }
    }
}
