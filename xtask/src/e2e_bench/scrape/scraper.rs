//! The scraper of the Prometheus-scrape section: a thread doing HTTP/1.1 GETs of
//! `/metrics` over `std::net::TcpStream` at a fixed rate (ticks from its start, not sleeps
//! after each answer), a new connection each (`Connection: close`, the dearer case
//! for the broker), with `Authorization: Bearer`. Each answer must be a 200 whose body has
//! [`EXPECTED_METRIC`]; it counts the scrapes, their latency (connect to the last byte) and
//! the failures.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A metric every scrape must contain.
pub(crate) const EXPECTED_METRIC: &str = "nanomq_connections_count";

/// How long one scrape may take before it counts as failed.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the scraper measured in one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scrapes {
    /// Each successful scrape's latency, milliseconds, in order.
    pub(crate) latencies_ms: Vec<f64>,
    /// The failures (status, missing metric, I/O), in order.
    pub(crate) failures: Vec<String>,
    /// How long the scraper ran, seconds.
    pub(crate) seconds: f64,
    /// The time between its ticks.
    pub(crate) interval: Duration,
}

impl Scrapes {
    /// The latency below which half the scrapes finished, ms.
    pub(crate) fn p50_ms(&self) -> Option<f64> {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }

    /// The slowest scrape, ms.
    pub(crate) fn max_ms(&self) -> Option<f64> {
        self.latencies_ms.iter().copied().reduce(f64::max)
    }

    /// The scrapes the fixed rate asked for over the time the scraper ran.
    pub(crate) fn expected(&self) -> u64 {
        (self.seconds / self.interval.as_secs_f64()).floor() as u64 + 1
    }
}

/// A thread scraping `/metrics` at a fixed interval until [`Self::finish`].
pub(crate) struct Scraper {
    /// Dropped (or sent to) to stop it: the thread sleeps on it, waking only at its ticks.
    stop: mpsc::Sender<()>,
    handle: JoinHandle<Scrapes>,
}

impl Scraper {
    /// Starts scraping the API at `addr` with `key`, every `interval`.
    pub(crate) fn start(addr: SocketAddr, key: &'static str, interval: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            let started = Instant::now();
            let mut scrapes = Scrapes {
                latencies_ms: Vec::new(),
                failures: Vec::new(),
                seconds: 0.0,
                interval,
            };
            let mut tick: u32 = 0;
            loop {
                let begun = Instant::now();
                match scrape(addr, key) {
                    Ok(()) => scrapes
                        .latencies_ms
                        .push(begun.elapsed().as_secs_f64() * 1e3),
                    Err(e) => scrapes.failures.push(format!("{e:#}")),
                }
                // A fixed rate: the next tick after now (a slow scrape skips the ticks it
                // overran instead of bunching them).
                let now = started.elapsed();
                while interval * tick <= now {
                    tick += 1;
                }
                let left = (interval * tick).saturating_sub(started.elapsed());
                // One wake-up per tick, and none in between (the broker shares 2 cores with
                // this process), yet finishing does not wait for the next tick.
                match stopped.recv_timeout(left) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            scrapes.seconds = started.elapsed().as_secs_f64();
            scrapes
        });
        Self { stop, handle }
    }

    /// Stops the scraper and returns what it measured.
    pub(crate) fn finish(self) -> Result<Scrapes> {
        drop(self.stop);
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("the scraper thread panicked"))
    }
}

/// One scrape: a GET of `/metrics`, which must answer 200 with [`EXPECTED_METRIC`].
fn scrape(addr: SocketAddr, key: &str) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Accept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .context("reading the answer")?;
    check_answer(&String::from_utf8_lossy(&answer))
}

/// Whether an HTTP answer is a 200 with [`EXPECTED_METRIC`] in its body.
fn check_answer(answer: &str) -> Result<()> {
    let status = answer.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1);
    if !status.starts_with("HTTP/1.") || code != Some("200") {
        bail!("answered {status:?}");
    }
    let Some((_, body)) = answer.split_once("\r\n\r\n") else {
        bail!("an answer without a body");
    };
    if !body.contains(EXPECTED_METRIC) {
        bail!("no {EXPECTED_METRIC} in {} bytes", body.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server on loopback answering each connection with `answer`, and the
    /// `Authorization` header of each request it read.
    fn serve(answer: &'static str) -> (SocketAddr, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    assert!(n > 0);
                    request.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8(request).unwrap();
                assert!(text.starts_with("GET /metrics HTTP/1.1\r\n"), "{text}");
                seen.extend(
                    text.lines()
                        .filter(|l| l.starts_with("Authorization: "))
                        .map(str::to_owned),
                );
                stream.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn a_scraper_counts_good_answers_at_ten_hertz_and_sends_the_key() {
        let (addr, server) = serve(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n\
             # TYPE nanomq_connections_count gauge\nnanomq_connections_count 3\n",
        );
        let scraper = Scraper::start(addr, "key-0123456789abcdef", Duration::from_millis(100));
        thread::sleep(Duration::from_millis(150));
        let scrapes = scraper.finish().unwrap();
        assert_eq!(scrapes.latencies_ms.len(), 2, "{scrapes:?}");
        assert!(scrapes.failures.is_empty(), "{scrapes:?}");
        assert_eq!(scrapes.expected(), 2);
        assert!(scrapes.p50_ms().is_some() && scrapes.max_ms() >= scrapes.p50_ms());
        assert_eq!(
            server.join().unwrap(),
            ["Authorization: Bearer key-0123456789abcdef"; 2]
        );
    }

    #[test]
    fn a_refused_or_empty_scrape_is_a_failure() {
        let (addr, _server) = serve("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
        let e = scrape(addr, "k").unwrap_err();
        assert!(format!("{e:#}").contains("401"), "{e:#}");
        assert!(check_answer("HTTP/1.1 200 OK\r\n\r\nnanomq_uptime 1\n").is_err());
        assert!(check_answer("garbage").is_err());
        assert!(check_answer("HTTP/1.1 200 OK\r\n\r\nnanomq_connections_count 0\n").is_ok());
    }
}
