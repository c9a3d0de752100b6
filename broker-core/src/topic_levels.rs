//! A topic's levels, as routing walks the subscription index with them: split at every
//! `/` on each PUBLISH, so without an allocation for the usual short topics.

/// The first level of a topic or filter (the index's shard key).
pub(crate) fn first_level(s: &str) -> &str {
    s.split_once('/').map_or(s, |(first, _)| first)
}

/// Levels a topic usually has at most: held on the stack.
const INLINE_LEVELS: usize = 16;

/// Calls `f` with the levels of `topic`. Every PUBLISH is split: a byte loop into a stack
/// array costs a fraction of `str::split` collected into a `Vec` (several hundred
/// instructions a message under callgrind); deeper topics go to a `Vec`.
pub(crate) fn with_levels<R>(topic: &str, f: impl FnOnce(&[&str]) -> R) -> R {
    let mut inline = [""; INLINE_LEVELS];
    let mut deep = Vec::new();
    let mut n = 0;
    let mut start = 0;
    let mut push = |level| {
        if let Some(slot) = inline.get_mut(n) {
            *slot = level;
        } else {
            if deep.is_empty() {
                deep.extend_from_slice(&inline);
            }
            deep.push(level);
        }
        n += 1;
    };
    for (i, byte) in topic.bytes().enumerate() {
        if byte == b'/' {
            // '/' is ASCII: both ends are character boundaries.
            push(topic.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    push(topic.get(start..).unwrap_or_default());
    if n <= INLINE_LEVELS {
        f(inline.get(..n).unwrap_or_default())
    } else {
        f(&deep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_the_topic_split_at_every_slash_however_deep() {
        for topic in ["a", "/", "a/b/c", "//x//", "é/ü/ß", "$SYS/broker"] {
            let expected: Vec<&str> = topic.split('/').collect();
            with_levels(topic, |levels| assert_eq!(levels, expected.as_slice()));
        }
        for depth in [INLINE_LEVELS - 1, INLINE_LEVELS, INLINE_LEVELS + 1, 1000] {
            let topic = (0..depth)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("/");
            let expected: Vec<&str> = topic.split('/').collect();
            with_levels(&topic, |levels| assert_eq!(levels, expected.as_slice()));
        }
        assert_eq!(first_level("a/b"), "a");
        assert_eq!(first_level("ab"), "ab");
        assert_eq!(first_level("/b"), "");
    }
}
