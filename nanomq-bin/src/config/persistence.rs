//! `[persistence]`: whether sessions go to the SQLite store, where, when publishers are
//! acknowledged relative to it, and how much of a session's queue stays in memory.

use std::path::PathBuf;
use std::time::Duration;

use broker_core::{DEFAULT_QUEUE_WINDOW, SyncPolicy};
use serde::Deserialize;

use super::Problems;
use crate::units::HumanDuration;

/// The `[persistence]` table of a configuration that turns persistence on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PersistenceConfig {
    /// The SQLite database file.
    pub(crate) path: PathBuf,
    /// When publishers are acknowledged relative to the store.
    pub(crate) sync: SyncPolicy,
    /// How many of a persistent session's queued messages stay in memory.
    pub(crate) queue_in_memory: usize,
}

/// `[persistence]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "the [persistence] table")]
pub(super) struct RawPersistence {
    enabled: bool,
    path: PathBuf,
    sync: RawSync,
    flush_interval: HumanDuration,
    queue_in_memory: i64,
}

impl Default for RawPersistence {
    fn default() -> Self {
        Self {
            enabled: false,
            path: PathBuf::from("data/nanomq.db"),
            sync: RawSync::Always,
            flush_interval: HumanDuration(Duration::from_millis(100)),
            queue_in_memory: i64::try_from(DEFAULT_QUEUE_WINDOW).unwrap_or(i64::MAX),
        }
    }
}

/// `persistence.sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawSync {
    Always,
    Periodic,
}

impl RawPersistence {
    /// The store's settings, if it is on; problems for an empty path, a zero interval or an
    /// empty window.
    pub(super) fn validate(self, problems: &mut Problems) -> Option<PersistenceConfig> {
        if self.path.as_os_str().is_empty() {
            problems.add("persistence.path", "must not be empty");
        }
        let interval = problems.positive("persistence.flush_interval", self.flush_interval.0);
        let sync = match self.sync {
            RawSync::Always => SyncPolicy::Always,
            RawSync::Periodic => SyncPolicy::Periodic(interval),
        };
        let queue_in_memory = problems
            .in_range(
                "persistence.queue_in_memory",
                self.queue_in_memory,
                1,
                i64::MAX,
            )
            .unwrap_or(DEFAULT_QUEUE_WINDOW);
        self.enabled.then_some(PersistenceConfig {
            path: self.path,
            sync,
            queue_in_memory,
        })
    }
}
