//! The instructions section: what each broker runs per delivered message, counted under
//! callgrind ([`super::callgrind`]) rather than timed, so that the ratio between brokers
//! holds to a fraction of a percent on this shared machine where wall-clock rounds move by
//! 10–30%. Each case is a fixed count of 64-byte messages ([`CASES`]) on a fresh broker
//! under callgrind; a broker started and stopped with nothing to do gives the start-up and
//! shut-down cost, taken off each case's count before it is divided by the messages
//! delivered. A case that does not deliver every message exactly once is reported as such:
//! a broker that drops work runs fewer instructions, so its figure is no comparison.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use super::broker::Kind;
use super::scenario::Scenario;
use super::{callgrind, compare, output};

/// A case: its name (N: the clients), the `nanomq bench` scenario and QoS, messages per
/// publisher (`-n`) and, paced, messages per second per publisher (`-r`). The clients are
/// the suite's (`--clients`, 50). Fan-out at QoS 0 and fan-in are paced: unpaced, Mosquitto
/// under callgrind drops part of them (QoS 0 at the subscribers' sockets, fan-in at the
/// subscriber's queue), and a broker that drops gets no figure.
struct Case {
    name: &'static str,
    scenario: &'static str,
    qos: &'static str,
    count: u64,
    rate: Option<u32>,
}

const CASES: [Case; 4] = [
    Case {
        name: "fan-out 1→N, QoS 0, 200 msg/s",
        scenario: "fanout",
        qos: "0",
        count: 2_000,
        rate: Some(200),
    },
    Case {
        name: "fan-out 1→N, QoS 1",
        scenario: "fanout",
        qos: "1",
        count: 2_000,
        rate: None,
    },
    Case {
        name: "N pairs, QoS 1",
        scenario: "pairs",
        qos: "1",
        count: 400,
        rate: None,
    },
    Case {
        name: "fan-in N→1, QoS 1, 20 msg/s per publisher",
        scenario: "fanin",
        qos: "1",
        count: 400,
        rate: Some(20),
    },
];

/// The prefix of every case's name (for `--only`).
const PREFIX: &str = "instructions per delivery";

/// One case's figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CostRow {
    pub(crate) scenario: String,
    /// Instructions per delivered message, per broker (in the order run), or why not.
    pub(crate) brokers: Vec<(&'static str, Result<f64, String>)>,
}

impl CostRow {
    fn of(&self, name: &str) -> Option<f64> {
        self.brokers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, r)| r.as_ref().ok().copied())
    }
}

/// A case's name with `clients`.
fn name(case: &str, clients: usize) -> String {
    format!("{PREFIX}: {}", case.replace('N', &clients.to_string()))
}

/// Runs the section on `brokers` if `only` selects any of its cases, adding each run to `raw`.
pub(crate) fn run(
    client: &Path,
    brokers: &[Kind],
    clients: usize,
    out_dir: &Path,
    only: &[String],
    raw: &mut Vec<Value>,
) -> Vec<CostRow> {
    let cases: Vec<_> = CASES
        .iter()
        .filter(|case| compare::chosen(only, &name(case.name, clients)))
        .collect();
    if cases.is_empty() {
        return Vec::new();
    }
    if let Err(e) = callgrind::ensure_valgrind() {
        println!("    FAILED: {e:#}");
        let failed = Err(format!("valgrind: {e:#}"));
        return cases
            .iter()
            .map(|case| CostRow {
                scenario: name(case.name, clients),
                brokers: brokers.iter().map(|k| (k.name(), failed.clone())).collect(),
            })
            .collect();
    }
    let dir = out_dir.join("instructions");
    let mut rows: Vec<CostRow> = cases
        .iter()
        .map(|case| CostRow {
            scenario: name(case.name, clients),
            brokers: Vec::new(),
        })
        .collect();
    for kind in brokers {
        let idle = count(client, kind, &dir, None).map(|(instructions, _)| instructions);
        for (row, case) in rows.iter_mut().zip(&cases) {
            let per = idle
                .as_ref()
                .map_err(|e| format!("idle run: {e:#}"))
                .and_then(|&idle| {
                    let (total, delivered) = count(client, kind, &dir, Some((case, clients)))
                        .map_err(|e| format!("{e:#}"))?;
                    Ok(total.saturating_sub(idle) as f64 / delivered.max(1) as f64)
                });
            match &per {
                Ok(per) => println!(
                    "    {}: {} instructions per delivery",
                    kind.name(),
                    output::number(*per)
                ),
                Err(e) => println!("    {}: FAILED: {e}", kind.name()),
            }
            raw.push(json!({
                "scenario": name(case.name, clients),
                "broker": kind.name(),
                "instructions_per_delivery": per.as_ref().ok(),
                "error": per.as_ref().err(),
            }));
            row.brokers.push((kind.name(), per));
        }
    }
    rows
}

/// One run of `kind` under callgrind: idle (`None`), or a case with its clients; returns
/// its instructions and (for a case) the messages it delivered, which must be all of them,
/// once each.
fn count(
    client: &Path,
    kind: &Kind,
    dir: &Path,
    case: Option<(&Case, usize)>,
) -> Result<(u64, u64)> {
    let label = case.map_or_else(
        || "idle".to_owned(),
        |(case, _)| format!("{}-qos{}", case.scenario, case.qos),
    );
    println!("==> {PREFIX}: {label} on {} under callgrind", kind.name());
    let profile = dir.join(format!("{}-{label}.callgrind", kind.name()));
    let mut broker = callgrind::start(kind, &dir.join(kind.name()), &profile, String::new())?;
    let delivered = match case {
        None => 0,
        Some((case, clients)) => {
            let report = super::bench_on(client, &mut broker, &bench(case, clients))?;
            callgrind::all_delivered(&report)?
        }
    };
    let instructions = callgrind::stop_and_count(&mut broker, &profile)?;
    Ok((instructions, delivered))
}

/// The `nanomq bench` run of a case.
fn bench(case: &Case, clients: usize) -> Scenario {
    let (c, n) = (clients.to_string(), case.count.to_string());
    let rate = case.rate.map(|r| r.to_string());
    let mut args = vec![case.scenario, "-c", &c, "-q", case.qos, "-n", &n];
    if let Some(rate) = &rate {
        args.extend(["-r", rate]);
    }
    callgrind::scenario(format!("{} under callgrind", case.name), &args)
}

/// The peers the table has a column for, in order.
const PEERS: [&str; 2] = ["mosquitto", "rumqttd"];

/// The section's Markdown table.
pub(crate) fn markdown(rows: &[CostRow]) -> String {
    let mut out = String::from(
        "| case | nanomq | mosquitto | rumqttd | fewest of the peers | nanomq / that peer \
         (lower is better) | notes |\n|---|---:|---:|---:|---|---:|---|\n",
    );
    for row in rows {
        let cell = |name: &str| row.of(name).map_or_else(|| "–".to_owned(), output::number);
        let best = PEERS
            .iter()
            .filter_map(|peer| row.of(peer).filter(|n| *n > 0.0).map(|n| (*peer, n)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let ratio = row
            .of("nanomq")
            .zip(best)
            .map_or_else(|| "–".to_owned(), |(n, (_, b))| format!("{:.2}×", n / b));
        let notes: Vec<String> = row
            .brokers
            .iter()
            .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {ratio} | {} |",
            row.scenario,
            cell("nanomq"),
            cell("mosquitto"),
            cell("rumqttd"),
            best.map_or("–", |(peer, _)| peer),
            notes.join("; ")
        );
    }
    out.push_str(
        "\nInstructions (valgrind's callgrind, every thread, start to exit) each broker ran \
         per delivered 64-byte message, less what it runs started and stopped with nothing \
         to do; each case a fresh broker and a fixed count of messages from `nanomq bench`. \
         Unpaced, a count moves by under 1% between runs; paced, by up to 30%, with how the \
         messages line up with the broker's turns. A broker that does not deliver every \
         message once gets no figure.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn the_table_gives_the_ratio_and_says_why_a_figure_is_missing() {
        let rows = [
            CostRow {
                scenario: name("fan-out 1→N, QoS 0, 200 msg/s", 50),
                brokers: vec![
                    ("nanomq", Ok(961.0)),
                    ("mosquitto", Ok(1_922.0)),
                    ("rumqttd", Ok(3_000.0)),
                ],
            },
            CostRow {
                scenario: name("fan-in N→1, QoS 1", 50),
                brokers: vec![
                    ("nanomq", Ok(2_000.0)),
                    ("mosquitto", Err("delivered 3 of 4".to_owned())),
                ],
            },
        ];
        let table = markdown(&rows);
        assert!(
            table.contains(
                "| instructions per delivery: fan-out 1→50, QoS 0, 200 msg/s | 961 | 1,922 | 3,000 | mosquitto | 0.50× |  |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| 2,000 | – | – | – | – | mosquitto: delivered 3 of 4 |"),
            "{table}"
        );
    }
}
