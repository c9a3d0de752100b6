//! The placeholders of rule topics (`${username}`/`%u`, `${clientid}`/`%c`) and when a
//! client's value may stand in for one.
//!
//! A placeholder is always a whole level and is replaced by exactly one literal level. A
//! value that could be read as more than that never stands in: empty, or containing `+`,
//! `#` (wildcards), `/` (more levels) or U+0000. Nor does a value starting with `$` at the
//! first level, which would make a rule grant a `$` topic (`$SYS`) no one named. A rule
//! whose placeholder has no usable value does not apply (for a literal level that can
//! match no topic, this is the same as applying it literally), so a client's name can
//! never widen a pattern into a wildcard or another client's subtree.

/// Which of the client's names a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Placeholder {
    /// `${username}`, Mosquitto's `%u`.
    Username,
    /// `${clientid}`, Mosquitto's `%c`.
    ClientId,
}

/// The values a client's placeholders take: only the safe ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bound<'a> {
    pub(crate) username: Option<&'a str>,
    pub(crate) client_id: Option<&'a str>,
}

impl<'a> Bound<'a> {
    /// The safe values among `username` and `client_id`.
    pub(crate) fn new(username: Option<&'a str>, client_id: &'a str) -> Self {
        Self {
            username: username.filter(|v| is_safe(v)),
            client_id: Some(client_id).filter(|v| is_safe(v)),
        }
    }

    /// The level `placeholder` becomes (at the first level of a topic if `first`), if it may.
    pub(crate) fn value(&self, placeholder: Placeholder, first: bool) -> Option<&'a str> {
        let value = match placeholder {
            Placeholder::Username => self.username,
            Placeholder::ClientId => self.client_id,
        }?;
        (!first || !value.starts_with('$')).then_some(value)
    }
}

/// Whether `value` may stand in for a placeholder (at a level past the first).
pub(crate) fn is_safe(value: &str) -> bool {
    !value.is_empty() && !value.contains(['+', '#', '/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_values_never_stand_in() {
        for bad in ["", "+", "#", "a/b", "/", "x+", "#y", "a\0"] {
            let bound = Bound::new(Some(bad), bad);
            assert_eq!(bound.value(Placeholder::Username, false), None, "{bad:?}");
            assert_eq!(bound.value(Placeholder::ClientId, false), None, "{bad:?}");
        }
        let bound = Bound::new(Some("$SYS"), "$x");
        assert_eq!(bound.value(Placeholder::Username, true), None);
        assert_eq!(bound.value(Placeholder::Username, false), Some("$SYS"));
        assert_eq!(bound.value(Placeholder::ClientId, true), None);
        let bound = Bound::new(None, "dev-1");
        assert_eq!(bound.value(Placeholder::Username, true), None);
        assert_eq!(bound.value(Placeholder::ClientId, true), Some("dev-1"));
    }
}
