//! [`ConnectionParams`]: what one CONNACK granted, for that connection only.
//!
//! This is the client side of the project's ConnParam rule. NanoMQ's bridge kept its
//! connection parameters on the long-lived bridge object, and a reconnect freed them while
//! the old connection still used them. Here each [`crate::Connection`] builds its own from
//! its own CONNACK, and they die with it: the next attempt's limits come from the next
//! CONNACK, never from a previous one.

use mqtt_codec::{ConnAck, Connect, ProtocolVersion, QoS};

/// What the server's CONNACK says about this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionParams {
    /// The protocol version spoken.
    pub version: ProtocolVersion,
    /// The server had a session for us.
    pub session_present: bool,
    /// Our client identifier: the one we sent, or the one the server assigned.
    pub client_id: String,
    /// Whether the server assigned [`ConnectionParams::client_id`].
    pub client_id_assigned: bool,
    /// The keep alive in force, seconds (the server's Server Keep Alive, else ours; 0: off).
    pub keep_alive: u16,
    /// How many QoS 1/2 messages the server accepts unacknowledged (65,535 if it did not say).
    pub receive_maximum: u16,
    /// The largest packet the server accepts (`u32::MAX` if it did not say).
    pub maximum_packet_size: u32,
    /// The highest topic alias the server accepts from us (0: none).
    pub topic_alias_maximum: u16,
    /// The highest QoS the server accepts.
    pub maximum_qos: QoS,
    /// The server keeps retained messages.
    pub retain_available: bool,
    /// The server accepts wildcard subscriptions.
    pub wildcard_subscription_available: bool,
    /// The server accepts shared subscriptions.
    pub shared_subscription_available: bool,
    /// The server accepts subscription identifiers.
    pub subscription_identifiers_available: bool,
    /// The session expiry in force, seconds (the server's if it said one, else ours).
    pub session_expiry: Option<u32>,
    /// MQTT 5 Response Information.
    pub response_information: Option<String>,
    /// MQTT 5 Server Reference.
    pub server_reference: Option<String>,
    /// MQTT 5 user properties of the CONNACK.
    pub user_properties: Vec<(String, String)>,
}

impl ConnectionParams {
    /// The parameters of the connection `connect` opened and `connack` accepted.
    pub fn new(connect: &Connect, connack: &ConnAck) -> Self {
        let p = &connack.properties;
        let assigned = p.assigned_client_identifier.as_ref();
        Self {
            version: connect.version,
            session_present: connack.session_present,
            client_id: assigned.map_or_else(|| connect.client_id.to_string(), ToString::to_string),
            client_id_assigned: assigned.is_some(),
            keep_alive: p.server_keep_alive.unwrap_or(connect.keep_alive),
            receive_maximum: p.receive_maximum.map_or(u16::MAX, |r| r.get()),
            maximum_packet_size: p.maximum_packet_size.map_or(u32::MAX, |m| m.get()),
            topic_alias_maximum: p.topic_alias_maximum.unwrap_or(0),
            maximum_qos: p.maximum_qos.unwrap_or(QoS::ExactlyOnce),
            retain_available: p.retain_available.unwrap_or(true),
            wildcard_subscription_available: p.wildcard_subscription_available.unwrap_or(true),
            shared_subscription_available: p.shared_subscription_available.unwrap_or(true),
            subscription_identifiers_available: p
                .subscription_identifiers_available
                .unwrap_or(true),
            session_expiry: p
                .session_expiry_interval
                .or(connect.properties.session_expiry_interval),
            response_information: p.response_information.as_ref().map(ToString::to_string),
            server_reference: p.server_reference.as_ref().map(ToString::to_string),
            user_properties: p
                .user_properties
                .iter()
                .map(|u| (u.name.to_string(), u.value.to_string()))
                .collect(),
        }
    }
}
