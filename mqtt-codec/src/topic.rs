//! Topic names, topic filters and client identifiers: validated strings that borrow the frame.
//!
//! Each is a newtype over [`ByteString`], so a decoded topic is a slice of the packet's bytes
//! (no copy), and a filter cannot be passed where a topic name is expected.

use core::fmt;
use core::ops::Deref;

use bytes::Bytes;
use bytestring::ByteString;

use crate::DecodeError;

/// The longest string MQTT can encode: its length prefix is two bytes.
pub const MAX_STRING_LEN: usize = u16::MAX as usize;

/// The prefix of a shared subscription's filter (MQTT 5, and accepted in 3.1.1 by most brokers).
pub const SHARED_PREFIX: &str = "$share/";

/// Why a string is not a valid topic name, topic filter or MQTT string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTopic {
    /// The string is empty.
    Empty,
    /// The string is longer than 65,535 bytes.
    TooLong,
    /// The string contains U+0000, which MQTT strings must not.
    NullCharacter,
    /// A topic name contains `+` or `#`.
    WildcardInName,
    /// A `#` that is not alone in the last level, or a `+` that is not alone in its level.
    MisplacedWildcard,
    /// `$share/` not followed by a non-empty group without wildcards, a `/` and a filter.
    InvalidSharedSubscription,
}

impl fmt::Display for InvalidTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty topic",
            Self::TooLong => "string longer than 65535 bytes",
            Self::NullCharacter => "string contains U+0000",
            Self::WildcardInName => "topic name contains a wildcard",
            Self::MisplacedWildcard => "wildcard not alone in its topic level, or # not last",
            Self::InvalidSharedSubscription => "shared subscription is not $share/{group}/{filter}",
        })
    }
}

impl std::error::Error for InvalidTopic {}

/// Checks the rules every MQTT string follows beyond UTF-8 (which `ByteString` guarantees).
pub(crate) fn check_mqtt_string(s: &str) -> Result<(), InvalidTopic> {
    if s.len() > MAX_STRING_LEN {
        return Err(InvalidTopic::TooLong);
    }
    if memchr::memchr(0, s.as_bytes()).is_some() {
        return Err(InvalidTopic::NullCharacter);
    }
    Ok(())
}

/// Checks an MQTT string and wraps it.
pub(crate) fn mqtt_string(s: ByteString) -> Result<ByteString, InvalidTopic> {
    check_mqtt_string(&s)?;
    Ok(s)
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(ByteString);

        impl $name {
            /// The string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The underlying shared string.
            pub fn as_byte_string(&self) -> &ByteString {
                &self.0
            }

            /// The underlying shared string, unwrapped.
            pub fn into_inner(self) -> ByteString {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidTopic;
            fn try_from(s: &str) -> Result<Self, InvalidTopic> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidTopic;
            fn try_from(s: String) -> Result<Self, InvalidTopic> {
                Self::new(s)
            }
        }
    };
}

string_newtype! {
    /// A topic name, as a PUBLISH carries it: no wildcards, no U+0000, at most 65,535 bytes.
    ///
    /// ```
    /// use mqtt_codec::TopicName;
    /// assert!(TopicName::new("sensors/kitchen/temp").is_ok());
    /// assert!(TopicName::new("sensors/+/temp").is_err());
    /// ```
    TopicName
}

string_newtype! {
    /// A topic filter, as SUBSCRIBE and UNSUBSCRIBE carry it, shared subscriptions included.
    ///
    /// ```
    /// use mqtt_codec::{TopicFilter, TopicName};
    /// let filter = TopicFilter::new("sensors/+/temp").unwrap();
    /// assert!(filter.matches(&TopicName::new("sensors/kitchen/temp").unwrap()));
    /// assert!(TopicFilter::new("sensors/#/temp").is_err());
    /// ```
    TopicFilter
}

string_newtype! {
    /// A client identifier. It may be empty in CONNECT, asking the server to assign one.
    ClientId
}

impl TopicName {
    /// Validates `name` as a topic name. An empty name is refused: only a PUBLISH that carries
    /// a topic alias may have one, see [`TopicName::empty`].
    pub fn new(name: impl Into<ByteString>) -> Result<Self, InvalidTopic> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidTopic::Empty);
        }
        check_topic_name(&name)?;
        Ok(Self(name))
    }

    /// The empty topic name of an MQTT 5 PUBLISH that names its topic by alias only.
    pub const fn empty() -> Self {
        Self(ByteString::from_static(""))
    }

    /// The topic name of a decoded PUBLISH, from the bytes [`check_decoded_topic_name`]
    /// accepted (UTF-8 is checked again: without `unsafe`, a `str` cannot skip it).
    pub(crate) fn from_decoded(bytes: Bytes) -> Self {
        ByteString::try_from(bytes).map_or_else(|_| Self::empty(), Self)
    }

    /// Whether this is a `$`-topic (such as `$SYS/...`), which wildcards at the first level
    /// do not match.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// Checks the bytes of a decoded PUBLISH's topic name, which may be empty (an alias names
/// the topic; the caller checks that): UTF-8, then no U+0000 and no wildcards.
///
/// Most topic names are short and ASCII: one pass over 8 bytes at a time proves those valid,
/// and only a name that fails it goes through the full checks, which pick the error.
#[inline]
pub(crate) fn check_decoded_topic_name(bytes: &[u8]) -> Result<(), DecodeError> {
    if is_plain_topic_name(bytes) {
        Ok(())
    } else {
        check_decoded_topic_name_slow(bytes)
    }
}

#[cold]
#[inline(never)]
fn check_decoded_topic_name_slow(bytes: &[u8]) -> Result<(), DecodeError> {
    let name = core::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
    check_topic_name(name).map_err(DecodeError::InvalidTopicName)
}

/// The rules of a topic name beyond UTF-8, the empty name allowed.
fn check_topic_name(name: &str) -> Result<(), InvalidTopic> {
    if name.len() > MAX_STRING_LEN {
        return Err(InvalidTopic::TooLong);
    }
    let bytes = name.as_bytes();
    if memchr::memchr3(0, b'+', b'#', bytes).is_none() {
        Ok(())
    } else if memchr::memchr(0, bytes).is_some() {
        Err(InvalidTopic::NullCharacter)
    } else {
        Err(InvalidTopic::WildcardInName)
    }
}

/// Whether `bytes` is ASCII without U+0000, `+` or `#`: a valid topic name at a glance.
/// `false` says only that the full checks must decide.
///
/// Written for the vectorizer: the bytes are read in blocks of 16 (the last block again,
/// overlapping, for the tail) and the verdicts of every block are or-ed together without a
/// branch, which compiles to a few SSE2 instructions per block. Out of line, because that
/// shape does not survive inlining into a large caller.
#[inline(never)]
fn is_plain_topic_name(bytes: &[u8]) -> bool {
    if let Some(last) = bytes.last_chunk::<16>() {
        let (blocks, _) = bytes.as_chunks::<16>();
        let mut bad = [0_u8; 16];
        for block in blocks.iter().chain([last]) {
            for (bad, &byte) in bad.iter_mut().zip(block) {
                *bad |= bad_byte(byte);
            }
        }
        bad == [0; 16]
    } else if let (Some(first), Some(last)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        let mut bad = [0_u8; 8];
        for block in [first, last] {
            for (bad, &byte) in bad.iter_mut().zip(block) {
                *bad |= bad_byte(byte);
            }
        }
        bad == [0; 8]
    } else {
        bytes.iter().all(|&byte| bad_byte(byte) == 0)
    }
}

/// Non-zero for a byte that is not plain ASCII, or is U+0000, `+` or `#`.
#[inline(always)]
const fn bad_byte(b: u8) -> u8 {
    // `#` (0x23) and `+` (0x2B) differ only in bit 3.
    (b & 0x80) | (b == 0) as u8 | (b | 0x08 == b'+') as u8
}

/// A shared subscription's parts: `$share/{group}/{filter}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name.
    pub group: &'a str,
    /// The filter the group subscribes to.
    pub filter: &'a str,
}

impl TopicFilter {
    /// Validates `filter` as a topic filter.
    pub fn new(filter: impl Into<ByteString>) -> Result<Self, InvalidTopic> {
        let filter = filter.into();
        check_mqtt_string(&filter)?;
        Self::from_mqtt_string(filter)
    }

    /// Validates a filter already known to be an MQTT string (decoded by `parse::string`).
    pub(crate) fn from_mqtt_string(filter: ByteString) -> Result<Self, InvalidTopic> {
        match filter.strip_prefix(SHARED_PREFIX) {
            Some(rest) => {
                let (group, inner) = rest
                    .split_once('/')
                    .ok_or(InvalidTopic::InvalidSharedSubscription)?;
                if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
                    return Err(InvalidTopic::InvalidSharedSubscription);
                }
                check_filter_levels(inner)?;
            }
            None => check_filter_levels(&filter)?,
        }
        Ok(Self(filter))
    }

    /// The group and inner filter of a shared subscription, or `None` for an ordinary filter.
    pub fn shared(&self) -> Option<SharedFilter<'_>> {
        let rest = self.0.strip_prefix(SHARED_PREFIX)?;
        let (group, filter) = rest.split_once('/')?;
        Some(SharedFilter { group, filter })
    }

    /// The filter topics are matched against: the inner filter of a shared subscription.
    pub fn match_filter(&self) -> &str {
        self.shared().map_or(&self.0, |shared| shared.filter)
    }

    /// Whether the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.match_filter().contains(['+', '#'])
    }

    /// Whether `topic` matches this filter. Wildcards at the first level do not match
    /// `$`-topics; a shared subscription matches as its inner filter.
    pub fn matches(&self, topic: &TopicName) -> bool {
        let filter = self.match_filter();
        if topic.is_system() && filter.starts_with(['+', '#']) {
            return false;
        }
        let mut levels = topic.split('/');
        for pattern in filter.split('/') {
            match pattern {
                "#" => return true,
                "+" => {
                    if levels.next().is_none() {
                        return false;
                    }
                }
                literal => {
                    if levels.next() != Some(literal) {
                        return false;
                    }
                }
            }
        }
        levels.next().is_none()
    }
}

fn check_filter_levels(filter: &str) -> Result<(), InvalidTopic> {
    let bytes = filter.as_bytes();
    if bytes.is_empty() {
        return Err(InvalidTopic::Empty);
    }
    // One pass over the bytes: a wildcard must fill its level (a `/` or an end on each
    // side), and `#` must also be the last byte.
    let mut at = 0;
    while let Some(offset) = memchr::memchr2(b'+', b'#', bytes.get(at..).unwrap_or_default()) {
        let i = at + offset;
        let starts_level = i == 0 || bytes.get(i - 1) == Some(&b'/');
        let next = bytes.get(i + 1);
        let ends_level = next.is_none() || next == Some(&b'/');
        let last = next.is_none();
        let fits = match bytes.get(i) {
            Some(b'#') => starts_level && last,
            _ => starts_level && ends_level,
        };
        if !fits {
            return Err(InvalidTopic::MisplacedWildcard);
        }
        at = i + 1;
    }
    Ok(())
}

impl ClientId {
    /// Validates `id` as an MQTT string. Servers may be stricter (MQTT 3.1 limits it to 23
    /// characters); that is policy, not syntax, and left to them.
    pub fn new(id: impl Into<ByteString>) -> Result<Self, InvalidTopic> {
        Ok(Self(mqtt_string(id.into())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    #[test]
    fn topic_names_refuse_wildcards_nul_and_empty() {
        assert_eq!(TopicName::new("a/+"), Err(InvalidTopic::WildcardInName));
        assert_eq!(TopicName::new("#"), Err(InvalidTopic::WildcardInName));
        assert_eq!(TopicName::new("a\0+"), Err(InvalidTopic::NullCharacter));
        assert_eq!(TopicName::new(""), Err(InvalidTopic::Empty));
        assert_eq!(
            TopicName::new("x".repeat(65_536)),
            Err(InvalidTopic::TooLong)
        );
        assert!(TopicName::new("/").is_ok());
    }

    #[test]
    fn the_quick_topic_check_agrees_with_the_full_one() {
        // Every length around the 8-byte words, every position, every kind of byte.
        let specials: &[&[u8]] = &[
            b"\0",
            b"+",
            b"#",
            b"\x7f",
            b"\x80",
            b"\xff",
            b"\xc3\xa9",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf0\x9f\x92\xa1",
            b"*",
            b"'",
            b"/",
            b"$",
            b"+#",
        ];
        for len in 0..=20 {
            for at in 0..=len {
                for special in specials {
                    let mut bytes = b"a/b-c_d.e".repeat(3);
                    bytes.truncate(len);
                    bytes.splice(at..at, special.iter().copied());
                    let full = core::str::from_utf8(&bytes)
                        .map_err(|_| DecodeError::InvalidUtf8)
                        .and_then(|s| check_topic_name(s).map_err(DecodeError::InvalidTopicName));
                    assert_eq!(check_decoded_topic_name(&bytes), full, "{bytes:x?}");
                    if is_plain_topic_name(&bytes) {
                        assert!(bytes.is_ascii() && full.is_ok(), "{bytes:x?}");
                    }
                }
            }
        }
        assert!(is_plain_topic_name(
            b"sensors/building-7/floor-3/temperature"
        ));
        assert!(is_plain_topic_name(b""));
    }

    #[test]
    fn filters_place_wildcards_per_level() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "a/+/b",
            "/+",
            "sport/tennis/#",
            "$SYS/#",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        for bad in ["a#", "a/#/b", "a+", "+a/b", "#/", "sport/tennis#"] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(InvalidTopic::MisplacedWildcard),
                "{bad}"
            );
        }
        assert_eq!(TopicFilter::new(""), Err(InvalidTopic::Empty));
    }

    #[test]
    fn shared_subscriptions_need_a_group_and_a_filter() {
        let shared = filter("$share/g1/a/+");
        assert_eq!(
            shared.shared(),
            Some(SharedFilter {
                group: "g1",
                filter: "a/+"
            })
        );
        for bad in [
            "$share/",
            "$share/g",
            "$share//a",
            "$share/g+/a",
            "$share/g/",
        ] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(InvalidTopic::InvalidSharedSubscription),
                "{bad}"
            );
        }
        assert_eq!(
            TopicFilter::new("$share/g/a#"),
            Err(InvalidTopic::MisplacedWildcard)
        );
    }

    #[test]
    fn matching_follows_the_specification_examples() {
        let t = name("sport/tennis/player1");
        assert!(filter("sport/tennis/player1/#").matches(&t));
        assert!(filter("sport/#").matches(&name("sport")));
        assert!(filter("sport/tennis/+").matches(&t));
        assert!(!filter("sport/+").matches(&t));
        assert!(filter("+/+").matches(&name("/finance")));
        assert!(filter("/+").matches(&name("/finance")));
        assert!(!filter("+").matches(&name("/finance")));
        assert!(!filter("#").matches(&name("$SYS/uptime")));
        assert!(!filter("+/uptime").matches(&name("$SYS/uptime")));
        assert!(filter("$SYS/#").matches(&name("$SYS/uptime")));
        assert!(filter("$share/g/sport/#").matches(&t));
    }
}
