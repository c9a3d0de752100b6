//! Flow control towards a publisher (`mqueue_full = "backpressure"`): while one of its
//! QoS 1/2 PUBLISHes waits for room in full subscriber queues, its acknowledgement is held
//! and the PUBLISHes after it are not handled.
//!
//! The driver does not stop while it is blocked: it keeps writing what its own session
//! has for its client, and keeps handling the acknowledgements and pings its client sends,
//! so its own queue drains and two clients publishing to each other cannot deadlock. Only
//! PUBLISH, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT and AUTH wait, in the order they came: the
//! QoS 1/2 ones within the broker's Receive Maximum (MQTT 5: a client past it is closed
//! with 0x93), all of them within `DEFERRED_BYTES`, past which the driver stops reading
//! and TCP pushes back (MQTT 3.1.1 has no receive maximum). A PUBLISH or SUBSCRIBE waiting
//! for a remote authorization answer holds what follows it the same way.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use mqtt_codec::{Packet, PublishQoS, ReasonCode};
use tokio::time::Instant;

use super::{Driver, Exit};
use crate::broker::Parked;
use crate::pipe::Pipe;

/// Past this many bytes of packets waiting behind a blocked PUBLISH, the driver stops
/// reading (it still handles what it has read). A client that keeps within the Receive
/// Maximum with ordinary messages never gets there; one that does not is pushed back by TCP.
const DEFERRED_BYTES: usize = 256 * 1024;

/// The state of flow control towards the client: nothing (no allocation) while nothing is
/// held, since every connection's task holds a `Flow` and most never block; an inline
/// state made each idle connection's task cross into a larger allocation class.
#[derive(Debug, Default)]
pub(super) struct Flow(Option<Box<Held>>);

/// A PUBLISH held, or packets still waiting behind one.
#[derive(Debug, Default)]
struct Held {
    /// The PUBLISH waiting for room, if any.
    blocked: Option<Blocked>,
    /// What the client sent after it that must wait, in arrival order, with each
    /// packet's size on the wire.
    deferred: VecDeque<(Packet, usize)>,
    deferred_bytes: usize,
    /// QoS 1/2 PUBLISHes among `deferred`.
    deferred_unacked: usize,
    /// A DISCONNECT is among `deferred`: nothing after it is read.
    disconnect_deferred: bool,
}

impl Held {
    /// The oldest packet waiting, taken out of the counts.
    fn next_deferred(&mut self) -> Option<Packet> {
        let (packet, size) = self.deferred.pop_front()?;
        self.deferred_bytes = self.deferred_bytes.saturating_sub(size);
        if let Packet::Publish(p) = &packet
            && !matches!(p.qos, PublishQoS::AtMostOnce)
        {
            self.deferred_unacked = self.deferred_unacked.saturating_sub(1);
        }
        Some(packet)
    }
}

/// A PUBLISH parked at full queues, and its held acknowledgement.
#[derive(Debug)]
struct Blocked {
    /// The PUBACK or PUBREC to send once every session took the message.
    ack: Packet,
    /// The store ticket the acknowledgement waits for besides the parked deliveries'.
    ticket: u64,
    parked: Parked,
    /// When the wait runs out and the drop policy applies.
    deadline: Instant,
}

impl Flow {
    fn held(&self) -> Option<&Held> {
        self.0.as_deref()
    }

    fn held_mut(&mut self) -> &mut Held {
        self.0.get_or_insert_with(Box::default)
    }

    fn blocked(&self) -> Option<&Blocked> {
        self.held()?.blocked.as_ref()
    }

    /// Gives the state back once nothing is held and nothing waits.
    fn settle(&mut self) {
        if self
            .held()
            .is_some_and(|h| h.blocked.is_none() && h.deferred.is_empty())
        {
            self.0 = None;
        }
    }

    /// Whether nothing is held or waits.
    pub(super) fn is_idle(&self) -> bool {
        self.0.is_none()
    }

    /// Whether a DISCONNECT waits behind a blocked PUBLISH.
    pub(super) fn disconnect_deferred(&self) -> bool {
        self.held().is_some_and(|h| h.disconnect_deferred)
    }

    /// Whether the driver reads from the client.
    pub(super) fn reading(&self) -> bool {
        self.held()
            .is_none_or(|h| h.deferred_bytes <= DEFERRED_BYTES && !h.disconnect_deferred)
    }

    /// When the blocked PUBLISH stops waiting.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.blocked().map(|b| b.deadline)
    }
}

/// Ready when the blocked PUBLISH may have been taken in everywhere; never, if none is.
pub(super) fn poll_unblocked(flow: &Flow, cx: &mut Context<'_>) -> Poll<()> {
    match flow.blocked() {
        Some(blocked) => blocked.parked.waiting.poll_wait(cx),
        None => Poll::Pending,
    }
}

impl<P: Pipe> Driver<'_, P> {
    /// Handles a packet from the client, or puts it behind the blocked PUBLISH.
    pub(super) fn receive(&mut self, packet: Packet, size: usize) -> Option<Exit> {
        let waits = matches!(
            packet,
            Packet::Publish(_)
                | Packet::Subscribe(_)
                | Packet::Unsubscribe(_)
                | Packet::Disconnect(_)
                | Packet::Auth(_)
        );
        let held = self.flow.blocked().is_some() || self.holding();
        if self.flow.disconnect_deferred() || (waits && held) {
            return self.defer(packet, size);
        }
        self.handle(packet)
    }

    fn defer(&mut self, packet: Packet, size: usize) -> Option<Exit> {
        match &packet {
            Packet::Publish(p) if !matches!(p.qos, PublishQoS::AtMostOnce) => {
                if self.version().is_v5() && self.unacknowledged_inbound() >= self.receive_maximum()
                {
                    tracing::debug!(client = %self.param().client_id, "receive maximum exceeded while held");
                    self.rare.set_close_reason(
                        "more unacknowledged QoS 1/2 PUBLISHes than the Receive Maximum".into(),
                    );
                    return Some(self.protocol_error(ReasonCode::ReceiveMaximumExceeded));
                }
                self.flow.held_mut().deferred_unacked += 1;
            }
            Packet::Disconnect(_) => self.flow.held_mut().disconnect_deferred = true,
            _ => {}
        }
        let held = self.flow.held_mut();
        held.deferred_bytes += size;
        held.deferred.push_back((packet, size));
        None
    }

    fn receive_maximum(&self) -> usize {
        usize::from(self.broker.config.max_inflight)
    }

    /// The client's QoS 1/2 PUBLISHes not yet acknowledged (QoS 2: not yet released).
    fn unacknowledged_inbound(&self) -> usize {
        let qos2 = self.session.state.lock().inbound_qos2.len();
        let held_pubacks = self
            .held_acks
            .iter()
            .filter(|(_, ack)| matches!(ack, Packet::PubAck(_)))
            .count();
        // A blocked QoS 2 message is in `inbound_qos2` already.
        let blocked_puback = self
            .flow
            .blocked()
            .is_some_and(|b| matches!(b.ack, Packet::PubAck(_)));
        let deferred = self.flow.held().map_or(0, |h| h.deferred_unacked);
        qos2 + held_pubacks + usize::from(blocked_puback) + deferred
    }

    /// Sends the acknowledgement of a routed PUBLISH, or holds it (and blocks) while the
    /// message waits for room at the sessions in `parked`.
    pub(super) fn acknowledge_routed(&mut self, ack: Packet, ticket: u64, parked: Option<Parked>) {
        match parked {
            Some(parked) if !parked.waiting.is_done() => {
                let deadline = Instant::now() + self.broker.config.mqueue_full_wait;
                self.flow.held_mut().blocked = Some(Blocked {
                    ack,
                    ticket,
                    parked,
                    deadline,
                });
            }
            Some(parked) => self.acknowledge(ack, ticket.max(parked.waiting.ticket())),
            None => self.acknowledge(ack, ticket),
        }
    }

    /// Once the blocked PUBLISH is everywhere: acknowledges it and handles what waited
    /// behind it, until the next one blocks.
    pub(super) fn resume(&mut self) -> Option<Exit> {
        let was_reading = self.flow.reading();
        let exit = self.resume_deferred();
        if !was_reading && self.flow.reading() {
            // The client could not be heard meanwhile: its silence starts now.
            self.last_received = Instant::now();
        }
        exit
    }

    fn resume_deferred(&mut self) -> Option<Exit> {
        loop {
            if let Some(blocked) = self.flow.blocked() {
                if !blocked.parked.waiting.is_done() {
                    return None;
                }
                if let Some(blocked) = self.flow.held_mut().blocked.take() {
                    let ticket = blocked.ticket.max(blocked.parked.waiting.ticket());
                    self.acknowledge(blocked.ack, ticket);
                }
            }
            if self.holding() {
                // The packet in front waits for its authorization or its next slice; the
                // rest behind it.
                return None;
            }
            let Some(packet) = self.flow.0.as_mut().and_then(|h| h.next_deferred()) else {
                self.flow.settle();
                return None;
            };
            if let Some(exit) = self.handle(packet) {
                return Some(exit);
            }
        }
    }

    /// The blocked PUBLISH has waited `mqueue_full_wait`: the sessions that still have no
    /// room get it under the drop policy (counted; logged once per session).
    pub(super) fn wait_ran_out(&self, now: Instant) {
        let Some(blocked) = self.flow.blocked() else {
            return;
        };
        if now < blocked.deadline {
            return;
        }
        let config = &self.broker.config;
        let metrics = &self.broker.metrics;
        for session in &blocked.parked.sessions {
            let mut state = session.state.lock();
            let Some(dropped) = state.force_parked(&blocked.parked.waiting, config) else {
                continue;
            };
            let first = !std::mem::replace(&mut state.logged_wait_drop, true);
            drop(state);
            session.wake.notify_one();
            metrics
                .backpressure_timeouts
                .fetch_add(1, Ordering::Relaxed);
            metrics
                .dropped_queue_full
                .fetch_add(dropped, Ordering::Relaxed);
            if first {
                tracing::warn!(
                    client = %session.client_id,
                    publisher = %self.pipe.conn_param().client_id,
                    wait = ?config.mqueue_full_wait,
                    policy = ?config.mqueue_drop,
                    "a publisher waited mqueue_full_wait for room in this client's queue: dropping by mqueue_drop (logged once for this session, counted in backpressure_timeouts)"
                );
            }
        }
    }

    /// How a connection that failed ends: as its DISCONNECT said, if one was read and is
    /// waiting behind a blocked PUBLISH (the client may close right after sending it).
    pub(super) fn failed(&mut self) -> Exit {
        let Some(held) = self.flow.0.take().filter(|h| h.disconnect_deferred) else {
            return Exit::Lost;
        };
        for (packet, _) in held.deferred {
            if let Packet::Disconnect(disconnect) = packet {
                return self.on_disconnect(&disconnect);
            }
        }
        Exit::Lost
    }
}
