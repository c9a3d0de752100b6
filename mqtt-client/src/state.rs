//! [`SessionState`]: what outlives a connection on the client side, and only that.
//!
//! Packet identifier allocation, outbound QoS 1/2 messages in flight (in the order they
//! were first sent, resent in that order with DUP on the next connection), messages queued
//! behind the server's Receive Maximum, and inbound QoS 2 identifiers awaiting PUBREL. No
//! field comes from a CONNACK: limits belong to [`crate::ConnectionParams`].
//!
//! [`SessionState::snapshot`] turns it into plain data ([`Snapshot`]) for a caller to
//! persist; [`SessionState::restore`] checks and rebuilds it.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;

use bytes::{Bytes, BytesMut};
use mqtt_codec::{Decoder, Packet, PacketId, ProtocolVersion, Publish, PublishQoS, QoS};

use crate::options::Message;

/// Names one publication from [`crate::Connection::publish`] to its outcome, across
/// reconnects and snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// Where a QoS 1/2 exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// QoS 1, awaiting PUBACK.
    Qos1,
    /// QoS 2, awaiting PUBREC.
    Qos2Published,
    /// QoS 2, PUBREC received: PUBREL sent (or to resend), awaiting PUBCOMP.
    Qos2Released,
}

/// An outbound QoS 1/2 message with its packet identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outbound {
    /// Its ticket.
    pub(crate) ticket: Ticket,
    /// Its packet identifier.
    pub(crate) packet_id: PacketId,
    /// The message.
    pub(crate) message: Message,
    /// The exchange's stage.
    pub(crate) stage: Stage,
    /// It was sent at least once (on any connection): a resend carries DUP.
    pub(crate) sent: bool,
}

/// The client's session state. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The next packet identifier to try.
    next_packet_id: PacketId,
    /// The next ticket.
    next_ticket: u64,
    /// In flight, in the order first sent.
    pub(crate) outbound: VecDeque<Outbound>,
    /// Waiting for room in the server's Receive Maximum.
    pub(crate) queued: VecDeque<(Ticket, Message)>,
    /// Inbound QoS 2 identifiers whose PUBREL has not arrived.
    pub(crate) inbound_qos2: BTreeSet<PacketId>,
    /// The packet identifiers of `outbound`.
    ids: HashSet<PacketId>,
}

impl Default for SessionState {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionState {
    /// An empty state.
    pub fn new() -> Self {
        Self {
            next_packet_id: PacketId::from(std::num::NonZeroU16::MIN),
            next_ticket: 0,
            outbound: VecDeque::new(),
            queued: VecDeque::new(),
            inbound_qos2: BTreeSet::new(),
            ids: HashSet::new(),
        }
    }

    /// Outbound QoS 1/2 messages in flight (sent or to be resent, not yet acknowledged).
    pub fn in_flight(&self) -> usize {
        self.outbound.len()
    }

    /// Outbound messages waiting for room in the server's Receive Maximum.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Inbound QoS 2 messages whose PUBREL has not arrived.
    pub fn inbound_pending(&self) -> usize {
        self.inbound_qos2.len()
    }

    /// The tickets of the messages in flight and queued, in the order they will complete
    /// (as far as the client decides it).
    pub fn tickets(&self) -> Vec<Ticket> {
        self.outbound
            .iter()
            .map(|o| o.ticket)
            .chain(self.queued.iter().map(|(t, _)| *t))
            .collect()
    }

    /// Queues a QoS 1/2 `message` for the next connection to send (a driver between
    /// attempts keeps taking messages this way); the outcome comes as
    /// [`crate::Event::Published`] with the returned ticket, on the connection that completes
    /// it. QoS 0 is refused (`None`): it is never kept for a later connection.
    pub fn enqueue(&mut self, message: Message) -> Option<Ticket> {
        if message.qos == QoS::AtMostOnce {
            return None;
        }
        let ticket = self.ticket();
        self.queued.push_back((ticket, message));
        Some(ticket)
    }

    /// A new ticket.
    pub(crate) fn ticket(&mut self) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket = self.next_ticket.wrapping_add(1);
        ticket
    }

    /// A packet identifier used neither in flight nor in `busy`; `None` if all are taken.
    pub(crate) fn allocate_id(&mut self, busy: &HashSet<PacketId>) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            let id = self.next_packet_id;
            self.next_packet_id = id.next();
            if !self.ids.contains(&id) && !busy.contains(&id) {
                return Some(id);
            }
        }
        None
    }

    /// Adds a message in flight.
    pub(crate) fn push_outbound(&mut self, outbound: Outbound) {
        self.ids.insert(outbound.packet_id);
        self.outbound.push_back(outbound);
    }

    /// The position of the message in flight with `id`.
    pub(crate) fn find(&self, id: PacketId) -> Option<usize> {
        if !self.ids.contains(&id) {
            return None;
        }
        // Servers acknowledge mostly in order: the oldest is the likeliest.
        self.outbound.iter().position(|o| o.packet_id == id)
    }

    /// Removes the message in flight at `index`.
    pub(crate) fn remove(&mut self, index: usize) -> Option<Outbound> {
        let outbound = self.outbound.remove(index)?;
        self.ids.remove(&outbound.packet_id);
        Some(outbound)
    }

    /// Plain data for a caller to persist.
    pub fn snapshot(&self) -> Snapshot {
        let encode = |message: &Message, id: PacketId, dup: bool| {
            let mut buf = BytesMut::new();
            let publish = to_publish(message, id, dup);
            // Our own messages were checked when published; an impossible one is kept empty
            // and refused by `restore`.
            let _ = Packet::Publish(publish).encode(ProtocolVersion::V5, &mut buf);
            buf.to_vec()
        };
        let placeholder = PacketId::from(std::num::NonZeroU16::MIN);
        Snapshot {
            next_packet_id: self.next_packet_id.get(),
            next_ticket: self.next_ticket,
            in_flight: self
                .outbound
                .iter()
                .map(|o| SnapshotMessage {
                    ticket: o.ticket.0,
                    publish: encode(&o.message, o.packet_id, o.sent),
                    sent: o.sent,
                    released: o.stage == Stage::Qos2Released,
                })
                .collect(),
            queued: self
                .queued
                .iter()
                .map(|(t, m)| SnapshotMessage {
                    ticket: t.0,
                    publish: encode(m, placeholder, false),
                    sent: false,
                    released: false,
                })
                .collect(),
            inbound_qos2: self.inbound_qos2.iter().map(|id| id.get()).collect(),
        }
    }

    /// The state a [`Snapshot`] describes, checked.
    pub fn restore(snapshot: Snapshot) -> Result<Self, RestoreError> {
        let mut state = Self::new();
        state.next_packet_id =
            PacketId::new(snapshot.next_packet_id).unwrap_or(state.next_packet_id);
        state.next_ticket = snapshot.next_ticket;
        for (i, m) in snapshot.in_flight.into_iter().enumerate() {
            let (id, message) = decode(&m.publish).ok_or(RestoreError::BadMessage(i))?;
            if state.ids.contains(&id) {
                return Err(RestoreError::DuplicateId(id.get()));
            }
            let stage = match (message.qos, m.released) {
                (QoS::AtLeastOnce, false) => Stage::Qos1,
                (QoS::ExactlyOnce, false) => Stage::Qos2Published,
                (QoS::ExactlyOnce, true) => Stage::Qos2Released,
                _ => return Err(RestoreError::BadMessage(i)),
            };
            state.push_outbound(Outbound {
                ticket: Ticket(m.ticket),
                packet_id: id,
                message,
                stage,
                sent: m.sent || m.released,
            });
        }
        for (i, m) in snapshot.queued.into_iter().enumerate() {
            let (_, message) = decode(&m.publish).ok_or(RestoreError::BadMessage(i))?;
            state.queued.push_back((Ticket(m.ticket), message));
        }
        for id in snapshot.inbound_qos2 {
            let id = PacketId::new(id).ok_or(RestoreError::DuplicateId(0))?;
            state.inbound_qos2.insert(id);
        }
        Ok(state)
    }
}

/// The PUBLISH for `message` with packet identifier `id`.
pub(crate) fn to_publish(message: &Message, id: PacketId, dup: bool) -> Publish {
    let mut publish = Publish::new(message.topic.clone(), message.payload.clone());
    publish.qos = PublishQoS::with_packet_id(message.qos, id);
    publish.retain = message.retain;
    publish.dup = dup && message.qos != QoS::AtMostOnce;
    if !message.properties.is_empty() {
        let mut properties = message.properties.clone();
        properties.topic_alias = None;
        if !properties.is_empty() {
            publish.properties = Some(Box::new(properties));
        }
    }
    publish
}

/// A QoS 1/2 message and its identifier from its MQTT 5 encoding.
fn decode(bytes: &[u8]) -> Option<(PacketId, Message)> {
    let mut buf = BytesMut::from(Bytes::copy_from_slice(bytes));
    let Ok(Some(Packet::Publish(mut publish))) =
        Decoder::with_version(ProtocolVersion::V5).decode(&mut buf)
    else {
        return None;
    };
    let id = publish.qos.packet_id()?;
    let (qos, retain) = (publish.qos.qos(), publish.retain);
    let properties = publish.properties.take().map(|p| *p).unwrap_or_default();
    let (topic, payload) = publish.into_parts();
    Some((
        id,
        Message {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    ))
}

/// [`SessionState`] as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The next packet identifier to try.
    pub next_packet_id: u16,
    /// The next ticket.
    pub next_ticket: u64,
    /// Messages in flight, in the order first sent.
    pub in_flight: Vec<SnapshotMessage>,
    /// Messages waiting for room in the server's Receive Maximum, in order.
    pub queued: Vec<SnapshotMessage>,
    /// Inbound QoS 2 packet identifiers awaiting PUBREL.
    pub inbound_qos2: Vec<u16>,
}

/// One outbound message of a [`Snapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotMessage {
    /// Its ticket.
    pub ticket: u64,
    /// The message as an MQTT 5 PUBLISH packet; in flight, with its packet identifier.
    pub publish: Vec<u8>,
    /// Sent at least once.
    pub sent: bool,
    /// QoS 2: PUBREC received, awaiting PUBCOMP.
    pub released: bool,
}

/// Why a [`Snapshot`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// Message `n` (of its list) is not a QoS 1/2 MQTT 5 PUBLISH, or a QoS 1 one is marked
    /// released.
    BadMessage(usize),
    /// A packet identifier is in flight twice (or is 0).
    DuplicateId(u16),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMessage(n) => write!(
                f,
                "message {n} of the snapshot is not a valid QoS 1/2 PUBLISH"
            ),
            Self::DuplicateId(id) => write!(f, "packet identifier {id} is in the snapshot twice"),
        }
    }
}

impl std::error::Error for RestoreError {}
