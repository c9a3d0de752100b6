//! Hot reload: SIGHUP, `POST /api/v4/reload` and `nanomq reload` re-read the configuration
//! file and put in force what can change without dropping a client: `[auth]` (the password
//! file, the ACL rules and file, the HTTP service, SCRAM credentials) and each listener's
//! `allow_anonymous`, `[limits]`, `[log]`, `[[bridges]]` (added, removed, changed) and
//! `[sys]`. What cannot change live (listener addresses and TLS, `[mqtt]`, the store, the
//! admin API) is reported as needing a restart, never silently ignored.
//!
//! A reload is all or nothing. The file is validated whole first; then everything new is
//! built (the files `[auth]` names read and compiled, a new log file opened, the bridges'
//! connectors made) while the running configuration is untouched; only then is it swapped
//! in. Any failure on the way leaves the broker as it was and is answered with the key and
//! the problem. Every reload is logged with what it changed.
//!
//! Modules: `diff` (what differs, by key, and the configuration put in force), `command`
//! (`nanomq reload`, the client of the API).

pub(crate) mod command;
mod diff;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use broker_core::Broker;
use tokio::sync::{Mutex, watch};

use crate::bridge::Bridges;
use crate::config::{self, BridgeConfig, Config, ConfigError};
use crate::logging::Logging;
use diff::AuthFiles;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// The keys now in force with their new values.
    pub(crate) changed: Vec<String>,
    /// The keys whose new values wait for a restart (the old ones stay in force).
    pub(crate) needs_restart: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changed.is_empty() {
            f.write_str("nothing changed")?;
        } else {
            write!(f, "changed {}", self.changed.join(", "))?;
        }
        if !self.needs_restart.is_empty() {
            write!(f, "; needs a restart: {}", self.needs_restart.join(", "))?;
        }
        Ok(())
    }
}

/// Why a reload changed nothing.
#[derive(Debug)]
pub(crate) enum ReloadError {
    /// The broker runs on the embedded default configuration.
    NoFile,
    /// The broker is shutting down.
    Stopping,
    /// The file cannot be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a valid configuration.
    Invalid(ConfigError),
    /// What it asks for cannot be built (a password file that cannot be read, a bridge's
    /// TLS file, ...); the message starts with the key.
    Apply(anyhow::Error),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFile => f.write_str(
                "the broker was started without --conf, on its embedded default \
                 configuration: there is no file to re-read",
            ),
            Self::Stopping => f.write_str("the broker is shutting down"),
            Self::Unreadable { path, error } => {
                write!(
                    f,
                    "cannot read the configuration file {}: {error}",
                    path.display()
                )
            }
            Self::Invalid(e) => {
                for (i, problem) in e.problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{problem}")?;
                }
                Ok(())
            }
            Self::Apply(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for ReloadError {}

/// What a reload acts on.
pub(crate) struct Handles {
    /// The broker: access control, limits, SCRAM, client events.
    pub(crate) broker: Arc<Broker>,
    /// The log's level and target.
    pub(crate) logging: Arc<Logging>,
    /// The running bridges.
    pub(crate) bridges: Bridges,
    /// The `$SYS` publisher's interval.
    pub(crate) sys_interval: watch::Sender<Option<Duration>>,
    /// The bridges as configured, for the admin API.
    pub(crate) bridge_view: watch::Sender<Arc<Vec<BridgeConfig>>>,
}

/// Re-reads the configuration and applies it; one at a time (see [`Shared`]).
pub(crate) struct Reloader {
    /// The configuration file, if the broker was started with one.
    path: Option<PathBuf>,
    /// The configuration in force.
    running: Config,
    /// What the files of `running.auth` held when read.
    files: AuthFiles,
    /// Where the listeners are bound, in the order of `running.listeners`.
    bound: Vec<SocketAddr>,
    handles: Handles,
    /// Set once the broker shuts down: no reload may start bridges again.
    stopping: bool,
}

/// The reloader, shared by SIGHUP and the API; the lock makes reloads one at a time.
pub(crate) type Shared = Arc<Mutex<Reloader>>;

/// Reloads in a task of its own, so that the caller going away (an HTTP client that hangs
/// up) cannot cut a reload in half.
pub(crate) async fn trigger(reloader: &Shared) -> Result<Report, ReloadError> {
    let reloader = Arc::clone(reloader);
    tokio::spawn(async move { reloader.lock().await.reload().await })
        .await
        .unwrap_or_else(|e| Err(ReloadError::Apply(anyhow!("the reload failed: {e}"))))
}

impl Reloader {
    /// A reloader for a broker started on `running` (read from `path`, if given), its
    /// listeners bound at `bound`.
    pub(crate) fn new(
        path: Option<PathBuf>,
        running: Config,
        bound: Vec<SocketAddr>,
        handles: Handles,
    ) -> Self {
        let files = AuthFiles::read(&running.auth);
        Self {
            path,
            running,
            files,
            bound,
            handles,
            stopping: false,
        }
    }

    /// Disables (`enabled` false) or enables the bridge `name` (see `Bridges::disable`);
    /// whether that changed anything.
    #[cfg(feature = "http-api")]
    pub(crate) async fn set_bridge_enabled(
        &mut self,
        name: &str,
        enabled: bool,
    ) -> anyhow::Result<bool> {
        if self.stopping {
            return Err(anyhow!("the broker is shutting down"));
        }
        if enabled {
            self.handles.bridges.enable(name).await
        } else {
            self.handles.bridges.disable(name).await
        }
    }

    /// The names of the bridges the operator disabled.
    #[cfg(feature = "http-api")]
    pub(crate) fn disabled_bridges(&self) -> Vec<String> {
        self.handles.bridges.disabled()
    }

    /// Stops the bridges, for the broker's shutdown; reloads are refused from now on.
    pub(crate) async fn shutdown(&mut self) {
        self.stopping = true;
        self.handles.bridges.shutdown().await;
    }

    /// Re-reads the file and applies it, logging what happened: the report at info, a
    /// refusal at warn.
    pub(crate) async fn reload(&mut self) -> Result<Report, ReloadError> {
        let result = self.try_reload().await;
        let file = self
            .path
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string());
        match &result {
            Ok(report) => tracing::info!(%file, "reload: {report}"),
            Err(e) => {
                tracing::warn!(%file, "reload refused, the running configuration stays: {e}");
            }
        }
        result
    }

    async fn try_reload(&mut self) -> Result<Report, ReloadError> {
        if self.stopping {
            return Err(ReloadError::Stopping);
        }
        let path = self.path.as_ref().ok_or(ReloadError::NoFile)?;
        let text = std::fs::read_to_string(path).map_err(|error| ReloadError::Unreadable {
            path: path.clone(),
            error,
        })?;
        let file = config::parse(&text).map_err(ReloadError::Invalid)?;
        let needs_restart = diff::needs_restart(&self.running, &file);
        let next = diff::effective(&self.running, file);
        let running = &self.running;

        // What differs, section by section.
        let listener_keys = diff::listeners_live(&running.listeners, &next.listeners);
        let limit_keys = diff::limits(&running.mqtt.limits, &next.mqtt.limits);
        let log_keys = diff::log(&running.log, &next.log);
        let files = AuthFiles::read(&next.auth);
        let mut auth_keys = diff::auth(&running.auth, &next.auth);
        for key in self.files.changed(&files) {
            if !auth_keys.contains(&key) {
                auth_keys.push(key);
            }
        }
        let sys_keys = diff::sys(&running.sys, &next.sys);

        // Everything new is built before anything is swapped.
        let scram_changed = auth_keys.contains(&"auth.scram") || self.files.scram_differs(&files);
        let access_changed = auth_keys.iter().any(|k| *k != "auth.scram")
            || !listener_keys.is_empty()
            || self.files.access_differs(&files);
        let access = access_changed
            .then(|| crate::access::build(&next, &self.bound))
            .transpose()
            .map_err(ReloadError::Apply)?;
        let scram = if scram_changed {
            let hook = next.auth.scram.as_ref().map(|s| s.load()).transpose();
            Some(hook.map_err(ReloadError::Apply)?)
        } else {
            None
        };
        let log = self
            .handles
            .logging
            .prepare(&running.log, &next.log)
            .map_err(ReloadError::Apply)?;
        let plan = self
            .handles
            .bridges
            .plan(&next.bridges, &next.mqtt.limits)
            .map_err(ReloadError::Apply)?;
        let bridge_keys = plan.keys();

        // The swap. The limits go first, so that a bridge started now subscribes under
        // them; the bridges are the one step that can still fail, and undo themselves
        // (and the limits are put back) when they do.
        let broker = &self.handles.broker;
        if !limit_keys.is_empty() {
            broker.set_limits(next.mqtt.limits.clone());
        }
        if !plan.is_empty()
            && let Err(e) = self.handles.bridges.apply(plan).await
        {
            if !limit_keys.is_empty() {
                broker.set_limits(self.running.mqtt.limits.clone());
            }
            return Err(ReloadError::Apply(e));
        }
        if let Some(scram) = scram {
            broker.set_enhanced_auth(
                scram.map(|s| Arc::new(s) as Arc<dyn broker_core::EnhancedAuth>),
            );
        }
        if let Some(access) = access {
            broker.set_access(access);
        }
        if sys_keys.contains(&"sys.client_events") {
            broker.set_client_events(
                next.sys
                    .client_events
                    .then(|| Arc::new(crate::ops::events::EventMessages) as _),
            );
        }
        self.handles.logging.apply(log);
        if sys_keys.contains(&"sys.interval") {
            self.handles.sys_interval.send_replace(next.sys.interval);
        }
        self.handles
            .bridge_view
            .send_replace(Arc::new(next.bridges.clone()));

        let changed = listener_keys
            .into_iter()
            .chain(
                limit_keys
                    .into_iter()
                    .chain(log_keys)
                    .chain(auth_keys)
                    .map(String::from),
            )
            .chain(bridge_keys)
            .chain(sys_keys.into_iter().map(String::from))
            .collect();
        self.running = next;
        self.files = files;
        Ok(Report {
            changed,
            needs_restart,
        })
    }
}
