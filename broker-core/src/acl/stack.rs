//! The stack of the trie walks: a few entries inline, so a check does not allocate unless
//! its walk has many pending branches (levels where a `+` and a literal both continue),
//! and the rest on the heap. The walks are loops over it, never recursion.

/// A LIFO stack of `T`.
pub(crate) struct Stack<T: Copy> {
    inline: [Option<T>; INLINE],
    len: usize,
    spill: Vec<T>,
}

const INLINE: usize = 16;

impl<T: Copy> Stack<T> {
    /// A stack holding `first`.
    pub(crate) fn new(first: T) -> Self {
        let mut stack = Self {
            inline: [None; INLINE],
            len: 0,
            spill: Vec::new(),
        };
        stack.push(first);
        stack
    }

    pub(crate) fn push(&mut self, item: T) {
        // Items in `spill` are always newer than the inline ones.
        match self.inline.get_mut(self.len) {
            Some(slot) if self.spill.is_empty() => {
                *slot = Some(item);
                self.len += 1;
            }
            _ => self.spill.push(item),
        }
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        self.len = self.len.checked_sub(1)?;
        self.inline.get_mut(self.len).and_then(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_to_the_heap_and_keeps_the_order() {
        let mut stack = Stack::new(0);
        for i in 1..40 {
            stack.push(i);
        }
        for i in (30..40).rev() {
            assert_eq!(stack.pop(), Some(i));
        }
        // Pushed while the inline part is full: after it, still last in, first out.
        stack.push(100);
        stack.push(101);
        assert_eq!(stack.pop(), Some(101));
        assert_eq!(stack.pop(), Some(100));
        for i in (0..30).rev() {
            assert_eq!(stack.pop(), Some(i));
        }
        assert_eq!(stack.pop(), None);
        stack.push(7);
        assert_eq!(stack.pop(), Some(7));
        assert_eq!(stack.pop(), None);
    }
}
