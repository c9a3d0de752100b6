//! The results as a Markdown table (nanomq, Mosquitto, and the ratio nanomq/Mosquitto) and
//! as an SVG bar chart, written by hand: two bars per figure, scaled to the larger of the
//! two, each labelled with its value. The transport scenarios get a table of their own
//! (nanomq only, each transport's throughput relative to plain TCP in the same run), and so
//! do the persistence scenarios (nanomq only, each store's acknowledged rate relative to
//! in-memory sessions in the same run, against the targets of the issue).

use std::fmt::Write as _;

use super::cpu::Cores;
use super::scenario::Better;

/// One line of the table: a figure of a scenario for each broker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// The scenario.
    pub(crate) scenario: String,
    /// The figure.
    pub(crate) metric: String,
    /// Which way is better.
    pub(crate) better: Better,
    /// nanomq's figure.
    pub(crate) nanomq: Option<f64>,
    /// Mosquitto's figure (`None`: not run, or failed).
    pub(crate) mosquitto: Option<f64>,
    /// Message accounting notes per broker.
    pub(crate) notes: String,
}

impl Row {
    /// nanomq / mosquitto.
    pub(crate) fn ratio(&self) -> Option<f64> {
        match (self.nanomq, self.mosquitto) {
            (Some(n), Some(m)) if m != 0.0 => Some(n / m),
            _ => None,
        }
    }

    /// Whether nanomq did worse than Mosquitto here, by more than 2 % (noise).
    pub(crate) fn nanomq_behind(&self) -> bool {
        self.ratio().is_some_and(|r| match self.better {
            Better::Higher => r < 0.98,
            Better::Lower => r > 1.02,
        })
    }
}

/// One line of the transports table: a scenario over one transport (nanomq only).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TransportRow {
    /// The scenario.
    pub(crate) scenario: String,
    /// The transport's name.
    pub(crate) transport: &'static str,
    /// Delivered messages per second.
    pub(crate) rate: Option<f64>,
    /// The same scenario's rate over TCP in this run.
    pub(crate) tcp: Option<f64>,
    /// Message accounting notes, or the error.
    pub(crate) notes: String,
}

impl TransportRow {
    /// rate / TCP's rate.
    pub(crate) fn ratio(&self) -> Option<f64> {
        match (self.rate, self.tcp) {
            (Some(r), Some(t)) if t != 0.0 => Some(r / t),
            _ => None,
        }
    }
}

/// The Markdown table of the transport scenarios.
pub(crate) fn transports_markdown(rows: &[TransportRow]) -> String {
    let mut out = String::from(
        "| scenario | transport | msg/s delivered ↑ | relative to tcp | messages |\n\
         |---|---|---:|---:|---|\n",
    );
    for row in rows {
        let ratio = row
            .ratio()
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {} |",
            row.scenario,
            row.transport,
            cell(row.rate),
            row.notes
        );
    }
    out.push_str(
        "\nnanomq alone, each transport's throughput relative to plain TCP in the same run: \
         ws is MQTT over WebSocket, ssl is MQTT over TLS (mqtts://), wss is WebSocket over \
         TLS; TLS with a self-signed P-256 certificate.\n",
    );
    out
}

/// Persistence targets: `sync = "periodic"` at least this fraction of in-memory.
pub(crate) const PERIODIC_TARGET: f64 = 0.8;
/// Persistence targets: `sync = "always"` at least this many acknowledged messages per
/// second.
pub(crate) const ALWAYS_TARGET: f64 = 50_000.0;

/// One line of the persistence table: the scenario with one store (nanomq only).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PersistenceRow {
    /// The scenario.
    pub(crate) scenario: String,
    /// The store's name (`in-memory`, `periodic`, `always`).
    pub(crate) store: &'static str,
    /// Acknowledged messages per second.
    pub(crate) rate: Option<f64>,
    /// The in-memory rate in this run.
    pub(crate) memory: Option<f64>,
    /// Cores in use while publishing.
    pub(crate) cores: Option<Cores>,
    /// From the end of publishing to the last delivery, seconds.
    pub(crate) drain_s: Option<f64>,
    /// The database (with its WAL) after the run, bytes.
    pub(crate) database_bytes: Option<u64>,
    /// Message accounting notes, or the error.
    pub(crate) notes: String,
    /// Every round's figure, in order, for a row that is a median: its rate for in-memory,
    /// its ratio to the same round's in-memory rate otherwise.
    pub(crate) rounds: Vec<Option<f64>>,
}

/// The store name of the in-memory rows, the baseline.
const MEMORY: &str = "in-memory";

/// How many times the persistence scenarios run, alternating the stores: the table shows
/// each store's median round. One round's ratio moves by ±10% on a shared 2-core machine.
pub(crate) const PERSISTENCE_ROUNDS: usize = 3;

/// Each store's median round among `rows` (every round's rows, each with its round's
/// in-memory rate), in the order the stores first appear: in-memory by rate, the others by
/// ratio to in-memory. A round without a figure sorts first.
pub(crate) fn median_rounds(rows: &[PersistenceRow]) -> Vec<PersistenceRow> {
    let mut stores: Vec<&'static str> = Vec::new();
    for row in rows {
        if !stores.contains(&row.store) {
            stores.push(row.store);
        }
    }
    stores
        .into_iter()
        .filter_map(|store| {
            let of_store: Vec<&PersistenceRow> = rows.iter().filter(|r| r.store == store).collect();
            let figure = |r: &PersistenceRow| {
                if r.store == MEMORY { r.rate } else { r.ratio() }
            };
            let mut sorted = of_store.clone();
            sorted.sort_by(|a, b| {
                figure(a)
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&figure(b).unwrap_or(f64::NEG_INFINITY))
            });
            let median = sorted.get(sorted.len() / 2)?;
            Some(PersistenceRow {
                rounds: of_store.iter().map(|r| figure(r)).collect(),
                ..(*median).clone()
            })
        })
        .collect()
}

impl PersistenceRow {
    /// rate / in-memory rate.
    pub(crate) fn ratio(&self) -> Option<f64> {
        match (self.rate, self.memory) {
            (Some(r), Some(m)) if m != 0.0 => Some(r / m),
            _ => None,
        }
    }

    /// The target for this store, and whether it is met (`None`: no target, or
    /// no figure).
    pub(crate) fn target(&self) -> (&'static str, Option<bool>) {
        match self.store {
            "periodic" => (
                "≥ 0.80× in-memory",
                self.ratio().map(|r| r >= PERIODIC_TARGET),
            ),
            "always" => ("≥ 50,000 msg/s", self.rate.map(|r| r >= ALWAYS_TARGET)),
            _ => ("", None),
        }
    }
}

/// The Markdown table of the persistence scenarios.
pub(crate) fn persistence_markdown(rows: &[PersistenceRow]) -> String {
    let mut out = String::from(
        "| scenario | store | msg/s acknowledged ↑ | relative to in-memory | target | each round | \
         cores while publishing (broker / machine) | drain (s) | database after | messages |\n\
         |---|---|---:|---:|---|---|---:|---:|---:|---|\n",
    );
    for row in rows {
        let ratio = row
            .ratio()
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
        let target = match row.target() {
            ("", _) => "–".to_owned(),
            (text, Some(true)) => format!("{text} ✓"),
            (text, Some(false)) => format!("{text} ⚠ missed"),
            (text, None) => format!("{text} ?"),
        };
        let cores = row.cores.map_or_else(
            || "–".to_owned(),
            |c| format!("{:.2} / {:.2}", c.broker, c.machine),
        );
        let drain = row
            .drain_s
            .map_or_else(|| "–".to_owned(), |s| format!("{s:.1}"));
        let db = row.database_bytes.map_or_else(|| "–".to_owned(), megabytes);
        let rounds = row
            .rounds
            .iter()
            .map(|figure| match figure {
                None => "–".to_owned(),
                Some(rate) if row.store == MEMORY => number(*rate),
                Some(ratio) => format!("{ratio:.2}×"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let rounds = if rounds.is_empty() {
            "–".to_owned()
        } else {
            rounds
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {target} | {rounds} | {cores} | {drain} | {db} | {} |",
            row.scenario,
            row.store,
            cell(row.rate),
            row.notes
        );
    }
    out.push_str(
        "\nnanomq alone, a fresh broker per store and round; the stores take turns, and each \
         row is the store's median round (in-memory by rate, the others by their ratio to \
         the same round's in-memory rate), with every round's figure beside it. Publishers publish QoS 1 as fast as their \
         in-flight windows (32) allow while the one subscriber is an offline persistent \
         session (MQTT 5, Clean Start 0, Session Expiry Interval 3600 s); afterwards it \
         reconnects and receives its queue, which the messages column accounts for. msg/s \
         acknowledged: PUBACKs received by the publishers per second. in-memory: no \
         [persistence]; periodic: sync = \"periodic\", flush_interval = \"100ms\"; always: \
         sync = \"always\" (a PUBACK only once the message is on disk). max_mqueue_len = \
         10,000,000 so that nothing is dropped: messages lost were still queued when the \
         drain ended (120 s at most). Cores while publishing: CPU time of the broker, and of \
         the whole machine (load generator included), per second of publishing. Drain: from \
         the end of publishing to the last delivery after the subscriber reconnected. \
         Database: the SQLite file and its WAL after the run (the session ends with it).\n",
    );
    out
}

/// Bytes as MB (10^6), one decimal.
pub(crate) fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A figure with thousands separators, decimals only for small values.
pub(crate) fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        let rounded = value.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        if rounded < 0 {
            grouped.insert(0, '-');
        }
        grouped
    } else {
        format!("{value:.1}")
    }
}

fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), number)
}

/// The Markdown table.
pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | figure | nanomq | mosquitto | nanomq/mosquitto | messages (nanomq; mosquitto) |\n\
         |---|---|---:|---:|---:|---|\n",
    );
    for row in rows {
        let better = match row.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
        };
        // A ratio far below 1 keeps its digits instead of showing as 0.00×.
        let ratio = row.ratio().map_or_else(
            || "–".to_owned(),
            |r| {
                if r.abs() >= 0.01 || r == 0.0 {
                    format!("{r:.2}×")
                } else {
                    format!("{r:.1e}×")
                }
            },
        );
        let flag = if row.nanomq_behind() { " ⚠" } else { "" };
        let _ = writeln!(
            out,
            "| {} | {} {better} | {} | {} | {ratio}{flag} | {} |",
            row.scenario,
            row.metric,
            cell(row.nanomq),
            cell(row.mosquitto),
            row.notes
        );
    }
    out.push_str(
        "\n↑ higher is better, ↓ lower is better; ⚠ where nanomq is behind. Throughput is the \
         rate of distinct deliveries at the subscribers, with publishers sending as fast as \
         they can unless paced: under such overload Mosquitto drops what its bounded queues \
         cannot hold (2,048 messages per subscriber), QoS 1 included; nanomq drops QoS 0 \
         and holds QoS 1 publishers until there is room (mqueue_full = \"backpressure\").\n",
    );
    out
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart: per row, nanomq's bar (blue) over Mosquitto's (grey).
pub(crate) fn svg(rows: &[Row], title: &str) -> String {
    const LABEL_W: f64 = 430.0;
    const BAR_W: f64 = 360.0;
    const ROW_H: f64 = 46.0;
    const TOP: f64 = 56.0;
    let width = LABEL_W + BAR_W + 140.0;
    let height = TOP + ROW_H * rows.len() as f64 + 20.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    let _ = writeln!(
        out,
        "<rect x=\"10\" y=\"32\" width=\"12\" height=\"10\" fill=\"#2b6cb0\"/>\
         <text x=\"26\" y=\"41\">nanomq</text>\
         <rect x=\"90\" y=\"32\" width=\"12\" height=\"10\" fill=\"#a0aec0\"/>\
         <text x=\"106\" y=\"41\">mosquitto</text>\
         <text x=\"190\" y=\"41\" fill=\"#555\">(↑ higher is better, ↓ lower is better)</text>"
    );
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let arrow = match row.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
        };
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{}\">{}</text><text x=\"10\" y=\"{}\" fill=\"#555\">{} {arrow}{}</text>",
            y + 16.0,
            escape(&row.scenario),
            y + 31.0,
            escape(&row.metric),
            row.ratio()
                .map(|r| format!("  (nanomq/mosquitto {r:.2}×)"))
                .unwrap_or_default()
        );
        let max = row
            .nanomq
            .unwrap_or(0.0)
            .max(row.mosquitto.unwrap_or(0.0))
            .max(f64::MIN_POSITIVE);
        for (k, (value, colour)) in [(row.nanomq, "#2b6cb0"), (row.mosquitto, "#a0aec0")]
            .into_iter()
            .enumerate()
        {
            let Some(value) = value else { continue };
            let bar_y = y + 6.0 + 16.0 * k as f64;
            let w = (value / max * BAR_W).max(1.0);
            let _ = writeln!(
                out,
                "<rect x=\"{LABEL_W}\" y=\"{bar_y}\" width=\"{w:.1}\" height=\"13\" fill=\"{colour}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                LABEL_W + w + 4.0,
                bar_y + 11.0,
                number(value)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(nanomq: Option<f64>, mosquitto: Option<f64>, better: Better) -> Row {
        Row {
            scenario: "fan-in 50→1, QoS 1".to_owned(),
            metric: "msg/s delivered".to_owned(),
            better,
            nanomq,
            mosquitto,
            notes: "lost 0".to_owned(),
        }
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(999.6), "1,000");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(-12_345.0), "-12,345");
    }

    #[test]
    fn the_table_shows_both_figures_and_the_ratio() {
        let table = markdown(&[
            row(Some(200_000.0), Some(100_000.0), Better::Higher),
            row(Some(300.0), Some(150.0), Better::Lower),
            row(Some(1.0), None, Better::Higher),
            row(Some(99.0), Some(100.0), Better::Higher),
            row(Some(120.0), Some(1_384_120.0), Better::Lower),
        ]);
        assert!(
            table.contains("| 200,000 | 100,000 | 2.00× | lost 0 |"),
            "{table}"
        );
        assert!(table.contains("| 300 | 150 | 2.00× ⚠ |"), "{table}");
        assert!(table.contains("| 1.0 | – | – |"), "{table}");
        assert!(table.contains("| 0.99× |"), "within noise: {table}");
        assert!(table.contains("| 120 | 1,384,120 | 8.7e-5× |"), "{table}");
    }

    #[test]
    fn the_transports_table_shows_the_ratio_to_tcp() {
        let row = |transport, rate| TransportRow {
            scenario: "50 pairs, QoS 1".to_owned(),
            transport,
            rate,
            tcp: Some(200_000.0),
            notes: String::new(),
        };
        let table = transports_markdown(&[
            row("tcp", Some(200_000.0)),
            row("wss", Some(150_000.0)),
            row("ssl", None),
        ]);
        assert!(table.contains("| tcp | 200,000 | 1.00× |"), "{table}");
        assert!(table.contains("| wss | 150,000 | 0.75× |"), "{table}");
        assert!(table.contains("| ssl | – | – |"), "{table}");
    }

    #[test]
    fn the_persistence_table_shows_the_ratio_to_memory_and_the_targets() {
        let row = |store, rate| PersistenceRow {
            scenario: "fan-in 20→1, QoS 1, offline persistent subscriber".to_owned(),
            store,
            rate,
            memory: Some(200_000.0),
            cores: Some(Cores {
                broker: 1.25,
                machine: 2.0,
            }),
            drain_s: Some(4.31),
            database_bytes: Some(12_345_678),
            notes: "lost 0 (0.0%), dup 0, ooo 0".to_owned(),
            rounds: Vec::new(),
        };
        let table = persistence_markdown(&[
            row("in-memory", Some(200_000.0)),
            row("periodic", Some(150_000.0)),
            row("always", Some(60_000.0)),
        ]);
        assert!(
            table.contains(
                "| in-memory | 200,000 | 1.00× | – | – | 1.25 / 2.00 | 4.3 | 12.3 MB | lost 0"
            ),
            "{table}"
        );
        assert!(
            table.contains("| periodic | 150,000 | 0.75× | ≥ 0.80× in-memory ⚠ missed |"),
            "{table}"
        );
        assert!(
            table.contains("| always | 60,000 | 0.30× | ≥ 50,000 msg/s ✓ |"),
            "{table}"
        );
        let failed = persistence_markdown(&[row("always", None)]);
        assert!(
            failed.contains("| always | – | – | ≥ 50,000 msg/s ? |"),
            "{failed}"
        );

        // Three rounds: each store's median round, every round's figure beside it.
        let round = |store, rate: f64, memory: f64| PersistenceRow {
            memory: Some(memory),
            ..row(store, Some(rate))
        };
        let rounds = [
            round("in-memory", 300_000.0, 300_000.0),
            round("periodic", 150_000.0, 300_000.0),
            round("in-memory", 100_000.0, 100_000.0),
            round("periodic", 90_000.0, 100_000.0),
            round("in-memory", 200_000.0, 200_000.0),
            PersistenceRow {
                notes: "failed: refused".to_owned(),
                ..row("periodic", None)
            },
        ];
        let medians = median_rounds(&rounds);
        assert_eq!(medians.len(), 2);
        assert_eq!(
            (medians[0].rate, medians[1].rate),
            (Some(200_000.0), Some(150_000.0))
        );
        let table = persistence_markdown(&medians);
        assert!(
            table.contains("| 200,000 | 1.00× | – | 300,000, 100,000, 200,000 |"),
            "{table}"
        );
        assert!(
            table.contains("| 150,000 | 0.50× | ≥ 0.80× in-memory ⚠ missed | 0.50×, 0.90×, – |"),
            "{table}"
        );
    }

    #[test]
    fn the_chart_has_a_bar_per_figure() {
        let chart = svg(&[row(Some(2.0), Some(1.0), Better::Higher)], "t & t");
        assert!(chart.starts_with("<svg"));
        assert!(chart.contains("t &amp; t"));
        assert_eq!(chart.matches("height=\"13\"").count(), 2);
        assert!(chart.trim_end().ends_with("</svg>"));
    }
}
