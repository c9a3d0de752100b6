//! The driver when a write fails right after a packet was handled, against a scripted
//! server over an in-process stream: a PUBACK read just before the failing write (the write
//! of the next message, which that PUBACK let out under a Receive Maximum of 1) still
//! completes its publication. The driver used to end without handing out the events the
//! core had queued, so the acknowledged message was reported as lost with its connection,
//! though it had left the session state and would never be resent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::num::NonZeroU16;

use bytes::BytesMut;
use mqtt_client::mqtt_codec::{
    Ack, ConnAck, ConnAckProperties, Decoder, Packet, ProtocolVersion, QoS, ReasonCode,
};
use mqtt_client::{Client, Message, PublishError, SessionState};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// The next packet from `stream`.
async fn read_packet(stream: &mut DuplexStream, buf: &mut BytesMut) -> Packet {
    let mut decoder = Decoder::with_version(V5);
    loop {
        if let Some(packet) = decoder.decode(buf).unwrap() {
            return packet;
        }
        assert!(
            stream.read_buf(buf).await.unwrap() > 0,
            "the client hung up"
        );
    }
}

async fn write_packet(stream: &mut DuplexStream, packet: Packet) {
    let mut out = BytesMut::new();
    packet.encode(V5, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
}

#[tokio::test]
async fn a_puback_read_just_before_a_failing_write_still_completes_its_publication() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_packet(&mut theirs, &mut buf).await,
            Packet::Connect(_)
        ));
        let connack = ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties: ConnAckProperties {
                receive_maximum: NonZeroU16::new(1),
                ..ConnAckProperties::default()
            },
        };
        write_packet(&mut theirs, Packet::ConnAck(Box::new(connack))).await;
        let Packet::Publish(first) = read_packet(&mut theirs, &mut buf).await else {
            panic!("expected the first PUBLISH");
        };
        write_packet(
            &mut theirs,
            Packet::PubAck(Ack::new(first.qos.packet_id().unwrap())),
        )
        .await;
        // Gone before the client can write the second message.
        drop(theirs);
    });
    let (read, write) = tokio::io::split(ours);
    let (client, _) = Client::start_over(
        Box::new(read),
        Box::new(write),
        &options("writer", V5),
        SessionState::new(),
        None,
    )
    .await
    .map_err(|(e, _)| e)
    .unwrap();
    let publisher = client.publisher();
    let first = publisher.publish(Message::new("t/1", "one", QoS::AtLeastOnce).unwrap());
    let second = publisher.publish(Message::new("t/2", "two", QoS::AtLeastOnce).unwrap());
    assert_eq!(within(first).await, Ok(ReasonCode::Success));
    assert_eq!(within(second).await, Err(PublishError::ConnectionLost));
    within(server).await.unwrap();
    let ended = within(client.disconnect()).await;
    // Only the second is left to send again.
    assert_eq!(ended.state.in_flight() + ended.state.queued(), 1);
}
