//! The bridge section of the end-to-end suite: an edge broker forwarding `bench/#` over its
//! bridge to an upstream Mosquitto, with a subscriber on the upstream counting what arrives
//! (every message must: a loss is an error, not a figure). Both figures are ratios to a
//! baseline measured in the same round:
//!
//! - forward: [`MESSAGES`] QoS 1 messages published to the edge by [`PUBLISHERS`]
//!   `nanomq bench pub` clients, received at the upstream, msg/s from the first to the last;
//!   nanomq as the edge (a `[[bridges]]` forward) against Mosquitto as the edge (its own
//!   bridge: `connection`, `topic bench/# out 1`, `cleansession false`); and, for reference,
//!   the upstream's ingest from one direct publisher (below) against the same baseline: a
//!   bridge is one connection within the upstream's Receive Maximum, as that publisher is.
//! - backlog drain: the upstream stops (SIGTERM), the edge takes [`MESSAGES`] QoS 1 messages
//!   that its bridge queues, then the upstream starts again on the same port and the
//!   messages drain to the upstream's subscriber; msg/s from the upstream's start to the last
//!   message. The subscriber's session is a persistent one, made before the upstream stopped
//!   and kept in Mosquitto's persistence file, so that nothing the bridge forwards before the
//!   subscriber is back can be missed. The baseline is what the same upstream takes from one
//!   `nanomq bench pub` publishing [`MESSAGES`] to it directly (from its subscriber's first
//!   message to its last): the drain should go at least that fast, never one message at a
//!   time. With nanomq as the edge, and with Mosquitto as the edge for comparison.
//!
//! The runs take turns in each round ([`ROUNDS`]); a row is the median round of its ratios.
//! Every broker is fresh for each run, on ephemeral loopback ports. [`subscriber`] has the
//! raw MQTT clients, [`runs`] the runs, [`rows`] the table.

mod rows;
mod runs;
mod subscriber;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

pub(crate) use self::rows::{BridgeRow, markdown};
use self::rows::{Outcome, group_rows};
use self::runs::{Env, measure};
use self::subscriber::Counted;
use super::{compare, output};

/// Messages of each run.
pub(crate) const MESSAGES: u64 = 100_000;

/// Publishers to the edge (each publishing [`MESSAGES`] / this many).
const PUBLISHERS: u64 = 4;

/// What each broker may queue: the edge's bridge (nanomq's `max_send_queue_len`,
/// Mosquitto's `max_queued_messages`) and the upstream's subscriber, so that nothing is
/// dropped for want of room.
const QUEUE: u64 = 200_000;

/// The bridge's client id upstream (both edges), which names its state topic.
const BRIDGE_CLIENT_ID: &str = "edge-1";

/// The forwarded filter, and the upstream subscriber's.
const FILTER: &str = "bench/#";

/// The upstream subscriber's client id.
const SUBSCRIBER_ID: &str = "bench-bridge-subscriber";

/// How long the subscriber waits for a message before it gives up on the rest.
const IDLE: Duration = Duration::from_secs(10);

/// How long a run's messages may take to arrive, at most.
const COUNT_DEADLINE: Duration = Duration::from_secs(90);

/// How long a bridge may take to turn up or down.
const STATE_TIMEOUT: Duration = Duration::from_secs(15);

/// Rounds of each group.
pub(crate) const ROUNDS: usize = 3;

/// Which broker is the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edge {
    /// nanomq with a `[[bridges]]` forward.
    Nanomq,
    /// Mosquitto with its own bridge.
    Mosquitto,
}

impl Edge {
    fn name(self) -> &'static str {
        match self {
            Self::Nanomq => "nanomq",
            Self::Mosquitto => "mosquitto",
        }
    }
}

/// One run of the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// Messages through a connected bridge.
    Forward(Edge),
    /// Messages published to the upstream directly (the drain's baseline).
    Ingest,
    /// A backlog queued while the upstream was down, once it is back.
    Drain(Edge),
}

impl Run {
    /// Its name in the table.
    pub(crate) fn label(self) -> String {
        match self {
            Self::Forward(edge) | Self::Drain(edge) => format!("{} edge", edge.name()),
            Self::Ingest => "upstream ingest (1 direct publisher)".to_owned(),
        }
    }
}

/// A scenario: its baseline run and the runs compared with it (with their goals).
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// Its name in the table (and for `--only`).
    pub(crate) name: String,
    /// The run the others are compared with.
    pub(crate) baseline: Run,
    /// The others, and the ratio each should reach.
    pub(crate) subjects: Vec<(Run, Option<f64>)>,
}

impl Group {
    /// Every run, the baseline first.
    fn runs(&self) -> Vec<Run> {
        std::iter::once(self.baseline)
            .chain(self.subjects.iter().map(|(run, _)| *run))
            .collect()
    }
}

/// The section's groups.
pub(crate) fn groups() -> Vec<Group> {
    let n = output::number(MESSAGES as f64);
    vec![
        Group {
            name: format!(
                "bridge: forward, {n} QoS 1 msgs from {PUBLISHERS} publishers on the edge to a \
                 subscriber on an upstream Mosquitto"
            ),
            baseline: Run::Forward(Edge::Mosquitto),
            // For reference: what the upstream takes from one direct client with the same
            // window (a bridge is one connection within the upstream's Receive Maximum too).
            // Not a ceiling: Mosquitto's bridge got more from the upstream than it in some
            // rounds.
            subjects: vec![(Run::Forward(Edge::Nanomq), Some(2.0)), (Run::Ingest, None)],
        },
        Group {
            name: format!(
                "bridge: backlog drain, {n} QoS 1 msgs queued on the edge while the upstream \
                 Mosquitto was down"
            ),
            baseline: Run::Ingest,
            subjects: vec![
                (Run::Drain(Edge::Nanomq), Some(1.0)),
                (Run::Drain(Edge::Mosquitto), None),
            ],
        },
    ]
}

/// What one run measured.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    /// Distinct messages per second at the upstream's subscriber.
    pub(crate) rate: f64,
    /// What the subscriber received.
    pub(crate) counted: Counted,
    /// The publishers' `nanomq bench` report.
    pub(crate) publisher: Value,
    /// A drain: seconds from the upstream's start to the first message, and the rate from
    /// that first message.
    pub(crate) drain: Option<(f64, f64)>,
}

/// Runs the section (the groups `only` selects), adding each run to `raw`; returns the
/// rows. Needs Mosquitto, the upstream of every run.
pub(crate) fn run(
    nanomq: &Path,
    mosquitto: Option<&Path>,
    out_dir: &Path,
    only: &[String],
    raw: &mut Vec<Value>,
) -> Vec<BridgeRow> {
    let chosen: Vec<Group> = groups()
        .into_iter()
        .filter(|g| compare::chosen(only, &g.name))
        .collect();
    if chosen.is_empty() {
        return Vec::new();
    }
    let Some(mosquitto) = mosquitto else {
        println!("note: the bridge scenarios need mosquitto (their upstream): skipped");
        return Vec::new();
    };
    let env = Env {
        nanomq,
        mosquitto,
        dir: out_dir.join("bridge"),
    };
    let mut rows = Vec::new();
    for group in &chosen {
        let mut outcomes = Vec::new();
        for round in 0..ROUNDS {
            // A different order in each round: no run always follows the same one.
            let mut order = group.runs();
            let shift = round % order.len();
            order.rotate_left(shift);
            for run in order {
                println!(
                    "==> {}: {} (round {} of {ROUNDS})",
                    group.name,
                    run.label(),
                    round + 1
                );
                let result = measure(&env, run).map_err(|e| format!("{e:#}"));
                match &result {
                    Ok(m) => println!("    {}", one_line(m)),
                    Err(e) => println!("    FAILED: {e}"),
                }
                raw.push(json!({
                    "scenario": group.name,
                    "run": run.label(),
                    "round": round + 1,
                    "rate_per_s": result.as_ref().ok().map(|m| m.rate),
                    "received": result.as_ref().ok().map(|m| json!({
                        "unique": m.counted.unique,
                        "duplicates": m.counted.duplicates,
                        "foreign": m.counted.foreign,
                    })),
                    "drain": result.as_ref().ok().and_then(|m| m.drain).map(|(first, rate)| json!({
                        "first_message_after_s": first,
                        "rate_from_first_per_s": rate,
                    })),
                    "publisher_report": result.as_ref().ok().map(|m| &m.publisher),
                    "error": result.as_ref().err(),
                }));
                outcomes.push(Outcome { round, run, result });
            }
        }
        rows.extend(group_rows(group, &outcomes));
    }
    rows
}

/// A run's figures on one line.
fn one_line(m: &Measured) -> String {
    let mut line = format!(
        "{} msg/s at the upstream's subscriber, {} distinct, {} duplicates",
        output::number(m.rate),
        output::number(m.counted.unique as f64),
        m.counted.duplicates
    );
    if let Some((first, rate)) = m.drain {
        line.push_str(&format!(
            "; first message {first:.2} s after the upstream started, {} msg/s from it",
            output::number(rate)
        ));
    }
    if let Some(acked) = m
        .publisher
        .pointer("/rates/acked_per_s")
        .and_then(Value::as_f64)
    {
        line.push_str(&format!(
            "; publishers acknowledged {} msg/s",
            output::number(acked)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_has_its_baseline_and_goals() {
        let list = groups();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|g| g.name.starts_with("bridge: ")));
        assert_eq!(list[0].baseline, Run::Forward(Edge::Mosquitto));
        assert_eq!(list[0].subjects[0], (Run::Forward(Edge::Nanomq), Some(2.0)));
        assert_eq!(list[0].subjects[1], (Run::Ingest, None));
        assert_eq!(list[1].baseline, Run::Ingest);
        assert_eq!(list[1].runs().len(), 3);
        assert_eq!(list[1].subjects[0], (Run::Drain(Edge::Nanomq), Some(1.0)));
    }
}
