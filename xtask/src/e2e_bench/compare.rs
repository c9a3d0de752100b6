//! The rows of the comparison with Mosquitto: each figure of a scenario for both brokers,
//! with its notes (message accounting; for the scenarios compared with a run without what
//! they run beside, the ratio to that run; the slow-subscriber scenario's memory against
//! its bound), and which scenarios a partial run (`--only`) selects.

use serde_json::Value;

use super::output::{self, Row};
use super::scenario::{self, Beside, Scenario};

/// The rows of `scenario`, given the reports of nanomq (`n`) and Mosquitto (`m`), the
/// scenarios run `before` it and their `rows`.
pub(crate) fn rows(
    scenario: &Scenario,
    before: &[Scenario],
    rows: &[Row],
    n: Option<&Value>,
    m: Option<&Value>,
) -> Vec<Row> {
    let mut out = Vec::new();
    let mut notes = [n, m]
        .iter()
        .map(|r| r.map(scenario::integrity).unwrap_or_default())
        .collect::<Vec<_>>();
    if matches!(scenario.beside, Beside::SubscribeFlood(_)) {
        let subacks = |r: Option<&Value>| {
            r.and_then(|r| r.pointer("/flood/subacks"))
                .and_then(Value::as_u64)
                .map_or_else(|| "–".to_owned(), |n| output::number(n as f64))
        };
        notes.push(format!(
            "SUBSCRIBEs answered during the run: nanomq {}, mosquitto {}",
            subacks(n),
            subacks(m)
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
    for metric in &scenario.metrics {
        let (nanomq, mosquitto) = (
            n.and_then(|r| scenario::read(r, metric)),
            m.and_then(|r| scenario::read(r, metric)),
        );
        let mut notes = notes.clone();
        let without = baseline.and_then(|b| {
            rows.iter()
                .find(|r| r.scenario == b.name && r.metric == metric.label)
        });
        if *metric == scenario::RSS_LEFT {
            if let Some(without) = without {
                let beyond = |with: Option<f64>, without: Option<f64>| {
                    with.zip(without)
                        .map_or_else(|| "–".to_owned(), |(w, wo)| format!("{:+.1} MB", w - wo))
                };
                notes.push(format!(
                    "beyond the run without: nanomq {}, mosquitto {}",
                    beyond(nanomq, without.nanomq),
                    beyond(mosquitto, without.mosquitto)
                ));
            }
            if matches!(scenario.beside, Beside::Stalled(_)) {
                let given_back = |r: Option<&Value>| {
                    let get = |p: &str| r.and_then(|r| r.pointer(p)).and_then(Value::as_u64);
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
                };
                notes.push(format!(
                    "given back when the stalled subscriber left: nanomq {}, mosquitto {}",
                    given_back(n),
                    given_back(m)
                ));
                notes.push(scenario::stalled_bound());
            }
        } else if let Some(without) = without {
            notes.push(format!(
                "of the run without: nanomq {}, mosquitto {}",
                ratio(nanomq, without.nanomq),
                ratio(mosquitto, without.mosquitto)
            ));
        }
        out.push(Row {
            scenario: scenario.name.clone(),
            metric: metric.label.to_owned(),
            better: metric.better,
            nanomq,
            mosquitto,
            notes: if notes.iter().all(String::is_empty) {
                String::new()
            } else {
                notes.join("; ")
            },
        });
    }
    out
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
        let (n0, m0) = (report(100.0, 0), report(200.0, 0));
        let without = rows(baseline, &list[..at - 1], &[], Some(&n0), Some(&m0));
        assert_eq!(without.len(), 3);
        assert!(!without[0].notes.contains("of the run without"));
        let (n1, m1) = (report(150.0, 7), report(2_000.0, 3));
        let with = rows(flood, before, &without, Some(&n1), Some(&m1));
        assert_eq!(with[0].nanomq, Some(150.0));
        assert!(
            with[0]
                .notes
                .contains("of the run without: nanomq 1.50×, mosquitto 10.00×"),
            "{}",
            with[0].notes
        );
        assert!(
            with[0]
                .notes
                .contains("answered during the run: nanomq 7.0, mosquitto 3.0")
        );
    }
}
