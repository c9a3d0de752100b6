//! The rule model of the TOML configuration: NanoMQ's rules (`permit`, `action`, `topics`,
//! who the rule is for, with `and`/`or`), with EMQX's literal filters (`eq #`) and NanoMQ's
//! (`@#`), and the `${username}`/`${clientid}` placeholders. Plain types with constructors
//! that validate; the binary maps its TOML onto them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use mqtt_codec::{InvalidTopic, SHARED_PREFIX, TopicFilter};

use super::Principal;
use super::placeholder::Placeholder;

/// What a rule does when it matches, and what `no_match` does when none does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permit {
    /// The action goes ahead.
    Allow,
    /// The action is refused.
    Deny,
}

impl FromStr for Permit {
    type Err = RuleError;

    /// `allow` or `deny`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            other => Err(RuleError::UnknownPermit(other.to_owned())),
        }
    }
}

/// The actions a rule is about (NanoMQ's `action`). `subscribe` covers both subscribing
/// and receiving a message (the check at delivery, [`super::Action::Receive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// PUBLISH (and wills).
    Publish,
    /// SUBSCRIBE, and messages delivered.
    Subscribe,
    /// Both.
    PubSub,
}

impl FromStr for RuleAction {
    type Err = RuleError;

    /// `publish`, `subscribe`, `pubsub` (NanoMQ), or `all` (EMQX's name for both).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "publish" => Ok(Self::Publish),
            "subscribe" => Ok(Self::Subscribe),
            "pubsub" | "all" => Ok(Self::PubSub),
            other => Err(RuleError::UnknownAction(other.to_owned())),
        }
    }
}

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network of `addr` with a prefix of `prefix` bits (at most 32 for IPv4, 128 for
    /// IPv6). Bits of `addr` past the prefix are ignored.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, RuleError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(RuleError::InvalidIpNet(format!("{addr}/{prefix}")));
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in this network. An IPv4 address seen by a dual-stack listener as
    /// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is compared as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of `a` and `b` are equal.
fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    a & mask == b & mask
}

impl FromStr for IpNet {
    type Err = RuleError;

    /// `address/prefix`, or an address alone (a network of that one address).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RuleError::InvalidIpNet(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix = match prefix {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, prefix).map_err(|_| bad())
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which clients a rule is for. Decided once per connection, at CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Every client.
    All,
    /// Clients that sent this user name.
    Username(String),
    /// Clients that sent a user name, whatever it is.
    AnyUsername,
    /// Clients that sent no user name (Mosquitto's `topic` lines before the first `user`).
    Anonymous,
    /// The client with this client identifier.
    ClientId(String),
    /// Clients connecting from this network.
    IpAddr(IpNet),
    /// Clients every one of these is for (NanoMQ's `and`; an empty list is every client).
    And(Vec<Who>),
    /// Clients any one of these is for (NanoMQ's `or`; an empty list is no client).
    Or(Vec<Who>),
}

impl Who {
    /// NanoMQ's `username = ...`: `#` is every client (NanoMQ's documented meaning),
    /// `${username}` every client that sent a user name (so `topics` can name it), anything
    /// else that user name exactly.
    pub fn username(value: &str) -> Self {
        match value {
            "#" => Self::All,
            "${username}" => Self::AnyUsername,
            name => Self::Username(name.to_owned()),
        }
    }

    /// NanoMQ's `clientid = ...`: `#` and `${clientid}` are every client (every client has
    /// an identifier), anything else that client identifier exactly.
    pub fn client_id(value: &str) -> Self {
        match value {
            "#" | "${clientid}" => Self::All,
            id => Self::ClientId(id.to_owned()),
        }
    }

    /// NanoMQ's `ipaddr = ...`: an address or a CIDR network, IPv4 or IPv6.
    pub fn ip_addr(value: &str) -> Result<Self, RuleError> {
        value.parse().map(Self::IpAddr)
    }

    /// Whether the rule is for `principal`. Recurses once per level of `and`/`or` nesting,
    /// which the operator writes, never a peer.
    pub(crate) fn applies(&self, principal: &Principal<'_>) -> bool {
        match self {
            Self::All => true,
            Self::Username(name) => principal.username == Some(name.as_str()),
            Self::AnyUsername => principal.username.is_some(),
            Self::Anonymous => principal.username.is_none(),
            Self::ClientId(id) => principal.client_id == id.as_str(),
            Self::IpAddr(net) => principal.addr.is_some_and(|ip| net.contains(ip)),
            Self::And(all) => all.iter().all(|w| w.applies(principal)),
            Self::Or(any) => any.iter().any(|w| w.applies(principal)),
        }
    }
}

/// One level of a rule's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Level {
    Literal(Box<str>),
    /// `+`
    Plus,
    /// `#`
    Hash,
    /// `${username}` / `%u`, `${clientid}` / `%c`: the principal's, if it is safe.
    Placeholder(Placeholder),
}

/// One entry of a rule's `topics`: a filter (wildcards match as in a subscription) or a
/// literal (EMQX's `eq`: matches only the very same string, so a rule can name the filter
/// `#` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    text: Box<str>,
    literal: bool,
    levels: Box<[Level]>,
}

impl TopicSpec {
    /// A topic as the TOML writes it: `eq <filter>` (EMQX) or `@<filter>` (NanoMQ) is a
    /// literal, anything else a filter (see [`TopicSpec::filter`]).
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        if let Some(rest) = s.strip_prefix("eq ") {
            Self::literal(rest)
        } else if let Some(rest) = s.strip_prefix('@') {
            Self::literal(rest)
        } else {
            Self::filter(s)
        }
    }

    /// A topic filter: `+` and `#` are wildcards, `${username}` and `${clientid}` stand for
    /// the client's as whole levels. A filter under `$share/` is refused: shared
    /// subscriptions are checked by their inner filter, so such a rule could never match.
    pub fn filter(s: &str) -> Result<Self, RuleError> {
        if s.starts_with(SHARED_PREFIX) {
            return Err(RuleError::SharedFilter(s.to_owned()));
        }
        Self::build(s, false, Syntax::Toml)
    }

    /// A literal: matches a topic or a subscription's filter only when it is this very
    /// string (after placeholders are replaced), wildcards included.
    pub fn literal(s: &str) -> Result<Self, RuleError> {
        Self::build(s, true, Syntax::Toml)
    }

    /// A topic of a Mosquitto `acl_file` line: a filter; in a `pattern` line, a level that
    /// is exactly `%u` or `%c` is a placeholder (as in Mosquitto 2.1; elsewhere in a level
    /// they are text).
    pub(crate) fn mosquitto(s: &str, pattern: bool) -> Result<Self, InvalidTopic> {
        let syntax = if pattern {
            Syntax::MosquittoPattern
        } else {
            Syntax::MosquittoTopic
        };
        Self::build(s, false, syntax).map_err(|e| match e {
            RuleError::InvalidFilter { reason, .. } => reason,
            _ => InvalidTopic::MisplacedWildcard,
        })
    }

    fn build(s: &str, literal: bool, syntax: Syntax) -> Result<Self, RuleError> {
        TopicFilter::new(s).map_err(|reason| RuleError::InvalidFilter {
            filter: s.to_owned(),
            reason,
        })?;
        let mut levels = Vec::new();
        for level in s.split('/') {
            let parsed = match (level, syntax) {
                ("+", _) => Level::Plus,
                ("#", _) => Level::Hash,
                ("${username}", Syntax::Toml) | ("%u", Syntax::MosquittoPattern) => {
                    Level::Placeholder(Placeholder::Username)
                }
                ("${clientid}", Syntax::Toml) | ("%c", Syntax::MosquittoPattern) => {
                    Level::Placeholder(Placeholder::ClientId)
                }
                (other, Syntax::Toml) if other.contains("${") => {
                    return Err(RuleError::Placeholder(s.to_owned()));
                }
                (other, _) => Level::Literal(other.into()),
            };
            levels.push(parsed);
        }
        Ok(Self {
            text: s.into(),
            literal,
            levels: levels.into(),
        })
    }

    /// The topic as written (without `eq `/`@`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a literal (`eq`) rather than a filter.
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    pub(crate) fn levels(&self) -> &[Level] {
        &self.levels
    }

    pub(crate) fn has_placeholder(&self) -> bool {
        self.levels
            .iter()
            .any(|l| matches!(l, Level::Placeholder(_)))
    }
}

#[derive(Debug, Clone, Copy)]
enum Syntax {
    Toml,
    MosquittoTopic,
    MosquittoPattern,
}

/// One rule of the TOML configuration (`[[auth.acl]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub(crate) permit: Permit,
    pub(crate) action: RuleAction,
    pub(crate) who: Who,
    pub(crate) topics: Vec<TopicSpec>,
}

impl Rule {
    /// A rule: `permit` when `who` does `action` on one of `topics`. No topics is every
    /// topic (NanoMQ): for a deny rule truly every one, `$SYS` included; for an allow rule
    /// what `#` matches, so `$` topics still need a rule that names them.
    pub fn new(permit: Permit, action: RuleAction, who: Who, topics: Vec<TopicSpec>) -> Self {
        Self {
            permit,
            action,
            who,
            topics,
        }
    }
}

/// A rule that cannot be built, and what in it is wrong (all of it the operator's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// `permit` is neither `allow` nor `deny`.
    UnknownPermit(String),
    /// `action` is not `publish`, `subscribe` or `pubsub`.
    UnknownAction(String),
    /// `ipaddr` is not an address or a CIDR network.
    InvalidIpNet(String),
    /// A topic is not a valid topic filter.
    InvalidFilter {
        /// The topic.
        filter: String,
        /// What is wrong with it.
        reason: InvalidTopic,
    },
    /// A topic uses a placeholder that is not `${username}` or `${clientid}`, or uses one
    /// inside a level instead of as the whole level.
    Placeholder(String),
    /// A topic names a shared subscription (`$share/...`).
    SharedFilter(String),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownPermit(p) => write!(f, "permit \"{p}\" is neither allow nor deny"),
            Self::UnknownAction(a) => {
                write!(f, "action \"{a}\" is not publish, subscribe or pubsub")
            }
            Self::InvalidIpNet(n) => write!(f, "ipaddr \"{n}\" is not an address or CIDR network"),
            Self::InvalidFilter { filter, reason } => {
                write!(f, "topic \"{filter}\" is not a valid filter: {reason}")
            }
            Self::Placeholder(t) => write!(
                f,
                "topic \"{t}\": placeholders are ${{username}} and ${{clientid}}, each a whole level"
            ),
            Self::SharedFilter(t) => write!(
                f,
                "topic \"{t}\": rules name the filter of a shared subscription, without $share/<group>/"
            ),
        }
    }
}

impl std::error::Error for RuleError {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn cidr_v4_and_v6() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(IpAddr::V4(Ipv4Addr::new(10, 1, 200, 3))));
        assert!(!net.contains(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1))));
        // The same address as a dual-stack socket reports it.
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains(IpAddr::V6(Ipv6Addr::LOCALHOST)));

        let v6: IpNet = "fd00:1::/32".parse().unwrap();
        assert!(v6.contains("fd00:1:ffff::1".parse().unwrap()));
        assert!(!v6.contains("fd00:2::1".parse().unwrap()));
        assert!(!v6.contains(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))));

        let host: IpNet = "192.168.1.5".parse().unwrap();
        assert!(host.contains(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5))));
        assert!(!host.contains(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 6))));

        let everything: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))));
        let all6: IpNet = "::/0".parse().unwrap();
        assert!(all6.contains(IpAddr::V6(Ipv6Addr::LOCALHOST)));

        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "x", "10.0.0.0/"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_parse_filters_literals_and_placeholders() {
        let f = TopicSpec::parse("devices/${username}/#").unwrap();
        assert!(!f.is_literal());
        assert!(f.has_placeholder());
        let eq = TopicSpec::parse("eq #").unwrap();
        assert!(eq.is_literal());
        assert_eq!(eq.as_str(), "#");
        let at = TopicSpec::parse("@sensors/+").unwrap();
        assert!(at.is_literal());
        assert_eq!(at.as_str(), "sensors/+");

        for bad in [
            "a/${username}x",
            "a/${user}/b",
            "pre${clientid}",
            "a/#/b",
            "a+",
            "",
            "$share/g/a",
        ] {
            assert!(TopicSpec::parse(bad).is_err(), "{bad}");
        }
        // Mosquitto's `%u` is text in TOML, and `${username}` is text in acl_file.
        assert!(!TopicSpec::parse("a/%u").unwrap().has_placeholder());
        assert!(
            !TopicSpec::mosquitto("a/${username}", true)
                .unwrap()
                .has_placeholder()
        );
        assert!(
            TopicSpec::mosquitto("a/%u", true)
                .unwrap()
                .has_placeholder()
        );
        assert!(
            !TopicSpec::mosquitto("a/%u", false)
                .unwrap()
                .has_placeholder()
        );
        assert!(
            !TopicSpec::mosquitto("a/x%u", true)
                .unwrap()
                .has_placeholder()
        );
    }

    #[test]
    fn nanomq_who_values() {
        assert_eq!(Who::username("#"), Who::All);
        assert_eq!(Who::username("${username}"), Who::AnyUsername);
        assert_eq!(Who::username("bob"), Who::Username("bob".into()));
        assert_eq!(Who::client_id("${clientid}"), Who::All);
        assert!(Who::ip_addr("300.0.0.1").is_err());
        assert_eq!("pubsub".parse::<RuleAction>().unwrap(), RuleAction::PubSub);
        assert!("read".parse::<RuleAction>().is_err());
        assert!("maybe".parse::<Permit>().is_err());
    }
}
