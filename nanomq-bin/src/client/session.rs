//! [`Client`]: one connection used one step at a time, as `nanomq pub` and `nanomq sub` do:
//! publish with the full QoS 1/2 exchange, subscribe and check the SUBACK, answer the broker's
//! QoS flows, keep the connection alive, and disconnect cleanly. With `-d`, every packet is
//! printed to standard error.

use std::collections::HashSet;
use std::num::NonZeroU16;
use std::time::Duration;

use mqtt_codec::{
    Ack, Disconnect, Packet, PacketId, Publish, PublishQoS, QoS, ReasonCode, Subscribe,
    SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter, UserProperty,
};
use tokio::time::Instant;

use super::conn::Connection;
use super::error::ClientError;

/// A connected client.
pub(crate) struct Client {
    /// The connection.
    conn: Connection,
    /// The next packet identifier to use.
    next_id: PacketId,
    /// Print packets to standard error.
    debug: bool,
    /// How often to ping when nothing else is sent (`None`: keep alive off).
    keepalive: Option<Duration>,
    /// When we last sent a packet.
    last_sent: Instant,
    /// QoS 2 messages received whose PUBREL has not arrived: a PUBLISH with one of these
    /// identifiers is a resend, not a new message.
    inbound_qos2: HashSet<PacketId>,
}

/// What [`Client::next_event`] returns.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message to hand to the user (a QoS 2 resend is not one).
    Message(Publish),
    /// Nothing for the user (an ack, a ping response, a resent QoS 2 message).
    Nothing,
}

impl Client {
    /// Wraps an accepted connection; `keepalive` is the CONNECT's, unless the broker's
    /// CONNACK imposed another.
    pub(crate) fn new(conn: Connection, keepalive: u16, debug: bool) -> Self {
        let keepalive = conn
            .connack
            .properties
            .server_keep_alive
            .unwrap_or(keepalive);
        if debug {
            eprintln!(
                "<- {}",
                describe(&Packet::ConnAck(Box::new(conn.connack.clone())))
            );
        }
        Self {
            conn,
            next_id: PacketId::from(NonZeroU16::MIN),
            debug,
            keepalive: (keepalive > 0).then(|| Duration::from_secs(u64::from(keepalive))),
            last_sent: Instant::now(),
            inbound_qos2: HashSet::new(),
        }
    }

    /// A fresh packet identifier.
    fn packet_id(&mut self) -> PacketId {
        let id = self.next_id;
        self.next_id = id.next();
        id
    }

    /// Sends one packet.
    pub(crate) async fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        if self.debug {
            eprintln!("-> {}", describe(packet));
        }
        self.conn.writer.send(packet).await?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next packet from the broker. A DISCONNECT or the connection's end is an error.
    /// Cancel safe.
    pub(crate) async fn recv(&mut self) -> Result<Packet, ClientError> {
        let packet = self.conn.reader.next().await?.ok_or(ClientError::Closed)?;
        if self.debug {
            eprintln!("<- {}", describe(&packet));
        }
        match packet {
            Packet::Disconnect(d) => Err(ClientError::Disconnected {
                reason: d.reason_code,
                reason_string: d.properties.reason_string.as_ref().map(ToString::to_string),
            }),
            other => Ok(other),
        }
    }

    /// When the next PINGREQ is due, if keep alive is on.
    pub(crate) fn ping_due(&self) -> Option<Instant> {
        // Three quarters of the interval: well before the broker's 1.5x limit.
        self.keepalive.map(|k| self.last_sent + k.mul_f64(0.75))
    }

    /// Sends PINGREQ.
    pub(crate) async fn ping(&mut self) -> Result<(), ClientError> {
        self.send(&Packet::PingReq).await
    }

    /// Publishes, and for QoS 1 and 2 waits for the broker's acknowledgement.
    pub(crate) async fn publish(&mut self, mut publish: Publish) -> Result<(), ClientError> {
        let qos = publish.qos.qos();
        let id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(self.packet_id()),
        };
        if let Some(id) = id {
            publish.qos = PublishQoS::with_packet_id(qos, id);
        }
        self.send(&Packet::Publish(publish)).await?;
        let Some(id) = id else {
            return Ok(());
        };
        if qos == QoS::AtLeastOnce {
            let ack = self.wait_ack(id, AckKind::Ack).await?;
            return check_ack(&ack);
        }
        let rec = self.wait_ack(id, AckKind::Received).await?;
        check_ack(&rec)?;
        self.send(&Packet::PubRel(Ack::new(id))).await?;
        let comp = self.wait_ack(id, AckKind::Complete).await?;
        check_ack(&comp)
    }

    /// Waits for the acknowledgement `kind` of packet `id`, answering what else arrives.
    async fn wait_ack(&mut self, id: PacketId, kind: AckKind) -> Result<Ack, ClientError> {
        loop {
            let packet = self.recv().await?;
            let ack = match (kind, packet) {
                (AckKind::Ack, Packet::PubAck(ack))
                | (AckKind::Received, Packet::PubRec(ack))
                | (AckKind::Complete, Packet::PubComp(ack)) => ack,
                (_, other) => {
                    self.handle(other).await?;
                    continue;
                }
            };
            if ack.packet_id == id {
                return Ok(ack);
            }
            return Err(ClientError::Protocol(format!(
                "acknowledgement for packet {}, expected {}",
                ack.packet_id.get(),
                id.get()
            )));
        }
    }

    /// Subscribes to `filters` and checks that every one was granted. Returns the messages
    /// that arrived before the SUBACK (already acknowledged), for the caller to deliver first.
    pub(crate) async fn subscribe(
        &mut self,
        filters: &[TopicFilter],
        qos: QoS,
        user_properties: Vec<UserProperty>,
    ) -> Result<Vec<Publish>, ClientError> {
        let id = self.packet_id();
        let subscribe = Subscribe {
            packet_id: id,
            subscriptions: filters
                .iter()
                .map(|filter| Subscription {
                    filter: filter.clone(),
                    options: SubscriptionOptions::new(qos),
                })
                .collect(),
            properties: SubscribeProperties {
                user_properties,
                ..SubscribeProperties::default()
            },
        };
        self.send(&Packet::Subscribe(subscribe)).await?;
        let mut early = Vec::new();
        loop {
            match self.recv().await? {
                Packet::SubAck(ack) if ack.packet_id == id => {
                    for (filter, reason) in filters.iter().zip(&ack.reason_codes) {
                        if reason.is_error() {
                            return Err(ClientError::SubscribeRefused {
                                filter: filter.to_string(),
                                reason: *reason,
                            });
                        }
                    }
                    return Ok(early);
                }
                other => {
                    // A broker may route a message to the new subscription before its
                    // SUBACK is written.
                    if let Event::Message(publish) = self.handle(other).await? {
                        early.push(publish);
                    }
                }
            }
        }
    }

    /// Answers one packet from the broker (the QoS flows) and says whether it is a message
    /// for the user.
    pub(crate) async fn handle(&mut self, packet: Packet) -> Result<Event, ClientError> {
        match packet {
            Packet::Publish(publish) => match publish.qos {
                PublishQoS::AtMostOnce => Ok(Event::Message(publish)),
                PublishQoS::AtLeastOnce(id) => {
                    self.send(&Packet::PubAck(Ack::new(id))).await?;
                    Ok(Event::Message(publish))
                }
                PublishQoS::ExactlyOnce(id) => {
                    let new = self.inbound_qos2.insert(id);
                    self.send(&Packet::PubRec(Ack::new(id))).await?;
                    Ok(if new {
                        Event::Message(publish)
                    } else {
                        Event::Nothing
                    })
                }
            },
            Packet::PubRel(rel) => {
                self.inbound_qos2.remove(&rel.packet_id);
                self.send(&Packet::PubComp(Ack::new(rel.packet_id))).await?;
                Ok(Event::Nothing)
            }
            Packet::PingResp
            | Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubComp(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_) => Ok(Event::Nothing),
            other => Err(ClientError::Protocol(format!(
                "unexpected {:?} from the broker",
                other.packet_type()
            ))),
        }
    }

    /// Sends DISCONNECT and closes the connection.
    pub(crate) async fn disconnect(mut self) -> Result<(), ClientError> {
        self.send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
            .await?;
        self.conn.writer.shutdown().await;
        Ok(())
    }
}

/// Which acknowledgement a publish waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckKind {
    /// PUBACK.
    Ack,
    /// PUBREC.
    Received,
    /// PUBCOMP.
    Complete,
}

/// A failure reason code in an acknowledgement is a refusal.
fn check_ack(ack: &Ack) -> Result<(), ClientError> {
    if ack.reason_code.is_error() {
        Err(ClientError::PublishRefused {
            reason: ack.reason_code,
            reason_string: ack
                .properties
                .reason_string
                .as_ref()
                .map(ToString::to_string),
        })
    } else {
        Ok(())
    }
}

/// One line about a packet, for `-d`.
pub(crate) fn describe(packet: &Packet) -> String {
    match packet {
        Packet::Connect(c) => format!(
            "CONNECT (v{}, client id `{}`, clean {}, keep alive {}s{})",
            c.version,
            c.client_id.as_str(),
            c.clean_start,
            c.keep_alive,
            if c.username.is_some() {
                ", user name"
            } else {
                ""
            }
        ),
        Packet::ConnAck(c) => format!(
            "CONNACK (session present {}, {} 0x{:02X})",
            c.session_present,
            c.reason_code.description(),
            c.reason_code.as_u8()
        ),
        Packet::Publish(p) => format!(
            "PUBLISH (topic `{}`, QoS {}{}{}{}, {} bytes)",
            p.topic(),
            p.qos.qos().as_u8(),
            p.qos
                .packet_id()
                .map(|id| format!(", id {}", id.get()))
                .unwrap_or_default(),
            if p.retain { ", retain" } else { "" },
            if p.dup { ", dup" } else { "" },
            p.payload().len()
        ),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => format!(
            "{:?} (id {}, 0x{:02X})",
            packet.packet_type(),
            a.packet_id.get(),
            a.reason_code.as_u8()
        ),
        Packet::Disconnect(d) => format!(
            "DISCONNECT ({} 0x{:02X})",
            d.reason_code.description(),
            d.reason_code.as_u8()
        ),
        other => format!("{:?}", other.packet_type()),
    }
}
