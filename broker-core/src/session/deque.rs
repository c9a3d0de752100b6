//! A double-ended queue that costs a session one pointer while it is empty: the session's
//! queue and in-flight window are empty in most sessions most of the time (an idle fleet's
//! every session), and two `VecDeque`s took 64 bytes in each, with their buffers kept after
//! the last message had gone.
//!
//! Reads go to the `VecDeque` (an empty one while there is none); the changes that can find
//! it empty (taking, removing, retaining) do not allocate it. [`LazyDeque::release_if_empty`]
//! gives the room back when the session goes quiet: letting it go at each drain would cost
//! a busy subscriber, whose queue empties after every message, two allocations a message.

use std::collections::VecDeque;
use std::collections::vec_deque::IterMut;
use std::ops::Deref;

/// A `VecDeque` allocated on first push.
// Boxed on purpose: the box is the pointer an empty one costs, where a `VecDeque` is 32
// bytes with or without its buffer.
#[allow(clippy::box_collection)]
pub(crate) struct LazyDeque<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for LazyDeque<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: std::fmt::Debug + 'static> std::fmt::Debug for LazyDeque<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: 'static> LazyDeque<T> {
    const EMPTY: &'static VecDeque<T> = &VecDeque::new();
}

impl<T: 'static> Deref for LazyDeque<T> {
    type Target = VecDeque<T>;

    fn deref(&self) -> &VecDeque<T> {
        self.0.as_deref().unwrap_or(Self::EMPTY)
    }
}

impl<T> LazyDeque<T> {
    fn get_or_alloc(&mut self) -> &mut VecDeque<T> {
        self.0.get_or_insert_default()
    }

    pub(crate) fn push_back(&mut self, value: T) {
        self.get_or_alloc().push_back(value);
    }

    pub(crate) fn push_front(&mut self, value: T) {
        self.get_or_alloc().push_front(value);
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        self.0.as_mut()?.pop_front()
    }

    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.0.as_mut()?.get_mut(index)
    }

    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        self.0.as_mut()?.remove(index)
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        if let Some(deque) = &mut self.0 {
            deque.retain(keep);
        }
    }

    pub(crate) fn shrink_to(&mut self, capacity: usize) {
        if let Some(deque) = &mut self.0 {
            deque.shrink_to(capacity);
        }
    }

    pub(crate) fn iter_mut(&mut self) -> std::iter::Flatten<std::option::IntoIter<IterMut<'_, T>>> {
        self.0
            .as_mut()
            .map(|deque| deque.iter_mut())
            .into_iter()
            .flatten()
    }

    /// Lets the buffer go if nothing is in it.
    pub(crate) fn release_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|deque| deque.is_empty()) {
            self.0 = None;
        }
    }

    /// Whether it holds a buffer (for the tests of when it is let go).
    #[cfg(test)]
    pub(crate) fn is_allocated(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_allocates_on_push_only_and_lets_go_when_empty() {
        let mut deque = LazyDeque::<u32>::default();
        assert_eq!(size_of::<LazyDeque<u32>>(), size_of::<usize>());
        assert_eq!(deque.pop_front(), None);
        assert_eq!(deque.get_mut(0), None);
        assert_eq!(deque.remove(0), None);
        deque.retain(|_| true);
        deque.shrink_to(0);
        assert_eq!(deque.iter_mut().count(), 0);
        assert!(deque.is_empty());
        assert!(!deque.is_allocated());

        deque.push_back(2);
        deque.push_front(1);
        deque.push_back(3);
        for v in deque.iter_mut() {
            *v *= 10;
        }
        deque.retain(|v| *v != 20);
        assert_eq!(deque.iter().copied().collect::<Vec<_>>(), [10, 30]);
        deque.release_if_empty();
        assert!(deque.is_allocated());
        assert_eq!(deque.remove(1), Some(30));
        assert_eq!(deque.pop_front(), Some(10));
        deque.release_if_empty();
        assert!(!deque.is_allocated());
        assert_eq!(format!("{deque:?}"), "[]");
    }
}
