//! The connection driver: one task per connection that owns the pipe and runs the session
//! over it. It reads and handles the client's packets, sends what the session has queued
//! (within the client's receive maximum and maximum packet size, with topic aliases), keeps
//! time (keep alive, MQTT 3.1.1 retries), and closes when told to (takeover, shutdown).
//!
//! Everything here about the connection (version, limits, aliases) comes from the pipe's
//! `ConnParam` or lives in the driver; the session only holds what outlives the connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use mqtt_codec::{Disconnect, Packet, ProtocolVersion, ReasonCode};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::Stopped;
use super::io::{PacketReader, ReadError, encode_into, write_all_flush};
use crate::auth::ClientAccess;
use crate::limits::{Limit, LimitLog};
use crate::pipe::Pipe;
use crate::session::{Awaiting, Control, SessionShared};
use crate::{Broker, ConnParam, Limits, SessionExpiry};
pub(crate) use dormancy::Kept;
use lazy::{Aliases, HeldAcks, Rare};
use wait::Woken;

mod authorize;
mod dormancy;
mod flow;
mod incoming;
mod lazy;
mod outgoing;
mod reauth;
mod subscribe;
mod timers;
mod wait;

/// Stop filling the write buffer past this many bytes before writing it out, so one busy
/// session cannot build an unbounded buffer.
const WRITE_BATCH: usize = 64 * 1024;

/// Reads (of 4 KB at most) a connection handles in a row before it lets the other tasks
/// run. A publisher whose socket always has more would otherwise keep its worker until
/// tokio's budget runs out (128 reads, some 6,000 messages routed), while the subscriber it
/// feeds waits: under a QoS 0 flood the subscribers got 3% of what was published.
const READS_BEFORE_YIELD: u32 = 16;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The client sent DISCONNECT (normal disconnection).
    Normal,
    /// The client sent DISCONNECT with "Disconnect with Will Message".
    NormalWithWill,
    /// The stream closed or failed without DISCONNECT.
    Lost,
    /// The broker closed the connection for this reason (protocol error, keep alive
    /// timeout, ...).
    Closed(ReasonCode),
    /// Another connection took the session over (see [`Control::TakenOver`]).
    TakenOver { session_ends: bool },
    /// The broker is shutting down.
    Shutdown,
}

impl Exit {
    /// The reason code that says how the connection ended (for client events).
    pub(crate) fn reason_code(self) -> ReasonCode {
        match self {
            Self::Normal => ReasonCode::Success,
            Self::NormalWithWill => ReasonCode::DisconnectWithWillMessage,
            Self::Lost => ReasonCode::UnspecifiedError,
            Self::Closed(reason) => reason,
            Self::TakenOver { .. } => ReasonCode::SessionTakenOver,
            Self::Shutdown => ReasonCode::ServerShuttingDown,
        }
    }

    /// Whether the will message is published: every end but a normal DISCONNECT, a broker
    /// shutdown, and a takeover that continues the session.
    pub(crate) fn publishes_will(self) -> bool {
        match self {
            Self::Normal | Self::Shutdown => false,
            Self::TakenOver { session_ends } => session_ends,
            Self::NormalWithWill | Self::Lost | Self::Closed(_) => true,
        }
    }
}

/// How many reads a closing connection still takes from its client before it goes: what the
/// client sent before the close (a DISCONNECT above all) is handled, but a client that never
/// stops sending cannot hold the close off.
const DRAIN_READS: usize = 16;

pub(super) struct Driver<'a, P: Pipe> {
    broker: &'a Arc<Broker>,
    pipe: &'a mut P,
    session: Driven,
    reader: PacketReader,
    out: BytesMut,
    last_received: Instant,
    /// When something last happened on the connection (bytes read, a wake-up of any kind
    /// but the timer, the connection waking from dormancy): it goes dormant only after
    /// `dormant::DORMANT_AFTER` of nothing.
    stirred: Instant,
    /// The topic aliases of either direction, allocated when the first is set up: most
    /// connections never use one, and two empty maps would cost an idle connection 96 bytes.
    aliases: Option<Box<Aliases>>,
    /// A re-authentication in progress, and why the broker is closing the connection.
    rare: Rare,
    /// PUBACKs and PUBRECs waiting for the store to reach their ticket; in the order their
    /// PUBLISHes arrived, which is the order they must go out in (MQTT 5 4.6).
    held_acks: HeldAcks,
    /// The limits this connection has passed (each is logged once).
    limit_log: LimitLog,
    /// The broker's limits as of `limits_generation` (see [`Driver::limits`]).
    limits: Arc<Limits>,
    /// The generation of `limits`.
    limits_generation: u64,
    /// A PUBLISH waiting for room in full subscriber queues, and what waits behind it.
    flow: flow::Flow,
    /// What the client may do.
    access: &'a mut ClientAccess,
    /// A PUBLISH or SUBSCRIBE waiting for a remote authorization answer, or a SUBSCRIBE with
    /// filters left to handle: what the client sent after it waits behind it.
    holding: Option<Box<authorize::Holding>>,
    /// Actions denied to the client so far (for the log's rate limit).
    denials: u32,
    /// Actions allowed by a rule and not yet added to the broker's counter.
    allowed_uncounted: u32,
    /// Packets encoded into `out` since its last write (counted once written; u32, so that
    /// `active` fits beside the two counters above without growing the driver).
    out_packets: u32,
    /// Whether the client has sent anything since CONNECT: only then do its buffers stay
    /// between packets (see `timers::KEEP_BUFFERS`); a client that connects and idles never
    /// holds them past its CONNACK.
    active: bool,
    /// Whether the connection has been dormant (see [`Kept`]).
    resumed: bool,
    /// Whether it may not go dormant again (see [`Kept`]).
    sleepless: bool,
}

impl<'a, P: Pipe> Driver<'a, P> {
    /// A driver taking up where `kept` left off, with what the client sent beyond its last
    /// packet (after CONNECT, in the first spell) in `buffered`.
    pub(super) fn new(
        broker: &'a Arc<Broker>,
        pipe: &'a mut P,
        session: Arc<SessionShared>,
        access: &'a mut ClientAccess,
        kept: Kept,
        buffered: BytesMut,
    ) -> Self {
        let Kept {
            decoder,
            last_received,
            aliases,
            limit_log,
            denials,
            active,
            resumed,
            sleepless,
        } = kept;
        let (limits, limits_generation) = broker.limits_now();
        Self {
            broker,
            pipe,
            session: Driven(session),
            reader: PacketReader::resume(decoder, buffered),
            // Allocated on the first write: an idle connection costs no write buffer.
            out: BytesMut::new(),
            last_received,
            stirred: Instant::now(),
            aliases,
            rare: Rare::default(),
            held_acks: HeldAcks::default(),
            limit_log,
            limits,
            limits_generation,
            flow: flow::Flow::default(),
            access,
            holding: None,
            denials,
            allowed_uncounted: 0,
            out_packets: 0,
            active,
            resumed,
            sleepless,
        }
    }

    /// The limits in force: the broker's, taken again only when a reload replaced them
    /// (one relaxed load per packet, no lock on the publish path).
    fn limits(&mut self) -> &Limits {
        if self.broker.limits_changed(self.limits_generation) {
            (self.limits, self.limits_generation) = self.broker.limits_now();
        }
        &self.limits
    }

    fn param(&self) -> &ConnParam {
        self.pipe.conn_param()
    }

    fn version(&self) -> ProtocolVersion {
        self.pipe.conn_param().version
    }

    /// Says goodbye as the protocol asks, once [`Driver::run`] has ended with `exit`.
    ///
    /// Apart from `run` rather than after it in one async fn: each async fn keeps its own
    /// copy of the reference it runs on, and the task would hold the outer one's frame
    /// around the loop's for the connection's whole life.
    pub(super) async fn goodbye(&mut self, exit: Exit) -> Exit {
        self.count_allowed();
        let reason = match exit {
            Exit::Closed(reason) => Some(reason),
            Exit::TakenOver { .. } => Some(ReasonCode::SessionTakenOver),
            Exit::Shutdown => Some(ReasonCode::ServerShuttingDown),
            _ => None,
        };
        if let (Some(reason), true) = (reason, self.version().is_v5()) {
            let mut disconnect = Disconnect::new(reason);
            // The client may ask not to get reason strings (Request Problem Information 0).
            if self.param().request_problem_information {
                disconnect.properties.reason_string = self.rare.take_close_reason().map(Into::into);
            }
            // A Reason String must not take the packet past the client's Maximum Packet
            // Size (MQTT 5 3.14.2.2.3): it goes, the reason code stays.
            if disconnect_too_large(&disconnect, self.param().maximum_packet_size) {
                disconnect.properties.reason_string = None;
            }
            self.encode(&Packet::Disconnect(disconnect));
        }
        self.reader.flush_counts(&self.broker.metrics);
        let stream = self.pipe.stream();
        let mut written = false;
        let goodbye = async {
            if !self.out.is_empty() {
                stream.write_all(&self.out).await?;
                stream.flush().await?;
                written = true;
            }
            stream.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
        if written {
            self.count_written();
        }
        exit
    }

    /// Runs the connection until it ends.
    ///
    /// By reference: an async fn keeps a moved copy of what it takes by value beside the
    /// argument's own storage, and the driver would be held twice in every connection's
    /// task.
    pub(super) async fn run(&mut self) -> Stopped {
        // The session is registered by now: a shutdown that this does not see yet wakes it
        // (see `Broker::shutdown`), and the wake-up finds `stopping` set.
        if self.broker.is_stopping() {
            return Stopped::Ended(Exit::Shutdown);
        }
        if let Some(exit) = self.controlled(!self.resumed).await {
            return Stopped::Ended(exit);
        }
        // One timer for the connection's life, reset to each deadline: in the loop's frame
        // once, rather than a new one (and a future around it) in every round's select.
        let timer = tokio::time::sleep_until(Instant::now());
        let mut timer = std::pin::pin!(timer);
        let mut reads_in_a_row: u32 = 0;
        let mut first = 0;
        loop {
            // Not a waker woken at once: tokio's `yield_now` lets the worker poll the
            // sockets before the task runs again, so the others' bytes are read meanwhile.
            if self.holds_subscribe() {
                reads_in_a_row = 0;
                tokio::task::yield_now().await;
                if let Some(exit) = self.next_subscribe_slice() {
                    return Stopped::Ended(exit);
                }
            } else if reads_in_a_row >= READS_BEFORE_YIELD {
                reads_in_a_row = 0;
                tokio::task::yield_now().await;
            }
            if let Some(exit) = self.resume() {
                return Stopped::Ended(exit);
            }
            // Packets that arrived together with CONNECT, or in the last read.
            let handled = self.handle_buffered();
            self.reader.flush_counts(&self.broker.metrics);
            if let Some(exit) = handled {
                return Stopped::Ended(exit);
            }
            self.release_acks();
            let more = self.pump();
            // Once a round: whether the buffers stay, for the write below and the read.
            let keep = self.keeps_buffers();
            if !self.out.is_empty() {
                // Streams that buffer (TLS, WebSocket) send only on flush.
                let result = write_all_flush(self.pipe.stream(), &self.out).await;
                if let Some(exit) = self.written(result, more || keep) {
                    return Stopped::Ended(exit);
                }
            }
            if more {
                // The batch filled up with more to send: come straight back for the rest
                // (after looking at what the client sent meanwhile).
                self.session.wake.notify_one();
            }
            if let Some(sleeping) = self.falls_asleep() {
                return Stopped::Dormant(sleeping);
            }
            let timed = {
                let deadline = self.next_deadline();
                if let Some(at) = deadline
                    && timer.deadline() != at
                {
                    timer.as_mut().reset(at);
                }
                deadline.is_some()
            };
            first = (first + 1) % wait::SOURCES;
            let round = wait::Round {
                timed,
                reading: self.flow.reading(),
                keep,
                first,
            };
            let woken = self.wait(timer.as_mut(), round).await;
            if !matches!(woken, Woken::Timer) {
                self.stirred = Instant::now();
            }
            match woken {
                Woken::Durable | Woken::Unblocked => {}
                Woken::Held(decisions) => {
                    if let Some(exit) = self.on_held_ready(decisions) {
                        return Stopped::Ended(exit);
                    }
                }
                Woken::Read(Ok(())) => {
                    self.last_received = self.stirred;
                    self.active = true;
                    reads_in_a_row += 1;
                }
                Woken::Read(Err(e)) => return Stopped::Ended(self.read_failed(e)),
                // A change of the session's control, and a shutdown, come with a wake-up.
                Woken::Session => {
                    if self.broker.is_stopping() {
                        return Stopped::Ended(Exit::Shutdown);
                    }
                    if let Some(exit) = self.controlled(false).await {
                        return Stopped::Ended(exit);
                    }
                }
                Woken::Timer => {
                    if let Some(exit) = self.on_timer() {
                        return Stopped::Ended(exit);
                    }
                }
            }
        }
    }

    /// Counts what was written (or ends the connection, if the write failed: `Some`) and
    /// keeps the write buffer for the next round if `keep` (the session has more to send,
    /// or the client was busy a moment ago).
    fn written(&mut self, result: std::io::Result<()>, keep: bool) -> Option<Exit> {
        if let Err(e) = result {
            tracing::debug!(client = %self.param().client_id, error = %e, "write failed");
            return Some(self.failed());
        }
        self.count_written();
        // No larger than two batches: an idle connection holds no write buffer (the next
        // write allocates what it needs), and a burst's growth is given back.
        if keep && self.out.capacity() <= 2 * WRITE_BATCH {
            self.out.clear();
        } else {
            self.out = BytesMut::new();
        }
        None
    }

    /// Acts on the session's control: `Some` ends the connection (taken over, kicked).
    /// `first`: before the loop (a kick found then closes without a reason string, as
    /// before the connection ever ran).
    async fn controlled(&mut self, first: bool) -> Option<Exit> {
        match self.session.control() {
            // Boxed: the takeover's reads would otherwise take their room (136 bytes) in
            // every connection's task, for the one time a session changes hands.
            Control::TakenOver { session_ends } => {
                Some(Box::pin(self.taken_over(session_ends)).await)
            }
            Control::Kicked => {
                if !first {
                    self.rare
                        .set_close_reason("kicked by an administrator".into());
                }
                Some(Exit::Closed(ReasonCode::AdministrativeAction))
            }
            Control::Run => None,
        }
    }

    /// Handles the packets already buffered; `Some` ends the connection.
    fn handle_buffered(&mut self) -> Option<Exit> {
        loop {
            let before = self.reader.buf.len();
            match self.reader.buffered() {
                Ok(Some(packet)) => {
                    let size = before.saturating_sub(self.reader.buf.len());
                    if let Some(exit) = self.receive(packet, size) {
                        return Some(exit);
                    }
                }
                Ok(None) => return None,
                Err(e) => return Some(self.read_failed(e)),
            }
        }
    }

    /// Ends the connection for a takeover, after handling what the client had already sent:
    /// a client that sent DISCONNECT and connected again at once ended this connection
    /// normally (no will, MQTT-3.14.4-3), whichever the broker noticed first.
    async fn taken_over(&mut self, session_ends: bool) -> Exit {
        for _ in 0..DRAIN_READS {
            if let Some(exit) = self.handle_buffered() {
                return exit;
            }
            if !self.flow.reading() {
                break;
            }
            let stream = self.pipe.stream();
            // Unconstrained: a read that is ready must not be put off by tokio's budget.
            let read = tokio::task::unconstrained(ready_now(self.reader.fill(stream, false))).await;
            match read {
                Some(Ok(())) => {}
                Some(Err(e)) => return self.read_failed(e),
                None => break,
            }
        }
        if self.flow.disconnect_deferred() {
            // Its DISCONNECT waits behind a held PUBLISH: it ended normally all the same.
            return self.failed();
        }
        Exit::TakenOver { session_ends }
    }

    fn read_failed(&mut self, error: ReadError) -> Exit {
        match error {
            ReadError::Closed => self.failed(),
            ReadError::Io(e) => {
                tracing::debug!(client = %self.param().client_id, error = %e, "read failed");
                self.failed()
            }
            ReadError::Decode(e) => {
                tracing::debug!(client = %self.param().client_id, error = %e, "invalid packet");
                self.rare.set_close_reason(e.to_string().into());
                self.protocol_error(e.reason_code())
            }
        }
    }

    fn protocol_error(&self, reason: ReasonCode) -> Exit {
        self.broker
            .metrics
            .protocol_errors
            .fetch_add(1, Ordering::Relaxed);
        Exit::Closed(reason)
    }

    fn send(&mut self, packet: Packet) {
        self.encode(&packet);
    }

    /// Encodes `packet` onto the write buffer, counting it.
    fn encode(&mut self, packet: &Packet) {
        if encode_into(packet, self.version(), &mut self.out) {
            self.out_packets = self.out_packets.saturating_add(1);
        }
    }

    /// Adds what the write buffer held, now written, to the broker's counters.
    fn count_written(&mut self) {
        let packets = u64::from(std::mem::take(&mut self.out_packets));
        self.broker
            .metrics
            .count_written(packets, self.out.len() as u64);
    }

    /// Sends a PUBACK or PUBREC once the store is durable up to `ticket` (at once for 0),
    /// after every acknowledgement held before it.
    fn acknowledge(&mut self, packet: Packet, ticket: u64) {
        let (ticket, durable) = match &self.broker.journal {
            Some(journal) => {
                let ticket = journal.ack_ticket(ticket);
                (ticket, ticket == 0 || ticket <= journal.durable_now())
            }
            None => (0, true),
        };
        if self.held_acks.is_empty() && durable {
            self.send(packet);
        } else {
            self.held_acks.push_back((ticket, packet));
        }
    }

    /// Sends the held acknowledgements whose changes are now durable.
    fn release_acks(&mut self) {
        let Some(journal) = &self.broker.journal else {
            return;
        };
        let durable = journal.durable_now();
        while let Some((ticket, _)) = self.held_acks.front() {
            if *ticket > durable {
                break;
            }
            if let Some((_, packet)) = self.held_acks.pop_front() {
                self.encode(&packet);
            }
        }
    }

    /// Handles one packet from the client; `Some` ends the connection.
    fn handle(&mut self, packet: Packet) -> Option<Exit> {
        match packet {
            Packet::Publish(publish) => return self.on_publish(publish),
            Packet::PubAck(ack) => self
                .session
                .state
                .lock()
                .complete(ack.packet_id, Awaiting::PubAck),
            Packet::PubRec(ack) => self.on_pubrec(&ack),
            Packet::PubRel(ack) => self.on_pubrel(&ack),
            Packet::PubComp(ack) => {
                self.session
                    .state
                    .lock()
                    .complete(ack.packet_id, Awaiting::PubComp);
            }
            Packet::Subscribe(subscribe) => return self.on_subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => return self.on_unsubscribe(unsubscribe),
            Packet::PingReq => self.send(Packet::PingResp),
            Packet::Disconnect(disconnect) => return Some(self.on_disconnect(&disconnect)),
            Packet::Auth(auth) => return self.on_auth(auth),
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => {
                tracing::debug!(
                    client = %self.param().client_id,
                    packet = %packet.packet_type(),
                    "packet a client may not send"
                );
                return Some(self.protocol_error(ReasonCode::ProtocolError));
            }
        }
        None
    }

    /// Records that the client passed `limit` with `what`.
    fn exceeded(&mut self, limit: Limit, what: &str) {
        let client = &self.pipe.conn_param().client_id;
        self.limit_log
            .exceeded(limit, &self.broker.metrics, client, what);
    }

    fn on_disconnect(&mut self, disconnect: &Disconnect) -> Exit {
        if let Some(interval) = disconnect.properties.session_expiry_interval {
            let mut life = self.session.life.lock();
            // A session that was to end with the connection cannot be extended now
            // (MQTT 5 3.14.2.2.2).
            if life.expiry == SessionExpiry::Immediately && interval != 0 {
                drop(life);
                return self.protocol_error(ReasonCode::ProtocolError);
            }
            life.expiry = SessionExpiry::from_interval(interval);
        }
        if disconnect.reason_code == ReasonCode::DisconnectWithWillMessage {
            Exit::NormalWithWill
        } else {
            Exit::Normal
        }
    }
}

/// The session a driver drives. The session keeps the waker of the driver waiting on it:
/// it is forgotten when the driver lets go, however the driver ends, since the session may
/// outlive its connection by days and the waker would keep the task's memory.
struct Driven(Arc<SessionShared>);

impl std::ops::Deref for Driven {
    type Target = Arc<SessionShared>;

    fn deref(&self) -> &Arc<SessionShared> {
        &self.0
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.0.wake.forget_waker();
    }
}

/// Whether `disconnect` encodes to more than `max` bytes in MQTT 5.
fn disconnect_too_large(disconnect: &Disconnect, max: u32) -> bool {
    Packet::Disconnect(disconnect.clone())
        .encoded_len(ProtocolVersion::V5)
        .is_ok_and(|len| len > max as usize)
}

/// Polls `future` once: its output if it is ready now, `None` if it would wait.
async fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
