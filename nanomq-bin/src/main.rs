//! `nanomq`: the MQTT broker binary.
//!
//! `nanomq start [--conf FILE]` reads and validates the configuration ([`config`]), starts
//! logging ([`logging`]), binds every listener ([`listeners`]) and only then serves; SIGINT or
//! SIGTERM ([`signals`]) stops it gracefully, SIGHUP re-reads the file ([`reload`]). Any
//! failure before serving exits non-zero with the reason on standard error, so the broker
//! never runs half-configured.
//!
//! `nanomq reload` asks a running broker, through its admin API, to re-read its file.
//!
//! `nanomq pub`, `nanomq sub` and `nanomq bench` are MQTT clients ([`client`], [`bench`]),
//! built on mqtt-codec; they exit with their own codes (listed in their `--help`).
//!
//! Modules:
//! - [`cli`]: the command line (clap).
//! - [`config`]: the TOML configuration file, validated into broker-core's `MqttConfig`.
//! - [`units`]: sizes and durations as the configuration file writes them.
//! - [`logging`]: the tracing subscriber (console or file), its level and target changeable.
//! - [`listeners`]: bind all, then serve each, per transport feature.
//! - [`access`]: the broker's access control from `[auth]` (password file, ACL rules).
//! - [`auth_http`]: authentication and authorization by an HTTP service (`[auth.http]`).
//! - [`signals`]: SIGINT and SIGTERM, SIGHUP.
//! - [`reload`]: hot reload of the configuration file, and `nanomq reload`.
//! - [`client`]: `nanomq pub` and `nanomq sub`, and the client connection layer.
//! - [`bench`]: `nanomq bench`, the load generator.
//! - [`passwd`]: `nanomq passwd`, Mosquitto's password files (as `mosquitto_passwd`).
//! - [`ops`]: what the broker tells about itself: `$SYS` topics, client events, the
//!   Prometheus exposition.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use broker_core::{Broker, SqliteStore};
use clap::Parser;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

use crate::cli::{Cli, Command, StartArgs};
use crate::config::Config;
use crate::logging::Logging;
use crate::reload::{Handles, Reloader};
use crate::signals::{Signal, Signals};

mod access;
#[cfg(feature = "http-api")]
mod api;
mod auth_http;
mod bench;
mod bridge;
mod cli;
mod client;
mod config;
mod listeners;
mod logging;
mod ops;
mod passwd;
mod reload;
mod signals;
mod units;

/// See the `tikv-jemallocator` dependency in Cargo.toml for why.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Start(args) => start(&args),
        // The client tools report their own outcome through their exit code.
        Command::Pub(args) => return client::publish::main(args),
        Command::Sub(args) => return client::subscribe::main(args),
        Command::Bench(args) => return bench::main(args),
        Command::Passwd(args) => return passwd::main(args),
        Command::Reload(args) => return reload::command::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` puts the whole chain of causes on one line; a configuration error's
            // problems follow it, one per line.
            eprintln!("nanomq: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `nanomq start`: load the configuration, start logging, run until a signal.
fn start(args: &StartArgs) -> Result<()> {
    let config = load_config(args.conf.as_deref())?;
    let logging = Arc::new(Logging::init(&config.log)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nanomq-worker")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run(config, args.conf.clone(), Arc::clone(&logging)));
    // Everything that matters has finished inside `run`; do not wait on stragglers.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Err(error) = &result
        && logging.to_file()
    {
        // The console gets it from `main`; the log file should say why the broker stopped.
        tracing::error!("{error:#}");
    }
    result
}

/// Reads and validates the configuration: `path`, or the embedded default.
fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        None => config::parse_default().map_err(|e| {
            anyhow!(
                "the embedded default configuration is invalid:\n{}",
                indent(&e)
            )
        }),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            config::parse(&text).map_err(|e| {
                anyhow!(
                    "invalid configuration file {}:\n{}",
                    path.display(),
                    indent(&e)
                )
            })
        }
    }
}

/// `lines`, each indented by two spaces.
fn indent(lines: &impl std::fmt::Display) -> String {
    let lines = lines.to_string();
    let mut indented = String::with_capacity(lines.len() + 16);
    for (i, line) in lines.lines().enumerate() {
        if i > 0 {
            indented.push('\n');
        }
        indented.push_str("  ");
        indented.push_str(line);
    }
    indented
}

/// The broker, with its store opened and read when persistence is on.
fn open_broker(config: &Config) -> Result<Arc<Broker>> {
    let builder = Broker::builder(config.mqtt.clone());
    let builder = match &config.auth.scram {
        None => builder,
        Some(scram) => builder.auth(Arc::new(scram.load()?)),
    };
    let builder = match &config.persistence {
        None => builder,
        Some(persistence) => {
            let store = SqliteStore::open(&persistence.path, persistence.sync)
                .map_err(|e| anyhow!("persistence.path: {e}"))?;
            tracing::info!(path = %persistence.path.display(), sync = ?persistence.sync, "session store opened");
            builder
                .store(store, persistence.sync)
                .queue_window(persistence.queue_in_memory)
        }
    };
    builder
        .build()
        .map_err(|e| anyhow!("persistence.path: {e}"))
}

/// Binds every listener, serves until SIGINT or SIGTERM (reloading the file at each SIGHUP),
/// then shuts down gracefully: stop accepting, disconnect every client, and return.
async fn run(config: Config, path: Option<PathBuf>, logging: Arc<Logging>) -> Result<()> {
    let started = tokio::time::Instant::now();
    #[cfg(not(feature = "http-api"))]
    if config.http_server.is_some() {
        return Err(anyhow!(
            "http_server: this build has no admin API (its cargo feature `http-api`)"
        ));
    }
    // Catch the signals first: one that arrives while starting must stop us gracefully too,
    // not kill the process.
    let mut signals = Signals::install().context("cannot install the signal handlers")?;
    // The store first: a broker that cannot read its sessions does not start at all.
    let broker = open_broker(&config)?;
    let bound = listeners::bind_all(&config.listeners).await?;
    let addrs: Vec<_> = bound
        .iter()
        .map(listeners::BoundListener::local_addr)
        .collect();
    // Before anything is served: no client ever sees the broker without its rules.
    broker.set_access(access::build(&config, &addrs)?);
    if config.sys.client_events {
        broker.set_client_events(Some(Arc::new(ops::events::EventMessages)));
    }

    let (stop, stopped) = watch::channel(false);
    // Before the listeners serve: a bridge's local session is an in-process client, so it
    // needs none of them, and once subscribed it gets every matching message a client
    // publishes from the first connection on (started after them, a bridge missed what came
    // in before its SUBSCRIBE).
    let mut bridges = bridge::Bridges::new(Arc::clone(&broker));
    bridges.start_all(&config.bridges).await?;
    let mut serving = JoinSet::new();
    for listener in bound {
        tracing::info!("listening on {}", listener.url());
        let mut stopped = stopped.clone();
        let shutdown = async move {
            // An error means the sender is gone, which also means stop.
            let _ = stopped.wait_for(|&stop| stop).await;
        };
        serving.spawn(listener.serve(Arc::clone(&broker), shutdown));
    }

    let (sys_interval, interval) = watch::channel(config.sys.interval);
    // Not awaited at shutdown: it only publishes, and stops when told.
    tokio::spawn(ops::sys::run(
        Arc::clone(&broker),
        interval,
        started,
        stopped.clone(),
    ));
    let (bridge_view, configured_bridges) = watch::channel(Arc::new(config.bridges.clone()));
    #[cfg(not(feature = "http-api"))]
    drop(configured_bridges);
    #[cfg(feature = "http-api")]
    let http_server = config.http_server.clone();
    let reloader = Arc::new(Mutex::new(Reloader::new(
        path,
        config,
        addrs,
        Handles {
            broker: Arc::clone(&broker),
            logging,
            bridges,
            sys_interval,
            bridge_view,
        },
    )));

    #[cfg(feature = "http-api")]
    if let Some(http) = http_server {
        let listener = api::bind(&http).await?;
        let address = listener.local_addr().unwrap_or(http.bind);
        tracing::info!("admin API listening on http://{address}");
        let state = api::ApiState::new(
            Arc::clone(&broker),
            configured_bridges,
            Arc::clone(&reloader),
        );
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|&stop| stop).await;
        };
        serving.spawn(async move {
            if let Err(e) = api::serve(listener, http, state, shutdown).await {
                tracing::error!("{e:#}");
            }
        });
    }

    let outcome = loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Signal::Stop(name) => {
                    tracing::info!(signal = name, "shutting down");
                    break Ok(());
                }
                Signal::Reload => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    // In a task of its own: the broker keeps answering signals meanwhile.
                    let reloader = Arc::clone(&reloader);
                    // The outcome is logged by the reload itself.
                    tokio::spawn(async move { drop(reload::trigger(&reloader).await) });
                }
            },
            Some(ended) = serving.join_next() => {
                // A listener only ends when told to; this one failed.
                let why = match ended {
                    Ok(()) => anyhow!("a listener stopped unexpectedly"),
                    Err(e) => anyhow!("a listener failed: {e}"),
                };
                tracing::error!("{why:#}; shutting down");
                break Err(why);
            }
        }
    };

    // Stop accepting, then disconnect every client and let their tasks finish.
    stop.send_replace(true);
    let graceful = async {
        // The bridges first: their local sessions end like a client's, before the broker
        // waits for every connection to close. (A reload under way finishes first.)
        reloader.lock().await.shutdown().await;
        while serving.join_next().await.is_some() {}
        broker.shutdown().await;
    };
    tokio::select! {
        () = graceful => {}
        signal = signals.recv_stop() => {
            tracing::warn!(signal, "second signal: exiting without finishing the shutdown");
            return Err(anyhow!("stopped by a second {signal} before the shutdown finished"));
        }
    }
    tracing::info!("stopped");
    outcome
}
