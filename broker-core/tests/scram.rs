//! SCRAM through the broker's packet flow, over in-memory pipes: CONNECT -> AUTH (Continue)
//! -> AUTH -> CONNACK with the server's signature, the refusals a client sees (wrong
//! password, unknown user, malformed data, a method not served), and re-authentication
//! (AUTH 0x19) that succeeds, fails, names another method or proves another user.
//!
//! The client side of SCRAM is written here from RFC 5802 with RustCrypto's primitives,
//! independent of the broker's implementation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use broker_core::scram::{CredentialStore, Mechanism, ScramAuth, ScramCredentials};
use broker_core::{Broker, MqttConfig};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use mqtt_codec::*;
use sha2::{Digest, Sha256, Sha512};
use support::*;

fn broker() -> Arc<Broker> {
    let mut store = CredentialStore::new();
    for (user, password) in [("alice", "wonderland"), ("bob", "builder")] {
        for m in Mechanism::ALL {
            let c = ScramCredentials::derive(m, password, 4096).unwrap();
            store.insert(user, c).unwrap();
        }
    }
    let auth = ScramAuth::new(store, &Mechanism::ALL, [9; 32]);
    Broker::with_auth(MqttConfig::default(), Arc::new(auth))
}

/// The client half of one SCRAM exchange.
struct ScramClient {
    mechanism: Mechanism,
    password: String,
    bare: String,
    nonce: String,
    /// The ServerSignature the client expects, once client-final is made.
    server_final: Option<String>,
}

impl ScramClient {
    fn new(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> Self {
        Self {
            mechanism,
            password: password.into(),
            bare: format!("n={user},r={nonce}"),
            nonce: nonce.into(),
            server_final: None,
        }
    }

    fn first(&self) -> Bytes {
        Bytes::from(format!("n,,{}", self.bare))
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self.mechanism {
            Mechanism::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).unwrap();
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn final_message(&mut self, server_first: &[u8]) -> Bytes {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut attrs = server_first.split(',').map(|a| a.split_at(2));
        let (r, nonce) = attrs.next().unwrap();
        assert_eq!(r, "r=");
        assert!(nonce.starts_with(&self.nonce) && nonce.len() > self.nonce.len());
        let salt = B64.decode(attrs.next().unwrap().1).unwrap();
        let iterations: u32 = attrs.next().unwrap().1.parse().unwrap();
        let salted = match self.mechanism {
            Mechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(self.password.as_bytes(), &salt, iterations)
                    .to_vec()
            }
            Mechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(self.password.as_bytes(), &salt, iterations)
                    .to_vec()
            }
        };
        let client_key = self.hmac(&salted, b"Client Key");
        let stored_key = match self.mechanism {
            Mechanism::Sha256 => Sha256::digest(&client_key).to_vec(),
            Mechanism::Sha512 => Sha512::digest(&client_key).to_vec(),
        };
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let signature = self.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = self.hmac(&salted, b"Server Key");
        let server_signature = self.hmac(&server_key, auth_message.as_bytes());
        self.server_final = Some(format!("v={}", B64.encode(server_signature)));
        Bytes::from(format!("{without_proof},p={}", B64.encode(proof)))
    }
}

fn auth_packet(code: ReasonCode, method: &str, data: Bytes) -> Packet {
    let mut auth = Auth {
        reason_code: code,
        ..Auth::default()
    };
    auth.properties.authentication_method = Some(method.into());
    auth.properties.authentication_data = Some(data);
    Packet::Auth(auth)
}

/// The data of the AUTH Continue the broker must send next.
async fn expect_continue(client: &mut Client, method: &str) -> Bytes {
    match client.recv().await {
        Some(Packet::Auth(a)) => {
            assert_eq!(a.reason_code, ReasonCode::ContinueAuthentication);
            assert_eq!(a.properties.authentication_method.as_deref(), Some(method));
            a.properties.authentication_data.unwrap()
        }
        other => panic!("expected AUTH Continue, got {other:?}"),
    }
}

/// Connects with a SCRAM exchange; the client and the CONNACK.
async fn scram_connect(
    broker: &Arc<Broker>,
    id: &str,
    scram: &mut ScramClient,
) -> (Client, ConnAck) {
    let method = scram.mechanism.name();
    let mut connect = connect_packet(ProtocolVersion::V5, id);
    connect.properties.authentication_method = Some(method.into());
    connect.properties.authentication_data = Some(scram.first());
    let mut client = Client::open(broker, ProtocolVersion::V5);
    client.send(Packet::Connect(Box::new(connect))).await;
    let server_first = expect_continue(&mut client, method).await;
    let last = scram.final_message(&server_first);
    client
        .send(auth_packet(
            ReasonCode::ContinueAuthentication,
            method,
            last,
        ))
        .await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => (client, *ack),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// A PINGREQ is answered: the connection is up.
async fn still_up(client: &mut Client) {
    client.send(Packet::PingReq).await;
    assert_eq!(client.recv().await, Some(Packet::PingResp));
}

#[tokio::test(start_paused = true)]
async fn connect_with_scram_sha_256_and_sha_512() {
    let broker = broker();
    for m in Mechanism::ALL {
        let mut scram = ScramClient::new(m, "alice", "wonderland", "fyko+d2lbbFgONRv9qkxdawL");
        let (mut client, ack) = scram_connect(&broker, "c1", &mut scram).await;
        assert_eq!(ack.reason_code, ReasonCode::Success, "{m}");
        assert_eq!(
            ack.properties.authentication_method.as_deref(),
            Some(m.name())
        );
        // The server proved it knows the user's ServerKey.
        let server_final = ack.properties.authentication_data.unwrap();
        assert_eq!(
            std::str::from_utf8(&server_final).unwrap(),
            scram.server_final.as_deref().unwrap()
        );
        still_up(&mut client).await;
        client.disconnect().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_wrong_password_and_an_unknown_user_get_the_same_refusal() {
    let broker = broker();
    for (user, password) in [
        ("alice", "wonderlan"),
        ("alice", "builder"),
        ("mallory", "x"),
    ] {
        let mut scram = ScramClient::new(Mechanism::Sha256, user, password, "abcdef");
        let (mut client, ack) = scram_connect(&broker, "c1", &mut scram).await;
        assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword, "{user}");
        assert_eq!(ack.properties.authentication_data, None);
        assert_eq!(client.recv().await, None, "the broker closes");
    }
}

#[tokio::test(start_paused = true)]
async fn refusals_before_the_proof() {
    let broker = broker();
    // A method the broker does not serve.
    for method in ["SCRAM-SHA-1", "SCRAM-SHA-256-PLUS", "PLAIN"] {
        let mut connect = connect_packet(ProtocolVersion::V5, "c1");
        connect.properties.authentication_method = Some(method.into());
        connect.properties.authentication_data = Some(Bytes::from_static(b"n,,n=alice,r=abc"));
        let (_, ack) = Client::connect_with(&broker, connect).await;
        assert_eq!(
            ack.reason_code,
            ReasonCode::BadAuthenticationMethod,
            "{method}"
        );
    }
    // Malformed client-first, or channel binding asked for.
    for data in [
        None,
        Some("alice"),
        Some("p=tls-unique,,n=alice,r=abc"),
        Some("n,,n=alice"),
    ] {
        let mut connect = connect_packet(ProtocolVersion::V5, "c1");
        connect.properties.authentication_method = Some("SCRAM-SHA-256".into());
        connect.properties.authentication_data = data.map(|d| Bytes::from_static(d.as_bytes()));
        let (_, ack) = Client::connect_with(&broker, connect).await;
        assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "{data:?}");
    }
    // A malformed client-final.
    let mut connect = connect_packet(ProtocolVersion::V5, "c1");
    connect.properties.authentication_method = Some("SCRAM-SHA-256".into());
    connect.properties.authentication_data = Some(Bytes::from_static(b"n,,n=alice,r=abc"));
    let mut client = Client::open(&broker, ProtocolVersion::V5);
    client.send(Packet::Connect(Box::new(connect))).await;
    expect_continue(&mut client, "SCRAM-SHA-256").await;
    client
        .send(auth_packet(
            ReasonCode::ContinueAuthentication,
            "SCRAM-SHA-256",
            Bytes::from_static(b"c=biws,r=abc,p=AAAA"),
        ))
        .await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Re-authenticates as `user` on `client` with `method`, up to the broker's last answer.
async fn reauthenticate(client: &mut Client, scram: &mut ScramClient) -> Option<Packet> {
    let method = scram.mechanism.name();
    client
        .send(auth_packet(
            ReasonCode::ReAuthenticate,
            method,
            scram.first(),
        ))
        .await;
    let server_first = expect_continue(client, method).await;
    let last = scram.final_message(&server_first);
    client
        .send(auth_packet(
            ReasonCode::ContinueAuthentication,
            method,
            last,
        ))
        .await;
    client.recv().await
}

#[tokio::test(start_paused = true)]
async fn reauthentication_succeeds_again_and_again() {
    let broker = broker();
    let mut scram = ScramClient::new(Mechanism::Sha512, "alice", "wonderland", "first");
    let (mut client, ack) = scram_connect(&broker, "c1", &mut scram).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    for round in 0..2 {
        let mut again = ScramClient::new(
            Mechanism::Sha512,
            "alice",
            "wonderland",
            &format!("r{round}"),
        );
        match reauthenticate(&mut client, &mut again).await {
            Some(Packet::Auth(a)) => {
                assert_eq!(a.reason_code, ReasonCode::Success);
                assert_eq!(
                    a.properties.authentication_method.as_deref(),
                    Some("SCRAM-SHA-512")
                );
                let data = a.properties.authentication_data.unwrap();
                assert_eq!(
                    std::str::from_utf8(&data).unwrap(),
                    again.server_final.as_deref().unwrap()
                );
            }
            other => panic!("expected AUTH Success, got {other:?}"),
        }
        still_up(&mut client).await;
    }
    client.disconnect().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_reauthentication_disconnects() {
    let broker = broker();
    let cases: [(&str, &str, ReasonCode); 3] = [
        // 0x86 has no DISCONNECT form: the client is told Not authorized.
        ("alice", "wrong", ReasonCode::NotAuthorized),
        ("mallory", "wonderland", ReasonCode::NotAuthorized),
        // Valid credentials, but another user than the connection proved.
        ("bob", "builder", ReasonCode::NotAuthorized),
    ];
    for (user, password, code) in cases {
        let mut scram = ScramClient::new(Mechanism::Sha256, "alice", "wonderland", "abc");
        let (mut client, ack) = scram_connect(&broker, "c1", &mut scram).await;
        assert_eq!(ack.reason_code, ReasonCode::Success);
        let mut again = ScramClient::new(Mechanism::Sha256, user, password, "def");
        match reauthenticate(&mut client, &mut again).await {
            Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, code, "{user}"),
            other => panic!("expected DISCONNECT, got {other:?}"),
        }
        assert_eq!(client.recv().await, None);
    }
}

#[tokio::test(start_paused = true)]
async fn reauthentication_must_use_the_connects_method() {
    let broker = broker();
    let mut scram = ScramClient::new(Mechanism::Sha256, "alice", "wonderland", "abc");
    let (mut client, _) = scram_connect(&broker, "c1", &mut scram).await;
    let other = ScramClient::new(Mechanism::Sha512, "alice", "wonderland", "def");
    client
        .send(auth_packet(
            ReasonCode::ReAuthenticate,
            "SCRAM-SHA-512",
            other.first(),
        ))
        .await;
    match client.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, ReasonCode::ProtocolError),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }

    // Nor can a client that connected without a method start one.
    let mut plain = Client::connect(&broker, ProtocolVersion::V5, "c2").await;
    plain
        .send(auth_packet(
            ReasonCode::ReAuthenticate,
            "SCRAM-SHA-256",
            other.first(),
        ))
        .await;
    match plain.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, ReasonCode::ProtocolError),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_unexpected_auth_continue_is_a_protocol_error() {
    let broker = broker();
    let mut scram = ScramClient::new(Mechanism::Sha256, "alice", "wonderland", "abc");
    let (mut client, _) = scram_connect(&broker, "c1", &mut scram).await;
    client
        .send(auth_packet(
            ReasonCode::ContinueAuthentication,
            "SCRAM-SHA-256",
            Bytes::from_static(b"c=biws,r=abc,p=AAAA"),
        ))
        .await;
    match client.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, ReasonCode::ProtocolError),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn credentials_replaced_live_apply_to_the_next_connect() {
    let broker = broker();
    let mut carol = ScramClient::new(Mechanism::Sha256, "carol", "secret", "n1");
    let (_, ack) = scram_connect(&broker, "c1", &mut carol).await;
    assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword);
    // alice stays connected across the swap.
    let mut alice = ScramClient::new(Mechanism::Sha256, "alice", "wonderland", "n2");
    let (mut alice_conn, ack) = scram_connect(&broker, "a", &mut alice).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);

    let mut store = CredentialStore::new();
    let c = ScramCredentials::derive(Mechanism::Sha256, "secret", 4096).unwrap();
    store.insert("carol", c).unwrap();
    broker.set_enhanced_auth(Some(Arc::new(ScramAuth::new(
        store,
        &[Mechanism::Sha256],
        [7; 32],
    ))));
    let mut carol = ScramClient::new(Mechanism::Sha256, "carol", "secret", "n3");
    let (_, ack) = scram_connect(&broker, "c2", &mut carol).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    still_up(&mut alice_conn).await;

    // No method at all: CONNECT naming one is refused with Bad authentication method.
    broker.set_enhanced_auth(None);
    let mut connect = connect_packet(ProtocolVersion::V5, "c3");
    connect.properties.authentication_method = Some("SCRAM-SHA-256".into());
    connect.properties.authentication_data = Some(carol.first());
    let (_, ack) = Client::connect_with(&broker, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod);
}
