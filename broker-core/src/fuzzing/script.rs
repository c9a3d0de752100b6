//! Running one script: the steps read from the input, one at a time, against the broker
//! and the four clients, then the checks once everything has come to rest.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mqtt_codec::{Packet, ProtocolVersion, TopicName};

use super::client::Client;
use super::input::{self, Reader};
use super::{CLIENTS, Failure, FuzzAuth, Kind, MAX_STEPS, Outcome, WIND_DOWN, config, settle};
use crate::Broker;

/// A script being run.
pub(super) struct Script<'a> {
    input: Reader<'a>,
    broker: Arc<Broker>,
    clients: Vec<Client>,
    trace: Vec<String>,
    /// Topics the script published or subscribed to, for the index check.
    probes: Vec<TopicName>,
}

impl<'a> Script<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        let mut input = Reader::new(data);
        let flags = input.byte();
        let config = config(flags);
        let broker = if flags >> 3 & 1 == 1 {
            // Without a store, building cannot fail.
            Broker::builder(config.clone())
                .auth(Arc::new(FuzzAuth))
                .access(super::access::access())
                .build()
                .unwrap_or_else(|_| Broker::new(config))
        } else {
            Broker::new(config)
        };
        Self {
            input,
            broker,
            clients: (0..CLIENTS).map(|_| Client::new()).collect(),
            trace: vec![format!("config {flags:#010b}")],
            probes: Vec::new(),
        }
    }

    pub(super) async fn run(mut self) -> Result<Outcome, Failure> {
        for _ in 0..MAX_STEPS {
            if self.input.is_done() {
                break;
            }
            self.step().await;
        }
        settle().await;
        self.check("after the script")?;
        for client in &mut self.clients {
            client.close();
        }
        settle().await;
        tokio::time::sleep(WIND_DOWN).await;
        self.check("after every client closed")?;
        let metrics = self.broker.metrics();
        let mut report = Vec::new();
        if metrics.connections != 0 {
            report.push(format!(
                "{} connections still counted after every client closed",
                metrics.connections
            ));
        }
        for (n, client) in self.clients.iter_mut().enumerate() {
            for task in client.served.drain(..) {
                if !task.is_finished() {
                    report.push(format!(
                        "c{n}: the broker still serves a connection the client closed"
                    ));
                    task.abort();
                } else if let Err(e) = task.await
                    && e.is_panic()
                {
                    report.push(format!(
                        "c{n}: a connection task panicked: {}",
                        panic_message(e.into_panic())
                    ));
                }
            }
        }
        if !report.is_empty() {
            return Err(self.failure(report.join("\n")));
        }
        let received = self
            .clients
            .iter()
            .map(|c| std::mem::take(&mut c.seen.lock().packets))
            .collect();
        Ok(Outcome {
            trace: self.trace,
            received,
            metrics,
        })
    }

    fn failure(&mut self, report: String) -> Failure {
        Failure {
            report,
            trace: std::mem::take(&mut self.trace),
        }
    }

    /// The broker's invariants, and what the clients saw.
    fn check(&mut self, when: &str) -> Result<(), Failure> {
        let mut report = Vec::new();
        for (n, client) in self.clients.iter().enumerate() {
            for violation in &client.seen.lock().violations {
                report.push(format!("c{n}: {violation}"));
            }
        }
        if let Err(e) = self.broker.check_invariants(&self.probes) {
            report.push(e);
        }
        if report.is_empty() {
            return Ok(());
        }
        Err(self.failure(format!("{when}: {}", report.join("\n"))))
    }

    fn client(&mut self, n: usize) -> Option<&mut Client> {
        self.clients.get_mut(n)
    }

    async fn step(&mut self) {
        let step = self.input.byte();
        let n = usize::from(step & 3);
        let kind = Kind::of(step);
        let line = match kind {
            Kind::Close => {
                if let Some(c) = self.client(n) {
                    c.close();
                }
                "close".to_owned()
            }
            Kind::HalfClose => {
                if let Some(c) = self.client(n) {
                    c.half_close().await;
                }
                "half close".to_owned()
            }
            Kind::Settle => {
                settle().await;
                "settle".to_owned()
            }
            Kind::Advance => {
                let secs = self.input.pick(&[1, 2, 5, 10, 30, 61, 120, 3601, 7201]);
                tokio::time::sleep(Duration::from_secs(secs)).await;
                format!("advance {secs} s")
            }
            Kind::Reconnect => self.reconnect(n).await,
            Kind::Raw => {
                let len = usize::from(self.input.byte());
                let bytes = self.input.bytes(len).to_vec();
                self.send_raw(n, &bytes).await;
                format!("raw {bytes:02x?}")
            }
            Kind::Corrupt => {
                let at = usize::from(self.input.byte());
                let xor = self.input.byte().max(1);
                let inner = Kind::of(self.input.byte());
                match self.build(n, inner, false) {
                    Some((mut bytes, what)) => {
                        let len = bytes.len().max(1);
                        if let Some(b) = bytes.get_mut(at % len) {
                            *b ^= xor;
                        }
                        self.send_raw(n, &bytes).await;
                        format!("corrupt {what}: byte {} ^ {xor:#04x}", at % len)
                    }
                    None => format!("corrupt {inner:?}: nothing built"),
                }
            }
            _ => match self.build(n, kind, true) {
                Some((bytes, what)) => {
                    self.send(n, &bytes).await;
                    what
                }
                None => format!("{kind:?}: nothing built"),
            },
        };
        self.trace.push(format!("c{n}: {line}"));
    }

    /// Builds the packet of a packet-sending step for client `n`: its bytes and a line for
    /// the trace. A CONNECT on a client without a connection opens one; unless the bytes are
    /// sent as `scripted` (as built), what the broker answers is not decoded.
    fn build(&mut self, n: usize, kind: Kind, scripted: bool) -> Option<(BytesMut, String)> {
        let inflight = self.broker.config().max_inflight;
        let broker = Arc::clone(&self.broker);
        let version = self.client(n)?.version;
        let v5 = version.is_v5();
        let (packet, what) = match kind {
            Kind::Connect => {
                let connect = input::connect(&mut self.input)?;
                let what = format!(
                    "connect {:?} {:?} clean={} will={}",
                    connect.version,
                    connect.client_id.as_str(),
                    connect.clean_start,
                    connect.will.is_some()
                );
                let mut out = BytesMut::new();
                let packet = Packet::Connect(Box::new(connect.clone()));
                if let Err(e) = packet.encode(connect.version, &mut out) {
                    return Some((out, format!("{what}: not encodable ({e})")));
                }
                if let Some(will) = &connect.will {
                    self.probes.push(will.topic.clone());
                }
                let client = self.client(n)?;
                client.version = connect.version;
                if !client.is_open() {
                    // The broker's answers can be read only if it reads this CONNECT as built.
                    client.open(&broker, scripted.then_some(&connect), inflight);
                }
                client.last_connect = Some(connect);
                return Some((out, what));
            }
            Kind::Subscribe => {
                let subscribe = input::subscribe(&mut self.input, v5)?;
                let filters: Vec<&str> =
                    subscribe.subscriptions.iter().map(|s| &*s.filter).collect();
                let what = format!("subscribe {}", abbreviate(&filters.join(" ")));
                self.probes.extend(
                    subscribe
                        .subscriptions
                        .iter()
                        .filter_map(|s| crate::broker::probe_for(&s.filter)),
                );
                (Packet::Subscribe(subscribe), what)
            }
            Kind::Unsubscribe => {
                let unsubscribe = input::unsubscribe(&mut self.input)?;
                let filters: Vec<&str> = unsubscribe.filters.iter().map(|f| &**f).collect();
                let what = format!("unsubscribe {}", abbreviate(&filters.join(" ")));
                (Packet::Unsubscribe(unsubscribe), what)
            }
            Kind::Publish => {
                let publish = input::publish(&mut self.input, v5);
                let what = format!(
                    "publish {} q{:?} retain={} {} bytes",
                    abbreviate(publish.topic()),
                    publish.qos.qos(),
                    publish.retain,
                    publish.payload().len()
                );
                if !publish.topic().is_empty() {
                    self.probes.push(publish.topic_name());
                }
                (Packet::Publish(publish), what)
            }
            Kind::Ack => {
                let how = self.input.byte();
                let which = self.input.byte();
                let kind = input::ack_kind(how);
                let owed = self.client(n)?.seen.lock().owed.clone();
                let id = match (how >> 2 & 1 == 1, owed.len()) {
                    (true, len @ 1..) => owed.get(usize::from(which) % len).map(|(_, id)| *id),
                    _ => None,
                }
                .unwrap_or_else(|| input::packet_id(&mut Reader::new(&[which])));
                let packet = input::ack(kind, id, how >> 3, v5);
                self.client(n)?
                    .seen
                    .lock()
                    .acknowledged(kind, id, ack_refuses(&packet));
                (packet, format!("{kind:?} {}", id.get()))
            }
            Kind::AckAll => {
                let client = self.client(n)?;
                let owed = std::mem::take(&mut client.seen.lock().owed);
                let mut out = BytesMut::new();
                for (kind, id) in &owed {
                    client.seen.lock().acknowledged(*kind, *id, false);
                    let _ = input::ack(*kind, *id, 0, v5).encode(version, &mut out);
                }
                return Some((out, format!("ack all ({})", owed.len())));
            }
            Kind::Ping => (Packet::PingReq, "ping".to_owned()),
            Kind::Disconnect => {
                let disconnect = input::disconnect(&mut self.input, v5);
                let what = format!(
                    "disconnect {:?} expiry {:?}",
                    disconnect.reason_code, disconnect.properties.session_expiry_interval
                );
                (Packet::Disconnect(disconnect), what)
            }
            Kind::Auth => {
                let auth = input::auth(&mut self.input);
                let what = format!("auth {:?}", auth.reason_code);
                (Packet::Auth(auth), what)
            }
            Kind::Raw
            | Kind::Corrupt
            | Kind::Close
            | Kind::HalfClose
            | Kind::Advance
            | Kind::Reconnect
            | Kind::Settle => return None,
        };
        let mut out = BytesMut::new();
        match packet.encode(version, &mut out) {
            Ok(_) => Some((out, what)),
            Err(e) => Some((BytesMut::new(), format!("{what}: not encodable ({e})"))),
        }
    }

    /// Writes built bytes, opening a connection first if there is none (whose first packet
    /// is then not a CONNECT: the broker must refuse it).
    async fn send(&mut self, n: usize, bytes: &[u8]) {
        let broker = Arc::clone(&self.broker);
        let inflight = broker.config().max_inflight;
        let Some(client) = self.client(n) else { return };
        if !client.is_open() {
            client.open(&broker, None, inflight);
        }
        client.write(bytes).await;
    }

    /// Writes bytes the script did not build: the client's window can no longer be told.
    async fn send_raw(&mut self, n: usize, bytes: &[u8]) {
        if let Some(client) = self.client(n) {
            client.seen.lock().unscripted();
        }
        self.send(n, bytes).await;
    }

    async fn reconnect(&mut self, n: usize) -> String {
        let clean = self.input.byte() & 1 == 1;
        let broker = Arc::clone(&self.broker);
        let inflight = broker.config().max_inflight;
        let Some(client) = self.client(n) else {
            return "reconnect: no client".to_owned();
        };
        let last = client.last_connect.clone();
        let Some(mut connect) = last.or_else(|| {
            let id = input::client_id(n as u8)?;
            Some(mqtt_codec::Connect::new(ProtocolVersion::V5, id))
        }) else {
            return "reconnect: no client id".to_owned();
        };
        connect.clean_start = clean;
        client.close();
        client.open(&broker, Some(&connect), inflight);
        client.version = connect.version;
        let what = format!(
            "reconnect {:?} {:?} clean={clean}",
            connect.version,
            connect.client_id.as_str()
        );
        let mut out = BytesMut::new();
        if Packet::Connect(Box::new(connect))
            .encode(client.version, &mut out)
            .is_ok()
        {
            client.write(&out).await;
        }
        what
    }
}

/// Whether an acknowledgement refuses the message (an error reason code).
fn ack_refuses(packet: &Packet) -> bool {
    match packet {
        Packet::PubAck(ack) | Packet::PubRec(ack) | Packet::PubRel(ack) | Packet::PubComp(ack) => {
            ack.reason_code.is_error()
        }
        _ => false,
    }
}

/// The message a panic was raised with.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_owned(), |m| (*m).to_owned()),
    }
}

/// A long topic or filter list shortened for the trace.
fn abbreviate(text: &str) -> String {
    const KEEP: usize = 60;
    match text.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}... ({} bytes)", text.get(..at).unwrap_or(""), text.len()),
        None => text.to_owned(),
    }
}
