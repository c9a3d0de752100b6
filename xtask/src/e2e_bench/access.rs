//! The access-control section of the end-to-end suite: the same `nanomq bench` run against
//! a broker without access control and with it (the ACL of [`access_files`], or its password
//! file of 100,000 users), each broker compared with its own run without:
//!
//! - QoS 1 fan-in and pairs, every client a different user (`-u user-%i -P pw-%i`): the
//!   checks on the publish path (goal: at least 0.9× of the run without);
//! - the CONNECT rate with the password file's `$7$` hashes (PBKDF2, slow by design) against
//!   the rate without authentication;
//! - one pair's QoS 1 latency at 1,000 msg/s, alone and beside a connect storm
//!   ([`storm`]), with and without the password file: whether routing waits for the
//!   password checks.
//!
//! Each scenario's runs are a group: its first run (the baseline) is the one the others are
//! compared with. A group runs in rounds, its runs in a different order in each; a row is the
//! median of the rounds' ratios to the same round's baseline (one round's ratio moves by ±10%
//! and more on a shared 2-core machine). `--only` runs the groups with a chosen run, each
//! with its baseline. [`rows`] makes the rows and their table.

mod rows;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

pub(crate) use self::rows::{AccessRow, markdown};
use self::rows::{Outcome, group_rows, storm_note};
use super::access_files::{self, Access, CREDENTIALS, Files};
use super::broker::{Kind, Transport, Tuning};
use super::scenario::{Beside, Better, Metric, RECEIVED_RATE, Scenario, Sizes};
use super::storm::Storm;
use super::{compare, output};

/// The goal of the throughput scenarios: at least this fraction of the run without.
pub(crate) const THROUGHPUT_GOAL: f64 = 0.9;

/// Connections of the CONNECT-rate scenario.
const CONNECTIONS: usize = 5_000;

/// Rounds of each group.
const ROUNDS: usize = 3;

/// One run of a group: the access control, and whether a connect storm runs beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Variant {
    access: Access,
    storm: bool,
}

impl Variant {
    const fn plain(access: Access) -> Self {
        Self {
            access,
            storm: false,
        }
    }

    const fn storm(access: Access) -> Self {
        Self {
            access,
            storm: true,
        }
    }

    fn label(self) -> String {
        if self.storm {
            format!("{}, beside a connect storm", self.access.name())
        } else {
            self.access.name().to_owned()
        }
    }
}

/// A scenario and its runs, the first the baseline.
#[derive(Debug, Clone)]
struct Group {
    scenario: Scenario,
    variants: Vec<Variant>,
    /// Whether [`THROUGHPUT_GOAL`] applies.
    goal: bool,
    /// How many times its runs are repeated.
    rounds: usize,
    /// Seconds of publishing.
    seconds: u64,
}

impl Group {
    /// The name of `variant`'s run, as `--only` matches it.
    fn name(&self, variant: Variant) -> String {
        format!(
            "access control: {}, {}",
            self.scenario.name,
            variant.label()
        )
    }

    /// Its runs `--only` selects: the chosen ones, and the baseline if any is chosen.
    fn selected(&self, only: &[String]) -> Vec<Variant> {
        let chosen = |v: &Variant| compare::chosen(only, &self.name(*v));
        if !self.variants.iter().any(chosen) {
            return Vec::new();
        }
        self.variants
            .iter()
            .enumerate()
            .filter(|(i, v)| *i == 0 || chosen(v))
            .map(|(_, v)| *v)
            .collect()
    }
}

/// The groups, in the order they run.
fn groups(sizes: Sizes) -> Vec<Group> {
    let seconds = sizes.seconds.min(3);
    let d = format!("{seconds}s");
    let c = sizes.clients.to_string();
    let timeout = Duration::from_secs(seconds + 60);
    let scenario = |name: String, list: &[&str], metrics: Vec<Metric>| {
        let mut args: Vec<String> = list.iter().map(|a| (*a).to_owned()).collect();
        args.extend(CREDENTIALS.iter().map(|a| (*a).to_owned()));
        Scenario {
            name,
            args,
            metrics,
            rss: false,
            timeout,
            transport: Transport::Tcp,
            tuning: Tuning::default(),
            beside: Beside::Nothing,
        }
    };
    let throughput = [Access::None, Access::Acl, Access::Passwords]
        .map(Variant::plain)
        .to_vec();
    let n = CONNECTIONS.to_string();
    let lower = |label: &'static str, pointer: &'static str| Metric {
        label,
        pointer,
        better: Better::Lower,
    };
    vec![
        Group {
            scenario: scenario(
                format!("fan-in {c}→1, QoS 1"),
                &["fanin", "-c", &c, "-q", "1", "-d", &d, "-s", "64"],
                vec![RECEIVED_RATE],
            ),
            variants: throughput.clone(),
            goal: true,
            rounds: ROUNDS,
            seconds,
        },
        Group {
            scenario: scenario(
                format!("{c} pairs, QoS 1"),
                &["pairs", "-c", &c, "-q", "1", "-d", &d, "-s", "64"],
                vec![RECEIVED_RATE],
            ),
            variants: throughput,
            goal: true,
            rounds: ROUNDS,
            seconds,
        },
        Group {
            scenario: scenario(
                format!(
                    "CONNECT rate, {} connections",
                    output::number(CONNECTIONS as f64)
                ),
                &["conn", "-c", &n, "-d", "200ms", "-k", "600"],
                vec![
                    Metric {
                        label: "connections/s accepted",
                        pointer: "/connections/rate_per_s",
                        better: Better::Higher,
                    },
                    lower("CONNECT→CONNACK p99 (ms)", "/connections/handshake_ms/p99"),
                ],
            ),
            variants: vec![
                Variant::plain(Access::None),
                Variant::plain(Access::Passwords),
            ],
            goal: false,
            rounds: ROUNDS,
            seconds,
        },
        Group {
            scenario: scenario(
                "latency, 1 pair × 1000 msg/s, QoS 1".to_owned(),
                &[
                    "latency", "-c", "1", "--rate", "1000", "-q", "1", "-d", &d, "-s", "64",
                ],
                vec![
                    lower("p50 latency (µs)", "/latency_us/p50"),
                    lower("p99 latency (µs)", "/latency_us/p99"),
                    lower("max latency (µs)", "/latency_us/max"),
                ],
            ),
            variants: vec![
                Variant::plain(Access::Passwords),
                Variant::storm(Access::Passwords),
            ],
            goal: false,
            rounds: ROUNDS,
            seconds,
        },
    ]
}
/// Runs the section against `brokers` with `client` (`nanomq bench`, also the hasher of
/// the password file), adding the reports to `raw`; returns the rows.
pub(crate) fn run(
    client: &Path,
    brokers: &[Kind],
    sizes: Sizes,
    out_dir: &Path,
    only: &[String],
    raw: &mut Vec<Value>,
) -> Vec<AccessRow> {
    let chosen: Vec<(Group, Vec<Variant>)> = groups(sizes)
        .into_iter()
        .map(|group| {
            let variants = group.selected(only);
            (group, variants)
        })
        .filter(|(_, variants)| !variants.is_empty())
        .collect();
    if chosen.is_empty() {
        return Vec::new();
    }
    let files = match access_files::prepare(client, &out_dir.join("access")) {
        Ok(files) => files,
        Err(e) => {
            println!("note: access-control scenarios skipped: {e:#}");
            return Vec::new();
        }
    };
    let mut rows = Vec::new();
    let mut turn = 0usize;
    for (group, variants) in &chosen {
        let mut outcomes = Vec::new();
        for round in 0..group.rounds {
            // A different order in each round: no run always follows the same one.
            let mut order = variants.clone();
            let shift = round % order.len().max(1);
            order.rotate_left(shift);
            for variant in order {
                let mut kinds: Vec<&Kind> = brokers.iter().collect();
                if turn % 2 == 1 {
                    kinds.reverse();
                }
                turn += 1;
                for kind in kinds {
                    let name = group.name(variant);
                    println!(
                        "==> {name} on {} (round {} of {})",
                        kind.name(),
                        round + 1,
                        group.rounds
                    );
                    let outcome = measure(client, kind, group, variant, &files, out_dir, round);
                    match &outcome.report {
                        Ok(report) => println!("    {}", super::one_line(&group.scenario, report)),
                        Err(e) => println!("    FAILED: {e}"),
                    }
                    if let Some(s) = &outcome.stormed {
                        println!("    {}", storm_note(s));
                    }
                    raw.push(json!({
                        "scenario": name,
                        "round": round + 1,
                        "broker": kind.name(),
                        "report": outcome.report.as_ref().ok(),
                        "error": outcome.report.as_ref().err(),
                        "storm": outcome.stormed.map(|s| json!({
                            "connected": s.connected,
                            "failed": s.failed,
                            "seconds": s.seconds,
                            "rate_per_s": s.rate(),
                        })),
                    }));
                    outcomes.push(outcome);
                }
            }
        }
        rows.extend(group_rows(group, variants, &outcomes));
    }
    rows
}

/// Starts `kind` with `variant`'s access control and runs the group's scenario against it,
/// with a connect storm beside it if the variant says so.
fn measure(
    client: &Path,
    kind: &Kind,
    group: &Group,
    variant: Variant,
    files: &Files,
    out_dir: &Path,
    round: usize,
) -> Outcome {
    let mut stormed = None;
    let report = (|| -> Result<Value> {
        let extra = variant.access.extra(files);
        let dir = out_dir.join(kind.name());
        let mut broker = kind.start_with(&dir, None, &Tuning::default(), &extra)?;
        if !variant.storm {
            return super::bench_on(client, &mut broker, &group.scenario);
        }
        // Long enough to outlast the pair's connecting, publishing and draining.
        let storm = Storm::start(
            client,
            broker.connect_args(Transport::Tcp)?,
            group.seconds + 3,
        );
        // Under way before the measured pair connects.
        std::thread::sleep(Duration::from_millis(500));
        let report = super::bench_on(client, &mut broker, &group.scenario);
        stormed = Some(storm.finish()?);
        report
    })();
    Outcome {
        round,
        variant,
        broker: kind.name(),
        report: report.map_err(|e| format!("{e:#}")),
        stormed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_starts_with_its_baseline_and_every_client_is_a_user() {
        let list = groups(Sizes::default());
        let names: Vec<&str> = list.iter().map(|g| g.scenario.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fan-in 50→1, QoS 1",
                "50 pairs, QoS 1",
                "CONNECT rate, 5,000 connections",
                "latency, 1 pair × 1000 msg/s, QoS 1"
            ]
        );
        for group in &list {
            let args = &group.scenario.args;
            assert!(args.windows(2).any(|w| w == ["-u", "user-%i"]), "{args:?}");
            assert!(args.windows(2).any(|w| w == ["-P", "pw-%i"]), "{args:?}");
        }
        let (fanin, connect, latency) = (&list[0], &list[2], &list[3]);
        assert_eq!(fanin.variants.first(), Some(&Variant::plain(Access::None)));
        assert!(fanin.goal && !connect.goal);
        assert_eq!(
            connect.variants,
            [
                Variant::plain(Access::None),
                Variant::plain(Access::Passwords)
            ]
        );
        // The storm's latency against the same pair alone, with the same password file.
        assert_eq!(latency.variants[0], Variant::plain(Access::Passwords));
        assert_eq!(latency.variants[1], Variant::storm(Access::Passwords));
        assert_eq!(
            fanin.name(Variant::plain(Access::Acl)),
            "access control: fan-in 50→1, QoS 1, 1,000 ACL rules"
        );
    }

    #[test]
    fn only_runs_the_chosen_runs_with_their_baseline() {
        let list = groups(Sizes::default());
        let only = |words: &[&str]| -> Vec<usize> {
            let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
            list.iter().map(|g| g.selected(&words).len()).collect()
        };
        assert_eq!(only(&[]), [3, 3, 2, 2]);
        assert_eq!(only(&["access control"]), [3, 3, 2, 2]);
        assert_eq!(only(&["ACL rules"]), [2, 2, 0, 0]);
        assert_eq!(only(&["connect storm"]), [0, 0, 0, 2]);
        assert_eq!(only(&["pairs, QoS 1, 100,000"]), [0, 2, 0, 0]);
        assert_eq!(only(&["no such run"]), [0, 0, 0, 0]);
    }
}
