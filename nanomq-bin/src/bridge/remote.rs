//! One connection attempt to the upstream: the client crate's sans-IO [`Connection`], driven
//! here rather than by its tokio `Client`, so that handing a message to the connection is a
//! plain call that either took it (it is in the session state from then on, and comes back
//! as `Event::Published`) or did not. A message can then be neither lost nor sent twice by
//! a cancelled `select!` branch or a command channel that dies with its connection.
//!
//! Everything here is this attempt's own and dies with it (the ConnParam rule, client side):
//! the CONNACK's [`ConnectionParams`], the topic aliases, the transport. What outlives it is
//! the [`SessionState`], handed back by [`Remote::close`].

use std::time::Instant;

use mqtt_client::io::{PacketReader, PacketWriter};
use mqtt_client::{ConnectOptions, Connection, ConnectionParams, Connector, Error, SessionState};
use mqtt_codec::{Packet, ReasonCode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A connected upstream.
pub(super) struct Remote {
    /// The sans-IO connection.
    pub(super) conn: Connection,
    /// The transport's write half.
    writer: PacketWriter,
    /// Packets read by the reader task. Unbounded so that the reader never stops while we
    /// write (both sides writing without reading would deadlock); what the upstream may
    /// send is bounded by our Receive Maximum and the acknowledgements we wait for.
    packets: mpsc::UnboundedReceiver<Result<Packet, Error>>,
    /// The reader task.
    reader: JoinHandle<()>,
}

impl Remote {
    /// Opens the transport, sends CONNECT and waits for CONNACK (all within the connect
    /// timeout). On failure the session state comes back with the error.
    pub(super) async fn connect(
        connector: &Connector,
        options: &ConnectOptions,
        state: SessionState,
    ) -> Result<(Self, ConnectionParams), (Error, SessionState)> {
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let opened = tokio::time::timeout_at(deadline, connector.open()).await;
        let (read, write) = match opened {
            Ok(Ok(halves)) => halves,
            Ok(Err(e)) => return Err((e, state)),
            Err(_) => {
                return Err((Error::Timeout(mqtt_client::TimeoutKind::Connect), state));
            }
        };
        let conn = Connection::new(options, state, Instant::now())?;
        let reader = PacketReader::with_max_packet_size(
            read,
            conn.version(),
            conn.max_inbound_packet_size(),
        );
        let writer = PacketWriter::new(write, conn.version());
        let (tx, packets) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_packets(reader, tx));
        let mut remote = Self {
            conn,
            writer,
            packets,
            reader,
        };
        match remote.handshake().await {
            Ok(params) => Ok((remote, params)),
            Err(e) => Err((e, remote.close().await)),
        }
    }

    /// Until CONNACK accepts (or refuses, or the deadline passes). Returns at the CONNACK,
    /// before anything else is written: what it set off (resends, and the events of
    /// messages refused under its limits) is the relay's to write and to hear, so that a
    /// write failing now cannot take those events with it.
    async fn handshake(&mut self) -> Result<ConnectionParams, Error> {
        loop {
            if let Some(params) = self.conn.params() {
                return Ok(params.clone());
            }
            self.flush().await?;
            tokio::select! {
                packet = self.packets.recv() => self.handle(packet)?,
                () = sleep_until(self.conn.poll_timeout()) => {
                    self.conn.handle_timeout(Instant::now())?;
                }
            }
        }
    }

    /// Writes everything the connection has queued.
    pub(super) async fn flush(&mut self) -> Result<(), Error> {
        let mut wrote = false;
        while let Some(packet) = self.conn.poll_transmit(Instant::now()) {
            self.writer.queue(&packet)?;
            wrote = true;
        }
        if wrote {
            self.writer.flush().await?;
        }
        Ok(())
    }

    /// The next packet from the reader task (cancel safe: for a `select!`).
    pub(super) async fn packet(&mut self) -> Option<Result<Packet, Error>> {
        self.packets.recv().await
    }

    /// A packet the reader task already has, without waiting: `None` when there is none
    /// yet, `Some(None)` when the reader has ended (as [`Remote::packet`] would say).
    pub(super) fn ready_packet(&mut self) -> Option<Option<Result<Packet, Error>>> {
        match self.packets.try_recv() {
            Ok(packet) => Some(Some(packet)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
        }
    }

    /// Hands what [`Remote::packet`] gave to the connection.
    pub(super) fn handle(&mut self, packet: Option<Result<Packet, Error>>) -> Result<(), Error> {
        let packet = packet.unwrap_or(Err(Error::Closed))?;
        self.conn.handle_packet(packet, Instant::now())
    }

    /// When the connection's next timer is due (keep alive), if any.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    /// The timer is due.
    pub(super) fn handle_timeout(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        if !self.packets.is_empty() {
            // Bytes arrived that we have not handled yet: the upstream is alive.
            self.conn.handle_activity(now);
        }
        self.conn.handle_timeout(now)
    }

    /// Ends the attempt: a DISCONNECT if `reason` says so and the connection still stands,
    /// whatever is queued written if it can be, the transport closed. Returns the session
    /// state for the next attempt.
    pub(super) async fn close_with(mut self, reason: Option<ReasonCode>) -> SessionState {
        if let Some(reason) = reason {
            self.conn.disconnect(reason);
        }
        let _ = self.flush().await;
        self.close().await
    }

    /// Closes the transport and returns the session state.
    async fn close(mut self) -> SessionState {
        self.writer.shutdown().await;
        self.reader.abort();
        self.conn.into_state()
    }
}

/// The reader task: packets until the connection ends (the last item is the error).
async fn read_packets(mut reader: PacketReader, tx: mpsc::UnboundedSender<Result<Packet, Error>>) {
    loop {
        let item = match reader.next().await {
            Ok(Some(packet)) => Ok(packet),
            Ok(None) => Err(Error::Closed),
            Err(e) => Err(e),
        };
        let last = item.is_err();
        if tx.send(item).is_err() || last {
            return;
        }
    }
}

/// Sleeps until `at`, or forever.
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
