//! Publishing: the checks a message passes against this connection's CONNACK (Maximum
//! QoS, Retain Available, Maximum Packet Size), flow control within the server's Receive
//! Maximum (in-flight resends first, in order, then the queue), topic aliases within its
//! Topic Alias Maximum, and the PUBACK / PUBREC / PUBREL / PUBCOMP exchanges.

use mqtt_codec::{Ack, Packet, PacketId, Publish, QoS, ReasonCode, TopicName};
use std::num::NonZeroU16;

use super::{Connection, Event};
use crate::error::{Error, ProtocolError, PublishError};
use crate::options::Message;
use crate::params::ConnectionParams;
use crate::state::{Outbound, Stage, Ticket, to_publish};

impl Connection {
    /// Publishes `message`. QoS 0 is sent at once (connected only); QoS 1/2 joins the
    /// session state and is sent as soon as the server's Receive Maximum allows (before
    /// CONNACK, it waits for it). The outcome comes as [`Event::Published`] with the ticket.
    ///
    /// Refused here, never sent: a message the connected server cannot take (larger than
    /// its Maximum Packet Size, above its Maximum QoS, retained where it has none).
    pub fn publish(&mut self, message: Message) -> Result<Ticket, PublishError> {
        if self.is_closed() {
            return Err(PublishError::NotConnected);
        }
        if let Some(params) = self.connected() {
            check(params, &message)?;
        }
        if message.qos == QoS::AtMostOnce {
            if !self.is_connected() {
                return Err(PublishError::NotConnected);
            }
            let ticket = self.state.ticket();
            let publish = to_publish(&message, PacketId::from(NonZeroU16::MIN), false);
            let publish = self.with_alias(publish);
            self.send(Packet::Publish(publish));
            self.events.push_back(Event::Published {
                ticket,
                result: Ok(ReasonCode::Success),
            });
            return Ok(ticket);
        }
        let ticket = self.state.ticket();
        self.state.queued.push_back((ticket, message));
        self.pump();
        Ok(ticket)
    }

    /// Sends what the server's Receive Maximum has room for: messages in flight not yet sent
    /// on this connection (resends, DUP set, in order), then queued ones.
    pub(super) fn pump(&mut self) {
        let Some(params) = self.connected().cloned() else {
            return;
        };
        let window = usize::from(params.receive_maximum);
        let mut i = 0;
        while self.unsent > 0 && self.transmitted.len() < window {
            let Some(outbound) = self.state.outbound.get(i) else {
                self.unsent = 0;
                break;
            };
            if self.transmitted.contains(&outbound.packet_id) {
                i += 1;
                continue;
            }
            self.unsent -= 1;
            let id = outbound.packet_id;
            if outbound.stage == Stage::Qos2Released {
                self.send(Packet::PubRel(Ack::new(id)));
            } else if let Err(e) = check(&params, &outbound.message) {
                if let Some(failed) = self.state.remove(i) {
                    self.fail(failed.ticket, e);
                }
                continue;
            } else {
                let publish = to_publish(&outbound.message, id, outbound.sent);
                let publish = self.with_alias(publish);
                self.send(Packet::Publish(publish));
                if let Some(outbound) = self.state.outbound.get_mut(i) {
                    outbound.sent = true;
                }
            }
            self.transmitted.insert(id);
            i += 1;
        }
        while self.transmitted.len() < window {
            let Some((ticket, message)) = self.state.queued.pop_front() else {
                break;
            };
            if let Err(e) = check(&params, &message) {
                self.fail(ticket, e);
                continue;
            }
            let requests = &self.requests;
            let Some(id) = self.state.allocate_id(&requests.keys().copied().collect()) else {
                // Every identifier is taken: wait for one to come back.
                self.state.queued.push_front((ticket, message));
                break;
            };
            let publish = self.with_alias(to_publish(&message, id, false));
            self.send(Packet::Publish(publish));
            self.state.push_outbound(Outbound {
                ticket,
                packet_id: id,
                stage: if message.qos == QoS::ExactlyOnce {
                    Stage::Qos2Published
                } else {
                    Stage::Qos1
                },
                message,
                sent: true,
            });
            self.transmitted.insert(id);
        }
    }

    /// Reports a publication that failed.
    fn fail(&mut self, ticket: Ticket, error: PublishError) {
        self.events.push_back(Event::Published {
            ticket,
            result: Err(error),
        });
    }

    /// The PUBLISH with this connection's topic alias: the topic replaced by its alias when
    /// one is set, or a new alias set while the server's maximum allows.
    fn with_alias(&mut self, mut publish: Publish) -> Publish {
        let max = self.params.as_ref().map_or(0, |p| p.topic_alias_maximum);
        if !self.outbound_aliases || max == 0 || publish.topic().is_empty() {
            return publish;
        }
        let topic = publish.topic_name();
        let alias = match self.aliases_out.get(&topic) {
            Some(&alias) => {
                publish.set_topic(TopicName::empty());
                alias
            }
            None => {
                let Ok(next) = u16::try_from(self.aliases_out.len() + 1) else {
                    return publish;
                };
                if next > max {
                    return publish;
                }
                self.aliases_out.insert(topic, next);
                next
            }
        };
        publish.properties_mut().topic_alias = NonZeroU16::new(alias);
        publish
    }

    /// PUBACK: a QoS 1 message done.
    pub(super) fn handle_puback(&mut self, ack: &Ack) -> Result<(), Error> {
        let Some(index) = self.state.find(ack.packet_id) else {
            // Not ours (any more): a late acknowledgement of something already settled.
            return Ok(());
        };
        self.expect_stage(index, Stage::Qos1, Packet::PubAck(ack.clone()))?;
        self.complete(index, ack);
        Ok(())
    }

    /// PUBREC: a QoS 2 message accepted; PUBREL, or the end on a failure code.
    pub(super) fn handle_pubrec(&mut self, ack: &Ack) -> Result<(), Error> {
        let id = ack.packet_id;
        let Some(index) = self.state.find(id) else {
            let mut rel = Ack::new(id);
            if self.version().is_v5() {
                rel.reason_code = ReasonCode::PacketIdentifierNotFound;
            }
            self.send(Packet::PubRel(rel));
            return Ok(());
        };
        let stage = self.state.outbound.get(index).map(|o| o.stage);
        match stage {
            Some(Stage::Qos2Published) if ack.reason_code.is_error() => self.complete(index, ack),
            Some(Stage::Qos2Published) => {
                if let Some(outbound) = self.state.outbound.get_mut(index) {
                    outbound.stage = Stage::Qos2Released;
                }
                self.send(Packet::PubRel(Ack::new(id)));
            }
            // A PUBREC again: our PUBREL may have crossed it.
            Some(Stage::Qos2Released) => self.send(Packet::PubRel(Ack::new(id))),
            _ => {
                return Err(ProtocolError::WrongAck {
                    received: mqtt_codec::PacketType::PubRec,
                    packet_id: id.get(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// PUBCOMP: a QoS 2 message done.
    pub(super) fn handle_pubcomp(&mut self, ack: &Ack) -> Result<(), Error> {
        let Some(index) = self.state.find(ack.packet_id) else {
            return Ok(());
        };
        self.expect_stage(index, Stage::Qos2Released, Packet::PubComp(ack.clone()))?;
        self.complete(index, ack);
        Ok(())
    }

    /// The message in flight at `index` must be at `stage` for `packet`.
    fn expect_stage(&self, index: usize, stage: Stage, packet: Packet) -> Result<(), Error> {
        match self.state.outbound.get(index) {
            Some(outbound) if outbound.stage == stage => Ok(()),
            Some(outbound) => Err(ProtocolError::WrongAck {
                received: packet.packet_type(),
                packet_id: outbound.packet_id.get(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Removes the message at `index`, reports `ack`'s outcome and makes room for the next.
    fn complete(&mut self, index: usize, ack: &Ack) {
        let Some(done) = self.state.remove(index) else {
            return;
        };
        if !self.transmitted.remove(&done.packet_id) {
            self.unsent = self.unsent.saturating_sub(1);
        }
        let result = if ack.reason_code.is_error() {
            Err(PublishError::Refused {
                reason: ack.reason_code,
                reason_string: ack
                    .properties
                    .reason_string
                    .as_ref()
                    .map(ToString::to_string),
            })
        } else {
            Ok(ack.reason_code)
        };
        self.events.push_back(Event::Published {
            ticket: done.ticket,
            result,
        });
        self.pump();
    }
}

/// Whether the connected server can take `message`.
fn check(params: &ConnectionParams, message: &Message) -> Result<(), PublishError> {
    if message.qos > params.maximum_qos {
        return Err(PublishError::QosNotSupported {
            max: params.maximum_qos,
        });
    }
    if message.retain && !params.retain_available {
        return Err(PublishError::RetainNotAvailable);
    }
    let publish = to_publish(message, PacketId::from(NonZeroU16::MIN), false);
    // Sized with the full topic: an alias only makes it smaller.
    let size = Packet::Publish(publish)
        .encoded_len(params.version)
        .map_err(PublishError::Encode)?;
    if u32::try_from(size).map_or(true, |s| s > params.maximum_packet_size) {
        return Err(PublishError::TooLarge {
            size,
            max: params.maximum_packet_size,
        });
    }
    Ok(())
}
