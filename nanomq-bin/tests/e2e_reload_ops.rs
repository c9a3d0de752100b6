//! Hot reload of what runs beside the clients: bridges to a second nanomq added, changed
//! (same local session, new forwards) and removed (its session gone); the log level and
//! target changed while the broker runs; a lowered limit refusing the next SUBSCRIBE of
//! connected clients. (ACL, passwords, broken files, listeners: `e2e_reload.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;
mod reload_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Broker, run};
use reload_support::*;
use serde_json::Value;

#[test]
fn bridges_added_changed_and_removed_by_reload() {
    let upstream = Broker::start_with_config(
        "reload_upstream",
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n",
    );
    let mut far = subscriber(&upstream, &[], &["fwd/#", "other/#"]);
    let (broker, api) = start("reload_bridges", "");
    let bridge = |local_topic: &str| {
        format!(
            "[[bridges]]\nname = \"up\"\nservers = [\"mqtt://{}\"]\nproto_ver = 5\n\
             backoff_max = \"1s\"\n\n[[bridges.forwards]]\nlocal_topic = \"{local_topic}\"\nqos = 1\n",
            upstream.address()
        )
    };
    let bridges = || curl(api, "GET", "/api/v4/bridges").json["data"].clone();
    let has_session = || {
        curl(api, "GET", "/api/v4/clients").json["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == "$bridge/up")
    };
    assert_eq!(bridges(), Value::Array(Vec::new()));

    rewrite(&broker, api, &bridge("fwd/#"));
    assert_eq!(reload_ok(api).0, ["bridges.up"]);
    broker.wait_for_log("bridge connected", 1, PATIENCE);
    assert_eq!(bridges()[0]["name"], "up");
    assert!(has_session(), "the bridge's local session");
    assert_eq!(publish_once(&broker, "fwd/1", "one"), ACCEPTED);
    far.wait_for_line(|l| l == "fwd/1 one", PATIENCE);

    // Changed: the same local session, the new forward only.
    rewrite(&broker, api, &bridge("other/#"));
    assert_eq!(reload_ok(api).0, ["bridges.up"]);
    broker.wait_for_log("bridge connected", 2, PATIENCE);
    assert_eq!(bridges()[0]["forwards"][0]["local_topic"], "other/#");
    publish_once(&broker, "fwd/2", "two");
    publish_once(&broker, "other/2", "two");
    let line = far.wait_for_line(
        |l| l.starts_with("fwd/") || l.starts_with("other/"),
        PATIENCE,
    );
    assert_eq!(line, "other/2 two", "the old forward is gone");

    // Removed: stopped, its local session gone with it.
    rewrite(&broker, api, "");
    assert_eq!(reload_ok(api).0, ["bridges.up"]);
    broker.wait_for_log("bridge removed", 1, PATIENCE);
    assert_eq!(bridges(), Value::Array(Vec::new()));
    assert!(!has_session(), "the removed bridge's session stayed");
    publish_once(&broker, "other/3", "three");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(publish_once(&upstream, "other/sentinel", "s"), ACCEPTED);
    let line = far.wait_for_line(|l| l.starts_with("other/"), PATIENCE);
    assert_eq!(
        line, "other/sentinel s",
        "nothing forwarded after the removal"
    );
}

#[test]
fn the_log_level_and_target_change_live() {
    let (broker, api) = start("reload_log", "[log]\nlevel = \"info\"\n");
    let client = || publish_once(&broker, "t", "x");
    client();
    assert!(!broker.log().contains("DEBUG"), "{}", broker.log());

    rewrite(&broker, api, "[log]\nlevel = \"debug\"\n");
    assert_eq!(reload_ok(api).0, ["log.level"]);
    client();
    broker.wait_for_log("disconnected", 1, PATIENCE);
    assert!(broker.log().contains("DEBUG"));

    let dir = broker.dir().join("logs");
    rewrite(
        &broker,
        api,
        &format!(
            "[log]\nlevel = \"debug\"\nto = \"file\"\ndir = \"{}\"\nfile = \"n.log\"\n",
            dir.display()
        ),
    );
    assert_eq!(reload_ok(api).0, ["log.to"]);
    let on_console = broker.log().matches("disconnected").count();
    client();
    let file = dir.join("n.log");
    let text = wait_for_file(&file, "disconnected");
    assert!(text.contains("reload: changed log.to"), "{text}");
    assert_eq!(broker.log().matches("disconnected").count(), on_console);
}

/// The text of `path` once it holds `needle`.
fn wait_for_file(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_lowered_limit_refuses_the_next_subscribe() {
    let (broker, api) = start("reload_limits", "");
    let mut deep = subscriber(&broker, &[], &["a/b/c/d", "x"]);
    let once = |filter: &str| {
        run(
            Command::new("mosquitto_sub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &broker.port(),
                    "-V",
                    "5",
                    "-d",
                    "-E",
                ])
                .args(["-t", filter]),
            PATIENCE,
        )
    };
    assert!(once("a/b/c/d").stdout.contains("Subscribed (mid: 1): 0"));

    rewrite(&broker, api, "[limits]\nmax_topic_levels = 3\n");
    assert_eq!(reload_ok(api).0, ["limits.max_topic_levels"]);
    // 0x8F, Topic Filter invalid: past the new limit.
    let refused = once("a/b/c/d");
    assert!(
        refused.stdout.contains("Subscribed (mid: 1): 143"),
        "{refused:?}"
    );
    assert!(once("a/b/c").stdout.contains("Subscribed (mid: 1): 0"));
    // The client subscribed before stays connected and served.
    assert_eq!(publish_once(&broker, "x", "still"), ACCEPTED);
    deep.wait_for_line(|l| l == "x still", PATIENCE);
}

#[test]
fn the_sys_interval_changes_live() {
    let (broker, api) = start("reload_sys", "[sys]\ninterval = \"0s\"\n");
    let mut sys = subscriber(&broker, &[], &["$SYS/broker/uptime"]);
    // Off: nothing published, nothing retained.
    std::thread::sleep(Duration::from_millis(1500));
    rewrite(&broker, api, "[sys]\ninterval = \"1s\"\n");
    assert_eq!(reload_ok(api).0, ["sys.interval"]);
    let seconds = |line: String| -> u64 {
        let value = line.strip_prefix("$SYS/broker/uptime ").unwrap();
        value.trim_end_matches(" seconds").parse().unwrap()
    };
    let first = seconds(sys.wait_for_line(|l| l.starts_with("$SYS/broker/uptime "), PATIENCE));
    // Nothing was published while it was off: the first update came after the reload.
    assert!(first >= 1, "uptime {first}");
    // Every second: two more updates within a few seconds, the uptime moving on.
    let uptime = |l: &str| l.starts_with("$SYS/broker/uptime ");
    sys.wait_for_line(uptime, Duration::from_secs(5));
    let third = seconds(sys.wait_for_line(uptime, Duration::from_secs(5)));
    assert!(third > first, "uptime {first}, then {third}");
}
