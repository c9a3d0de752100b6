//! The brokers a run compares nanomq with: Mosquitto when Debian's package is installed,
//! rumqttd (installed with `cargo install` when missing), each unless the command line
//! leaves it out. A peer that is missing or fails to install leaves its column empty, with a
//! note saying why; it never fails the bench.

use std::path::Path;

use super::broker::{self, Kind};
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
}
