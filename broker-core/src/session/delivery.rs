//! What goes to a session's client: a delivery (a shared message as one subscription
//! made it), and one in flight (holding a packet identifier, awaiting the client's answer).

use std::sync::Arc;
use std::time::Instant;

use mqtt_codec::{PacketId, QoS, SubscriptionId};

use crate::message::Message;
use crate::store::DeliveryState;

/// A message on its way to one session: the shared message and what this session's
/// subscription made of it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) message: Arc<Message>,
    /// The QoS to deliver with: the lower of the message's and the subscription's.
    pub(crate) qos: QoS,
    /// The retain flag to deliver with.
    pub(crate) retain: bool,
    /// The identifiers of the subscriptions that matched.
    pub(crate) subscription_ids: Vec<SubscriptionId>,
    /// Its place in the session's store, or 0 if it is not stored (QoS 0, or a session that
    /// is not persistent).
    pub(crate) seq: u64,
}

impl Delivery {
    /// A delivery of `message`, not stored (yet).
    pub(crate) fn new(
        message: Arc<Message>,
        qos: QoS,
        retain: bool,
        subscription_ids: Vec<SubscriptionId>,
    ) -> Self {
        Self {
            message,
            qos,
            retain,
            subscription_ids,
            seq: 0,
        }
    }
}

/// Where a QoS 1/2 message sent to the client stands: what it awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    clippy::enum_variant_names,
    reason = "each variant is the packet awaited"
)]
pub(crate) enum Awaiting {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    PubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    PubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    PubComp,
}

/// A message holding a packet identifier towards the client.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) packet_id: PacketId,
    pub(crate) delivery: Delivery,
    pub(crate) state: Awaiting,
    /// When it was last sent on the current connection; `None` after a reconnect, until
    /// it is resent.
    pub(crate) sent_at: Option<Instant>,
    /// Whether it was ever sent (a resend carries DUP).
    pub(crate) ever_sent: bool,
}

impl InFlight {
    /// Where it stands, as the store records it.
    pub(crate) fn stored_state(&self) -> DeliveryState {
        match self.state {
            Awaiting::PubAck => DeliveryState::AwaitingPubAck(self.packet_id),
            Awaiting::PubRec => DeliveryState::AwaitingPubRec(self.packet_id),
            Awaiting::PubComp => DeliveryState::AwaitingPubComp(self.packet_id),
        }
    }
}
