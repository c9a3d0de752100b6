//! Hot reload from outside, on real files and real clients: the configuration file is
//! rewritten while mosquitto clients stay connected, and SIGHUP, `POST /api/v4/reload` or
//! `nanomq reload` put it in force. ACL rules edited take effect on the next PUBLISH of
//! connections that stay up; a user added with `mosquitto_passwd` can connect; a broken
//! file (bad key, bad value, unreadable password file, bad TOML) changes nothing; a moved
//! listener is reported as needing a restart and stays where it was. (Bridges, the log and
//! the limits: `e2e_reload_ops.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;
mod reload_support;

use std::net::TcpStream;
use std::process::Command;

use e2e::{Broker, require_on_path, run, scratch_dir};
use reload_support::*;

#[test]
fn acl_edits_apply_to_the_next_publish_of_connected_clients_by_sighup_api_and_command() {
    let (broker, api) = start("reload_acl", &acl("open"));
    let mut sub = subscriber(&broker, &[], &["#"]);
    let mut open = LinePublisher::start(&broker, "open/x");
    let mut closed = LinePublisher::start(&broker, "closed/x");
    assert_eq!(open.publish("o1"), ACCEPTED);
    sub.wait_for_line(|l| l == "open/x o1", PATIENCE);
    assert_eq!(closed.publish("c1"), NOT_AUTHORIZED);

    // SIGHUP: closed/ opens, open/ closes, for the same two connections.
    rewrite(&broker, api, &acl("closed"));
    let line = sighup(&broker);
    assert!(line.contains("reload: changed auth.acl"), "{line}");
    assert_eq!(closed.publish("c2"), ACCEPTED);
    sub.wait_for_line(|l| l == "closed/x c2", PATIENCE);
    assert_eq!(open.publish("o2"), NOT_AUTHORIZED);

    // The API: back again.
    rewrite(&broker, api, &acl("open"));
    let (changed, restart) = reload_ok(api);
    assert_eq!(changed, ["auth.acl"]);
    assert!(restart.is_empty(), "{restart:?}");
    assert_eq!(closed.publish("c3"), NOT_AUTHORIZED);
    assert_eq!(open.publish("o3"), ACCEPTED);
    // In order on the subscriber: c3 was never delivered.
    let line = sub.wait_for_line(|l| l.starts_with("closed/") || l == "open/x o3", PATIENCE);
    assert_eq!(line, "open/x o3");

    // `nanomq reload`, the address and credentials from the file's [http_server].
    rewrite(&broker, api, &acl("closed"));
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .arg("reload")
            .arg("--conf")
            .arg(broker.conf_path()),
        PATIENCE,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "changed: auth.acl");
    assert_eq!(open.publish("o4"), NOT_AUTHORIZED);
    assert_eq!(closed.publish("c4"), ACCEPTED);
    sub.wait_for_line(|l| l == "closed/x c4", PATIENCE);

    // Nothing changed: said so, and nothing is rebuilt.
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .args(["reload", "--url", &format!("http://{api}"), "-u"])
            .arg(format!("{USER}:{PASSWORD}")),
        PATIENCE,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "nothing changed");
    // Wrong credentials: the command says so, with its own exit code.
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_nanomq")).args([
            "reload",
            "--url",
            &format!("http://{api}"),
            "-u",
            "admin:wrong",
        ]),
        PATIENCE,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("401"), "{out:?}");

    // Every client stayed on its first connection.
    assert_eq!(open.connections(), 1);
    assert_eq!(closed.connections(), 1);
    let out = sub.kill();
    assert_eq!(
        out.stdout.matches("received CONNACK").count(),
        1,
        "{}",
        out.stdout
    );
}

#[test]
fn a_user_added_with_mosquitto_passwd_can_connect_after_a_reload() {
    require_on_path("mosquitto_passwd", "mosquitto");
    let files = scratch_dir("reload_passwd");
    let passwd = files.join("passwd");
    let make = |args: &[&str]| {
        let out = run(Command::new("mosquitto_passwd").args(args), PATIENCE);
        assert!(out.status.success(), "{out:?}");
    };
    make(&["-c", "-b", passwd.to_str().unwrap(), "alice", "alice-pw"]);
    let body = format!(
        "[auth]\nallow_anonymous = false\npassword_file = \"{}\"\n",
        passwd.display()
    );
    let (broker, api) = start("reload_passwd", &body);
    let mut alice = subscriber(&broker, &["-u", "alice", "-P", "alice-pw"], &["t/#"]);
    let bob = |payload: &str| {
        run(
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
                ])
                .args(["-u", "bob", "-P", "bob-pw", "-t", "t/bob", "-m", payload]),
            PATIENCE,
        )
    };
    let refused = bob("before");
    assert!(!refused.status.success(), "{refused:?}");

    make(&["-b", passwd.to_str().unwrap(), "bob", "bob-pw"]);
    let (changed, _) = reload_ok(api);
    assert_eq!(changed, ["auth.password_file"]);
    let out = bob("after");
    assert!(out.status.success(), "{out:?}");
    alice.wait_for_line(|l| l == "t/bob after", PATIENCE);
    assert!(!alice.kill().stdout.contains("before"));
    let _ = std::fs::remove_dir_all(files);
}

#[test]
fn a_broken_file_changes_nothing_and_the_broker_keeps_serving() {
    let (mut broker, api) = start("reload_broken", &acl("open"));
    let mut sub = subscriber(&broker, &[], &["#"]);
    let still_as_before = |broker: &Broker| {
        assert_eq!(publish_once(broker, "closed/x", "no"), NOT_AUTHORIZED);
        assert_eq!(publish_once(broker, "open/x", "yes"), ACCEPTED);
    };

    // A bad value, beside an ACL that would open closed/: refused whole, naming the key.
    rewrite(
        &broker,
        api,
        &format!("{}\n[limits]\nmax_topic_levels = 0\n", acl("closed")),
    );
    let message = reload_refused(api);
    assert!(
        message.starts_with("limits.max_topic_levels: must be between 1 and"),
        "{message}"
    );
    still_as_before(&broker);
    sub.wait_for_line(|l| l == "open/x yes", PATIENCE);

    // An unknown key, by SIGHUP: logged at warn with the key; nothing changes.
    rewrite(&broker, api, &acl_with("closed", "bogus = true\n"));
    let line = sighup(&broker);
    assert!(
        line.contains("WARN") && line.contains("reload refused") && line.contains("auth.bogus"),
        "{line}"
    );
    still_as_before(&broker);

    // Valid, but a password file that cannot be read: nothing half-applied.
    rewrite(
        &broker,
        api,
        &acl_with("closed", "password_file = \"/nonexistent/passwd\"\n"),
    );
    let message = reload_refused(api);
    assert!(message.starts_with("auth.password_file:"), "{message}");
    still_as_before(&broker);

    // A bridge whose TLS file cannot be read: refused before anything is swapped.
    rewrite(
        &broker,
        api,
        &format!(
            "{}\n[[bridges]]\nname = \"tls\"\nservers = [\"mqtts://127.0.0.1:1\"]\n\
             [bridges.ssl]\ncacertfile = \"/nonexistent/ca.pem\"\n\
             [[bridges.forwards]]\nlocal_topic = \"f/#\"\n",
            acl("closed")
        ),
    );
    let message = reload_refused(api);
    assert!(message.starts_with("bridges.tls:"), "{message}");
    still_as_before(&broker);

    // Not TOML at all.
    std::fs::write(broker.conf_path(), "[listeners.tcp\nbind = ").unwrap();
    let message = reload_refused(api);
    assert!(message.contains("invalid TOML"), "{message}");
    still_as_before(&broker);
    broker.assert_running();

    // And a good file afterwards is taken as usual.
    rewrite(&broker, api, &acl("closed"));
    assert_eq!(reload_ok(api).0, ["auth.acl"]);
    assert_eq!(publish_once(&broker, "closed/x", "now"), ACCEPTED);
    sub.wait_for_line(|l| l == "closed/x now", PATIENCE);
}

#[test]
fn a_moved_listener_needs_a_restart_and_stays_where_it_is() {
    let (broker, api) = start("reload_listener", "");
    let elsewhere = free_port();
    std::fs::write(
        broker.conf_path(),
        config_on(
            &format!("127.0.0.1:{elsewhere}"),
            api.port(),
            "[mqtt]\nmax_inflight = 7\n[sys]\ninterval = \"3s\"\n",
        ),
    )
    .unwrap();
    let (changed, restart) = reload_ok(api);
    assert_eq!(changed, ["sys.interval"]);
    assert_eq!(restart, ["listeners.tcp.bind", "mqtt.max_inflight"]);
    // Again: still waiting for the restart, nothing else to change.
    let (changed, restart) = reload_ok(api);
    assert!(changed.is_empty(), "{changed:?}");
    assert_eq!(restart, ["listeners.tcp.bind", "mqtt.max_inflight"]);
    broker.wait_for_log(
        "needs a restart: listeners.tcp.bind, mqtt.max_inflight",
        2,
        PATIENCE,
    );
    assert_eq!(
        publish_once(&broker, "t", "here"),
        16,
        "no subscribers, still served"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", elsewhere)).is_err(),
        "nothing listens on the new address"
    );
}
