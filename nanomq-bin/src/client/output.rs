//! How `nanomq sub` prints a message: the payload alone, `topic payload` (`-v`), or one JSON
//! object per line (`--json`).

use std::io::{self, Write};

use mqtt_codec::Publish;
use serde_json::{Map, Value, json};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The payload.
    Payload,
    /// `topic payload`.
    Verbose,
    /// `{"topic": ..., "qos": ..., "retain": ..., "payload": ...}`.
    Json,
}

/// Writes messages to `out` in one format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    /// The format.
    pub(crate) format: Format,
    /// End each message with a newline (`-N` turns it off; JSON lines always have one).
    pub(crate) newline: bool,
}

impl Printer {
    /// Writes one message and flushes, so that a reader of a pipe sees it at once.
    pub(crate) fn print(&self, out: &mut impl Write, publish: &Publish) -> io::Result<()> {
        match self.format {
            Format::Payload => out.write_all(publish.payload())?,
            Format::Verbose => {
                out.write_all(publish.topic().as_bytes())?;
                out.write_all(b" ")?;
                out.write_all(publish.payload())?;
            }
            Format::Json => {
                out.write_all(json_line(publish).to_string().as_bytes())?;
                out.write_all(b"\n")?;
                return out.flush();
            }
        }
        if self.newline {
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

/// The JSON object for one message. A payload that is not UTF-8 is given as `payload_hex`.
pub(crate) fn json_line(publish: &Publish) -> Value {
    let mut object = Map::new();
    object.insert("topic".into(), json!(publish.topic()));
    object.insert("qos".into(), json!(publish.qos.qos().as_u8()));
    object.insert("retain".into(), json!(publish.retain));
    match std::str::from_utf8(publish.payload()) {
        Ok(text) => object.insert("payload".into(), json!(text)),
        Err(_) => object.insert("payload_hex".into(), json!(hex(publish.payload()))),
    };
    let props = publish.properties();
    if !props.user_properties.is_empty() {
        let pairs: Vec<Value> = props
            .user_properties
            .iter()
            .map(|p| json!({ "name": &*p.name, "value": &*p.value }))
            .collect();
        object.insert("user_properties".into(), Value::Array(pairs));
    }
    if let Some(content_type) = &props.content_type {
        object.insert("content_type".into(), json!(&**content_type));
    }
    if let Some(topic) = &props.response_topic {
        object.insert("response_topic".into(), json!(topic.as_str()));
    }
    Value::Object(object)
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use mqtt_codec::{TopicName, UserProperty};

    use super::*;

    fn message(payload: &'static [u8]) -> Publish {
        let mut publish = Publish::new(TopicName::new("a/b").unwrap(), Bytes::from_static(payload));
        publish.retain = true;
        publish
    }

    fn printed(printer: Printer, publish: &Publish) -> String {
        let mut out = Vec::new();
        printer.print(&mut out, publish).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats() {
        let publish = message(b"hi");
        let plain = Printer {
            format: Format::Payload,
            newline: true,
        };
        assert_eq!(printed(plain, &publish), "hi\n");
        let verbose = Printer {
            format: Format::Verbose,
            newline: false,
        };
        assert_eq!(printed(verbose, &publish), "a/b hi");
        let json = Printer {
            format: Format::Json,
            newline: false,
        };
        assert_eq!(
            printed(json, &publish),
            "{\"payload\":\"hi\",\"qos\":0,\"retain\":true,\"topic\":\"a/b\"}\n"
        );
    }

    #[test]
    fn json_carries_binary_payloads_and_user_properties() {
        let mut publish = message(b"\xff\x00");
        publish
            .properties_mut()
            .user_properties
            .push(UserProperty::new("k", "v"));
        let line = json_line(&publish);
        assert_eq!(line["payload_hex"], "ff00");
        assert_eq!(line["user_properties"][0]["name"], "k");
        assert_eq!(line["user_properties"][0]["value"], "v");
    }
}
