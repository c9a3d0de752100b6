//! The main table: each figure of each scenario for nanomq and its peers (Mosquitto and
//! rumqttd), which peer did best, and nanomq's ratio to that peer (and to Mosquitto); as
//! Markdown and as an SVG bar chart written by hand (three bars per figure, scaled to the
//! largest, each labelled with its value).

use std::fmt::Write as _;

use super::output::{cell, number};
use super::scenario::Better;

/// The brokers nanomq is compared with, in the table's order.
pub(crate) const PEERS: [&str; 2] = ["mosquitto", "rumqttd"];

/// Every broker of the table, nanomq first.
pub(crate) const BROKERS: [&str; 3] = ["nanomq", "mosquitto", "rumqttd"];

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
    /// Mosquitto's figure (`None`: not run, failed, or cannot run it).
    pub(crate) mosquitto: Option<f64>,
    /// rumqttd's figure (`None` likewise).
    pub(crate) rumqttd: Option<f64>,
    /// Message accounting per broker, and why a broker has no figure.
    pub(crate) notes: String,
}

impl Row {
    /// The figure of the broker called `broker` (one of [`BROKERS`]).
    pub(crate) fn figure(&self, broker: &str) -> Option<f64> {
        match broker {
            "nanomq" => self.nanomq,
            "mosquitto" => self.mosquitto,
            "rumqttd" => self.rumqttd,
            _ => None,
        }
    }

    /// The peer that did best here, and its figure.
    pub(crate) fn best_peer(&self) -> Option<(&'static str, f64)> {
        best(
            self.better,
            PEERS.map(|peer| (peer, self.figure(peer))).as_slice(),
        )
    }

    /// nanomq / the best peer.
    pub(crate) fn ratio_to_best(&self) -> Option<f64> {
        divide(self.nanomq, self.best_peer().map(|(_, figure)| figure))
    }

    /// nanomq / mosquitto.
    pub(crate) fn ratio(&self) -> Option<f64> {
        divide(self.nanomq, self.mosquitto)
    }

    /// Whether nanomq did worse than the best peer here, by more than 2 % (noise).
    pub(crate) fn nanomq_behind(&self) -> bool {
        self.ratio_to_best().is_some_and(|r| match self.better {
            Better::Higher => r < 0.98,
            Better::Lower => r > 1.02,
        })
    }
}

/// The best of `figures` (a name and a figure each, `None` for none), the higher or the
/// lower as `better` says; the first of equals. Figures that are not numbers are ignored.
pub(crate) fn best(
    better: Better,
    figures: &[(&'static str, Option<f64>)],
) -> Option<(&'static str, f64)> {
    figures
        .iter()
        .filter_map(|&(name, figure)| figure.filter(|f| f.is_finite()).map(|f| (name, f)))
        .fold(None, |best, (name, figure)| match best {
            Some((_, kept)) => {
                let beats = match better {
                    Better::Higher => figure > kept,
                    Better::Lower => figure < kept,
                };
                if beats { Some((name, figure)) } else { best }
            }
            None => Some((name, figure)),
        })
}

/// `a / b`, when both are there and `b` is not 0.
fn divide(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// A ratio's cell: two decimals, or, far below 1, its digits instead of 0.00×.
fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or_else(
        || "–".to_owned(),
        |r| {
            if r.abs() >= 0.01 || r == 0.0 {
                format!("{r:.2}×")
            } else {
                format!("{r:.1e}×")
            }
        },
    )
}

/// The Markdown table of `rows`, with `absent` (why a peer is missing from the whole run,
/// one sentence each) after its legend.
pub(crate) fn markdown(rows: &[Row], absent: &[String]) -> String {
    let mut out = String::from(
        "| scenario | figure | nanomq | mosquitto | rumqttd | best peer | nanomq/best peer | \
         nanomq/mosquitto | messages and notes |\n\
         |---|---|---:|---:|---:|---|---:|---:|---|\n",
    );
    for row in rows {
        let better = match row.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
        };
        let best = row.best_peer().map_or("–", |(peer, _)| peer);
        let flag = if row.nanomq_behind() { " ⚠" } else { "" };
        let _ = writeln!(
            out,
            "| {} | {} {better} | {} | {} | {} | {best} | {}{flag} | {} | {} |",
            row.scenario,
            row.metric,
            cell(row.nanomq),
            cell(row.mosquitto),
            cell(row.rumqttd),
            ratio_cell(row.ratio_to_best()),
            ratio_cell(row.ratio()),
            row.notes
        );
    }
    out.push_str(
        "\n↑ higher is better, ↓ lower is better. best peer: the better of Mosquitto and \
         rumqttd in that row; ⚠ where nanomq is behind it by more than 2%. – : no figure \
         (the notes say why). Throughput is the rate of distinct deliveries at the \
         subscribers, with publishers sending as fast as they can unless paced: under such \
         overload Mosquitto drops what its bounded queues cannot hold (2,048 messages per \
         subscriber), QoS 1 included; rumqttd drops what a subscriber has not read once its \
         filter's log (sized for 2,048 messages) has moved past it, QoS 1 included; nanomq \
         drops QoS 0 and holds QoS 1 publishers until there is room (mqueue_full = \
         \"backpressure\"). rumqttd's outgoing in-flight window is fixed at 100; nanomq and \
         Mosquitto are given the same.\n",
    );
    for note in absent {
        let _ = writeln!(out, "\nNote: {note}");
    }
    out
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart: per row, nanomq's bar (blue) over Mosquitto's (grey) and rumqttd's (orange).
pub(crate) fn svg(rows: &[Row], title: &str) -> String {
    const LABEL_W: f64 = 430.0;
    const BAR_W: f64 = 360.0;
    const BAR_H: f64 = 16.0;
    const ROW_H: f64 = 62.0;
    const TOP: f64 = 56.0;
    const COLOURS: [&str; 3] = ["#2b6cb0", "#a0aec0", "#dd6b20"];
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
    let mut x = 10.0;
    for (broker, colour) in BROKERS.iter().zip(COLOURS) {
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"32\" width=\"12\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"41\">{broker}</text>",
            x + 16.0
        );
        x += 90.0;
    }
    let _ = writeln!(
        out,
        "<text x=\"{x}\" y=\"41\" fill=\"#555\">(↑ higher is better, ↓ lower is better)</text>"
    );
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let arrow = match row.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
        };
        let versus = match (row.best_peer(), row.ratio_to_best()) {
            (Some((peer, _)), Some(r)) => format!("  (nanomq/{peer} {r:.2}×)"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{}\">{}</text><text x=\"10\" y=\"{}\" fill=\"#555\">{} {arrow}{versus}</text>",
            y + 16.0,
            escape(&row.scenario),
            y + 31.0,
            escape(&row.metric),
        );
        let max = BROKERS
            .iter()
            .filter_map(|broker| row.figure(broker))
            .fold(f64::MIN_POSITIVE, f64::max);
        for (k, (broker, colour)) in BROKERS.iter().zip(COLOURS).enumerate() {
            let Some(value) = row.figure(broker) else {
                continue;
            };
            let bar_y = y + 6.0 + BAR_H * k as f64;
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

    fn row(
        better: Better,
        nanomq: Option<f64>,
        mosquitto: Option<f64>,
        rumqttd: Option<f64>,
    ) -> Row {
        Row {
            scenario: "fan-in 50→1, QoS 1".to_owned(),
            metric: "msg/s delivered".to_owned(),
            better,
            nanomq,
            mosquitto,
            rumqttd,
            notes: "nanomq lost 0".to_owned(),
        }
    }

    #[test]
    fn the_best_peer_is_the_highest_or_the_lowest_as_the_figure_wants() {
        let both = [("mosquitto", Some(100.0)), ("rumqttd", Some(150.0))];
        assert_eq!(best(Better::Higher, &both), Some(("rumqttd", 150.0)));
        assert_eq!(best(Better::Lower, &both), Some(("mosquitto", 100.0)));
        let equal = [("mosquitto", Some(7.0)), ("rumqttd", Some(7.0))];
        assert_eq!(best(Better::Higher, &equal), Some(("mosquitto", 7.0)));
        assert_eq!(best(Better::Lower, &equal), Some(("mosquitto", 7.0)));
    }

    #[test]
    fn a_peer_without_a_figure_is_never_the_best() {
        let one = [("mosquitto", None), ("rumqttd", Some(3.0))];
        assert_eq!(best(Better::Higher, &one), Some(("rumqttd", 3.0)));
        assert_eq!(best(Better::Lower, &one), Some(("rumqttd", 3.0)));
        let nan = [("mosquitto", Some(f64::NAN)), ("rumqttd", Some(0.5))];
        assert_eq!(best(Better::Lower, &nan), Some(("rumqttd", 0.5)));
        assert_eq!(
            best(Better::Higher, &[("mosquitto", None), ("rumqttd", None)]),
            None
        );
        assert_eq!(best(Better::Higher, &[]), None);

        let r = row(Better::Lower, Some(120.0), None, Some(100.0));
        assert_eq!(r.best_peer(), Some(("rumqttd", 100.0)));
        assert_eq!(r.ratio_to_best(), Some(1.2));
        assert_eq!(r.ratio(), None);
        assert!(r.nanomq_behind());
        let alone = row(Better::Higher, Some(1.0), None, None);
        assert_eq!((alone.best_peer(), alone.ratio_to_best()), (None, None));
        assert!(!alone.nanomq_behind());
    }

    #[test]
    fn the_table_shows_every_figure_the_best_peer_and_both_ratios() {
        let table = markdown(
            &[
                row(
                    Better::Higher,
                    Some(200_000.0),
                    Some(100_000.0),
                    Some(160_000.0),
                ),
                row(Better::Lower, Some(300.0), Some(150.0), Some(600.0)),
                row(Better::Higher, Some(1.0), None, None),
                row(Better::Higher, Some(99.0), Some(100.0), Some(50.0)),
                row(Better::Lower, Some(120.0), Some(1_384_120.0), None),
                row(Better::Higher, None, Some(5.0), Some(4.0)),
            ],
            &[],
        );
        assert!(table.starts_with(
            "| scenario | figure | nanomq | mosquitto | rumqttd | best peer | \
             nanomq/best peer | nanomq/mosquitto | messages and notes |\n"
        ));
        assert!(
            table.contains(
                "| fan-in 50→1, QoS 1 | msg/s delivered ↑ | 200,000 | 100,000 | 160,000 | \
                 rumqttd | 1.25× | 2.00× | nanomq lost 0 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| 300 | 150 | 600 | mosquitto | 2.00× ⚠ | 2.00× |"),
            "{table}"
        );
        assert!(table.contains("| 1.0 | – | – | – | – | – |"), "{table}");
        assert!(
            table.contains("| 99.0 | 100 | 50.0 | mosquitto | 0.99× | 0.99× |"),
            "within noise: {table}"
        );
        assert!(
            table.contains("| 120 | 1,384,120 | – | mosquitto | 8.7e-5× | 8.7e-5× |"),
            "{table}"
        );
        assert!(
            table.contains("| – | 5.0 | 4.0 | mosquitto | – | – |"),
            "{table}"
        );
        assert!(!table.contains("Note:"));
    }

    #[test]
    fn a_missing_peer_is_explained_under_the_table() {
        let table = markdown(
            &[row(Better::Higher, Some(2.0), Some(1.0), None)],
            &["rumqttd is not installed (cargo install rumqttd@0.20.0)".to_owned()],
        );
        assert!(
            table.contains("| 2.0 | 1.0 | – | mosquitto | 2.00× | 2.00× |"),
            "{table}"
        );
        assert!(
            table.ends_with("\nNote: rumqttd is not installed (cargo install rumqttd@0.20.0)\n"),
            "{table}"
        );
    }

    #[test]
    fn the_chart_has_a_bar_per_figure() {
        let chart = svg(
            &[
                row(Better::Higher, Some(2.0), Some(1.0), Some(3.0)),
                row(Better::Higher, Some(2.0), None, Some(3.0)),
            ],
            "t & t",
        );
        assert!(chart.starts_with("<svg"));
        assert!(chart.contains("t &amp; t"));
        assert_eq!(chart.matches("height=\"13\"").count(), 5);
        assert!(chart.contains("(nanomq/rumqttd 0.67×)"));
        assert!(chart.trim_end().ends_with("</svg>"));
    }
}
