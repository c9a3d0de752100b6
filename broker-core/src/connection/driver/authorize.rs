//! Authorization in the driver: each PUBLISH and SUBSCRIBE filter is checked against the
//! client's [`ClientAccess`] before it is handled. Local rules answer at once; a remote
//! service's answer is awaited without stopping the connection: the packet waits here, what
//! the client sends after it waits behind it (in order, as behind a blocked PUBLISH), and
//! the driver goes on writing and reading acknowledgements meanwhile. A SUBSCRIBE handled a
//! slice at a time holds the packets behind it the same way ([`Holding::Subscribe`]).

use std::task::{Context, Poll};

use mqtt_codec::{Packet, Publish, ReasonCode, Subscribe};

use super::subscribe::Subscribing;
use super::{Driver, Exit};
use crate::auth::{Action, BoxFuture, Checked, ClientAccess, Decision, DenyAction};
use crate::pipe::Pipe;

/// How many allowed actions a connection counts before adding them to the broker's counter.
const ALLOWED_BATCH: u32 = 64;

/// A packet whose checks wait for a remote answer.
pub(super) struct Authorizing {
    packet: Packet,
    /// One decision per topic checked (the PUBLISH's topic, or each filter).
    answer: BoxFuture<'static, Vec<Decision>>,
}

/// What holds the packets the client sent after it.
pub(super) enum Holding {
    /// A packet waiting for a remote authorization answer.
    Answer(Authorizing),
    /// A SUBSCRIBE with filters left to handle.
    Subscribe(Subscribing),
}

/// When the holding packet can go on: with the decisions about it once they are in; at
/// once for a SUBSCRIBE in slices (the driver's loop works on its next slice after a
/// `yield_now`, which lets the worker poll the sockets and run the other tasks first);
/// never, if nothing holds.
pub(super) fn poll_held_ready(
    holding: &mut Option<Box<Holding>>,
    cx: &mut Context<'_>,
) -> Poll<Vec<Decision>> {
    match holding.as_deref_mut() {
        Some(Holding::Answer(waiting)) => waiting.answer.as_mut().poll(cx),
        Some(Holding::Subscribe(_)) => Poll::Ready(Vec::new()),
        None => Poll::Pending,
    }
}

/// Checks each of `topics`: the decisions now, or a future of them all.
fn check_all<'t>(
    access: &ClientAccess,
    action: Action,
    topics: impl Iterator<Item = &'t str>,
) -> Result<Vec<Decision>, BoxFuture<'static, Vec<Decision>>> {
    let checks: Vec<Checked> = topics.map(|topic| access.check(action, topic)).collect();
    if checks.iter().all(|c| matches!(c, Checked::Ready(_))) {
        return Ok(checks
            .into_iter()
            .map(|c| match c {
                Checked::Ready(decision) => decision,
                // All are ready (checked above); a pending one would be a denial.
                Checked::Pending(_) => Decision::Denied,
            })
            .collect());
    }
    Err(Box::pin(async move {
        let mut decisions = Vec::with_capacity(checks.len());
        for check in checks {
            decisions.push(match check {
                Checked::Ready(decision) => decision,
                Checked::Pending(answer) => answer.await,
            });
        }
        decisions
    }))
}

impl<P: Pipe> Driver<'_, P> {
    /// Re-resolves the client's access if the broker's was replaced (a reload).
    fn refresh_access(&mut self) {
        if self.broker.access_changed(self.access.generation) {
            let (control, generation) = self.broker.access();
            let identity = self.access.identity();
            *self.access =
                ClientAccess::new(&control, generation, self.pipe.conn_param(), identity);
        }
    }

    /// Whether packets wait for an authorization answer or a SUBSCRIBE's next slice.
    pub(super) fn holding(&self) -> bool {
        self.holding.is_some()
    }

    /// Keeps `subscribing` for its next slice, holding what comes after it.
    pub(super) fn hold_subscribe(&mut self, subscribing: Subscribing) {
        self.holding = Some(Box::new(Holding::Subscribe(subscribing)));
    }

    /// Whether a SUBSCRIBE waits for its next slice.
    pub(super) fn holds_subscribe(&self) -> bool {
        matches!(self.holding.as_deref(), Some(Holding::Subscribe(_)))
    }

    /// Works on the next slice of the SUBSCRIBE that waits for it, if one does.
    pub(super) fn next_subscribe_slice(&mut self) -> Option<Exit> {
        match self.holding.take().map(|held| *held) {
            Some(Holding::Subscribe(subscribing)) => self.subscribe_slice(subscribing),
            other => {
                self.holding = other.map(Box::new);
                None
            }
        }
    }

    /// The decision about publishing `publish`, or `None` if it waits for one (the
    /// PUBLISH is kept and handled once the answer is in).
    pub(super) fn authorize_publish(&mut self, publish: Publish) -> Option<(Publish, Decision)> {
        self.refresh_access();
        if self.access.is_open() {
            return Some((publish, Decision::AllowedByDefault));
        }
        // One topic: no list to build on the publish path.
        match self.access.check(Action::Publish, publish.topic()) {
            Checked::Ready(decision) => Some((publish, decision)),
            Checked::Pending(answer) => {
                self.holding = Some(Box::new(Holding::Answer(Authorizing {
                    packet: Packet::Publish(publish),
                    answer: Box::pin(async move { vec![answer.await] }),
                })));
                None
            }
        }
    }

    /// The decisions about each filter of `subscribe`, or `None` if they wait (as for
    /// [`Self::authorize_publish`]).
    pub(super) fn authorize_subscribe(
        &mut self,
        subscribe: Subscribe,
    ) -> Option<(Subscribe, Vec<Decision>)> {
        self.refresh_access();
        if self.access.is_open() {
            let decisions = vec![Decision::AllowedByDefault; subscribe.subscriptions.len()];
            return Some((subscribe, decisions));
        }
        let filters = subscribe.subscriptions.iter().map(|s| s.filter.as_str());
        match check_all(self.access, Action::Subscribe, filters) {
            Ok(decisions) => Some((subscribe, decisions)),
            Err(answer) => {
                self.holding = Some(Box::new(Holding::Answer(Authorizing {
                    packet: Packet::Subscribe(subscribe),
                    answer,
                })));
                None
            }
        }
    }

    /// Whether the client may receive a retained message published to `topic`.
    pub(super) fn may_receive(&mut self, topic: &str) -> bool {
        if self.access.is_open() {
            return true;
        }
        let decision = self.access.check_receive(topic);
        self.decided(Action::Receive, topic, decision)
    }

    /// Counts `decision` and logs a denial; whether it allows.
    pub(super) fn decided(&mut self, action: Action, topic: &str, decision: Decision) -> bool {
        if self.access.is_open() {
            // Nothing to decide, nothing to count: no contended counter on the publish path
            // of a broker without rules.
            return decision.allowed();
        }
        if decision == Decision::Allowed {
            // The common case is counted here and added to the shared counter in batches,
            // so publishers on different cores do not all write one cache line per message.
            self.allowed_uncounted += 1;
            if self.allowed_uncounted >= ALLOWED_BATCH {
                self.count_allowed();
            }
            return true;
        }
        self.broker.metrics.authorization(decision);
        if decision.allowed() {
            return true;
        }
        self.denials = self.denials.saturating_add(1);
        // Every denial is counted; the log gets the first few of each connection and then
        // one in each power of two, so a client retrying a denied topic cannot flood it.
        if self.denials <= 8 || self.denials.is_power_of_two() {
            let param = self.pipe.conn_param();
            tracing::info!(
                client = %param.client_id,
                username = ?param.username.as_deref(),
                action = action.name(),
                %topic,
                by_rule = decision.by_rule(),
                denials = self.denials,
                "not authorized"
            );
        }
        false
    }

    /// Adds the allowed actions counted here to the broker's counter.
    pub(super) fn count_allowed(&mut self) {
        let n = std::mem::take(&mut self.allowed_uncounted);
        if n > 0 {
            self.broker
                .metrics
                .authorization_allow
                .fetch_add(u64::from(n), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// What a denial does to the connection: `Some` closes it (`deny_action = disconnect`).
    pub(super) fn deny_exit(&mut self) -> Option<Exit> {
        match self.access.deny_action {
            DenyAction::Ignore => None,
            DenyAction::Disconnect => {
                self.rare.set_close_reason("not authorized".into());
                Some(Exit::Closed(ReasonCode::NotAuthorized))
            }
        }
    }

    /// The holding packet can go on (see [`poll_held_ready`]): handles it (a SUBSCRIBE in
    /// slices is left to the driver's loop).
    pub(super) fn on_held_ready(&mut self, decisions: Vec<Decision>) -> Option<Exit> {
        let waiting = match *self.holding.take()? {
            Holding::Answer(waiting) => waiting,
            subscribe @ Holding::Subscribe(_) => {
                self.holding = Some(Box::new(subscribe));
                return None;
            }
        };
        match waiting.packet {
            Packet::Publish(publish) => {
                let decision = decisions.first().copied().unwrap_or(Decision::Denied);
                self.publish_authorized(publish, decision)
            }
            Packet::Subscribe(subscribe) => self.subscribe_authorized(subscribe, decisions),
            // Only PUBLISH and SUBSCRIBE wait here.
            _ => None,
        }
    }
}
