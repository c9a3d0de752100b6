//! What the operator sees of a session's connection (the admin API's client objects): a few
//! facts copied from the connection's `ConnParam` when it attaches, kept with the session
//! (marked disconnected, with when) after the connection ends. The `ConnParam` itself stays
//! the pipe's: nothing here refers to it.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt_codec::{ByteString, ProtocolVersion};

use crate::{ConnParam, TransportKind};

/// A session's connection, current or last, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The user name it connected with.
    pub username: Option<ByteString>,
    /// The peer's address.
    pub peer: Option<SocketAddr>,
    /// The transport.
    pub transport: TransportKind,
    /// Its protocol version.
    pub version: ProtocolVersion,
    /// Its keep alive, in seconds.
    pub keep_alive: u16,
    /// Whether it started clean.
    pub clean_start: bool,
    /// When it connected.
    pub connected_at: SystemTime,
    /// When it disconnected (`None` while connected).
    pub disconnected_at: Option<SystemTime>,
}

/// A [`ClientInfo`] as a session keeps it. Every session holds one (boxed), so it is
/// compact: at 80 bytes it takes jemalloc's 80-byte class, where the `ClientInfo` itself
/// (104 bytes: a whole `SocketAddr`, two `SystemTime`s) took the 112-byte one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientRecord {
    username: Option<ByteString>,
    /// The peer's address and port (an IPv6 peer's flow label and scope are not shown).
    peer: Option<(IpAddr, u16)>,
    transport: TransportKind,
    version: ProtocolVersion,
    keep_alive: u16,
    clean_start: bool,
    /// Milliseconds since the Unix epoch.
    connected_at: u64,
    /// Milliseconds since the Unix epoch (at least 1).
    disconnected_at: Option<NonZeroU64>,
}

impl ClientRecord {
    /// The facts of `param`, connected now.
    pub(crate) fn of(param: &ConnParam) -> Self {
        Self {
            username: param.username.clone(),
            peer: param.transport.peer.map(|peer| (peer.ip(), peer.port())),
            transport: param.transport.kind,
            version: param.version,
            keep_alive: param.keep_alive,
            clean_start: param.clean_start,
            connected_at: unix_ms(SystemTime::now()),
            disconnected_at: None,
        }
    }

    /// Its connection has ended, now.
    pub(crate) fn disconnected(&mut self) {
        self.disconnected_at =
            Some(NonZeroU64::new(unix_ms(SystemTime::now())).unwrap_or(NonZeroU64::MIN));
    }

    /// As the admin API shows it.
    pub(crate) fn info(&self) -> ClientInfo {
        ClientInfo {
            username: self.username.clone(),
            peer: self.peer.map(SocketAddr::from),
            transport: self.transport,
            version: self.version,
            keep_alive: self.keep_alive,
            clean_start: self.clean_start,
            connected_at: from_unix_ms(self.connected_at),
            disconnected_at: self.disconnected_at.map(|at| from_unix_ms(at.get())),
        }
    }
}

/// `at` in milliseconds since the Unix epoch (0 for a time before it, which a clock set
/// wrong can give).
fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_shows_what_it_was_given_to_the_millisecond() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        let record = ClientRecord {
            username: Some(ByteString::from_static("u")),
            peer: Some(("::1".parse().unwrap(), 4242)),
            transport: TransportKind::Tcp,
            version: ProtocolVersion::V5,
            keep_alive: 60,
            clean_start: true,
            connected_at: unix_ms(at),
            disconnected_at: None,
        };
        let info = record.info();
        assert_eq!(info.peer, Some("[::1]:4242".parse().unwrap()));
        assert_eq!(info.connected_at, at);
        assert_eq!(info.disconnected_at, None);
        let mut record = record;
        record.disconnected();
        let gone = record.info().disconnected_at.unwrap();
        assert!(gone >= at && gone <= SystemTime::now(), "{gone:?}");
    }
}
