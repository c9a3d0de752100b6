//! End to end in a browser: MQTT.js (the `mqtt` npm package's browser bundle) running in
//! headless Chromium (Debian's `chromium`) talks to the real `nanomq` binary over ws:// and
//! wss://, publishing and receiving.
//!
//! The test serves `tests/browser/index.html` and `mqtt.min.js` from a small HTTP server of
//! its own on a loopback port, starts Chromium on that page (a fresh profile directory, no
//! sandbox, no GPU, no background networking), and watches the page's MQTT traffic over TCP
//! with `mosquitto_sub`: the page subscribes, publishes a message that comes back to it,
//! announces itself, receives a message the test publishes over TCP with `mosquitto_pub`, and
//! publishes its result as JSON. For wss://, Chromium is told to accept the test's
//! self-made CA with `--ignore-certificate-errors` (a fresh profile has no way to trust it
//! otherwise without NSS tools); the certificate is still a real one, served by the broker.
//!
//! Chromium, MQTT.js and mosquitto-clients are installed by `cargo xtask test`; when one is
//! missing the test fails with the command that installs it, it never skips.

#![cfg(feature = "ws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod e2e;
#[cfg(feature = "tls")]
#[path = "../../transport-tls/tests/support/pki.rs"]
mod pki;
mod transports;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{Background, Broker, require_on_path, run};
use serde_json::Value;
use transports::{address, config, listener};

/// How long the page may take to load, connect and subscribe (Chromium's first start in a
/// fresh profile included).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a mosquitto client may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `npm install mqtt` puts the package (xtask's prerequisites do it).
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The MQTT.js browser bundle, or a failure saying how to install it.
fn mqtt_js() -> Vec<u8> {
    let bundle = browser_dir().join("node_modules/mqtt/dist/mqtt.min.js");
    std::fs::read(&bundle).unwrap_or_else(|e| {
        panic!(
            "MQTT.js is missing ({}: {e}): run `cargo xtask test` (which installs it), or \
             `npm install --prefix {} mqtt@5`",
            bundle.display(),
            browser_dir().display()
        )
    })
}

/// A tiny HTTP server for the test page and MQTT.js, stopped when dropped.
struct PageServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl PageServer {
    fn start() -> Self {
        let page = std::fs::read(browser_dir().join("index.html")).unwrap();
        let bundle = mqtt_js();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                // One request per connection; a failed one only fails the page.
                let _ = serve_one(stream, &page, &bundle);
            }
        });
        Self { address, stop }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

/// Answers one HTTP request: the page, the bundle, or 404.
fn serve_one(stream: TcpStream, page: &[u8], bundle: &[u8]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let (status, content_type, body) = match path {
        "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", page),
        "/mqtt.min.js" => ("200 OK", "text/javascript; charset=utf-8", bundle),
        _ => ("404 Not Found", "text/plain", &b"not found"[..]),
    };
    let mut stream = &stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

/// Headless Chromium on `url`, with a fresh profile in `profile`.
fn chromium(url: &str, profile: &Path, ignore_certificate_errors: bool) -> Background {
    require_on_path("chromium", "chromium");
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    if ignore_certificate_errors {
        command.arg("--ignore-certificate-errors");
    }
    command.arg(url);
    Background::spawn(&mut command)
}

/// `mosquitto_sub` (line-buffered, debug output) on every topic of the page `id` over TCP;
/// returns once it is subscribed.
fn watch(broker: &Broker, id: &str) -> Background {
    require_on_path("mosquitto_sub", "mosquitto-clients");
    require_on_path("stdbuf", "coreutils");
    let mut sub = Background::spawn(
        Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                &broker.host(),
                "-p",
                &broker.port(),
            ])
            .args(["-t", &format!("browser/{id}/#"), "-q", "1", "-v", "-d"]),
    );
    sub.wait_for_line(|line| line.contains("received SUBACK"), CLIENT_TIMEOUT);
    sub
}

/// Runs the page against `broker_url` and checks it published and received.
fn browser_round_trip(
    broker: &Broker,
    name: &str,
    broker_url: &str,
    version: u8,
    ignore_certificate_errors: bool,
) {
    let started = Instant::now();
    let id = name.to_owned();
    let mut sub = watch(broker, &id);
    let pages = PageServer::start();
    let profile = e2e::scratch_dir(&format!("{name}-chromium-profile"));
    let page = format!(
        "http://{}/index.html?url={broker_url}&id={id}&version={version}",
        pages.address
    );
    let mut browser = chromium(&page, &profile, ignore_certificate_errors);

    let ready_topic = format!("browser/{id}/ready ");
    let ready = sub.wait_for_line(|line| line.starts_with(&ready_topic), BROWSER_TIMEOUT);
    assert!(ready.contains("HeadlessChrome"), "{ready}");
    let output = run(
        Command::new("mosquitto_pub")
            .args(["-h", &broker.host(), "-p", &broker.port()])
            .args(["-t", &format!("browser/{id}/to"), "-q", "1"])
            .args(["-m", "hello from mosquitto over TCP"]),
        CLIENT_TIMEOUT,
    );
    assert!(output.status.success(), "{}", output.stderr);

    let result_topic = format!("browser/{id}/result ");
    let result = sub.wait_for_line(|line| line.starts_with(&result_topic), BROWSER_TIMEOUT);
    let result: Value = serde_json::from_str(&result[result_topic.len()..]).unwrap();
    let chromium_log = browser.kill();
    assert_eq!(
        result["ok"], true,
        "{result}\nChromium:\n{}",
        chromium_log.stderr
    );
    assert_eq!(result["version"], version, "{result}");
    let got: Vec<(String, String)> = result["got"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["topic"].as_str().unwrap().to_owned(),
                m["payload"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        got.contains(&(
            format!("browser/{id}/echo"),
            "echo from the browser".to_owned()
        )),
        "{result}"
    );
    assert!(
        got.contains(&(
            format!("browser/{id}/to"),
            "hello from mosquitto over TCP".to_owned()
        )),
        "{result}"
    );
    let _ = std::fs::remove_dir_all(&profile);
    println!("{name}: {:.2?}", started.elapsed());
}

#[test]
fn mqtt_js_in_chromium_over_websocket() {
    let broker = Broker::start_with_config("browser-ws", &config(&listener("ws", ""), ""));
    let ws = address(&broker, "ws");
    browser_round_trip(
        &broker,
        "browser-ws-v5",
        &format!("ws://{ws}/mqtt"),
        5,
        false,
    );
    browser_round_trip(
        &broker,
        "browser-ws-v4",
        &format!("ws://{ws}/mqtt"),
        4,
        false,
    );
    broker.stop();
}

#[cfg(feature = "tls")]
#[test]
fn mqtt_js_in_chromium_over_secure_websocket() {
    let certificates = transports::Certificates::generate("browser-wss");
    let wss = listener("wss", &certificates.tls_keys(""));
    let broker = Broker::start_with_config("browser-wss", &config(&wss, ""));
    let wss = address(&broker, "wss");
    browser_round_trip(
        &broker,
        "browser-wss-v4",
        &format!("wss://{wss}/mqtt"),
        4,
        true,
    );
    broker.stop();
}
