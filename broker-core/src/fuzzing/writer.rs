//! Writing scripts by hand: [`ScriptWriter`] produces the bytes that [`super::run`] reads as
//! the steps named, for the regression test's hand-made scripts and the fuzzer's seeds. It
//! knows the byte layout of `input.rs` and must change with it.

use mqtt_codec::ProtocolVersion;

use super::Kind;
use super::input::LEVELS;

/// The bytes of a script, built step by step. Helpers panic on what the script format
/// cannot say (a level not in the alphabet, more than four levels): they are for tests.
#[derive(Debug, Clone)]
pub struct ScriptWriter {
    bytes: Vec<u8>,
}

/// The CONNECT options a hand-made script sets; the rest stay at their first choice (no
/// keep alive, no will, no limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The protocol version.
    pub version: ProtocolVersion,
    /// The client identifier: `c0`..`c3`, or 4 for an empty one (assigned by the broker).
    pub id: u8,
    /// Clean start (MQTT 5) or clean session.
    pub clean: bool,
    /// The keep alive: an index into 0, 1, 10, 60 s.
    pub keep_alive: u8,
    /// MQTT 5 session expiry: an index into not sent, 0, 1, 10, 60, 3600, never.
    pub expiry: u8,
    /// A will on this topic (QoS 0, no delay).
    pub will: Option<&'static str>,
    /// MQTT 5 Receive Maximum: an index into not sent, 1, 2, 65535.
    pub receive_maximum: u8,
    /// MQTT 5 extended authentication with method `fuzz`, with this data.
    pub auth: Option<[u8; 2]>,
}

impl ConnectOptions {
    /// A CONNECT of `version` as client `id`, clean start, nothing else.
    pub fn new(version: ProtocolVersion, id: u8) -> Self {
        Self {
            version,
            id,
            clean: true,
            keep_alive: 0,
            expiry: 0,
            will: None,
            receive_maximum: 0,
            auth: None,
        }
    }
}

impl ScriptWriter {
    /// A script for a broker configured by `config` (the byte described in the module
    /// documentation of [`super`]).
    pub fn new(config: u8) -> Self {
        Self {
            bytes: vec![config],
        }
    }

    /// The script's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn step(&mut self, kind: Kind, client: u8, args: &[u8]) -> &mut Self {
        self.bytes.push(kind.on(client));
        self.bytes.extend_from_slice(args);
        self
    }

    /// A step of any kind with its bytes as given.
    pub fn raw_step(&mut self, kind: Kind, client: u8, args: &[u8]) -> &mut Self {
        self.step(kind, client, args)
    }

    /// A CONNECT.
    pub fn connect(&mut self, client: u8, o: ConnectOptions) -> &mut Self {
        let version = match o.version {
            ProtocolVersion::V3_1 => 0,
            ProtocolVersion::V3_1_1 => 1,
            ProtocolVersion::V5 => 2,
        };
        let who = version | (o.id % 5) << 2;
        let flags =
            u8::from(o.clean) | u8::from(o.will.is_some()) << 1 | u8::from(o.auth.is_some()) << 6;
        let times = (o.keep_alive & 3) | (o.expiry & 7) << 2;
        let limits = o.receive_maximum & 3;
        let mut args = vec![who, flags, times, limits];
        if let Some(will) = o.will {
            args.extend(levels(will));
        }
        if let Some(data) = o.auth {
            args.extend(data);
        }
        self.step(Kind::Connect, client, &args)
    }

    /// A SUBSCRIBE to one filter at `qos` (packet identifier 1).
    pub fn subscribe(&mut self, client: u8, filter: &str, qos: u8) -> &mut Self {
        let mut args = vec![0, 0, qos];
        args.extend(filter_bytes(filter));
        self.step(Kind::Subscribe, client, &args)
    }

    /// An UNSUBSCRIBE of one filter.
    pub fn unsubscribe(&mut self, client: u8, filter: &str) -> &mut Self {
        let mut args = vec![0, 0];
        args.extend(filter_bytes(filter));
        self.step(Kind::Unsubscribe, client, &args)
    }

    /// A PUBLISH of `3 * size` bytes (packet identifier `id`, 1-8, for QoS 1 and 2).
    pub fn publish(
        &mut self,
        client: u8,
        topic: &str,
        qos: u8,
        retain: bool,
        size: u8,
        id: u8,
    ) -> &mut Self {
        let qos = qos % 3;
        let mut args = vec![qos | (u8::from(retain) << 2)];
        args.extend(levels(topic));
        args.push(size);
        if qos != 0 {
            args.push(id.saturating_sub(1));
        }
        self.step(Kind::Publish, client, &args)
    }

    /// Every acknowledgement the client owes.
    pub fn ack_all(&mut self, client: u8) -> &mut Self {
        self.step(Kind::AckAll, client, &[])
    }

    /// A PINGREQ.
    pub fn ping(&mut self, client: u8) -> &mut Self {
        self.step(Kind::Ping, client, &[])
    }

    /// A DISCONNECT; in MQTT 5 `reason` picks Success, Disconnect with Will Message,
    /// Unspecified error or Protocol error.
    pub fn disconnect(&mut self, client: u8, reason: u8) -> &mut Self {
        self.step(Kind::Disconnect, client, &[reason & 3])
    }

    /// An AUTH: `reason` picks Continue, Re-authenticate or Success, with method `fuzz`.
    pub fn auth(&mut self, client: u8, reason: u8, data: [u8; 2]) -> &mut Self {
        let [first, second] = data;
        self.step(Kind::Auth, client, &[reason % 3, first, second])
    }

    /// Bytes as they are (at most 255).
    pub fn raw(&mut self, client: u8, bytes: &[u8]) -> &mut Self {
        let len = bytes.len().min(255);
        let mut args = vec![len as u8];
        args.extend(bytes.iter().take(len));
        self.step(Kind::Raw, client, &args)
    }

    /// A PINGREQ with byte `at` XORed with `xor`.
    pub fn corrupt_ping(&mut self, client: u8, at: u8, xor: u8) -> &mut Self {
        self.step(Kind::Corrupt, client, &[at, xor, Kind::Ping.on(0)])
    }

    /// Drops the connection.
    pub fn close(&mut self, client: u8) -> &mut Self {
        self.step(Kind::Close, client, &[])
    }

    /// Closes the client's sending side.
    pub fn half_close(&mut self, client: u8) -> &mut Self {
        self.step(Kind::HalfClose, client, &[])
    }

    /// Lets time pass: `index` picks 1, 2, 5, 10, 30, 61, 120, 3601 or 7201 s.
    pub fn advance(&mut self, index: u8) -> &mut Self {
        self.step(Kind::Advance, 0, &[index])
    }

    /// Drops the connection and connects again with the last CONNECT.
    pub fn reconnect(&mut self, client: u8, clean: bool) -> &mut Self {
        self.step(Kind::Reconnect, client, &[u8::from(clean)])
    }

    /// Runs the broker until it waits.
    pub fn settle(&mut self) -> &mut Self {
        self.step(Kind::Settle, 0, &[])
    }
}

/// The bytes `input::levels` reads as `path` (one to four levels of the alphabet).
fn levels(path: &str) -> Vec<u8> {
    let parts: Vec<&str> = path.split('/').collect();
    assert!(
        (1..=4).contains(&parts.len()),
        "a hand-made topic has one to four levels: {path:?}"
    );
    let mut out = vec![(parts.len() - 1) as u8];
    for part in parts {
        let Some(i) = LEVELS.iter().position(|l| *l == part) else {
            panic!("level {part:?} is not in the script alphabet {LEVELS:?}");
        };
        out.push(i as u8);
    }
    out
}

/// The bytes `input::filter` reads as `filter`.
fn filter_bytes(filter: &str) -> Vec<u8> {
    let (prefix, rest) = if let Some(rest) = filter.strip_prefix("$share/g/") {
        (2, rest)
    } else if let Some(rest) = filter.strip_prefix("$share/h/") {
        (3, rest)
    } else {
        (0, filter)
    };
    let mut out = vec![prefix];
    out.extend(levels(rest));
    out
}
