//! The Prometheus-scrape section of the end-to-end suite (nanomq only): QoS 1 pairs against a
//! broker with its admin API enabled, once with a scraper fetching `/metrics` every
//! [`INTERVAL`] (150× the usual 15 s) and once without, so that only the scraping differs.
//! The wall-clock figure is delivered msg/s with scraping over the same round's without; each
//! round runs both, in alternating order, and the row is the median round of [`ROUNDS`]. On
//! the shared 2-core machine one round's ratio moves by 10–30%, far more than the 1% sought:
//! the row says so when its rounds spread wider than that, and gives beside it the broker's
//! CPU time per delivered message, with over without.
//!
//! The goal (a cost under 1 − [`GOAL`]) is judged on instructions instead ([`instructions`]):
//! callgrind counts what the broker runs per scrape and per delivered message, whatever the
//! neighbours do, and the cost is the scrapes' share of what the broker runs each second at
//! the rate the wall-clock runs measured without scraping.
//!
//! The scraper ([`scraper`]) is a thread doing HTTP/1.1 GETs over `std::net::TcpStream`,
//! one connection each (`Connection: close`: a new connection is the dearer case for the
//! broker), with `Authorization: Bearer` [`API_KEY`], at a fixed rate (ticks from its start,
//! not sleeps after each answer). Each answer must be a 200 whose body has
//! `nanomq_connections_count`; any other answer makes the run fail: a failed scrape is never
//! a figure. It counts the scrapes and their latency (connect to the last byte).

mod instructions;
mod scraper;
mod table;

pub(crate) use self::table::markdown;

use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use self::instructions::Counted;
use self::scraper::{Scraper, Scrapes};
use super::broker::{Extra, Kind, Running, Transport, Tuning};
use super::scenario::{Beside, RECEIVED_RATE, Scenario, Sizes};
use super::{compare, output};

/// How often the scraper fetches `/metrics`.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// Rounds of the section.
const ROUNDS: usize = 3;

/// The ratio to the run without scraping the row should reach.
pub(crate) const GOAL: f64 = 0.99;

/// The bearer key the broker accepts and the scraper sends (16+ characters).
const API_KEY: &str = "bench-scrape-key-0123456789";

/// How long the broker may take to log its API's address.
const API_TIMEOUT: Duration = Duration::from_secs(15);

/// The address of the `admin API listening on http://IP:PORT` log line.
fn api_addr(log: &str) -> Option<SocketAddr> {
    let rest = log.split("admin API listening on http://").nth(1)?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    addr.parse().ok()
}

/// Waits for `broker` to log its API's address.
fn wait_for_api(broker: &mut Running) -> Result<SocketAddr> {
    let deadline = Instant::now() + API_TIMEOUT;
    loop {
        if let Some(addr) = api_addr(&broker.log_tail()) {
            return Ok(addr);
        }
        if !broker.is_alive() || Instant::now() > deadline {
            bail!(
                "nanomq did not log its admin API's address within {API_TIMEOUT:?}:\n{}",
                broker.log_tail()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The `[http_server]` both runs get.
fn api_config() -> String {
    format!("\n[http_server]\nenabled = true\nbind = \"127.0.0.1:0\"\napi_keys = [\"{API_KEY}\"]\n")
}

/// The scenario: the suite's QoS 1 pairs, its name naming the scraping (for `--only`).
fn scenario(sizes: Sizes) -> Scenario {
    let c = sizes.clients.to_string();
    let d = format!("{}s", sizes.seconds);
    Scenario {
        name: format!(
            "{c} pairs, QoS 1, a Prometheus scrape of /metrics every {} ms",
            INTERVAL.as_millis()
        ),
        args: ["pairs", "-c", &c, "-q", "1", "-d", &d, "-s", "64"]
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        metrics: vec![RECEIVED_RATE],
        rss: false,
        timeout: Duration::from_secs(sizes.seconds + 60),
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside: Beside::Nothing,
    }
}

/// One run: with scraping or without, in which round, and what it measured.
#[derive(Debug, Clone)]
struct Outcome {
    round: usize,
    scraped: bool,
    result: Result<Measured, String>,
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Measured {
    /// Delivered msg/s.
    rate: f64,
    /// The broker's CPU time (user and system) from after its start to the end of the
    /// pairs, µs per delivered message; `None` where `/proc` cannot tell.
    cpu_us_per_msg: Option<f64>,
    /// The scrapes, when scraped.
    scrapes: Option<Scrapes>,
}

/// The section's row: the median round of the ratios.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScrapeRow {
    pub(crate) scenario: String,
    /// msg/s with scraping, in the median round.
    pub(crate) rate: Option<f64>,
    /// msg/s without, in that round.
    pub(crate) baseline_rate: Option<f64>,
    /// The median round's ratio.
    pub(crate) ratio: Option<f64>,
    /// Every round's ratio.
    pub(crate) rounds: Vec<Option<f64>>,
    /// The median round's scrapes.
    pub(crate) scrapes: Option<Scrapes>,
    /// The median of the rounds' ratios of broker CPU per delivered message, with scraping
    /// over without (less moved by the neighbours' load than msg/s is).
    pub(crate) cpu_ratio: Option<f64>,
    /// Every round's CPU ratio.
    pub(crate) cpu_rounds: Vec<Option<f64>>,
    /// The broker's instructions in the counted runs, when they ran.
    pub(crate) counted: Option<Counted>,
    /// The scrapes' share of the broker's instructions at [`Self::baseline_rate`] and one
    /// scrape every [`INTERVAL`] (the goal's figure).
    pub(crate) cost: Option<f64>,
    /// Failures, or nothing.
    pub(crate) notes: String,
}

/// Runs the section if `only` selects it, adding each run to `raw`; returns its rows.
pub(crate) fn run(
    nanomq: &Path,
    sizes: Sizes,
    out_dir: &Path,
    only: &[String],
    raw: &mut Vec<Value>,
) -> Vec<ScrapeRow> {
    let scenario = scenario(sizes);
    if !compare::chosen(only, &scenario.name) {
        return Vec::new();
    }
    let kind = Kind::Nanomq(nanomq.to_path_buf());
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        // Alternating order: neither run always goes first.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for scraped in order {
            let label = if scraped { "with scraping" } else { "without" };
            println!(
                "==> {}: {label} on nanomq (round {} of {ROUNDS})",
                scenario.name,
                round + 1
            );
            let result = measure(nanomq, &kind, &scenario, out_dir, scraped);
            let result = result.map_err(|e| format!("{e:#}"));
            match &result {
                Ok((m, report)) => {
                    let mut line = super::one_line(&scenario, report);
                    if let Some(cpu) = m.cpu_us_per_msg {
                        line.push_str(&format!(", broker CPU {cpu:.2} µs/msg"));
                    }
                    if let Some(s) = &m.scrapes {
                        line.push_str(&format!(", {}", scrapes_note(s)));
                    }
                    println!("    {line}");
                }
                Err(e) => println!("    FAILED: {e}"),
            }
            raw.push(json!({
                "scenario": scenario.name,
                "run": label,
                "round": round + 1,
                "broker": kind.name(),
                "report": result.as_ref().ok().map(|(_, report)| report),
                "broker_cpu_us_per_msg": result.as_ref().ok().and_then(|(m, _)| m.cpu_us_per_msg),
                "scrapes": result.as_ref().ok().and_then(|(m, _)| m.scrapes.as_ref()).map(|s| json!({
                    "done": s.latencies_ms.len(),
                    "expected": s.expected(),
                    "p50_ms": s.p50_ms(),
                    "max_ms": s.max_ms(),
                    "seconds": s.seconds,
                })),
                "error": result.as_ref().err(),
            }));
            outcomes.push(Outcome {
                round,
                scraped,
                result: result.map(|(m, _)| m),
            });
        }
    }
    let mut row = row(&scenario.name, &outcomes);
    count(nanomq, sizes, out_dir, &mut row, raw);
    vec![row]
}

/// Adds the counted runs' instructions, and the cost they give at the row's rate, to `row`.
fn count(nanomq: &Path, sizes: Sizes, out_dir: &Path, row: &mut ScrapeRow, raw: &mut Vec<Value>) {
    let counted = match instructions::measure(nanomq, sizes.clients, out_dir) {
        Ok(counted) => counted,
        Err(e) => {
            let e = format!("{e:#}");
            println!("    FAILED: {e}");
            let failed = format!(
                "instructions: failed: {}",
                e.lines().next().unwrap_or_default()
            );
            row.notes = [row.notes.as_str(), failed.as_str()]
                .iter()
                .filter(|n| !n.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("; ");
            raw.push(json!({"scenario": row.scenario, "run": "instructions", "error": e}));
            return;
        }
    };
    let hz = 1.0 / INTERVAL.as_secs_f64();
    row.cost = row.baseline_rate.and_then(|rate| counted.cost_at(rate, hz));
    println!(
        "    {:.0} instructions per scrape (± {:.0}), {:.0} per delivered message: at {} msg/s \
         and {hz:.0} Hz, {}",
        counted.per_scrape(),
        counted.per_scrape_noise(),
        counted.per_message(),
        row.baseline_rate
            .map_or_else(|| "–".to_owned(), output::number),
        row.cost.map_or_else(|| "–".to_owned(), percent)
    );
    raw.push(json!({
        "scenario": row.scenario,
        "run": "instructions",
        "idle": counted.idle,
        "pairs": counted.pairs,
        "delivered": counted.delivered,
        "held": counted.held,
        "scraped": counted.scraped,
        "scrapes": counted.scrapes,
        "per_scrape": counted.per_scrape(),
        "per_scrape_noise": counted.per_scrape_noise(),
        "per_message": counted.per_message(),
        "cost": row.cost,
    }));
    row.counted = Some(counted);
}

/// A share as a percentage.
fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// Starts nanomq with the API, runs the pairs (beside a scraper if `scraped`), and returns
/// what it measured and the report.
fn measure(
    client: &Path,
    kind: &Kind,
    scenario: &Scenario,
    out_dir: &Path,
    scraped: bool,
) -> Result<(Measured, Value)> {
    let extra = Extra {
        nanomq: api_config(),
        ..Extra::default()
    };
    let dir = out_dir.join(kind.name());
    let mut broker = kind.start_with(&dir, None, &Tuning::default(), &extra)?;
    let api = wait_for_api(&mut broker)?;
    let before = broker.cpu_seconds();
    let scraper = scraped.then(|| Scraper::start(api, API_KEY, INTERVAL));
    let report = super::bench_on(client, &mut broker, scenario);
    let scrapes = scraper.map(Scraper::finish).transpose()?;
    let cpu = broker
        .cpu_seconds()
        .zip(before)
        .map(|(after, before)| after - before);
    let report = report?;
    if let Some(first) = scrapes.as_ref().and_then(|s| s.failures.first()) {
        let failed = scrapes.as_ref().map_or(0, |s| s.failures.len());
        bail!("{failed} scrape(s) failed, first: {first}");
    }
    let Some(rate) = super::scenario::read(&report, &RECEIVED_RATE) else {
        bail!("the report has no delivered rate");
    };
    let delivered = report.pointer("/messages/received").and_then(Value::as_f64);
    let cpu_us_per_msg = cpu
        .zip(delivered.filter(|n| *n > 0.0))
        .map(|(cpu, n)| cpu * 1e6 / n);
    let measured = Measured {
        rate,
        cpu_us_per_msg,
        scrapes,
    };
    Ok((measured, report))
}

/// What a run's scrapes say.
fn scrapes_note(s: &Scrapes) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms"));
    format!(
        "{} scrapes of {} at 10 Hz, p50 {}, max {}",
        s.latencies_ms.len(),
        s.expected(),
        ms(s.p50_ms()),
        ms(s.max_ms())
    )
}

/// The row from every round's `outcomes`.
fn row(scenario: &str, outcomes: &[Outcome]) -> ScrapeRow {
    let find = |scraped: bool, round: usize| {
        outcomes
            .iter()
            .find(|o| o.scraped == scraped && o.round == round)
            .and_then(|o| o.result.as_ref().ok())
    };
    let rounds = outcomes.iter().map(|o| o.round).max().map_or(0, |r| r + 1);
    let ratio_of = |figure: fn(&Measured) -> Option<f64>| -> Vec<Option<f64>> {
        (0..rounds)
            .map(|round| {
                let with = find(true, round).and_then(figure);
                let without = find(false, round).and_then(figure);
                match (with, without) {
                    (Some(w), Some(b)) if b > 0.0 => Some(w / b),
                    _ => None,
                }
            })
            .collect()
    };
    let ratios = ratio_of(|m| Some(m.rate));
    let cpu_rounds = ratio_of(|m| m.cpu_us_per_msg);
    let mut cpu_sorted: Vec<f64> = cpu_rounds.iter().copied().flatten().collect();
    cpu_sorted.sort_by(f64::total_cmp);
    let cpu_ratio = (cpu_sorted.len() == rounds)
        .then(|| cpu_sorted.get(rounds / 2).copied())
        .flatten();
    // The median round by ratio; a round without one sorts first.
    let mut order: Vec<usize> = (0..rounds).collect();
    let key = |i: usize| {
        ratios
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(f64::NEG_INFINITY)
    };
    order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
    let median = order.get(order.len() / 2).copied().unwrap_or(0);
    // A failure in any round is reported: a failure is never a figure.
    let notes: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.result.as_ref().err().map(|e| {
                format!(
                    "round {}, {}: failed: {}",
                    o.round + 1,
                    if o.scraped {
                        "with scraping"
                    } else {
                        "without"
                    },
                    e.lines().next().unwrap_or_default()
                )
            })
        })
        .collect();
    // On a shared machine the rounds may differ by more than the cost sought: said, so that
    // a ratio over the goal is not read as a cost measured under 1%.
    let mut notes = notes;
    let spread: Vec<f64> = ratios.iter().copied().flatten().collect();
    let low = spread.iter().copied().reduce(f64::min);
    let high = spread.iter().copied().reduce(f64::max);
    if let (Some(low), Some(high)) = (low, high)
        && high - low > 2.0 * (1.0 - GOAL)
    {
        notes.push(format!(
            "rounds spread {low:.2}×–{high:.2}×, more than the goal's {:.0}% margin: noise, \
             not a cost resolved to 1%",
            (1.0 - GOAL) * 100.0
        ));
    }
    ScrapeRow {
        scenario: scenario.to_owned(),
        rate: find(true, median).map(|m| m.rate),
        baseline_rate: find(false, median).map(|m| m.rate),
        ratio: ratios.get(median).copied().flatten(),
        rounds: ratios,
        scrapes: find(true, median).and_then(|m| m.scrapes.clone()),
        cpu_ratio,
        cpu_rounds,
        counted: None,
        cost: None,
        notes: notes.join("; "),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn the_api_line_gives_the_address() {
        let log = "x\n\u{1b}[32m INFO\u{1b}[0m nanomq: admin API listening on \
                   http://127.0.0.1:40123\u{1b}[0m\ny";
        assert_eq!(api_addr(log), "127.0.0.1:40123".parse().ok());
        assert_eq!(api_addr("listening on tcp://127.0.0.1:5"), None);
        assert!(api_config().contains("api_keys = [\"bench-scrape-key-0123456789\"]"));
        assert!(scenario(Sizes::default()).name.contains("scrape"));
    }

    #[test]
    fn the_row_is_the_median_round_of_the_ratios() {
        let scrapes = |n: usize| Scrapes {
            latencies_ms: vec![1.0; n],
            failures: Vec::new(),
            seconds: 6.0,
            interval: INTERVAL,
        };
        let run = |round, scraped, rate: f64| Outcome {
            round,
            scraped,
            result: Ok(Measured {
                rate,
                cpu_us_per_msg: Some(if scraped { 2.2 } else { 2.0 }),
                scrapes: scraped.then(|| scrapes(round + 60)),
            }),
        };
        let outcomes = [
            run(0, false, 100.0),
            run(0, true, 98.0),
            run(1, true, 101.0),
            run(1, false, 100.0),
            run(2, false, 100.0),
            Outcome {
                round: 2,
                scraped: true,
                result: Err("boom".to_owned()),
            },
        ];
        let row = row("s", &outcomes);
        assert_eq!(row.rounds, [Some(0.98), Some(1.01), None]);
        assert_eq!(row.ratio, Some(0.98));
        assert_eq!(row.scrapes.as_ref().map(|s| s.latencies_ms.len()), Some(60));
        assert!(row.notes.contains("round 3, with scraping: failed: boom"));
        assert!(
            row.notes.contains("rounds spread 0.98×–1.01×"),
            "{}",
            row.notes
        );
        let table = markdown(std::slice::from_ref(&row));
        assert!(table.contains("| 0.980× | 0.980×, 1.010×, – |"), "{table}");
        assert!(table.contains("| – | – | – | – | < 1.00% ? |"), "{table}");
        // The goal is judged on the counted cost.
        let mut counted = row.clone();
        counted.counted = Some(Counted {
            idle: 100_000_000,
            pairs: 1_100_000_000,
            delivered: 20_000,
            held: [200_000_000, 200_000_000],
            scraped: 300_000_000,
            scrapes: 200,
        });
        counted.cost = Some(0.004);
        let table = markdown(&[counted.clone()]);
        assert!(
            table.contains("| 200 scrapes | 500,000 ± 0.0 | 50,000 | 10.0 messages | 0.40% (at 100 msg/s) | < 1.00% ✓ |"),
            "{table}"
        );
        counted.cost = Some(0.012);
        assert!(markdown(&[counted]).contains("| < 1.00% ⚠ missed |"));
        // A round without its CPU figure: no median of the others.
        assert_eq!(row.cpu_rounds[0].map(|r| (r * 100.0).round()), Some(110.0));
        assert_eq!(row.cpu_ratio, None);
    }
}
