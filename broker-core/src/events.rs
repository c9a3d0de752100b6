//! Client connection events: a hook the broker calls as clients connect and disconnect, for
//! whatever announces them (the binary publishes NanoMQ's `$SYS/brokers/connected` and
//! `$SYS/brokers/disconnected` messages from it). Without a hook the broker does nothing
//! extra per connection.

use mqtt_codec::ReasonCode;

use crate::{Broker, ConnParam};

/// Told about every client that connects and disconnects (see
/// [`Broker::set_client_events`]). Called in the connection's own task, with no lock held:
/// it may publish ([`Broker::publish_system`]), but whatever it does delays that connection
/// only, so it should be quick.
pub trait ClientEvents: Send + Sync {
    /// `client` completed its handshake: CONNACK (success) was sent.
    fn connected(&self, broker: &Broker, client: &ConnParam);

    /// The connection of `client` ended, for `reason`: `Success` for a DISCONNECT,
    /// `DisconnectWithWillMessage` for one asking for the will, the reason the broker
    /// closed it with (`KeepAliveTimeout`, `ProtocolError`, `SessionTakenOver`,
    /// `ServerShuttingDown`, ...), or `UnspecifiedError` when the stream closed or failed
    /// without a DISCONNECT.
    fn disconnected(&self, broker: &Broker, client: &ConnParam, reason: ReasonCode);
}
