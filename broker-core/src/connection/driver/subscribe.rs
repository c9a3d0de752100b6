//! SUBSCRIBE and UNSUBSCRIBE: the limits they are checked against, the index and the
//! session's own record of its subscriptions, and the retained messages a subscription gets.

use std::sync::atomic::Ordering;

use std::time::Duration;

use mqtt_codec::{
    Packet, PacketId, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionId, UnsubAck, Unsubscribe,
};

use super::{Driver, Exit};
use crate::auth::{Action, Decision};
use crate::limits::Limit;
use crate::pipe::Pipe;
use crate::session::Delivery;

/// How long a SUBSCRIBE is worked on before the connection lets the others run. Its
/// filters' index updates and retained lookups are peer-sized work (a `+` filter walks every
/// branch it can match: 200 of them over 10,000 retained topics took 17 ms), and in one go
/// they held up the other connections served by the same worker, whose messages waited
/// behind it.
const SUBSCRIBE_SLICE: Duration = Duration::from_micros(100);

/// A SUBSCRIBE whose filters are handled a slice at a time.
pub(super) struct Subscribing {
    packet_id: PacketId,
    id: Option<SubscriptionId>,
    /// The filters not handled yet, with their authorization.
    rest: std::iter::Zip<std::vec::IntoIter<Subscription>, std::vec::IntoIter<Decision>>,
    /// The SUBACK's reason codes so far.
    codes: Vec<ReasonCode>,
    /// The retained messages found so far, queued once the SUBACK is sent.
    retained: Vec<Delivery>,
}

impl<P: Pipe> Driver<'_, P> {
    /// A SUBACK or UNSUBACK reason code refusing a filter: `code` for MQTT 5, Failure for
    /// 3.1.1 (its only refusal).
    fn refusal(&self, code: ReasonCode) -> ReasonCode {
        if self.version().is_v5() {
            code
        } else {
            ReasonCode::UnspecifiedError
        }
    }

    pub(super) fn on_subscribe(&mut self, subscribe: Subscribe) -> Option<Exit> {
        let filters = subscribe.subscriptions.len();
        if filters > self.limits().max_filters_per_packet {
            self.exceeded(Limit::FiltersPerPacket, "SUBSCRIBE");
            let refused = self.refusal(ReasonCode::QuotaExceeded);
            self.send(Packet::SubAck(SubAck {
                packet_id: subscribe.packet_id,
                reason_codes: vec![refused; filters],
                properties: Default::default(),
            }));
            return None;
        }
        match self.authorize_subscribe(subscribe) {
            Some((subscribe, decisions)) => self.subscribe_authorized(subscribe, decisions),
            None => None,
        }
    }

    /// Handles a SUBSCRIBE whose filters' authorization is decided (`decisions`, one per
    /// filter).
    pub(super) fn subscribe_authorized(
        &mut self,
        subscribe: Subscribe,
        decisions: Vec<Decision>,
    ) -> Option<Exit> {
        let codes = Vec::with_capacity(subscribe.subscriptions.len());
        self.subscribe_slice(Subscribing {
            packet_id: subscribe.packet_id,
            id: subscribe.properties.subscription_identifier,
            rest: subscribe.subscriptions.into_iter().zip(decisions),
            codes,
            retained: Vec::new(),
        })
    }

    /// Works on `subscribing` for at most [`SUBSCRIBE_SLICE`]: what is left waits (and the
    /// packets behind it) until the connection's next turn; once every filter is handled,
    /// the SUBACK goes and the session gets the retained messages.
    pub(super) fn subscribe_slice(&mut self, mut subscribing: Subscribing) -> Option<Exit> {
        let started = std::time::Instant::now();
        let id = subscribing.id;
        let max_subscriptions = self.limits().max_subscriptions;
        loop {
            if started.elapsed() >= SUBSCRIBE_SLICE && subscribing.rest.len() > 0 {
                self.hold_subscribe(subscribing);
                return None;
            }
            let Some((sub, decision)) = subscribing.rest.next() else {
                break;
            };
            let Subscribing {
                codes, retained, ..
            } = &mut subscribing;
            if !self.decided(Action::Subscribe, &sub.filter, decision) {
                if let Some(exit) = self.deny_exit() {
                    return Some(exit);
                }
                codes.push(self.refusal(ReasonCode::NotAuthorized));
                continue;
            }
            let mut options = sub.options;
            if self.param().bridge && sub.filter.shared().is_none() {
                // What a 3.1.1 bridge asked for with the protocol level's bridge bit.
                options.no_local = true;
                options.retain_as_published = true;
            }
            if let Err(limit) = self.limits().check_topic(&sub.filter) {
                self.exceeded(limit, "topic filter");
                codes.push(self.refusal(ReasonCode::TopicFilterInvalid));
                continue;
            }
            let existed = {
                let mut state = self.session.state.lock();
                let full = state.subscriptions.len() >= max_subscriptions
                    && !state.subscriptions.contains_key(&sub.filter);
                if full {
                    None
                } else {
                    Some(state.subscribe(sub.filter.clone(), options, id))
                }
            };
            let Some(existed) = existed else {
                self.exceeded(Limit::Subscriptions, "subscription");
                codes.push(self.refusal(ReasonCode::QuotaExceeded));
                continue;
            };
            self.broker
                .index_subscription(&self.session, &sub.filter, options, id);
            codes.push(match sub.options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            let send_retained = sub.filter.shared().is_none()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                // No more than the session's queue can hold.
                let room = self
                    .broker
                    .config
                    .max_mqueue_len
                    .saturating_sub(retained.len());
                for message in self.broker.retained_matching(&sub.filter, started, room) {
                    if !self.may_receive(&message.topic) {
                        continue;
                    }
                    let qos = message.qos.min(options.qos);
                    retained.push(Delivery::new(message, qos, true, id.into_iter().collect()));
                }
            }
        }
        let Subscribing {
            packet_id,
            codes,
            retained,
            ..
        } = subscribing;
        let mut suback = SubAck {
            packet_id,
            reason_codes: codes,
            properties: Default::default(),
        };
        if !self.version().is_v5() {
            suback.properties = Default::default();
        }
        self.send(Packet::SubAck(suback));
        for delivery in retained {
            // Retained messages never wait: the subscriber's own driver is the one here.
            let enqueued = self.session.offer(delivery, &self.broker.config, None);
            if enqueued.result.is_err() {
                self.broker
                    .metrics
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        None
    }

    pub(super) fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Option<Exit> {
        if unsubscribe.filters.len() > self.limits().max_filters_per_packet {
            self.exceeded(Limit::FiltersPerPacket, "UNSUBSCRIBE");
            if !self.version().is_v5() {
                // 3.1.1's UNSUBACK cannot refuse anything.
                return Some(Exit::Closed(ReasonCode::QuotaExceeded));
            }
            // UNSUBACK has no Quota exceeded: "valid, but not accepted".
            let codes = vec![ReasonCode::ImplementationSpecificError; unsubscribe.filters.len()];
            self.send(Packet::UnsubAck(UnsubAck {
                packet_id: unsubscribe.packet_id,
                reason_codes: codes,
                properties: Default::default(),
            }));
            return None;
        }
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let existed = self.session.state.lock().unsubscribe(filter);
            self.broker.index.remove(filter, self.session.key);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        if !self.version().is_v5() {
            codes.clear();
        }
        self.send(Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        }));
        None
    }
}
