//! One connection from first byte to last: the handshake (CONNECT, optional AUTH exchange,
//! CONNACK), which builds the pipe that owns the connection's parameters, then the driver
//! that runs the session over it, then the goodbye (will, session expiry).

mod driver;
mod handshake;
mod io;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::pipe::Pipe;
use crate::{Broker, TransportInfo};

/// Serves one accepted stream to its end.
pub(crate) async fn run<S>(broker: &Arc<Broker>, stream: S, transport: TransportInfo)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = transport.peer;
    let Some(established) = handshake::establish(broker, stream, transport).await else {
        return;
    };
    let handshake::Established {
        mut pipe,
        session,
        attach_guard,
        reader,
    } = established;
    broker.metrics.connections.fetch_add(1, Ordering::Relaxed);
    broker
        .metrics
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    let client_id = pipe.conn_param().client_id.clone();
    tracing::debug!(client = %client_id, ?peer, version = %pipe.conn_param().version, "connected");

    let exit = driver::Driver::new(broker, &mut pipe, Arc::clone(&session), reader)
        .run()
        .await;
    tracing::debug!(client = %client_id, ?peer, ?exit, "disconnected");

    // The will is built from the closing pipe's own parameters, before the pipe goes.
    let param = pipe.conn_param();
    let will = match &param.will {
        Some(will) if exit.publishes_will() && param.may_publish(&will.topic) => Some(will),
        Some(will) if exit.publishes_will() => {
            tracing::debug!(client = %client_id, topic = %will.topic, "will to a topic the client may not publish to: not published");
            None
        }
        _ => None,
    };
    let session_ended = matches!(exit, driver::Exit::TakenOver { session_ends: true });
    broker.detach(&session, will, session_ended);
    broker.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    drop(attach_guard);
    drop(pipe);
}
