//! The rows of the main table: each figure of a scenario for every broker of the run, with
//! its notes (message accounting per broker, and why a broker has no figure; for the
//! scenarios compared with a run without what they run beside, the ratio to that run; the
//! slow-subscriber scenario's memory against its bound), and which scenarios a partial run
//! (`--only`) selects.

use serde_json::Value;

use super::output;
use super::scenario::{self, Beside, Scenario};
use super::table::{BROKERS, Row};

/// What one broker of the run gave for a scenario.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome<'a> {
    /// The broker's name (one of [`BROKERS`]).
    pub(crate) broker: &'static str,
    /// Its report, or why there is none (`failed: …`, `failed: …`).
    pub(crate) report: Result<&'a Value, String>,
}

/// The rows of `scenario`, given what each broker of the run gave (`outcomes`; a broker
/// not in the run has none), the scenarios run `before` it and their `rows`.
pub(crate) fn rows(
    scenario: &Scenario,
    before: &[Scenario],
    rows: &[Row],
    outcomes: &[Outcome],
) -> Vec<Row> {
    // In the table's order, whatever order they ran in.
    let ran: Vec<&Outcome> = BROKERS
        .iter()
        .filter_map(|name| outcomes.iter().find(|o| o.broker == *name))
        .collect();
    let report = |name: &str| {
        ran.iter()
            .find(|o| o.broker == name)
            .and_then(|o| o.report.as_ref().ok().copied())
    };
    // One note per broker of the run: `name, for each broker`.
    let each = |say: &dyn Fn(&Outcome) -> String| {
        ran.iter()
            .map(|o| format!("{} {}", o.broker, say(o)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut notes: Vec<String> = ran
        .iter()
        .filter_map(|o| {
            let note = match &o.report {
                Ok(report) => scenario::integrity(report),
                Err(why) => why.clone(),
            };
            (!note.is_empty()).then(|| format!("{} {note}", o.broker))
        })
        .collect();
    if matches!(scenario.beside, Beside::SubscribeFlood(_)) {
        notes.push(format!(
            "SUBSCRIBEs answered during the run: {}",
            each(&|o: &Outcome| {
                o.report
                    .as_ref()
                    .ok()
                    .and_then(|r| r.pointer("/flood/subacks"))
                    .and_then(Value::as_u64)
                    .map_or_else(|| "–".to_owned(), |n| output::number(n as f64))
            })
        ));
    }
    // Compared with the latest run of the same `nanomq bench` without what this one
    // runs beside.
    let baseline = scenario.beside.without().and_then(|without| {
        before
            .iter()
            .rev()
            .find(|s| s.beside == without && s.args == scenario.args)
    });
    let mut out = Vec::new();
    for metric in &scenario.metrics {
        let figure = |name: &str| report(name).and_then(|r| scenario::read(r, metric));
        let mut notes = notes.clone();
        let without = baseline.and_then(|b| {
            rows.iter()
                .find(|r| r.scenario == b.name && r.metric == metric.label)
        });
        if *metric == scenario::RSS_LEFT {
            if let Some(without) = without {
                notes.push(format!(
                    "beyond the run without: {}",
                    each(&|o: &Outcome| {
                        figure(o.broker)
                            .zip(without.figure(o.broker))
                            .map_or_else(|| "–".to_owned(), |(w, wo)| format!("{:+.1} MB", w - wo))
                    })
                ));
            }
            if matches!(scenario.beside, Beside::Stalled(_)) {
                notes.push(format!(
                    "given back when the stalled subscriber left: {}",
                    each(&|o: &Outcome| given_back(o.report.as_ref().ok().copied()))
                ));
                notes.push(scenario::stalled_bound());
            }
        } else if let Some(without) = without {
            notes.push(format!(
                "of the run without: {}",
                each(&|o: &Outcome| ratio(figure(o.broker), without.figure(o.broker)))
            ));
        }
        out.push(Row {
            scenario: scenario.name.clone(),
            metric: metric.label.to_owned(),
            better: metric.better,
            nanomq: figure("nanomq"),
            mosquitto: figure("mosquitto"),
            rumqttd: figure("rumqttd"),
            notes: notes.join("; "),
        });
    }
    out
}

/// What a broker gave back once the stalled subscriber left (from its `rss_left`), and
/// that per message of the bound.
fn given_back(report: Option<&Value>) -> String {
    let get = |p: &str| report.and_then(|r| r.pointer(p)).and_then(Value::as_u64);
    get("/rss_left/held_kib")
        .zip(get("/rss_left/released_kib"))
        .map_or_else(
            || "–".to_owned(),
            |(held, released)| {
                let bytes = (held as f64 - released as f64) * 1024.0;
                format!(
                    "{:.1} MB ({} B per message of the bound)",
                    bytes / 1e6,
                    output::number(bytes / f64::from(scenario::STALLED_BOUND))
                )
            },
        )
}

/// `with / without`, as a note says it.
fn ratio(with: Option<f64>, without: Option<f64>) -> String {
    match (with, without) {
        (Some(w), Some(wo)) if wo > 0.0 => format!("{:.2}×", w / wo),
        _ => "–".to_owned(),
    }
}

/// Whether `--only` (`only`, empty for all) selects the scenario called `name`.
pub(crate) fn chosen(only: &[String], name: &str) -> bool {
    only.is_empty() || only.iter().any(|word| name.contains(word.as_str()))
}

/// The scenarios of `list` that `--only` selects, with the runs they are compared with.
pub(crate) fn select(list: Vec<Scenario>, only: &[String]) -> Vec<Scenario> {
    let keep: Vec<bool> = list
        .iter()
        .map(|s| {
            chosen(only, &s.name)
                || list.iter().any(|other| {
                    chosen(only, &other.name)
                        && other.beside.without() == Some(s.beside)
                        && other.args == s.args
                })
        })
        .collect();
    list.into_iter()
        .zip(keep)
        .filter_map(|(s, keep)| keep.then_some(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e_bench::scenario::{Sizes, all};

    #[test]
    fn only_keeps_the_runs_the_chosen_ones_are_compared_with() {
        let list = all(Sizes::default());
        let names = |only: &[&str]| {
            let only: Vec<String> = only.iter().map(|w| (*w).to_owned()).collect();
            select(list.clone(), &only)
                .into_iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&[]).len(), list.len());
        let stalled = names(&["stalled"]);
        assert_eq!(
            stalled,
            [
                "50 pairs, QoS 1, topics bench/%i",
                "50 pairs, QoS 1, a stalled subscriber on pair 0"
            ]
        );
        let floods = names(&["SUBSCRIBEs of"]);
        assert_eq!(floods.len(), 3, "{floods:?}");
        assert!(
            !floods[0].contains("SUBSCRIBEs"),
            "the baseline first: {floods:?}"
        );
        assert!(names(&["no such scenario"]).is_empty());
    }

    #[test]
    fn a_compared_scenario_s_notes_give_the_ratio_to_its_run_without() {
        let list = all(Sizes::default());
        let at = list
            .iter()
            .position(|s| matches!(s.beside, Beside::SubscribeFlood(_)))
            .unwrap_or_default();
        let (before, flood) = (list.get(..at).unwrap_or_default(), &list[at]);
        let baseline = &list[at - 1];
        let report = |p50: f64, subacks: u64| {
            serde_json::json!({
                "latency_us": {"p50": p50, "p99": p50 * 2.0, "max": p50 * 3.0},
                "flood": {"subacks": subacks},
            })
        };
        let (n0, m0, r0) = (report(100.0, 0), report(200.0, 0), report(50.0, 0));
        let without = rows(
            baseline,
            &list[..at - 1],
            &[],
            &[
                given("nanomq", &n0),
                given("mosquitto", &m0),
                given("rumqttd", &r0),
            ],
        );
        assert_eq!(without.len(), 3);
        assert!(!without[0].notes.contains("of the run without"));
        let (n1, m1, r1) = (report(150.0, 7), report(2_000.0, 3), report(75.0, 9));
        // In the order they ran: the table's order all the same.
        let with = rows(
            flood,
            before,
            &without,
            &[
                given("rumqttd", &r1),
                given("nanomq", &n1),
                given("mosquitto", &m1),
            ],
        );
        assert_eq!(
            (with[0].nanomq, with[0].mosquitto, with[0].rumqttd),
            (Some(150.0), Some(2_000.0), Some(75.0))
        );
        assert!(
            with[0]
                .notes
                .contains("of the run without: nanomq 1.50×, mosquitto 10.00×, rumqttd 1.50×"),
            "{}",
            with[0].notes
        );
        assert!(
            with[0]
                .notes
                .contains("answered during the run: nanomq 7.0, mosquitto 3.0, rumqttd 9.0"),
            "{}",
            with[0].notes
        );
    }

    fn given<'a>(broker: &'static str, report: &'a Value) -> Outcome<'a> {
        Outcome {
            broker,
            report: Ok(report),
        }
    }

    #[test]
    fn a_broker_without_a_figure_says_why_and_one_not_in_the_run_says_nothing() {
        let list = all(Sizes::default());
        let pairs = list
            .iter()
            .find(|s| s.name == "50 pairs, QoS 1")
            .expect("the QoS 1 pairs");
        let report = serde_json::json!({
            "rates": {"received_per_s": 1000.0},
            "messages": {"expected": 10, "lost": 0, "duplicated": 0, "out_of_order": 0},
        });
        let out = rows(
            pairs,
            &[],
            &[],
            &[
                given("nanomq", &report),
                Outcome {
                    broker: "rumqttd",
                    report: Err(
                        "failed: rumqttd did not listen on 127.0.0.1:1 within 15s".to_owned()
                    ),
                },
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].nanomq, out[0].mosquitto, out[0].rumqttd),
            (Some(1000.0), None, None)
        );
        assert_eq!(
            out[0].notes,
            "nanomq lost 0 (0.0%), dup 0, ooo 0; rumqttd failed: rumqttd did not listen on 127.0.0.1:1 within 15s"
        );
    }
}
