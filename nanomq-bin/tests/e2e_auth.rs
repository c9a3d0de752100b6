//! Authentication and authorization from outside, with real clients and real files: the
//! `nanomq` binary with a password file written by the real `mosquitto_passwd` (and one by
//! `nanomq passwd`), mosquitto_pub/mosquitto_sub with `-u/-P` in MQTT 3.1.1 and 5 (their exit
//! status is the CONNACK's return or reason code), and paho-mqtt v3.1.1 and v5 for the reason
//! codes of refused subscriptions and publications.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{Background, Broker, python, python_script, require_on_path, run, scratch_dir};
use serde_json::Value;

/// How long one client command may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// A broker with `auth` as its `[auth]` table (and what follows it).
fn broker(name: &str, auth: &str) -> Broker {
    Broker::start_with_config(
        name,
        &format!(
            "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\nto = \"console\"\n\n\
             [auth]\n{auth}\n"
        ),
    )
}

/// `path` as a TOML string.
fn toml_path(path: &Path) -> String {
    format!("{:?}", path.to_str().unwrap())
}

/// Writes a password file with the real `mosquitto_passwd`: `users` as (name, password).
fn mosquitto_passwd_file(dir: &Path, users: &[(&str, &str)]) -> std::path::PathBuf {
    require_on_path("mosquitto_passwd", "mosquitto");
    let file = dir.join("passwd");
    for (i, (user, password)) in users.iter().enumerate() {
        let mut command = Command::new("mosquitto_passwd");
        if i == 0 {
            command.arg("-c");
        }
        command.arg("-b").arg(&file).args([user, password]);
        let output = run(&mut command, PATIENCE);
        assert!(
            output.status.success(),
            "mosquitto_passwd: {}",
            output.stderr
        );
    }
    file
}

/// `mosquitto_pub` as `credentials` (user, password) in protocol `version` (`311` or `5`):
/// its exit status, which is the CONNACK's code when the connection is refused.
fn mosquitto_pub(broker: &Broker, version: &str, credentials: Option<(&str, &str)>) -> i32 {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    let mut command = Command::new("mosquitto_pub");
    command
        .args(["-h", &broker.host(), "-p", &broker.port(), "-V", version])
        .args(["-t", "auth/check", "-m", "hello", "-q", "1"]);
    if let Some((user, password)) = credentials {
        command.args(["-u", user, "-P", password]);
    }
    let output = run(&mut command, PATIENCE);
    output.status.code().unwrap_or(-1)
}

/// Runs tests/python/access.py as `credentials` with these subscriptions and publications;
/// its JSON report.
fn paho_probe(
    broker: &Broker,
    protocol: &str,
    credentials: Option<(&str, &str)>,
    subscribe: &[&str],
    publish: &[&str],
) -> Value {
    let mut command = Command::new(python());
    command
        .arg(python_script("access.py"))
        .args([broker.host(), broker.port()])
        .args(["--protocol", protocol]);
    if let Some((user, password)) = credentials {
        command.args(["--user", user, "--password", password]);
    }
    if !subscribe.is_empty() {
        command.arg("--subscribe").args(subscribe);
    }
    if !publish.is_empty() {
        command.arg("--publish").args(publish);
    }
    let output = run(&mut command, PATIENCE);
    assert!(
        output.status.success(),
        "access.py failed:\n{}\n{}",
        output.stdout,
        output.stderr
    );
    let last = output.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap()
}

#[test]
fn a_mosquitto_passwd_file_lets_the_right_users_in_and_refuses_the_rest() {
    let dir = scratch_dir("auth_passwd");
    let file = mosquitto_passwd_file(&dir, &[("alice", "wonder land"), ("bob", "b:u/i#l+d")]);
    let broker = broker(
        "auth_passwd_broker",
        &format!(
            "allow_anonymous = false\npassword_file = {}",
            toml_path(&file)
        ),
    );
    // A subscriber and a publisher, both by password, see each other's message.
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    // stdbuf: line by line, so the SUBACK line is seen when it is printed.
    let mut sub = Background::spawn(Command::new("stdbuf").args([
        "-oL",
        "mosquitto_sub",
        "-h",
        &broker.host(),
        "-p",
        &broker.port(),
        "-u",
        "alice",
        "-P",
        "wonder land",
        "-t",
        "auth/check",
        "-C",
        "1",
        "-q",
        "1",
        "-d",
    ]));
    sub.wait_for_line(|line| line.contains("received SUBACK"), PATIENCE);
    assert_eq!(mosquitto_pub(&broker, "311", Some(("bob", "b:u/i#l+d"))), 0);
    let received = sub.finish(PATIENCE);
    assert!(
        received.stdout.contains("hello"),
        "mosquitto_sub got: {}",
        received.stdout
    );

    // 3.1.1: return codes 4 (bad user name or password) and 5 (not authorized).
    assert_eq!(mosquitto_pub(&broker, "311", Some(("alice", "wrong"))), 4);
    assert_eq!(mosquitto_pub(&broker, "311", Some(("mallory", "x"))), 4);
    assert_eq!(mosquitto_pub(&broker, "311", None), 5);
    // 5.0: reason codes 0x86 and 0x87.
    assert_eq!(
        mosquitto_pub(&broker, "5", Some(("alice", "wonder land"))),
        0
    );
    assert_eq!(mosquitto_pub(&broker, "5", Some(("alice", "wrong"))), 0x86);
    assert_eq!(mosquitto_pub(&broker, "5", None), 0x87);
    // paho sees the same.
    for (protocol, wrong, anonymous) in [("311", 0x86, 0x87), ("5", 0x86, 0x87)] {
        let refused = paho_probe(&broker, protocol, Some(("bob", "nope")), &[], &[]);
        assert_eq!(refused["connack"], wrong, "{protocol}: {refused}");
        let refused = paho_probe(&broker, protocol, None, &[], &[]);
        assert_eq!(refused["connack"], anonymous, "{protocol}: {refused}");
    }
    let log = broker.log();
    assert!(
        log.contains("connection refused by authentication") && log.contains("mallory"),
        "{log}"
    );
    assert!(!log.contains("wrong"), "a password reached the log:\n{log}");
}

#[test]
fn anonymous_clients_connect_when_allowed_but_a_wrong_password_never_does() {
    let dir = scratch_dir("auth_anonymous");
    let file = mosquitto_passwd_file(&dir, &[("alice", "wonderland")]);
    let broker = broker(
        "auth_anonymous_broker",
        &format!(
            "allow_anonymous = true\npassword_file = {}",
            toml_path(&file)
        ),
    );
    assert_eq!(mosquitto_pub(&broker, "5", None), 0);
    assert_eq!(
        mosquitto_pub(&broker, "5", Some(("alice", "wonderland"))),
        0
    );
    assert_eq!(mosquitto_pub(&broker, "5", Some(("alice", "bad"))), 0x86);
    assert_eq!(mosquitto_pub(&broker, "5", Some(("nobody", "x"))), 0x86);
}

#[test]
fn a_file_written_by_nanomq_passwd_is_accepted_and_a_bad_one_stops_the_start() {
    let dir = scratch_dir("auth_nanomq_passwd");
    let file = dir.join("passwd");
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .arg("passwd")
            .args(["-c", "-b"])
            .arg(&file)
            .args(["carol", "s3cret"]),
        PATIENCE,
    );
    assert!(output.status.success(), "nanomq passwd: {}", output.stderr);
    let broker = broker(
        "auth_nanomq_passwd_broker",
        &format!(
            "allow_anonymous = false\npassword_file = {}",
            toml_path(&file)
        ),
    );
    assert_eq!(mosquitto_pub(&broker, "311", Some(("carol", "s3cret"))), 0);
    assert_eq!(mosquitto_pub(&broker, "311", Some(("carol", "s3cre"))), 4);
    drop(broker);

    // A broken line: the broker does not start, and says which file and line.
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, format!("{text}dave\n")).unwrap();
    let conf = dir.join("bad.toml");
    fs::write(
        &conf,
        format!(
            "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[auth]\npassword_file = {}\n",
            toml_path(&file)
        ),
    )
    .unwrap();
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .args(["start", "--conf"])
            .arg(&conf),
        PATIENCE,
    );
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("auth.password_file") && output.stderr.contains("line 2"),
        "{}",
        output.stderr
    );
}

/// The reason codes under `key` in a paho report.
fn codes(report: &Value, key: &str) -> Vec<u64> {
    report[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn acl_rules_refuse_a_subscribe_with_0x80_in_v3_and_0x87_in_v5_while_others_pass() {
    let broker = broker(
        "auth_acl_rules",
        r#"
[[auth.acl]]
permit = "deny"
action = "subscribe"
all = true
topics = ["test/nosubscribe"]

[[auth.acl]]
permit = "deny"
action = "publish"
all = true
topics = ["test/nopublish"]
"#,
    );
    let filters = ["test/ok", "test/nosubscribe", "$share/g/test/nosubscribe"];
    let v3 = paho_probe(
        &broker,
        "311",
        None,
        &filters,
        &["test/nopublish", "test/ok"],
    );
    assert_eq!(codes(&v3, "suback"), [1, 0x80, 0x80], "{v3}");
    // 3.1.1's PUBACK has no reason code: the denied message is acknowledged and dropped.
    assert_eq!(codes(&v3, "puback"), [0, 0], "{v3}");
    let v5 = paho_probe(&broker, "5", None, &filters, &["test/nopublish", "test/ok"]);
    assert_eq!(codes(&v5, "suback"), [1, 0x87, 0x87], "{v5}");
    assert_eq!(codes(&v5, "puback"), [0x87, 0], "{v5}");
    // The dropped 3.1.1 message reached no one: a subscriber to both topics sees only the
    // allowed one. (`test/#` would be refused: it overlaps the denied filter.)
    require_on_path("mosquitto_sub", "mosquitto-clients");
    let mut sub = Background::spawn(Command::new("stdbuf").args([
        "-oL",
        "mosquitto_sub",
        "-h",
        &broker.host(),
        "-p",
        &broker.port(),
        "-t",
        "test/ok",
        "-t",
        "test/nopublish",
        "-v",
        "-d",
    ]));
    sub.wait_for_line(|line| line.contains("received SUBACK"), PATIENCE);
    paho_probe(&broker, "311", None, &[], &["test/nopublish", "test/ok"]);
    sub.wait_for_line(|line| line.starts_with("test/ok "), PATIENCE);
    let seen = sub.kill();
    assert!(
        !seen
            .stdout
            .lines()
            .any(|l| l.starts_with("test/nopublish ")),
        "{}",
        seen.stdout
    );
    let log = broker.log();
    assert!(
        log.contains("not authorized") && log.contains("test/nosubscribe"),
        "{log}"
    );
}

#[test]
fn a_mosquitto_acl_file_with_users_and_patterns_is_read_unchanged() {
    let dir = scratch_dir("auth_acl_file");
    let passwd = mosquitto_passwd_file(&dir, &[("alice", "a-pass"), ("bob", "b-pass")]);
    let acl = dir.join("acl");
    fs::write(
        &acl,
        "# anonymous clients: nothing but the weather\n\
         topic read weather/#\n\
         \n\
         user alice\n\
         topic readwrite alice/#\n\
         topic deny alice/secret\n\
         \n\
         pattern readwrite devices/%u/#\n",
    )
    .unwrap();
    let broker = broker(
        "auth_acl_file_broker",
        &format!(
            "password_file = {}\nacl_file = {}",
            toml_path(&passwd),
            toml_path(&acl)
        ),
    );
    let alice = Some(("alice", "a-pass"));
    let bob = Some(("bob", "b-pass"));
    let report = paho_probe(
        &broker,
        "5",
        alice,
        &[
            "alice/x",
            "alice/secret",
            "devices/alice/t",
            "devices/bob/t",
            "weather/today",
        ],
        &["alice/x", "devices/alice/t", "devices/bob/t"],
    );
    assert_eq!(
        codes(&report, "suback"),
        [1, 0x87, 1, 0x87, 0x87],
        "{report}"
    );
    // alice is subscribed to what she publishes, so there are subscribers: 0.
    assert_eq!(codes(&report, "puback"), [0, 0, 0x87], "{report}");
    let report = paho_probe(&broker, "5", bob, &["devices/bob/#", "alice/x"], &[]);
    assert_eq!(codes(&report, "suback"), [1, 0x87], "{report}");
    // Anonymous: the lines before the first `user`; no_match is deny with an acl_file.
    let report = paho_probe(&broker, "311", None, &["weather/#", "devices/+/t"], &[]);
    assert_eq!(codes(&report, "suback"), [1, 0x80], "{report}");
}

#[test]
fn deny_action_disconnect_closes_a_v5_client_with_0x87() {
    let broker = broker(
        "auth_deny_disconnect",
        "deny_action = \"disconnect\"\n\n[[auth.acl]]\npermit = \"deny\"\nall = true\ntopics = [\"forbidden\"]\n",
    );
    let report = paho_probe(&broker, "5", None, &[], &["forbidden", "after"]);
    assert_eq!(codes(&report, "puback"), Vec::<u64>::new(), "{report}");
    assert_eq!(report["disconnect"], 0x87, "{report}");
}
