//! What the two topic trees (the subscription index, the retained messages) share: a node's
//! children keyed by topic level, kept compact, and the walks that must not recurse.
//!
//! A peer chooses how deep a topic or filter is (up to 65,535 levels), so nothing here
//! recurses once per level: descending is a loop, pruning walks the path twice with loops,
//! and dropping a branch moves its nodes onto a heap stack and drops them one at a time.
//! Most nodes of a tree, and every node of a deep chain, have one child or none: one child is
//! kept in a single box with its key, and only a node with several children has a map.

use std::collections::HashMap;

use crate::broker::shrink_if_sparse;

/// The children of a node, by topic level.
#[derive(Debug)]
pub(crate) struct Children<N>(Repr<N>);

#[derive(Debug)]
enum Repr<N> {
    /// No child, or one.
    Few(Option<Box<(Box<str>, N)>>),
    /// Two or more. Boxed: a map is 48 bytes inline, and every node would pay for it.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Box<str>, N>>),
}

impl<N> Default for Children<N> {
    fn default() -> Self {
        Self(Repr::Few(None))
    }
}

impl<N> Children<N> {
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Repr::Few(one) => usize::from(one.is_some()),
            Repr::Many(map) => map.len(),
        }
    }

    pub(crate) fn get(&self, level: &str) -> Option<&N> {
        match &self.0 {
            Repr::Few(one) => one
                .as_deref()
                .filter(|(k, _)| &**k == level)
                .map(|(_, n)| n),
            Repr::Many(map) => map.get(level),
        }
    }

    pub(crate) fn get_mut(&mut self, level: &str) -> Option<&mut N> {
        match &mut self.0 {
            Repr::Few(one) => one
                .as_deref_mut()
                .filter(|(k, _)| &**k == level)
                .map(|(_, n)| n),
            Repr::Many(map) => map.get_mut(level),
        }
    }

    /// The child at `level`, created empty if there is none.
    pub(crate) fn get_or_insert(&mut self, level: &str) -> &mut N
    where
        N: Default,
    {
        if matches!(&self.0, Repr::Few(Some(one)) if &*one.0 != level)
            && let Repr::Few(Some(one)) = std::mem::take(&mut self.0)
        {
            let (key, node) = *one;
            let mut map = HashMap::with_capacity(2);
            map.insert(key, node);
            self.0 = Repr::Many(Box::new(map));
        }
        match &mut self.0 {
            Repr::Few(one) => {
                &mut one
                    .get_or_insert_with(|| Box::new((level.into(), N::default())))
                    .1
            }
            Repr::Many(map) => map.entry(level.into()).or_default(),
        }
    }

    /// Removes the child at `level`. A map left with one child becomes a single box again,
    /// and a sparse map gives back its memory.
    pub(crate) fn remove(&mut self, level: &str) -> Option<N> {
        match &mut self.0 {
            Repr::Few(one) => {
                if one.as_ref().is_some_and(|o| &*o.0 == level) {
                    one.take().map(|o| o.1)
                } else {
                    None
                }
            }
            Repr::Many(map) => {
                let removed = map.remove(level);
                if map.len() <= 1 {
                    let last = std::mem::take(&mut **map).into_iter().next();
                    self.0 = Repr::Few(last.map(Box::new));
                } else {
                    shrink_if_sparse(map);
                }
                removed
            }
        }
    }

    /// Every child, with its level.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &N)> {
        let (one, many) = match &self.0 {
            Repr::Few(one) => (one.as_deref(), None),
            Repr::Many(map) => (None, Some(map.iter())),
        };
        one.map(|(k, n)| (&**k, n))
            .into_iter()
            .chain(many.into_iter().flatten().map(|(k, n)| (&**k, n)))
    }

    /// Moves every child into `out`, leaving none.
    pub(crate) fn take_into(&mut self, out: &mut Vec<N>) {
        match std::mem::take(&mut self.0) {
            Repr::Few(one) => out.extend(one.map(|o| o.1)),
            Repr::Many(map) => out.extend(map.into_values()),
        }
    }
}

impl<N> Default for Repr<N> {
    fn default() -> Self {
        Self::Few(None)
    }
}

/// A node of a topic tree, as the shared walks see it.
pub(crate) trait TreeNode: Sized {
    /// The child that `level` of a path leads to.
    fn child(&self, level: &str) -> Option<&Self>;
    fn child_mut(&mut self, level: &str) -> Option<&mut Self>;
    fn remove_child(&mut self, level: &str) -> Option<Self>;
    /// How many children it has, of every kind.
    fn branches(&self) -> usize;
    /// Whether it holds something of its own (subscribers, a message).
    fn holds_anything(&self) -> bool;
    /// Moves its children into `out`, leaving it none.
    fn take_branches(&mut self, out: &mut Vec<Self>);
}

/// The node `path` leads to from `node`, if the tree has it.
pub(crate) fn descend_mut<'a, N: TreeNode>(
    mut node: &'a mut N,
    path: &[&str],
) -> Option<&'a mut N> {
    for level in path {
        node = node.child_mut(level)?;
    }
    Some(node)
}

/// After something was removed at the end of `path`: removes the branch of nodes along
/// `path` that now hold nothing and lead nowhere else. `root` itself always stays.
pub(crate) fn prune<N: TreeNode>(root: &mut N, path: &[&str]) {
    // The deepest node on the path that stays; everything below it along the path goes if
    // the last node is empty.
    let mut keep = 0;
    let mut node = &*root;
    for (depth, level) in path.iter().enumerate() {
        if node.holds_anything() || node.branches() > 1 {
            keep = depth;
        }
        match node.child(level) {
            Some(child) => node = child,
            None => return,
        }
    }
    if node.holds_anything() || node.branches() > 0 {
        return;
    }
    let (Some(above), Some(level)) = (path.get(..keep), path.get(keep)) else {
        return;
    };
    if let Some(parent) = descend_mut(root, above) {
        parent.remove_child(level);
    }
}

/// Drops `node`'s descendants one at a time from a heap stack (call from `Drop`): each is
/// emptied of its own children before it is dropped, so no drop recurses.
pub(crate) fn dismantle<N: TreeNode>(node: &mut N) {
    let mut stack = Vec::new();
    node.take_branches(&mut stack);
    while let Some(mut next) = stack.pop() {
        next.take_branches(&mut stack);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_go_from_one_box_to_a_map_and_back() {
        let mut c: Children<u32> = Children::default();
        assert!(c.len() == 0 && c.get("a").is_none());
        *c.get_or_insert("a") = 1;
        *c.get_or_insert("a") += 1;
        assert!(matches!(c.0, Repr::Few(Some(_))));
        *c.get_or_insert("b") = 3;
        assert!(matches!(c.0, Repr::Many(_)));
        assert_eq!((c.len(), c.get("a"), c.get("b")), (2, Some(&2), Some(&3)));
        assert_eq!(c.remove("x"), None);
        assert_eq!(c.remove("a"), Some(2));
        assert!(
            matches!(c.0, Repr::Few(Some(_))),
            "one child: a single box again"
        );
        let mut pairs: Vec<_> = c.iter().map(|(k, v)| (k.to_owned(), *v)).collect();
        pairs.sort();
        assert_eq!(pairs, vec![("b".to_owned(), 3)]);
        if let Some(b) = c.get_mut("b") {
            *b = 4;
        }
        let mut out = Vec::new();
        c.take_into(&mut out);
        assert_eq!(out, vec![4]);
        assert_eq!(c.len(), 0);
    }
}
