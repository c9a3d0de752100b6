//! Logging: a tracing subscriber writing to standard error or to a file, at the level of the
//! `[log]` table unless `RUST_LOG` says otherwise.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{self, RollingFileAppender};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogTarget, Rotation};

/// Keeps the log writer alive: with `log.to = "file"`, lines are written by a background
/// thread that flushes what is left when this is dropped. Hold it until the process ends.
#[derive(Debug)]
#[must_use = "logging to a file stops when the guard is dropped"]
pub(crate) struct LogGuard {
    /// The file writer's flush-on-drop guard; `None` when logging to the console.
    _worker: Option<WorkerGuard>,
}

/// Installs the global subscriber described by `config`.
pub(crate) fn init(config: &LogConfig) -> Result<LogGuard> {
    let filter = filter(config)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &config.target {
        LogTarget::Console => {
            builder
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .try_init()
                .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
            Ok(LogGuard { _worker: None })
        }
        LogTarget::File {
            dir,
            file,
            rotation,
        } => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
            let appender = RollingFileAppender::builder()
                .rotation(match rotation {
                    Rotation::Never => rolling::Rotation::NEVER,
                    Rotation::Daily => rolling::Rotation::DAILY,
                })
                .filename_prefix(file)
                .build(dir)
                .with_context(|| {
                    format!("cannot open the log file {}", dir.join(file).display())
                })?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            builder
                .with_writer(writer)
                .with_ansi(false)
                .try_init()
                .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
            Ok(LogGuard {
                _worker: Some(guard),
            })
        }
    }
}

/// `RUST_LOG` when it is set and not empty, else the configured level.
fn filter(config: &LogConfig) -> Result<EnvFilter> {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .with_context(|| format!("invalid RUST_LOG filter \"{directives}\"")),
        _ => Ok(EnvFilter::new(config.level.as_str())),
    }
}
