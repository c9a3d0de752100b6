//! What the hot-reload tests (`e2e_reload.rs`, `e2e_reload_ops.rs`) share: a broker with its
//! admin API on a port of its own, its configuration file rewritten and reloaded (through
//! the API or SIGHUP), and mosquitto clients whose PUBACK reason codes say what the broker
//! decided.

#![allow(dead_code, reason = "each reload test file uses part of it")]

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::e2e::{Background, Broker, require_on_path, run};

/// How long one step may take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) const USER: &str = "admin";
pub(crate) const PASSWORD: &str = "reload-pw";

/// The log line of each reload, done or refused.
pub(crate) const RELOADED: &str = "nanomq::reload: reload";

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A configuration: TCP on a free port, the API on `api_port`, then `body`.
pub(crate) fn config(api_port: u16, body: &str) -> String {
    config_on("127.0.0.1:0", api_port, body)
}

/// A configuration with TCP on `bind`.
pub(crate) fn config_on(bind: &str, api_port: u16, body: &str) -> String {
    format!(
        "[listeners.tcp]\nbind = \"{bind}\"\n\n[http_server]\nenabled = true\n\
         bind = \"127.0.0.1:{api_port}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n{body}\n"
    )
}

/// nanomq on `body`, its API on a port of its own; the broker and the API's address.
pub(crate) fn start(name: &str, body: &str) -> (Broker, SocketAddr) {
    let port = free_port();
    let broker = Broker::start_with_config(name, &config(port, body));
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    broker.wait_for_log("admin API listening on http://", 1, PATIENCE);
    (broker, api)
}

/// Rewrites the broker's configuration file.
pub(crate) fn rewrite(broker: &Broker, api: SocketAddr, body: &str) {
    std::fs::write(broker.conf_path(), config(api.port(), body)).unwrap();
}

/// An HTTP answer: status and JSON body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) json: Value,
}

/// `curl -X method` on `path` of `api` as the admin user.
pub(crate) fn curl(api: SocketAddr, method: &str, path: &str) -> Answer {
    require_on_path("curl", "curl");
    let out = run(
        Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "15"])
            .args(["-u", &format!("{USER}:{PASSWORD}"), "-X", method])
            .arg(format!("http://{api}{path}")),
        PATIENCE,
    );
    assert!(out.status.success(), "curl failed: {out:?}");
    let (body, status) = out.stdout.trim_end().rsplit_once('\n').unwrap();
    Answer {
        status: status.trim().parse().unwrap(),
        json: serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")),
    }
}

/// `POST /api/v4/reload`, expected to succeed: the report's `changed` and `needs_restart`.
pub(crate) fn reload_ok(api: SocketAddr) -> (Vec<String>, Vec<String>) {
    let answer = curl(api, "POST", "/api/v4/reload");
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["code"], 0);
    let keys = |name: &str| -> Vec<String> {
        answer.json["data"][name]
            .as_array()
            .unwrap_or_else(|| panic!("no {name} in {}", answer.json))
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    (keys("changed"), keys("needs_restart"))
}

/// `POST /api/v4/reload`, expected to be refused: the message.
pub(crate) fn reload_refused(api: SocketAddr) -> String {
    let answer = curl(api, "POST", "/api/v4/reload");
    assert_eq!(answer.status, 400, "{}", answer.json);
    assert_eq!(answer.json["code"], 108);
    answer.json["message"].as_str().unwrap().to_owned()
}

/// SIGHUP, and the log line of the reload it caused.
pub(crate) fn sighup(broker: &Broker) -> String {
    let before = broker.log().matches(RELOADED).count();
    broker.sighup();
    let log = broker.wait_for_log(RELOADED, before + 1, PATIENCE);
    log.lines()
        .filter(|l| l.contains(RELOADED))
        .nth(before)
        .unwrap()
        .to_owned()
}

/// `mosquitto_sub -V 5` on `filters`, once subscribed.
pub(crate) fn subscriber(broker: &Broker, extra: &[&str], filters: &[&str]) -> Background {
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut command = Command::new("stdbuf");
    command
        .args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port(),
        ])
        .args(["-V", "5", "-q", "1", "-d", "-v"])
        .args(extra);
    for filter in filters {
        command.args(["-t", filter]);
    }
    let mut sub = Background::spawn(&mut command);
    sub.wait_for_line(|l| l.starts_with("Subscribed"), PATIENCE);
    sub
}

/// A long-lived MQTT 5 publisher on one topic (`mosquitto_pub -l`: one message per line
/// of its standard input, on one connection).
pub(crate) struct LinePublisher {
    process: Background,
    sent: u32,
}

impl LinePublisher {
    pub(crate) fn start(broker: &Broker, topic: &str) -> Self {
        require_on_path("mosquitto_pub", "mosquitto-clients");
        let mut process = Background::spawn_with_stdin(
            Command::new("stdbuf")
                .args([
                    "-oL",
                    "mosquitto_pub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &broker.port(),
                ])
                .args(["-V", "5", "-q", "1", "-d", "-l", "-t", topic]),
        );
        process.wait_for_line(|l| l.contains("received CONNACK"), PATIENCE);
        Self { process, sent: 0 }
    }

    /// Publishes `payload`; the PUBACK's reason code.
    pub(crate) fn publish(&mut self, payload: &str) -> u8 {
        self.sent += 1;
        self.process.write_stdin(&format!("{payload}\n"));
        let mid = format!("received PUBACK (Mid: {},", self.sent);
        let line = self.process.wait_for_line(|l| l.contains(&mid), PATIENCE);
        line.rsplit_once("RC:")
            .and_then(|(_, rc)| rc.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no reason code in {line:?}"))
    }

    /// Ends the publisher; how many times it connected.
    pub(crate) fn connections(mut self) -> usize {
        self.process.close_stdin();
        let out = self.process.finish(PATIENCE);
        out.stdout.matches("received CONNACK").count()
    }
}

/// A one-shot MQTT 5 QoS 1 publish; the PUBACK's reason code.
pub(crate) fn publish_once(broker: &Broker, topic: &str, payload: &str) -> u8 {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let out = run(
        Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &broker.port(),
                "-V",
                "5",
                "-q",
                "1",
                "-d",
            ])
            .args(["-t", topic, "-m", payload]),
        PATIENCE,
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("received PUBACK"))
        .unwrap_or_else(|| panic!("no PUBACK: {out:?}"))
        .to_owned();
    line.rsplit_once("RC:")
        .and_then(|(_, rc)| rc.trim_end_matches(')').parse().ok())
        .unwrap()
}

/// PUBACK reason codes.
pub(crate) const ACCEPTED: u8 = 0;
pub(crate) const NOT_AUTHORIZED: u8 = 135;

/// `[[auth.acl]]` rules: anyone subscribes to anything, publishes only under `open/`.
pub(crate) fn acl(open: &str) -> String {
    acl_with(open, "")
}

/// [`acl`], with `extra` lines in the `[auth]` table.
pub(crate) fn acl_with(open: &str, extra: &str) -> String {
    format!(
        "[auth]\nno_match = \"deny\"\n{extra}\n[[auth.acl]]\npermit = \"allow\"\n\
         action = \"subscribe\"\nall = true\ntopics = [\"#\"]\n\n[[auth.acl]]\n\
         permit = \"allow\"\naction = \"publish\"\nall = true\ntopics = [\"{open}/#\"]\n"
    )
}
