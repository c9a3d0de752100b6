//! Logging: a tracing subscriber writing to standard error or to a file, at the level of the
//! `[log]` table unless `RUST_LOG` says otherwise. Both the level and the target can be
//! changed while the broker runs ([`Logging::prepare`], then [`Logging::apply`]): the filter
//! and the output layer sit behind `tracing_subscriber::reload` handles, so a reload swaps
//! them without touching anything that logs.

use std::io::IsTerminal;
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{self, RollingFileAppender};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::config::{LogConfig, LogTarget, Rotation};

/// The filter layer, on the registry.
type FilterLayer = reload::Layer<EnvFilter, Registry>;

/// What the output layer sits on.
type Filtered = Layered<FilterLayer, Registry>;

/// The output layer: lines formatted as `tracing_subscriber::fmt` does, to any writer.
type Output = fmt::Layer<Filtered, fmt::format::DefaultFields, fmt::format::Format, BoxMakeWriter>;

/// The installed subscriber's handles: its filter and its output can be replaced. Hold it
/// until the process ends: with `log.to = "file"`, lines are written by a background thread
/// that flushes what is left when this is dropped.
#[must_use = "logging to a file stops when this is dropped"]
pub(crate) struct Logging {
    /// Replaces the level.
    filter: reload::Handle<EnvFilter, Registry>,
    /// Replaces the writer.
    output: reload::Handle<Output, Filtered>,
    /// The file writer's flush-on-drop guard; `None` when logging to the console.
    guard: Mutex<Option<WorkerGuard>>,
    /// `RUST_LOG` was set at start: it decides the level, whatever `log.level` says.
    env_override: bool,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging")
            .field("env_override", &self.env_override)
            .finish_non_exhaustive()
    }
}

/// A new writer, opened and ready to replace the current one.
pub(crate) struct Writer {
    make: BoxMakeWriter,
    ansi: bool,
    guard: Option<WorkerGuard>,
}

/// What a reload changes in the logging, built before anything is swapped (see
/// [`Logging::prepare`]).
pub(crate) struct Prepared {
    /// The new filter, if the level changed (and `RUST_LOG` does not decide it).
    filter: Option<EnvFilter>,
    /// The new writer, if the target changed.
    writer: Option<Writer>,
}

impl Logging {
    /// Installs the global subscriber described by `config`.
    pub(crate) fn init(config: &LogConfig) -> Result<Self> {
        let env = env_filter()?;
        let env_override = env.is_some();
        let filter = env.unwrap_or_else(|| level_filter(config));
        let writer = open(&config.target)?;
        let (filter, filter_handle) = reload::Layer::new(filter);
        let output = fmt::layer().with_ansi(writer.ansi).with_writer(writer.make);
        let (output, output_handle) = reload::Layer::new(output);
        tracing_subscriber::registry()
            .with(filter)
            .with(output)
            .try_init()
            .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
        Ok(Self {
            filter: filter_handle,
            output: output_handle,
            guard: Mutex::new(writer.guard),
            env_override,
        })
    }

    /// Whether the log goes to a file now.
    pub(crate) fn to_file(&self) -> bool {
        self.guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Builds what going from `old` to `new` takes (opening a new log file, say) without
    /// changing anything yet: a file that cannot be opened is an error here, and the
    /// running logging stays as it is.
    pub(crate) fn prepare(&self, old: &LogConfig, new: &LogConfig) -> Result<Prepared> {
        let filter = if old.level == new.level {
            None
        } else if self.env_override {
            tracing::warn!(
                level = new.level.as_str(),
                "log.level changed, but RUST_LOG decides the level of this process"
            );
            None
        } else {
            Some(level_filter(new))
        };
        let writer = if old.target == new.target {
            None
        } else {
            Some(open(&new.target)?)
        };
        Ok(Prepared { filter, writer })
    }

    /// Puts `prepared` in force. The old file writer, if any, flushes what it holds as it
    /// goes.
    pub(crate) fn apply(&self, prepared: Prepared) {
        if let Some(filter) = prepared.filter
            && let Err(e) = self.filter.reload(filter)
        {
            // Only when the subscriber is gone, which it never is while we run.
            eprintln!("nanomq: cannot change the log level: {e}");
        }
        if let Some(writer) = prepared.writer {
            let Writer { make, ansi, guard } = writer;
            let swapped = self.output.modify(|layer| {
                *layer.writer_mut() = make;
                layer.set_ansi(ansi);
            });
            match swapped {
                Ok(()) => {
                    let old = std::mem::replace(
                        &mut *self.guard.lock().unwrap_or_else(PoisonError::into_inner),
                        guard,
                    );
                    // Flushes the old file's last lines.
                    drop(old);
                }
                Err(e) => eprintln!("nanomq: cannot change the log target: {e}"),
            }
        }
    }
}

/// `RUST_LOG` when it is set and not empty.
fn env_filter() -> Result<Option<EnvFilter>> {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map(Some)
            .with_context(|| format!("invalid RUST_LOG filter \"{directives}\"")),
        _ => Ok(None),
    }
}

/// The configured level as a filter.
fn level_filter(config: &LogConfig) -> EnvFilter {
    EnvFilter::new(config.level.as_str())
}

/// Opens the writer for `target`: standard error, or the file (its directory created).
fn open(target: &LogTarget) -> Result<Writer> {
    match target {
        LogTarget::Console => Ok(Writer {
            make: BoxMakeWriter::new(std::io::stderr),
            ansi: std::io::stderr().is_terminal(),
            guard: None,
        }),
        LogTarget::File {
            dir,
            file,
            rotation,
        } => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("log.dir: cannot create {}", dir.display()))?;
            let appender = RollingFileAppender::builder()
                .rotation(match rotation {
                    Rotation::Never => rolling::Rotation::NEVER,
                    Rotation::Daily => rolling::Rotation::DAILY,
                })
                .filename_prefix(file)
                .build(dir)
                .with_context(|| format!("log.file: cannot open {}", dir.join(file).display()))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            Ok(Writer {
                make: BoxMakeWriter::new(writer),
                ansi: false,
                guard: Some(guard),
            })
        }
    }
}
