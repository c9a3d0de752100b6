//! The relay between the bridge's local session and the upstream, across connection attempts.
//!
//! Up (forwards): a message from the local session is mapped to its remote topic and handed
//! to the upstream connection, or, while the link is down, queued in the upstream session
//! state for the next attempt. Its local acknowledgement waits in `pending` under the
//! ticket the upstream connection gave it, and goes out when that ticket completes (PUBACK,
//! PUBCOMP), on whichever attempt completes it. QoS 0 goes only while the link is up.
//!
//! Down (subscriptions): a message from upstream is published locally; the upstream's
//! PUBACK / PUBREC goes out once the local broker has it, in the order the messages came
//! (MQTT-4.6.0-2 and -3): the landings wait in a queue and only the oldest is awaited.
//!
//! Only cancel-safe receives sit in the `select!`s; every hand-over to a connection is a
//! plain call, so a message is in exactly one place at any time.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use broker_core::BridgeCounters;
use mqtt_client::{
    Client, ConnectionParams, Error, Event, Incoming, Message, PublishError, Publisher,
    SessionState, Ticket,
};
use mqtt_codec::{Publish, QoS, ReasonCode, TopicFilter};
use tokio::sync::watch;

use super::remote::{Remote, sleep_until};
use super::topics::{carry, route};
use crate::config::{BridgeConfig, Forward, RemoteSubscription};

/// How many items of each source [`Relay::take_ready`] takes before the next flush.
const BATCH: usize = 256;

/// The output of `future` if it is ready at its first poll (a cancel-safe receive that
/// has an item), without waiting.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// How long a stopping bridge waits for the upstream to acknowledge what is in flight.
const DRAIN_AT_STOP: Duration = Duration::from_secs(2);

/// The local outcome of a message from upstream, when it comes.
type Outcome = Pin<Box<dyn Future<Output = Result<ReasonCode, PublishError>> + Send>>;

/// A message from upstream being published locally.
struct Landing {
    /// The upstream's message (to acknowledge).
    publish: Publish,
    /// The attempt it came on: an acknowledgement belongs to that connection.
    attempt: u64,
    /// The local outcome.
    outcome: Outcome,
}

/// A message from upstream published locally (or not), and how it went.
struct Landed {
    /// The upstream's message (to acknowledge).
    publish: Publish,
    /// The attempt it came on.
    attempt: u64,
    /// The local outcome.
    result: Result<ReasonCode, PublishError>,
}

/// The oldest landing once its outcome is in; `None` at once when there is none. Cancel
/// safe: until its outcome is in, the landing stays first in the queue.
async fn first_landed(landing: &mut VecDeque<Landing>) -> Option<Landed> {
    let result = (&mut landing.front_mut()?.outcome).await;
    let Landing {
        publish, attempt, ..
    } = landing.pop_front()?;
    Some(Landed {
        publish,
        attempt,
        result,
    })
}

/// Why a link ended.
pub(super) enum Ended {
    /// The connection failed; the bridge tries again.
    Lost(Error),
    /// The bridge is stopping.
    Stopped,
    /// The local session ended (the broker is shutting down).
    LocalGone,
}

/// The relay's state, which outlives each attempt.
pub(super) struct Relay {
    /// The bridge's configuration.
    config: Arc<BridgeConfig>,
    /// Forward routes: local filter → forward.
    forwards: Vec<(TopicFilter, Forward)>,
    /// Subscription routes: remote filter → subscription.
    subscriptions: Vec<(TopicFilter, RemoteSubscription)>,
    /// The local session.
    local: Client,
    /// Publishes locally.
    publisher: Publisher,
    /// The upstream session state while no attempt holds it.
    state: Option<SessionState>,
    /// Local messages forwarded upstream and not yet acknowledged there, by ticket.
    pending: HashMap<Ticket, Publish>,
    /// Upstream messages being published locally, in the order they came. A queue, not a
    /// set of tasks: their acknowledgements must go upstream in that order, whichever local
    /// outcome comes first.
    landing: VecDeque<Landing>,
    /// The current attempt's number.
    attempt: u64,
    /// The bridge's counters.
    counters: Arc<BridgeCounters>,
    /// Set when the bridge stops.
    stop: watch::Receiver<bool>,
}

impl Relay {
    /// A relay over the connected local session.
    pub(super) fn new(
        config: Arc<BridgeConfig>,
        local: Client,
        counters: Arc<BridgeCounters>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let forwards = config
            .forwards
            .iter()
            .map(|f| (f.filter.clone(), f.clone()))
            .collect();
        let subscriptions = config
            .subscriptions
            .iter()
            .map(|s| (s.filter.clone(), s.clone()))
            .collect();
        let publisher = local.publisher();
        Self {
            config,
            forwards,
            subscriptions,
            local,
            publisher,
            state: Some(SessionState::new()),
            pending: HashMap::new(),
            landing: VecDeque::new(),
            attempt: 0,
            counters,
            stop,
        }
    }

    /// The upstream session state, for the next attempt.
    pub(super) fn take_state(&mut self) -> SessionState {
        self.state.take().unwrap_or_default()
    }

    /// The state back from an attempt.
    pub(super) fn put_state(&mut self, state: SessionState) {
        self.state = Some(state);
    }

    /// Whether the bridge was told to stop.
    pub(super) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Publishes the bridge's connection state locally (not waited for).
    pub(super) fn publish_state(&self, up: bool) {
        if let Some(message) = super::local::state_message(&self.config.client_id, up) {
            drop(self.publisher.publish(message));
        }
    }

    /// Runs one connected attempt until it ends; the session state goes back to the relay.
    pub(super) async fn run(&mut self, mut remote: Remote, params: &ConnectionParams) -> Ended {
        self.attempt += 1;
        let subscribed = self.subscribe(&mut remote, params);
        let ended = match subscribed {
            Ok(()) => self.relay(&mut remote).await,
            Err(e) => Ended::Lost(e),
        };
        // What the connection reported last still counts, however the attempt ended: a
        // PUBACK handled just before a write failed, messages refused under this CONNACK's
        // limits. Their tickets have left the session state, so these events are all that
        // is left of them; dropped with the connection, their local messages would stay
        // unacknowledged for good, each holding a place in the local session's window.
        self.events(&mut remote);
        let reason = match &ended {
            Ended::Lost(_) => None,
            Ended::Stopped | Ended::LocalGone => Some(ReasonCode::Success),
        };
        let state = remote.close_with(reason).await;
        self.state = Some(state);
        ended
    }

    /// SUBSCRIBE for the remote subscriptions: no local (MQTT 5; the bridge bit asks for it
    /// in 3.1.1), so that what we forward does not come back.
    fn subscribe(&mut self, remote: &mut Remote, params: &ConnectionParams) -> Result<(), Error> {
        if self.config.subscriptions.is_empty() {
            return Ok(());
        }
        let v5 = params.version.is_v5();
        let subscriptions = self
            .config
            .subscriptions
            .iter()
            .map(|s| mqtt_codec::Subscription {
                filter: s.filter.clone(),
                options: mqtt_codec::SubscriptionOptions {
                    qos: s.qos,
                    no_local: v5,
                    retain_as_published: v5 && s.retain_as_published,
                    retain_handling: if v5 {
                        s.retain_handling
                    } else {
                        mqtt_codec::RetainHandling::SendAtSubscribe
                    },
                },
            })
            .collect();
        remote
            .conn
            .subscribe(subscriptions, mqtt_codec::SubscribeProperties::default())
            .map(|_| ())
    }

    /// The connected loop.
    async fn relay(&mut self, remote: &mut Remote) -> Ended {
        // Once told to stop: no new local messages, and until this deadline, the upstream's
        // acknowledgements of those in flight (a message acknowledged on both sides is not
        // sent again after the restart, which would duplicate a QoS 2 one upstream).
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            if let Err(e) = remote.flush().await {
                return Ended::Lost(e);
            }
            self.events(remote);
            if remote.conn.is_closed() {
                return Ended::Lost(Error::Closed);
            }
            self.counters.set_queued(self.pending.len());
            if let Some(until) = draining
                && (remote.conn.state().in_flight() == 0 || tokio::time::Instant::now() >= until)
            {
                return Ended::Stopped;
            }
            let deadline = remote.deadline();
            let drain_deadline = draining.map(tokio::time::Instant::into_std);
            tokio::select! {
                biased;
                _ = self.stop.changed(), if draining.is_none() => {
                    draining = Some(tokio::time::Instant::now() + DRAIN_AT_STOP);
                }
                () = sleep_until(drain_deadline) => {}
                packet = remote.packet() => {
                    if let Err(e) = remote.handle(packet) {
                        self.events(remote);
                        return Ended::Lost(e);
                    }
                }
                Some(landed) = first_landed(&mut self.landing) => {
                    self.landed(landed, Some(remote));
                }
                incoming = self.local.recv(), if draining.is_none() => match incoming {
                    Ok(Incoming::Message(publish)) => self.forward(publish, Some(remote)),
                    Ok(Incoming::Completed { .. }) => {}
                    Err(_) => return Ended::LocalGone,
                },
                () = sleep_until(deadline) => {
                    if let Err(e) = remote.handle_timeout() {
                        return Ended::Lost(e);
                    }
                }
            }
            if let Some(ended) = self.take_ready(remote, draining.is_none()) {
                return ended;
            }
        }
    }

    /// Takes what is already waiting, from upstream (acknowledgements, messages), from the
    /// local broker (messages landed) and from the local session (messages to forward), up
    /// to [`BATCH`] of each, without waiting: the next flush then writes them in one go.
    /// With one item per turn of the loop, each message cost a wake-up and a write of its
    /// own: a backlog drained at 0.82x what one direct publisher gets from the same
    /// upstream Mosquitto (`cargo xtask bench --only bridge`), 1.07x with this. Local
    /// messages only with `take_local` (not while a stopping bridge drains).
    fn take_ready(&mut self, remote: &mut Remote, take_local: bool) -> Option<Ended> {
        for _ in 0..BATCH {
            // A connection that closed (the upstream's DISCONNECT) takes nothing more: the
            // loop's next turn ends the link.
            if remote.conn.is_closed() {
                break;
            }
            let mut took = false;
            if let Some(packet) = remote.ready_packet() {
                took = true;
                if let Err(e) = remote.handle(packet) {
                    self.events(remote);
                    return Some(Ended::Lost(e));
                }
            }
            // The oldest landing only, as in the loop: acknowledgements go upstream in the
            // order the messages came.
            if let Some(Some(landed)) = ready(first_landed(&mut self.landing)) {
                took = true;
                self.landed(landed, Some(remote));
            }
            if take_local
                && !remote.conn.is_closed()
                && let Some(incoming) = ready(self.local.recv())
            {
                took = true;
                match incoming {
                    Ok(Incoming::Message(publish)) => self.forward(publish, Some(remote)),
                    Ok(Incoming::Completed { .. }) => {}
                    Err(_) => return Some(Ended::LocalGone),
                }
            }
            if !took {
                break;
            }
        }
        None
    }

    /// While the link is down: keeps taking local messages (queued for the next attempt)
    /// for `wait`, or until told to stop.
    pub(super) async fn wait(&mut self, wait: Duration) -> Option<Ended> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            self.counters.set_queued(self.pending.len());
            tokio::select! {
                biased;
                _ = self.stop.changed() => return Some(Ended::Stopped),
                Some(landed) = first_landed(&mut self.landing) => {
                    self.landed(landed, None);
                }
                incoming = self.local.recv() => match incoming {
                    Ok(Incoming::Message(publish)) => self.forward(publish, None),
                    Ok(Incoming::Completed { .. }) => {}
                    Err(_) => return Some(Ended::LocalGone),
                },
                () = tokio::time::sleep_until(until) => return None,
            }
        }
    }

    /// A local message: upstream now, or queued for the next attempt; QoS 0 only now.
    fn forward(&mut self, publish: Publish, remote: Option<&mut Remote>) {
        let topic = publish.topic_name();
        let Some(forward) = route(&self.forwards, &topic) else {
            // A subscription of an earlier configuration still on the session: not ours.
            self.settle_local(&publish);
            return;
        };
        let remote_topic = match forward.remote.apply(topic.as_str()) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(bridge = %self.config.name, %topic, error = %e, "cannot forward: the remote topic would be invalid; dropped");
                self.counters.dropped();
                self.settle_local(&publish);
                return;
            }
        };
        let message = carry(&publish, remote_topic, forward.qos, forward.retain);
        let handed = match remote {
            Some(remote) => remote.conn.publish(message).map_err(Some),
            None => self.queue(message).ok_or(None),
        };
        match handed {
            Ok(ticket) if publish.qos.qos() == QoS::AtMostOnce => {
                // QoS 0 locally (and so upstream): nothing to acknowledge, and done.
                let _ = ticket;
            }
            Ok(ticket) => {
                self.pending.insert(ticket, publish);
            }
            Err(error) => {
                match error {
                    // Too large, above the QoS or retain this connection's CONNACK allows:
                    // dropped for good, like a refusal by the upstream.
                    Some(error) => {
                        tracing::warn!(bridge = %self.config.name, %topic, %error, "not forwarded; dropped");
                    }
                    // QoS 0 while the link is down: never kept for later, by design.
                    None => {
                        tracing::debug!(bridge = %self.config.name, %topic, "QoS 0 while the link is down; dropped");
                    }
                }
                self.counters.dropped();
                self.settle_local(&publish);
            }
        }
    }

    /// Queues a message in the upstream session state while the link is down.
    fn queue(&mut self, message: Message) -> Option<Ticket> {
        self.state.as_mut()?.enqueue(message)
    }

    /// Acknowledges a local message: the upstream has it, or it is dropped for good.
    fn settle_local(&self, publish: &Publish) {
        // An error means the local session ended; the broker resends to the next one.
        let _ = self.local.ack(publish);
    }

    /// What the upstream connection reported.
    fn events(&mut self, remote: &mut Remote) {
        while let Some(event) = remote.conn.poll_event() {
            match event {
                Event::Published { ticket, result } => self.published(ticket, result),
                Event::Message(publish) => self.land(publish),
                Event::Subscribed { reason_codes, .. } => {
                    for (s, code) in self.config.subscriptions.iter().zip(reason_codes) {
                        if code.is_error() {
                            tracing::warn!(bridge = %self.config.name, filter = %s.filter, %code, "the upstream refused a subscription");
                        }
                    }
                }
                Event::Connected(_) | Event::Unsubscribed { .. } => {}
            }
        }
    }

    /// A forwarded message completed upstream.
    fn published(&mut self, ticket: Ticket, result: Result<ReasonCode, PublishError>) {
        let publish = self.pending.remove(&ticket);
        match &result {
            Ok(_) => self.counters.forwarded(),
            Err(error) => {
                // Refused by the upstream (a failure reason code), or by this connection's
                // CONNACK before it was sent (a message queued while the link was down, or
                // resent to a server whose limits are now lower).
                let topic = publish.as_ref().map(Publish::topic).unwrap_or_default();
                tracing::warn!(bridge = %self.config.name, %topic, %error, "not forwarded; dropped");
                self.counters.dropped();
            }
        }
        if let Some(publish) = publish {
            self.settle_local(&publish);
        }
    }

    /// A message from upstream: published locally, acknowledged upstream once landed.
    fn land(&mut self, publish: Publish) {
        let topic = publish.topic_name();
        let local = route(&self.subscriptions, &topic).map(|s| s.local.apply(topic.as_str()));
        let outcome: Outcome = match local {
            Some(Ok(local_topic)) => {
                let message = carry(&publish, local_topic, QoS::ExactlyOnce, None);
                Box::pin(self.publisher.publish(message))
            }
            Some(Err(e)) => {
                tracing::warn!(bridge = %self.config.name, %topic, error = %e, "cannot land: the local topic would be invalid; dropped");
                self.counters.dropped();
                Box::pin(std::future::ready(Ok(ReasonCode::Success)))
            }
            // Not one of our subscriptions (an older configuration's, still on the upstream
            // session): acknowledged, not published.
            None => Box::pin(std::future::ready(Ok(ReasonCode::Success))),
        };
        self.landing.push_back(Landing {
            publish,
            attempt: self.attempt,
            outcome,
        });
    }

    /// A message from upstream landed locally (or failed to): the upstream's
    /// acknowledgement, on the connection it came on (a later one gets it again).
    fn landed(&mut self, landed: Landed, remote: Option<&mut Remote>) {
        match landed.result {
            Ok(_) => self.counters.received(),
            Err(error) => {
                tracing::warn!(bridge = %self.config.name, topic = landed.publish.topic(), %error, "the local broker refused a message from upstream; dropped");
                self.counters.dropped();
            }
        }
        if let Some(remote) = remote
            && landed.attempt == self.attempt
        {
            remote.conn.acknowledge(&landed.publish);
        }
    }

    /// Ends the local session cleanly (its subscriptions and queue stay in the broker).
    pub(super) async fn close(self) {
        let _ = self.local.disconnect().await;
    }
}
