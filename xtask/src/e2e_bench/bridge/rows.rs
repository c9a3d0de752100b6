//! The bridge section's results: each run's [`Outcome`], the rows they make (for each run
//! compared with its group's baseline, the median round of its ratios to the same round's
//! baseline) and the Markdown table.

use std::fmt::Write as _;

use super::{Group, IDLE, MESSAGES, Measured, Run};
use crate::e2e_bench::output;

/// One run: which, in which round, and what it measured (or why it failed).
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) round: usize,
    pub(crate) run: Run,
    pub(crate) result: Result<Measured, String>,
}

/// One line of the section's table: a run compared with its group's baseline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BridgeRow {
    /// The group.
    pub(crate) scenario: String,
    /// The run.
    pub(crate) run: String,
    /// Its msg/s in the median round.
    pub(crate) rate: Option<f64>,
    /// The baseline run.
    pub(crate) baseline: String,
    /// The baseline's msg/s in that round.
    pub(crate) baseline_rate: Option<f64>,
    /// The median round's ratio to its baseline.
    pub(crate) ratio: Option<f64>,
    /// Every round's ratio.
    pub(crate) rounds: Vec<Option<f64>>,
    /// The ratio it should reach.
    pub(crate) goal: Option<f64>,
    /// Message accounting of the median round, or the errors.
    pub(crate) notes: String,
}

/// What one run's notes say.
fn note(result: &Result<Measured, String>) -> String {
    match result {
        Err(e) => format!("failed: {}", e.lines().next().unwrap_or_default()),
        Ok(m) => {
            let mut text = format!(
                "{} of {} received, {} duplicates",
                output::number(m.counted.unique as f64),
                output::number(MESSAGES as f64),
                m.counted.duplicates
            );
            if let Some((first, rate)) = m.drain {
                let _ = write!(
                    text,
                    ", first {first:.2} s after the upstream started, {} msg/s from it",
                    output::number(rate)
                );
            }
            text
        }
    }
}

/// The rows of `group` from its runs' `outcomes` (every round's).
pub(crate) fn group_rows(group: &Group, outcomes: &[Outcome]) -> Vec<BridgeRow> {
    let rounds = outcomes.iter().map(|o| o.round).max().map_or(0, |r| r + 1);
    let find = |run: Run, round: usize| outcomes.iter().find(|o| o.run == run && o.round == round);
    let rate = |o: Option<&Outcome>| o.and_then(|o| o.result.as_ref().ok()).map(|m| m.rate);
    group
        .subjects
        .iter()
        .map(|&(run, goal)| {
            let ratios: Vec<Option<f64>> = (0..rounds)
                .map(
                    |round| match (rate(find(run, round)), rate(find(group.baseline, round))) {
                        (Some(r), Some(b)) if b > 0.0 => Some(r / b),
                        _ => None,
                    },
                )
                .collect();
            // The median round by ratio; a round without one sorts first.
            let mut order: Vec<usize> = (0..rounds).collect();
            order.sort_by(|&a, &b| {
                let key = |i: usize| {
                    ratios
                        .get(i)
                        .copied()
                        .flatten()
                        .unwrap_or(f64::NEG_INFINITY)
                };
                key(a).total_cmp(&key(b))
            });
            let median = order.get(order.len() / 2).copied().unwrap_or(0);
            let (ours, base) = (find(run, median), find(group.baseline, median));
            let mut notes: Vec<String> = Vec::new();
            if let Some(o) = ours {
                notes.push(format!("{}: {}", run.label(), note(&o.result)));
            }
            if let Some(o) = base {
                notes.push(format!("{}: {}", group.baseline.label(), note(&o.result)));
            }
            // A failure in another round is reported too: a failure is never a figure.
            let failed = outcomes
                .iter()
                .filter(|o| (o.run == run || o.run == group.baseline) && o.round != median)
                .filter_map(|o| {
                    o.result.as_ref().err().map(|e| {
                        format!(
                            "round {}, {}: failed: {}",
                            o.round + 1,
                            o.run.label(),
                            e.lines().next().unwrap_or_default()
                        )
                    })
                });
            notes.extend(failed);
            BridgeRow {
                scenario: group.name.clone(),
                run: run.label(),
                rate: rate(ours),
                baseline: group.baseline.label(),
                baseline_rate: rate(base),
                ratio: ratios.get(median).copied().flatten(),
                rounds: ratios,
                goal,
                notes: notes.join("; "),
            }
        })
        .collect()
}

/// The Markdown table of the section.
pub(crate) fn markdown(rows: &[BridgeRow]) -> String {
    let mut out = String::from(
        "| scenario | run | msg/s ↑ | baseline | baseline msg/s | ratio | goal | each round | \
         messages |\n|---|---|---:|---|---:|---:|---|---|---|\n",
    );
    for row in rows {
        let times = |r: f64| format!("{r:.2}×");
        let ratio = row.ratio.map_or_else(|| "–".to_owned(), times);
        let goal = match (row.goal, row.ratio) {
            (None, _) => "–".to_owned(),
            (Some(g), Some(r)) if r >= g => format!("≥ {g:.0}× ✓"),
            (Some(g), Some(_)) => format!("≥ {g:.0}× ⚠ missed"),
            (Some(g), None) => format!("≥ {g:.0}× ?"),
        };
        let rounds = row
            .rounds
            .iter()
            .map(|r| r.map_or_else(|| "–".to_owned(), times))
            .collect::<Vec<_>>()
            .join(", ");
        let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), output::number);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {ratio} | {goal} | {rounds} | {} |",
            row.scenario,
            row.run,
            cell(row.rate),
            row.baseline,
            cell(row.baseline_rate),
            row.notes
        );
    }
    let _ = write!(
        out,
        "\nEvery broker fresh for each run, on loopback; the upstream is Mosquitto (max_queued_messages \
         200,000, max_inflight_messages 32), the edge nanomq (`[[bridges]]`, proto_ver 5, \
         max_send_queue_len 200,000, one forward of bench/# at QoS 1) or Mosquitto (its bridge: \
         bridge_protocol_version mqttv50, cleansession false, topic bench/# out 1, \
         max_queued_messages 200,000). msg/s: distinct messages per second at a QoS 1 subscriber \
         on the upstream, from its first message to its last (forward, ingest), or from the \
         upstream's start to the last message (drain: the bridge's reconnection included; \
         nanomq's backoff_max is 100 ms, Mosquitto's restart_timeout 1 s, its shortest). Every \
         message must arrive (count = sent; after {} s with nothing the run fails). Drain: the \
         upstream stops (SIGTERM) with the subscriber's persistent session in its persistence \
         file, 4 publishers put {} QoS 1 messages on the edge, the upstream starts again on the \
         same port, the subscriber resumes its session. Ingest: one nanomq bench publisher (MQTT \
         5, 32 in flight) publishing the same count to that upstream directly, with the same \
         subscriber; beside the forward, for reference: one connection within the upstream's \
         Receive Maximum (32), as a bridge is; not a ceiling (Mosquitto's bridge got more than \
         it in some rounds). Each row is the median of {} rounds \
         of its ratio to the same round's \
         baseline, the runs in a different order in each round.\n",
        IDLE.as_secs(),
        output::number(MESSAGES as f64),
        super::ROUNDS
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e_bench::bridge::subscriber::Counted;
    use crate::e2e_bench::bridge::{Edge, groups};

    fn measured(rate: f64) -> Result<Measured, String> {
        Ok(Measured {
            rate,
            counted: Counted {
                unique: MESSAGES,
                duplicates: 0,
                foreign: 0,
                first: None,
                last: None,
                timed_out: false,
            },
            publisher: serde_json::Value::Null,
            drain: None,
        })
    }

    #[test]
    fn a_row_is_the_median_round_of_its_ratios() {
        let group = &groups()[0];
        let (ours, theirs) = (Run::Forward(Edge::Nanomq), Run::Forward(Edge::Mosquitto));
        let outcome = |round, run, result| Outcome { round, run, result };
        let outcomes = vec![
            outcome(0, theirs, measured(10_000.0)),
            outcome(0, ours, measured(30_000.0)),
            outcome(1, ours, measured(15_000.0)),
            outcome(1, theirs, measured(10_000.0)),
            outcome(2, theirs, Err("refused\nmore".to_owned())),
            outcome(2, ours, measured(40_000.0)),
        ];
        let rows = group_rows(group, &outcomes);
        // The upstream's ingest did not run here: its row has no figure.
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].rate, rows[1].ratio), (None, None));
        let row = &rows[0];
        // Ratios: 3.0, 1.5, none: the median is round 2's 1.5.
        assert_eq!(row.rounds, [Some(3.0), Some(1.5), None]);
        assert_eq!(row.ratio, Some(1.5));
        assert_eq!(
            (row.rate, row.baseline_rate),
            (Some(15_000.0), Some(10_000.0))
        );
        assert!(
            row.notes
                .contains("round 3, mosquitto edge: failed: refused"),
            "{}",
            row.notes
        );
        let table = markdown(&rows);
        assert!(
            table.contains(
                "| nanomq edge | 15,000 | mosquitto edge | 10,000 | 1.50× | ≥ 2× ⚠ missed | \
                 3.00×, 1.50×, – |"
            ),
            "{table}"
        );
    }
}
