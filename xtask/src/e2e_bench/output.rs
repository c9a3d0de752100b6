//! The nanomq-only tables, and the number formats every table shares: the transport
//! scenarios (each transport's throughput relative to plain TCP in the same run) and the
//! persistence scenarios (each store's acknowledged rate relative to in-memory sessions in
//! the same run, against the targets of the issue). The main table, nanomq against its
//! peers, is [`super::table`]'s; the queued-backlog table is [`super::backlog::table`]'s.

use std::fmt::Write as _;

use super::cpu::Cores;

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

/// KiB as MB (10^6 bytes), one decimal.
pub(crate) fn kib_as_megabytes(kib: u64) -> String {
    megabytes(kib * 1024)
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

/// A count with thousands separators.
pub(crate) fn count(n: u64) -> String {
    if n < 100 {
        n.to_string()
    } else {
        number(n as f64)
    }
}

/// A figure's cell: [`number`], or a dash for none.
pub(crate) fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(1_234_567.4), "1,234,567");
        assert_eq!(number(999.6), "1,000");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(-12_345.0), "-12,345");
        assert_eq!(
            (count(0), count(99), count(5_000_000)),
            ("0".to_owned(), "99".to_owned(), "5,000,000".to_owned())
        );
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
}
