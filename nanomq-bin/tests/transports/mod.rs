//! What the TLS and WebSocket end-to-end tests (`e2e_tls.rs`, `e2e_ws.rs`, `e2e_browser.rs`)
//! share on top of the harness in `e2e/`: a broker with every kind of listener on free
//! loopback ports and certificates generated for the test, the address each listener logged,
//! and `tests/python/transports.py`.

#![allow(
    dead_code,
    reason = "each end-to-end test file uses part of these helpers"
)]

use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e::{self, Broker};
#[cfg(feature = "tls")]
use crate::pki::{Alg, Issued, Pki};

/// How long a listener may take to appear in the log once the broker listens on TCP.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one Python script may run.
pub(crate) const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Certificates for a test (the `tls` feature): a CA, a server certificate for `localhost` and `127.0.0.1`, and a
/// client certificate (CN `device-1`) from the same CA.
#[cfg(feature = "tls")]
pub(crate) struct Certificates {
    /// Where the files are.
    pub(crate) dir: PathBuf,
    /// The CA.
    pub(crate) pki: Pki,
    /// The server's certificate and key.
    pub(crate) server: Issued,
    /// A client certificate the CA signed.
    pub(crate) client: Issued,
}

#[cfg(feature = "tls")]
impl Certificates {
    /// Generates them into a scratch directory for the test called `name`.
    pub(crate) fn generate(name: &str) -> Self {
        let dir = e2e::scratch_dir(&format!("{name}-certs"));
        let pki = Pki::new(&dir, "ca");
        let server = pki.server("server", Alg::EcdsaP256);
        let client = pki.client("client", "device-1");
        Self {
            dir,
            pki,
            server,
            client,
        }
    }

    /// The CA certificate file.
    pub(crate) fn ca(&self) -> &Path {
        &self.pki.ca
    }

    /// The TLS keys of a listener table serving the server certificate, with `extra` lines.
    pub(crate) fn tls_keys(&self, extra: &str) -> String {
        format!(
            "certfile = \"{}\"\nkeyfile = \"{}\"\ncacertfile = \"{}\"\n{extra}",
            self.server.cert.display(),
            self.server.key.display(),
            self.pki.ca.display()
        )
    }
}

#[cfg(feature = "tls")]
impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A configuration with a TCP listener (which the harness waits for) and the given listener
/// tables, all on free loopback ports, and `[mqtt]` lines `mqtt`.
pub(crate) fn config(listeners: &str, mqtt: &str) -> String {
    format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\n{listeners}\n[mqtt]\n{mqtt}\n\n\
         [log]\nlevel = \"info\"\nto = \"console\"\n"
    )
}

/// A listener table `[listeners.NAME]` on a free loopback port, with `extra` lines.
pub(crate) fn listener(name: &str, extra: &str) -> String {
    format!("[listeners.{name}]\nbind = \"127.0.0.1:0\"\n{extra}\n")
}

/// The address of the broker's `scheme` listener, from its `listening on SCHEME://IP:PORT`
/// log line.
pub(crate) fn address(broker: &Broker, scheme: &str) -> SocketAddr {
    broker.logged_address(&format!("listening on {scheme}://"))
}

/// Runs `tests/python/transports.py` with `args` and returns its JSON summary (its last line).
pub(crate) fn transports_py(args: &[&str]) -> Value {
    let python = e2e::python();
    let started = Instant::now();
    let output = e2e::run(
        Command::new(python)
            .arg(e2e::python_script("transports.py"))
            .args(args),
        SCRIPT_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "transports.py {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
    println!(
        "transports.py {}: {:.2?}",
        args.join(" "),
        started.elapsed()
    );
    let last = output.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "transports.py printed no JSON summary ({e}):\n{}\n{}",
            output.stdout, output.stderr
        )
    })
}

/// Asserts a `transports.py pubsub` summary shows a connection that got its three messages.
#[track_caller]
pub(crate) fn assert_pubsub_worked(summary: &Value) {
    assert_eq!(summary["connected"], true, "{summary}");
    assert_eq!(
        summary["granted"],
        serde_json::json!([0, 1, 2]),
        "{summary}"
    );
    let received = summary["received"].as_array().unwrap();
    let mut qos: Vec<u64> = received.iter().map(|m| m[2].as_u64().unwrap()).collect();
    qos.sort_unstable();
    assert_eq!(qos, [0, 1, 2], "{summary}");
    for message in received {
        let payload = message[1].as_str().unwrap();
        assert!(payload.starts_with("hello at QoS "), "{summary}");
    }
}
