//! What the server sends us: messages (topic aliases resolved, QoS 1 acknowledged, QoS 2
//! deduplicated by the session's identifiers awaiting PUBREL, within our Receive Maximum),
//! PUBREL, and the answers to SUBSCRIBE / UNSUBSCRIBE, which are sent from here too.

use mqtt_codec::{
    Ack, Packet, PacketId, Publish, PublishQoS, ReasonCode, SubAck, Subscribe, SubscribeProperties,
    Subscription, TopicFilter, UnsubAck, Unsubscribe, UnsubscribeProperties,
};

use super::{Connection, Event, Request};
use crate::error::{Error, ProtocolError};

impl Connection {
    /// A PUBLISH from the server.
    pub(super) fn handle_publish(&mut self, mut publish: Publish) -> Result<(), Error> {
        if let Some(alias) = publish.properties().topic_alias {
            let max = self.connect.properties.topic_alias_maximum.unwrap_or(0);
            if alias.get() > max {
                return Err(ProtocolError::TopicAliasInvalid(alias.get()).into());
            }
            if publish.topic().is_empty() {
                let topic = self
                    .aliases_in
                    .get(&alias.get())
                    .ok_or(ProtocolError::TopicAliasInvalid(alias.get()))?;
                publish.set_topic(topic.clone());
            } else {
                self.aliases_in.insert(alias.get(), publish.topic_name());
            }
            // The alias is this connection's business, not the message's.
            publish.properties_mut().topic_alias = None;
        }
        match publish.qos {
            PublishQoS::AtMostOnce => {}
            PublishQoS::AtLeastOnce(id) => {
                if !self.manual_acks {
                    self.send(Packet::PubAck(Ack::new(id)));
                }
            }
            PublishQoS::ExactlyOnce(id) => {
                if self.state.inbound_qos2.contains(&id) {
                    // A resend of one we have: acknowledge again (unless the user still
                    // holds it), deliver once.
                    if !self.held.contains(&id) {
                        self.send(Packet::PubRec(Ack::new(id)));
                    }
                    return Ok(());
                }
                if let Some(max) = self.connect.properties.receive_maximum
                    && self.state.inbound_qos2.len() >= usize::from(max.get())
                {
                    return Err(ProtocolError::ReceiveMaximumExceeded.into());
                }
                // Recorded at once, acknowledged or not: the user has it, and a resend after
                // a reconnect must not be delivered a second time.
                self.state.inbound_qos2.insert(id);
                if self.manual_acks {
                    self.held.insert(id);
                } else {
                    self.send(Packet::PubRec(Ack::new(id)));
                }
            }
        }
        self.events.push_back(Event::Message(publish));
        Ok(())
    }

    /// With manual acknowledgements: the user has put `publish` (delivered by this
    /// connection or an earlier one of the session) somewhere safe; PUBACK or PUBREC goes
    /// out. Nothing to do for QoS 0, and nothing to send once the connection has ended (the
    /// server resends an unacknowledged QoS 1 message to the next one; a QoS 2 one is
    /// acknowledged when resent).
    pub fn acknowledge(&mut self, publish: &Publish) {
        if !self.is_connected() {
            return;
        }
        match publish.qos {
            PublishQoS::AtMostOnce => {}
            PublishQoS::AtLeastOnce(id) => self.send(Packet::PubAck(Ack::new(id))),
            PublishQoS::ExactlyOnce(id) => {
                if self.held.remove(&id) {
                    self.send(Packet::PubRec(Ack::new(id)));
                }
            }
        }
    }

    /// PUBREL: a QoS 2 message of the server's is done.
    pub(super) fn handle_pubrel(&mut self, rel: &Ack) {
        let mut comp = Ack::new(rel.packet_id);
        if !self.state.inbound_qos2.remove(&rel.packet_id) && self.version().is_v5() {
            comp.reason_code = ReasonCode::PacketIdentifierNotFound;
        }
        self.send(Packet::PubComp(comp));
    }

    /// SUBACK.
    pub(super) fn handle_suback(&mut self, ack: SubAck) -> Result<(), Error> {
        match self.requests.get(&ack.packet_id) {
            Some(&Request::Subscribe(n)) if n == ack.reason_codes.len() => {
                self.requests.remove(&ack.packet_id);
                self.events.push_back(Event::Subscribed {
                    packet_id: ack.packet_id,
                    reason_codes: ack.reason_codes,
                });
                Ok(())
            }
            _ => Err(ProtocolError::BadSubAck(ack.packet_id.get()).into()),
        }
    }

    /// UNSUBACK.
    pub(super) fn handle_unsuback(&mut self, ack: UnsubAck) -> Result<(), Error> {
        let v5 = self.version().is_v5();
        match self.requests.get(&ack.packet_id) {
            Some(&Request::Unsubscribe(n)) if !v5 || n == ack.reason_codes.len() => {
                self.requests.remove(&ack.packet_id);
                let reason_codes = if v5 {
                    ack.reason_codes
                } else {
                    vec![ReasonCode::Success; n]
                };
                self.events.push_back(Event::Unsubscribed {
                    packet_id: ack.packet_id,
                    reason_codes,
                });
                Ok(())
            }
            _ => Err(ProtocolError::BadSubAck(ack.packet_id.get()).into()),
        }
    }

    /// Sends SUBSCRIBE; the SUBACK comes as [`Event::Subscribed`] with the returned packet
    /// identifier. Connected only; a SUBSCRIBE the server cannot take (too large, a v5
    /// option on 3.1.1) is refused here.
    pub fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<PacketId, Error> {
        if subscriptions.is_empty() {
            return Err(Error::Usage(
                "SUBSCRIBE needs at least one filter".to_owned(),
            ));
        }
        let n = subscriptions.len();
        self.request(Request::Subscribe(n), |packet_id| {
            Packet::Subscribe(Subscribe {
                packet_id,
                subscriptions,
                properties,
            })
        })
    }

    /// Sends UNSUBSCRIBE; the UNSUBACK comes as [`Event::Unsubscribed`].
    pub fn unsubscribe(
        &mut self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<PacketId, Error> {
        if filters.is_empty() {
            return Err(Error::Usage(
                "UNSUBSCRIBE needs at least one filter".to_owned(),
            ));
        }
        let n = filters.len();
        self.request(Request::Unsubscribe(n), |packet_id| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
    }

    /// Sends the request `build` makes with a free packet identifier, once checked.
    fn request(
        &mut self,
        request: Request,
        build: impl FnOnce(PacketId) -> Packet,
    ) -> Result<PacketId, Error> {
        let Some(params) = self.connected() else {
            return Err(Error::NotConnected);
        };
        let (version, max) = (params.version, params.maximum_packet_size);
        let busy = self.requests.keys().copied().collect();
        let packet_id = self
            .state
            .allocate_id(&busy)
            .ok_or_else(|| Error::Usage("every packet identifier is in use".to_owned()))?;
        let packet = build(packet_id);
        let size = packet.encoded_len(version)?;
        if u32::try_from(size).map_or(true, |s| s > max) {
            return Err(Error::Encode(mqtt_codec::EncodeError::PacketTooLarge {
                size,
                max,
            }));
        }
        self.requests.insert(packet_id, request);
        self.send(packet);
        Ok(packet_id)
    }
}
