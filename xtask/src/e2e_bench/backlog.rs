//! The queued-backlog scenarios of the persistence section (nanomq only), the issue's
//! "5,000,000 queued QoS 1 messages for 1,000 offline sessions, RSS stays under a configured
//! budget, all delivered in order on reconnect, drain rate reported": one publisher fans
//! [`PER_SESSION`] QoS 1 messages out to [`SESSIONS`] offline persistent sessions (MQTT 5)
//! with the SQLite store at `sync = "periodic"`, then every session reconnects and receives
//! its queue. Twice: every queued message in memory too (`queue_in_memory` =
//! [`ALL_IN_MEMORY`], the baseline), then at most [`WINDOW`] per session in memory, the rest read back from the
//! store as the queue drains.
//!
//! The figures: the broker's peak resident memory, sampled from outside every
//! [`memory::PERIOD`] for the whole run, the bounded run's against the baseline's and
//! against [`RSS_BUDGET_MB`]; the drain rate; and the load generator's per-message
//! accounting (lost, duplicated, out of order), which must be all zero. One round per
//! section: memory does not move with the machine's load the way throughput does, and a
//! round takes about a minute here.
//!
//! Submodule: [`table`], the rows and their Markdown.

pub(crate) mod table;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use self::table::{BacklogRow, Counters};
use super::broker::{Kind, Store, Transport, Tuning};
use super::memory::{self, Peak};
use super::output;
use super::persistence::{self, Measured};
use super::scenario::{Beside, PERSISTENCE_QUEUE, PERSISTENCE_QUEUE_BYTES, Scenario};
use super::{compare, one_line};

/// Offline persistent sessions.
pub(crate) const SESSIONS: u64 = 1000;
/// Messages queued for each of them: `--count` of the one publisher a fan-out has.
pub(crate) const PER_SESSION: u64 = 5000;
/// Deliveries queued in all.
pub(crate) const DELIVERIES: u64 = SESSIONS * PER_SESSION;
/// `queue_in_memory` of the baseline: more than any session queues, so all of it stays in
/// memory too (nanomq's default keeps 1,000).
pub(crate) const ALL_IN_MEMORY: u32 = u32::MAX;

/// `queue_in_memory` of the bounded run.
pub(crate) const WINDOW: u32 = 100;
/// Payload bytes (the load generator's 24-byte stamp included).
const PAYLOAD: u32 = 64;
/// The cap on publishing (`-d`); here the 5,000 messages take 2-3 s.
const PUBLISHING_CAP: Duration = Duration::from_secs(60);
/// How long the sessions may take to receive their queues once back (`--drain`); the
/// bounded run takes about 45 s here.
pub(crate) const DRAIN: Duration = Duration::from_secs(300);

/// The bounded run's peak RSS must stay under this, MB. The window holds 1,000 × 100 =
/// 100,000 of the 5,000,000 deliveries (2%); the unbounded baseline needs about 70 B per
/// queued delivery (its peak, 408 MB, against 74 MB for the broker with the 1,000 sessions
/// connected, on this 2-core machine), so the window itself is some 7 MB. The rest of the
/// budget is the broker with its 1,000 connections (~75 MB) and what the store's writer
/// holds while it catches up with the burst (the bounded peak, 107-114 MB, is during
/// publishing). 160 MB is under half the baseline's peak: a broker that holds the whole
/// backlog in memory misses it.
pub(crate) const RSS_BUDGET_MB: f64 = 160.0;

/// The scenario's name, the same for both runs so that `--only backlog` keeps the
/// baseline with the bounded run.
pub(crate) fn name() -> String {
    format!(
        "backlog: fan-out 1→{}, QoS 1, {} queued per offline session",
        output::number(SESSIONS as f64),
        output::number(PER_SESSION as f64)
    )
}

/// The two runs, the baseline (every queued message also in memory) first.
pub(crate) fn scenarios() -> Vec<Scenario> {
    let (sessions, count) = (SESSIONS.to_string(), PER_SESSION.to_string());
    let (cap, drain) = (
        format!("{}s", PUBLISHING_CAP.as_secs()),
        format!("{}s", DRAIN.as_secs()),
    );
    let payload = PAYLOAD.to_string();
    let args: Vec<String> = [
        "fanout",
        "-c",
        &sessions,
        "-q",
        "1",
        "-n",
        &count,
        "-d",
        &cap,
        "-s",
        &payload,
        "-V",
        "5",
        "--offline",
        "--drain",
        &drain,
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    [ALL_IN_MEMORY, WINDOW]
        .into_iter()
        .map(Some)
        .map(|queue_in_memory| Scenario {
            name: name(),
            args: args.clone(),
            metrics: Vec::new(),
            rss: false,
            timeout: PUBLISHING_CAP + DRAIN + Duration::from_secs(60),
            transport: Transport::Tcp,
            tuning: Tuning {
                max_queued: PERSISTENCE_QUEUE,
                max_queued_bytes: Some(PERSISTENCE_QUEUE_BYTES),
                store: Store::Periodic,
                queue_in_memory,
            },
            beside: Beside::Nothing,
        })
        .collect()
}

/// Runs the scenarios `only` selects against a fresh nanomq each, adding their reports to
/// `raw`, and returns the rows of their table.
pub(crate) fn run(
    nanomq: &Path,
    out_dir: &Path,
    only: &[String],
    raw: &mut Vec<Value>,
) -> Vec<BacklogRow> {
    let kind = Kind::Nanomq(nanomq.to_path_buf());
    let mut rows: Vec<BacklogRow> = Vec::new();
    for scenario in scenarios()
        .into_iter()
        .filter(|s| compare::chosen(only, &s.name))
    {
        let window = scenario.tuning.queue_in_memory;
        println!("==> {} on nanomq, {}", scenario.name, table::window(window));
        let run = persistence::run_measured(nanomq, &kind, &scenario, out_dir);
        let baseline = rows
            .iter()
            .find(|r| r.queue_in_memory == Some(ALL_IN_MEMORY))
            .and_then(|r| r.peak_rss_kib);
        let row = row_of(&scenario, &run, baseline);
        match &run.report {
            Ok(report) => println!(
                "    {}, peak RSS {}, drain {} deliveries/s, run {:.0} s",
                one_line(&scenario, report),
                row.peak_rss_kib
                    .map_or_else(|| "–".to_owned(), output::kib_as_megabytes),
                output::cell(row.drain_rate),
                row.wall_s
            ),
            Err(e) => println!("    FAILED: {e:#}"),
        }
        raw.push(json!({
            "scenario": scenario.name,
            "store": scenario.tuning.store.name(),
            "queue_in_memory": window,
            "broker": kind.name(),
            "peak_rss": run.peak.map(|p: Peak| json!({
                "kib": p.kib,
                "at_s": p.at.as_secs_f64(),
                "samples": p.samples,
                "every_ms": memory::PERIOD.as_millis(),
            })),
            "rss_budget_mb": window.map(|_| RSS_BUDGET_MB),
            "drain_per_s": row.drain_rate,
            "wall_s": row.wall_s,
            "broker_cpu_s": run.cpu_s,
            "database_bytes": run.database_bytes,
            "report": run.report.as_ref().ok(),
            "error": run.report.as_ref().err().map(|e| format!("{e:#}")),
        }));
        rows.push(row);
    }
    rows
}

/// The row of one run, `baseline` the unbounded run's peak RSS in this section, KiB.
fn row_of(scenario: &Scenario, run: &Measured, baseline: Option<u64>) -> BacklogRow {
    let queue_in_memory = scenario.tuning.queue_in_memory;
    let bounded = queue_in_memory != Some(ALL_IN_MEMORY);
    let mut row = BacklogRow {
        scenario: scenario.name.clone(),
        queue_in_memory,
        queued: DELIVERIES,
        peak_rss_kib: run.peak.map(|p| p.kib),
        baseline_kib: if bounded {
            baseline
        } else {
            run.peak.map(|p| p.kib)
        },
        budget_mb: bounded.then_some(RSS_BUDGET_MB),
        drain_s: None,
        drain_rate: None,
        counters: None,
        wall_s: run.wall.as_secs_f64(),
        database_bytes: run.database_bytes,
        notes: String::new(),
    };
    match &run.report {
        Ok(report) => {
            let (drain_s, drain_rate) = drain(report);
            row.drain_s = drain_s;
            row.drain_rate = drain_rate;
            row.counters = Counters::of(report);
            if let Some(errors) = report.pointer("/errors").and_then(Value::as_array)
                && let Some(first) = errors.first().and_then(Value::as_str)
            {
                row.notes = format!("{} error(s), first: {first}", errors.len());
            }
            let cut = DRAIN.as_secs_f64() - 1.0;
            if row.counters.is_some_and(|c| c.lost > 0) && drain_s.is_some_and(|d| d >= cut) {
                row.notes = format!("drain cut at {} s", DRAIN.as_secs());
            }
        }
        Err(e) => {
            row.notes = format!(
                "failed: {}",
                e.to_string().lines().next().unwrap_or_default()
            );
        }
    }
    row
}

/// From the last PUBACK (the sessions reconnect once the publisher has its last one) to the
/// last delivery, as the load generator's report says: seconds, and distinct deliveries per
/// second over them.
pub(crate) fn drain(report: &Value) -> (Option<f64>, Option<f64>) {
    let seconds = |p: &str| report.pointer(p).and_then(Value::as_f64);
    let drain_s = seconds("/elapsed_s/delivering")
        .zip(seconds("/elapsed_s/acknowledging"))
        .map(|(delivering, acknowledging)| delivering - acknowledging)
        .filter(|s| *s > 0.0);
    let unique = report.pointer("/messages/unique").and_then(Value::as_u64);
    let rate = drain_s
        .zip(unique)
        .map(|(seconds, unique)| unique as f64 / seconds);
    (drain_s, rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(unique: u64, lost: u64, ooo: u64) -> Value {
        json!({
            "messages": {"sent": 5000, "acked": 5000, "expected": DELIVERIES,
                         "received": unique, "unique": unique, "lost": lost,
                         "duplicated": 0, "out_of_order": ooo, "unexpected": 0},
            "elapsed_s": {"connecting": 0.14, "publishing": 1.85, "acknowledging": 1.85,
                          "delivering": 43.09, "running": 43.09},
            "errors": [],
        })
    }

    fn measured(report: Value, peak_kib: u64) -> Measured {
        Measured {
            report: Ok(report),
            cpu_s: Some(50.0),
            samples: Vec::new(),
            database_bytes: Some(67_026_944),
            peak: Some(Peak {
                kib: peak_kib,
                at: Duration::from_secs(2),
                samples: 430,
            }),
            wall: Duration::from_secs(46),
        }
    }

    #[test]
    fn five_thousand_messages_reach_each_of_the_thousand_offline_sessions() {
        let list = scenarios();
        assert_eq!(list.len(), 2);
        let windows: Vec<Option<u32>> = list.iter().map(|s| s.tuning.queue_in_memory).collect();
        assert_eq!(windows, [Some(ALL_IN_MEMORY), Some(100)]);
        for s in &list {
            assert_eq!(
                s.name,
                "backlog: fan-out 1→1,000, QoS 1, 5,000 queued per offline session"
            );
            assert_eq!(s.args.first().map(String::as_str), Some("fanout"));
            for pair in [
                ["-c", "1000"],
                ["-q", "1"],
                ["-n", "5000"],
                ["-s", "64"],
                ["-V", "5"],
                ["--drain", "300s"],
            ] {
                assert!(
                    s.args.windows(2).any(|w| w == pair),
                    "{pair:?}: {:?}",
                    s.args
                );
            }
            assert!(s.args.iter().any(|a| a == "--offline"));
            assert_eq!(s.tuning.store, Store::Periodic);
            // Nothing dropped: the queue limits hold every session's 5,000 messages.
            assert!(u64::from(s.tuning.max_queued) >= PER_SESSION);
            assert!(s.tuning.max_queued_bytes >= Some(PER_SESSION * u64::from(PAYLOAD)));
            assert!(s.timeout > PUBLISHING_CAP + DRAIN);
        }
        // The name selects both runs, so that the bounded one keeps its baseline.
        assert!(
            list.iter()
                .all(|s| compare::chosen(&["backlog".to_owned()], &s.name))
        );
        assert!(
            !list
                .iter()
                .any(|s| compare::chosen(&["fan-in".to_owned()], &s.name))
        );
    }

    #[test]
    fn the_drain_rate_is_over_the_time_from_the_last_puback_to_the_last_delivery() {
        let (seconds, rate) = drain(&report(5_000_000, 0, 0));
        assert_eq!(seconds.map(|s| (s * 100.0).round()), Some(4124.0));
        assert_eq!(rate.map(f64::round), Some(121_242.0));
        assert_eq!(drain(&Value::Null), (None, None));
    }

    #[test]
    fn the_bounded_row_is_against_the_unbounded_peak_and_the_budget() {
        let list = scenarios();
        let unbounded = row_of(&list[0], &measured(report(5_000_000, 0, 0), 408_088), None);
        assert_eq!(unbounded.baseline_kib, Some(408_088));
        assert_eq!(unbounded.budget(), None);
        let bounded = row_of(
            &list[1],
            &measured(report(5_000_000, 0, 0), 107_288),
            unbounded.peak_rss_kib,
        );
        assert_eq!(bounded.ratio().map(|r| (r * 100.0).round()), Some(26.0));
        assert_eq!(bounded.budget(), Some(true));
        assert_eq!(bounded.intact(), Some(true));
        assert_eq!(bounded.notes, "");

        let over = row_of(&list[1], &measured(report(5_000_000, 0, 0), 200_000), None);
        assert_eq!((over.budget(), over.ratio()), (Some(false), None));
        let reordered = row_of(&list[1], &measured(report(5_000_000, 0, 3), 107_288), None);
        assert_eq!(reordered.intact(), Some(false));
        let failed = Measured {
            report: Err(anyhow::anyhow!("nanomq died during the run:\nlog")),
            ..measured(Value::Null, 107_288)
        };
        let failed = row_of(&list[1], &failed, Some(408_088));
        assert_eq!(failed.notes, "failed: nanomq died during the run:");
        assert_eq!((failed.counters, failed.intact()), (None, None));
    }
}
