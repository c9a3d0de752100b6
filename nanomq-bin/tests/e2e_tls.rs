//! End to end over TLS: the real `nanomq` binary with an `[listeners.ssl]` listener on an
//! ephemeral loopback port, its certificates generated for the test (rcgen), driven by
//! `mosquitto_pub`/`mosquitto_sub` with `--cafile` and by paho-mqtt with TLS.
//!
//! Covered: publish/subscribe over TLS 1.2 and 1.3 with mosquitto and paho (MQTT 3.1.1 and
//! 5.0); mutual TLS (a client certificate from the CA is accepted, none is refused when
//! `fail_if_no_peer_cert`, one from another CA is refused); clients that open TCP and send
//! nothing do not hold up anyone's handshake; a bad certificate or key file stops the
//! start-up with the file and the problem named.
//!
//! Missing tools fail these tests with the command that installs them; they never skip.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;
#[path = "../../transport-tls/tests/support/pki.rs"]
mod pki;
mod transports;

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Background, Broker, require_on_path, run};
use transports::{Certificates, address, assert_pubsub_worked, config, listener, transports_py};

/// How long one mosquitto client may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker with an ssl listener on `certificates`, its table extended by `ssl_extra`.
fn tls_broker(name: &str, certificates: &Certificates, ssl_extra: &str) -> (Broker, SocketAddr) {
    let ssl = listener("ssl", &certificates.tls_keys(ssl_extra));
    let broker = Broker::start_with_config(name, &config(&ssl, ""));
    let address = address(&broker, "ssl");
    (broker, address)
}

/// `program` (`mosquitto_pub`, `mosquitto_sub`) towards `address` over TLS trusting the test
/// CA, with its output line-buffered (the test waits for `mosquitto_sub -d`'s SUBACK line).
fn mosquitto(program: &str, address: SocketAddr, certificates: &Certificates) -> Command {
    require_on_path("mosquitto_pub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut command = Command::new("stdbuf");
    command
        .args(["-oL", program])
        .args(["-h", &address.ip().to_string()])
        .args(["-p", &address.port().to_string()])
        .arg("--cafile")
        .arg(certificates.ca());
    command
}

#[test]
fn mosquitto_clients_over_tls_1_2_and_1_3() {
    let certificates = Certificates::generate("tls-mosquitto");
    let (broker, address) = tls_broker("tls-mosquitto", &certificates, "");

    for (version, tls_version) in [("mqttv311", "tlsv1.2"), ("mqttv5", "tlsv1.3")] {
        let topic = format!("tls/mosquitto/{version}");
        let mut sub = Background::spawn(
            mosquitto("mosquitto_sub", address, &certificates)
                .args(["-V", version, "--tls-version", tls_version])
                .args([
                    "-t",
                    &topic,
                    "-q",
                    "1",
                    "-C",
                    "2",
                    "-d",
                    "-F",
                    "MSG|%t|%q|%p",
                ]),
        );
        sub.wait_for_line(|line| line.contains("received SUBACK"), CLIENT_TIMEOUT);
        for (qos, payload) in [("0", "over TLS at QoS 0"), ("1", "over TLS at QoS 1")] {
            let output = run(
                mosquitto("mosquitto_pub", address, &certificates)
                    .args(["-V", version, "--tls-version", tls_version])
                    .args(["-t", &topic, "-q", qos, "-m", payload]),
                CLIENT_TIMEOUT,
            );
            assert!(
                output.status.success(),
                "mosquitto_pub {version} {tls_version}: {}\n{}",
                output.stdout,
                output.stderr
            );
        }
        let output = sub.finish(CLIENT_TIMEOUT);
        assert!(output.status.success(), "{}", output.stderr);
        let messages: Vec<&str> = output
            .stdout
            .lines()
            .filter(|line| line.starts_with("MSG|"))
            .collect();
        assert_eq!(
            messages,
            [
                format!("MSG|{topic}|0|over TLS at QoS 0"),
                format!("MSG|{topic}|1|over TLS at QoS 1")
            ],
            "{version} {tls_version}: {}",
            output.stdout
        );
    }

    // A client that does not trust the server's CA gives up.
    let other = Certificates::generate("tls-mosquitto-other");
    let output = run(
        mosquitto("mosquitto_pub", address, &other).args(["-t", "x", "-m", "untrusted"]),
        CLIENT_TIMEOUT,
    );
    assert!(!output.status.success(), "{}", output.stdout);
    broker.stop();
}

#[test]
fn paho_over_tls() {
    let certificates = Certificates::generate("tls-paho");
    let (broker, address) = tls_broker("tls-paho", &certificates, "");
    let port = address.port().to_string();
    let ca = certificates.ca().to_str().unwrap();
    for (protocol, tls_version) in [("311", "1.2"), ("5", "1.3"), ("5", "1.2")] {
        let summary = transports_py(&[
            "pubsub",
            "127.0.0.1",
            &port,
            "--protocol",
            protocol,
            "--cafile",
            ca,
            "--tls-version",
            tls_version,
        ]);
        assert_pubsub_worked(&summary);
        assert_eq!(
            summary["tls_version"],
            format!("TLSv{tls_version}"),
            "{summary}"
        );
    }
    broker.stop();
}

#[test]
fn mutual_tls() {
    let certificates = Certificates::generate("tls-mutual");
    let (broker, address) = tls_broker(
        "tls-mutual",
        &certificates,
        "verify_peer = true\nfail_if_no_peer_cert = true\nuse_identity_as_username = true\n",
    );
    let port = address.port().to_string();
    let ca = certificates.ca().to_str().unwrap();

    // A certificate from the CA: accepted, with mosquitto and paho.
    let output = run(
        mosquitto("mosquitto_pub", address, &certificates)
            .arg("--cert")
            .arg(&certificates.client.cert)
            .arg("--key")
            .arg(&certificates.client.key)
            .args(["-t", "mtls/ok", "-q", "1", "-m", "with a certificate"]),
        CLIENT_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "a good client certificate was refused: {}\n{}",
        output.stdout,
        output.stderr
    );
    let summary = transports_py(&[
        "pubsub",
        "127.0.0.1",
        &port,
        "--protocol",
        "5",
        "--cafile",
        ca,
        "--cert",
        certificates.client.cert.to_str().unwrap(),
        "--key",
        certificates.client.key.to_str().unwrap(),
    ]);
    assert_pubsub_worked(&summary);

    // No certificate: refused, by mosquitto_pub and paho alike, over TLS 1.2 and 1.3.
    for tls_version in ["tlsv1.2", "tlsv1.3"] {
        let output = run(
            mosquitto("mosquitto_pub", address, &certificates)
                .args(["--tls-version", tls_version])
                .args(["-t", "mtls/refused", "-q", "1", "-m", "no certificate"]),
            CLIENT_TIMEOUT,
        );
        assert!(
            !output.status.success(),
            "{tls_version}: a client without a certificate was accepted"
        );
    }
    for tls_version in ["1.2", "1.3"] {
        let summary = transports_py(&[
            "pubsub",
            "127.0.0.1",
            &port,
            "--protocol",
            "311",
            "--cafile",
            ca,
            "--tls-version",
            tls_version,
        ]);
        assert_eq!(summary["connected"], false, "{summary}");
    }

    // A certificate from another CA: refused.
    let stranger = Certificates::generate("tls-mutual-stranger");
    let output = run(
        mosquitto("mosquitto_pub", address, &certificates)
            .arg("--cert")
            .arg(&stranger.client.cert)
            .arg("--key")
            .arg(&stranger.client.key)
            .args([
                "-t",
                "mtls/stranger",
                "-q",
                "1",
                "-m",
                "foreign certificate",
            ]),
        CLIENT_TIMEOUT,
    );
    assert!(
        !output.status.success(),
        "a certificate from another CA was accepted"
    );
    broker.stop();
}

#[test]
fn silent_clients_do_not_hold_up_handshakes() {
    let certificates = Certificates::generate("tls-silent");
    // A long handshake timeout: had the accept loop waited on one silent client, the others
    // would have waited a minute.
    let ssl = listener("ssl", &certificates.tls_keys(""));
    let broker =
        Broker::start_with_config("tls-silent", &config(&ssl, "connect_timeout = \"60s\""));
    let address = address(&broker, "ssl");
    let silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    let started = Instant::now();
    for i in 0..3 {
        let output = run(
            mosquitto("mosquitto_pub", address, &certificates).args([
                "-t",
                "silent/t",
                "-q",
                "1",
                "-m",
                &format!("message {i}"),
            ]),
            CLIENT_TIMEOUT,
        );
        assert!(output.status.success(), "{}", output.stderr);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "handshakes waited for the silent clients: {:?}",
        started.elapsed()
    );
    drop(silent);
    broker.stop();
}

/// Starts `nanomq` on `config` and returns its standard error, asserting it failed.
fn start_refused(name: &str, config: &str) -> String {
    let dir = e2e::scratch_dir(name);
    let path = dir.join("nanomq.toml");
    fs::write(&path, config).unwrap();
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_nanomq"))
            .arg("start")
            .arg("--conf")
            .arg(&path)
            .env_remove("RUST_LOG"),
        Duration::from_secs(30),
    );
    assert!(
        !output.status.success(),
        "nanomq started with:\n{config}\n{}",
        output.stderr
    );
    assert!(
        !output.stderr.contains("listening on"),
        "nothing may listen: {}",
        output.stderr
    );
    output.stderr
}

#[test]
fn a_bad_certificate_or_key_stops_the_start_naming_the_file() {
    let certificates = Certificates::generate("tls-bad-files");
    let dir = &certificates.dir;
    let not_pem = dir.join("not-pem.txt");
    fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let other = certificates.pki.server("other", pki::Alg::Ed25519);
    let missing = dir.join("missing.pem");
    let table = |cert: &std::path::Path, key: &std::path::Path| {
        listener(
            "ssl",
            &format!(
                "certfile = \"{}\"\nkeyfile = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        )
    };
    let server = &certificates.server;
    let cases = [
        (
            table(&not_pem, &server.key),
            format!("certfile {}: no certificate in it", not_pem.display()),
        ),
        (
            table(&missing, &server.key),
            format!("certfile {}: cannot read it", missing.display()),
        ),
        (
            table(&server.cert, &not_pem),
            format!("keyfile {}: no private key in it", not_pem.display()),
        ),
        (
            table(&server.cert, &other.key),
            format!(
                "keyfile {}: the private key does not belong to the certificate",
                other.key.display()
            ),
        ),
    ];
    for (i, (ssl, expected)) in cases.iter().enumerate() {
        let stderr = start_refused(&format!("tls-bad-file-{i}"), &config(ssl, ""));
        assert!(
            stderr.contains(expected.as_str()),
            "expected {expected:?} in:\n{stderr}"
        );
        assert!(stderr.contains("ssl listener"), "{stderr}");
    }
    // The same files through [listeners.wss].
    if !cfg!(feature = "ws") {
        return;
    }
    let wss = listener(
        "wss",
        &format!(
            "certfile = \"{}\"\nkeyfile = \"{}\"\n",
            server.cert.display(),
            not_pem.display()
        ),
    );
    let stderr = start_refused("tls-bad-file-wss", &config(&wss, ""));
    assert!(
        stderr.contains(&format!("keyfile {}: no private key", not_pem.display())),
        "{stderr}"
    );
    assert!(stderr.contains("wss listener"), "{stderr}");
}
