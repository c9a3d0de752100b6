//! The end-to-end benchmark suite of `cargo xtask bench`: the release `nanomq` broker and its
//! peers ([`peers`]: Mosquitto when Debian's `mosquitto` is installed, rumqttd, installed with
//! `cargo install` when missing) with equivalent configurations, all on ephemeral loopback
//! ports, driven by `nanomq bench` through the same scenarios in the same run, alternating
//! which broker goes first; the table gives the best peer per figure ([`table`]). Each broker
//! is started fresh for each scenario and killed after it (guards kill them on any error
//! too); one that fails a scenario has the reason in the notes. Then nanomq and Mosquitto with
//! access control (1,000 ACL rules, a password file of 100,000 users), each compared with
//! its own run without ([`access`]). Then a few throughput scenarios run against nanomq
//! alone over each of its transports (TCP, WebSocket, and, when `openssl` can make a
//! throwaway certificate, TLS and WebSocket over TLS), compared with TCP. Last, a
//! QoS 1 fan-in to an offline persistent subscriber runs against nanomq with sessions in
//! memory, then with its SQLite store at `sync = "periodic"` and `sync = "always"`, compared
//! with in memory, and 5,000,000 QoS 1 messages queued for 1,000 offline sessions with a
//! bounded `queue_in_memory` against all in memory, by the broker's peak memory
//! ([`backlog`]; `--persistence-only` runs this section alone). Then the bridges
//! ([`bridge`]): an edge broker forwarding to an upstream Mosquitto over its bridge, nanomq
//! as the edge against Mosquitto as the edge, and the drain of a backlog queued while the
//! upstream was down against what the upstream takes from a direct publisher. And the cost of
//! a Prometheus scrape of nanomq's `/metrics` every 100 ms beside QoS 1 pairs, against the
//! same pairs without, the admin API enabled in both ([`scrape`]).
//!
//! Output: Markdown tables (also `target/bench/e2e.md`), an SVG chart of the comparison
//! with the peers (`target/bench/e2e.svg`) and the raw JSON reports
//! (`target/bench/e2e.json`); with `--persistence-only`, `target/bench/persistence.{md,json}`
//! instead, so that a full run's files stay.
//!
//! Modules: [`broker`] (starting and stopping brokers), [`peers`] (which peers a run has),
//! [`scenario`] (the scenarios and the figures read from their reports), [`compare`] (the
//! main table's rows), [`table`] (the main table and chart), [`output`] (the other tables), [`tls`] (the
//! certificate), [`cpu`] (CPU use during a run), [`memory`] (the broker's resident memory
//! during a run), [`stalled`] (the subscriber that never
//! reads, of the slow-subscriber scenario), [`retained`] (the retained messages and the
//! SUBSCRIBE flood of the retained-lookup scenarios), [`raw`] (the MQTT those two speak),
//! [`access`] (the access-control scenarios), [`access_files`] (their rules and password
//! file), [`storm`] (the connect storm beside one of them), [`bridge`] (the bridge
//! scenarios and their clients), [`scrape`] (the Prometheus-scrape scenario and its scraper).
//!
//! Some scenarios are compared with a run of the same `nanomq bench` without what they run
//! beside (the stalled subscriber, the SUBSCRIBE flood): each figure's note gives the
//! ratio to that run, for each broker, and the slow-subscriber scenario the broker's
//! memory left once the pairs are gone, against what the configuration lets the stalled
//! subscriber hold.

mod access;
mod access_files;
mod backlog;
mod bridge;
mod broker;
mod callgrind;
mod compare;
mod cpu;
mod delivery_cost;
mod memory;
mod output;
mod peers;
mod persistence;
mod raw;
mod retained;
mod sampling;
mod scenario;
mod scrape;
mod stalled;
mod storm;
mod table;
mod tls;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use self::broker::{Kind, Transport};
use self::output::TransportRow;
pub(crate) use self::scenario::Sizes;
use self::scenario::{Beside, Scenario};
use self::tls::Certs;
use crate::cmd::Cmd;

/// What the command line asked of this suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// Scenario sizes.
    pub(crate) sizes: Sizes,
    /// Compare with Mosquitto when it is installed.
    pub(crate) mosquitto: bool,
    /// Compare with rumqttd, installing it when missing.
    pub(crate) rumqttd: bool,
    /// Run the persistence section alone.
    pub(crate) persistence_only: bool,
    /// `--only`: run only the scenarios whose names contain one of these (and the runs
    /// they are compared with); empty: all.
    pub(crate) only: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sizes: Sizes::default(),
            mosquitto: true,
            rumqttd: true,
            persistence_only: false,
            only: Vec::new(),
        }
    }
}

/// Cargo's target directory.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Runs the suite.
pub(crate) fn run(root: &Path, options: Options) -> Result<()> {
    Cmd::cargo()
        .args(["build", "--release", "-p", "nanomq-bin", "--bin", "nanomq"])
        .current_dir(root)
        .run()?;
    let target = target_dir(root);
    let nanomq = target.join("release").join("nanomq");
    let out_dir = target.join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    if options.persistence_only {
        return persistence::run_only(&nanomq, options.sizes, &out_dir, &options.only);
    }

    // Ten thousand connections need ten thousand descriptors, in the client and in the
    // broker; the brokers inherit this process's limit.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if (limit as usize) < options.sizes.connections + 512 => println!(
            "note: the open-files limit is {limit}; the idle-connections scenario may fail"
        ),
        Ok(_) => {}
        Err(e) => println!("note: cannot raise the open-files limit: {e}"),
    }

    let peers = peers::find(root, options.mosquitto, options.rumqttd);
    for note in &peers.absent {
        println!("note: {note}");
    }
    let mut brokers = vec![Kind::Nanomq(nanomq.clone())];
    brokers.extend(peers.kinds.iter().cloned());

    let certs = match tls::generate() {
        Ok(certs) => Some(certs),
        Err(e) => {
            println!("note: no TLS certificate ({e:#}): the ssl and wss transports are skipped");
            None
        }
    };
    let scenarios = compare::select(scenario::all(options.sizes), &options.only);
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        let mut order: Vec<&Kind> = brokers.iter().collect();
        if i % 2 == 1 {
            order.reverse();
        }
        // A broker that cannot run a scenario, or fails it, has the reason instead of a
        // report.
        let mut reports: Vec<(&'static str, Result<Value, String>)> = Vec::new();
        for kind in order {
            println!("==> {} on {}", scenario.name, kind.name());
            if let Some(why) = peers::cannot_run(kind, scenario) {
                println!("    skipped: {why}");
                reports.push((kind.name(), Err(format!("cannot run: {why}"))));
                continue;
            }
            let report = run_one(&nanomq, kind, scenario, &out_dir, certs.as_ref());
            match &report {
                Ok(report) => println!("    {}", one_line(scenario, report)),
                Err(e) => println!("    FAILED: {e:#}"),
            }
            reports.push((
                kind.name(),
                report.map_err(|e| {
                    format!(
                        "failed: {}",
                        format!("{e:#}").lines().next().unwrap_or_default()
                    )
                }),
            ));
        }
        let outcomes: Vec<compare::Outcome> = reports
            .iter()
            .map(|(broker, report)| compare::Outcome {
                broker,
                report: report.as_ref().map_err(Clone::clone),
            })
            .collect();
        let before = scenarios.get(..i).unwrap_or_default();
        let new_rows = compare::rows(scenario, before, &rows, &outcomes);
        rows.extend(new_rows);
        for (name, report) in reports {
            raw.push(json!({
                "scenario": scenario.name,
                "transport": scenario.transport.name(),
                "broker": name,
                "report": report.as_ref().ok(),
                "error": report.as_ref().err(),
            }));
        }
    }
    // The instructions section counts every peer; the other sections compare nanomq with
    // Mosquitto only, or run nanomq alone.
    let every_broker = brokers.clone();
    brokers.retain(|kind| !matches!(kind, Kind::Rumqttd(_)));

    let access = access::run(
        &nanomq,
        &brokers,
        options.sizes,
        &out_dir,
        &options.only,
        &mut raw,
    );
    let transports = run_transports(
        &nanomq,
        options.sizes,
        &out_dir,
        certs.as_ref(),
        &options.only,
        &mut raw,
    );
    drop(certs);
    let scrape = scrape::run(&nanomq, options.sizes, &out_dir, &options.only, &mut raw);
    let persistence = persistence::run(&nanomq, options.sizes, &out_dir, &options.only, &mut raw);
    let mosquitto = brokers.iter().find_map(|kind| match kind {
        Kind::Mosquitto(path) => Some(path.as_path()),
        Kind::Nanomq(_) | Kind::Rumqttd(_) => None,
    });
    let bridges = bridge::run(&nanomq, mosquitto, &out_dir, &options.only, &mut raw);
    let costs = delivery_cost::run(
        &nanomq,
        &every_broker,
        options.sizes.clients,
        &out_dir,
        &options.only,
        &mut raw,
    );

    let versions = if peers.versions.is_empty() {
        String::new()
    } else {
        format!("; {}", peers.versions.join(", "))
    };
    let machine = format!(
        "{} cores, broker and load generator on the same machine, loopback; {} s per \
         throughput scenario; total {:.0} s{versions}",
        thread::available_parallelism().map_or(0, usize::from),
        options.sizes.seconds,
        started.elapsed().as_secs_f64()
    );
    // A partial run (`--only`) shows only the sections it ran.
    let table = if rows.is_empty() {
        String::new()
    } else {
        format!("{}\n", table::markdown(&rows, &peers.absent))
    };
    let transports = if transports.is_empty() {
        String::new()
    } else {
        format!(
            "## transports (nanomq only)\n\n{}\n",
            output::transports_markdown(&transports)
        )
    };
    let scrape = if scrape.is_empty() {
        String::new()
    } else {
        format!(
            "## Prometheus scrape (nanomq only)\n\n{}\n",
            scrape::markdown(&scrape)
        )
    };
    let persistence = if persistence.is_empty() {
        String::new()
    } else {
        format!("{}\n", persistence::section(&persistence))
    };
    let access = if access.is_empty() {
        String::new()
    } else {
        format!(
            "## access control (nanomq and Mosquitto only)\n\n{}\n",
            access::markdown(&access)
        )
    };
    let bridges = if bridges.is_empty() {
        String::new()
    } else {
        format!(
            "## bridges (nanomq and Mosquitto only)\n\n{}",
            bridge::markdown(&bridges)
        )
    };
    let costs = if costs.is_empty() {
        String::new()
    } else {
        format!(
            "## instructions per delivery (callgrind)\n\n{}\n",
            delivery_cost::markdown(&costs)
        )
    };
    let tables = format!("{table}{costs}{access}{transports}{scrape}{persistence}{bridges}");
    println!("\n{machine}\n\n{tables}");
    // A partial run leaves the full run's files as they were.
    let stem = if options.only.is_empty() {
        "e2e"
    } else {
        "e2e-only"
    };
    let md_path = out_dir.join(format!("{stem}.md"));
    fs::write(
        &md_path,
        format!("# nanomq vs mosquitto and rumqttd\n\n{machine}\n\n{tables}"),
    )
    .with_context(|| format!("cannot write {}", md_path.display()))?;
    let svg_path = out_dir.join(format!("{stem}.svg"));
    fs::write(
        &svg_path,
        table::svg(&rows, "nanomq vs mosquitto and rumqttd (cargo xtask bench)"),
    )
    .with_context(|| format!("cannot write {}", svg_path.display()))?;
    let json_path = out_dir.join(format!("{stem}.json"));
    fs::write(&json_path, serde_json::to_string_pretty(&raw)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!(
        "written: {}, {}, {}",
        md_path.display(),
        svg_path.display(),
        json_path.display()
    );
    Ok(())
}

/// Runs the transport scenarios against nanomq alone (TLS ones only with `certs`), adding
/// their reports to `raw`, and returns the rows of their table.
fn run_transports(
    nanomq: &Path,
    sizes: scenario::Sizes,
    out_dir: &Path,
    certs: Option<&Certs>,
    only: &[String],
    raw: &mut Vec<Value>,
) -> Vec<TransportRow> {
    let kind = Kind::Nanomq(nanomq.to_path_buf());
    let available: Vec<Transport> = Transport::ALL
        .into_iter()
        .filter(|t| certs.is_some() || !t.is_tls())
        .collect();
    let mut rows: Vec<TransportRow> = Vec::new();
    let scenarios = scenario::transports(sizes, &available)
        .into_iter()
        .filter(|s| compare::chosen(only, &s.name));
    for scenario in scenarios {
        let transport = scenario.transport.name();
        println!("==> {} over {transport} on nanomq", scenario.name);
        let report = run_one(nanomq, &kind, &scenario, out_dir, certs);
        let (rate, notes) = match &report {
            Ok(report) => {
                println!("    {}", one_line(&scenario, report));
                (
                    scenario::read(report, &scenario::RECEIVED_RATE),
                    scenario::integrity(report),
                )
            }
            Err(e) => {
                println!("    FAILED: {e:#}");
                (
                    None,
                    format!(
                        "failed: {}",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                )
            }
        };
        let tcp = rows
            .iter()
            .find(|r| r.scenario == scenario.name && r.transport == Transport::Tcp.name())
            .map_or(rate, |r| r.rate);
        rows.push(TransportRow {
            scenario: scenario.name.clone(),
            transport,
            rate,
            tcp,
            notes,
        });
        raw.push(json!({
            "scenario": scenario.name,
            "transport": transport,
            "broker": kind.name(),
            "report": report.as_ref().ok(),
            "error": report.as_ref().err().map(|e| format!("{e:#}")),
        }));
    }
    rows
}

/// The scenario's figures from `report`, on one line.
fn one_line(scenario: &Scenario, report: &Value) -> String {
    let mut parts: Vec<String> = scenario
        .metrics
        .iter()
        .map(|m| {
            let value = scenario::read(report, m).map_or_else(|| "–".to_owned(), output::number);
            format!("{}: {value}", m.label)
        })
        .collect();
    let integrity = scenario::integrity(report);
    if !integrity.is_empty() {
        parts.push(integrity);
    }
    if let Some(errors) = report.pointer("/errors").and_then(Value::as_array)
        && let Some(first) = errors.first().and_then(Value::as_str)
    {
        parts.push(format!("{} error(s), first: {first}", errors.len()));
    }
    parts.join(", ")
}

/// Starts a fresh `kind` (nanomq with TLS listeners too given `certs`), runs `scenario`
/// against it with `client` (`nanomq bench`) over the scenario's transport, and returns the
/// JSON report.
fn run_one(
    client: &Path,
    kind: &Kind,
    scenario: &Scenario,
    out_dir: &Path,
    certs: Option<&Certs>,
) -> Result<Value> {
    let mut broker = kind.start(&out_dir.join(kind.name()), certs, &scenario.tuning)?;
    bench_on(client, &mut broker, scenario)
}

/// Runs `scenario` against `broker` with `client` (`nanomq bench`) and returns the JSON
/// report.
fn bench_on(client: &Path, broker: &mut broker::Running, scenario: &Scenario) -> Result<Value> {
    let rss_left = scenario.metrics.contains(&scenario::RSS_LEFT);
    let rss_before = broker.rss_kib().filter(|_| rss_left);
    // Held until the run ends.
    let stalled = match scenario.beside {
        Beside::Stalled(filter) => Some(stalled::connect(broker.addr, filter)?),
        _ => None,
    };
    if matches!(
        scenario.beside,
        Beside::Retained | Beside::SubscribeFlood(_)
    ) {
        retained::preload(broker.addr)?;
    }
    let flood = match scenario.beside {
        Beside::SubscribeFlood(filters) => Some(retained::Flood::start(broker.addr, filters)?),
        _ => None,
    };
    let mut command = Command::new(client);
    command
        .arg("bench")
        .args(&scenario.args)
        .args(broker.connect_args(scenario.transport)?)
        .args(["--json", "--quiet"]);
    if scenario.rss {
        command.args(["--rss-pid", &broker.pid().to_string()]);
    }
    let (status, stdout, stderr) = run_bounded(command, scenario.timeout)?;
    let answered = flood.map(retained::Flood::finish).transpose()?;
    // The pairs are gone; what the broker still holds is the stalled subscriber's (and
    // what its allocator kept). Then what it gives back once that one leaves too.
    let rss = rss_before.and_then(|before| {
        thread::sleep(scenario::RSS_SETTLE);
        let held = broker.rss_kib()?;
        let released = stalled.map(|stream| {
            drop(stream);
            thread::sleep(scenario::RSS_SETTLE);
            broker.rss_kib()
        });
        Some(json!({
            "before_kib": before,
            "held_kib": held,
            "released_kib": released.flatten(),
        }))
    });
    if !broker.is_alive() {
        bail!(
            "{} died during the run:\n{}",
            broker.name,
            broker.log_tail()
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let Some(line) = line else {
        bail!("nanomq bench printed no report ({status}):\n{stderr}");
    };
    let mut report: Value = serde_json::from_str(line)
        .with_context(|| format!("nanomq bench printed invalid JSON: {line}"))?;
    if let (Some(rss), Some(object)) = (rss, report.as_object_mut()) {
        object.insert("rss_left".to_owned(), rss);
    }
    if let (Some(answered), Some(object)) = (answered, report.as_object_mut()) {
        object.insert(
            "flood".to_owned(),
            json!({
                "filters_per_subscribe": retained::FILTERS_PER_PACKET,
                "subacks": answered.subacks,
                "refused_filters": answered.refused,
            }),
        );
    }
    Ok(report)
}

/// Runs `command` with its output captured, killing it after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Result<(String, String, String)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start nanomq bench")?;
    let capture = |stream: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_string(&mut text);
            }
            text
        })
    };
    let out = capture(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = capture(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status.to_string();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break format!("killed after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}
