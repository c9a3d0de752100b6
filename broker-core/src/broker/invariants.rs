//! What must hold of a broker's state whenever it is at rest, checked from outside the code
//! that keeps it: the fuzz target (`broker-core/fuzz`) and its regression test call
//! [`Broker::check_invariants`] once the runtime is idle. Only built with the `fuzzing`
//! feature.
//!
//! It reads the registry, the sessions and the subscription index through the accessors the
//! rest of the crate uses, so a rewrite of one of them does not have to change this file.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mqtt_codec::{SubscriptionId, SubscriptionOptions, TopicFilter, TopicName};

use super::Broker;
use crate::SessionExpiry;
use crate::session::SessionShared;
use crate::subscriptions::Subscriber;

/// How many violations one report lists before it stops counting.
const MAX_REPORTED: usize = 20;

/// The violations found so far.
#[derive(Default)]
struct Violations {
    found: Vec<String>,
}

impl Violations {
    fn add(&mut self, violation: String) {
        if self.found.len() < MAX_REPORTED {
            self.found.push(violation);
        }
    }

    fn into_result(self) -> Result<(), String> {
        if self.found.is_empty() {
            return Ok(());
        }
        let mut report = String::from("broker state is inconsistent:");
        for violation in &self.found {
            let _ = write!(report, "\n  - {violation}");
        }
        Err(report)
    }
}

/// One session's subscriptions, copied out of its state.
struct SessionView {
    session: Arc<SessionShared>,
    subscriptions: Vec<(TopicFilter, SubscriptionOptions, Option<SubscriptionId>)>,
}

impl Broker {
    /// Checks that the broker's state is consistent; `Err` lists what is not. Meant for a
    /// broker at rest (every task waiting): a connection in the middle of its handshake or
    /// of a takeover may be reported.
    ///
    /// - the registry: keyed by each session's client id, one key per session; an offline
    ///   session is there only while its expiry has not run out (its timer is pending);
    /// - each session: queue length and queued bytes within `max_mqueue_len` and
    ///   `max_mqueue_bytes` (one message alone may exceed the bytes), the queued-bytes counter
    ///   equal to the payloads queued, at most `max_inflight` messages in flight with
    ///   distinct packet identifiers;
    /// - the subscription index against the sessions: for every topic in `probes` and one
    ///   topic made from each subscribed filter, the index returns exactly the registered
    ///   sessions' subscriptions matching it (with their options and identifiers), and one
    ///   member for each shared group matching it;
    /// - delayed wills: pending only for clients that are not connected;
    /// - the connections gauge equals the connected sessions, and no more connections are
    ///   counted than are being served.
    #[doc(hidden)]
    pub fn check_invariants(&self, probes: &[TopicName]) -> Result<(), String> {
        let mut violations = Violations::default();
        let sessions = self.check_registry(&mut violations);
        for view in &sessions {
            self.check_session(&view.session, &mut violations);
        }
        self.check_index(&sessions, probes, &mut violations);
        self.check_wills(&sessions, &mut violations);
        self.check_connections(&sessions, &mut violations);
        violations.into_result()
    }

    /// Checks the registry's sessions and expiry timers; returns its sessions. (Each is
    /// registered under its own client identifier by construction: see `Registry`.)
    fn check_registry(&self, violations: &mut Violations) -> Vec<SessionView> {
        let registry = self.registry.lock();
        let mut keys = HashSet::new();
        let mut sessions = Vec::with_capacity(registry.len());
        for session in registry.values() {
            let name = session.client_id.as_str();
            if !keys.insert(session.key) {
                violations.add(format!(
                    "session key {} is registered twice ({name:?})",
                    session.key
                ));
            }
            if !session.is_online() {
                let (expiry, pending) = {
                    let life = session.life.lock();
                    let pending = life
                        .expiry_task
                        .as_ref()
                        .is_some_and(|task| !task.is_finished());
                    (life.expiry, pending)
                };
                match expiry {
                    SessionExpiry::Immediately => violations.add(format!(
                        "offline session {name:?} with session expiry 0 is still registered"
                    )),
                    SessionExpiry::After(after) if !pending => violations.add(format!(
                        "offline session {name:?} (expiry {after:?}) has no pending expiry"
                    )),
                    SessionExpiry::After(_) | SessionExpiry::Never => {}
                }
            }
            let subscriptions = session
                .state
                .lock()
                .subscriptions
                .iter()
                .map(|(filter, (options, id))| (filter.clone(), *options, *id))
                .collect();
            sessions.push(SessionView {
                session: Arc::clone(session),
                subscriptions,
            });
        }
        sessions
    }

    /// Checks one session's queue and in-flight window against the limits.
    fn check_session(&self, session: &SessionShared, violations: &mut Violations) {
        let config = &self.config;
        let name = session.client_id.as_str();
        let state = session.state.lock();
        let queued = state.queue.len();
        let bytes: usize = state.queue.iter().map(|d| d.message.payload.len()).sum();
        if queued > config.max_mqueue_len {
            violations.add(format!(
                "{name:?} queues {queued} messages, max_mqueue_len is {}",
                config.max_mqueue_len
            ));
        }
        if bytes > config.max_mqueue_bytes && queued > 1 {
            violations.add(format!(
                "{name:?} queues {bytes} payload bytes in {queued} messages, \
                 max_mqueue_bytes is {}",
                config.max_mqueue_bytes
            ));
        }
        if state.queued_bytes() != bytes {
            violations.add(format!(
                "{name:?} counts {} queued bytes, its queue holds {bytes}",
                state.queued_bytes()
            ));
        }
        let window = usize::from(config.max_inflight.max(1));
        if state.inflight.len() > window {
            violations.add(format!(
                "{name:?} has {} messages in flight, max_inflight is {window}",
                state.inflight.len()
            ));
        }
        let mut ids = HashSet::new();
        for f in state.inflight.iter() {
            if !ids.insert(f.packet_id) {
                violations.add(format!(
                    "{name:?} has packet identifier {} in flight twice",
                    f.packet_id.get()
                ));
            }
        }
    }

    /// Compares what the index returns for each probe topic with what the sessions hold.
    fn check_index(
        &self,
        sessions: &[SessionView],
        probes: &[TopicName],
        violations: &mut Violations,
    ) {
        let mut topics: Vec<TopicName> = Vec::new();
        let mut seen = HashSet::new();
        let made = sessions
            .iter()
            .flat_map(|view| view.subscriptions.iter())
            .filter_map(|(filter, _, _)| probe_for(filter));
        for topic in probes.iter().cloned().chain(made) {
            if seen.insert(topic.clone()) {
                topics.push(topic);
            }
        }
        let by_key: HashMap<u64, &SessionView> =
            sessions.iter().map(|v| (v.session.key, v)).collect();
        for topic in &topics {
            let matches = self.index.matches(topic);
            check_direct(topic, sessions, &by_key, &matches.direct, violations);
            check_shared(topic, sessions, &by_key, &matches.shared, violations);
        }
    }

    /// Delayed wills wait only for clients that are away.
    fn check_wills(&self, sessions: &[SessionView], violations: &mut Violations) {
        let wills = self.wills.lock();
        for (client_id, task) in wills.iter() {
            if task.is_finished() {
                violations.add(format!(
                    "the will of {:?} fired but is still listed",
                    client_id.as_str()
                ));
            }
            let online = sessions
                .iter()
                .any(|v| &v.session.client_id == client_id && v.session.is_online());
            if online {
                violations.add(format!(
                    "{:?} is connected while its will is pending",
                    client_id.as_str()
                ));
            }
        }
    }

    /// The connections gauge against the sessions that are connected.
    fn check_connections(&self, sessions: &[SessionView], violations: &mut Violations) {
        let gauge = self.metrics.connections.load(Ordering::Relaxed);
        let online = sessions.iter().filter(|v| v.session.is_online()).count() as u64;
        if gauge != online {
            violations.add(format!(
                "the connections gauge says {gauge}, {online} sessions are connected"
            ));
        }
        let served = self.live_connections.load(Ordering::Acquire) as u64;
        if gauge > served {
            violations.add(format!(
                "the connections gauge says {gauge}, {served} connections are being served"
            ));
        }
    }
}

/// A topic that `filter` matches: `+` and `#` become a plain level.
pub(crate) fn probe_for(filter: &TopicFilter) -> Option<TopicName> {
    let levels: Vec<&str> = filter
        .match_filter()
        .split('/')
        .map(|level| match level {
            "+" | "#" => "probe",
            level => level,
        })
        .collect();
    TopicName::new(levels.join("/")).ok()
}

/// The direct (non-shared) subscriptions the index returned for `topic` must be exactly the
/// registered sessions' direct subscriptions that match it.
fn check_direct(
    topic: &TopicName,
    sessions: &[SessionView],
    by_key: &HashMap<u64, &SessionView>,
    found: &[Subscriber],
    violations: &mut Violations,
) {
    let t = topic.as_str();
    let mut returned: HashMap<u64, usize> = HashMap::new();
    for sub in found {
        *returned.entry(sub.session.key).or_default() += 1;
        let Some(view) = by_key.get(&sub.session.key) else {
            violations.add(format!(
                "the index returns a subscription of {:?} (session {}) for {t:?}, \
                 which is not in the registry",
                sub.session.client_id.as_str(),
                sub.session.key
            ));
            continue;
        };
        if !Arc::ptr_eq(&view.session, &sub.session) {
            violations.add(format!(
                "the index holds another session object for key {}",
                sub.session.key
            ));
        }
        let held = view.subscriptions.iter().any(|(filter, options, id)| {
            filter.shared().is_none()
                && filter.matches(topic)
                && *options == sub.options
                && *id == sub.id
        });
        if !held {
            violations.add(format!(
                "the index returns a subscription of {:?} for {t:?} ({:?}, id {:?}) \
                 that its session does not hold",
                view.session.client_id.as_str(),
                sub.options,
                sub.id
            ));
        }
    }
    for view in sessions {
        let expected = view
            .subscriptions
            .iter()
            .filter(|(filter, _, _)| filter.shared().is_none() && filter.matches(topic))
            .count();
        let got = returned.get(&view.session.key).copied().unwrap_or(0);
        if got != expected {
            violations.add(format!(
                "{:?} holds {expected} subscriptions matching {t:?}, the index returns {got}",
                view.session.client_id.as_str()
            ));
        }
    }
}

/// The index returns one member of each shared group whose filter matches `topic`, and each
/// member returned is a registered session holding that shared subscription.
fn check_shared(
    topic: &TopicName,
    sessions: &[SessionView],
    by_key: &HashMap<u64, &SessionView>,
    found: &[Subscriber],
    violations: &mut Violations,
) {
    let t = topic.as_str();
    let groups: HashSet<(&str, &str)> = sessions
        .iter()
        .flat_map(|v| v.subscriptions.iter())
        .filter(|(filter, _, _)| filter.matches(topic))
        .filter_map(|(filter, _, _)| filter.shared().map(|s| (s.group, s.filter)))
        .collect();
    if found.len() != groups.len() {
        violations.add(format!(
            "{} shared groups match {t:?}, the index returns {} members",
            groups.len(),
            found.len()
        ));
    }
    for sub in found {
        let member = by_key.get(&sub.session.key).is_some_and(|view| {
            view.subscriptions.iter().any(|(filter, options, id)| {
                filter.shared().is_some()
                    && filter.matches(topic)
                    && *options == sub.options
                    && *id == sub.id
            })
        });
        if !member {
            violations.add(format!(
                "the index returns {:?} (session {}) as a shared member for {t:?}, \
                 which holds no such shared subscription",
                sub.session.client_id.as_str(),
                sub.session.key
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use mqtt_codec::{ClientId, QoS};

    use super::*;
    use crate::MqttConfig;
    use crate::message::Message;
    use crate::session::Delivery;

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    /// A broker with one offline, never-expiring session `c1` (key 1).
    fn broker() -> (Arc<Broker>, Arc<SessionShared>) {
        let broker = Broker::new(MqttConfig::default());
        let session = Arc::new(SessionShared::new(ClientId::new("c1").unwrap(), 1));
        session.life.lock().expiry = SessionExpiry::Never;
        broker.registry.lock().insert(Arc::clone(&session));
        (broker, session)
    }

    /// Subscribes `session` to `f` in its state and, if `indexed`, in the index.
    fn subscribe(broker: &Broker, session: &Arc<SessionShared>, f: &str, indexed: bool) {
        let options = SubscriptionOptions::new(QoS::AtLeastOnce);
        session.state.lock().subscribe(filter(f), options, None);
        if indexed {
            broker.index_subscription(session, &filter(f), options, None);
        }
    }

    fn violations(broker: &Broker, probes: &[&str]) -> String {
        let probes: Vec<TopicName> = probes.iter().map(|p| topic(p)).collect();
        broker.check_invariants(&probes).err().unwrap_or_default()
    }

    #[test]
    fn a_consistent_broker_passes() {
        let (broker, session) = broker();
        subscribe(&broker, &session, "a/+/#", true);
        subscribe(&broker, &session, "a/b", true);
        subscribe(&broker, &session, "$share/g/a/b", true);
        assert_eq!(broker.check_invariants(&[topic("a/b"), topic("x")]), Ok(()));
    }

    #[test]
    fn a_subscription_missing_from_the_index_is_found() {
        let (broker, session) = broker();
        subscribe(&broker, &session, "a/+", false);
        subscribe(&broker, &session, "$share/g/b", false);
        let found = violations(&broker, &[]);
        assert!(
            found
                .contains("\"c1\" holds 1 subscriptions matching \"a/probe\", the index returns 0"),
            "{found}"
        );
        assert!(
            found.contains("1 shared groups match \"b\", the index returns 0 members"),
            "{found}"
        );
    }

    #[test]
    fn an_index_entry_no_session_holds_is_found() {
        let (broker, session) = broker();
        broker.index_subscription(
            &session,
            &filter("a/#"),
            SubscriptionOptions::new(QoS::AtMostOnce),
            None,
        );
        let gone = Arc::new(SessionShared::new(ClientId::new("c2").unwrap(), 2));
        broker.index_subscription(
            &gone,
            &filter("b"),
            SubscriptionOptions::new(QoS::AtMostOnce),
            None,
        );
        let found = violations(&broker, &["a/x", "b"]);
        assert!(found.contains("that its session does not hold"), "{found}");
        assert!(
            found.contains("\"c2\" (session 2) for \"b\", which is not in the registry"),
            "{found}"
        );
    }

    #[test]
    fn queue_and_registry_violations_are_found() {
        let (broker, session) = broker();
        let message = Message::new(
            topic("a"),
            Bytes::from_static(b"xyz"),
            QoS::AtLeastOnce,
            false,
            None,
        );
        session.state.lock().queue.push_back(Delivery::new(
            Arc::new(message),
            QoS::AtLeastOnce,
            false,
            Vec::new(),
        ));
        let stale = Arc::new(SessionShared::new(ClientId::new("c3").unwrap(), 3));
        broker.registry.lock().insert(stale);
        broker.metrics.connections.store(1, Ordering::Relaxed);
        let found = violations(&broker, &[]);
        for expected in [
            "\"c1\" counts 0 queued bytes, its queue holds 3",
            "offline session \"c3\" with session expiry 0 is still registered",
            "the connections gauge says 1, 0 sessions are connected",
        ] {
            assert!(found.contains(expected), "{expected:?} not in {found}");
        }
    }
}
