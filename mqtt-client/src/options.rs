//! What a client asks for: [`ConnectOptions`] (the CONNECT packet it sends on every
//! attempt), [`Will`], and [`Message`], one application message to publish.

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{
    ClientId, Connect, InvalidTopic, LastWill, ProtocolVersion, PublishProperties, QoS, TopicName,
    UserProperty, WillProperties,
};

use crate::error::Error;

/// The will: published by the server when the connection ends without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Where.
    pub topic: TopicName,
    /// What.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Published retained.
    pub retain: bool,
    /// MQTT 5: seconds the server waits before publishing it.
    pub delay: Option<u32>,
}

/// The options of the CONNECT sent on each connection attempt. Nothing here is changed by
/// a CONNACK: what the server grants lives in that connection's
/// [`crate::ConnectionParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOptions {
    /// 3.1, 3.1.1 or 5.
    pub version: ProtocolVersion,
    /// The client identifier; empty asks the server to assign one (MQTT 5, or 3.1.1 with
    /// clean start).
    pub client_id: String,
    /// Start a new session (clean session in 3.1.1).
    pub clean_start: bool,
    /// Seconds; 0 turns keep alive off (the server's Server Keep Alive overrides it).
    pub keep_alive: u16,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Bytes>,
    /// The will.
    pub will: Option<Will>,
    /// MQTT 5: seconds the server keeps the session after the connection ends.
    pub session_expiry: Option<u32>,
    /// MQTT 5: how many QoS 1/2 messages we accept in flight from the server.
    pub receive_maximum: Option<NonZeroU16>,
    /// MQTT 5: the largest packet we accept; also the decoder's limit.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// MQTT 5: the highest topic alias the server may use towards us (0: none).
    pub topic_alias_maximum: u16,
    /// Use topic aliases towards the server, up to its Topic Alias Maximum.
    pub outbound_topic_aliases: bool,
    /// MQTT 5: user properties of the CONNECT.
    pub user_properties: Vec<(String, String)>,
    /// MQTT 5: an authentication method (an AUTH challenge is not continued).
    pub auth_method: Option<String>,
    /// MQTT 5: its data.
    pub auth_data: Option<Bytes>,
    /// MQTT 3.1.1: the bridge bit Mosquitto and NanoMQ understand (protocol level 0x84).
    pub bridge: bool,
    /// How long to wait for CONNACK.
    pub connect_timeout: Duration,
    /// Not sent: incoming QoS 1/2 messages are acknowledged (PUBACK, PUBREC) only when the
    /// user says so ([`crate::Connection::acknowledge`]), so that a message the server
    /// delivered is not settled before the user has put it somewhere safe (a bridge
    /// acknowledges once the next broker has it). Off: acknowledged on arrival.
    pub manual_acks: bool,
}

impl ConnectOptions {
    /// MQTT 5 with `client_id`, clean start, a keep alive of 60 s, outbound topic aliases.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            version: ProtocolVersion::V5,
            client_id: client_id.into(),
            clean_start: true,
            keep_alive: 60,
            username: None,
            password: None,
            will: None,
            session_expiry: None,
            receive_maximum: None,
            maximum_packet_size: None,
            topic_alias_maximum: 0,
            outbound_topic_aliases: true,
            user_properties: Vec::new(),
            auth_method: None,
            auth_data: None,
            bridge: false,
            connect_timeout: Duration::from_secs(10),
            manual_acks: false,
        }
    }

    /// Sets the protocol version.
    #[must_use]
    pub fn version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// Sets clean start.
    #[must_use]
    pub fn clean_start(mut self, clean: bool) -> Self {
        self.clean_start = clean;
        self
    }

    /// Sets the keep alive in seconds.
    #[must_use]
    pub fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    /// Sets the session expiry (MQTT 5).
    #[must_use]
    pub fn session_expiry(mut self, seconds: u32) -> Self {
        self.session_expiry = Some(seconds);
        self
    }

    /// Sets user name and password.
    #[must_use]
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<Bytes>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// Sets the will.
    #[must_use]
    pub fn will(mut self, will: Will) -> Self {
        self.will = Some(will);
        self
    }

    /// The CONNECT these options make, checked: what 3.1.1 cannot carry is refused rather
    /// than dropped.
    pub fn to_connect(&self) -> Result<Connect, Error> {
        let usage = |text: &str| Err(Error::Usage(text.to_owned()));
        let v5 = self.version.is_v5();
        if !v5 {
            if self.session_expiry.is_some()
                || self.receive_maximum.is_some()
                || self.maximum_packet_size.is_some()
                || self.topic_alias_maximum > 0
                || !self.user_properties.is_empty()
                || self.auth_method.is_some()
                || self.will.as_ref().is_some_and(|w| w.delay.is_some())
            {
                return usage("MQTT 5 options given for an MQTT 3 connection");
            }
            if self.password.is_some() && self.username.is_none() {
                return usage("a password needs a user name before MQTT 5");
            }
            if self.client_id.is_empty() && !self.clean_start {
                return usage("an empty client id needs clean start before MQTT 5");
            }
        }
        if self.auth_data.is_some() && self.auth_method.is_none() {
            return usage("authentication data needs an authentication method");
        }
        let client_id = ClientId::new(self.client_id.as_str())
            .map_err(|e| Error::Usage(format!("invalid client id: {e}")))?;
        let mut connect = Connect::new(self.version, client_id);
        connect.clean_start = self.clean_start;
        connect.keep_alive = self.keep_alive;
        connect.username = self.username.clone().map(Into::into);
        connect.password.clone_from(&self.password);
        connect.bridge = self.bridge && !v5;
        let props = &mut connect.properties;
        props.session_expiry_interval = self.session_expiry;
        props.receive_maximum = self.receive_maximum;
        props.maximum_packet_size = self.maximum_packet_size;
        props.topic_alias_maximum =
            (self.topic_alias_maximum > 0).then_some(self.topic_alias_maximum);
        props.user_properties = user_properties(&self.user_properties);
        props.authentication_method = self.auth_method.clone().map(Into::into);
        props.authentication_data.clone_from(&self.auth_data);
        connect.will = self.will.as_ref().map(|will| LastWill {
            topic: will.topic.clone(),
            payload: will.payload.clone(),
            qos: will.qos,
            retain: will.retain,
            properties: WillProperties {
                will_delay_interval: will.delay,
                ..WillProperties::default()
            },
        });
        Ok(connect)
    }
}

/// The codec's user properties from name/value pairs.
pub fn user_properties(pairs: &[(String, String)]) -> Vec<UserProperty> {
    pairs
        .iter()
        .map(|(k, v)| UserProperty::new(k.as_str(), v.as_str()))
        .collect()
}

/// One application message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Where.
    pub topic: TopicName,
    /// What.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Retained.
    pub retain: bool,
    /// MQTT 5 properties (a topic alias set here is ignored: aliases are the connection's).
    pub properties: PublishProperties,
}

impl Message {
    /// A non-retained message without properties; fails on an invalid topic name.
    pub fn new(topic: &str, payload: impl Into<Bytes>, qos: QoS) -> Result<Self, InvalidTopic> {
        Ok(Self {
            topic: TopicName::new(topic)?,
            payload: payload.into(),
            qos,
            retain: false,
            properties: PublishProperties::default(),
        })
    }

    /// The same message, retained.
    #[must_use]
    pub fn retained(mut self) -> Self {
        self.retain = true;
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn v5_options_on_v3_are_refused_and_the_connect_carries_the_rest() {
        let mut options = ConnectOptions::new("c")
            .version(ProtocolVersion::V3_1_1)
            .session_expiry(60);
        assert!(matches!(options.to_connect(), Err(Error::Usage(_))));
        options.session_expiry = None;
        options.password = Some(Bytes::from("p"));
        assert!(matches!(options.to_connect(), Err(Error::Usage(_))));
        let mut options = ConnectOptions::new("c")
            .clean_start(false)
            .keep_alive(5)
            .session_expiry(300)
            .credentials("u", "p");
        options.receive_maximum = NonZeroU16::new(7);
        options.maximum_packet_size = NonZeroU32::new(1000);
        options.topic_alias_maximum = 4;
        options.user_properties = vec![("k".into(), "v".into())];
        options.will = Some(Will {
            topic: TopicName::new("w").unwrap(),
            payload: Bytes::from("bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            delay: Some(3),
        });
        let connect = options.to_connect().unwrap();
        assert!(!connect.clean_start);
        assert_eq!(connect.keep_alive, 5);
        assert_eq!(connect.username.as_deref(), Some("u"));
        let p = &connect.properties;
        assert_eq!(p.session_expiry_interval, Some(300));
        assert_eq!(p.receive_maximum.map(NonZeroU16::get), Some(7));
        assert_eq!(p.maximum_packet_size.map(NonZeroU32::get), Some(1000));
        assert_eq!(p.topic_alias_maximum, Some(4));
        assert_eq!(p.user_properties.len(), 1);
        let will = connect.will.unwrap();
        assert_eq!(will.properties.will_delay_interval, Some(3));
        assert!(will.retain);
    }
}
