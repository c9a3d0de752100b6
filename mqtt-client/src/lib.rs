//! An MQTT 3.1.1 / 5.0 client: a sans-IO session core and a tokio driver.
//!
//! - [`Connection`] is one connection attempt with no I/O: CONNECT from
//!   [`ConnectOptions`], CONNACK into that connection's own [`ConnectionParams`], QoS 1/2
//!   both ways, keep alive, topic aliases, flow control by the server's Receive Maximum.
//!   Inputs carry an explicit `now`; outputs are packets to send, events and the next timer.
//! - [`SessionState`] is what outlives a connection (packet identifiers, messages in flight
//!   and queued, inbound QoS 2 identifiers); [`SessionState::snapshot`] makes it plain data.
//!
//! - [`Client`] is the tokio driver of a `Connection` over a [`Connector`]: TCP, TLS
//!   (feature `tls`), WebSocket (feature `ws`), WSS (both).
//!
//! The ConnParam rule holds here as in the broker: a connection's limits come from its own
//! CONNACK and die with it; a new attempt takes the session state and nothing else.
//!
//! ```no_run
//! use mqtt_client::mqtt_codec::QoS;
//! use mqtt_client::{Client, ConnectOptions, Connector, Message, TlsOptions};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let connector = Connector::from_url("mqtt://127.0.0.1:1883", &TlsOptions::default())?;
//! let (client, _params) = Client::connect(&connector, &ConnectOptions::new("c1")).await?;
//! client.publish(Message::new("a/b", "hello", QoS::AtLeastOnce)?).await?;
//! let ended = client.disconnect().await;
//! assert_eq!(ended.state.in_flight(), 0);
//! # Ok(())
//! # }
//! ```
//!
//! See the README for a sans-IO example.

mod client;
pub mod endpoint;
mod error;
pub mod io;
mod options;
mod params;
mod session;
mod state;
pub mod transport;

pub use client::{Client, Direction, Ended, Incoming, PacketObserver, Publisher};
pub use endpoint::{Endpoint, Scheme};
pub use error::{Error, ProtocolError, PublishError, TimeoutKind};
pub use options::{ConnectOptions, Message, Will, user_properties};
pub use params::ConnectionParams;
pub use session::{Connection, Event};
pub use state::{RestoreError, SessionState, Snapshot, SnapshotMessage, Ticket};
pub use transport::{Connector, TlsOptions};

pub use mqtt_codec;

/// The README's examples, run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
