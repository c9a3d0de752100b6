//! Retained messages, in a tree of topic levels (the shape of the subscription index), so
//! that finding the ones a filter matches walks only the branches the filter can match,
//! instead of testing every retained message against it: a SUBSCRIBE of many filters costs
//! the size of its filters and of what they match, not filters times retained messages.

use std::sync::Arc;
use std::time::Instant;

use mqtt_codec::{TopicFilter, TopicName};

use crate::message::Message;
use crate::topic_tree::{self, Children, TreeNode};

/// The retained message of each topic that has one.
///
/// Matching follows MQTT: `+` matches one level (an empty one too), `#` the level it stands
/// at and everything below, and neither matches a topic starting with `$` at the first
/// level. A shared subscription's filter matches as its inner filter (whether shared
/// subscriptions get retained messages is the caller's rule: they do not).
#[derive(Debug, Default)]
pub struct RetainedIndex {
    root: Node,
    len: usize,
}

/// What [`RetainedIndex::matching`] found.
#[derive(Debug, Default)]
pub struct RetainedLookup {
    /// The live messages the filter matches, at most the limit asked for.
    pub live: Vec<Arc<Message>>,
    /// The topics of expired messages met on the way (still stored: removing them needs
    /// the index mutably, and the store told).
    pub expired: Vec<TopicName>,
}

#[derive(Default)]
struct Node {
    children: Children<Node>,
    message: Option<Arc<Message>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the derived form: it would recurse once per level.
        f.debug_struct("Node")
            .field("children", &self.children.len())
            .field("message", &self.message.is_some())
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
        self.children.get(level)
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Self> {
        self.children.get_mut(level)
    }

    fn remove_child(&mut self, level: &str) -> Option<Self> {
        self.children.remove(level)
    }

    fn branches(&self) -> usize {
        self.children.len()
    }

    fn holds_anything(&self) -> bool {
        self.message.is_some()
    }

    fn take_branches(&mut self, out: &mut Vec<Self>) {
        self.children.take_into(out);
    }
}

/// The children a wildcard at `depth` matches: all, except `$` topics at the first level.
fn wildcard_children(node: &Node, depth: usize) -> impl Iterator<Item = &Node> {
    node.children
        .iter()
        .filter(move |(level, _)| depth > 0 || !level.starts_with('$'))
        .map(|(_, child)| child)
}

/// A branch still to visit in [`RetainedIndex::matching`].
enum Visit<'a> {
    /// `node` has matched the filter's first `depth` levels.
    Level(&'a Node, usize),
    /// `node` and everything below it match (the filter's `#`).
    Subtree(&'a Node),
}

impl RetainedIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many topics have a retained message.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no topic has a retained message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes `message` the retained message of its topic; returns the one it replaces.
    pub fn insert(&mut self, message: Arc<Message>) -> Option<Arc<Message>> {
        let mut node = &mut self.root;
        for level in message.topic.split('/') {
            node = node.children.get_or_insert(level);
        }
        let old = node.message.replace(message);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The retained message of `topic`.
    pub fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// Removes the retained message of `topic`, and the branch it leaves empty.
    pub fn remove(&mut self, topic: &str) -> Option<Arc<Message>> {
        let path: Vec<&str> = topic.split('/').collect();
        let removed = topic_tree::descend_mut(&mut self.root, &path)?
            .message
            .take()?;
        self.len -= 1;
        topic_tree::prune(&mut self.root, &path);
        Some(removed)
    }

    /// The live retained messages in topic order, after skipping the first `skip` of them,
    /// at most `limit`: a page of the operator's list. Topic order is level by level, each
    /// level's names compared as bytes, a topic before the topics below it (`a`, `a/b`,
    /// `a/c`, `a-b`). Expired messages are left out but not removed (this reads only). The
    /// walk visits the topics before the page too: it costs `skip + limit` messages and the
    /// levels on the way, not the whole index.
    pub fn in_order(&self, now: Instant, skip: usize, limit: usize) -> Vec<Arc<Message>> {
        let mut page = Vec::new();
        if limit == 0 {
            return page;
        }
        let mut skipped = 0;
        // Depth first without recursion: each node's children are pushed in reverse order,
        // so the next pop is the first of them.
        let mut pending = vec![&self.root];
        let mut children: Vec<(&str, &Node)> = Vec::new();
        while let Some(node) = pending.pop() {
            if let Some(message) = &node.message
                && !message.is_expired(now)
            {
                if skipped < skip {
                    skipped += 1;
                } else {
                    page.push(Arc::clone(message));
                    if page.len() >= limit {
                        break;
                    }
                }
            }
            children.clear();
            children.extend(node.children.iter());
            children.sort_unstable_by(|a, b| b.0.cmp(a.0));
            pending.extend(children.iter().map(|&(_, child)| child));
        }
        page
    }

    /// The retained messages `filter` matches that are live at `now`, at most `limit` of
    /// them (the caller's room for them), and the expired ones met on the way.
    pub fn matching(&self, filter: &TopicFilter, now: Instant, limit: usize) -> RetainedLookup {
        let mut found = RetainedLookup::default();
        if limit == 0 {
            return found;
        }
        let levels: Vec<&str> = filter.match_filter().split('/').collect();
        let mut pending = vec![Visit::Level(&self.root, 0)];
        while let Some(visit) = pending.pop() {
            let node = match visit {
                Visit::Subtree(node) => {
                    pending.extend(node.children.iter().map(|(_, child)| Visit::Subtree(child)));
                    node
                }
                Visit::Level(node, depth) => match levels.get(depth).copied() {
                    None => node,
                    Some("#") => {
                        pending.extend(wildcard_children(node, depth).map(Visit::Subtree));
                        // `a/#` matches `a` too.
                        node
                    }
                    Some("+") => {
                        pending.extend(
                            wildcard_children(node, depth)
                                .map(|child| Visit::Level(child, depth + 1)),
                        );
                        continue;
                    }
                    Some(level) => {
                        pending.extend(
                            node.children
                                .get(level)
                                .map(|child| Visit::Level(child, depth + 1)),
                        );
                        continue;
                    }
                },
            };
            let Some(message) = &node.message else {
                continue;
            };
            if message.is_expired(now) {
                found.expired.push(message.topic.clone());
            } else {
                found.live.push(Arc::clone(message));
                if found.live.len() >= limit {
                    break;
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use mqtt_codec::QoS;

    use super::*;

    fn message(topic: &str) -> Arc<Message> {
        Arc::new(Message::new(
            TopicName::new(topic).unwrap_or_else(|e| panic!("{topic}: {e}")),
            Bytes::from(topic.to_owned()),
            QoS::AtMostOnce,
            true,
            None,
        ))
    }

    fn index(topics: &[&str]) -> RetainedIndex {
        let mut index = RetainedIndex::new();
        for topic in topics {
            index.insert(message(topic));
        }
        index
    }

    /// The topics `filter` finds, sorted.
    fn found(index: &RetainedIndex, filter: &str) -> Vec<String> {
        let filter = TopicFilter::new(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let lookup = index.matching(&filter, Instant::now(), usize::MAX);
        assert!(lookup.expired.is_empty());
        let mut topics: Vec<String> = lookup.live.iter().map(|m| m.topic.to_string()).collect();
        topics.sort();
        topics
    }

    const TOPICS: &[&str] = &[
        "sport",
        "sport/tennis",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player2",
        "sport/golf",
        "/finance",
        "/",
        "a//b",
        "$SYS/uptime",
        "$SYS/broker/load",
        "other/$x",
    ];

    #[test]
    fn filters_match_as_the_specification_says() {
        let index = index(TOPICS);
        assert_eq!(index.len(), TOPICS.len());
        let expect = |filter: &str, topics: &[&str]| {
            let mut expected: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
            expected.sort();
            assert_eq!(found(&index, filter), expected, "{filter}");
        };
        expect("sport/tennis/player1", &["sport/tennis/player1"]);
        expect(
            "sport/tennis/player1/#",
            &["sport/tennis/player1", "sport/tennis/player1/ranking"],
        );
        expect(
            "sport/#",
            &[
                "sport",
                "sport/tennis",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player2",
                "sport/golf",
            ],
        );
        expect(
            "sport/tennis/+",
            &["sport/tennis/player1", "sport/tennis/player2"],
        );
        expect("sport/+", &["sport/tennis", "sport/golf"]);
        expect("+", &["sport"]);
        expect(
            "+/+",
            &["sport/tennis", "sport/golf", "/finance", "/", "other/$x"],
        );
        expect("/+", &["/finance", "/"]);
        expect(
            "+/tennis/#",
            &[
                "sport/tennis",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player2",
            ],
        );
        expect(
            "sport/tennis/player1/ranking/#",
            &["sport/tennis/player1/ranking"],
        );
        expect("nothing/#", &[]);
        expect("sport/tennis/player3", &[]);
        expect("sport/tennis/player1/ranking/+", &[]);
    }

    #[test]
    fn wildcards_at_the_first_level_do_not_match_dollar_topics() {
        let index = index(TOPICS);
        let all: Vec<String> = found(&index, "#");
        assert_eq!(all.len(), TOPICS.len() - 2, "{all:?}");
        assert!(all.iter().all(|t| !t.starts_with('$')));
        assert!(
            all.contains(&"other/$x".to_owned()),
            "a `$` below the first level is plain"
        );
        assert!(found(&index, "+/uptime").is_empty());
        assert!(found(&index, "+/+/load").is_empty());
        assert_eq!(
            found(&index, "$SYS/#"),
            vec!["$SYS/broker/load", "$SYS/uptime"]
        );
        assert_eq!(found(&index, "$SYS/+"), vec!["$SYS/uptime"]);
        assert_eq!(found(&index, "$SYS/uptime"), vec!["$SYS/uptime"]);
        assert_eq!(found(&index, "other/+"), vec!["other/$x"]);
    }

    #[test]
    fn empty_levels_are_levels() {
        let index = index(TOPICS);
        assert_eq!(found(&index, "/"), vec!["/"]);
        assert_eq!(found(&index, "+/"), vec!["/"]);
        assert_eq!(found(&index, "a/+/b"), vec!["a//b"]);
        assert_eq!(found(&index, "a//b"), vec!["a//b"]);
        assert_eq!(found(&index, "a/#"), vec!["a//b"]);
        assert!(found(&index, "a/b").is_empty());
        assert!(found(&index, "//").is_empty());
    }

    #[test]
    fn a_shared_filter_matches_as_its_inner_filter() {
        let index = index(TOPICS);
        assert_eq!(found(&index, "$share/g/sport/+"), found(&index, "sport/+"));
    }

    #[test]
    fn insert_replaces_and_remove_prunes() {
        let mut index = index(&["a/b/c", "a/b"]);
        let newer = message("a/b/c");
        let old = index.insert(Arc::clone(&newer));
        assert!(old.is_some_and(|m| !Arc::ptr_eq(&m, &newer)));
        assert_eq!(index.len(), 2);
        assert!(index.get("a/b/c").is_some_and(|m| Arc::ptr_eq(m, &newer)));
        assert!(index.remove("a/b/c").is_some());
        assert!(index.remove("a/b/c").is_none());
        assert!(index.remove("a").is_none(), "a level without a message");
        assert_eq!(index.len(), 1);
        assert_eq!(found(&index, "#"), vec!["a/b"]);
        assert_eq!(index.root.children.len(), 1);
        assert!(index.remove("a/b").is_some());
        assert!(index.is_empty());
        assert_eq!(index.root.children.len(), 0, "empty branches are pruned");
    }

    #[test]
    fn expired_messages_are_skipped_and_reported() {
        let now = Instant::now();
        let mut index = index(&["t/live"]);
        let mut old = Message::new(
            TopicName::new("t/old").unwrap_or_else(|_| unreachable!()),
            Bytes::from_static(b"x"),
            QoS::AtMostOnce,
            true,
            None,
        );
        old.expires_at = Some(now + Duration::from_secs(10));
        index.insert(Arc::new(old));
        let filter = TopicFilter::new("t/+").unwrap_or_else(|_| unreachable!());
        assert_eq!(index.matching(&filter, now, usize::MAX).live.len(), 2);
        let later = index.matching(&filter, now + Duration::from_secs(10), usize::MAX);
        assert_eq!(later.live.len(), 1);
        assert_eq!(later.live.first().map(|m| m.topic.as_str()), Some("t/live"));
        assert_eq!(
            later.expired.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ["t/old"]
        );
    }

    #[test]
    fn a_lookup_stops_at_its_limit() {
        let topics: Vec<String> = (0..100).map(|i| format!("many/{i}")).collect();
        let index = index(&topics.iter().map(String::as_str).collect::<Vec<_>>());
        let filter = TopicFilter::new("many/#").unwrap_or_else(|_| unreachable!());
        let now = Instant::now();
        assert_eq!(index.matching(&filter, now, 7).live.len(), 7);
        assert_eq!(index.matching(&filter, now, 0).live.len(), 0);
        assert_eq!(index.matching(&filter, now, 1000).live.len(), 100);
    }

    #[test]
    fn the_listing_is_in_topic_order_paged_and_without_expired_messages() {
        let now = Instant::now();
        let mut index = index(&["b", "a/c", "a-b", "a", "$SYS/x", "a/b", "a/b/z", "/x"]);
        let mut old = Message::new(
            TopicName::new("a/old").unwrap_or_else(|_| unreachable!()),
            Bytes::from_static(b"x"),
            QoS::AtMostOnce,
            true,
            None,
        );
        old.expires_at = Some(now);
        index.insert(Arc::new(old));
        let topics = |skip, limit| -> Vec<String> {
            index
                .in_order(now, skip, limit)
                .iter()
                .map(|m| m.topic.to_string())
                .collect()
        };
        let all = ["/x", "$SYS/x", "a", "a/b", "a/b/z", "a/c", "a-b", "b"];
        assert_eq!(topics(0, 100), all);
        assert_eq!(topics(2, 3), ["a", "a/b", "a/b/z"]);
        assert_eq!(topics(7, 3), ["b"]);
        assert!(topics(8, 3).is_empty());
        assert!(topics(0, 0).is_empty());
        assert_eq!(
            index.len(),
            all.len() + 1,
            "the expired one is still stored"
        );
    }

    #[test]
    fn deep_topics_are_walked_and_dropped_without_recursion() {
        // On a 256 KiB stack: anything that recursed per level would overflow it.
        let deep = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let topic = "/".repeat(65_534);
                let mut index = index(&[&topic, "x"]);
                let filter = TopicFilter::new(topic.as_str()).unwrap_or_else(|_| unreachable!());
                let now = Instant::now();
                let exact = index.matching(&filter, now, usize::MAX).live.len();
                let all = index
                    .matching(
                        &TopicFilter::new("#").unwrap_or_else(|_| unreachable!()),
                        now,
                        10,
                    )
                    .live
                    .len();
                let removed = index.remove(&topic).is_some();
                index.insert(message(&topic));
                (exact, all, removed, index.len())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(deep.join().ok(), Some((1, 2, true, 2)));
    }
}
