//! Dormant connections: a TCP connection whose client has been quiet for
//! [`DORMANT_AFTER`], with nothing buffered, held or in the middle of an exchange, gives up
//! its task, its timer and its tokio registration. What it still needs (the socket, the
//! parameters, the session, the access, what its driver keeps) goes in one box to the
//! [`DormantPool`], whose thread waits on the socket, the session and the deadline, and
//! spawns the connection's task again when any of them has something.
//!
//! An idle fleet (devices that ping every minute and otherwise say nothing) then costs the
//! broker its sessions and these boxes, not a task each. The first round after waking
//! costs a registration and a spawn; a client that talks more often than every
//! [`DORMANT_AFTER`] never goes dormant.
//!
//! Only plain TCP streams go dormant (TLS and WebSocket streams hold state of their own
//! between reads that a bare socket cannot stand for).

mod pool;

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::Instant;

pub(crate) use pool::DormantPool;
use pool::Reason;

use super::Connected;
use super::driver::Kept;
use crate::ConnParam;
use crate::auth::ClientAccess;
use crate::broker::LiveConnection;
use crate::events::ClientEvents;
use crate::pipe::StreamPipe;
use crate::session::AttachGuard;

/// How long a client is quiet before its connection goes dormant: past the driver's
/// buffer release, and long enough that a client publishing a few times a second keeps
/// its task.
pub(crate) const DORMANT_AFTER: Duration = Duration::from_millis(500);

/// A dormant connection, as the pool holds it.
pub(crate) struct Dormant {
    /// The socket (a duplicate of the descriptor the tokio stream had: that one was closed
    /// with the stream's registration).
    fd: OwnedFd,
    param: ConnParam,
    /// The session's too (see [`AttachGuard::session`]).
    attach_guard: AttachGuard,
    access: ClientAccess,
    events: Option<Arc<dyn ClientEvents>>,
    kept: Kept,
    /// Dropped last.
    live: LiveConnection,
}

/// The descriptor of `stream`, duplicated, if it is a plain TCP stream: what a dormant
/// connection waits on. `None` for any other stream, or if the descriptor cannot be
/// duplicated (out of descriptors): the connection stays awake.
pub(crate) fn socket_of<S: 'static>(stream: &S) -> Option<OwnedFd> {
    let tcp = (stream as &dyn Any).downcast_ref::<tokio::net::TcpStream>()?;
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::debug!(error = %e, "cannot duplicate a quiet connection's socket: it stays awake");
            None
        }
    }
}

/// A driver's state as it goes dormant: what it keeps, the socket to wait on (from
/// [`socket_of`]), and its deadline.
pub(crate) struct Sleeping {
    pub(crate) kept: Kept,
    pub(crate) fd: OwnedFd,
    pub(crate) deadline: Option<Instant>,
}

/// Sends `conn` to the pool, dormant as `sleeping` says.
pub(super) fn sleep<S>(conn: Connected<S>, sleeping: Sleeping) {
    let Sleeping { kept, fd, deadline } = sleeping;
    let Connected {
        session,
        attach_guard,
        pipe,
        access,
        events,
        live,
    } = conn;
    // The guard holds the session too.
    drop(session);
    // The stream goes (its registration with it); the duplicate keeps the socket open.
    let (stream, param) = pipe.into_parts();
    drop(stream);
    let broker = Arc::clone(live.broker());
    let dormant = Box::new(Dormant {
        fd,
        param,
        attach_guard,
        access,
        events,
        kept,
        live,
    });
    broker.dormant.admit(dormant, deadline);
}

/// Spawns `dormant`'s task on `runtime`.
fn wake_on(runtime: &Handle, dormant: Box<Dormant>, reason: Reason) {
    runtime.spawn(awaken(dormant, reason));
}

/// The task of a connection woken from dormancy: its stream registered again, then driven
/// on as before it slept.
async fn awaken(dormant: Box<Dormant>, reason: Reason) {
    let Dormant {
        fd,
        param,
        attach_guard,
        mut access,
        events,
        mut kept,
        live,
    } = *dormant;
    if reason == Reason::Refused {
        kept.stay_awake();
    }
    let broker = Arc::clone(live.broker());
    let session = Arc::clone(attach_guard.session());
    let stream = tokio::net::TcpStream::from_std(std::net::TcpStream::from(fd));
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) => {
            // The socket cannot be waited on any more: the connection is lost.
            tracing::debug!(client = %param.client_id, error = %e, "cannot register a woken connection's socket");
            super::finish(
                &broker,
                &param,
                &session,
                &mut access,
                events.as_ref(),
                super::driver::Exit::Lost,
            )
            .await;
            drop(attach_guard);
            return;
        }
    };
    let mut conn = Connected {
        session,
        attach_guard,
        pipe: StreamPipe::new(stream, param),
        access,
        events,
        live,
    };
    match super::drive(&broker, &mut conn, kept, bytes::BytesMut::new()).await {
        super::Stopped::Ended(exit) => conn.end(&broker, exit).await,
        super::Stopped::Dormant(sleeping) => sleep(conn, sleeping),
    }
}
