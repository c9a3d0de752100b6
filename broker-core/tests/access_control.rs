//! Access control as clients see it: who is let in (and the CONNACK codes of those who are
//! not, in MQTT 5 and 3.1.1), what a denied PUBLISH, SUBSCRIBE, will or retained message
//! does, `deny_action`, rules that answer later, rules replaced while clients are connected,
//! and the counters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use broker_core::{
    AccessControl, AclCheck, AclResult, Action, Authenticator, AuthnDenial, AuthnResult,
    Authorizer, BoxFuture, Broker, ClientAuthorizer, ConnParam, DenyAction, MqttConfig,
};
use bytes::Bytes;
use mqtt_codec::*;
use support::*;

use ProtocolVersion::{V3_1_1, V5};

/// Users and their passwords; `root` is a superuser.
struct Users(HashMap<&'static str, &'static str>);

impl Authenticator for Users {
    fn name(&self) -> &str {
        "users"
    }

    fn authenticate<'a>(&'a self, client: &'a ConnParam) -> BoxFuture<'a, AuthnResult> {
        Box::pin(async move {
            let Some(user) = client.username.as_deref() else {
                return AuthnResult::Ignore;
            };
            let Some(expected) = self.0.get(user) else {
                return AuthnResult::Ignore;
            };
            if client.password().map(|p| &p[..]) == Some(expected.as_bytes()) {
                AuthnResult::Allow {
                    superuser: user == "root",
                }
            } else {
                AuthnResult::Deny(AuthnDenial::BadCredentials)
            }
        })
    }
}

fn users() -> Arc<Users> {
    Arc::new(Users(HashMap::from([
        ("alice", "wonderland"),
        ("root", "toor"),
    ])))
}

/// Rules by exact topic: `(action, topic, allow)`, the same for every client; answered after
/// `delay` when it is not zero (a remote service), and counting the checks asked.
#[derive(Clone, Default)]
struct Rules {
    rules: Arc<Vec<(Action, &'static str, bool)>>,
    delay: Duration,
    asked: Arc<AtomicUsize>,
}

impl Rules {
    fn new(rules: &[(Action, &'static str, bool)]) -> Self {
        Self {
            rules: Arc::new(rules.to_vec()),
            ..Self::default()
        }
    }

    fn answer(&self, action: Action, topic: &str) -> AclResult {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.rules
            .iter()
            .find(|(a, t, _)| *a == action && *t == topic)
            .map_or(AclResult::NoMatch, |(_, _, allow)| {
                if *allow {
                    AclResult::Allow
                } else {
                    AclResult::Deny
                }
            })
    }
}

impl Authorizer for Rules {
    fn name(&self) -> &str {
        "rules"
    }

    fn for_client(&self, _client: &ConnParam) -> Box<dyn ClientAuthorizer> {
        Box::new(self.clone())
    }
}

impl ClientAuthorizer for Rules {
    fn check(&self, action: Action, topic: &str) -> AclCheck {
        let answer = self.answer(action, topic);
        if self.delay.is_zero() {
            return AclCheck::Ready(answer);
        }
        let delay = self.delay;
        AclCheck::Pending(Box::pin(async move {
            tokio::time::sleep(delay).await;
            answer
        }))
    }
}

fn broker_with(access: AccessControl) -> Arc<Broker> {
    Broker::builder(MqttConfig::default())
        .access(access)
        .build()
        .unwrap()
}

fn login(version: ProtocolVersion, id: &str, user: Option<&str>, password: &str) -> Connect {
    let mut connect = connect_packet(version, id);
    connect.username = user.map(ByteString::from);
    connect.password = user.map(|_| Bytes::copy_from_slice(password.as_bytes()));
    connect
}

async fn connack(broker: &Arc<Broker>, connect: Connect) -> ReasonCode {
    Client::connect_with(broker, connect).await.1.reason_code
}

async fn logged_in(broker: &Arc<Broker>, version: ProtocolVersion, id: &str) -> Client {
    let (client, ack) =
        Client::connect_with(broker, login(version, id, Some("alice"), "wonderland")).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    client
}

/// Sends a QoS 1 PUBLISH and returns the PUBACK's reason code.
async fn puback(client: &mut Client, topic_str: &str) -> ReasonCode {
    let id = client.next_pid();
    let mut p = Publish::new(topic(topic_str), Bytes::from_static(b"m"));
    p.qos = PublishQoS::AtLeastOnce(id);
    client.send(Packet::Publish(p)).await;
    match client.recv().await {
        Some(Packet::PubAck(ack)) => {
            assert_eq!(ack.packet_id, id);
            ack.reason_code
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn credentials_decide_who_connects_with_the_codes_of_each_version() {
    let broker = broker_with(
        AccessControl::default()
            .authenticator(users())
            .allow_anonymous(false),
    );
    for version in [V5, V3_1_1] {
        let ok = login(version, "a", Some("alice"), "wonderland");
        assert_eq!(connack(&broker, ok).await, ReasonCode::Success);
        // 3.1.1 gets return code 4 and 5, which decode to the same reason codes.
        let wrong = login(version, "b", Some("alice"), "guess");
        assert_eq!(
            connack(&broker, wrong).await,
            ReasonCode::BadUserNameOrPassword
        );
        let unknown = login(version, "c", Some("mallory"), "x");
        assert_eq!(
            connack(&broker, unknown).await,
            ReasonCode::BadUserNameOrPassword
        );
        let anonymous = login(version, "d", None, "");
        assert_eq!(connack(&broker, anonymous).await, ReasonCode::NotAuthorized);
    }
    let access = broker.metrics().access;
    assert_eq!(access.authentication_success, 2);
    assert_eq!(access.authentication_failure, 6);
}

#[tokio::test(start_paused = true)]
async fn anonymous_clients_connect_where_allowed_but_unknown_users_do_not() {
    let broker = broker_with(AccessControl::default().authenticator(users()));
    let anonymous = login(V5, "d", None, "");
    assert_eq!(connack(&broker, anonymous).await, ReasonCode::Success);
    let unknown = login(V5, "c", Some("mallory"), "x");
    assert_eq!(
        connack(&broker, unknown).await,
        ReasonCode::BadUserNameOrPassword
    );
    // Without any authenticator a user name proves nothing, and anonymous access decides.
    let closed = broker_with(AccessControl::default().allow_anonymous(false));
    let named = login(V5, "e", Some("alice"), "wonderland");
    assert_eq!(connack(&closed, named).await, ReasonCode::NotAuthorized);
}

#[tokio::test(start_paused = true)]
async fn a_denied_publish_is_refused_in_v5_and_dropped_in_v3() {
    let rules = Rules::new(&[(Action::Publish, "secret", false)]);
    let broker = broker_with(
        AccessControl::default()
            .authenticator(users())
            .authorizer(Arc::new(rules)),
    );
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("#", QoS::AtLeastOnce).await;

    let mut v5 = logged_in(&broker, V5, "p5").await;
    assert_eq!(puback(&mut v5, "secret").await, ReasonCode::NotAuthorized);
    assert_eq!(puback(&mut v5, "open").await, ReasonCode::Success);
    let mut v3 = logged_in(&broker, V3_1_1, "p3").await;
    // 3.1.1's PUBACK cannot say no: the message is acknowledged and dropped.
    assert_eq!(puback(&mut v3, "secret").await, ReasonCode::Success);
    v3.publish("secret", b"qos0", QoS::AtMostOnce, false).await;
    v3.publish("open", b"v3", QoS::AtMostOnce, false).await;

    let first = watcher.expect_publish().await;
    assert_eq!(first.topic(), "open");
    watcher.ack(&first).await;
    let second = watcher.expect_publish().await;
    assert_eq!((second.topic(), second.payload()), ("open", &b"v3"[..]));
    watcher.ack(&second).await;
    assert!(watcher.try_recv(Duration::from_secs(1)).await.is_none());
    let access = broker.metrics().access;
    assert_eq!(access.authorization_deny, 3);
    // The watcher's SUBSCRIBE and "open" twice: allowed because no rule is about them.
    assert_eq!(access.authorization_allow, 3);
    assert_eq!(access.authorization_nomatch, 3);
}

#[tokio::test(start_paused = true)]
async fn a_denied_filter_is_refused_while_the_others_in_its_subscribe_are_granted() {
    let rules = Rules::new(&[(Action::Subscribe, "test/nosubscribe", false)]);
    let broker = broker_with(AccessControl::default().authorizer(Arc::new(rules)));
    let filters = ["test/ok", "test/nosubscribe", "$share/g/test/nosubscribe"];
    let mut v5 = Client::connect(&broker, V5, "s5").await;
    assert_eq!(
        v5.subscribe_all(&filters, QoS::AtLeastOnce).await,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::NotAuthorized,
            ReasonCode::NotAuthorized
        ]
    );
    let mut v3 = Client::connect(&broker, V3_1_1, "s3").await;
    assert_eq!(
        v3.subscribe_all(&filters, QoS::AtLeastOnce).await,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::UnspecifiedError,
            ReasonCode::UnspecifiedError
        ]
    );
    // Nothing was subscribed for the refused filters.
    let mut publisher = Client::connect(&broker, V5, "pub").await;
    publisher
        .publish("test/nosubscribe", b"x", QoS::AtLeastOnce, false)
        .await;
    assert!(v5.try_recv(Duration::from_secs(1)).await.is_none());
    assert!(v3.try_recv(Duration::from_secs(1)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn sys_topics_need_a_rule_that_names_them_once_there_are_rules() {
    let rules = Rules::new(&[(Action::Subscribe, "$SYS/broker/uptime", true)]);
    let broker = broker_with(AccessControl::default().authorizer(Arc::new(rules)));
    let mut client = Client::connect(&broker, V5, "sys").await;
    assert_eq!(
        client
            .subscribe_all(
                &["$SYS/#", "$SYS/broker/uptime", "other/#"],
                QoS::AtLeastOnce
            )
            .await,
        [
            ReasonCode::NotAuthorized,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS1
        ]
    );
    // Without rules there is no access control, and $SYS is as readable as anything.
    let open = broker_with(AccessControl::default());
    let mut client = Client::connect(&open, V5, "sys").await;
    assert_eq!(
        client.subscribe_all(&["$SYS/#"], QoS::AtLeastOnce).await,
        [ReasonCode::GrantedQoS1]
    );
}

#[tokio::test(start_paused = true)]
async fn deny_action_disconnect_closes_the_connection_with_not_authorized() {
    let rules = Rules::new(&[
        (Action::Publish, "secret", false),
        (Action::Subscribe, "secret", false),
    ]);
    let broker = broker_with(
        AccessControl::default()
            .authorizer(Arc::new(rules))
            .deny_action(DenyAction::Disconnect),
    );
    let mut publisher = Client::connect(&broker, V5, "p").await;
    let mut p = Publish::new(topic("secret"), Bytes::from_static(b"m"));
    p.qos = PublishQoS::AtLeastOnce(pid(1));
    publisher.send(Packet::Publish(p)).await;
    let disconnect = publisher.expect_close().await.expect("a DISCONNECT");
    assert_eq!(disconnect.reason_code, ReasonCode::NotAuthorized);

    let mut subscriber = Client::connect(&broker, V3_1_1, "s").await;
    let id = subscriber.next_pid();
    subscriber
        .send(Packet::Subscribe(Subscribe {
            packet_id: id,
            subscriptions: vec![Subscription {
                filter: filter("secret"),
                options: SubscriptionOptions::new(QoS::AtMostOnce),
            }],
            properties: SubscribeProperties::default(),
        }))
        .await;
    // 3.1.1 has no DISCONNECT from the server: the connection just closes.
    assert!(subscriber.expect_close().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_will_is_checked_at_connect_and_again_when_it_is_published() {
    let rules = Rules::new(&[(Action::Publish, "wills/denied", false)]);
    let broker = broker_with(AccessControl::default().authorizer(Arc::new(rules)));
    let will = |topic_str: &str| LastWill {
        topic: topic(topic_str),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    };
    for version in [V5, V3_1_1] {
        let mut connect = connect_packet(version, "w");
        connect.will = Some(will("wills/denied"));
        assert_eq!(connack(&broker, connect).await, ReasonCode::NotAuthorized);
    }

    // Allowed at CONNECT; by the time it is published, the rules deny it.
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtMostOnce).await;
    let mut connect = connect_packet(V5, "w2");
    connect.will = Some(will("wills/later"));
    let (client, ack) = Client::connect_with(&broker, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    broker.set_access(AccessControl::default().authorizer(Arc::new(Rules::new(&[(
        Action::Publish,
        "wills/later",
        false,
    )]))));
    client.drop_abruptly();
    assert!(watcher.try_recv(Duration::from_secs(2)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn retained_messages_a_client_may_not_receive_are_not_delivered_at_subscribe() {
    let rules = Rules::new(&[(Action::Receive, "r/hidden", false)]);
    let broker = broker_with(AccessControl::default().authorizer(Arc::new(rules)));
    let mut publisher = Client::connect(&broker, V5, "p").await;
    publisher
        .publish("r/hidden", b"h", QoS::AtLeastOnce, true)
        .await;
    publisher
        .publish("r/visible", b"v", QoS::AtLeastOnce, true)
        .await;
    let mut subscriber = Client::connect(&broker, V5, "s").await;
    subscriber.subscribe("r/#", QoS::AtLeastOnce).await;
    let only = subscriber.expect_publish().await;
    assert_eq!(only.topic(), "r/visible");
    subscriber.ack(&only).await;
    assert!(subscriber.try_recv(Duration::from_secs(1)).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_superuser_skips_every_rule() {
    let rules = Rules::new(&[(Action::Subscribe, "secret", false)]);
    let asked = Arc::clone(&rules.asked);
    let broker = broker_with(
        AccessControl::default()
            .authenticator(users())
            .authorizer(Arc::new(rules))
            .no_match_allows(false),
    );
    let (mut root, ack) =
        Client::connect_with(&broker, login(V5, "root", Some("root"), "toor")).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert_eq!(
        root.subscribe_all(&["secret", "$SYS/#"], QoS::AtLeastOnce)
            .await,
        [ReasonCode::GrantedQoS1, ReasonCode::GrantedQoS1]
    );
    assert_eq!(asked.load(Ordering::Relaxed), 0);
    // Everyone else gets no_match = deny.
    let mut alice = logged_in(&broker, V5, "alice").await;
    assert_eq!(
        alice.subscribe_all(&["anything"], QoS::AtLeastOnce).await,
        [ReasonCode::NotAuthorized]
    );
}

#[tokio::test(start_paused = true)]
async fn rules_that_answer_later_keep_the_order_of_what_the_client_sent() {
    let mut rules = Rules::new(&[(Action::Publish, "denied", false)]);
    rules.delay = Duration::from_millis(500);
    let broker = broker_with(AccessControl::default().authorizer(Arc::new(rules)));
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(&broker, V5, "p").await;
    // Sent back to back; each waits for its answer, and they are handled in order.
    let topics = ["one", "denied", "two", "three"];
    for (i, t) in topics.iter().enumerate() {
        let mut p = Publish::new(topic(t), Bytes::from(i.to_string()));
        p.qos = PublishQoS::AtLeastOnce(pid(u16::try_from(i + 1).unwrap()));
        publisher.send(Packet::Publish(p)).await;
    }
    // A ping is answered while the PUBLISHes wait: the connection is not stopped.
    publisher.send(Packet::PingReq).await;
    let mut acks = Vec::new();
    let mut pinged = false;
    while acks.len() < topics.len() {
        match publisher.recv().await {
            Some(Packet::PubAck(ack)) => acks.push((ack.packet_id.get(), ack.reason_code)),
            Some(Packet::PingResp) => {
                assert!(acks.is_empty(), "the ping was answered after the PUBLISHes");
                pinged = true;
            }
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    assert!(pinged);
    assert_eq!(
        acks,
        [
            (1, ReasonCode::Success),
            (2, ReasonCode::NotAuthorized),
            (3, ReasonCode::Success),
            (4, ReasonCode::Success)
        ]
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let p = watcher.expect_publish().await;
        watcher.ack(&p).await;
        seen.push(p.topic().to_owned());
    }
    assert_eq!(seen, ["one", "two", "three"]);
}

#[tokio::test(start_paused = true)]
async fn rules_replaced_while_connected_apply_from_the_next_check() {
    let broker = broker_with(AccessControl::default().authorizer(Arc::new(Rules::new(&[]))));
    let mut watcher = Client::connect(&broker, V5, "watcher").await;
    watcher.subscribe("t", QoS::AtMostOnce).await;
    let mut client = Client::connect(&broker, V5, "c").await;
    assert_eq!(puback(&mut client, "t").await, ReasonCode::Success);
    broker.set_access(AccessControl::default().authorizer(Arc::new(Rules::new(&[(
        Action::Publish,
        "t",
        false,
    )]))));
    assert_eq!(puback(&mut client, "t").await, ReasonCode::NotAuthorized);
    broker.set_access(AccessControl::default());
    assert_eq!(puback(&mut client, "t").await, ReasonCode::Success);
}

#[tokio::test(start_paused = true)]
async fn anonymous_access_can_differ_per_listener() {
    let listener: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let broker = broker_with(
        AccessControl::default()
            .allow_anonymous(true)
            .listener_allow_anonymous(listener, false),
    );
    let access = AccessControl::default()
        .allow_anonymous(true)
        .listener_allow_anonymous(listener, false);
    assert!(!access.anonymous_allowed(Some(listener)));
    assert!(access.anonymous_allowed(Some("127.0.0.1:2".parse().unwrap())));
    assert!(access.anonymous_allowed(None));
    // In-memory connections come from no listener: the broker-wide setting.
    assert_eq!(
        connack(&broker, connect_packet(V5, "m")).await,
        ReasonCode::Success
    );
}
