//! The brokers a run compares nanomq with: Mosquitto when Debian's package is installed,
//! rumqttd (installed with `cargo install` when missing), each unless the command line
//! leaves it out. A peer that is missing or fails to install leaves its column empty, with a
//! note saying why; it never fails the bench. Also which scenarios a peer cannot run
//! ([`cannot_run`]).

use std::path::Path;

use super::broker::{self, Kind};
use super::scenario::{Beside, Scenario};
use crate::deps;

/// The peers of a run, and why any is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Peers {
    /// The peers to run, Mosquitto first.
    pub(crate) kinds: Vec<Kind>,
    /// One sentence per missing peer.
    pub(crate) absent: Vec<String>,
    /// What each present peer is, for the report's header (`rumqttd 0.20.0`).
    pub(crate) versions: Vec<String>,
}

/// Finds the peers `mosquitto` and `rumqttd` ask for (installing rumqttd if missing) in
/// the workspace `root`.
pub(crate) fn find(root: &Path, mosquitto: bool, rumqttd: bool) -> Peers {
    let mut peers = Peers::default();
    match (mosquitto, broker::find_mosquitto()) {
        (true, Some(path)) => peers.kinds.push(Kind::Mosquitto(path)),
        (true, None) => peers
            .absent
            .push("mosquitto is not installed (apt-get install mosquitto).".to_owned()),
        (false, _) => peers
            .absent
            .push("mosquitto left out (--no-mosquitto).".to_owned()),
    }
    if !rumqttd {
        peers
            .absent
            .push("rumqttd left out (--no-rumqttd).".to_owned());
        return peers;
    }
    // Compiling it takes a few minutes, once; a failure leaves the column empty.
    let installed = match deps::ensure(root, deps::BENCH_PEERS) {
        Ok(()) => broker::find_rumqttd().ok_or_else(|| {
            "rumqttd was installed but is neither on PATH nor in ~/.cargo/bin".to_owned()
        }),
        Err(e) => Err(first_line(&format!("{e:#}"))),
    };
    match installed {
        Ok(path) => {
            if let Some(version) = broker::rumqttd_version(&path) {
                peers.versions.push(version);
            }
            peers.kinds.push(Kind::Rumqttd(path));
        }
        Err(why) => {
            println!("note: no rumqttd: {why}");
            peers.absent.push(format!(
                "rumqttd could not be installed ({why}); install it with `cargo install {}`.",
                deps::RUMQTTD_CRATE
            ));
        }
    }
    peers
}

/// Why `kind` cannot run `scenario`, if it cannot: the run is skipped and the row's notes
/// give this instead.
pub(crate) fn cannot_run(kind: &Kind, scenario: &Scenario) -> Option<&'static str> {
    match (kind, scenario.beside) {
        // The flood keeps two SUBSCRIBE/UNSUBSCRIBE pairs in flight and counts one answer
        // to each packet: rumqttd 0.20 sends one UNSUBACK per filter of an UNSUBSCRIBE (200
        // for each), where MQTT 3.1.1 (3.10.4) has one.
        (Kind::Rumqttd(_), Beside::SubscribeFlood(_)) => Some(
            "rumqttd 0.20 answers an UNSUBSCRIBE with one UNSUBACK per filter, not one \
             (MQTT 3.1.1 §3.10.4), so the SUBSCRIBE flood cannot count its answers",
        ),
        _ => None,
    }
}

/// The first line of `text`.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_left_out_are_noted_and_not_looked_for() {
        let peers = find(Path::new("."), false, false);
        assert!(peers.kinds.is_empty());
        assert_eq!(
            peers.absent,
            [
                "mosquitto left out (--no-mosquitto).",
                "rumqttd left out (--no-rumqttd)."
            ]
        );
    }

    #[test]
    fn rumqttd_runs_the_main_scenarios_but_the_subscribe_floods() {
        use std::path::PathBuf;

        use crate::e2e_bench::scenario::{Sizes, all};

        let rumqttd = Kind::Rumqttd(PathBuf::from("rumqttd"));
        let mosquitto = Kind::Mosquitto(PathBuf::from("mosquitto"));
        let list = all(Sizes::default());
        for scenario in &list {
            let flood = matches!(scenario.beside, Beside::SubscribeFlood(_));
            let why = cannot_run(&rumqttd, scenario);
            assert_eq!(why.is_some(), flood, "{}", scenario.name);
            assert!(why.is_none_or(|why| why.contains("UNSUBACK")));
            assert_eq!(cannot_run(&mosquitto, scenario), None);
        }
        assert_eq!(
            list.iter()
                .filter(|s| cannot_run(&rumqttd, s).is_some())
                .count(),
            2
        );
    }
}
