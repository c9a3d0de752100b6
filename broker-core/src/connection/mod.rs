//! One connection from first byte to last: the handshake (CONNECT, optional AUTH exchange,
//! CONNACK), which builds the pipe that owns the connection's parameters, then the driver
//! that runs the session over it, then the goodbye (will, session expiry).

mod driver;
mod handshake;
mod io;
#[cfg(test)]
mod sizes;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{Action, Checked, ClientAccess};
use crate::pipe::Pipe;
use crate::{Broker, TransportInfo};

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

/// Serves one connection to its end: the handshake, then the driver, then the goodbye.
///
/// One async fn for all of it: each level of async fn keeps its own copy of what it was
/// given, for the connection's whole life.
pub(crate) async fn serve<S>(broker: Arc<Broker>, handshake: Handshake<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if broker.is_stopping() {
        return;
    }
    // Dropped last, once the connection is all gone.
    let _live = broker.connection_opened();
    let Some(handshake::Established {
        mut pipe,
        session,
        attach_guard,
        mut access,
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
        events.connected(&broker, pipe.conn_param());
    }

    // The client's identifier and address are read from the pipe again after the driver:
    // copies held across it would sit in the connection's task for its whole life. The
    // driver borrows the pipe and the access rather than owning them: moved in and out,
    // they would keep their room in the task twice.
    let mut driver = driver::Driver::new(
        &broker,
        &mut pipe,
        Arc::clone(&session),
        reader,
        &mut access,
    );
    let exit = driver.run().await;
    let exit = driver.goodbye(exit).await;
    drop(driver);
    let param = pipe.conn_param();
    let client_id = &param.client_id;
    tracing::debug!(client = %client_id, peer = ?param.transport.peer, ?exit, "disconnected");

    // The will is built from the closing pipe's own parameters, before the pipe goes.
    let will = match &param.will {
        Some(will) if exit.publishes_will() => {
            let allowed = param.may_publish(&will.topic)
                && will_allowed(&broker, &mut access, param, &will.topic).await;
            if !allowed {
                tracing::info!(client = %client_id, topic = %will.topic, "will to a topic the client may not publish to: not published");
                broker.metrics.dropped_acl.fetch_add(1, Ordering::Relaxed);
            }
            allowed.then_some(&**will)
        }
        _ => None,
    };
    let session_ended = matches!(exit, driver::Exit::TakenOver { session_ends: true });
    broker.detach(&session, will, session_ended);
    broker.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    if let Some(events) = &events {
        events.disconnected(&broker, pipe.conn_param(), exit.reason_code());
    }
    drop(attach_guard);
    drop(pipe);
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
