//! The running bridges, by name, each with a stop channel of its own, so that a reload can
//! stop one, start one or replace one while the others go on.
//!
//! Changing bridges is done in two steps, as the rest of a reload: [`Bridges::plan`] builds
//! everything that can fail without touching a running bridge (each server's connector, its
//! TLS files read; the forwards checked against the limits the local broker will apply), and
//! [`Bridges::apply`] stops and starts. A bridge that is replaced keeps its local session
//! (`$bridge/<name>`, persistent): the new one takes it over with its queue, and drops the
//! forwards it no longer has. A bridge that is removed takes its local session with it,
//! and what was queued there (nothing would ever send it).
//!
//! Starting can still fail after planning (the local broker refuses the session: it is
//! stopping, or holds its maximum of connections); then the bridges go back to what they
//! were and the error is returned, so a reload changes all of them or none.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use broker_core::{Broker, Kick, Limits};
use mqtt_client::{Connector, TlsOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::link::Relay;
use super::local;
use crate::config::BridgeConfig;

/// How long a stopping bridge may take to say goodbye upstream before its task is ended.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a removed bridge's local session may take to go offline before it is removed.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(2);

/// One running bridge.
struct Running {
    /// What it runs on.
    config: BridgeConfig,
    /// Set to stop it.
    stop: watch::Sender<bool>,
    /// Its task.
    task: JoinHandle<()>,
}

/// A bridge ready to start: its configuration and its servers' connectors.
pub(crate) struct Ready {
    config: BridgeConfig,
    connectors: Vec<Connector>,
}

/// What a reload does to the bridges, built by [`Bridges::plan`].
pub(crate) struct Plan {
    /// Bridges whose configuration changed: stopped, then started on the new one.
    replace: Vec<Ready>,
    /// New bridges.
    add: Vec<Ready>,
    /// Bridges no longer configured.
    remove: Vec<String>,
    /// Disabled bridges still configured, on their (possibly new) configuration: they stay
    /// disabled.
    disabled: Vec<BridgeConfig>,
}

impl Plan {
    /// The configuration keys it changes (`bridges.<name>`), in name order.
    pub(crate) fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .replace
            .iter()
            .chain(&self.add)
            .map(|r| format!("bridges.{}", r.config.name))
            .chain(self.remove.iter().map(|name| format!("bridges.{name}")))
            .collect();
        keys.sort();
        keys
    }

    /// Whether it changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// The running bridges.
pub(crate) struct Bridges {
    broker: Arc<Broker>,
    running: BTreeMap<String, Running>,
    /// Bridges the operator disabled (`POST /api/v4/bridges/{name}/disable`), on their
    /// configuration: stopped, their local session and queue kept, until enabled again.
    disabled: BTreeMap<String, BridgeConfig>,
}

/// What an applied step did, to undo it.
enum Done {
    /// Started a new bridge.
    Added(String),
    /// Replaced the bridge running on this configuration.
    Replaced(Box<BridgeConfig>),
}

impl Bridges {
    /// No bridges yet, for `broker`.
    pub(crate) fn new(broker: Arc<Broker>) -> Self {
        Self {
            broker,
            running: BTreeMap::new(),
            disabled: BTreeMap::new(),
        }
    }

    /// Starts every bridge of `configs` (at start: the first failure stops the start).
    pub(crate) async fn start_all(&mut self, configs: &[BridgeConfig]) -> Result<()> {
        let limits = self.broker.limits();
        for config in configs {
            let ready = prepare(config, &limits)?;
            self.start(ready).await?;
        }
        Ok(())
    }

    /// What running `configs` instead of the bridges running now takes, checked against
    /// the `limits` the broker will have: nothing is stopped or started yet.
    pub(crate) fn plan(&self, configs: &[BridgeConfig], limits: &Limits) -> Result<Plan> {
        let mut plan = Plan {
            replace: Vec::new(),
            add: Vec::new(),
            remove: Vec::new(),
            disabled: Vec::new(),
        };
        for config in configs {
            match self.running.get(&config.name) {
                Some(running) if running.config == *config => {}
                Some(_) => plan.replace.push(prepare(config, limits)?),
                None if self.disabled.contains_key(&config.name) => {
                    // Checked now, so that enabling it later cannot fail on its files.
                    prepare(config, limits)?;
                    plan.disabled.push(config.clone());
                }
                None => plan.add.push(prepare(config, limits)?),
            }
        }
        plan.remove = self
            .running
            .keys()
            .chain(self.disabled.keys())
            .filter(|name| configs.iter().all(|c| c.name != **name))
            .cloned()
            .collect();
        Ok(plan)
    }

    /// Carries `plan` out: replaced bridges, then new ones, then the removed ones go. If a
    /// bridge cannot start, what was done is undone and the error returned.
    pub(crate) async fn apply(&mut self, plan: Plan) -> Result<()> {
        let mut done = Vec::new();
        let mut failed = None;
        for ready in plan.replace {
            let name = ready.config.name.clone();
            let Some(old) = self.stop(&name).await else {
                continue;
            };
            match self.start(ready).await {
                Ok(()) => {
                    tracing::info!(bridge = %name, "bridge replaced (its local session and queue kept)");
                    done.push(Done::Replaced(Box::new(old)));
                }
                Err(e) => {
                    done.push(Done::Replaced(Box::new(old)));
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() {
            for ready in plan.add {
                let name = ready.config.name.clone();
                match self.start(ready).await {
                    Ok(()) => done.push(Done::Added(name)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(error) = failed {
            self.undo(done).await;
            return Err(error);
        }
        for config in plan.disabled {
            self.disabled.insert(config.name.clone(), config);
        }
        for name in plan.remove {
            self.stop(&name).await;
            self.disabled.remove(&name);
            self.discard_session(&name).await;
            tracing::info!(bridge = %name, "bridge removed, with its local session");
        }
        Ok(())
    }

    /// Puts back what `done` changed, the last step first.
    async fn undo(&mut self, done: Vec<Done>) {
        for step in done.into_iter().rev() {
            match step {
                Done::Added(name) => {
                    self.stop(&name).await;
                    self.discard_session(&name).await;
                }
                Done::Replaced(old) => {
                    let name = old.name.clone();
                    self.stop(&name).await;
                    let restarted = match prepare(&old, &self.broker.limits()) {
                        Ok(ready) => self.start(ready).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = restarted {
                        tracing::error!(bridge = %name, "cannot restart the bridge as it was: {e:#}");
                    }
                }
            }
        }
    }

    /// Stops the bridge `name` and keeps it stopped (its local session, and what queues
    /// there, kept) until [`Bridges::enable`] or a restart of the broker. Whether it was
    /// running; an error for a bridge the configuration does not have.
    #[cfg(feature = "http-api")]
    pub(crate) async fn disable(&mut self, name: &str) -> Result<bool> {
        if self.disabled.contains_key(name) {
            return Ok(false);
        }
        let config = self
            .stop(name)
            .await
            .ok_or_else(|| anyhow!("no bridge \"{name}\""))?;
        self.broker.bridge_counters(name).set_connected(false);
        tracing::info!(bridge = %name, "bridge disabled (its local session and queue kept)");
        self.disabled.insert(name.to_owned(), config);
        Ok(true)
    }

    /// Starts a disabled bridge again; whether it was disabled.
    #[cfg(feature = "http-api")]
    pub(crate) async fn enable(&mut self, name: &str) -> Result<bool> {
        if self.running.contains_key(name) {
            return Ok(false);
        }
        let config = self
            .disabled
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("no bridge \"{name}\""))?;
        let ready = prepare(&config, &self.broker.limits())?;
        self.start(ready).await?;
        self.disabled.remove(name);
        tracing::info!(bridge = %name, "bridge enabled");
        Ok(true)
    }

    /// The names of the disabled bridges.
    #[cfg(feature = "http-api")]
    pub(crate) fn disabled(&self) -> Vec<String> {
        self.disabled.keys().cloned().collect()
    }

    /// Stops every bridge and waits for each to end.
    pub(crate) async fn shutdown(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for running in self.running.values() {
            running.stop.send_replace(true);
        }
        for name in names {
            self.stop(&name).await;
        }
    }

    /// Starts `ready`: its local session, then its task.
    async fn start(&mut self, ready: Ready) -> Result<()> {
        let Ready { config, connectors } = ready;
        let local = local::connect(&self.broker, &config).await?;
        let counters = self.broker.bridge_counters(&config.name);
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(config.clone());
        let relay = Relay::new(Arc::clone(&shared), local, counters.clone(), stopped);
        tracing::info!(
            bridge = %config.name,
            servers = ?config.servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            forwards = config.forwards.len(),
            subscriptions = config.subscriptions.len(),
            "bridge started"
        );
        let task = tokio::spawn(super::run(shared, connectors, relay, counters));
        self.running
            .insert(config.name.clone(), Running { config, stop, task });
        Ok(())
    }

    /// Stops the bridge `name` and waits (a bounded time) for it to end; its configuration,
    /// if it was running.
    async fn stop(&mut self, name: &str) -> Option<BridgeConfig> {
        let running = self.running.remove(name)?;
        running.stop.send_replace(true);
        let mut task = running.task;
        if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
            tracing::warn!(bridge = %name, "the bridge did not stop within {STOP_TIMEOUT:?}; ended");
            task.abort();
            let _ = task.await;
        }
        Some(running.config)
    }

    /// Removes the local session of the bridge `name`, once it has gone offline.
    async fn discard_session(&self, name: &str) {
        let id = local::client_id(name);
        let deadline = tokio::time::Instant::now() + DISCARD_TIMEOUT;
        loop {
            match self.broker.kick(&id) {
                Kick::SessionRemoved | Kick::NotFound => return,
                // Still closing: asked to go, and looked at again shortly.
                Kick::Disconnected if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Kick::Disconnected => {
                    tracing::warn!(bridge = %name, "the bridge's local session stayed connected; left in place");
                    return;
                }
            }
        }
    }
}

impl Drop for Bridges {
    /// A broker that stops on an error (not by [`Bridges::shutdown`]) takes its bridges'
    /// tasks with it.
    fn drop(&mut self) {
        for running in self.running.values() {
            running.task.abort();
        }
    }
}

/// Builds `config`'s connectors (reading its TLS files) and checks its forwards against
/// the `limits` the local broker applies to its session.
fn prepare(config: &BridgeConfig, limits: &Limits) -> Result<Ready> {
    let connectors = config
        .servers
        .iter()
        .map(|server| {
            let tls = if server.scheme.is_tls() {
                config.tls.clone()
            } else {
                TlsOptions::default()
            };
            Connector::new(server.clone(), &tls)
                .with_context(|| format!("bridges.{}: {server}", config.name))
        })
        .collect::<Result<Vec<_>>>()?;
    let forwards = config.forwards.len();
    if forwards > limits.max_filters_per_packet || forwards > limits.max_subscriptions {
        return Err(anyhow!(
            "bridges.{}.forwards: {forwards} forwards, more than the broker allows one session \
             (limits.max_filters_per_packet {}, limits.max_subscriptions {})",
            config.name,
            limits.max_filters_per_packet,
            limits.max_subscriptions
        ));
    }
    if let Some(forward) = config
        .forwards
        .iter()
        .find(|f| !limits.allows_topic(&f.filter))
    {
        return Err(anyhow!(
            "bridges.{}.forwards: {} passes limits.max_topic_levels or limits.max_topic_length",
            config.name,
            forward.filter
        ));
    }
    Ok(Ready {
        config: config.clone(),
        connectors,
    })
}
