//! `-d`: every packet sent and received, one line each on standard error (`-> CONNECT ...`,
//! `<- SubAck`), through mqtt-client's packet observer.

use std::sync::Arc;

use mqtt_client::{Direction, PacketObserver};
use mqtt_codec::Packet;

/// The observer that prints packets, when `debug` is on.
pub(crate) fn observer(debug: bool) -> Option<PacketObserver> {
    debug.then(|| {
        Arc::new(|direction: Direction, packet: &Packet| {
            let arrow = match direction {
                Direction::Sent => "->",
                Direction::Received => "<-",
            };
            eprintln!("{arrow} {}", describe(packet));
        }) as PacketObserver
    })
}

/// One line about a packet, for `-d`.
pub(crate) fn describe(packet: &Packet) -> String {
    match packet {
        Packet::Connect(c) => format!(
            "CONNECT (v{}, client id `{}`, clean {}, keep alive {}s{})",
            c.version,
            c.client_id.as_str(),
            c.clean_start,
            c.keep_alive,
            if c.username.is_some() {
                ", user name"
            } else {
                ""
            }
        ),
        Packet::ConnAck(c) => format!(
            "CONNACK (session present {}, {} 0x{:02X})",
            c.session_present,
            c.reason_code.description(),
            c.reason_code.as_u8()
        ),
        Packet::Publish(p) => format!(
            "PUBLISH (topic `{}`, QoS {}{}{}{}, {} bytes)",
            p.topic(),
            p.qos.qos().as_u8(),
            p.qos
                .packet_id()
                .map(|id| format!(", id {}", id.get()))
                .unwrap_or_default(),
            if p.retain { ", retain" } else { "" },
            if p.dup { ", dup" } else { "" },
            p.payload().len()
        ),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => format!(
            "{:?} (id {}, 0x{:02X})",
            packet.packet_type(),
            a.packet_id.get(),
            a.reason_code.as_u8()
        ),
        Packet::Disconnect(d) => format!(
            "DISCONNECT ({} 0x{:02X})",
            d.reason_code.description(),
            d.reason_code.as_u8()
        ),
        other => format!("{:?}", other.packet_type()),
    }
}
