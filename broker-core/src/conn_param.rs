//! `ConnParam`: everything a client said in CONNECT, validated, plus what the transport knows.
//! It is owned by the connection's pipe and dies with it; nothing that outlives a connection
//! (a session, the registry, a queue) holds one.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{ByteString, ClientId, Connect, LastWill, ProtocolVersion, UserProperty};

/// The kind of transport a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket.
    Ws,
    /// WebSocket over TLS.
    Wss,
    /// An in-process stream (tests, embedding).
    Memory,
}

/// What the transport knows about a connection before MQTT begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportInfo {
    /// The transport.
    pub kind: TransportKind,
    /// The peer's address, when there is one.
    pub peer: Option<SocketAddr>,
    /// The verified TLS client certificate's identity (boxed: most connections have none,
    /// and two absent strings would take 48 bytes in every connection's task).
    pub certificate: Option<Box<CertificateIdentity>>,
    /// Mosquitto's `use_identity_as_username`: the username is the verified client
    /// certificate's common name, whatever CONNECT says (none without a certificate), so that
    /// authentication and ACLs see an identity the client cannot choose.
    pub identity_as_username: bool,
    /// Mosquitto's `use_subject_as_username`: the username is the verified client
    /// certificate's whole subject (none without a certificate).
    pub subject_as_username: bool,
    /// The address of the listener the connection came in on (as bound, such as
    /// `0.0.0.0:1883`): per-listener policies find their listener by it.
    pub listener: Option<SocketAddr>,
    /// An in-process client of the broker's own (a bridge's local side; see
    /// [`TransportInfo::internal`]), or `None` for a client from outside.
    pub internal: Option<Internal>,
}

/// Who a verified TLS client certificate says its client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    /// The certificate's whole subject (`CN=device-7,O=Acme`).
    pub subject: String,
    /// Its common name, if it has one.
    pub common_name: Option<String>,
}

/// What the broker grants a client of its own (see [`TransportInfo::internal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Internal {
    /// How many messages its session queues (the broker's `max_mqueue_len` is for
    /// devices; a bridge's queue holds an upstream outage).
    pub max_queued: usize,
}

/// The client identifiers only internal clients may take: a device connecting as a
/// bridge's local session would take its queue.
pub const INTERNAL_CLIENT_ID_PREFIX: &str = "$bridge/";

impl TransportInfo {
    /// A transport without a client certificate.
    pub fn new(kind: TransportKind, peer: Option<SocketAddr>) -> Self {
        Self {
            kind,
            peer,
            certificate: None,
            identity_as_username: false,
            subject_as_username: false,
            listener: None,
            internal: None,
        }
    }

    /// An in-process client of the broker's own, over a [`TransportKind::Memory`] stream:
    /// trusted without the authenticators (a superuser: no ACL applies), allowed to publish
    /// under `$SYS` (a bridge's connection state) and to take a client identifier under
    /// [`INTERNAL_CLIENT_ID_PREFIX`], with a session queue of `max_queued` messages.
    pub fn internal(max_queued: usize) -> Self {
        let mut info = Self::new(TransportKind::Memory, None);
        info.internal = Some(Internal { max_queued });
        info
    }

    /// The subject of the verified TLS client certificate.
    pub fn tls_subject(&self) -> Option<&str> {
        self.certificate.as_ref().map(|c| c.subject.as_str())
    }

    /// The common name of the verified TLS client certificate.
    pub fn tls_common_name(&self) -> Option<&str> {
        self.certificate.as_ref()?.common_name.as_deref()
    }

    /// Whether the username is the client certificate's identity, not the client's word.
    pub fn username_from_certificate(&self) -> bool {
        self.identity_as_username || self.subject_as_username
    }

    /// The same, from the listener bound to `listener`.
    pub fn on_listener(mut self, listener: Option<SocketAddr>) -> Self {
        self.listener = listener;
        self
    }
}

/// When a session ends after its connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionExpiry {
    /// With the connection.
    Immediately,
    /// This long after the connection closes.
    After(Duration),
    /// Never.
    Never,
}

impl SessionExpiry {
    /// The expiry an MQTT 5 Session Expiry Interval (seconds) means.
    pub fn from_interval(seconds: u32) -> Self {
        match seconds {
            0 => Self::Immediately,
            u32::MAX => Self::Never,
            s => Self::After(Duration::from_secs(u64::from(s))),
        }
    }
}

/// The parameters of one connection: its CONNECT, validated, and its transport.
///
/// Built only by the handshake (see [`crate::Broker::serve_connection`]), owned by the
/// connection's [`crate::Pipe`], dropped with it.
#[derive(Debug)]
pub struct ConnParam {
    /// The protocol version.
    pub version: ProtocolVersion,
    /// The client identifier (assigned by the broker if the client sent none).
    pub client_id: ClientId,
    /// Whether the broker assigned the client identifier.
    pub assigned_client_id: bool,
    /// Clean start (MQTT 5) or clean session (3.1.1).
    pub clean_start: bool,
    /// The keep alive in force, in seconds (the server's, if it imposed one); 0 is none.
    pub keep_alive: u16,
    /// The user name.
    pub username: Option<ByteString>,
    /// The will message (boxed: most clients have none, and an absent one would still take
    /// its 216 bytes in every connection's task).
    pub will: Option<Box<LastWill>>,
    /// When the session ends after this connection closes.
    pub session_expiry: SessionExpiry,
    /// How many QoS 1/2 messages the client accepts in flight.
    pub receive_maximum: u16,
    /// The largest packet the client accepts.
    pub maximum_packet_size: u32,
    /// The highest topic alias the client accepts from the broker.
    pub topic_alias_maximum: u16,
    /// Whether the client asked for Response Information.
    pub request_response_information: bool,
    /// Whether the broker may send reason strings and user properties on failures.
    pub request_problem_information: bool,
    /// The password, user properties and authentication method, if the client sent any
    /// (see [`ConnParam::password`]).
    extras: Option<Box<ConnectExtras>>,
    /// An MQTT 3.1/3.1.1 bridge that set the bridge bit of the protocol level: its
    /// subscriptions are no local and retain as published, and it may publish its own
    /// connection state (`$SYS/broker/connection/<client id>/state`).
    pub bridge: bool,
    /// What the transport knows.
    pub transport: TransportInfo,
}

/// What few clients send in CONNECT, boxed: absent, these three took 88 bytes in every
/// connection's task; present, they cost their client a box of their size.
#[derive(Debug, Default)]
struct ConnectExtras {
    password: Option<Bytes>,
    user_properties: Vec<UserProperty>,
    authentication_method: Option<ByteString>,
}

impl ConnectExtras {
    /// `None` when CONNECT had none of them.
    fn of(
        password: Option<Bytes>,
        user_properties: Vec<UserProperty>,
        authentication_method: Option<ByteString>,
    ) -> Option<Box<Self>> {
        let none =
            password.is_none() && user_properties.is_empty() && authentication_method.is_none();
        (!none).then(|| {
            Box::new(Self {
                password,
                user_properties,
                authentication_method,
            })
        })
    }
}

impl ConnParam {
    /// The password.
    pub fn password(&self) -> Option<&Bytes> {
        self.extras.as_ref()?.password.as_ref()
    }

    /// CONNECT's user properties.
    pub fn user_properties(&self) -> &[UserProperty] {
        self.extras
            .as_ref()
            .map_or(&[], |extras| &extras.user_properties)
    }

    /// The extended authentication method.
    pub fn authentication_method(&self) -> Option<&ByteString> {
        self.extras.as_ref()?.authentication_method.as_ref()
    }

    /// Validates `connect` into connection parameters. `client_id` is the identifier to use
    /// (the client's, or one the broker assigned); `session_expiry_default` applies to MQTT
    /// 3.1/3.1.1 persistent sessions; `server_keep_alive` overrides an MQTT 5 keep alive.
    pub(crate) fn new(
        connect: Connect,
        client_id: ClientId,
        transport: TransportInfo,
        session_expiry_default: Option<Duration>,
        server_keep_alive: Option<u16>,
    ) -> Self {
        let assigned_client_id = connect.client_id.is_empty();
        let props = connect.properties;
        let session_expiry = if connect.version.is_v5() {
            SessionExpiry::from_interval(props.session_expiry_interval.unwrap_or(0))
        } else if connect.clean_start {
            SessionExpiry::Immediately
        } else {
            session_expiry_default.map_or(SessionExpiry::Never, SessionExpiry::After)
        };
        let keep_alive = match (connect.version.is_v5(), server_keep_alive) {
            (true, Some(server)) => server,
            _ => connect.keep_alive,
        };
        Self {
            version: connect.version,
            client_id,
            assigned_client_id,
            clean_start: connect.clean_start,
            keep_alive,
            username: if transport.subject_as_username {
                transport.tls_subject().map(ByteString::from)
            } else if transport.identity_as_username {
                transport.tls_common_name().map(ByteString::from)
            } else {
                connect.username
            },
            will: connect.will.map(Box::new),
            session_expiry,
            receive_maximum: props.receive_maximum.map_or(u16::MAX, |r| r.get()),
            maximum_packet_size: props
                .maximum_packet_size
                .map_or(mqtt_codec::MAX_PACKET_SIZE, |m| m.get()),
            topic_alias_maximum: props.topic_alias_maximum.unwrap_or(0),
            request_response_information: props.request_response_information.unwrap_or(false),
            request_problem_information: props.request_problem_information.unwrap_or(true),
            extras: ConnectExtras::of(
                connect.password,
                props.user_properties,
                props.authentication_method,
            ),
            bridge: connect.bridge,
            transport,
        }
    }

    /// Whether this client may publish to `topic` (PUBLISH and will alike): nothing under
    /// `$SYS` is the client's, but a bridge's own connection state (Mosquitto's bridges
    /// publish it, retained, and set it as their will).
    pub fn may_publish(&self, topic: &str) -> bool {
        let Some(rest) = topic.strip_prefix("$SYS") else {
            return true;
        };
        if self.transport.internal.is_some() {
            return true;
        }
        self.bridge
            && rest
                .strip_prefix("/broker/connection/")
                .and_then(|rest| rest.strip_suffix("/state"))
                == Some(self.client_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mqtt_codec::{ClientId, Connect, ProtocolVersion};

    use super::*;

    fn param(username: Option<&str>, transport: TransportInfo) -> ConnParam {
        let client_id = ClientId::new("c").unwrap();
        let mut connect = Connect::new(ProtocolVersion::V5, client_id.clone());
        connect.username = username.map(ByteString::from);
        ConnParam::new(connect, client_id, transport, None, None)
    }

    fn tls(common_name: Option<&str>, identity_as_username: bool) -> TransportInfo {
        TransportInfo {
            certificate: common_name.map(|cn| {
                Box::new(CertificateIdentity {
                    subject: format!("CN={cn}"),
                    common_name: Some(cn.to_owned()),
                })
            }),
            identity_as_username,
            ..TransportInfo::new(TransportKind::Tls, None)
        }
    }

    #[test]
    fn the_username_is_the_clients_unless_the_identity_replaces_it() {
        let p = param(Some("claimed"), tls(Some("device-7"), false));
        assert_eq!(p.username.as_deref(), Some("claimed"));
        assert_eq!(p.transport.tls_common_name(), Some("device-7"));

        let p = param(Some("claimed"), tls(Some("device-7"), true));
        assert_eq!(p.username.as_deref(), Some("device-7"));

        // Without a certificate the client's claim is not taken instead.
        let p = param(Some("claimed"), tls(None, true));
        assert_eq!(p.username, None);

        let by_subject = TransportInfo {
            subject_as_username: true,
            ..tls(Some("device-7"), false)
        };
        let p = param(Some("claimed"), by_subject.clone());
        assert_eq!(p.username.as_deref(), Some("CN=device-7"));
        let p = param(
            Some("claimed"),
            TransportInfo {
                certificate: None,
                ..by_subject
            },
        );
        assert_eq!(p.username, None);
    }

    #[test]
    fn the_rarely_sent_fields_are_kept_when_sent() {
        let client_id = ClientId::new("c").unwrap();
        let transport = TransportInfo::new(TransportKind::Tcp, None);
        let bare = Connect::new(ProtocolVersion::V5, client_id.clone());
        let p = ConnParam::new(
            bare.clone(),
            client_id.clone(),
            transport.clone(),
            None,
            None,
        );
        assert!(p.extras.is_none());
        assert_eq!(p.password(), None);
        assert!(p.user_properties().is_empty());
        assert_eq!(p.authentication_method(), None);

        let mut connect = bare;
        connect.password = Some(Bytes::from_static(b"pw"));
        connect.properties.user_properties = vec![UserProperty {
            name: "k".into(),
            value: "v".into(),
        }];
        connect.properties.authentication_method = Some("SCRAM-SHA-256".into());
        let p = ConnParam::new(connect, client_id, transport, None, None);
        assert_eq!(p.password().map(|p| &p[..]), Some(&b"pw"[..]));
        assert_eq!(p.user_properties().len(), 1);
        assert_eq!(
            p.authentication_method().map(|m| &m[..]),
            Some("SCRAM-SHA-256")
        );
    }

    #[test]
    fn only_a_bridge_publishes_under_sys_and_only_its_own_state() {
        let client_id = ClientId::new("edge/1").unwrap();
        let mut connect = Connect::new(ProtocolVersion::V3_1_1, client_id.clone());
        let transport = TransportInfo::new(TransportKind::Tcp, None);
        let p = ConnParam::new(
            connect.clone(),
            client_id.clone(),
            transport.clone(),
            None,
            None,
        );
        assert!(p.may_publish("a/b"));
        assert!(!p.may_publish("$SYS/broker/connection/edge/1/state"));
        assert!(!p.may_publish("$SYSX"));
        connect.bridge = true;
        let p = ConnParam::new(connect, client_id, transport, None, None);
        assert!(p.may_publish("$SYS/broker/connection/edge/1/state"));
        assert!(!p.may_publish("$SYS/broker/connection/other/state"));
        assert!(!p.may_publish("$SYS/broker/connection/edge/1/state/x"));
        assert!(!p.may_publish("$SYS/broker/uptime"));
        assert!(p.may_publish("$share-not-sys"));
    }
}
