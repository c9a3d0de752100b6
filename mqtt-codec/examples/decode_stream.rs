//! Reads a stream of MQTT packets from standard input (a capture of one direction of a
//! connection, e.g. `tcpflow` output or bytes saved from a socket) and prints each packet.
//!
//! The protocol version is learned from CONNECT, as a server would; pass `--version 3.1.1`
//! (or `3.1`, `5`) to decode a server-to-client stream, which has no CONNECT.
//!
//! ```text
//! cargo run -p mqtt-codec --example decode_stream -- --demo
//! cargo run -p mqtt-codec --example decode_stream < capture.bin
//! ```

use std::io::Read;
use std::process::ExitCode;

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    ClientId, Connect, Decoder, Packet, PacketId, ProtocolVersion, Publish, PublishQoS, QoS,
    Subscribe, Subscription, SubscriptionOptions, TopicFilter, TopicName,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut decoder = Decoder::new();
    let mut input = BytesMut::new();
    let mut iter = args.iter();
    let mut demo = false;
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--demo" => demo = true,
            "--version" => {
                let version = match iter.next().map(String::as_str) {
                    Some("3.1") => ProtocolVersion::V3_1,
                    Some("3.1.1") => ProtocolVersion::V3_1_1,
                    Some("5") | Some("5.0") => ProtocolVersion::V5,
                    other => {
                        eprintln!("--version takes 3.1, 3.1.1 or 5, not {other:?}");
                        return ExitCode::from(2);
                    }
                };
                decoder.set_version(version);
            }
            other => {
                eprintln!(
                    "unknown argument {other:?}; usage: decode_stream [--demo] [--version V]"
                );
                return ExitCode::from(2);
            }
        }
    }
    if demo {
        match demo_stream() {
            Ok(bytes) => input.extend_from_slice(&bytes),
            Err(e) => {
                eprintln!("cannot build the demo stream: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut raw = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut raw) {
            eprintln!("cannot read standard input: {e}");
            return ExitCode::FAILURE;
        }
        input.extend_from_slice(&raw);
    }

    let mut count = 0;
    loop {
        match decoder.decode(&mut input) {
            Ok(Some(packet)) => {
                count += 1;
                println!("{count:>5}  {packet:?}");
            }
            Ok(None) if input.is_empty() => break,
            Ok(None) => {
                eprintln!("stream ends inside a packet ({} bytes left)", input.len());
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!(
                    "packet {}: {e} (a server would close with reason {})",
                    count + 1,
                    e.reason_code()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("{count} packets");
    ExitCode::SUCCESS
}

/// A client's side of a short MQTT 5 session: CONNECT, SUBSCRIBE, PUBLISH, PINGREQ.
fn demo_stream() -> Result<BytesMut, Box<dyn std::error::Error>> {
    let v = ProtocolVersion::V5;
    let id = PacketId::new(1).ok_or("packet id 0")?;
    let mut publish = Publish::new(TopicName::new("home/kitchen/temp")?, Bytes::from("21.5"));
    publish.qos = PublishQoS::AtLeastOnce(id);
    let packets = [
        Packet::Connect(Box::new(Connect::new(v, ClientId::new("demo")?))),
        Packet::Subscribe(Subscribe {
            packet_id: id,
            subscriptions: vec![Subscription {
                filter: TopicFilter::new("home/+/temp")?,
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
            }],
            properties: Default::default(),
        }),
        Packet::Publish(publish),
        Packet::PingReq,
    ];
    let mut out = BytesMut::new();
    for packet in &packets {
        packet.encode(v, &mut out)?;
    }
    Ok(out)
}
