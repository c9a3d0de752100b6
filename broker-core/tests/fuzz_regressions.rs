//! The broker's fuzz target as ordinary tests: `broker_core::fuzzing::run` (the code the
//! cargo-fuzz target in `fuzz/` runs) replays every crash input kept in
//! `tests/fuzz_regressions/` and every seed in `fuzz/seeds/broker/`, so `cargo test` needs
//! neither nightly nor cargo-fuzz to catch a regression. The hand-made scripts below run
//! each kind of step and check that it did what it says; they are also the seeds, written
//! by the ignored test `write_seeds`:
//! `cargo test -p broker-core --test fuzz_regressions -- --ignored write_seeds`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::cell::Cell;
use std::fs;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::Once;

use broker_core::fuzzing::{self, ConnectOptions, Kind, Outcome, ScriptWriter};
use mqtt_codec::{Packet, ProtocolVersion, ReasonCode};

const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seeds_dir() -> PathBuf {
    crate_dir().join("fuzz").join("seeds").join("broker")
}

fn regressions_dir() -> PathBuf {
    crate_dir().join("tests").join("fuzz_regressions")
}

/// The input files directly in `dir`, sorted; `*.md` and dot files are not inputs.
fn input_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && !name.ends_with(".md")
        })
        .collect();
    files.sort();
    files
}

thread_local! {
    /// Panics on this thread since the hook was installed. A connection's task runs on the
    /// test's thread (current-thread runtime), and tokio would otherwise swallow its panic.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// Runs a script: `Err` with the failure, or the panic, if the broker did not come
/// through it.
fn replay(data: &[u8]) -> Result<Outcome, String> {
    count_panics();
    let before = PANICS.with(Cell::get);
    let result = panic::catch_unwind(|| fuzzing::run(data));
    let panics = PANICS.with(Cell::get) - before;
    match result {
        Ok(Ok(_)) if panics > 0 => Err(format!("{panics} panic(s), see above")),
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(failure)) => Err(failure.to_string()),
        Err(_) => Err("the script panicked, see above".to_owned()),
    }
}

/// Runs a hand-made script that must pass.
fn run(script: &ScriptWriter) -> Outcome {
    match replay(&script.clone().into_bytes()) {
        Ok(outcome) => outcome,
        Err(e) => panic!("{e}"),
    }
}

fn publishes(outcome: &Outcome, client: usize) -> Vec<&mqtt_codec::Publish> {
    outcome.received[client]
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(publish) => Some(publish),
            _ => None,
        })
        .collect()
}

fn connacks(outcome: &Outcome, client: usize) -> Vec<&mqtt_codec::ConnAck> {
    outcome.received[client]
        .iter()
        .filter_map(|p| match p {
            Packet::ConnAck(ack) => Some(&**ack),
            _ => None,
        })
        .collect()
}

fn disconnects(outcome: &Outcome, client: usize) -> Vec<ReasonCode> {
    outcome.received[client]
        .iter()
        .filter_map(|p| match p {
            Packet::Disconnect(d) => Some(d.reason_code),
            _ => None,
        })
        .collect()
}

fn topics(outcome: &Outcome, client: usize) -> Vec<String> {
    publishes(outcome, client)
        .iter()
        .map(|p| p.topic().to_owned())
        .collect()
}

/// Two clients of different versions: a QoS 1 message goes from one to the other, both
/// acknowledged; an unsubscribed filter gets nothing more.
fn publish_and_subscribe() -> ScriptWriter {
    let mut s = ScriptWriter::new(0);
    s.connect(0, ConnectOptions::new(V5, 0))
        .subscribe(0, "a/+", 1)
        .settle()
        .connect(1, ConnectOptions::new(V311, 1))
        .publish(1, "a/b", 1, false, 2, 1)
        .settle()
        .ack_all(0)
        .unsubscribe(0, "a/+")
        .settle()
        .publish(1, "a/c", 0, false, 1, 0)
        .ping(1)
        .settle();
    s
}

#[test]
fn a_published_message_reaches_its_subscriber_once() {
    let outcome = run(&publish_and_subscribe());
    assert_eq!(topics(&outcome, 0), ["a/b"]);
    assert_eq!(publishes(&outcome, 0)[0].payload(), b"pppppp");
    assert!(outcome.received[1].contains(&Packet::PingResp));
    assert!(
        outcome.received[1]
            .iter()
            .any(|p| matches!(p, Packet::PubAck(_)))
    );
    assert_eq!(outcome.metrics.messages_sent, 1);
    assert_eq!(outcome.metrics.connections, 0);
}

/// A shared group, a `$SYS` publish (refused) and a retained message for a late subscriber.
fn shared_system_and_retained() -> ScriptWriter {
    let mut s = ScriptWriter::new(0);
    s.connect(0, ConnectOptions::new(V5, 0))
        .connect(1, ConnectOptions::new(V5, 1))
        .connect(2, ConnectOptions::new(V311, 2))
        .subscribe(0, "$share/g/sensor/#", 0)
        .subscribe(1, "$share/g/sensor/#", 0)
        .subscribe(2, "+/#", 0)
        .settle()
        .connect(3, ConnectOptions::new(V5, 3))
        .publish(3, "$SYS/b", 0, false, 1, 0)
        .publish(3, "sensor/a", 0, false, 1, 0)
        .publish(3, "sensor/b", 0, true, 1, 0)
        .settle()
        .subscribe(3, "sensor/+", 0)
        .settle();
    s
}

#[test]
fn shared_groups_system_topics_and_retained_messages() {
    let outcome = run(&shared_system_and_retained());
    let mut shared = [topics(&outcome, 0), topics(&outcome, 1)].concat();
    shared.sort();
    assert_eq!(shared, ["sensor/a", "sensor/b"], "one member each");
    assert_eq!(topics(&outcome, 2), ["sensor/a", "sensor/b"]);
    assert_eq!(topics(&outcome, 3), ["sensor/b"], "the retained one");
    assert!(publishes(&outcome, 3)[0].retain);
}

/// A persistent session taken over by a second connection, which finds it present; then
/// the first client comes back with a clean start.
fn takeover() -> ScriptWriter {
    let mut s = ScriptWriter::new(0);
    let persistent = ConnectOptions {
        clean: false,
        expiry: 4,
        ..ConnectOptions::new(V5, 0)
    };
    s.connect(0, persistent)
        .subscribe(0, "b", 1)
        .settle()
        .connect(1, persistent)
        .settle()
        .reconnect(0, true)
        .settle();
    s
}

#[test]
fn a_takeover_closes_the_old_connection_and_keeps_the_session() {
    let outcome = run(&takeover());
    assert_eq!(disconnects(&outcome, 0), [ReasonCode::SessionTakenOver]);
    let present: Vec<bool> = connacks(&outcome, 1)
        .iter()
        .map(|a| a.session_present)
        .collect();
    assert_eq!(present, [true]);
    assert_eq!(disconnects(&outcome, 1), [ReasonCode::SessionTakenOver]);
    assert_eq!(
        connacks(&outcome, 0).len(),
        2,
        "connected, then reconnected"
    );
    assert_eq!(outcome.metrics.takeovers, 2);
}

/// A lost connection publishes its will; a keep alive of 1 s closes a silent client.
fn will_and_keep_alive() -> ScriptWriter {
    let mut s = ScriptWriter::new(0);
    s.connect(0, ConnectOptions::new(V5, 0))
        .subscribe(0, "sensor/a", 0)
        .connect(
            1,
            ConnectOptions {
                will: Some("sensor/a"),
                ..ConnectOptions::new(V311, 1)
            },
        )
        .settle()
        .close(1)
        .settle()
        .connect(
            2,
            ConnectOptions {
                keep_alive: 1,
                ..ConnectOptions::new(V5, 2)
            },
        )
        .advance(1)
        .settle();
    s
}

#[test]
fn wills_and_keep_alive_run_in_virtual_time() {
    let outcome = run(&will_and_keep_alive());
    assert_eq!(topics(&outcome, 0), ["sensor/a"]);
    assert_eq!(publishes(&outcome, 0)[0].payload(), b"gone");
    assert_eq!(disconnects(&outcome, 2), [ReasonCode::KeepAliveTimeout]);
}

/// Extended authentication: the hook asks for another step, the client's AUTH completes it.
fn auth_exchange() -> ScriptWriter {
    let mut s = ScriptWriter::new(1 << 3);
    s.connect(
        0,
        ConnectOptions {
            auth: Some([1, 0]),
            ..ConnectOptions::new(V5, 0)
        },
    )
    .settle()
    .auth(0, 0, [0, 0])
    .settle()
    .connect(
        1,
        ConnectOptions {
            auth: Some([2, 0]),
            ..ConnectOptions::new(V5, 1)
        },
    )
    .settle();
    s
}

#[test]
fn the_auth_exchange_continues_and_refuses() {
    let outcome = run(&auth_exchange());
    assert!(matches!(
        &outcome.received[0][0],
        Packet::Auth(a) if a.reason_code == ReasonCode::ContinueAuthentication
    ));
    let codes = |c| -> Vec<ReasonCode> {
        connacks(&outcome, c)
            .iter()
            .map(|a| a.reason_code)
            .collect()
    };
    assert_eq!(codes(0), [ReasonCode::Success]);
    assert_eq!(codes(1), [ReasonCode::BadUserNameOrPassword]);
}

/// Access control (the same config bit as the AUTH hook): a filter the ACL refuses at once,
/// one the waiting authorizer refuses a second later, a refused PUBLISH, and one that waits
/// for its answer while a ping behind it does not.
fn access_control() -> ScriptWriter {
    let mut s = ScriptWriter::new(1 << 3);
    s.connect(0, ConnectOptions::new(V5, 0))
        .subscribe(0, "sensor/+", 1)
        .subscribe(0, "c/#", 1)
        .publish(0, "b/a", 1, false, 1, 1)
        .publish(0, "c/a", 1, false, 1, 2)
        .ping(0)
        .settle()
        .advance(0)
        .settle();
    s
}

#[test]
fn access_control_refuses_at_once_or_after_a_wait_in_order() {
    let outcome = run(&access_control());
    let mut seen = Vec::new();
    for packet in &outcome.received[0] {
        match packet {
            Packet::SubAck(ack) => seen.push(format!("suback {:?}", ack.reason_codes)),
            Packet::PubAck(ack) => seen.push(format!("puback {:?}", ack.reason_code)),
            Packet::PingResp => seen.push("pingresp".to_owned()),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            "suback [NotAuthorized]",
            "pingresp",
            "suback [NotAuthorized]",
            "puback NotAuthorized",
            "puback NoMatchingSubscribers",
        ],
        "{:#?}",
        outcome.trace
    );
    assert_eq!(outcome.metrics.access.authorization_deny, 3);
}

/// Bytes that are not MQTT: garbage before CONNECT, a corrupted PINGREQ, a half-closed
/// client, a DISCONNECT with will.
fn raw_bytes() -> ScriptWriter {
    let mut s = ScriptWriter::new(0);
    s.raw(0, &[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])
        .connect(1, ConnectOptions::new(V5, 1))
        .settle()
        .corrupt_ping(1, 0, 0x40)
        .connect(2, ConnectOptions::new(V5, 2))
        .subscribe(2, "#", 0)
        .connect(
            3,
            ConnectOptions {
                will: Some("c"),
                ..ConnectOptions::new(V5, 3)
            },
        )
        .settle()
        .disconnect(3, 1)
        .settle()
        .half_close(2)
        .settle();
    s
}

#[test]
fn raw_and_corrupted_bytes_close_the_connection() {
    let outcome = run(&raw_bytes());
    assert_eq!(connacks(&outcome, 1).len(), 1);
    assert!(!outcome.received[1].contains(&Packet::PingResp));
    assert_eq!(disconnects(&outcome, 1), [ReasonCode::MalformedPacket]);
    assert_eq!(
        outcome.metrics.protocol_errors, 2,
        "the unreadable CONNECT and the corrupted PINGREQ"
    );
    assert_eq!(
        topics(&outcome, 2),
        ["c"],
        "the will of a DISCONNECT with will"
    );
}

/// A QoS 1 message left unacknowledged is sent again, with DUP, when its session resumes.
fn resend_after_reconnect() -> ScriptWriter {
    let mut s = ScriptWriter::new(0);
    s.connect(
        0,
        ConnectOptions {
            clean: false,
            expiry: 4,
            receive_maximum: 1,
            ..ConnectOptions::new(V5, 0)
        },
    )
    .subscribe(0, "a", 1)
    .settle()
    .connect(1, ConnectOptions::new(V5, 1))
    .publish(1, "a", 1, false, 1, 1)
    .publish(1, "a", 1, false, 1, 2)
    .settle()
    .reconnect(0, false)
    .settle()
    .ack_all(0)
    .settle()
    .ack_all(0)
    .settle()
    .close(0)
    .raw_step(Kind::Advance, 0, &[8]);
    s
}

#[test]
fn unacknowledged_messages_are_resent_on_reconnect() {
    let outcome = run(&resend_after_reconnect());
    let dups: Vec<bool> = publishes(&outcome, 0).iter().map(|p| p.dup).collect();
    assert_eq!(
        dups,
        [false, true, false],
        "first sent, resent after reconnect, then the second (window 1)"
    );
    assert_eq!(outcome.metrics.sessions, 0, "expired after an hour");
}

/// The hand-made scripts, by name: the seeds of the fuzz target.
fn scripts() -> Vec<(&'static str, ScriptWriter)> {
    vec![
        ("publish-and-subscribe", publish_and_subscribe()),
        ("shared-system-retained", shared_system_and_retained()),
        ("takeover", takeover()),
        ("will-and-keep-alive", will_and_keep_alive()),
        ("auth-exchange", auth_exchange()),
        ("access-control", access_control()),
        ("raw-bytes", raw_bytes()),
        ("resend-after-reconnect", resend_after_reconnect()),
    ]
}

/// Every seed and every kept crash input passes.
#[test]
fn every_seed_and_regression_passes() {
    let inputs: Vec<PathBuf> = input_files(&seeds_dir())
        .into_iter()
        .chain(input_files(&regressions_dir()))
        .collect();
    assert!(!inputs.is_empty(), "no seeds in {}", seeds_dir().display());
    let failed: Vec<String> = inputs
        .iter()
        .filter_map(|path| {
            let data = fs::read(path).unwrap();
            replay(&data)
                .err()
                .map(|e| format!("{}: {e}", path.display()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs failed:\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
}

/// The seeds on disk are the hand-made scripts as they are now.
#[test]
fn the_seeds_are_up_to_date() {
    for (name, script) in scripts() {
        let path = seeds_dir().join(name);
        let on_disk = fs::read(&path).unwrap_or_default();
        assert_eq!(
            on_disk,
            script.into_bytes(),
            "{} is stale: run write_seeds",
            path.display()
        );
    }
}

/// Rewrites the seed corpus from [`scripts`]. Run by hand after changing them.
#[test]
#[ignore = "writes fuzz/seeds/broker/; run it by hand to regenerate the seed corpus"]
fn write_seeds() {
    let dir = seeds_dir();
    fs::create_dir_all(&dir).unwrap();
    for path in input_files(&dir) {
        fs::remove_file(path).unwrap();
    }
    for (name, script) in scripts() {
        fs::write(dir.join(name), script.into_bytes()).unwrap();
    }
}
