//! What goes to the client: messages in flight and queued, within its receive maximum and
//! maximum packet size, as PUBLISH packets under this connection's version and topic aliases.

use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use mqtt_codec::{Ack, Packet, PacketId, Publish, PublishQoS, QoS, TopicName};
use tokio::time::Instant;

use super::{Driver, WRITE_BATCH};
use crate::message::{Encoded, Variant};
use crate::pipe::Pipe;
use crate::session::{Awaiting, Delivery, InFlight};

impl<P: Pipe> Driver<'_, P> {
    /// Moves what the session has for the client onto the write buffer: first messages in
    /// flight that this connection has not sent yet (after a reconnect: the same packet
    /// identifiers, DUP set, in order), then queued messages, while the client's receive
    /// maximum allows. Returns whether it stopped at the batch size with more to send.
    pub(super) fn pump(&mut self) -> bool {
        let now = Instant::now().into_std();
        let window = usize::from(
            self.broker
                .config
                .max_inflight
                .min(self.param().receive_maximum)
                .max(1),
        );
        let session = Arc::clone(&self.session);
        let mut state = session.state.lock();
        let expired = state.drop_expired(now);
        if expired > 0 {
            self.broker
                .metrics
                .dropped_expired
                .fetch_add(expired as u64, Ordering::Relaxed);
        }
        let mut in_window = state.sent_in_flight();
        // PUBLISH packets by QoS: added to the broker's counters once, at the end.
        let mut sent = [0u64; 3];
        let mut i = 0;
        while i < state.inflight.len() && in_window < window && self.out.len() < WRITE_BATCH {
            let Some(f) = state.inflight.get(i) else {
                break;
            };
            if f.sent_at.is_some() {
                i += 1;
                continue;
            }
            let packet = match f.state {
                Awaiting::PubComp => Packet::PubRel(Ack::new(f.packet_id)),
                Awaiting::PubAck | Awaiting::PubRec => {
                    let qos = PublishQoS::with_packet_id(f.delivery.qos, f.packet_id);
                    let dup = f.ever_sent;
                    let delivery = f.delivery.clone();
                    match self.outgoing_publish(&delivery, qos, dup, now) {
                        Some(publish) => {
                            count_publish(&mut sent, delivery.qos);
                            Packet::Publish(publish)
                        }
                        None => {
                            // Too large for this connection: dropped, its identifier freed.
                            state.remove_inflight(i);
                            continue;
                        }
                    }
                }
            };
            if let Some(f) = state.inflight.get_mut(i) {
                f.sent_at = Some(now);
                f.ever_sent = true;
            }
            // Sent again after a reconnect: the store already has its identifier and state.
            self.encode(&packet);
            in_window += 1;
            i += 1;
        }
        let broker = self.broker;
        while self.out.len() < WRITE_BATCH {
            // Room made: deliveries parked behind the queue (their publishers held) go in.
            let next = match state.pop() {
                Some(delivery) => Some(delivery),
                None if state.admit_parked(&broker.config) > 0 => state.pop(),
                None => None,
            };
            let Some(delivery) = next else {
                break;
            };
            if delivery.qos != QoS::AtMostOnce && in_window >= window {
                state.unpop(delivery);
                break;
            }
            let packet_id = if delivery.qos == QoS::AtMostOnce {
                None
            } else {
                match state.allocate_packet_id() {
                    Some(id) => Some(id),
                    None => {
                        state.unpop(delivery);
                        break;
                    }
                }
            };
            let qos = match packet_id {
                Some(id) => PublishQoS::with_packet_id(delivery.qos, id),
                None => PublishQoS::AtMostOnce,
            };
            if !self.write_publish(&delivery, qos, packet_id, now) {
                state.discarded(&delivery);
                continue;
            }
            count_publish(&mut sent, delivery.qos);
            if let Some(packet_id) = packet_id {
                state.inflight.push_back(InFlight {
                    packet_id,
                    state: if delivery.qos == QoS::ExactlyOnce {
                        Awaiting::PubRec
                    } else {
                        Awaiting::PubAck
                    },
                    delivery,
                    sent_at: Some(now),
                    ever_sent: true,
                });
                state.progressed(state.inflight.len() - 1);
                in_window += 1;
            }
        }
        state.admit_parked(&broker.config);
        state.refill(&session);
        let more = self.out.len() >= WRITE_BATCH
            && (!state.queue.is_empty() || state.inflight.iter().any(|f| f.sent_at.is_none()));
        drop(state);
        self.broker.metrics.count_sent(sent);
        more
    }

    /// Puts the first send of `delivery` on the write buffer: the message's shared
    /// encoding where this connection takes it the plain way, its own PUBLISH otherwise.
    /// False if it is larger than the client accepts (dropped, counted).
    fn write_publish(
        &mut self,
        delivery: &Delivery,
        qos: PublishQoS,
        packet_id: Option<PacketId>,
        now: std::time::Instant,
    ) -> bool {
        // Most messages go to one session: no variant to work out for them.
        let shared = delivery.message.shared_encoding.is_enabled();
        if let Some(variant) = shared.then(|| self.plain_variant(delivery)).flatten() {
            let version = self.version();
            let encoded = delivery.message.shared_encoding.get(variant, || {
                let message = &delivery.message;
                let mut publish = Publish::new(message.topic.clone(), message.payload.clone());
                // A placeholder: each subscriber writes its own into its copy.
                publish.qos =
                    PublishQoS::with_packet_id(variant.qos, PacketId::from(NonZeroU16::MIN));
                publish.retain = variant.retain;
                let mut buf = BytesMut::new();
                Packet::Publish(publish).encode(version, &mut buf).ok()?;
                Encoded::new(variant, buf.freeze())
            });
            let max = self.param().maximum_packet_size as usize;
            if let Some(encoded) = encoded.filter(|e| e.len() <= max) {
                encoded.append_to(packet_id, &mut self.out);
                self.out_packets = self.out_packets.saturating_add(1);
                return true;
            }
        }
        let Some(publish) = self.outgoing_publish(delivery, qos, false, now) else {
            return false;
        };
        self.encode(&Packet::Publish(publish));
        true
    }

    /// How this connection takes `delivery` if it takes it the plain way: no properties of
    /// its own (none passed through, no subscription identifiers, no expiry, no topic
    /// alias), so that its bytes are every such subscriber's but for the packet id.
    fn plain_variant(&self, delivery: &Delivery) -> Option<Variant> {
        let message = &delivery.message;
        let v5 = self.version().is_v5();
        let own_properties = message.properties.is_some()
            || !delivery.subscription_ids.is_empty()
            || message.expires_at.is_some()
            || self.alias_limit() > 0;
        (!v5 || !own_properties).then_some(Variant {
            v5,
            qos: delivery.qos,
            retain: delivery.retain,
        })
    }

    /// The topic aliases this connection may set up for the client.
    fn alias_limit(&self) -> u16 {
        self.param()
            .topic_alias_maximum
            .min(self.broker.config.max_topic_alias)
    }

    /// The PUBLISH for `delivery` under this connection's parameters, or `None` (counted)
    /// if it is larger than the client accepts.
    fn outgoing_publish(
        &mut self,
        delivery: &Delivery,
        qos: PublishQoS,
        dup: bool,
        now: std::time::Instant,
    ) -> Option<Publish> {
        let message = &delivery.message;
        let v5 = self.version().is_v5();
        let expiry = message.remaining_expiry(now);
        let ids = &delivery.subscription_ids;
        let properties =
            if v5 && (message.properties.is_some() || !ids.is_empty() || expiry.is_some()) {
                let mut p = message.properties.as_deref().cloned().unwrap_or_default();
                p.subscription_identifiers.clone_from(ids);
                p.message_expiry_interval = expiry;
                Some(Box::new(p))
            } else {
                None
            };
        // Shares the message's topic and payload: no copy per subscriber.
        let mut publish = Publish::new(message.topic.clone(), message.payload.clone());
        publish.dup = dup;
        publish.qos = qos;
        publish.retain = delivery.retain;
        publish.properties = properties;
        let max = self.param().maximum_packet_size;
        let fits = publish
            .encoded_len(self.version())
            .is_ok_and(|len| len <= max as usize);
        if !fits {
            // MQTT 5 3.1.2.11.4: discard it for this client, as if it had been delivered.
            tracing::debug!(client = %self.param().client_id, topic = %message.topic, "message larger than the client's maximum packet size dropped");
            self.broker
                .metrics
                .dropped_too_large
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if v5 {
            self.apply_topic_alias(&mut publish, &message.topic);
        }
        Some(publish)
    }

    /// Replaces the topic with an alias the client already knows, or sets one up while the
    /// client's (and our) alias maximum allows.
    fn apply_topic_alias(&mut self, publish: &mut Publish, topic: &TopicName) {
        let limit = self.alias_limit();
        if limit == 0 {
            return;
        }
        let outbound = &mut self.aliases.get_or_insert_default().outbound;
        if let Some(alias) = outbound.get(topic) {
            publish.properties_mut().topic_alias = Some(*alias);
            publish.set_topic(TopicName::empty());
        } else if outbound.len() < usize::from(limit) {
            let next = outbound.len() as u16 + 1;
            if let Some(alias) = NonZeroU16::new(next) {
                outbound.insert(topic.clone(), alias);
                publish.properties_mut().topic_alias = Some(alias);
            }
        }
    }
}

/// Counts one PUBLISH sent at `qos` in `sent` (indexed by QoS).
fn count_publish(sent: &mut [u64; 3], qos: QoS) {
    if let Some(n) = sent.get_mut(qos as usize) {
        *n += 1;
    }
}
