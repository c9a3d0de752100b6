//! Brokers under valgrind's callgrind, for the sections that count instructions rather than
//! time them: a count is the same whatever else this shared machine does, so a ratio of
//! counts resolves differences far below the 10–30% that wall-clock rounds move by here.
//! Every thread is counted, from start to exit; the profile is written when the broker
//! exits after SIGTERM.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::broker::{Extra, Kind, Running, Transport, Tuning};
use super::scenario::{Beside, Scenario};

/// How long a broker under callgrind may take to exit after SIGTERM (it writes its profile
/// on the way out).
const EXIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts a fresh `kind` in `dir` under callgrind, its profile going to `profile`, with
/// `nanomq` appended to nanomq's configuration.
pub(crate) fn start(kind: &Kind, dir: &Path, profile: &Path, nanomq: String) -> Result<Running> {
    let extra = Extra {
        nanomq,
        mosquitto: mosquitto_config(),
        wrapper: wrapper(profile),
    };
    kind.start_with(dir, None, &Tuning::default(), &extra)
}

/// The wrapper ([`Extra::wrapper`]) that runs a broker under callgrind, writing its
/// profile to `profile`.
fn wrapper(profile: &Path) -> Vec<String> {
    vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        "--quiet".to_owned(),
        format!("--callgrind-out-file={}", profile.display()),
    ]
}

/// What Mosquitto's configuration needs under callgrind: started as root, Mosquitto
/// switches to the user `mosquitto`, which may not write the profile valgrind opened as
/// root at start (it wrote an empty one), so it keeps the user it was started as.
fn mosquitto_config() -> String {
    let user = std::process::Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    user.map_or_else(String::new, |user| format!("user {user}\n"))
}

/// A `nanomq bench` run (`args`) against a broker under callgrind, named `name`: a fixed
/// count of messages, with time for a broker some 50 times slower than usual.
pub(crate) fn scenario(name: String, args: &[&str]) -> Scenario {
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["-d", "600s", "-s", "64"].map(str::to_owned));
    Scenario {
        name,
        args,
        metrics: Vec::new(),
        rss: false,
        timeout: Duration::from_secs(660),
        transport: Transport::Tcp,
        tuning: Tuning::default(),
        beside: Beside::Nothing,
    }
}

/// The messages a counted run delivered: all it expected, once each, or an error that says
/// what (a broker that drops work runs fewer instructions: no comparison).
pub(crate) fn all_delivered(report: &Value) -> Result<u64> {
    let get = |pointer: &str| report.pointer(pointer).and_then(Value::as_u64);
    let (expected, unique) = (get("/messages/expected"), get("/messages/unique"));
    let (lost, duplicated) = (get("/messages/lost"), get("/messages/duplicated"));
    match (expected, unique, lost, duplicated) {
        (Some(expected), Some(unique), Some(0), Some(0)) if unique == expected && expected > 0 => {
            Ok(expected)
        }
        _ => {
            let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
            bail!(
                "delivered {} of {} (lost {}, duplicated {}): fewer instructions for less work \
                 is no comparison",
                n(unique),
                n(expected),
                n(lost),
                n(duplicated)
            )
        }
    }
}

/// Makes sure valgrind is installed (with apt-get when it is not).
pub(crate) fn ensure_valgrind() -> Result<()> {
    crate::deps::ensure(&crate::project_root(), crate::deps::BENCH_INSTRUCTIONS)
}

/// Stops the broker and reads the instructions it ran from its profile.
pub(crate) fn stop_and_count(broker: &mut Running, profile: &Path) -> Result<u64> {
    broker.terminate(EXIT_TIMEOUT)?;
    let text = fs::read_to_string(profile)
        .with_context(|| format!("callgrind wrote no profile at {}", profile.display()))?;
    totals(&text).with_context(|| format!("no totals in {}", profile.display()))
}

/// The `totals:` (or, failing that, `summary:`) line of a callgrind profile.
fn totals(profile: &str) -> Option<u64> {
    let find = |key: &str| {
        profile.lines().find_map(|line| {
            line.strip_prefix(key)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    find("totals:").or_else(|| find("summary:"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_run_counts_only_when_every_message_arrived_once() {
        let report = |unique: u64, lost: u64, duplicated: u64| {
            let messages =
                json!({"expected": 100, "unique": unique, "lost": lost, "duplicated": duplicated});
            json!({ "messages": messages })
        };
        assert_eq!(all_delivered(&report(100, 0, 0)).unwrap(), 100);
        assert!(all_delivered(&report(100, 0, 2)).is_err());
        let e = all_delivered(&report(99, 1, 0)).unwrap_err().to_string();
        assert!(
            e.starts_with("delivered 99 of 100 (lost 1, duplicated 0)"),
            "{e}"
        );
        assert!(all_delivered(&json!({})).is_err());
        let run = scenario("x".to_owned(), &["pairs", "-n", "3"]);
        assert_eq!(run.args, ["pairs", "-n", "3", "-d", "600s", "-s", "64"]);
    }

    #[test]
    fn the_totals_line_of_a_profile_is_read() {
        let profile = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n\
                       summary: 1234567\n\nfn=(1) main\n3 10\n\ntotals: 1234568\n";
        assert_eq!(totals(profile), Some(1_234_568));
        assert_eq!(totals("events: Ir\nsummary: 42\n"), Some(42));
        assert_eq!(totals("events: Ir\n"), None);
        assert!(wrapper(Path::new("/x/p.cg")).contains(&"--callgrind-out-file=/x/p.cg".to_owned()));
    }
}
