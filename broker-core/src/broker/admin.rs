//! What an operator reads and does through the admin API: the sessions with their
//! connections ([`Broker::clients`], [`Broker::client`]), every subscription
//! ([`Broker::subscriptions`]), the retained messages ([`Broker::retained_messages`]),
//! kicking a client ([`Broker::kick`]), and subscribing or unsubscribing on a client's
//! behalf. Reads are snapshots taken one session at a time (never the whole registry locked
//! while sessions are read); the retained list is a bounded page.

use std::sync::Arc;
use std::time::Instant;

use mqtt_codec::{ClientId, QoS, RetainHandling, SubscriptionOptions, TopicFilter};

use super::Broker;
use crate::session::{Control, Delivery, SessionShared};
use crate::{ClientInfo, ClientRecord, Message, SessionExpiry};

/// One session as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientSummary {
    /// Its client identifier.
    pub client_id: ClientId,
    /// Whether a connection is attached now.
    pub connected: bool,
    /// Its connection, current or last (`None`: restored from the store, not reconnected).
    pub connection: Option<ClientInfo>,
    /// When the session ends once its client is away.
    pub session_expiry: SessionExpiry,
    /// Messages queued for it.
    pub queued: usize,
    /// Messages sent to it and not yet acknowledged.
    pub in_flight: usize,
    /// How many subscriptions it has.
    pub subscriptions: usize,
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionSummary {
    /// Whose.
    pub client_id: ClientId,
    /// The filter (a shared one with its `$share/<group>/` prefix).
    pub filter: TopicFilter,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// A session with its subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientDetail {
    /// The session.
    pub summary: ClientSummary,
    /// Its subscriptions, by filter.
    pub subscriptions: Vec<SubscriptionSummary>,
}

/// What [`Broker::kick`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The client was connected: it is disconnected (MQTT 5: DISCONNECT 0x98 Administrative
    /// action) and its will published; its session lives on as its expiry says.
    Disconnected,
    /// The client was away: its session is removed, with everything queued for it.
    SessionRemoved,
    /// No such session.
    NotFound,
}

/// Why a subscription on a client's behalf was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// No session has this client identifier.
    NoSuchClient,
    /// The session holds `max_subscriptions` already.
    TooManySubscriptions,
    /// The filter breaks the broker's limits (levels, length).
    FilterTooLarge,
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoSuchClient => "no session has this client id",
            Self::TooManySubscriptions => "the session holds max_subscriptions already",
            Self::FilterTooLarge => {
                "the filter passes the broker's limits on topic levels or length"
            }
        })
    }
}

impl std::error::Error for AdminError {}

impl Broker {
    /// Every session, in client-id order.
    pub fn clients(&self) -> Vec<ClientSummary> {
        let mut sessions = self.sessions();
        sessions.sort_by(|a, b| a.client_id.as_str().cmp(b.client_id.as_str()));
        sessions.iter().map(|s| summary(s)).collect()
    }

    /// One session, with its subscriptions.
    pub fn client(&self, client_id: &str) -> Option<ClientDetail> {
        let session = self.session(client_id)?;
        Some(ClientDetail {
            summary: summary(&session),
            subscriptions: subscriptions_of(&session),
        })
    }

    /// Every subscription of every session, in client-id then filter order.
    pub fn subscriptions(&self) -> Vec<SubscriptionSummary> {
        let mut sessions = self.sessions();
        sessions.sort_by(|a, b| a.client_id.as_str().cmp(b.client_id.as_str()));
        sessions.iter().flat_map(|s| subscriptions_of(s)).collect()
    }

    /// A page of the live retained messages, in topic order (see
    /// [`RetainedIndex::in_order`](crate::RetainedIndex::in_order)): at most `limit`, after
    /// the first `skip`. The retained index is read-locked for the walk, which costs
    /// `skip + limit` messages: publishers of retained messages wait that long, so callers
    /// bound both. Expired messages are left out (and removed later, as a subscriber's
    /// lookup removes them).
    pub fn retained_messages(&self, skip: usize, limit: usize) -> Vec<Arc<Message>> {
        self.retained.read().in_order(Instant::now(), skip, limit)
    }

    /// How many topics have a retained message (expired ones not yet removed included).
    pub fn retained_count(&self) -> usize {
        self.retained.read().len()
    }

    /// Kicks the client `client_id` (see [`Kick`]).
    pub fn kick(&self, client_id: &str) -> Kick {
        let Some(session) = self.session(client_id) else {
            return Kick::NotFound;
        };
        if session.is_online() {
            session.set_control(Control::Kicked);
            Kick::Disconnected
        } else {
            self.discard(&session);
            Kick::SessionRemoved
        }
    }

    /// Subscribes the session of `client_id` (connected or not) to `filter`, as its own
    /// SUBSCRIBE would, without asking the ACL: retained messages follow the options'
    /// retain handling. Returns whether the subscription is new.
    pub fn subscribe_for(
        &self,
        client_id: &str,
        filter: TopicFilter,
        options: SubscriptionOptions,
    ) -> Result<bool, AdminError> {
        let session = self.session(client_id).ok_or(AdminError::NoSuchClient)?;
        let limits = self.limits();
        limits
            .check_topic(&filter)
            .map_err(|_| AdminError::FilterTooLarge)?;
        let replaced = {
            let mut state = session.state.lock();
            if state.subscriptions.len() >= limits.max_subscriptions
                && !state.subscriptions.contains_key(&filter)
            {
                return Err(AdminError::TooManySubscriptions);
            }
            state.subscribe(filter.clone(), options, None)
        };
        self.index_subscription(&session, &filter, options, None);
        let send_retained = filter.shared().is_none()
            && match options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !replaced,
                RetainHandling::DoNotSend => false,
            };
        if send_retained {
            let now = Instant::now();
            for message in self.retained_matching(&filter, now, self.config.max_mqueue_len) {
                let qos: QoS = message.qos.min(options.qos);
                let delivery = Delivery::new(message, qos, true, Vec::new());
                if session.offer(delivery, &self.config, None).result.is_err() {
                    self.metrics
                        .dropped_queue_full
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        Ok(!replaced)
    }

    /// Removes the subscription of `client_id` to `filter`; returns whether it existed.
    pub fn unsubscribe_for(
        &self,
        client_id: &str,
        filter: &TopicFilter,
    ) -> Result<bool, AdminError> {
        let session = self.session(client_id).ok_or(AdminError::NoSuchClient)?;
        let existed = session.state.lock().unsubscribe(filter);
        self.index.remove(filter, session.key);
        Ok(existed)
    }

    /// Publishes `message` for the operator (the admin API's publish): routed and counted
    /// like a client's message, a retained one stored, without an access-control check.
    /// Returns how many sessions it was queued for.
    pub fn publish_admin(&self, message: Message) -> usize {
        self.publish(message).queued
    }

    /// The session of `client_id`.
    fn session(&self, client_id: &str) -> Option<Arc<SessionShared>> {
        let id = ClientId::new(client_id).ok()?;
        self.registry.lock().get(&id).cloned()
    }

    /// Every session (the registry locked only to copy the handles).
    fn sessions(&self) -> Vec<Arc<SessionShared>> {
        self.registry.lock().values().cloned().collect()
    }
}

/// A session's summary.
fn summary(session: &SessionShared) -> ClientSummary {
    let (connection, session_expiry) = {
        let life = session.life.lock();
        (life.client.as_deref().map(ClientRecord::info), life.expiry)
    };
    let (queued, in_flight, subscriptions) = {
        let state = session.state.lock();
        (
            state.queued_len(),
            state.inflight.len(),
            state.subscriptions.len(),
        )
    };
    ClientSummary {
        client_id: session.client_id.clone(),
        connected: session.is_online(),
        connection,
        session_expiry,
        queued,
        in_flight,
        subscriptions,
    }
}

/// A session's subscriptions, by filter.
fn subscriptions_of(session: &SessionShared) -> Vec<SubscriptionSummary> {
    let mut subscriptions: Vec<_> = session
        .state
        .lock()
        .subscriptions
        .iter()
        .map(|(filter, (options, _))| SubscriptionSummary {
            client_id: session.client_id.clone(),
            filter: filter.clone(),
            options: *options,
        })
        .collect();
    subscriptions.sort_by(|a, b| a.filter.as_str().cmp(b.filter.as_str()));
    subscriptions
}
