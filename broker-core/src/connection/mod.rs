//! One connection from first byte to last: the handshake (CONNECT, optional AUTH exchange,
//! CONNACK), which builds the pipe that owns the connection's parameters, then the driver
//! that runs the session over it, then the goodbye (will, session expiry).

mod dormant;
mod driver;
mod handshake;
mod io;
#[cfg(test)]
mod sizes;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) use dormant::DormantPool;

use crate::auth::{Action, Checked, ClientAccess};
use crate::broker::LiveConnection;
use crate::events::ClientEvents;
use crate::pipe::{Pipe, StreamPipe};
use crate::session::{AttachGuard, SessionShared};
use crate::{Broker, ConnParam, TransportInfo};

/// A connection's handshake, boxed (see [`start`]).
pub(crate) type Handshake<S> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<handshake::Established<S>>> + Send>>;

/// The handshake of an accepted stream, not yet started. The stream and what the transport
/// knows go straight into this box: as the arguments of an async function they would keep
/// their storage in the connection's task for its whole life, beside the copies moved on
/// (async functions do not reuse the storage of their arguments), and the handshake's own
/// state (about 2.4 KB) would too, since the generator does not overlap it with the
/// driver's. Boxed, all of it is freed once CONNACK is out.
pub(crate) fn start<S>(broker: Arc<Broker>, stream: S, transport: TransportInfo) -> Handshake<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(handshake::establish(broker, stream, transport))
}

/// Serves one connection to its end: the handshake, then the driver (with dormant spells,
/// see [`dormant`]), then the goodbye.
///
/// One async fn for the handshake and the first spell awake: each level of async fn keeps
/// its own copy of what it was given, for the connection's whole life.
pub(crate) async fn serve<S>(broker: Arc<Broker>, handshake: Handshake<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if broker.is_stopping() {
        return;
    }
    let live = broker.connection_opened();
    let Some(handshake::Established {
        pipe,
        session,
        attach_guard,
        access,
        reader,
    }) = handshake.await
    else {
        return;
    };
    broker.metrics.connected();
    let param = pipe.conn_param();
    tracing::debug!(client = %param.client_id, peer = ?param.transport.peer, version = %param.version, "connected");
    let events = broker.client_events();
    if let Some(events) = &events {
        events.connected(&broker, param);
    }
    let mut conn = Connected {
        pipe,
        session,
        attach_guard,
        access,
        events,
        live,
    };
    // The handshake counted what it read: the reader goes on as a decoder and its buffer.
    let kept = driver::Kept::new(reader.decoder);
    match drive(&broker, &mut conn, kept, reader.buf).await {
        Stopped::Ended(exit) => conn.end(&broker, exit).await,
        Stopped::Dormant(sleeping) => dormant::sleep(conn, sleeping),
    }
}

/// A connection past its handshake: what it holds from CONNACK to its end, awake or
/// dormant. Its fields drop in this order.
pub(crate) struct Connected<S> {
    session: Arc<SessionShared>,
    /// Let go before the stream closes: a client connecting again finds its session free.
    attach_guard: AttachGuard,
    pipe: StreamPipe<S>,
    access: ClientAccess,
    /// Told about the connection's end (those told about its start).
    events: Option<Arc<dyn ClientEvents>>,
    /// Counts the connection as open until it is all gone.
    live: LiveConnection,
}

/// How a spell of driving a connection stopped.
pub(crate) enum Stopped {
    /// The connection ended (and said goodbye to its client).
    Ended(driver::Exit),
    /// It went dormant.
    Dormant(dormant::Sleeping),
}

/// Drives `conn` until it ends or goes dormant, from where `kept` left off and with the
/// client's bytes already read in `buffered`.
///
/// The driver borrows the pipe and the access rather than owning them: moved in and out,
/// they would keep their room in the task twice.
async fn drive<S>(
    broker: &Arc<Broker>,
    conn: &mut Connected<S>,
    kept: driver::Kept,
    buffered: BytesMut,
) -> Stopped
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut driver = driver::Driver::new(
        broker,
        &mut conn.pipe,
        Arc::clone(&conn.session),
        &mut conn.access,
        kept,
        buffered,
    );
    match driver.run().await {
        Stopped::Ended(exit) => Stopped::Ended(driver.goodbye(exit).await),
        dormant => dormant,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connected<S> {
    /// Sees the connection out once its driver ended with `exit`: the will, the session's
    /// detachment, the events. By reference, as `drive`: the caller drops the connection.
    async fn end(&mut self, broker: &Arc<Broker>, exit: driver::Exit) {
        finish(
            broker,
            self.pipe.conn_param(),
            &self.session,
            &mut self.access,
            self.events.as_ref(),
            exit,
        )
        .await;
    }
}

/// What follows a connection's end: the will (built from the closing connection's own
/// parameters), the session's detachment, the metrics and the events.
async fn finish(
    broker: &Arc<Broker>,
    param: &ConnParam,
    session: &Arc<SessionShared>,
    access: &mut ClientAccess,
    events: Option<&Arc<dyn ClientEvents>>,
    exit: driver::Exit,
) {
    let client_id = &param.client_id;
    tracing::debug!(client = %client_id, peer = ?param.transport.peer, ?exit, "disconnected");
    let will = match &param.will {
        Some(will) if exit.publishes_will() => {
            let allowed = param.may_publish(&will.topic)
                && will_allowed(broker, access, param, &will.topic).await;
            if !allowed {
                tracing::info!(client = %client_id, topic = %will.topic, "will to a topic the client may not publish to: not published");
                broker.metrics.dropped_acl.fetch_add(1, Ordering::Relaxed);
            }
            allowed.then_some(&**will)
        }
        _ => None,
    };
    let session_ended = matches!(exit, driver::Exit::TakenOver { session_ends: true });
    broker.detach(session, will, session_ended);
    broker.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    if let Some(events) = events {
        events.disconnected(broker, param, exit.reason_code());
    }
}

/// Whether the rules in force now let the client publish its will to `topic`: they may have
/// changed since CONNECT checked it.
async fn will_allowed(
    broker: &Broker,
    access: &mut ClientAccess,
    param: &crate::ConnParam,
    topic: &str,
) -> bool {
    if broker.access_changed(access.generation) {
        let (control, generation) = broker.access();
        *access = ClientAccess::new(&control, generation, param, access.identity());
    }
    let decision = match access.check(Action::Publish, topic) {
        Checked::Ready(decision) => decision,
        Checked::Pending(decision) => decision.await,
    };
    broker.metrics.authorization(decision);
    decision.allowed()
}
