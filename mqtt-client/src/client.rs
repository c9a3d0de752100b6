//! [`Client`]: the tokio driver of a [`Connection`] over any [`Connector`] transport.
//!
//! [`Client::connect`] (or [`Client::resume`] with a [`SessionState`]) opens the transport,
//! sends CONNECT and waits for CONNACK, then hands the connection to a driver task. The
//! handle talks to that task: [`Client::publish`] resolves when the QoS flow completes
//! (PUBACK / PUBCOMP, with the reason code; QoS 0 once written), [`Client::subscribe`] and
//! [`Client::unsubscribe`] with the SUBACK / UNSUBACK codes, [`Client::recv`] yields incoming
//! messages (already acknowledged by the driver), [`Client::disconnect`] ends the connection
//! and gives the session state back for the next attempt.
//!
//! A reader task of its own reads the transport, so the driver never stops reading while it
//! writes (a client and a server that both write without reading deadlock). Incoming
//! messages wait in a bounded channel: when the user stops calling `recv`, the driver stops
//! reading, and the server's flow control takes over.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use mqtt_codec::{
    Packet, PacketId, Publish, ReasonCode, SubscribeProperties, Subscription, TopicFilter,
    UnsubscribeProperties,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, PublishError, TimeoutKind};
use crate::io::{PacketReader, PacketWriter};
use crate::options::{ConnectOptions, Message};
use crate::params::ConnectionParams;
use crate::session::{Connection, Event};
use crate::state::{SessionState, Ticket};
use crate::transport::{Connector, ReadHalf, WriteHalf};

/// How many incoming messages wait for [`Client::recv`] before the driver stops reading.
const INCOMING_CAPACITY: usize = 1024;

/// Which way a packet went, for a [`PacketObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We sent it.
    Sent,
    /// The server sent it.
    Received,
}

/// Sees every packet sent and received (a `-d` trace, a test's record).
pub type PacketObserver = Arc<dyn Fn(Direction, &Packet) + Send + Sync>;

/// What [`Client::recv`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A message from the server.
    Message(Publish),
    /// A publication that no [`Client::publish`] call waits for completed: one restored from
    /// a [`SessionState`] and resent on this connection.
    Completed {
        /// Its ticket (see [`SessionState::tickets`]).
        ticket: Ticket,
        /// The outcome.
        result: Result<ReasonCode, PublishError>,
    },
}

/// What [`Client::disconnect`] gives back.
#[derive(Debug)]
pub struct Ended {
    /// The session state, for the next connection.
    pub state: SessionState,
    /// Why the connection ended, if not by our DISCONNECT.
    pub error: Option<Error>,
}

/// A request from the handle to the driver task.
enum Command {
    /// Publish, and report the outcome.
    Publish(Message, oneshot::Sender<Result<ReasonCode, PublishError>>),
    /// Subscribe or unsubscribe, and report the codes.
    Request(Request, oneshot::Sender<Result<Vec<ReasonCode>, Error>>),
    /// Acknowledge a message (manual acknowledgements).
    Ack(Box<Publish>),
    /// Send DISCONNECT and end.
    Disconnect,
}

/// SUBSCRIBE or UNSUBSCRIBE.
enum Request {
    /// SUBSCRIBE.
    Subscribe(Vec<Subscription>, SubscribeProperties),
    /// UNSUBSCRIBE.
    Unsubscribe(Vec<TopicFilter>, UnsubscribeProperties),
}

/// A connected client. See the module documentation.
pub struct Client {
    /// To the driver.
    commands: mpsc::UnboundedSender<Command>,
    /// From the driver.
    incoming: mpsc::Receiver<Incoming>,
    /// Why the driver ended, once it has.
    ended: Arc<Mutex<Option<Error>>>,
    /// The driver; its output is the session state.
    task: JoinHandle<SessionState>,
    /// This connection's parameters.
    params: ConnectionParams,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects with a new session state; returns once CONNACK accepted.
    pub async fn connect(
        connector: &Connector,
        options: &ConnectOptions,
    ) -> Result<(Self, ConnectionParams), Error> {
        Self::start(connector, options, SessionState::new(), None)
            .await
            .map_err(|(e, _)| e)
    }

    /// Connects continuing `state` (messages in flight are resent, DUP set, in order); on
    /// failure the state comes back with the error.
    #[allow(
        clippy::result_large_err,
        reason = "the state goes back to the caller, not lost; once per connection attempt"
    )]
    pub async fn resume(
        connector: &Connector,
        options: &ConnectOptions,
        state: SessionState,
    ) -> Result<(Self, ConnectionParams), (Error, SessionState)> {
        Self::start(connector, options, state, None).await
    }

    /// [`Client::resume`] with an observer of every packet.
    #[allow(
        clippy::result_large_err,
        reason = "the state goes back to the caller, not lost; once per connection attempt"
    )]
    pub async fn start(
        connector: &Connector,
        options: &ConnectOptions,
        state: SessionState,
        observer: Option<PacketObserver>,
    ) -> Result<(Self, ConnectionParams), (Error, SessionState)> {
        // `None`: a timeout too long to represent, so never.
        let deadline = Instant::now().checked_add(options.connect_timeout);
        // The transport's own handshakes (TCP, TLS, WebSocket) count against the deadline too.
        let opened = tokio::select! {
            opened = connector.open() => opened,
            () = sleep_until(deadline.map(Instant::into_std)) => Err(Error::Timeout(TimeoutKind::Connect)),
        };
        let (read, write) = match opened {
            Ok(halves) => halves,
            Err(e) => return Err((e, state)),
        };
        let mut options = options.clone();
        if let Some(deadline) = deadline {
            options.connect_timeout = deadline.saturating_duration_since(Instant::now());
        }
        Self::start_over(read, write, &options, state, observer).await
    }

    /// [`Client::start`] over a byte stream that is already open (an in-process pipe, a
    /// transport of the caller's own).
    #[allow(
        clippy::result_large_err,
        reason = "the state goes back to the caller, not lost; once per connection attempt"
    )]
    pub async fn start_over(
        read: ReadHalf,
        write: WriteHalf,
        options: &ConnectOptions,
        state: SessionState,
        observer: Option<PacketObserver>,
    ) -> Result<(Self, ConnectionParams), (Error, SessionState)> {
        let mut conn = Connection::new(options, state, Instant::now().into_std())?;
        let version = conn.version();
        let mut reader =
            PacketReader::with_max_packet_size(read, version, conn.max_inbound_packet_size());
        let mut writer = PacketWriter::new(write, version);
        let mut io = Io {
            writer: &mut writer,
            observer: observer.as_ref(),
        };
        let params = match handshake(&mut conn, &mut reader, &mut io).await {
            Ok(params) => params,
            Err(e) => {
                // A DISCONNECT the core queued for a protocol error goes out if it can.
                let _ = io.flush(&mut conn).await;
                writer.shutdown().await;
                return Err((e, conn.into_state()));
            }
        };
        let (packets_tx, packets_rx) = mpsc::channel(64);
        let reader_task = tokio::spawn(read_packets(reader, packets_tx));
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_CAPACITY);
        let ended = Arc::new(Mutex::new(None));
        let driver = Driver {
            conn,
            writer,
            observer,
            packets: packets_rx,
            commands: commands_rx,
            incoming: incoming_tx,
            stash: VecDeque::new(),
            publishes: HashMap::new(),
            requests: HashMap::new(),
            ended: Arc::clone(&ended),
        };
        let task = tokio::spawn(driver.run(reader_task));
        Ok((
            Self {
                commands,
                incoming,
                ended,
                task,
                params: params.clone(),
            },
            params,
        ))
    }

    /// This connection's parameters (from its CONNACK).
    pub fn params(&self) -> &ConnectionParams {
        &self.params
    }

    /// Publishes `message`; resolves when its QoS flow completes: QoS 0 once written, QoS 1
    /// at PUBACK, QoS 2 at PUBCOMP, with the success reason code, or why not. A QoS 1/2
    /// message whose connection ends first stays in the session state
    /// ([`PublishError::ConnectionLost`]) and is resent by the next [`Client::resume`].
    pub async fn publish(&self, message: Message) -> Result<ReasonCode, PublishError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Publish(message, tx))
            .map_err(|_| PublishError::NotConnected)?;
        rx.await.unwrap_or(Err(PublishError::ConnectionLost))
    }

    /// A handle that publishes without borrowing the client, for publications that run
    /// side by side with [`Client::recv`].
    pub fn publisher(&self) -> Publisher {
        Publisher {
            commands: self.commands.clone(),
        }
    }

    /// With manual acknowledgements ([`ConnectOptions::manual_acks`]): acknowledges a
    /// message [`Client::recv`] gave. An error once the connection has ended (the server
    /// then resends the message to the next connection of the session).
    pub fn ack(&self, publish: &Publish) -> Result<(), Error> {
        self.commands
            .send(Command::Ack(Box::new(publish.clone())))
            .map_err(|_| self.end_error())
    }

    /// Subscribes; returns the SUBACK's reason codes, one per subscription (a failure code is
    /// not an error here: the caller decides).
    pub async fn subscribe(
        &self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.request(Request::Subscribe(subscriptions, properties))
            .await
    }

    /// Unsubscribes; returns the UNSUBACK's reason codes (MQTT 3.1.1: all Success).
    pub async fn unsubscribe(
        &self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.request(Request::Unsubscribe(filters, properties))
            .await
    }

    /// Sends a request and waits for its acknowledgement.
    async fn request(&self, request: Request) -> Result<Vec<ReasonCode>, Error> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Request(request, tx)).is_err() {
            return Err(self.end_error());
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.end_error()),
        }
    }

    /// The next incoming message (or completion of a restored publication). An error when
    /// the connection has ended, saying why. Cancel safe.
    pub async fn recv(&mut self) -> Result<Incoming, Error> {
        match self.incoming.recv().await {
            Some(incoming) => Ok(incoming),
            None => Err(self.end_error()),
        }
    }

    /// Why the driver ended.
    fn end_error(&self) -> Error {
        self.ended
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or(Error::NotConnected)
    }

    /// Sends DISCONNECT (if the connection still stands) and returns the session state.
    /// Publications still waiting end with [`PublishError::ConnectionLost`].
    pub async fn disconnect(self) -> Ended {
        let Self {
            commands,
            incoming,
            ended,
            task,
            ..
        } = self;
        // The driver may have ended already; then there is nothing to send.
        let _ = commands.send(Command::Disconnect);
        // Nobody will read what is still to come: the driver must not wait for room.
        drop(incoming);
        let state = task.await.unwrap_or_default();
        let error = ended.lock().ok().and_then(|e| e.clone());
        Ended { state, error }
    }
}

/// Publishes on a [`Client`]'s connection without borrowing it (see [`Client::publisher`]).
#[derive(Debug, Clone)]
pub struct Publisher {
    /// To the driver.
    commands: mpsc::UnboundedSender<Command>,
}

impl Publisher {
    /// As [`Client::publish`], but the message is handed to the connection when this is
    /// called, not when the future is first polled: dropping the future leaves the
    /// publication going, only its outcome unseen.
    pub fn publish(
        &self,
        message: Message,
    ) -> impl Future<Output = Result<ReasonCode, PublishError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.commands.send(Command::Publish(message, tx)).is_ok();
        async move {
            if !sent {
                return Err(PublishError::NotConnected);
            }
            rx.await.unwrap_or(Err(PublishError::ConnectionLost))
        }
    }
}

/// The writing side, with the observer.
struct Io<'a> {
    /// The transport's write half.
    writer: &'a mut PacketWriter,
    /// Sees what is sent.
    observer: Option<&'a PacketObserver>,
}

impl Io<'_> {
    /// Writes everything the core has queued.
    async fn flush(&mut self, conn: &mut Connection) -> Result<(), Error> {
        let mut wrote = false;
        while let Some(packet) = conn.poll_transmit(Instant::now().into_std()) {
            if let Some(observer) = self.observer {
                observer(Direction::Sent, &packet);
            }
            self.writer.queue(&packet)?;
            wrote = true;
        }
        if wrote {
            self.writer.flush().await?;
        }
        Ok(())
    }
}

/// Sends CONNECT and reads until CONNACK accepts (or refuses, or the deadline passes).
async fn handshake(
    conn: &mut Connection,
    reader: &mut PacketReader,
    io: &mut Io<'_>,
) -> Result<ConnectionParams, Error> {
    loop {
        // Returns at the CONNACK, before anything else is written: the resends it set off,
        // and their events, are the driver's.
        if let Some(params) = conn.params() {
            return Ok(params.clone());
        }
        io.flush(conn).await?;
        let deadline = conn.poll_timeout();
        tokio::select! {
            packet = reader.next() => {
                let packet = packet?.ok_or(Error::Closed)?;
                if let Some(observer) = io.observer {
                    observer(Direction::Received, &packet);
                }
                conn.handle_packet(packet, Instant::now().into_std())?;
            }
            () = sleep_until(deadline) => conn.handle_timeout(Instant::now().into_std())?,
        }
    }
}

/// The reader task: packets to the driver until the connection ends.
async fn read_packets(mut reader: PacketReader, tx: mpsc::Sender<Result<Packet, Error>>) {
    loop {
        let item = match reader.next().await {
            Ok(Some(packet)) => Ok(packet),
            Ok(None) => Err(Error::Closed),
            Err(e) => Err(e),
        };
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// Sleeps until `at` (a core deadline), or forever.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The driver task's state.
struct Driver {
    /// The sans-IO connection.
    conn: Connection,
    /// The write half.
    writer: PacketWriter,
    /// Sees every packet.
    observer: Option<PacketObserver>,
    /// From the reader task.
    packets: mpsc::Receiver<Result<Packet, Error>>,
    /// From the handle.
    commands: mpsc::UnboundedReceiver<Command>,
    /// To the handle.
    incoming: mpsc::Sender<Incoming>,
    /// Incoming items the channel had no room for (reading stops while there are any).
    stash: VecDeque<Incoming>,
    /// Publications waiting for their outcome.
    publishes: HashMap<Ticket, oneshot::Sender<Result<ReasonCode, PublishError>>>,
    /// Requests waiting for their acknowledgement.
    requests: HashMap<PacketId, oneshot::Sender<Result<Vec<ReasonCode>, Error>>>,
    /// Why the connection ended, for the handle.
    ended: Arc<Mutex<Option<Error>>>,
}

impl Driver {
    /// Runs the connection until it ends; returns the session state.
    async fn run(mut self, reader_task: JoinHandle<()>) -> SessionState {
        let result = self.run_loop().await;
        // What the core reported before the end still reaches its waiters: a PUBACK handled
        // just before a write failed has taken its message out of the session state, so
        // its waiter must hear the success, not that the connection was lost.
        self.dispatch();
        let mut io = Io {
            writer: &mut self.writer,
            observer: self.observer.as_ref(),
        };
        // Whatever the core queued last (DISCONNECT) goes out if it can.
        let _ = io.flush(&mut self.conn).await;
        self.writer.shutdown().await;
        reader_task.abort();
        let error = result.err();
        for (_, waiter) in self.publishes.drain() {
            let _ = waiter.send(Err(PublishError::ConnectionLost));
        }
        for (_, waiter) in self.requests.drain() {
            let _ = waiter.send(Err(error.clone().unwrap_or(Error::NotConnected)));
        }
        // What arrived before the end is still delivered; then the channel closes.
        for item in self.stash.drain(..) {
            if self.incoming.send(item).await.is_err() {
                break;
            }
        }
        if let Ok(mut ended) = self.ended.lock() {
            *ended = error;
        }
        self.conn.into_state()
    }

    /// The loop: write, hand out events, then wait for the next input.
    async fn run_loop(&mut self) -> Result<(), Error> {
        loop {
            let mut io = Io {
                writer: &mut self.writer,
                observer: self.observer.as_ref(),
            };
            io.flush(&mut self.conn).await?;
            self.dispatch();
            if self.conn.is_closed() {
                return Ok(());
            }
            let deadline = self.conn.poll_timeout();
            let command = tokio::select! {
                biased;
                packet = self.packets.recv(), if self.stash.is_empty() => {
                    let packet = packet.unwrap_or(Err(Error::Closed))?;
                    if let Some(observer) = &self.observer {
                        observer(Direction::Received, &packet);
                    }
                    self.conn.handle_packet(packet, Instant::now().into_std())?;
                    continue;
                }
                permit = self.incoming.reserve(), if !self.stash.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(item) = self.stash.pop_front() {
                                permit.send(item);
                            }
                        }
                        // Nobody listens any more.
                        Err(_) => self.stash.clear(),
                    }
                    continue;
                }
                command = self.commands.recv() => command,
                () = sleep_until(deadline) => {
                    let now = Instant::now().into_std();
                    if !self.packets.is_empty() {
                        self.conn.handle_activity(now);
                    }
                    self.conn.handle_timeout(now)?;
                    continue;
                }
            };
            self.command(command);
        }
    }

    /// One command from the handle (`None`: the handle is gone, which disconnects).
    fn command(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Publish(message, waiter)) => match self.conn.publish(message) {
                Ok(ticket) => {
                    self.publishes.insert(ticket, waiter);
                }
                Err(e) => {
                    let _ = waiter.send(Err(e));
                }
            },
            Some(Command::Request(request, waiter)) => {
                let sent = match request {
                    Request::Subscribe(subs, props) => self.conn.subscribe(subs, props),
                    Request::Unsubscribe(filters, props) => self.conn.unsubscribe(filters, props),
                };
                match sent {
                    Ok(id) => {
                        self.requests.insert(id, waiter);
                    }
                    Err(e) => {
                        let _ = waiter.send(Err(e));
                    }
                }
            }
            Some(Command::Ack(publish)) => self.conn.acknowledge(&publish),
            Some(Command::Disconnect) | None => self.conn.disconnect(ReasonCode::Success),
        }
    }

    /// Hands the core's events to their waiters, or to `recv`.
    fn dispatch(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Connected(_) => {}
                Event::Message(publish) => self.deliver(Incoming::Message(publish)),
                Event::Published { ticket, result } => match self.publishes.remove(&ticket) {
                    Some(waiter) => {
                        let _ = waiter.send(result);
                    }
                    None => self.deliver(Incoming::Completed { ticket, result }),
                },
                Event::Subscribed {
                    packet_id,
                    reason_codes,
                }
                | Event::Unsubscribed {
                    packet_id,
                    reason_codes,
                } => {
                    if let Some(waiter) = self.requests.remove(&packet_id) {
                        let _ = waiter.send(Ok(reason_codes));
                    }
                }
            }
        }
    }

    /// Queues an item for `recv`, in order.
    fn deliver(&mut self, item: Incoming) {
        if !self.stash.is_empty() {
            self.stash.push_back(item);
            return;
        }
        match self.incoming.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(item)) => self.stash.push_back(item),
            // Nobody listens: acknowledged and dropped.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
