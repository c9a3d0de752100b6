//! End to end with SCRAM: MQTT.js (the `mqtt` npm package, in Node) runs the client side of
//! SCRAM-SHA-256 and SCRAM-SHA-512 (`tests/node/scram.js`, on Node's crypto) against the real
//! `nanomq` binary started with `[auth.scram]` and a credentials file written by
//! `nanomq passwd --scram` (users added, one added and then deleted with `-D`).
//!
//! Covered: a successful exchange for each mechanism, with the broker's server-final checked
//! by the client; a wrong password and an unknown user both refused with 0x86; a
//! re-authentication (AUTH 0x19) that succeeds (and the connection still carries a message)
//! and one that fails (DISCONNECT 0x87).
//!
//! Node and MQTT.js are installed by `cargo xtask test` (MQTT.js into `tests/browser`, whose
//! `node_modules` the browser test uses too); when one is missing the test fails with the
//! command that installs it, it never skips.

#![cfg(feature = "tcp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use broker_core::scram::{CredentialStore, Mechanism, ScramCredentials};
use e2e::{Broker, require_on_path, run, scratch_dir};
use serde_json::Value;

/// How long one MQTT.js run may take (Node's start included).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The `node_modules` that holds MQTT.js, or a failure saying how to install it.
fn node_modules() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules");
    assert!(
        dir.join("mqtt/package.json").is_file(),
        "MQTT.js is missing from {}: run `cargo xtask test` (which installs it), or \
         `npm install --prefix {} mqtt@5`",
        dir.display(),
        dir.parent().unwrap().display()
    );
    dir
}

/// `nanomq passwd ARGS`, which must succeed.
fn nanomq_passwd(args: &[&str]) {
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .arg("passwd")
            .args(args),
        CLIENT_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "nanomq passwd {args:?}: {}",
        output.stderr
    );
}

/// The broker, with SCRAM on over a credentials file for alice (both mechanisms) and bob
/// (SHA-512 only, 5000 iterations); carol was added and deleted again.
fn scram_broker(name: &str) -> Broker {
    let dir = scratch_dir(&format!("{name}-credentials"));
    let file = dir.join("scram");
    let path = file.to_str().unwrap();
    nanomq_passwd(&["--scram", "all", "-c", "-b", path, "alice", "wonder,land="]);
    nanomq_passwd(&[
        "--scram", "sha512", "-I", "5000", "-b", path, "bob", "builder",
    ]);
    nanomq_passwd(&["--scram", "all", "-b", path, "carol", "gone"]);
    nanomq_passwd(&["--scram", "all", "-D", path, "carol"]);
    let store = CredentialStore::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(store.len(), 3);
    assert_eq!(
        store
            .get(Mechanism::Sha512, "bob")
            .map(ScramCredentials::iterations),
        Some(5000)
    );
    let config = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n\
         [auth.scram]\nfile = {:?}\nmechanisms = [\"SCRAM-SHA-256\", \"SCRAM-SHA-512\"]\n\n\
         [log]\nlevel = \"debug\"\nto = \"console\"\n",
        file.display().to_string()
    );
    Broker::start_with_config(name, &config)
}

/// Runs the MQTT.js SCRAM client; its JSON summary.
fn mqtt_js(broker: &Broker, mechanism: &str, user: &str, password: &str, reauth: &[&str]) -> Value {
    require_on_path("node", "nodejs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/scram.js");
    let output = run(
        Command::new("node")
            .arg(script)
            .args([broker.host(), broker.port()])
            .args([mechanism, user, password])
            .args(reauth)
            .env("NODE_PATH", node_modules()),
        CLIENT_TIMEOUT,
    );
    let line = output.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "MQTT.js printed no summary ({e}); status {:?}\nstdout:\n{}\nstderr:\n{}\nbroker log:\n{}",
            output.status,
            output.stdout,
            output.stderr,
            broker.log()
        )
    })
}

#[test]
fn mqtt_js_authenticates_with_scram_sha_256_and_512() {
    let broker = scram_broker("scram-ok");
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let summary = mqtt_js(&broker, mechanism, "alice", "wonder,land=", &[]);
        assert_eq!(summary["connack"], 0, "{mechanism}: {summary}");
        assert_eq!(summary["serverVerified"], true, "{mechanism}: {summary}");
    }
    let summary = mqtt_js(&broker, "SCRAM-SHA-512", "bob", "builder", &[]);
    assert_eq!(summary["connack"], 0, "{summary}");
}

#[test]
fn mqtt_js_with_a_wrong_password_or_an_unknown_user_sees_0x86() {
    let broker = scram_broker("scram-refused");
    for (mechanism, user, password) in [
        ("SCRAM-SHA-256", "alice", "wonderland"),
        ("SCRAM-SHA-512", "alice", "builder"),
        ("SCRAM-SHA-256", "mallory", "wonder,land="),
        // bob has no SHA-256 credentials: as unknown as mallory.
        ("SCRAM-SHA-256", "bob", "builder"),
        // carol was deleted.
        ("SCRAM-SHA-512", "carol", "gone"),
    ] {
        let summary = mqtt_js(&broker, mechanism, user, password, &[]);
        assert_eq!(summary["error"], 0x86, "{mechanism} {user}: {summary}");
        assert!(summary.get("connack").is_none(), "{summary}");
    }
}

#[test]
fn mqtt_js_reauthenticates() {
    let broker = scram_broker("scram-reauth");
    let ok = mqtt_js(
        &broker,
        "SCRAM-SHA-512",
        "alice",
        "wonder,land=",
        &["alice", "wonder,land="],
    );
    assert_eq!(ok["connack"], 0, "{ok}");
    assert_eq!(ok["reauth"]["reasonCode"], 0, "{ok}");
    assert_eq!(ok["reauth"]["serverVerified"], true, "{ok}");
    assert_eq!(ok["roundTrip"], true, "{ok}");

    let failed = mqtt_js(
        &broker,
        "SCRAM-SHA-256",
        "alice",
        "wonder,land=",
        &["alice", "wrong"],
    );
    assert_eq!(failed["connack"], 0, "{failed}");
    assert_eq!(failed["disconnect"], 0x87, "{failed}");
    assert!(failed.get("reauth").is_none(), "{failed}");
}
