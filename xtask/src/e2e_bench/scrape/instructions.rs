//! The scrape's cost counted in instructions, which the neighbours' load does not move:
//! nanomq under `valgrind --tool=callgrind` (every thread, the whole run), the API on, in
//! five runs on fresh brokers:
//!
//! - idle: started, stopped once its API listens (start-up and shut-down alone);
//! - pairs: the QoS 1 pairs with a fixed count of messages per publisher;
//! - held, twice: as many idle connections as the pairs have, held for [`HOLD`];
//! - scraped, between the two: the same, beside a scraper fetching `/metrics` back to back
//!   (a new connection each, as in the wall-clock runs).
//!
//! Per scrape: (scraped − the held runs' mean) / scrapes, give or take the held runs'
//! difference / scrapes. The scrapes are counted beside idle connections rather than beside
//! the pairs because the pairs' own count moves by up to 10% between runs (how their
//! messages batch depends on timing), which would bury a scrape; what a scrape renders does
//! not depend on traffic (every figure is a counter or a count the broker keeps, no series
//! per client). Per delivered message: (pairs − idle) / delivered. At a rate of R msg/s, a
//! scrape every 100 ms adds 10 × per-scrape instructions to the R × per-message the broker
//! runs each second: that share is what scraping takes from its throughput where the broker
//! is CPU-bound, the pairs' case on this machine.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;

use super::scraper::Scraper;
use super::{API_KEY, api_config, wait_for_api};
use crate::e2e_bench::broker::{Kind, Transport, Tuning};
use crate::e2e_bench::callgrind;
use crate::e2e_bench::scenario::{Beside, Scenario};

/// Messages per publisher in the counted runs (50 pairs: 100,000 messages, some 10 s under
/// callgrind).
const COUNT: u64 = 2_000;

/// How often the scraper of the counted run fetches `/metrics`: far more often than in the
/// wall-clock runs, so that the scrapes' instructions stand well clear of the held runs'
/// variation. Under callgrind a scrape takes longer than this (some 150 ms), so the scraper
/// goes back to back.
const SCRAPE_EVERY: Duration = Duration::from_millis(20);

/// How long the held runs hold their connections.
const HOLD: Duration = Duration::from_secs(15);

/// The instructions nanomq ran in each counted run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Counted {
    /// Start-up and shut-down alone.
    pub(crate) idle: u64,
    /// The pairs.
    pub(crate) pairs: u64,
    /// Messages the pairs delivered.
    pub(crate) delivered: u64,
    /// Idle connections held, without scraping, twice.
    pub(crate) held: [u64; 2],
    /// The same beside the scraper.
    pub(crate) scraped: u64,
    /// The scrapes answered in the scraped run.
    pub(crate) scrapes: usize,
}

impl Counted {
    fn held_mean(&self) -> f64 {
        self.held.iter().map(|&n| n as f64).sum::<f64>() / self.held.len() as f64
    }

    /// Instructions per scrape.
    pub(crate) fn per_scrape(&self) -> f64 {
        (self.scraped as f64 - self.held_mean()) / self.scrapes.max(1) as f64
    }

    /// How far [`Self::per_scrape`] may be off by the held runs' own variation.
    pub(crate) fn per_scrape_noise(&self) -> f64 {
        self.held[0].abs_diff(self.held[1]) as f64 / self.scrapes.max(1) as f64
    }

    /// Instructions per delivered message.
    pub(crate) fn per_message(&self) -> f64 {
        self.pairs.saturating_sub(self.idle) as f64 / self.delivered.max(1) as f64
    }

    /// The share of the broker's instructions at `rate` msg/s that scraping `hz` times a
    /// second adds, counting the per-scrape figure at its upper bound.
    pub(crate) fn cost_at(&self, rate: f64, hz: f64) -> Option<f64> {
        let per_second = rate * self.per_message();
        (per_second > 0.0)
            .then(|| hz * (self.per_scrape() + self.per_scrape_noise()).max(0.0) / per_second)
    }
}

/// What one counted run ran and delivered.
struct Run {
    instructions: u64,
    delivered: u64,
    /// Scrapes answered (none without a scraper).
    scrapes: usize,
}

/// What a counted run does once the broker's API listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Nothing: the broker is stopped at once.
    Nothing,
    /// The pairs.
    Pairs,
    /// Idle connections held, beside a scraper if `scraped`.
    Held { scraped: bool },
}

/// The counted runs, their profiles in `out_dir`.
pub(crate) fn measure(nanomq: &Path, clients: usize, out_dir: &Path) -> Result<Counted> {
    callgrind::ensure_valgrind()?;
    let dir = out_dir.join("callgrind");
    let counted = |label: &str, load: Load| run(nanomq, &dir, label, clients, load);
    let idle = counted("idle", Load::Nothing)?;
    let pairs = counted("pairs", Load::Pairs)?;
    let first = counted("held-1", Load::Held { scraped: false })?;
    let scraped = counted("held-scraped", Load::Held { scraped: true })?;
    let second = counted("held-2", Load::Held { scraped: false })?;
    Ok(Counted {
        idle: idle.instructions,
        pairs: pairs.instructions,
        delivered: pairs.delivered,
        held: [first.instructions, second.instructions],
        scraped: scraped.instructions,
        scrapes: scraped.scrapes,
    })
}

/// One run named `label`: nanomq under callgrind with `load` (`clients` pairs, or twice as
/// many idle connections).
fn run(nanomq: &Path, dir: &Path, label: &str, clients: usize, load: Load) -> Result<Run> {
    let profile = dir.join(format!("{label}.callgrind"));
    println!("==> scrape cost in instructions: {label} run of nanomq under callgrind");
    let kind = Kind::Nanomq(nanomq.to_path_buf());
    let mut broker = callgrind::start(&kind, &dir.join(label), &profile, api_config())?;
    let api = wait_for_api(&mut broker)?;
    let (delivered, scrapes) = match load {
        Load::Nothing => (0, 0),
        Load::Pairs => {
            let report = crate::e2e_bench::bench_on(nanomq, &mut broker, &pairs(clients))?;
            (callgrind::all_delivered(&report)?, 0)
        }
        Load::Held { scraped } => {
            let scraper = scraped.then(|| Scraper::start(api, API_KEY, SCRAPE_EVERY));
            let report = crate::e2e_bench::bench_on(nanomq, &mut broker, &held(clients * 2));
            let scrapes = scraper.map(Scraper::finish).transpose()?;
            held_all(&report?, clients * 2)?;
            if let Some(first) = scrapes.as_ref().and_then(|s| s.failures.first()) {
                let failed = scrapes.as_ref().map_or(0, |s| s.failures.len());
                bail!("{failed} scrape(s) failed, first: {first}");
            }
            (0, scrapes.map_or(0, |s| s.latencies_ms.len()))
        }
    };
    let instructions = callgrind::stop_and_count(&mut broker, &profile)?;
    println!("    {instructions} instructions, {delivered} messages delivered, {scrapes} scrapes");
    Ok(Run {
        instructions,
        delivered,
        scrapes,
    })
}

/// The held runs' connections: `connections` idle clients with a long keep alive, held for
/// [`HOLD`].
fn held(connections: usize) -> Scenario {
    let c = connections.to_string();
    let d = format!("{}s", HOLD.as_secs());
    Scenario {
        name: format!("{c} idle connections under callgrind"),
        args: ["conn", "-c", &c, "-d", &d, "-k", "600"]
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        metrics: Vec::new(),
        rss: false,
        timeout: HOLD + Duration::from_secs(300),
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside: Beside::Nothing,
    }
}

/// Checks that a held run held every connection it asked for.
fn held_all(report: &Value, connections: usize) -> Result<()> {
    let connected = report
        .pointer("/connections/connected")
        .and_then(Value::as_u64);
    if connected != Some(connections as u64) {
        bail!("a held run must hold all {connections} connections: it held {connected:?}");
    }
    Ok(())
}

/// The pairs of a counted run: every publisher sends [`COUNT`] messages.
fn pairs(clients: usize) -> Scenario {
    let (c, n) = (clients.to_string(), COUNT.to_string());
    let name = format!("{c} pairs, QoS 1, {n} messages each, under callgrind");
    callgrind::scenario(name, &["pairs", "-c", &c, "-q", "1", "-n", &n])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn the_cost_is_the_scrapes_share_of_the_instructions_per_second() {
        let counted = Counted {
            idle: 100_000_000,
            pairs: 1_102_000_000,
            delivered: 20_000,
            held: [200_000_000, 204_000_000],
            scraped: 302_000_000,
            scrapes: 200,
        };
        // (302 M − 202 M) / 200 = 500 k per scrape, ± 4 M / 200 = 20 k.
        assert_eq!(counted.per_scrape(), 500_000.0);
        assert_eq!(counted.per_scrape_noise(), 20_000.0);
        // (1,102 M − 100 M) / 20,000 = 50,100 per message.
        assert_eq!(counted.per_message(), 50_100.0);
        // 10 × 520 k / (100,000 msg/s × 50,100) = 0.1038%.
        let cost = counted.cost_at(100_000.0, 10.0).unwrap();
        assert!((cost - 0.001_038).abs() < 1e-6, "{cost}");
        assert_eq!(counted.cost_at(0.0, 10.0), None);
    }

    #[test]
    fn a_held_run_must_hold_every_connection() {
        let held = |n: u64| serde_json::json!({"connections": {"connected": n}});
        assert!(held_all(&held(100), 100).is_ok());
        assert!(held_all(&held(99), 100).is_err());
    }
}
