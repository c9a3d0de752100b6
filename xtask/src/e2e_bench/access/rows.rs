//! The access-control section's results: each run's [`Outcome`], the rows they make (the
//! median round of each run's ratios to the same round's baseline, per broker and figure)
//! and the Markdown table.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Group, ROUNDS, THROUGHPUT_GOAL, Variant};
use crate::e2e_bench::access_files;
use crate::e2e_bench::output;
use crate::e2e_bench::scenario::{self, Better};
use crate::e2e_bench::storm::{self, Stormed};

/// One run: which, and what it measured.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) round: usize,
    pub(super) variant: Variant,
    pub(super) broker: &'static str,
    /// `nanomq bench`'s report, or why there is none.
    pub(super) report: Result<Value, String>,
    pub(super) stormed: Option<Stormed>,
}

/// One line of the section's table: a figure of one run of a group, on one broker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccessRow {
    /// The scenario.
    pub(crate) scenario: String,
    /// The run's access control (and storm).
    pub(crate) variant: String,
    /// Which broker.
    pub(crate) broker: &'static str,
    /// The figure.
    pub(crate) metric: &'static str,
    /// Which way is better.
    pub(crate) better: Better,
    /// The figure in the median round.
    pub(crate) value: Option<f64>,
    /// The median of the rounds' ratios to the same round's baseline (`None` for the
    /// baseline itself).
    pub(crate) ratio: Option<f64>,
    /// Every round's ratio (the baseline's: every round's figure).
    pub(crate) rounds: Vec<Option<f64>>,
    /// Whether this row is the group's baseline.
    pub(crate) is_baseline: bool,
    /// The goal's minimum ratio, if one applies.
    pub(crate) goal: Option<f64>,
    /// The median round's message accounting, errors, storm.
    pub(crate) notes: String,
}

/// What the storm did, for the notes.
pub(super) fn storm_note(s: &Stormed) -> String {
    let failed = if s.failed > 0 {
        format!(", {} refused or timed out", output::number(s.failed as f64))
    } else {
        String::new()
    };
    format!(
        "storm: {} CONNECTs accepted in {:.1} s ({}/s){failed}",
        output::number(s.connected as f64),
        s.seconds,
        output::number(s.rate()),
    )
}

/// The notes of one run: message accounting, refusals, the first error, the storm.
fn notes(outcome: &Outcome) -> String {
    let mut notes: Vec<String> = Vec::new();
    match &outcome.report {
        Err(e) => notes.push(format!("failed: {}", e.lines().next().unwrap_or_default())),
        Ok(report) => {
            let integrity = scenario::integrity(report);
            if !integrity.is_empty() {
                notes.push(integrity);
            }
            let refused = report
                .pointer("/messages/ack_errors")
                .and_then(Value::as_u64);
            if let Some(n) = refused.filter(|n| *n > 0) {
                notes.push(format!("{} PUBACKs refused", output::number(n as f64)));
            }
            if let Some(first) = report.pointer("/errors/0").and_then(Value::as_str) {
                notes.push(format!("error: {first}"));
            }
        }
    }
    if let Some(s) = &outcome.stormed {
        notes.push(storm_note(s));
    }
    notes.join("; ")
}

/// The index of the median of `figures` (a missing one sorts first).
fn median_index(figures: &[Option<f64>]) -> Option<usize> {
    let mut order: Vec<usize> = (0..figures.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| {
            figures
                .get(i)
                .copied()
                .flatten()
                .unwrap_or(f64::NEG_INFINITY)
        };
        key(a).total_cmp(&key(b))
    });
    order.get(figures.len() / 2).copied()
}

/// The rows of a group's `variants` from its `outcomes` (every round, every broker).
pub(super) fn group_rows(
    group: &Group,
    variants: &[Variant],
    outcomes: &[Outcome],
) -> Vec<AccessRow> {
    let mut brokers: Vec<&'static str> = Vec::new();
    for outcome in outcomes {
        if !brokers.contains(&outcome.broker) {
            brokers.push(outcome.broker);
        }
    }
    let baseline = variants.first().copied();
    let find = |variant: Variant, broker: &str, round: usize| {
        outcomes
            .iter()
            .find(|o| o.variant == variant && o.broker == broker && o.round == round)
    };
    let mut rows = Vec::new();
    for &variant in variants {
        let is_baseline = Some(variant) == baseline;
        for &broker in &brokers {
            for metric in &group.scenario.metrics {
                let value = |variant: Variant, round: usize| {
                    find(variant, broker, round)
                        .and_then(|o| o.report.as_ref().ok())
                        .and_then(|r| scenario::read(r, metric))
                };
                let values: Vec<Option<f64>> =
                    (0..group.rounds).map(|r| value(variant, r)).collect();
                let figures: Vec<Option<f64>> = if is_baseline {
                    values.clone()
                } else {
                    (0..group.rounds)
                        .map(|r| {
                            let base = baseline.and_then(|b| value(b, r));
                            match (value(variant, r), base) {
                                (Some(v), Some(b)) if b != 0.0 => Some(v / b),
                                _ => None,
                            }
                        })
                        .collect()
                };
                let median = median_index(&figures);
                rows.push(AccessRow {
                    scenario: group.scenario.name.clone(),
                    variant: variant.label(),
                    broker,
                    metric: metric.label,
                    better: metric.better,
                    value: median.and_then(|i| values.get(i).copied().flatten()),
                    ratio: (!is_baseline)
                        .then(|| median.and_then(|i| figures.get(i).copied().flatten()))
                        .flatten(),
                    rounds: figures,
                    is_baseline,
                    goal: (group.goal && !is_baseline && broker == "nanomq")
                        .then_some(THROUGHPUT_GOAL),
                    notes: median
                        .and_then(|i| find(variant, broker, i))
                        .map(notes)
                        .unwrap_or_default(),
                });
            }
        }
    }
    rows
}

/// The section's Markdown table.
pub(crate) fn markdown(rows: &[AccessRow]) -> String {
    let mut out = String::from(
        "| scenario | access control | broker | figure | value | relative to the baseline | \
         each round | goal | messages |\n|---|---|---|---|---:|---:|---|---|---|\n",
    );
    for row in rows {
        let better = match row.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
        };
        let ratio = if row.is_baseline {
            "baseline".to_owned()
        } else {
            row.ratio
                .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
        };
        let rounds = row
            .rounds
            .iter()
            .map(|figure| match figure {
                None => "–".to_owned(),
                Some(value) if row.is_baseline => output::number(*value),
                Some(ratio) => format!("{ratio:.2}×"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let goal = match (row.goal, row.ratio) {
            (None, _) => "–".to_owned(),
            (Some(goal), Some(r)) if r >= goal => format!("≥ {goal:.1}× ✓"),
            (Some(goal), Some(_)) => format!("≥ {goal:.1}× ⚠ missed"),
            (Some(goal), None) => format!("≥ {goal:.1}× ?"),
        };
        let value = row.value.map_or_else(|| "–".to_owned(), output::number);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} {better} | {value} | {ratio} | {rounds} | {goal} | {} |",
            row.scenario, row.variant, row.broker, row.metric, row.notes
        );
    }
    let _ = write!(
        out,
        "\nEach broker against its own baseline run of the scenario, in the same run of the \
         suite: the same `nanomq bench` command, every client a different user (`-u user-%i \
         -P pw-%i`), the broker without access control, then with {rules} ACL rules \
         ([[auth.acl]] for nanomq with no_match = \"deny\", the benchmark's topics allowed by \
         the last rule; an equivalent acl_file for Mosquitto), or with a password file of \
         {users} users (`$7$`, PBKDF2-SHA512, {iterations} iterations, read by both). The \
         runs take {ROUNDS} rounds in turn; each row is the median round, with every round's \
         ratio to the same round's baseline beside it. The latency \
         runs compare one pair's latency beside a connect storm (`nanomq bench conn`, users \
         of the password file connecting at {rate}/s and staying) with the same pair alone.\n",
        rate = output::number(f64::from(storm::RATE)),
        rules = output::number(access_files::ACL_RULES as f64),
        users = output::number(access_files::USERS as f64),
        iterations = access_files::ITERATIONS,
    );
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::e2e_bench::access::groups;
    use crate::e2e_bench::access_files::Access;
    use crate::e2e_bench::scenario::Sizes;

    #[test]
    fn a_row_is_the_median_round_of_the_ratios_to_the_same_round_s_baseline() {
        let group = &groups(Sizes::default())[0];
        let variants = [Variant::plain(Access::None), Variant::plain(Access::Acl)];
        let outcome = |round, variant, broker, rate: Option<f64>| Outcome {
            round,
            variant,
            broker,
            report: rate
                .map(|rate| json!({"rates": {"received_per_s": rate}}))
                .ok_or_else(|| "refused".to_owned()),
            stormed: None,
        };
        let (none, acl) = (variants[0], variants[1]);
        let outcomes = [
            outcome(0, none, "nanomq", Some(100_000.0)),
            outcome(0, acl, "nanomq", Some(95_000.0)),
            outcome(0, none, "mosquitto", Some(10_000.0)),
            outcome(0, acl, "mosquitto", Some(5_000.0)),
            // A slow round: its own baseline is slow too.
            outcome(1, none, "nanomq", Some(50_000.0)),
            outcome(1, acl, "nanomq", Some(40_000.0)),
            outcome(1, none, "mosquitto", Some(10_000.0)),
            outcome(1, acl, "mosquitto", None),
            outcome(2, none, "nanomq", Some(80_000.0)),
            outcome(2, acl, "nanomq", Some(88_000.0)),
            outcome(2, none, "mosquitto", Some(10_000.0)),
            outcome(2, acl, "mosquitto", Some(6_000.0)),
        ];
        let rows = group_rows(group, &variants, &outcomes);
        assert_eq!(rows.len(), 4);
        let (n0, m0, n1, m1) = (&rows[0], &rows[1], &rows[2], &rows[3]);
        assert!(n0.is_baseline && n0.ratio.is_none());
        assert_eq!(n0.value, Some(80_000.0));
        assert_eq!(n1.rounds, [Some(0.95), Some(0.8), Some(1.1)]);
        assert_eq!((n1.ratio, n1.value), (Some(0.95), Some(95_000.0)));
        assert_eq!(
            (n1.goal, m1.goal, m0.goal),
            (Some(THROUGHPUT_GOAL), None, None)
        );
        // A failed round sorts first.
        assert_eq!(m1.rounds, [Some(0.5), None, Some(0.6)]);
        assert_eq!(m1.ratio, Some(0.5));
        let table = markdown(&rows);
        assert!(
            table.contains(
                "| nanomq | msg/s delivered ↑ | 80,000 | baseline | 100,000, 50,000, 80,000 | – |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| 95,000 | 0.95× | 0.95×, 0.80×, 1.10× | ≥ 0.9× ✓ |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| mosquitto | msg/s delivered ↑ | 5,000 | 0.50× | 0.50×, –, 0.60× | – |"
            ),
            "{table}"
        );
    }
}
