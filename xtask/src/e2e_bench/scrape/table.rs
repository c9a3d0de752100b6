//! The Prometheus-scrape section's Markdown: the wall-clock rounds, then the counted
//! instructions and the cost they give, which the goal is judged on.

use std::fmt::Write as _;

use super::scraper::{EXPECTED_METRIC, Scrapes};
use super::{GOAL, INTERVAL, ROUNDS, ScrapeRow, percent};
use crate::e2e_bench::output;

/// The section's Markdown tables.
pub(crate) fn markdown(rows: &[ScrapeRow]) -> String {
    let mut out = String::from(
        "| scenario | msg/s without | msg/s with scraping | ratio | each round | \
         broker CPU/msg ratio | each round | scrapes | scrape p50 | scrape max | notes |\n\
         |---|---:|---:|---:|---|---:|---|---:|---:|---:|---|\n",
    );
    let times = |r: f64| format!("{r:.3}×");
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), output::number);
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms"));
    for row in rows {
        let ratio = row.ratio.map_or_else(|| "–".to_owned(), times);
        let each = |list: &[Option<f64>]| {
            list.iter()
                .map(|r| r.map_or_else(|| "–".to_owned(), times))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rounds = each(&row.rounds);
        let cpu = row.cpu_ratio.map_or_else(|| "–".to_owned(), times);
        let cpu_rounds = each(&row.cpu_rounds);
        let s = row.scrapes.as_ref();
        let scrapes = s.map_or_else(
            || "–".to_owned(),
            |s| format!("{} of {}", s.latencies_ms.len(), s.expected()),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {rounds} | {cpu} | {cpu_rounds} | {scrapes} | {} | {} | \
             {} |",
            row.scenario,
            cell(row.baseline_rate),
            cell(row.rate),
            ms(s.and_then(Scrapes::p50_ms)),
            ms(s.and_then(Scrapes::max_ms)),
            row.notes
        );
    }
    out.push_str(
        "\n| counted under callgrind | instructions per scrape | per delivered message | \
         a scrape costs as much as | cost of a scrape every 100 ms at the rate without | goal |\n\
         |---|---:|---:|---:|---:|---|\n",
    );
    let limit = 1.0 - GOAL;
    for row in rows {
        let Some(counted) = &row.counted else {
            let _ = writeln!(
                out,
                "| {} | – | – | – | – | < {} ? |",
                row.scenario,
                percent(limit)
            );
            continue;
        };
        let goal = match row.cost {
            Some(cost) if cost < limit => format!("< {} ✓", percent(limit)),
            Some(_) => format!("< {} ⚠ missed", percent(limit)),
            None => format!("< {} ?", percent(limit)),
        };
        let cost = row.cost.map_or_else(
            || "–".to_owned(),
            |cost| format!("{} (at {} msg/s)", percent(cost), cell(row.baseline_rate)),
        );
        let _ = writeln!(
            out,
            "| {} scrapes | {} ± {} | {} | {:.1} messages | {cost} | {goal} |",
            counted.scrapes,
            output::number(counted.per_scrape()),
            output::number(counted.per_scrape_noise()),
            output::number(counted.per_message()),
            counted.per_scrape() / counted.per_message(),
        );
    }
    let _ = write!(
        out,
        "\nnanomq with `[http_server]` enabled (a bearer key) in every run, so that only the \
         scraping differs. Scraping: a thread doing an HTTP/1.1 GET of /metrics every {} ms \
         (150× Prometheus's usual 15 s), a new connection each, `Authorization: Bearer`; \
         every answer must be a 200 with {EXPECTED_METRIC} (any other fails the run). Scrapes: \
         done, of the ticks at 10 Hz over the time the scraper ran (from before the pairs \
         connect to after they finish); latency from connect to the last byte. Broker CPU/msg: \
         its CPU time (user and system, /proc) from after its start to the end of the pairs per \
         delivered message, with scraping over without. Each wall-clock row is the median of \
         {ROUNDS} rounds of the ratio to the same round's run without, the order alternating \
         (the CPU ratio its own median); scrapes and latency are the median round's.\n\n\
         Counted: the broker's instructions (callgrind, every thread, the whole run) in five \
         runs of fresh brokers: idle (started and stopped); the pairs with a fixed count of QoS \
         1 messages; as many idle connections held twice without scraping and once between \
         them beside a scraper going back to back (the pairs' own count moves by up to 10% \
         between runs, which would bury the scrapes; what a scrape renders does not depend on \
         traffic). Per scrape: the scraped run over the held runs' mean, per scrape, ± their \
         difference per scrape; per message: the pairs less idle, per delivered message. \
         Cost: 10 scrapes a second (at the upper bound) as a share of the \
         instructions the broker runs each second at the wall-clock rate without scraping; \
         what scraping takes from the throughput of a CPU-bound broker.\n",
        INTERVAL.as_millis()
    );
    out
}
