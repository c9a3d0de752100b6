//! [`Connection`]: the sans-IO client side of one MQTT connection attempt.
//!
//! In the style of quinn-proto: inputs come with an explicit `now`
//! ([`Connection::handle_packet`], [`Connection::handle_timeout`], and the calls a user makes:
//! [`Connection::publish`], [`Connection::subscribe`], ...), outputs are pulled: packets to
//! send ([`Connection::poll_transmit`]), events for the user ([`Connection::poll_event`]),
//! and the next deadline ([`Connection::poll_timeout`]). No socket, no clock, no task: a
//! driver does the I/O (the crate's [`crate::Client`] is one) and tests run it in virtual
//! time.
//!
//! A `Connection` is built for one attempt, from the options and the [`SessionState`] it
//! takes over, and gives the state back with [`Connection::into_state`]. Everything else
//! it holds is that connection's own and dies with it: the [`ConnectionParams`] of its
//! CONNACK, topic aliases both ways, which messages it has sent, keep-alive times, pending
//! SUBSCRIBE/UNSUBSCRIBE requests.
//!
//! Submodules: `outbound` (publishing: flow control, aliases, acknowledgements) and
//! `inbound` (messages from the server, SUBACK/UNSUBACK).

mod inbound;
mod outbound;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use mqtt_codec::{
    ConnAck, Connect, Disconnect, MAX_PACKET_SIZE, Packet, PacketId, Publish, ReasonCode, TopicName,
};

use crate::error::{Error, ProtocolError, PublishError, TimeoutKind};
use crate::options::ConnectOptions;
use crate::params::ConnectionParams;
use crate::state::{SessionState, Ticket};

/// What a [`Connection`] tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CONNACK accepted the connection, with these parameters.
    Connected(ConnectionParams),
    /// A message from the server (already acknowledged, or the acknowledgement queued; a
    /// resent QoS 2 message is not reported twice). With manual acknowledgements, a QoS 1/2
    /// message waits for [`Connection::acknowledge`].
    Message(Publish),
    /// A publication finished: the success reason code of its PUBACK / PUBCOMP (QoS 0: as
    /// soon as it is handed to the driver), or why not.
    Published {
        /// Which one.
        ticket: Ticket,
        /// The outcome.
        result: Result<ReasonCode, PublishError>,
    },
    /// A SUBACK: one reason code per subscription, in order.
    Subscribed {
        /// The SUBSCRIBE's packet identifier.
        packet_id: PacketId,
        /// The codes (granted QoS, or failures).
        reason_codes: Vec<ReasonCode>,
    },
    /// An UNSUBACK: one reason code per filter (MQTT 3.1.1: all Success).
    Unsubscribed {
        /// The UNSUBSCRIBE's packet identifier.
        packet_id: PacketId,
        /// The codes.
        reason_codes: Vec<ReasonCode>,
    },
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// CONNECT queued; CONNACK due by the deadline.
    AwaitConnAck {
        /// When to give up (`None`: a timeout too long to represent, so never).
        deadline: Option<Instant>,
    },
    /// CONNACK accepted.
    Connected,
    /// Ended (DISCONNECT either way, an error, a timeout).
    Closed,
}

/// A SUBSCRIBE or UNSUBSCRIBE awaiting its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// SUBSCRIBE with this many subscriptions.
    Subscribe(usize),
    /// UNSUBSCRIBE with this many filters.
    Unsubscribe(usize),
}

/// One connection attempt, sans IO. See the module documentation.
#[derive(Debug)]
pub struct Connection {
    /// The CONNECT sent.
    connect: Connect,
    /// Use aliases towards the server.
    outbound_aliases: bool,
    /// Incoming QoS 1/2 messages wait for [`Connection::acknowledge`].
    manual_acks: bool,
    /// Inbound QoS 2 identifiers delivered on this connection and not yet acknowledged by
    /// the user (manual acknowledgements): a resend of one of them is neither acknowledged
    /// nor delivered again.
    held: HashSet<PacketId>,
    /// What outlives the connection (handed back by `into_state`).
    state: SessionState,
    /// Where the connection stands.
    phase: Phase,
    /// This connection's CONNACK, once accepted.
    params: Option<ConnectionParams>,
    /// Packets to send.
    transmit: VecDeque<Packet>,
    /// Events for the user.
    events: VecDeque<Event>,
    /// Outbound packet identifiers sent on this connection and not yet completed: what the
    /// server's Receive Maximum counts.
    transmitted: HashSet<PacketId>,
    /// How many messages in flight have not been sent on this connection yet.
    unsent: usize,
    /// SUBSCRIBE/UNSUBSCRIBE awaiting acknowledgement.
    requests: HashMap<PacketId, Request>,
    /// Topic aliases we set towards the server.
    aliases_out: HashMap<TopicName, u16>,
    /// Topic aliases the server set towards us.
    aliases_in: HashMap<u16, TopicName>,
    /// When we last sent a packet.
    last_sent: Instant,
    /// When we last received one.
    last_received: Instant,
}

impl Connection {
    /// A new attempt: the CONNECT is queued for [`Connection::poll_transmit`] and CONNACK
    /// is due within `options.connect_timeout` of `now`. `state` is the session state to
    /// continue (a fresh [`SessionState::new`] for none).
    #[allow(
        clippy::result_large_err,
        reason = "the state goes back to the caller, not lost; once per connection attempt"
    )]
    pub fn new(
        options: &ConnectOptions,
        state: SessionState,
        now: Instant,
    ) -> Result<Self, (Error, SessionState)> {
        let connect = match options.to_connect() {
            Ok(connect) => connect,
            Err(e) => return Err((e, state)),
        };
        let mut transmit = VecDeque::new();
        transmit.push_back(Packet::Connect(Box::new(connect.clone())));
        Ok(Self {
            connect,
            outbound_aliases: options.outbound_topic_aliases,
            manual_acks: options.manual_acks,
            held: HashSet::new(),
            state,
            phase: Phase::AwaitConnAck {
                deadline: now.checked_add(options.connect_timeout),
            },
            params: None,
            transmit,
            events: VecDeque::new(),
            transmitted: HashSet::new(),
            unsent: 0,
            requests: HashMap::new(),
            aliases_out: HashMap::new(),
            aliases_in: HashMap::new(),
            last_sent: now,
            last_received: now,
        })
    }

    /// This connection's parameters, once CONNACK accepted it.
    pub fn params(&self) -> Option<&ConnectionParams> {
        self.params.as_ref()
    }

    /// Whether CONNACK accepted the connection and it has not ended.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Whether the connection ended.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The protocol version.
    pub fn version(&self) -> mqtt_codec::ProtocolVersion {
        self.connect.version
    }

    /// The largest packet we accept (our Maximum Packet Size): the decoder's limit.
    pub fn max_inbound_packet_size(&self) -> u32 {
        self.connect
            .properties
            .maximum_packet_size
            .map_or(MAX_PACKET_SIZE, |m| m.get().min(MAX_PACKET_SIZE))
    }

    /// The largest packet the server accepts (unlimited before CONNACK).
    pub fn max_outbound_packet_size(&self) -> u32 {
        self.params
            .as_ref()
            .map_or(u32::MAX, |p| p.maximum_packet_size)
    }

    /// The session state, read only.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// Ends the connection's life and hands the session state back, for the next attempt.
    pub fn into_state(self) -> SessionState {
        self.state
    }

    /// The next packet to send; `now` is when it is handed to the transport.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Packet> {
        let packet = self.transmit.pop_front()?;
        self.last_sent = now;
        Some(packet)
    }

    /// The next event for the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitConnAck { deadline } => deadline,
            Phase::Connected => {
                let keep_alive = self.keep_alive()?;
                Some((self.last_sent + keep_alive).min(self.last_received + keep_alive * 3 / 2))
            }
            Phase::Closed => None,
        }
    }

    /// The keep alive in force, if on.
    fn keep_alive(&self) -> Option<Duration> {
        let seconds = self.params.as_ref()?.keep_alive;
        (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)))
    }

    /// The transport has received bytes at `now` that the driver has not handed in yet (it
    /// holds them back while its user is slow to take messages): the server is alive, and
    /// keep alive must not declare it dead for our own backlog.
    pub fn handle_activity(&mut self, now: Instant) {
        if self.phase == Phase::Connected {
            self.last_received = self.last_received.max(now);
        }
    }

    /// Time passed: CONNACK overdue, nothing received for 1.5 keep alives (both end the
    /// connection), or a PINGREQ due.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        match self.phase {
            Phase::AwaitConnAck {
                deadline: Some(deadline),
            } if now >= deadline => {
                self.phase = Phase::Closed;
                Err(Error::Timeout(TimeoutKind::Connect))
            }
            Phase::Connected => {
                let Some(keep_alive) = self.keep_alive() else {
                    return Ok(());
                };
                if now >= self.last_received + keep_alive * 3 / 2 {
                    self.phase = Phase::Closed;
                    return Err(Error::Timeout(TimeoutKind::KeepAlive));
                }
                if now >= self.last_sent + keep_alive {
                    self.transmit.push_back(Packet::PingReq);
                    // Not twice, if the driver asks again before it sends.
                    self.last_sent = now;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A packet from the server. An error ends the connection: the server refused or
    /// disconnected us, or broke the protocol (then, for MQTT 5, a DISCONNECT with the
    /// reason is queued for the driver to send before it closes).
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) -> Result<(), Error> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.last_received = now;
        let result = match (self.phase, packet) {
            (Phase::AwaitConnAck { .. }, Packet::ConnAck(connack)) => {
                self.handle_connack(&connack, now)
            }
            (_, Packet::Disconnect(d)) => {
                self.phase = Phase::Closed;
                return Err(Error::Disconnected {
                    reason: d.reason_code,
                    reason_string: d.properties.reason_string.as_ref().map(ToString::to_string),
                });
            }
            (_, Packet::Auth(_)) => Err(ProtocolError::Auth.into()),
            (Phase::Connected, packet) => self.handle_connected(packet),
            (_, other) => Err(ProtocolError::Unexpected(other.packet_type()).into()),
        };
        if let Err(Error::Protocol(e)) = &result {
            self.close_with(e.reason_code());
        }
        result
    }

    /// A packet after CONNACK.
    fn handle_connected(&mut self, packet: Packet) -> Result<(), Error> {
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish),
            Packet::PubAck(ack) => self.handle_puback(&ack),
            Packet::PubRec(ack) => self.handle_pubrec(&ack),
            Packet::PubComp(ack) => self.handle_pubcomp(&ack),
            Packet::PubRel(ack) => {
                self.handle_pubrel(&ack);
                Ok(())
            }
            Packet::SubAck(ack) => self.handle_suback(ack),
            Packet::UnsubAck(ack) => self.handle_unsuback(ack),
            Packet::PingResp => Ok(()),
            other => Err(ProtocolError::Unexpected(other.packet_type()).into()),
        }
    }

    /// CONNACK: refused, or this connection's parameters and the session's resends.
    fn handle_connack(&mut self, connack: &ConnAck, now: Instant) -> Result<(), Error> {
        if connack.reason_code.is_error() {
            self.phase = Phase::Closed;
            return Err(Error::Refused {
                reason: connack.reason_code,
                reason_string: connack
                    .properties
                    .reason_string
                    .as_ref()
                    .map(ToString::to_string),
            });
        }
        let params = ConnectionParams::new(&self.connect, connack);
        if !params.session_present {
            self.session_lost();
        }
        self.phase = Phase::Connected;
        self.last_received = now;
        self.unsent = self.state.outbound.len();
        self.events.push_back(Event::Connected(params.clone()));
        self.params = Some(params);
        self.pump();
        Ok(())
    }

    /// The server has no session for us. Inbound QoS 2 state goes (the server will not send
    /// PUBREL for it). Outbound messages are not dropped, which would lose them: a message
    /// whose PUBREC arrived was accepted, and completes; the others are sent again.
    fn session_lost(&mut self) {
        self.state.inbound_qos2.clear();
        let mut i = 0;
        while let Some(outbound) = self.state.outbound.get(i) {
            if outbound.stage == crate::state::Stage::Qos2Released {
                if let Some(done) = self.state.remove(i) {
                    self.events.push_back(Event::Published {
                        ticket: done.ticket,
                        result: Ok(ReasonCode::Success),
                    });
                }
            } else {
                i += 1;
            }
        }
    }

    /// Ends the connection with DISCONNECT `reason` (queued for the driver). MQTT 3.1.1 has
    /// no reason: only a normal DISCONNECT is sent, and only on a normal end.
    pub fn disconnect(&mut self, reason: ReasonCode) {
        self.close_with(reason);
    }

    /// Queues DISCONNECT `reason` (if the version can carry it) and closes.
    fn close_with(&mut self, reason: ReasonCode) {
        if self.phase == Phase::Closed {
            return;
        }
        let was_connected = self.phase == Phase::Connected;
        self.phase = Phase::Closed;
        if self.connect.version.is_v5() || (reason == ReasonCode::Success && was_connected) {
            self.transmit
                .push_back(Packet::Disconnect(Disconnect::new(reason)));
        }
    }

    /// Queues a packet.
    fn send(&mut self, packet: Packet) {
        self.transmit.push_back(packet);
    }

    /// The connection's parameters, if connected.
    fn connected(&self) -> Option<&ConnectionParams> {
        match self.phase {
            Phase::Connected => self.params.as_ref(),
            _ => None,
        }
    }
}
