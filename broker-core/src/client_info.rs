//! What the operator sees of a session's connection (the admin API's client objects): a few
//! facts copied from the connection's `ConnParam` when it attaches, kept with the session
//! (marked disconnected, with when) after the connection ends. The `ConnParam` itself stays
//! the pipe's: nothing here refers to it.

use std::net::SocketAddr;
use std::time::SystemTime;

use mqtt_codec::{ByteString, ProtocolVersion};

use crate::{ConnParam, TransportKind};

/// A session's connection, current or last. Every session holds one (boxed), so it holds
/// what the admin API shows and no more: at 104 bytes it takes jemalloc's 112-byte class
/// (with the listener's address as well, 136 bytes took the 160-byte one).
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

impl ClientInfo {
    /// The facts of `param`, connected now.
    pub(crate) fn of(param: &ConnParam) -> Self {
        Self {
            username: param.username.clone(),
            peer: param.transport.peer,
            transport: param.transport.kind,
            version: param.version,
            keep_alive: param.keep_alive,
            clean_start: param.clean_start,
            connected_at: SystemTime::now(),
            disconnected_at: None,
        }
    }
}
