//! The handshake, run in the connection's own task: read CONNECT within the connect
//! timeout, validate it into a [`ConnParam`], run the AUTH exchange if one is asked for,
//! attach the session, answer CONNACK. The pipe (which owns the `ConnParam`) exists only
//! once all of that has succeeded.

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use mqtt_codec::{
    Auth, ByteString, ClientId, ConnAck, Connect, DecodeError, Packet, ProtocolVersion, ReasonCode,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::io::{PacketReader, ReadError, send};
use crate::auth::{Action, AuthContext, AuthStep, Checked, ClientAccess, Identity};
use crate::limits::Limit;
use crate::metrics::Metrics;
use crate::pipe::StreamPipe;
use crate::session::SessionShared;
use crate::{Broker, ConnParam, TransportInfo};

/// A connection that completed its handshake.
pub(crate) struct Established<S> {
    pub(super) pipe: StreamPipe<S>,
    pub(super) session: Arc<SessionShared>,
    pub(super) attach_guard: crate::session::AttachGuard,
    /// What the client may do.
    pub(super) access: ClientAccess,
    /// Bytes the client sent after CONNECT, and the decoder, now set to its version.
    pub(super) reader: PacketReader,
}

/// Runs the handshake; `None` if the connection was refused or closed (already logged and
/// answered as the protocol requires).
pub(super) async fn establish<S>(
    broker: Arc<Broker>,
    mut stream: S,
    transport: TransportInfo,
) -> Option<Established<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let broker = &broker;
    let config = &broker.config;
    let mut reader = PacketReader::new(config.max_packet_size);
    let peer = transport.peer;
    let mut stopping = broker.stopping.subscribe();
    let first = tokio::select! {
        first = tokio::time::timeout(config.connect_timeout, reader.read(&mut stream)) => first,
        // A broker shutting down does not wait for clients that have not connected yet.
        _ = stopping.wait_for(|stopping| *stopping) => return None,
    };
    reader.flush_counts(&broker.metrics);
    let connect = match first {
        Err(_) => {
            tracing::debug!(?peer, "no CONNECT within the connect timeout");
            return None;
        }
        Ok(Ok(Packet::Connect(connect))) => *connect,
        Ok(Ok(other)) => {
            // The decoder accepts nothing but CONNECT before the version is known.
            tracing::debug!(?peer, packet = %other.packet_type(), "first packet is not CONNECT");
            return None;
        }
        Ok(Err(ReadError::Decode(e))) => {
            refuse_unreadable(&mut stream, &e, peer, &broker.metrics).await;
            broker
                .metrics
                .protocol_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return None;
        }
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = ?e, "connection closed before CONNECT");
            return None;
        }
    };
    let version = connect.version;

    let client_id = match choose_client_id(broker, &connect, transport.internal.is_some()) {
        Ok(id) => id,
        Err(code) => {
            refuse(&mut stream, version, code, &broker.metrics).await;
            return None;
        }
    };
    if let Err(code) = within_limits(broker, &connect, &client_id) {
        refuse(&mut stream, version, code, &broker.metrics).await;
        return None;
    }
    let auth = authenticate(broker, &mut stream, &mut reader, &connect, &client_id, peer);
    let mut authenticated = match auth.await {
        Ok(authenticated) => authenticated,
        Err(code) => {
            broker
                .metrics
                .authentication_failure
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(?peer, client = %client_id, %code, "connection refused by the AUTH exchange");
            refuse(&mut stream, version, code, &broker.metrics).await;
            return None;
        }
    };

    let mut param = ConnParam::new(
        connect,
        client_id,
        transport,
        config.session_expiry_default,
        config.server_keep_alive,
    );
    if let Some(identity) = authenticated.as_mut().and_then(|a| a.identity.take()) {
        // What the method proved outranks what CONNECT claimed.
        param.username = Some(identity);
    }
    let access = match admit(broker, &param, authenticated.is_some()).await {
        Ok(access) => access,
        Err(code) => {
            refuse(&mut stream, version, code, &broker.metrics).await;
            return None;
        }
    };
    let (session, attach_guard, session_present) = broker
        .attach(&param.client_id, param.clean_start, param.session_expiry)
        .await;
    session.state.lock().max_queued = param.transport.internal.map(|i| {
        // Saturated: a bound past 4 billion messages is no bound.
        std::num::NonZeroU32::new(u32::try_from(i.max_queued).unwrap_or(u32::MAX).max(1))
            .unwrap_or(std::num::NonZeroU32::MIN)
    });
    session.life.lock().client = Some(Box::new(crate::ClientRecord::of(&param)));

    let connack = Packet::ConnAck(Box::new(connack(
        broker,
        &param,
        session_present,
        authenticated,
    )));
    let max = param.maximum_packet_size as usize;
    if connack.encoded_len(version).is_ok_and(|len| len > max) {
        // Nothing larger than the client's Maximum Packet Size may be sent (MQTT 5
        // 3.1.2.11.4), and a CONNACK whose required properties (an Assigned Client
        // Identifier) do not fit cannot be shortened: the connection cannot start.
        tracing::debug!(?peer, client = %param.client_id, max, "CONNACK exceeds the client's maximum packet size");
        broker.detach(&session, None, false);
        return None;
    }
    if let Err(e) = send(&mut stream, &connack, version, &broker.metrics).await {
        tracing::debug!(?peer, error = %e, "cannot send CONNACK");
        // The session stays as the protocol says it should after a lost connection.
        broker.detach(&session, None, false);
        return None;
    }
    Some(Established {
        pipe: StreamPipe::new(stream, param),
        session,
        attach_guard,
        access,
        reader,
    })
}

/// Authenticates the client (unless the AUTH exchange already did) and checks that it may
/// publish its will: what it may do from now on, or the reason to refuse it.
async fn admit(
    broker: &Broker,
    param: &ConnParam,
    enhanced: bool,
) -> Result<ClientAccess, ReasonCode> {
    let metrics = &broker.metrics;
    let (control, generation) = broker.access();
    let identity = if param.transport.internal.is_some() {
        Identity { superuser: true }
    } else if enhanced {
        Identity::default()
    } else {
        match control.authenticate(param).await {
            Ok(identity) => identity,
            Err(denial) => {
                let failures = metrics
                    .authentication_failure
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if log_refusal(failures) {
                    tracing::info!(
                        client = %param.client_id,
                        username = ?param.username.as_deref(),
                        peer = ?param.transport.peer,
                        reason = ?denial,
                        failures,
                        "connection refused by authentication"
                    );
                }
                return Err(denial.reason_code());
            }
        }
    };
    metrics
        .authentication_success
        .fetch_add(1, Ordering::Relaxed);
    let access = ClientAccess::new(&control, generation, param, identity);
    if let Some(will) = &param.will {
        let decision = match access.check(Action::Publish, &will.topic) {
            Checked::Ready(decision) => decision,
            Checked::Pending(decision) => decision.await,
        };
        metrics.authorization(decision);
        if !decision.allowed() {
            tracing::info!(
                client = %param.client_id,
                username = ?param.username.as_deref(),
                topic = %will.topic,
                "connection refused: the will's topic is not one the client may publish to"
            );
            return Err(ReasonCode::NotAuthorized);
        }
    }
    Ok(access)
}

/// Whether the `n`th refused connection is logged: every one of the first hundred, then one
/// in each power of two, so a flood of bad logins cannot flood the log.
fn log_refusal(n: u64) -> bool {
    n <= 100 || n.is_power_of_two()
}

/// The client identifier to use, or the reason to refuse it.
fn choose_client_id(
    broker: &Broker,
    connect: &Connect,
    internal: bool,
) -> Result<ClientId, ReasonCode> {
    if connect
        .client_id
        .as_str()
        .starts_with(crate::conn_param::INTERNAL_CLIENT_ID_PREFIX)
        && !internal
    {
        return Err(ReasonCode::ClientIdentifierNotValid);
    }
    if !connect.client_id.is_empty() {
        return Ok(connect.client_id.clone());
    }
    // MQTT 3.1 requires an identifier; 3.1.1 allows an empty one only with a clean session.
    match connect.version {
        ProtocolVersion::V3_1 => return Err(ReasonCode::ClientIdentifierNotValid),
        ProtocolVersion::V3_1_1 if !connect.clean_start => {
            return Err(ReasonCode::ClientIdentifierNotValid);
        }
        _ => {}
    }
    broker
        .assign_client_id()
        .map_err(|_| ReasonCode::ClientIdentifierNotValid)
}

/// Checks a CONNECT against the broker's limits: the connections it holds, and the will's
/// topic (a will is published like a PUBLISH, so it is bounded like one).
fn within_limits(
    broker: &Broker,
    connect: &Connect,
    client_id: &ClientId,
) -> Result<(), ReasonCode> {
    let limits = broker.limits();
    let open = broker.live_connections();
    if open > limits.max_connections {
        let refused = Limit::Connections.count(&broker.metrics);
        // One line per refused client would let a flood of them flood the log too.
        if refused.is_power_of_two() {
            tracing::warn!(client = %client_id, open, limit = Limit::Connections.key(), refused, "connection refused: the broker holds its maximum of connections");
        }
        return Err(ReasonCode::QuotaExceeded);
    }
    if let Some(will) = &connect.will
        && let Err(limit) = limits.check_topic(&will.topic)
    {
        limit.count(&broker.metrics);
        tracing::warn!(client = %client_id, limit = limit.key(), "will topic: connection refused");
        return Err(ReasonCode::TopicNameInvalid);
    }
    Ok(())
}

/// What a successful extended authentication gives the CONNACK and the connection.
struct Authenticated {
    method: ByteString,
    /// For CONNACK's Authentication Data.
    data: Option<Bytes>,
    /// Who the client proved to be: the connection's user name.
    identity: Option<ByteString>,
}

/// Runs the extended authentication exchange if CONNECT names a method. Returns what the
/// method concluded, or the reason to refuse.
async fn authenticate<S>(
    broker: &Broker,
    stream: &mut S,
    reader: &mut PacketReader,
    connect: &Connect,
    client_id: &ClientId,
    peer: Option<std::net::SocketAddr>,
) -> Result<Option<Authenticated>, ReasonCode>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(method) = connect.properties.authentication_method.clone() else {
        return Ok(None);
    };
    let ctx = AuthContext {
        method: &method,
        client_id,
        username: connect.username.as_deref(),
        peer,
        reauthentication: false,
    };
    let Some(mut exchange) = broker.enhanced_auth().and_then(|auth| auth.start(&ctx)) else {
        return Err(ReasonCode::BadAuthenticationMethod);
    };
    let mut data = connect.properties.authentication_data.clone();
    loop {
        match exchange.step(data.as_ref()) {
            AuthStep::Success {
                data: out,
                identity,
            } => {
                return Ok(Some(Authenticated {
                    method,
                    data: out,
                    identity,
                }));
            }
            AuthStep::Fail(code) => return Err(code),
            AuthStep::Continue(out) => {
                let mut challenge = Auth {
                    reason_code: ReasonCode::ContinueAuthentication,
                    ..Auth::default()
                };
                challenge.properties.authentication_method = Some(method.clone());
                challenge.properties.authentication_data = Some(out);
                send(
                    stream,
                    &Packet::Auth(challenge),
                    ProtocolVersion::V5,
                    &broker.metrics,
                )
                .await
                .map_err(|_| ReasonCode::UnspecifiedError)?;
                let answer =
                    tokio::time::timeout(broker.config.connect_timeout, reader.read(stream)).await;
                reader.flush_counts(&broker.metrics);
                let answer = answer.map_err(|_| ReasonCode::NotAuthorized)?;
                match answer {
                    Ok(Packet::Auth(a))
                        if a.reason_code == ReasonCode::ContinueAuthentication
                            && a.properties.authentication_method.as_ref() == Some(&method) =>
                    {
                        data = a.properties.authentication_data;
                    }
                    Ok(_) => return Err(ReasonCode::ProtocolError),
                    Err(ReadError::Decode(e)) => return Err(e.reason_code()),
                    Err(_) => return Err(ReasonCode::UnspecifiedError),
                }
            }
        }
    }
}

fn connack(
    broker: &Broker,
    param: &ConnParam,
    session_present: bool,
    auth: Option<Authenticated>,
) -> ConnAck {
    let mut ack = ConnAck {
        // MQTT 3.1 has no such flag.
        session_present: session_present && param.version != ProtocolVersion::V3_1,
        ..ConnAck::default()
    };
    if !param.version.is_v5() {
        return ack;
    }
    let config = &broker.config;
    let p = &mut ack.properties;
    p.receive_maximum = NonZeroU16::new(config.max_inflight.max(1));
    p.maximum_packet_size = NonZeroU32::new(config.max_packet_size);
    if config.max_topic_alias > 0 {
        p.topic_alias_maximum = Some(config.max_topic_alias);
    }
    if param.assigned_client_id {
        p.assigned_client_identifier = Some(param.client_id.as_byte_string().clone());
    }
    p.server_keep_alive = config.server_keep_alive;
    if let Some(auth) = auth {
        p.authentication_method = Some(auth.method);
        p.authentication_data = auth.data;
    }
    ack
}

/// Answers a CONNECT the broker will not accept, then closes.
async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    version: ProtocolVersion,
    code: ReasonCode,
    metrics: &Metrics,
) {
    let code = if version.is_v5() {
        code
    } else {
        // MQTT 3.1.1 has six return codes: map the rest onto the nearest one.
        match code.to_v3_connack() {
            Some(_) => code,
            None if code == ReasonCode::BadAuthenticationMethod => ReasonCode::NotAuthorized,
            None => ReasonCode::ServerUnavailable,
        }
    };
    let ack = ConnAck {
        reason_code: code,
        ..ConnAck::default()
    };
    let _ = send(stream, &Packet::ConnAck(Box::new(ack)), version, metrics).await;
    let _ = stream.shutdown().await;
}

/// Answers a CONNECT that could not be decoded, where the protocol asks for an answer.
async fn refuse_unreadable<S: AsyncWrite + Unpin>(
    stream: &mut S,
    error: &DecodeError,
    peer: Option<std::net::SocketAddr>,
    metrics: &Metrics,
) {
    tracing::debug!(?peer, %error, "invalid CONNECT");
    if let DecodeError::UnsupportedProtocol {
        known_name: true, ..
    } = error
    {
        // 3.1.1 requires return code 1 for a level it does not support; 5.0 clients
        // understand the 3.1.1 form of that refusal too.
        refuse(
            stream,
            ProtocolVersion::V3_1_1,
            ReasonCode::UnsupportedProtocolVersion,
            metrics,
        )
        .await;
    }
}
