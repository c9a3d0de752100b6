//! The compiled form of a set of rules: a trie of their topic filters, with each rule's
//! index at the node its filter ends on, walked once per check.
//!
//! A check looks for the smallest rule index that matches (first match wins), so a walk
//! keeps the best index found so far and skips every node whose subtree holds no smaller
//! one; the entries at a node are sorted by index and scanned only up to the best. A
//! PUBLISH check follows the topic's levels: the literal child, the `+` child, the
//! placeholder children whose value is that level, and the `#` entries on the way.
//!
//! Walks are loops over a small stack (`stack`), never recursion: a topic's depth is the
//! peer's to choose.

use std::collections::HashMap;

use super::placeholder::{Bound, Placeholder};
use super::rule::{Level, TopicSpec};
use super::stack::Stack;
use crate::topic_tree::Children;

/// Actions as bits, so a rule for several is one entry.
pub(crate) const PUBLISH: u8 = 1;
pub(crate) const SUBSCRIBE: u8 = 2;
pub(crate) const READ: u8 = 4;

/// One rule's place at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The rule's index: smaller wins.
    pub(crate) rule: u32,
    pub(crate) allow: bool,
    /// The actions it is about (`PUBLISH | SUBSCRIBE | READ`).
    pub(crate) actions: u8,
}

/// The rules of one group of clients (one user name, one client id, or every client),
/// compiled.
#[derive(Debug, Default)]
pub(crate) struct Group {
    trie: Node,
    /// Literal (`eq`) topics without placeholders, by their string.
    literals: HashMap<Box<str>, Vec<Entry>>,
    /// Literal topics with placeholders, compared level by level at each check (rare).
    templates: Vec<(Box<[Level]>, Entry)>,
    /// Rules that match every topic (a deny rule without topics).
    any: Vec<Entry>,
}

#[derive(Debug)]
struct Node {
    literal: Children<Node>,
    plus: Option<Box<Node>>,
    username: Option<Box<Node>>,
    client_id: Option<Box<Node>>,
    /// Rules whose filter ends at this node.
    end: Vec<Entry>,
    /// Rules whose filter ends with a `#` right below this node.
    hash: Vec<Entry>,
    /// The smallest rule index anywhere at or below this node.
    min: u32,
}

impl Default for Node {
    fn default() -> Self {
        Self {
            literal: Children::default(),
            plus: None,
            username: None,
            client_id: None,
            end: Vec::new(),
            hash: Vec::new(),
            min: u32::MAX,
        }
    }
}

impl Drop for Node {
    /// Without recursion: a rule's filter may have thousands of levels.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        self.take_children(&mut stack);
        while let Some(mut node) = stack.pop() {
            node.take_children(&mut stack);
        }
    }
}

impl Node {
    fn take_children(&mut self, out: &mut Vec<Node>) {
        self.literal.take_into(out);
        for child in [&mut self.plus, &mut self.username, &mut self.client_id] {
            out.extend(child.take().map(|b| *b));
        }
    }

    fn placeholders(&self) -> [(Placeholder, Option<&Node>); 2] {
        [
            (Placeholder::Username, self.username.as_deref()),
            (Placeholder::ClientId, self.client_id.as_deref()),
        ]
    }

    /// Gives `visit` each child whose edge matches the literal level `level` (at the first
    /// level when `first`): the literal child, then (unless a first-level `$` topic, which
    /// wildcards never match) `+` and the placeholders bound to that very value.
    fn children_matching<'a>(
        &'a self,
        level: &str,
        first: bool,
        bound: &Bound<'_>,
        mut visit: impl FnMut(&'a Node),
    ) {
        if let Some(child) = self.literal.get(level) {
            visit(child);
        }
        if first && level.starts_with('$') {
            return;
        }
        if let Some(child) = &self.plus {
            visit(child);
        }
        for (placeholder, child) in self.placeholders() {
            if let Some(child) = child
                && bound.value(placeholder, first) == Some(level)
            {
                visit(child);
            }
        }
    }
}

/// Adds `entry` to `list`, which is kept sorted (rules are added in index order; a rule
/// with several topics ending at the same node is there once).
fn push_entry(list: &mut Vec<Entry>, entry: Entry) {
    if list.last().is_none_or(|last| last.rule < entry.rule) {
        list.push(entry);
    }
}

/// Lowers `best` to the first entry of `list` below it that is about an action in `mask`,
/// is for this client (`applies`), and is a deny rule if `deny_only`.
fn scan(list: &[Entry], mask: u8, deny_only: bool, applies: &impl Fn(u32) -> bool, best: &mut u32) {
    for e in list {
        if e.rule >= *best {
            return;
        }
        if e.actions & mask != 0 && (!deny_only || !e.allow) && applies(e.rule) {
            *best = e.rule;
            return;
        }
    }
}

/// The level of `s` starting at byte `pos`, and where the next one starts (`None` after
/// the last).
fn level_at(s: &str, pos: usize) -> (&str, Option<usize>) {
    let rest = s.get(pos..).unwrap_or_default();
    match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or_default(), Some(pos + i + 1)),
        None => (rest, None),
    }
}

/// Whether `s` is the literal `template` with the client's placeholders filled in.
pub(crate) fn template_equals(template: &[Level], bound: &Bound<'_>, s: &str) -> bool {
    let mut parts = s.split('/');
    for (depth, level) in template.iter().enumerate() {
        let Some(part) = parts.next() else {
            return false;
        };
        let same = match level {
            Level::Literal(l) => **l == *part,
            Level::Plus => part == "+",
            Level::Hash => part == "#",
            Level::Placeholder(p) => bound.value(*p, depth == 0) == Some(part),
        };
        if !same {
            return false;
        }
    }
    parts.next().is_none()
}

impl Group {
    /// Adds a rule's topic.
    pub(crate) fn insert(&mut self, spec: &TopicSpec, entry: Entry) {
        if spec.is_literal() {
            if spec.has_placeholder() {
                self.templates.push((spec.levels().into(), entry));
            } else {
                push_entry(
                    self.literals.entry(spec.as_str().into()).or_default(),
                    entry,
                );
            }
            return;
        }
        let levels = spec.levels();
        let (ends_with_hash, path) = match levels.split_last() {
            Some((Level::Hash, path)) => (true, path),
            _ => (false, levels),
        };
        let mut node = &mut self.trie;
        node.min = node.min.min(entry.rule);
        for level in path {
            node = match level {
                Level::Literal(l) => node.literal.get_or_insert(l),
                Level::Plus => node.plus.get_or_insert_default(),
                Level::Placeholder(Placeholder::Username) => node.username.get_or_insert_default(),
                Level::Placeholder(Placeholder::ClientId) => node.client_id.get_or_insert_default(),
                // A valid filter has `#` only last, which `split_last` took off.
                Level::Hash => return,
            };
            node.min = node.min.min(entry.rule);
        }
        push_entry(
            if ends_with_hash {
                &mut node.hash
            } else {
                &mut node.end
            },
            entry,
        );
    }

    /// Adds a rule that matches every topic.
    pub(crate) fn insert_any(&mut self, entry: Entry) {
        push_entry(&mut self.any, entry);
    }

    /// Lowers `best` to the smallest index of a rule in this group that matches the topic
    /// name `topic` (PUBLISH, or a message delivered).
    pub(crate) fn best_for_topic(
        &self,
        topic: &str,
        mask: u8,
        bound: &Bound<'_>,
        applies: &impl Fn(u32) -> bool,
        best: &mut u32,
    ) {
        self.best_literal(topic, mask, bound, applies, best);
        let mut stack = Stack::new(Frame {
            node: &self.trie,
            pos: Some(0),
            cover: true,
        });
        while let Some(Frame { node, pos, .. }) = stack.pop() {
            if node.min >= *best {
                continue;
            }
            let Some(pos) = pos else {
                // The topic ends here: filters that end here, and `here/#`.
                scan(&node.end, mask, false, applies, best);
                scan(&node.hash, mask, false, applies, best);
                continue;
            };
            let (level, next) = level_at(topic, pos);
            let first = pos == 0;
            // Wildcards at the first level do not match `$` topics.
            let dollar = first && level.starts_with('$');
            if !dollar {
                scan(&node.hash, mask, false, applies, best);
            }
            node.children_matching(level, first, bound, |node| {
                stack.push(Frame {
                    node,
                    pos: next,
                    cover: true,
                });
            });
        }
    }

    /// Lowers `best` to the smallest index of a rule in this group that decides a
    /// subscription to `filter`: an allow rule whose filter covers it (matches every topic
    /// it matches), or a deny rule whose filter overlaps it (matches a topic it matches).
    pub(crate) fn best_for_filter(
        &self,
        filter: &str,
        mask: u8,
        bound: &Bound<'_>,
        applies: &impl Fn(u32) -> bool,
        best: &mut u32,
    ) {
        self.best_literal(filter, mask, bound, applies, best);
        // `cover`: every rule filter along this path so far covers the requested filter's
        // levels so far; off it, only deny rules count.
        let mut stack = Stack::new(Frame {
            node: &self.trie,
            pos: Some(0),
            cover: true,
        });
        while let Some(Frame { node, pos, cover }) = stack.pop() {
            if node.min >= *best {
                continue;
            }
            let Some(pos) = pos else {
                // `a/b` is covered by `a/b` and by `a/b/#` (which matches `a/b`).
                scan(&node.end, mask, !cover, applies, best);
                scan(&node.hash, mask, !cover, applies, best);
                continue;
            };
            let (level, next) = level_at(filter, pos);
            let first = pos == 0;
            match level {
                "#" => {
                    // Only a `#` covers a `#`; everything below here overlaps it.
                    scan(&node.hash, mask, !cover, applies, best);
                    self.overlap_subtree(node, first, mask, bound, applies, best);
                }
                "+" => {
                    scan(&node.hash, mask, !cover, applies, best);
                    if let Some(child) = &node.plus {
                        stack.push(Frame {
                            node: child,
                            pos: next,
                            cover,
                        });
                    }
                    // A literal level, the client's name included, is one of the topics a
                    // `+` matches: it overlaps, never covers.
                    for (name, child) in node.literal.iter() {
                        if !(first && name.starts_with('$')) {
                            stack.push(Frame {
                                node: child,
                                pos: next,
                                cover: false,
                            });
                        }
                    }
                    for (placeholder, child) in node.placeholders() {
                        if let Some(child) = child
                            && bound.value(placeholder, first).is_some()
                        {
                            stack.push(Frame {
                                node: child,
                                pos: next,
                                cover: false,
                            });
                        }
                    }
                }
                literal => {
                    let dollar = first && literal.starts_with('$');
                    if !dollar {
                        scan(&node.hash, mask, !cover, applies, best);
                    }
                    node.children_matching(literal, first, bound, |node| {
                        stack.push(Frame {
                            node,
                            pos: next,
                            cover,
                        });
                    });
                }
            }
        }
    }

    /// For a requested filter ending in `#` at `node`: every deny rule at or below `node`
    /// overlaps it (but `$` branches at the first level, which `#` does not match).
    fn overlap_subtree<'a>(
        &self,
        node: &'a Node,
        first: bool,
        mask: u8,
        bound: &Bound<'_>,
        applies: &impl Fn(u32) -> bool,
        best: &mut u32,
    ) {
        // Nodes, and whether their children are at the first level.
        let mut stack = Stack::new((node, first));
        while let Some((node, first)) = stack.pop() {
            if node.min >= *best {
                continue;
            }
            scan(&node.end, mask, true, applies, best);
            scan(&node.hash, mask, true, applies, best);
            let mut push = |node: &'a Node| stack.push((node, false));
            for (name, child) in node.literal.iter() {
                if !(first && name.starts_with('$')) {
                    push(child);
                }
            }
            if let Some(child) = &node.plus {
                push(child);
            }
            for (placeholder, child) in node.placeholders() {
                if let Some(child) = child
                    && bound.value(placeholder, first).is_some()
                {
                    push(child);
                }
            }
        }
    }

    /// Literal (`eq`) topics and rules for every topic: `s` is the topic or the filter.
    fn best_literal(
        &self,
        s: &str,
        mask: u8,
        bound: &Bound<'_>,
        applies: &impl Fn(u32) -> bool,
        best: &mut u32,
    ) {
        scan(&self.any, mask, false, applies, best);
        if let Some(list) = self.literals.get(s) {
            scan(list, mask, false, applies, best);
        }
        for (template, entry) in &self.templates {
            if entry.rule < *best && template_equals(template, bound, s) {
                scan(std::slice::from_ref(entry), mask, false, applies, best);
            }
        }
    }
}

/// A pending branch of a walk.
#[derive(Clone, Copy)]
struct Frame<'a> {
    node: &'a Node,
    /// Where the next level of the topic or filter starts; `None` past its end.
    pos: Option<usize>,
    /// In a subscription's walk: whether every rule filter along the path covers the
    /// requested filter's levels so far.
    cover: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn group(filters: &[(&str, bool)]) -> Group {
        let mut g = Group::default();
        for (i, (f, allow)) in filters.iter().enumerate() {
            let entry = Entry {
                rule: u32::try_from(i).unwrap(),
                allow: *allow,
                actions: PUBLISH | SUBSCRIBE | READ,
            };
            g.insert(&TopicSpec::parse(f).unwrap(), entry);
        }
        g
    }

    fn topic(g: &Group, t: &str) -> Option<u32> {
        let mut best = u32::MAX;
        g.best_for_topic(
            t,
            PUBLISH,
            &Bound::new(Some("u"), "c"),
            &|_| true,
            &mut best,
        );
        (best != u32::MAX).then_some(best)
    }

    fn filter(g: &Group, f: &str) -> Option<u32> {
        let mut best = u32::MAX;
        g.best_for_filter(
            f,
            SUBSCRIBE,
            &Bound::new(Some("u"), "c"),
            &|_| true,
            &mut best,
        );
        (best != u32::MAX).then_some(best)
    }

    #[test]
    fn smallest_matching_index_wins() {
        let g = group(&[("a/b", true), ("a/+", true), ("#", true), ("a/#", true)]);
        assert_eq!(topic(&g, "a/b"), Some(0));
        assert_eq!(topic(&g, "a/c"), Some(1));
        assert_eq!(topic(&g, "a"), Some(2));
        assert_eq!(topic(&g, "$SYS/x"), None);
        assert_eq!(topic(&g, "b/c/d"), Some(2));
    }

    #[test]
    fn placeholders_match_only_their_value() {
        let g = group(&[("d/${username}/#", true), ("${clientid}/x", true)]);
        assert_eq!(topic(&g, "d/u/t"), Some(0));
        assert_eq!(topic(&g, "d/u"), Some(0));
        assert_eq!(topic(&g, "d/v/t"), None);
        assert_eq!(topic(&g, "c/x"), Some(1));
        assert_eq!(filter(&g, "d/u/#"), Some(0));
        // `d/+/#` is not covered (other users' subtrees), and overlaps only allow rules.
        assert_eq!(filter(&g, "d/+/#"), None);
    }

    #[test]
    fn cover_and_overlap() {
        let g = group(&[("s/#", true)]);
        assert_eq!(filter(&g, "s/#"), Some(0));
        assert_eq!(filter(&g, "s/+/t"), Some(0));
        assert_eq!(filter(&g, "s"), Some(0));
        assert_eq!(filter(&g, "#"), None);
        assert_eq!(filter(&g, "+/t"), None);
        let g = group(&[("s/secret", false), ("#", true)]);
        assert_eq!(filter(&g, "s/+"), Some(0));
        assert_eq!(filter(&g, "#"), Some(0));
        assert_eq!(filter(&g, "s/open"), Some(1));
        assert_eq!(filter(&g, "$SYS/#"), None);
    }

    #[test]
    fn a_deep_trie_drops_without_recursion() {
        let deep = vec!["a"; 30_000].join("/");
        let g = group(&[(&deep, true)]);
        assert_eq!(topic(&g, &deep), Some(0));
        drop(g);
    }
}
