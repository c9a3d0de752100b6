//! The queued-backlog table: one row per run, the bounded run's peak RSS against the
//! unbounded run's and against its budget, the drain, and the load generator's accounting,
//! any miss marked ⚠.

use std::fmt::Write as _;

use serde_json::Value;

use crate::e2e_bench::output::{cell, count, kib_as_megabytes, megabytes};

/// The load generator's accounting of a run's deliveries (`messages` in its report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Deliveries the topology called for: each message sent times its subscribers.
    pub(crate) expected: u64,
    /// Distinct deliveries received.
    pub(crate) unique: u64,
    /// Expected and never received.
    pub(crate) lost: u64,
    /// Received more than once.
    pub(crate) duplicated: u64,
    /// Received after a later message of the same publisher.
    pub(crate) out_of_order: u64,
    /// Received but not sent to that subscriber by this run.
    pub(crate) unexpected: u64,
}

impl Counters {
    /// The counters of a report, `None` if it has none.
    pub(crate) fn of(report: &Value) -> Option<Self> {
        let get = |name: &str| {
            report
                .pointer(&format!("/messages/{name}"))
                .and_then(Value::as_u64)
        };
        Some(Self {
            expected: get("expected")?,
            unique: get("unique")?,
            lost: get("lost")?,
            duplicated: get("duplicated")?,
            out_of_order: get("out_of_order")?,
            unexpected: get("unexpected")?,
        })
    }
}

/// One line of the table: one run of the scenario (nanomq only).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BacklogRow {
    /// The scenario.
    pub(crate) scenario: String,
    /// `queue_in_memory` (`None`: unset, nanomq's default; [`super::ALL_IN_MEMORY`]: every
    /// queued message also in memory).
    pub(crate) queue_in_memory: Option<u32>,
    /// Deliveries the scenario queues (messages × sessions).
    pub(crate) queued: u64,
    /// The broker's peak resident memory over the run, KiB.
    pub(crate) peak_rss_kib: Option<u64>,
    /// The unbounded run's peak in this section, KiB.
    pub(crate) baseline_kib: Option<u64>,
    /// The budget the peak must stay under, MB (the bounded run only).
    pub(crate) budget_mb: Option<f64>,
    /// From the last PUBACK to the last delivery, seconds.
    pub(crate) drain_s: Option<f64>,
    /// Distinct deliveries per second over [`Self::drain_s`].
    pub(crate) drain_rate: Option<f64>,
    /// What the load generator counted.
    pub(crate) counters: Option<Counters>,
    /// The whole run, from starting the broker to stopping it, seconds.
    pub(crate) wall_s: f64,
    /// The database (with its WAL) after the run, bytes.
    pub(crate) database_bytes: Option<u64>,
    /// Errors, or why the run failed.
    pub(crate) notes: String,
}

impl BacklogRow {
    /// Peak RSS / the unbounded run's.
    pub(crate) fn ratio(&self) -> Option<f64> {
        match (self.peak_rss_kib, self.baseline_kib) {
            (Some(p), Some(b)) if b != 0 => Some(p as f64 / b as f64),
            _ => None,
        }
    }

    /// Whether the peak stayed under the budget (`None`: no budget, or no figure).
    pub(crate) fn budget(&self) -> Option<bool> {
        let peak = self.peak_rss_kib? as f64 * 1024.0 / 1e6;
        Some(peak < self.budget_mb?)
    }

    /// Whether every queued delivery arrived once and in order (`None`: no report).
    pub(crate) fn intact(&self) -> Option<bool> {
        let c = self.counters?;
        Some(
            c.expected == self.queued
                && c.unique == c.expected
                && c.lost + c.duplicated + c.out_of_order + c.unexpected == 0,
        )
    }
}

/// `queue_in_memory` as the console shows it.
pub(crate) fn window(queue_in_memory: Option<u32>) -> String {
    match queue_in_memory {
        None => "queue_in_memory unset (1,000)".to_owned(),
        Some(super::ALL_IN_MEMORY) => "all in memory".to_owned(),
        Some(n) => format!("queue_in_memory = {n}"),
    }
}

/// The Markdown table.
pub(crate) fn markdown(rows: &[BacklogRow]) -> String {
    let mut out = String::from(
        "| scenario | window | peak RSS ↓ | relative to unbounded | RSS budget | drain (s) | \
         deliveries/s draining ↑ | delivered | lost / dup / ooo | run (s) | database after | \
         notes |\n|---|---|---:|---:|---|---:|---:|---:|---|---:|---:|---|\n",
    );
    for row in rows {
        let window = match row.queue_in_memory {
            None => "unset (1,000)".to_owned(),
            Some(super::ALL_IN_MEMORY) => "all".to_owned(),
            Some(n) => n.to_string(),
        };
        let peak = row
            .peak_rss_kib
            .map_or_else(|| "–".to_owned(), kib_as_megabytes);
        let ratio = row
            .ratio()
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
        let budget = match (row.budget_mb, row.budget()) {
            (None, _) => "–".to_owned(),
            (Some(mb), Some(true)) => format!("< {mb:.0} MB ✓"),
            (Some(mb), Some(false)) => format!("< {mb:.0} MB ⚠ over"),
            (Some(mb), None) => format!("< {mb:.0} MB ?"),
        };
        let drain = row
            .drain_s
            .map_or_else(|| "–".to_owned(), |s| format!("{s:.1}"));
        let delivered = row.counters.map_or_else(
            || "–".to_owned(),
            |c| format!("{} of {}", count(c.unique), count(row.queued)),
        );
        let check = match (row.counters, row.intact()) {
            (Some(c), Some(intact)) => format!(
                "{} / {} / {} {}",
                count(c.lost),
                count(c.duplicated),
                count(c.out_of_order),
                if intact { "✓" } else { "⚠ failed" }
            ),
            _ => "– ⚠ failed".to_owned(),
        };
        let db = row.database_bytes.map_or_else(|| "–".to_owned(), megabytes);
        let _ = writeln!(
            out,
            "| {} | {window} | {peak} | {ratio} | {budget} | {drain} | {} | {delivered} | \
             {check} | {:.0} | {db} | {} |",
            row.scenario,
            cell(row.drain_rate),
            row.wall_s,
            row.notes
        );
    }
    out.push_str(
        "\nnanomq alone, one round, the unbounded run first: one publisher sends 5,000 QoS 1 \
         messages of 64 B (--count) to 1,000 subscribers that are offline persistent sessions \
         (MQTT 5, Session Expiry Interval 3600 s), 5,000,000 queued deliveries; then every \
         session reconnects (asking for expiry 0) and receives its queue. SQLite store, sync \
         = \"periodic\", max_mqueue_len = 10,000,000 so that nothing is dropped. window: \
         queue_in_memory, the messages of a session's queue also in memory (all: queue_in_memory \
         = 4294967295, more than any queue; 100: the rest is in the store alone, read back in order as the queue drains). Peak RSS: \
         the broker's VmRSS, sampled every 100 ms from outside for the whole run. Drain: from \
         the publisher's last PUBACK (the sessions reconnect then) to the last delivery, as \
         the load generator reports it; deliveries/s draining: distinct deliveries over that \
         time. lost / dup / ooo: the load generator's per-message accounting (every payload \
         is stamped); anything but 0 / 0 / 0 with all 5,000,000 delivered is a failure. Run: \
         from starting the broker to stopping it.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_the_peak_against_the_unbounded_run_and_every_failure() {
        let counters = Counters {
            expected: 5_000_000,
            unique: 5_000_000,
            lost: 0,
            duplicated: 0,
            out_of_order: 0,
            unexpected: 0,
        };
        let row = |queue_in_memory, peak: u64| BacklogRow {
            scenario: "backlog".to_owned(),
            queue_in_memory,
            queued: 5_000_000,
            peak_rss_kib: Some(peak),
            baseline_kib: Some(400_000),
            budget_mb: (queue_in_memory != Some(super::super::ALL_IN_MEMORY)).then_some(160.0),
            drain_s: Some(41.24),
            drain_rate: Some(121_241.5),
            counters: Some(counters),
            wall_s: 46.2,
            database_bytes: Some(67_026_944),
            notes: String::new(),
        };
        let all = Some(super::super::ALL_IN_MEMORY);
        let table = markdown(&[row(all, 400_000), row(Some(100), 100_000)]);
        assert!(
            table.contains(
                "| backlog | all | 409.6 MB | 1.00× | – | 41.2 | 121,242 | \
                 5,000,000 of 5,000,000 | 0 / 0 / 0 ✓ | 46 | 67.0 MB |  |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| 100 | 102.4 MB | 0.25× | < 160 MB ✓ | 41.2 |"),
            "{table}"
        );
        // Over the budget; a message delivered out of order; one queued but never sent.
        let over = row(Some(100), 200_000);
        assert_eq!(over.budget(), Some(false));
        let reordered = BacklogRow {
            counters: Some(Counters {
                out_of_order: 3,
                ..counters
            }),
            ..row(Some(100), 100_000)
        };
        let short = BacklogRow {
            counters: Some(Counters {
                expected: 4_999_000,
                unique: 4_999_000,
                ..counters
            }),
            ..row(Some(100), 100_000)
        };
        let failed = BacklogRow {
            counters: None,
            peak_rss_kib: None,
            notes: "failed: nanomq died".to_owned(),
            ..row(Some(100), 0)
        };
        let table = markdown(&[over, reordered, short, failed]);
        assert!(
            table.contains("| 204.8 MB | 0.50× | < 160 MB ⚠ over |"),
            "{table}"
        );
        assert!(table.contains("| 0 / 0 / 3 ⚠ failed |"), "{table}");
        assert!(
            table.contains("| 4,999,000 of 5,000,000 | 0 / 0 / 0 ⚠ failed |"),
            "{table}"
        );
        assert!(
            table.contains("| – | – | < 160 MB ? | 41.2 | 121,242 | – | – ⚠ failed |"),
            "{table}"
        );
        assert!(table.contains("| failed: nanomq died |"), "{table}");
        assert_eq!(window(all), "all in memory");
        assert_eq!(window(None), "queue_in_memory unset (1,000)");
        assert_eq!(window(Some(100)), "queue_in_memory = 100");
    }

    #[test]
    fn the_counters_are_read_from_the_report() {
        let report = serde_json::json!({"messages": {"expected": 5, "unique": 4, "lost": 1,
            "duplicated": 0, "out_of_order": 2, "unexpected": 0}});
        assert_eq!(
            Counters::of(&report),
            Some(Counters {
                expected: 5,
                unique: 4,
                lost: 1,
                duplicated: 0,
                out_of_order: 2,
                unexpected: 0
            })
        );
        assert_eq!(Counters::of(&Value::Null), None);
    }
}
