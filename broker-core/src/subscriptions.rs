//! The subscription index: which sessions want a topic. A tree of topic levels with `+` and
//! `#` branches, split into shards by first level so that publishers on different topics do
//! not meet on one lock, and subscribers never block a publisher for long.
//!
//! Filters whose first level is a wildcard live in a shard of their own that every lookup
//! reads. Shared subscriptions (`$share/{group}/{filter}`) sit in the tree under their inner
//! filter, as groups from which each message picks one member.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use mqtt_codec::{SubscriptionId, SubscriptionOptions, TopicFilter, TopicName};
use parking_lot::RwLock;

use crate::SharedStrategy;
use crate::session::SessionShared;
use crate::topic_levels::{first_level, with_levels};
use crate::topic_tree::{self, Children, TreeNode};

const SHARDS: usize = 16;

/// One session's subscription to one filter.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) session: Arc<SessionShared>,
    pub(crate) options: SubscriptionOptions,
    pub(crate) id: Option<SubscriptionId>,
}

#[derive(Debug)]
struct SharedGroup {
    name: Box<str>,
    members: Vec<Subscriber>,
    next: AtomicUsize,
}

#[derive(Debug, Default)]
struct Subscribers {
    direct: Vec<Subscriber>,
    shared: Vec<SharedGroup>,
}

impl Subscribers {
    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.shared.is_empty()
    }

    /// Adds `sub`, replacing the same session's earlier one; whether it is new.
    fn insert(&mut self, group: Option<&str>, sub: Subscriber) -> bool {
        let key = sub.session.key;
        let list = match group {
            None => &mut self.direct,
            Some(name) => {
                let index = match self.shared.iter().position(|g| &*g.name == name) {
                    Some(i) => i,
                    None => {
                        self.shared.push(SharedGroup {
                            name: name.into(),
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        self.shared.len() - 1
                    }
                };
                match self.shared.get_mut(index) {
                    Some(g) => &mut g.members,
                    None => return false,
                }
            }
        };
        match list.iter_mut().find(|s| s.session.key == key) {
            Some(existing) => {
                *existing = sub;
                false
            }
            None => {
                list.push(sub);
                true
            }
        }
    }

    fn remove(&mut self, group: Option<&str>, key: u64) -> bool {
        match group {
            None => remove_key(&mut self.direct, key),
            Some(name) => {
                let Some(i) = self.shared.iter().position(|g| &*g.name == name) else {
                    return false;
                };
                let removed = self
                    .shared
                    .get_mut(i)
                    .is_some_and(|g| remove_key(&mut g.members, key));
                if self.shared.get(i).is_some_and(|g| g.members.is_empty()) {
                    self.shared.swap_remove(i);
                }
                removed
            }
        }
    }

    fn collect(&self, out: &mut Matches, strategy: SharedStrategy) {
        out.direct.extend(self.direct.iter().cloned());
        for group in &self.shared {
            if let Some(member) = pick(group, strategy) {
                out.shared.push(member.clone());
            }
        }
    }
}

fn remove_key(list: &mut Vec<Subscriber>, key: u64) -> bool {
    let before = list.len();
    list.retain(|s| s.session.key != key);
    list.len() != before
}

/// Picks the member of a shared group that gets the next message: by the strategy, skipping
/// members whose client is offline while any member is online.
fn pick(group: &SharedGroup, strategy: SharedStrategy) -> Option<&Subscriber> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    let start = match strategy {
        SharedStrategy::RoundRobin => group.next.load(Ordering::Relaxed),
        SharedStrategy::Random => random_index(),
    } % n;
    let online = (0..n).find(|i| {
        group
            .members
            .get((start + i) % n)
            .is_some_and(|m| m.session.is_online())
    });
    let chosen = (start + online.unwrap_or(0)) % n;
    if strategy == SharedStrategy::RoundRobin {
        // The turn passes to the member after the one chosen, so skipping offline members
        // does not give the next online one two turns.
        group.next.store(chosen + 1, Ordering::Relaxed);
    }
    group.members.get(chosen)
}

/// A cheap, well-spread index: a counter scrambled by the standard hasher's random keys.
fn random_index() -> usize {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
        as usize
}

/// A node of the tree: one topic level of the filters that pass through it.
///
/// Kept small because a filter costs one node per level (a deep filter tens of thousands):
/// children in a compact map, the `+` branch and the subscribers boxed and present only when
/// there are some.
#[derive(Default)]
struct Node {
    children: Children<Node>,
    plus: Option<Box<Node>>,
    /// `None` when no filter ends here.
    subscribers: Option<Box<NodeSubscribers>>,
}

#[derive(Debug, Default)]
struct NodeSubscribers {
    /// Filters that end at this node.
    here: Subscribers,
    /// Filters `<this node>/#`, which also match this node itself.
    hash: Subscribers,
}

impl NodeSubscribers {
    fn is_empty(&self) -> bool {
        self.here.is_empty() && self.hash.is_empty()
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the derived form: it would recurse once per level.
        f.debug_struct("Node")
            .field("children", &self.children.len())
            .field("plus", &self.plus.is_some())
            .field("subscribers", &self.subscribers)
            .finish()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        topic_tree::dismantle(self);
    }
}

impl TreeNode for Node {
    fn child(&self, level: &str) -> Option<&Self> {
        match level {
            "+" => self.plus.as_deref(),
            _ => self.children.get(level),
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Self> {
        match level {
            "+" => self.plus.as_deref_mut(),
            _ => self.children.get_mut(level),
        }
    }

    fn remove_child(&mut self, level: &str) -> Option<Self> {
        match level {
            "+" => self.plus.take().map(|plus| *plus),
            _ => self.children.remove(level),
        }
    }

    fn branches(&self) -> usize {
        self.children.len() + usize::from(self.plus.is_some())
    }

    fn holds_anything(&self) -> bool {
        self.subscribers.as_ref().is_some_and(|s| !s.is_empty())
    }

    fn take_branches(&mut self, out: &mut Vec<Self>) {
        self.children.take_into(out);
        out.extend(self.plus.take().map(|plus| *plus));
    }
}

impl Node {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.branches() == 0 && !self.holds_anything()
    }

    fn subscribers_mut(&mut self, levels: &[&str]) -> &mut Subscribers {
        let mut node = self;
        for &level in levels {
            node = match level {
                "#" => return &mut node.subscribers.get_or_insert_with(Box::default).hash,
                "+" => node.plus.get_or_insert_with(Box::default),
                _ => node.children.get_or_insert(level),
            };
        }
        &mut node.subscribers.get_or_insert_with(Box::default).here
    }

    /// Removes a subscription and prunes the branches it leaves empty: whether there was
    /// one, and whether it was the last of its filter.
    fn remove(&mut self, levels: &[&str], group: Option<&str>, key: u64) -> (bool, bool) {
        // A `#` filter is held by the node of the level before it.
        let hash_at = levels.iter().position(|level| *level == "#");
        let path = hash_at.and_then(|i| levels.get(..i)).unwrap_or(levels);
        let Some(node) = topic_tree::descend_mut(self, path) else {
            return (false, false);
        };
        let Some(subscribers) = node.subscribers.as_mut() else {
            return (false, false);
        };
        let list = match hash_at {
            Some(_) => &mut subscribers.hash,
            None => &mut subscribers.here,
        };
        let removed = list.remove(group, key);
        let last = removed && list.is_empty();
        if subscribers.is_empty() {
            node.subscribers = None;
        }
        if removed {
            topic_tree::prune(self, path);
        }
        (removed, last)
    }

    /// Collects the subscribers whose filter matches `levels`. Wildcards at the first level
    /// do not match a `$` topic (`system`).
    fn collect(&self, levels: &[&str], system: bool, out: &mut Matches, strategy: SharedStrategy) {
        // Depth first, the literal branch before the `+` branch, as matches always came;
        // the heap stack holds only the `+` branches still to visit.
        let mut pending = Vec::new();
        let mut next = Some((self, 0));
        while let Some((node, depth)) = next.take().or_else(|| pending.pop()) {
            let wildcards = !(system && depth == 0);
            if let (Some(subscribers), true) = (&node.subscribers, wildcards) {
                subscribers.hash.collect(out, strategy);
            }
            let Some(level) = levels.get(depth) else {
                if let Some(subscribers) = &node.subscribers {
                    subscribers.here.collect(out, strategy);
                }
                continue;
            };
            let literal = node.children.get(level).map(|child| (child, depth + 1));
            let plus = match (&node.plus, wildcards) {
                (Some(plus), true) => Some((&**plus, depth + 1)),
                _ => None,
            };
            next = match (literal, plus) {
                (Some(literal), Some(plus)) => {
                    pending.push(plus);
                    Some(literal)
                }
                (literal, plus) => literal.or(plus),
            };
        }
    }
}

/// The subscriptions matching one topic.
#[derive(Debug, Default)]
pub(crate) struct Matches {
    /// Ordinary subscriptions, possibly several per session.
    pub(crate) direct: Vec<Subscriber>,
    /// One member per matching shared group.
    pub(crate) shared: Vec<Subscriber>,
}

/// The index itself.
#[derive(Debug)]
pub(crate) struct SubscriptionIndex {
    shards: Vec<RwLock<Node>>,
    wildcard: RwLock<Node>,
    hasher: std::collections::hash_map::RandomState,
    strategy: SharedStrategy,
    /// What the index holds, kept as it changes (under the shard's write lock) so that
    /// reading it walks nothing.
    subscriptions: AtomicU64,
    shared: AtomicU64,
    filters: AtomicU64,
}

/// How much the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexCounts {
    /// Subscriptions, shared ones included.
    pub(crate) subscriptions: u64,
    /// Shared subscriptions.
    pub(crate) shared: u64,
    /// Distinct filters (a shared subscription's counted after its group).
    pub(crate) filters: u64,
}

impl SubscriptionIndex {
    pub(crate) fn new(strategy: SharedStrategy) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            wildcard: RwLock::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            strategy,
            subscriptions: AtomicU64::new(0),
            shared: AtomicU64::new(0),
            filters: AtomicU64::new(0),
        }
    }

    /// How much the index holds now.
    pub(crate) fn counts(&self) -> IndexCounts {
        IndexCounts {
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
            shared: self.shared.load(Ordering::Relaxed),
            filters: self.filters.load(Ordering::Relaxed),
        }
    }

    /// Counts a subscription added (`by` 1) or removed (`by` -1), and its filter if that
    /// was its filter's first or last.
    fn count(&self, shared: bool, filter_changed: bool, added: bool) {
        let change = |counter: &AtomicU64| {
            if added {
                counter.fetch_add(1, Ordering::Relaxed);
            } else {
                counter.fetch_sub(1, Ordering::Relaxed);
            }
        };
        change(&self.subscriptions);
        if shared {
            change(&self.shared);
        }
        if filter_changed {
            change(&self.filters);
        }
    }

    fn shard(&self, first: &str) -> &RwLock<Node> {
        let index = self.hasher.hash_one(first) as usize % SHARDS;
        self.shards.get(index).unwrap_or(&self.wildcard)
    }

    fn shard_for_filter(&self, filter: &str) -> &RwLock<Node> {
        match first_level(filter) {
            "+" | "#" => &self.wildcard,
            first => self.shard(first),
        }
    }

    /// Adds a subscription, replacing the session's earlier one for the same filter.
    pub(crate) fn insert(&self, filter: &TopicFilter, sub: Subscriber) {
        let group = filter.shared().map(|s| s.group);
        let inner = filter.match_filter();
        let levels: Vec<&str> = inner.split('/').collect();
        let mut shard = self.shard_for_filter(inner).write();
        let subscribers = shard.subscribers_mut(&levels);
        let first = subscribers.is_empty();
        if subscribers.insert(group, sub) {
            self.count(group.is_some(), first, true);
        }
    }

    /// Removes the subscription of session `key` to `filter`; whether there was one.
    pub(crate) fn remove(&self, filter: &TopicFilter, key: u64) -> bool {
        let group = filter.shared().map(|s| s.group);
        let inner = filter.match_filter();
        let levels: Vec<&str> = inner.split('/').collect();
        let mut shard = self.shard_for_filter(inner).write();
        let (removed, last) = shard.remove(&levels, group, key);
        if removed {
            self.count(group.is_some(), last, false);
        }
        removed
    }

    /// The subscriptions matching `topic`.
    pub(crate) fn matches(&self, topic: &TopicName) -> Matches {
        let mut out = Matches::default();
        let system = topic.is_system();
        with_levels(topic, |levels| {
            self.shard(first_level(topic))
                .read()
                .collect(levels, system, &mut out, self.strategy);
            self.wildcard
                .read()
                .collect(levels, system, &mut out, self.strategy);
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use mqtt_codec::{ClientId, QoS};

    use super::*;

    fn session(key: u64) -> Arc<SessionShared> {
        Arc::new(SessionShared::new(
            ClientId::new(format!("c{key}")).unwrap(),
            key,
        ))
    }

    fn sub(session: &Arc<SessionShared>) -> Subscriber {
        Subscriber {
            session: Arc::clone(session),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
            id: None,
        }
    }

    fn keys(index: &SubscriptionIndex, topic: &str) -> Vec<u64> {
        let mut keys: Vec<u64> = index
            .matches(&TopicName::new(topic).unwrap())
            .direct
            .iter()
            .map(|s| s.session.key)
            .collect();
        keys.sort();
        keys
    }

    fn f(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    #[test]
    fn filters_match_as_the_specification_says() {
        let index = SubscriptionIndex::new(SharedStrategy::RoundRobin);
        let filters = [
            "sport/#",
            "sport/+/player1",
            "#",
            "+/+",
            "sport",
            "$SYS/#",
            "+/tennis/#",
        ];
        let sessions: Vec<_> = (1..=filters.len() as u64).map(session).collect();
        for (filter, s) in filters.iter().zip(&sessions) {
            index.insert(&f(filter), sub(s));
        }
        assert_eq!(keys(&index, "sport"), vec![1, 3, 5]);
        assert_eq!(keys(&index, "sport/tennis/player1"), vec![1, 2, 3, 7]);
        assert_eq!(keys(&index, "sport/tennis"), vec![1, 3, 4, 7]);
        assert_eq!(keys(&index, "$SYS/uptime"), vec![6]);
        assert_eq!(keys(&index, "other"), vec![3]);
    }

    #[test]
    fn removal_prunes_and_replaces() {
        let index = SubscriptionIndex::new(SharedStrategy::RoundRobin);
        let s = session(1);
        index.insert(&f("a/+/c"), sub(&s));
        index.insert(&f("a/+/c"), sub(&s));
        assert_eq!(
            keys(&index, "a/b/c"),
            vec![1],
            "a second subscribe replaces"
        );
        assert!(index.remove(&f("a/+/c"), 1));
        assert!(!index.remove(&f("a/+/c"), 1));
        assert!(keys(&index, "a/b/c").is_empty());
        for shard in index.shards.iter().chain([&index.wildcard]) {
            assert!(shard.read().is_empty(), "empty branches are pruned");
        }
    }

    #[test]
    fn pruning_keeps_what_other_filters_pass_through() {
        let index = SubscriptionIndex::new(SharedStrategy::RoundRobin);
        // Filter i belongs to session i + 1, and the topic beside it matches it.
        let filters = [
            ("x/y/z", "x/y/z"),
            ("x/y", "x/y"),
            ("x/+/z", "x/q/z"),
            ("x/y/#", "x/y/v"),
            ("x/y/z/w", "x/y/z/w"),
        ];
        let sessions: Vec<_> = (1..=filters.len() as u64).map(session).collect();
        for ((filter, _), s) in filters.iter().zip(&sessions) {
            index.insert(&f(filter), sub(s));
        }
        let shared = session(99);
        index.insert(&f("$share/g/x/y/z"), sub(&shared));
        for (i, (filter, _)) in filters.iter().enumerate() {
            assert!(index.remove(&f(filter), i as u64 + 1), "{filter}");
            for (j, (rest, topic)) in filters.iter().enumerate().skip(i + 1) {
                assert!(
                    keys(&index, topic).contains(&(j as u64 + 1)),
                    "{rest} after removing {filter}"
                );
            }
        }
        assert_eq!(
            index
                .matches(&TopicName::new("x/y/z").unwrap())
                .shared
                .len(),
            1,
            "the shared group's branch stays"
        );
        assert!(index.remove(&f("$share/g/x/y/z"), 99));
        for shard in index.shards.iter().chain([&index.wildcard]) {
            assert!(shard.read().is_empty(), "empty branches are pruned");
        }
    }

    #[test]
    fn deep_filters_are_walked_and_dropped_without_recursion() {
        // On a 256 KiB stack: anything that recursed per level would overflow it.
        let deep = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let index = SubscriptionIndex::new(SharedStrategy::RoundRobin);
                let s = session(1);
                let empty = "/".repeat(65_534);
                let plus = vec!["+"; 32_768].join("/");
                for filter in [&empty, &plus] {
                    index.insert(&f(filter), sub(&s));
                }
                let found = keys(&index, &empty).len() + keys(&index, &"/".repeat(32_767)).len();
                let removed = index.remove(&f(&empty), 1);
                // The `+` chain is still in the index when it is dropped.
                (found, removed)
            })
            .unwrap();
        assert_eq!(deep.join().ok(), Some((2, true)));
    }

    #[test]
    fn shared_groups_pick_online_members_in_turn() {
        let index = SubscriptionIndex::new(SharedStrategy::RoundRobin);
        let (a, b, c) = (session(1), session(2), session(3));
        for s in [&a, &b, &c] {
            index.insert(&f("$share/g/t"), sub(s));
        }
        a.set_online(true);
        c.set_online(true);
        let picks: Vec<u64> = (0..6)
            .map(|_| {
                index.matches(&TopicName::new("t").unwrap()).shared[0]
                    .session
                    .key
            })
            .collect();
        assert!(
            picks.iter().all(|k| *k != 2),
            "offline member picked: {picks:?}"
        );
        assert_eq!(picks.iter().filter(|k| **k == 1).count(), 3);
        assert!(index.remove(&f("$share/g/t"), 2));
        assert!(
            index
                .matches(&TopicName::new("t").unwrap())
                .direct
                .is_empty()
        );
    }
}
