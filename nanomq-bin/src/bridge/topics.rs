//! Where a message goes on the other side of a bridge: the first forward (or subscription)
//! whose filter matches picks the topic map, and the map makes the other side's topic
//! (`prefix` + the replacement topic or the message's own + `suffix`). The message itself
//! keeps its payload, QoS (at most the forward's), retain flag and MQTT 5 properties; what
//! belonged to the connection it came on (topic alias, subscription identifiers) stays behind.

use mqtt_client::Message;
use mqtt_codec::{InvalidTopic, Publish, QoS, TopicFilter, TopicName};

use crate::config::TopicMap;

impl TopicMap {
    /// The topic `topic` becomes.
    pub(crate) fn apply(&self, topic: &str) -> Result<TopicName, InvalidTopic> {
        let middle = if self.topic.is_empty() {
            topic
        } else {
            self.topic.as_str()
        };
        if self.prefix.is_empty() && self.suffix.is_empty() {
            return TopicName::new(middle);
        }
        TopicName::new(format!("{}{middle}{}", self.prefix, self.suffix))
    }
}

/// The first of `routes` (filter, what to do) whose filter matches `topic`.
pub(super) fn route<'a, T>(routes: &'a [(TopicFilter, T)], topic: &TopicName) -> Option<&'a T> {
    routes
        .iter()
        .find(|(filter, _)| filter.matches(topic))
        .map(|(_, route)| route)
}

/// `publish` as a message for the other side: on `topic`, at most at `max_qos`, retained as
/// `retain` says (`None`: as it came).
pub(super) fn carry(
    publish: &Publish,
    topic: TopicName,
    max_qos: QoS,
    retain: Option<bool>,
) -> Message {
    let mut properties = publish.properties().clone();
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    Message {
        topic,
        payload: publish.payload_bytes(),
        qos: publish.qos.qos().min(max_qos),
        retain: retain.unwrap_or(publish.retain),
        properties,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(topic: &str, prefix: &str, suffix: &str) -> TopicMap {
        TopicMap {
            topic: topic.to_owned(),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        }
    }

    #[test]
    fn the_map_keeps_replaces_and_wraps_the_topic() {
        assert_eq!(map("", "", "").apply("a/b").unwrap().as_str(), "a/b");
        assert_eq!(map("x/y", "", "").apply("a/b").unwrap().as_str(), "x/y");
        assert_eq!(
            map("", "edge1/", "/up").apply("a/b").unwrap().as_str(),
            "edge1/a/b/up"
        );
        assert_eq!(map("x", "p/", "").apply("a/b").unwrap().as_str(), "p/x");
        // A topic made too long by its prefix is refused, not sent.
        let long = "a".repeat(65_535);
        assert!(map("", "p/", "").apply(&long).is_err());
    }

    #[test]
    fn the_first_matching_route_wins() {
        let routes = vec![
            (TopicFilter::new("a/#").unwrap(), 1),
            (TopicFilter::new("a/b").unwrap(), 2),
            (TopicFilter::new("+/c").unwrap(), 3),
        ];
        let topic = |t: &str| TopicName::new(t).unwrap();
        assert_eq!(route(&routes, &topic("a/b")), Some(&1));
        assert_eq!(route(&routes, &topic("b/c")), Some(&3));
        assert_eq!(route(&routes, &topic("z")), None);
    }

    #[test]
    fn a_carried_message_leaves_its_connection_behind() {
        let mut publish = Publish::new(
            TopicName::new("t").unwrap(),
            bytes::Bytes::from_static(b"p"),
        );
        publish.qos = mqtt_codec::PublishQoS::ExactlyOnce(mqtt_codec::PacketId::new(3).unwrap());
        publish.retain = true;
        publish.properties_mut().topic_alias = std::num::NonZeroU16::new(2);
        publish.properties_mut().content_type = Some("text/plain".into());
        let message = carry(
            &publish,
            TopicName::new("u").unwrap(),
            QoS::AtLeastOnce,
            None,
        );
        assert_eq!(message.qos, QoS::AtLeastOnce);
        assert!(message.retain);
        assert_eq!(message.properties.topic_alias, None);
        assert_eq!(
            message.properties.content_type.as_deref(),
            Some("text/plain")
        );
        let message = carry(
            &publish,
            TopicName::new("u").unwrap(),
            QoS::ExactlyOnce,
            Some(false),
        );
        assert_eq!(message.qos, QoS::ExactlyOnce);
        assert!(!message.retain);
    }
}
