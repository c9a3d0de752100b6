//! The client's PUBLISHes and their QoS flows: the checks a PUBLISH passes (limits, topic
//! aliases, authorization), routing it, and the acknowledgements it gets (PUBACK, PUBREC,
//! PUBCOMP; held while the store or full subscriber queues make it wait).

use mqtt_codec::{Ack, Packet, PacketId, Publish, PublishQoS, ReasonCode};
use tokio::time::Instant;

use super::{Driver, Exit};
use crate::Message;
use crate::auth::{Action, Decision};
use crate::broker::Routed;
use crate::pipe::Pipe;
use crate::session::Awaiting;

impl<P: Pipe> Driver<'_, P> {
    pub(super) fn on_publish(&mut self, mut publish: Publish) -> Option<Exit> {
        // Checked before an alias can remember the topic (an empty topic names one by alias,
        // already checked when it was set up).
        if let Err(limit) = self.limits().check_topic(publish.topic()) {
            self.exceeded(limit, "topic name");
            return self.refuse_publish(&publish, ReasonCode::TopicNameInvalid);
        }
        if let Some(alias) = publish.properties().topic_alias {
            if alias.get() > self.broker.config.max_topic_alias {
                return Some(self.protocol_error(ReasonCode::TopicAliasInvalid));
            }
            if publish.topic().is_empty() {
                let known = self
                    .aliases
                    .as_ref()
                    .and_then(|a| a.inbound.get(&alias.get()));
                match known {
                    Some(topic) => publish.set_topic(topic.clone()),
                    None => return Some(self.protocol_error(ReasonCode::ProtocolError)),
                }
            } else {
                self.aliases
                    .get_or_insert_default()
                    .inbound
                    .insert(alias.get(), publish.topic_name());
            }
        }
        if !publish.properties().subscription_identifiers.is_empty() {
            // A client may not send subscription identifiers (MQTT 5 3.3.4).
            return Some(self.protocol_error(ReasonCode::ProtocolError));
        }
        match self.authorize_publish(publish) {
            Some((publish, decision)) => self.publish_authorized(publish, decision),
            None => None,
        }
    }

    /// Handles a PUBLISH whose authorization is decided.
    pub(super) fn publish_authorized(
        &mut self,
        publish: Publish,
        decision: Decision,
    ) -> Option<Exit> {
        let v5 = self.version().is_v5();
        let allowed = self.decided(Action::Publish, publish.topic(), decision);
        if !allowed && let Some(exit) = self.deny_exit() {
            return Some(exit);
        }
        let forbidden = !allowed || !self.param().may_publish(publish.topic());
        if forbidden {
            self.broker
                .metrics
                .dropped_acl
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let now = Instant::now().into_std();
        match publish.qos {
            PublishQoS::AtMostOnce => {
                if !forbidden {
                    self.route(publish, now);
                }
            }
            PublishQoS::AtLeastOnce(id) => {
                let (code, ticket, parked) = if forbidden {
                    (ReasonCode::NotAuthorized, 0, None)
                } else {
                    let routed = self.route(publish, now);
                    let code = if routed.queued == 0 {
                        ReasonCode::NoMatchingSubscribers
                    } else {
                        ReasonCode::Success
                    };
                    (code, routed.ticket, routed.parked)
                };
                self.acknowledge_routed(Packet::PubAck(self.ack(id, code)), ticket, parked);
            }
            PublishQoS::ExactlyOnce(id) => {
                let mut state = self.session.state.lock();
                if state.inbound_qos2.contains(id.get()) {
                    // A resend of a message we already have: acknowledge, do not route again.
                    drop(state);
                    self.acknowledge(Packet::PubRec(self.ack(id, ReasonCode::Success)), 0);
                    return None;
                }
                if v5 && state.inbound_qos2.len() >= usize::from(self.broker.config.max_inflight) {
                    return Some(self.protocol_error(ReasonCode::ReceiveMaximumExceeded));
                }
                if forbidden && v5 {
                    drop(state);
                    self.acknowledge(Packet::PubRec(self.ack(id, ReasonCode::NotAuthorized)), 0);
                    return None;
                }
                let held = state.qos2_received(id);
                drop(state);
                let (code, ticket, parked) = if forbidden {
                    (ReasonCode::Success, held, None)
                } else {
                    let routed = self.route(publish, now);
                    let code = if routed.queued > 0 {
                        ReasonCode::Success
                    } else {
                        ReasonCode::NoMatchingSubscribers
                    };
                    (code, held.max(routed.ticket), routed.parked)
                };
                self.acknowledge_routed(Packet::PubRec(self.ack(id, code)), ticket, parked);
            }
        }
        None
    }

    /// Refuses a PUBLISH past a limit: an MQTT 5 client gets `code` in PUBACK or PUBREC (a
    /// QoS 0 message is dropped); 3.1.1 cannot say it, so its connection is closed.
    fn refuse_publish(&mut self, publish: &Publish, code: ReasonCode) -> Option<Exit> {
        if !self.version().is_v5() {
            return Some(Exit::Closed(code));
        }
        match publish.qos {
            PublishQoS::AtMostOnce => {}
            PublishQoS::AtLeastOnce(id) => {
                self.acknowledge(Packet::PubAck(self.ack(id, code)), 0);
            }
            PublishQoS::ExactlyOnce(id) => {
                self.acknowledge(Packet::PubRec(self.ack(id, code)), 0);
            }
        }
        None
    }

    /// An acknowledgement with `code`, which MQTT 3.1.1 cannot carry and gets as success.
    fn ack(&self, id: PacketId, code: ReasonCode) -> Ack {
        let mut ack = Ack::new(id);
        if self.version().is_v5() {
            ack.reason_code = code;
        }
        ack
    }

    /// Routes a client's PUBLISH.
    fn route(&self, mut publish: Publish, now: std::time::Instant) -> Routed {
        // Alias and expiry belong to this hop; what is left passes through to subscribers.
        let mut properties = publish.properties.take();
        let expiry = properties.as_mut().and_then(|p| {
            p.topic_alias = None;
            p.message_expiry_interval.take()
        });
        let properties = properties.filter(|p| !p.is_empty());
        let (qos, retain) = (publish.qos.qos(), publish.retain);
        // The topic and payload stay slices of the received frame: no copy.
        let (topic, payload) = publish.into_parts();
        let mut message =
            Message::new(topic, payload, qos, retain, properties).with_expiry_interval(expiry, now);
        message.publisher = Some(self.session.key);
        self.broker.publish_or_wait(message)
    }

    pub(super) fn on_pubrec(&mut self, ack: &Ack) {
        let mut state = self.session.state.lock();
        let position = state.inflight.iter().position(|f| {
            f.packet_id == ack.packet_id && matches!(f.state, Awaiting::PubRec | Awaiting::PubComp)
        });
        let reply = match position {
            Some(i) if ack.reason_code.is_error() => {
                // The client refused the message: the exchange ends here.
                state.remove_inflight(i);
                None
            }
            Some(i) => {
                if let Some(f) = state.inflight.get_mut(i) {
                    f.state = Awaiting::PubComp;
                    f.sent_at = Some(Instant::now().into_std());
                }
                state.progressed(i);
                Some(ReasonCode::Success)
            }
            None => Some(ReasonCode::PacketIdentifierNotFound),
        };
        drop(state);
        if let Some(code) = reply {
            self.send(Packet::PubRel(self.ack(ack.packet_id, code)));
        }
    }

    pub(super) fn on_pubrel(&mut self, ack: &Ack) {
        let known = self.session.state.lock().qos2_released(ack.packet_id);
        let code = if known {
            ReasonCode::Success
        } else {
            ReasonCode::PacketIdentifierNotFound
        };
        self.send(Packet::PubComp(self.ack(ack.packet_id, code)));
    }
}
