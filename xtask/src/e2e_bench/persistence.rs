//! The persistence section (nanomq only): QoS 1 fan-in to an offline persistent subscriber
//! with sessions in memory and with the SQLite store at `sync = "periodic"` and `"always"`,
//! each against the same round's in-memory run, with the broker's CPU while publishing, the
//! drain time and the database's size; then the queued backlog of 1,000 offline sessions
//! with a bounded `queue_in_memory` against all in memory ([`super::backlog`]); also run
//! alone by `--persistence-only`.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::backlog::table::{self as backlog_table, BacklogRow};
use super::broker::{self, Kind};
use super::memory::{self, Peak};
use super::output::{self, PersistenceRow};
use super::scenario::{self, Scenario, Sizes};
use super::{backlog, compare, cpu};

/// The rows of the section's two tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Section {
    /// The stores' fan-in, each store's median round.
    pub(super) stores: Vec<PersistenceRow>,
    /// The queued backlog, bounded and not.
    pub(super) backlog: Vec<BacklogRow>,
}

impl Section {
    /// Whether nothing ran (`--only` chose none of it).
    pub(super) fn is_empty(&self) -> bool {
        self.stores.is_empty() && self.backlog.is_empty()
    }
}

/// `cargo xtask bench --persistence-only`: the persistence section alone, written to
/// `persistence.{md,json}` in `out_dir`.
pub(super) fn run_only(nanomq: &Path, sizes: Sizes, out_dir: &Path, only: &[String]) -> Result<()> {
    let started = Instant::now();
    let mut raw = Vec::new();
    let rows = run(nanomq, sizes, out_dir, only, &mut raw);
    let machine = format!(
        "{} cores, broker and load generator on the same machine, loopback; total {:.0} s",
        thread::available_parallelism().map_or(0, usize::from),
        started.elapsed().as_secs_f64()
    );
    let section = section(&rows);
    println!("\n{machine}\n\n{section}");
    let md_path = out_dir.join("persistence.md");
    fs::write(
        &md_path,
        format!("# nanomq persistence\n\n{machine}\n\n{section}"),
    )
    .with_context(|| format!("cannot write {}", md_path.display()))?;
    let json_path = out_dir.join("persistence.json");
    fs::write(&json_path, serde_json::to_string_pretty(&raw)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("written: {}, {}", md_path.display(), json_path.display());
    Ok(())
}

/// The persistence section of the Markdown: the tables that have rows.
pub(super) fn section(rows: &Section) -> String {
    let mut out = String::from("## persistence (nanomq only)\n\n");
    if !rows.stores.is_empty() {
        out.push_str(&output::persistence_markdown(&rows.stores));
    }
    if !rows.backlog.is_empty() {
        if !rows.stores.is_empty() {
            out.push('\n');
        }
        out.push_str("### queued backlog of offline sessions\n\n");
        out.push_str(&backlog_table::markdown(&rows.backlog));
    }
    out
}

/// Runs the persistence scenarios against a fresh nanomq each (its database in
/// `out_dir/nanomq`), the stores' rounds first, then the backlog, adding their reports to
/// `raw`, and returns the rows of their tables.
pub(super) fn run(
    nanomq: &Path,
    sizes: Sizes,
    out_dir: &Path,
    only: &[String],
    raw: &mut Vec<Value>,
) -> Section {
    let stores = run_stores(nanomq, sizes, out_dir, only, raw);
    let backlog = backlog::run(nanomq, out_dir, only, raw);
    Section { stores, backlog }
}

/// The stores' fan-in scenarios, [`output::PERSISTENCE_ROUNDS`] rounds; each store's median
/// round.
fn run_stores(
    nanomq: &Path,
    sizes: Sizes,
    out_dir: &Path,
    only: &[String],
    raw: &mut Vec<Value>,
) -> Vec<PersistenceRow> {
    let kind = Kind::Nanomq(nanomq.to_path_buf());
    let mut rows: Vec<PersistenceRow> = Vec::new();
    let rounds = (1..=output::PERSISTENCE_ROUNDS).flat_map(|round| {
        scenario::persistence(sizes)
            .into_iter()
            .filter(|s| compare::chosen(only, &s.name))
            .map(move |s| (round, s))
    });
    for (round, scenario) in rounds {
        let store = scenario.tuning.store.name();
        println!(
            "==> {} with sessions {store} on nanomq (round {round} of {})",
            scenario.name,
            output::PERSISTENCE_ROUNDS
        );
        let run = run_measured(nanomq, &kind, &scenario, out_dir);
        let (mut cores, mut drain_s) = (None, None);
        let (rate, notes) = match &run.report {
            Ok(report) => {
                let seconds = |pointer: &str| report.pointer(pointer).and_then(Value::as_f64);
                let connecting = seconds("/elapsed_s/connecting").unwrap_or(0.0);
                if let Some(acknowledging) = seconds("/elapsed_s/acknowledging") {
                    // Publishing, as the broker's clock sees it: from the start (after the
                    // connections, give or take the client's start-up) to the last PUBACK.
                    let from = Duration::try_from_secs_f64(connecting + 0.1).unwrap_or_default();
                    let to =
                        Duration::try_from_secs_f64(connecting + acknowledging).unwrap_or_default();
                    cores = cpu::cores_between(&run.samples, from, to);
                    drain_s = seconds("/elapsed_s/delivering").map(|d| d - acknowledging);
                }
                let mut line = super::one_line(&scenario, report);
                if let Some(c) = cores {
                    line.push_str(&format!(
                        ", CPU while publishing: broker {:.2} cores, machine {:.2}",
                        c.broker, c.machine
                    ));
                }
                if let Some(drain) = drain_s {
                    line.push_str(&format!(", drained in {drain:.1} s"));
                }
                if let Some(cpu) = run.cpu_s {
                    line.push_str(&format!(", broker CPU {cpu:.1} s in all"));
                }
                if let Some(bytes) = run.database_bytes {
                    line.push_str(&format!(", database {}", output::megabytes(bytes)));
                }
                println!("    {line}");
                let mut notes = scenario::integrity(report);
                let lost = report.pointer("/messages/lost").and_then(Value::as_u64);
                let cut = scenario::PERSISTENCE_DRAIN.as_secs_f64() - 1.0;
                if lost.is_some_and(|n| n > 0) && drain_s.is_some_and(|d| d >= cut) {
                    notes.push_str(&format!(
                        "; drain cut at {} s",
                        scenario::PERSISTENCE_DRAIN.as_secs()
                    ));
                }
                (scenario::read(report, &scenario::ACKED_RATE), notes)
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
        // This round's: in-memory runs first in each round.
        let memory = if store == broker::Store::Memory.name() {
            rate
        } else {
            rows.iter()
                .rev()
                .find(|r| r.store == broker::Store::Memory.name())
                .and_then(|r| r.rate)
        };
        rows.push(PersistenceRow {
            scenario: scenario.name.clone(),
            store,
            rate,
            memory,
            cores,
            drain_s,
            database_bytes: run.database_bytes,
            notes,
            rounds: Vec::new(),
        });
        raw.push(json!({
            "scenario": scenario.name,
            "transport": scenario.transport.name(),
            "store": store,
            "round": round,
            "broker": kind.name(),
            "broker_cpu_s": run.cpu_s,
            "publishing_cores": cores.map(|c| json!({"broker": c.broker, "machine": c.machine})),
            "peak_rss_kib": run.peak.map(|p| p.kib),
            "database_bytes": run.database_bytes,
            "report": run.report.as_ref().ok(),
            "error": run.report.as_ref().err().map(|e| format!("{e:#}")),
        }));
    }
    output::median_rounds(&rows)
}

/// What [`run_measured`] measured.
pub(super) struct Measured {
    /// The JSON report.
    pub(super) report: Result<Value>,
    /// The broker's CPU time over the run, seconds.
    pub(super) cpu_s: Option<f64>,
    /// CPU times sampled during the run.
    pub(super) samples: Vec<cpu::Sample>,
    /// Its database's size once it stopped, bytes.
    pub(super) database_bytes: Option<u64>,
    /// Its peak resident memory, from its start to the end of the run.
    pub(super) peak: Option<Peak>,
    /// From starting the broker to stopping it.
    pub(super) wall: Duration,
}

/// [`super::run_one`] without TLS, also measuring the broker's CPU time, its resident
/// memory and its database.
pub(super) fn run_measured(
    client: &Path,
    kind: &Kind,
    scenario: &Scenario,
    out_dir: &Path,
) -> Measured {
    let started = Instant::now();
    let mut broker = match kind.start(&out_dir.join(kind.name()), None, &scenario.tuning) {
        Ok(broker) => broker,
        Err(e) => {
            return Measured {
                report: Err(e),
                cpu_s: None,
                samples: Vec::new(),
                database_bytes: None,
                peak: None,
                wall: started.elapsed(),
            };
        }
    };
    let before = broker.cpu_seconds();
    let sampler = cpu::Sampler::start(broker.pid());
    let rss = memory::Sampler::start(broker.pid());
    let report = super::bench_on(client, &mut broker, scenario);
    let peak = rss.finish();
    let samples = sampler.finish();
    let cpu_s = broker
        .cpu_seconds()
        .zip(before)
        .map(|(after, before)| after - before);
    let database = broker.database().map(Path::to_path_buf);
    // Stopped first, so that the files are what it left.
    drop(broker);
    Measured {
        report,
        cpu_s,
        samples,
        database_bytes: database.as_deref().and_then(broker::database_bytes),
        peak,
        wall: started.elapsed(),
    }
}
