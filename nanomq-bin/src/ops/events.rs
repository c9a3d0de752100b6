//! NanoMQ's client events: as each client connects, a JSON message on
//! `$SYS/brokers/connected`; as it disconnects, one on `$SYS/brokers/disconnected`. QoS 0,
//! not retained, with NanoMQ's fields:
//!
//! ```text
//! {"username":"u","ts":1733100000000,"proto_name":"MQTT","keepalive":60,"return_code":"0",
//!  "proto_ver":4,"client_id":"c1","clean_start":1,"IPv4":"127.0.0.1"}
//! {"username":"u","ts":1733100005000,"reason_code":"8e","client_id":"c1"}
//! ```
//!
//! Two differences from NanoMQ, both deliberate: `ts` is milliseconds since 1970 (NanoMQ's
//! is its monotonic clock, which means nothing outside the process), and a client without a
//! user name has `"username": null` (NanoMQ prints C's `(null)`). Only connections the
//! broker accepted are announced (return code "0"): a refused CONNECT never had a session.

use std::time::{SystemTime, UNIX_EPOCH};

use broker_core::{Broker, ClientEvents, ConnParam, Message};
use bytes::Bytes;
use mqtt_codec::{QoS, ReasonCode, TopicName};
use serde::Serialize;

/// Where a connection is announced.
const CONNECTED: &str = "$SYS/brokers/connected";
/// Where a disconnection is announced.
const DISCONNECTED: &str = "$SYS/brokers/disconnected";

/// Publishes NanoMQ's event messages; given to `Broker::set_client_events`.
#[derive(Debug, Default)]
pub(crate) struct EventMessages;

/// The payload of a connection event.
#[derive(Debug, Serialize)]
struct Connected<'a> {
    username: Option<&'a str>,
    ts: u64,
    proto_name: &'static str,
    keepalive: u16,
    return_code: &'static str,
    proto_ver: u8,
    client_id: &'a str,
    clean_start: u8,
    #[serde(rename = "IPv4", skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
}

/// The payload of a disconnection event.
#[derive(Debug, Serialize)]
struct Disconnected<'a> {
    username: Option<&'a str>,
    ts: u64,
    reason_code: String,
    client_id: &'a str,
}

impl ClientEvents for EventMessages {
    fn connected(&self, broker: &Broker, client: &ConnParam) {
        publish(broker, CONNECTED, &connected(client, now_millis()));
    }

    fn disconnected(&self, broker: &Broker, client: &ConnParam, reason: ReasonCode) {
        publish(
            broker,
            DISCONNECTED,
            &disconnected(client, reason, now_millis()),
        );
    }
}

fn connected(client: &ConnParam, ts: u64) -> Connected<'_> {
    Connected {
        username: client.username.as_deref(),
        ts,
        proto_name: client.version.protocol_name(),
        keepalive: client.keep_alive,
        return_code: "0",
        proto_ver: client.version.level(),
        client_id: client.client_id.as_str(),
        clean_start: u8::from(client.clean_start),
        ip: client.transport.peer.map(|peer| peer.ip().to_string()),
    }
}

fn disconnected(client: &ConnParam, reason: ReasonCode, ts: u64) -> Disconnected<'_> {
    Disconnected {
        username: client.username.as_deref(),
        ts,
        reason_code: format!("{:x}", u8::from(reason)),
        client_id: client.client_id.as_str(),
    }
}

fn publish(broker: &Broker, topic: &'static str, payload: &impl Serialize) {
    // Neither can fail: the topics are valid, and the payloads are plain structs.
    let (Ok(topic), Ok(payload)) = (TopicName::new(topic), serde_json::to_vec(payload)) else {
        return;
    };
    let message = Message::new(topic, Bytes::from(payload), QoS::AtMostOnce, false, None);
    broker.publish_system(message);
}

/// Now, in milliseconds since 1970.
fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
