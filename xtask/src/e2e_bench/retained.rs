//! The side clients of the retained-lookup scenario: [`preload`] publishes
//! [`RETAINED`] retained messages (`r/<i>/x`) before the run, and a [`Flood`] keeps the
//! broker answering SUBSCRIBEs of filters that match none of them while `nanomq bench`
//! measures another client's latency.
//!
//! A SUBSCRIBE makes a broker look up every filter's retained messages before it answers:
//! peer-sized work, which must not hold other clients' messages up. The flood stays within
//! nanomq's default limits (256 filters per packet, 1,024 subscriptions per session): each
//! SUBSCRIBE of [`FILTERS_PER_PACKET`] fresh filters is followed by the UNSUBSCRIBE of the
//! same filters, two such pairs in flight at a time, as fast as the broker answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::raw::{self, Client, packet, push_string};

/// Retained messages the broker holds during the scenario.
pub(crate) const RETAINED: usize = 10_000;

/// Filters per SUBSCRIBE (and UNSUBSCRIBE) of the flood.
pub(crate) const FILTERS_PER_PACKET: usize = 200;

/// How long the broker may take to answer one packet of a side client.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The filters a flood subscribes to; none matches a retained message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filters {
    /// `r/<i>/none`: the branch of one retained topic, then a level it does not have.
    Literal,
    /// `r/+/none-<k>`: every branch under `r` (all [`RETAINED`] of them), none with that
    /// last level; the most a non-matching filter can cost an index of retained messages.
    Wildcard,
}

impl Filters {
    /// The `j`th filter of the `k`th SUBSCRIBE: distinct from the others of its packet and
    /// from those still subscribed (the UNSUBSCRIBEs before removed them).
    fn filter(self, k: u64, j: usize) -> String {
        match self {
            Self::Literal => format!(
                "r/{}/none",
                (k as usize * FILTERS_PER_PACKET + j) % RETAINED
            ),
            Self::Wildcard => format!("r/+/none-{k}-{j}"),
        }
    }

    /// How the scenario's name says it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Literal => "r/<i>/none",
            Self::Wildcard => "r/+/none-<k>",
        }
    }
}

/// Publishes the retained messages, and checks that the broker holds the last one (a
/// connection's packets are handled in order, so then it holds them all).
pub(crate) fn preload(addr: SocketAddr) -> Result<()> {
    let mut client = Client::connect(addr, "retained preload", "bench-retainer", ANSWER_TIMEOUT)?;
    let mut batch = Vec::new();
    for i in 0..RETAINED {
        let mut body = Vec::new();
        push_string(&mut body, &format!("r/{i}/x"))?;
        body.extend_from_slice(format!("retained {i}").as_bytes());
        // QoS 0, retain.
        batch.extend_from_slice(&packet(raw::PUBLISH | 0x01, &body)?);
        if batch.len() >= 64 * 1024 {
            client.write(&batch)?;
            batch.clear();
        }
    }
    let last = format!("r/{}/x", RETAINED - 1);
    let mut subscribe = vec![0x00, 0x01];
    push_string(&mut subscribe, &last)?;
    subscribe.push(0x00);
    batch.extend_from_slice(&packet(raw::SUBSCRIBE, &subscribe)?);
    client.write(&batch)?;
    let (mut suback, mut retained) = (false, false);
    while !(suback && retained) {
        let (first, body) = client.read_packet()?;
        match first & 0xF0 {
            raw::SUBACK if body == [0x00, 0x01, 0x00] => suback = true,
            raw::PUBLISH if first & 0x01 == 0x01 => retained = true,
            _ => bail!("retained preload: unexpected packet {first:02x} {body:02x?}"),
        }
    }
    // Its own subscription ends with it (clean session).
    client.disconnect()
}

/// A client flooding the broker with SUBSCRIBE/UNSUBSCRIBE pairs in its own thread, until
/// [`Flood::finish`].
#[derive(Debug)]
pub(crate) struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Answered>>,
}

/// What the broker answered during a flood.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Answered {
    /// SUBACKs received.
    pub(crate) subacks: u64,
    /// Filters they refused (0x80).
    pub(crate) refused: u64,
}

impl Flood {
    /// Connects and starts flooding with `filters`.
    pub(crate) fn start(addr: SocketAddr, filters: Filters) -> Result<Self> {
        let client = Client::connect(addr, "subscribe flood", "bench-flood", ANSWER_TIMEOUT)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || flood(client, filters, &stop))
        };
        Ok(Self { stop, thread })
    }

    /// Stops flooding; what the broker answered.
    pub(crate) fn finish(self) -> Result<Answered> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(answered) => answered,
            Err(_) => bail!("subscribe flood: its thread panicked"),
        }
    }
}

/// The SUBSCRIBE (QoS 0) and the UNSUBSCRIBE of the `k`th batch of filters.
fn pair(filters: Filters, k: u64) -> Result<Vec<u8>> {
    // Packet ids 1..=65,534: SUBSCRIBE odd, UNSUBSCRIBE even.
    let id = ((k % 32_767) * 2 + 1) as u16;
    let mut subscribe = id.to_be_bytes().to_vec();
    let mut unsubscribe = (id + 1).to_be_bytes().to_vec();
    for j in 0..FILTERS_PER_PACKET {
        let filter = filters.filter(k, j);
        push_string(&mut subscribe, &filter)?;
        subscribe.push(0x00);
        push_string(&mut unsubscribe, &filter)?;
    }
    let mut out = packet(raw::SUBSCRIBE, &subscribe)?;
    out.extend_from_slice(&packet(raw::UNSUBSCRIBE, &unsubscribe)?);
    Ok(out)
}

/// Reads the SUBACK and UNSUBACK of one pair into `answered`.
fn read_pair(client: &mut Client, answered: &mut Answered) -> Result<()> {
    for expected in [raw::SUBACK, raw::UNSUBACK] {
        let (first, body) = client
            .read_packet()
            .context("subscribe flood: the broker did not answer")?;
        if first != expected {
            bail!("subscribe flood: expected {expected:02x}, got {first:02x} {body:02x?}");
        }
        if first == raw::SUBACK {
            answered.subacks += 1;
            let codes = body.get(2..).unwrap_or_default();
            answered.refused += codes.iter().filter(|&&c| c == 0x80).count() as u64;
        }
    }
    Ok(())
}

fn flood(mut client: Client, filters: Filters, stop: &AtomicBool) -> Result<Answered> {
    let mut answered = Answered::default();
    let mut k = 0u64;
    client.write(&pair(filters, k)?)?;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        client.write(&pair(filters, k)?)?;
        read_pair(&mut client, &mut answered)?;
    }
    read_pair(&mut client, &mut answered)?;
    client.disconnect()?;
    Ok(answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_of_a_run_are_distinct_and_match_no_retained_topic() {
        for filters in [Filters::Literal, Filters::Wildcard] {
            let all: Vec<String> = (0..RETAINED as u64 / FILTERS_PER_PACKET as u64)
                .flat_map(|k| (0..FILTERS_PER_PACKET).map(move |j| filters.filter(k, j)))
                .collect();
            let mut sorted = all.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), all.len(), "{filters:?}");
            assert!(
                all.iter()
                    .all(|f| f.starts_with("r/") && !f.ends_with("/x"))
            );
        }
    }

    #[test]
    fn a_pair_stays_within_the_default_limits() {
        let bytes = pair(Filters::Wildcard, 70_000).unwrap_or_default();
        // Two-byte remaining length, then the packet id.
        assert_eq!(bytes.first(), Some(&raw::SUBSCRIBE));
        let id = u16::from_be_bytes([bytes[3], bytes[4]]);
        assert_eq!(id % 2, 1);
        const { assert!(FILTERS_PER_PACKET <= 256 && FILTERS_PER_PACKET * 2 <= 1024) };
    }
}
