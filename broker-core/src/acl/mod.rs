//! Authorization rules: who may publish to a topic, subscribe to a filter, and receive a
//! message. A pure library: the broker builds an [`Acl`] from its configuration, resolves
//! it for each client at CONNECT ([`Acl::for_client`]) and asks the [`ClientAcl`] before
//! each PUBLISH, SUBSCRIBE and delivery.
//!
//! # Sources
//!
//! - TOML rules ([`Rule`], NanoMQ's model): `permit` allow|deny, `action`
//!   publish|subscribe|pubsub, `topics`, and whom the rule is for ([`Who`]: user name,
//!   client id, CIDR network, everyone, and/or). First match wins.
//! - Mosquitto's `acl_file` ([`MosquittoAcl`]), read unchanged, with Mosquitto's meaning
//!   (see `mosquitto_file`): the client's block, deny first, then the patterns.
//!
//! Both become one ordered list (the TOML rules first, then the file), and the first rule
//! that decides wins. When none does, `no_match` decides ([`Decision::is_no_match`]).
//!
//! # What a rule's topic matches
//!
//! - [`Action::Publish`] and [`Action::Receive`] (a message being delivered: retained
//!   messages at SUBSCRIBE, and every message if the broker checks on delivery) check a
//!   topic name, which a rule matches as a subscription filter would. `+` and `#` at the
//!   first level do not match `$` topics, so a rule on `#` never grants `$SYS`: only a rule
//!   whose first level is `$SYS` does. A literal topic (`eq`, [`TopicSpec::literal`])
//!   matches only the very same string.
//! - [`Action::Subscribe`] checks a filter against the rules' filters. A subscription is
//!   allowed only if every topic it can match is allowed: an allow rule decides it when its
//!   filter *covers* the requested one (`sensors/#` covers `sensors/+/t` and `sensors`, but
//!   neither `#` nor `+/t`); a deny rule decides it when its filter *overlaps* the requested
//!   one (some topic matches both: deny `sensors/secret` refuses `sensors/+` and `#`). A
//!   literal rule decides only the very same filter (`eq #` is the filter `#`, not every
//!   filter). So with first-match-wins, a granted filter never delivers a message the
//!   rules would refuse at [`Action::Receive`]. The cover test is Mosquitto 2.1's
//!   `mosquitto_sub_matches_acl` (as EMQX's filter match); overlap for deny rules is
//!   stricter than both (EMQX lets `#` through a deny on `secret/#` and then delivers
//!   `secret/` messages). Mosquitto 2.x's own `acl_file` does not check SUBSCRIBE at all
//!   (it grants any filter and checks `read` on each message delivered); here the file's
//!   rules decide the SUBACK the same way, since a refused SUBACK is what clients need to
//!   see, and `read` still applies to each message through [`Action::Receive`].
//! - A shared subscription `$share/<group>/<filter>` is checked as `<filter>`.
//!
//! # Placeholders
//!
//! `${username}`, `${clientid}` (and `%u`, `%c` in `acl_file` patterns) are whole levels
//! and stand for exactly one level. A client whose name is empty, contains `+`, `#` or
//! `/`, or starts with `$` where it would be the first level, gets no value: the rule does
//! not apply to it. A name therefore never widens a pattern (see `placeholder`).
//!
//! # Cost
//!
//! Rules are compiled once into tries (see `matcher`), split by whom they are for: one
//! trie per user name, one per client id, one for the rest. [`Acl::for_client`] picks the
//! client's tries and decides the "who" of the remaining rules once, so a PUBLISH check is
//! a walk over the topic's levels in at most three tries, keeping the smallest rule index
//! found. `cargo bench -p broker-core --bench acl` compares it with a linear scan.

mod authorizer;
mod compile;
mod matcher;
mod mosquitto_file;
mod placeholder;
mod reference;
mod rule;
mod stack;

use std::net::IpAddr;
use std::sync::Arc;

use mqtt_codec::SHARED_PREFIX;

pub use authorizer::AclAuthorizer;
pub use mosquitto_file::{AclFileError, AclFileErrorKind, MosquittoAcl};
pub use rule::{IpNet, Permit, Rule, RuleAction, RuleError, TopicSpec, Who};

use crate::ConnParam;
use compile::{Compiled, FlatRule};
use matcher::{PUBLISH, READ, SUBSCRIBE};
use placeholder::{Bound, is_safe};

/// Who is asking: what the rules' "who" and placeholders look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The user name, if the client sent one (or the certificate identity that replaced it).
    pub username: Option<&'a str>,
    /// The client identifier (assigned by the broker if the client sent none).
    pub client_id: &'a str,
    /// The peer's address, if the transport knows it.
    pub addr: Option<IpAddr>,
}

impl<'a> Principal<'a> {
    /// The principal of a connection.
    pub fn from_conn_param(param: &'a ConnParam) -> Self {
        Self {
            username: param.username.as_deref(),
            client_id: param.client_id.as_str(),
            addr: param.transport.peer.map(|peer| peer.ip()),
        }
    }
}

/// What is being checked: the access-control layer's [`Action`](crate::Action).
/// [`Action::Receive`] is Mosquitto's `read` and the TOML rules' `subscribe`.
pub use crate::auth::Action;

/// Which rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleRef {
    /// The TOML rule at this index (0-based) of the list given to [`Acl::new`].
    Config {
        /// Its index.
        index: usize,
    },
    /// The `acl_file` line with this number (1-based).
    AclFile {
        /// Its number.
        line: usize,
    },
    /// The `acl_file`'s refusal of a client whose user name or client id contains `+` or
    /// `#` (Mosquitto's, where the file has patterns).
    UnsafeName,
}

/// The answer to a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    allowed: bool,
    rule: Option<RuleRef>,
}

impl Decision {
    /// Whether the action may go ahead.
    pub fn is_allowed(self) -> bool {
        self.allowed
    }

    /// The rule that decided; `None` when no rule did and `no_match` decided.
    pub fn rule(self) -> Option<RuleRef> {
        self.rule
    }

    /// Whether `no_match` decided.
    pub fn is_no_match(self) -> bool {
        self.rule.is_none()
    }
}

/// Compiled authorization rules. Cheap to clone (shared); replaced whole on reload.
#[derive(Debug, Clone)]
pub struct Acl(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    compiled: Compiled,
    no_match: Permit,
}

impl Acl {
    /// Compiles `rules` (checked first, in order) and the rules of `acl_file` (after
    /// them); `no_match` decides what none of them does.
    pub fn new(rules: &[Rule], acl_file: Option<&MosquittoAcl>, no_match: Permit) -> Self {
        let mut flat: Vec<FlatRule> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| FlatRule::from_rule(i, r))
            .collect();
        if let Some(file) = acl_file {
            flat.extend(file.flatten());
        }
        Self(Arc::new(Inner {
            compiled: Compiled::new(flat),
            no_match,
        }))
    }

    /// What decides when no rule does.
    pub fn no_match(&self) -> Permit {
        self.0.no_match
    }

    /// How many rules it holds (TOML rules, `acl_file` lines, and the file's refusal of
    /// unsafe names if it has patterns).
    pub fn len(&self) -> usize {
        self.0.compiled.rules.len()
    }

    /// Whether it holds no rule (every check is `no_match`).
    pub fn is_empty(&self) -> bool {
        self.0.compiled.rules.is_empty()
    }

    /// Whether `self` and `other` are the same compiled rules (not a reload's new ones).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The rules as they apply to `principal`, resolved once (at CONNECT) for its checks.
    pub fn for_client(&self, principal: &Principal<'_>) -> ClientAcl {
        let c = &self.0.compiled;
        let username_group = match principal.username {
            Some(name) => c.by_username.get(name).copied(),
            None => c.anonymous,
        };
        let client_id_group = c.by_client_id.get(principal.client_id).copied();
        let general = (!c.general_who.is_empty()).then(|| {
            let words = c.rules.len().div_ceil(64);
            let mut bits = vec![0_u64; words];
            for (rule, who) in &c.general_who {
                if who.applies(principal) {
                    let (word, bit) = (*rule as usize / 64, rule % 64);
                    if let Some(w) = bits.get_mut(word) {
                        *w |= 1 << bit;
                    }
                }
            }
            bits.into_boxed_slice()
        });
        let keep = |name: &str| (c.placeholders && is_safe(name)).then(|| name.into());
        ClientAcl {
            acl: self.clone(),
            username_group,
            client_id_group,
            general,
            username: principal.username.and_then(keep),
            client_id: keep(principal.client_id),
        }
    }

    /// One check without keeping the client's resolved rules (for a will at CONNECT, or
    /// the rare check outside a connection). Resolves them every time.
    pub fn check(&self, principal: &Principal<'_>, action: Action, topic: &str) -> Decision {
        self.for_client(principal).check(action, topic)
    }

    /// The same answer as [`Acl::check`], computed by scanning every rule in order:
    /// the reference the tests and benchmarks compare the compiled form with.
    #[doc(hidden)]
    pub fn check_linear(&self, principal: &Principal<'_>, action: Action, topic: &str) -> Decision {
        let (mask, s) = what(action, topic);
        let index = reference::first_match(&self.0.compiled.rules, principal, mask, s);
        self.decision(index)
    }

    fn decision(&self, index: Option<usize>) -> Decision {
        match index.and_then(|i| self.0.compiled.rules.get(i)) {
            Some(rule) => Decision {
                allowed: rule.allow,
                rule: Some(rule.origin),
            },
            None => Decision {
                allowed: self.0.no_match == Permit::Allow,
                rule: None,
            },
        }
    }
}

/// The action's bit, and the string its rules are matched against.
fn what(action: Action, topic: &str) -> (u8, &str) {
    match action {
        Action::Publish => (PUBLISH, topic),
        Action::Receive => (READ, topic),
        Action::Subscribe => (SUBSCRIBE, shared_inner(topic)),
    }
}

/// The inner filter of `$share/<group>/<filter>`; any other filter as it is.
fn shared_inner(filter: &str) -> &str {
    filter
        .strip_prefix(SHARED_PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, inner)| inner)
}

/// One client's view of the rules, resolved at CONNECT: the tries that can apply to it,
/// which of the general rules are for it, and its names for placeholders (only if safe).
/// Keeps the [`Acl`] it came from alive; after a reload, build a new one.
#[derive(Debug, Clone)]
pub struct ClientAcl {
    acl: Acl,
    username_group: Option<usize>,
    client_id_group: Option<usize>,
    /// Bit `i` set: general rule `i` is for this client; `None`: all of them are.
    general: Option<Box<[u64]>>,
    username: Option<Box<str>>,
    client_id: Option<Box<str>>,
}

impl ClientAcl {
    /// The rules this view was resolved from.
    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// Whether this client may do `action` on `topic` (a topic name for
    /// [`Action::Publish`] and [`Action::Receive`], a filter for [`Action::Subscribe`]).
    pub fn check(&self, action: Action, topic: &str) -> Decision {
        let (mask, s) = what(action, topic);
        let c = &self.acl.0.compiled;
        let bound = Bound {
            username: self.username.as_deref(),
            client_id: self.client_id.as_deref(),
        };
        let mut best = u32::MAX;
        let all = |_: u32| true;
        let general = |rule: u32| {
            self.general.as_deref().is_none_or(|bits| {
                bits.get(rule as usize / 64)
                    .is_some_and(|w| w >> (rule % 64) & 1 == 1)
            })
        };
        let own = [self.username_group, self.client_id_group];
        let groups = own.iter().flatten().filter_map(|&g| c.groups.get(g));
        if action == Action::Subscribe {
            for group in groups {
                group.best_for_filter(s, mask, &bound, &all, &mut best);
            }
            if let Some(group) = c.groups.get(c.general) {
                group.best_for_filter(s, mask, &bound, &general, &mut best);
            }
        } else {
            for group in groups {
                group.best_for_topic(s, mask, &bound, &all, &mut best);
            }
            if let Some(group) = c.groups.get(c.general) {
                group.best_for_topic(s, mask, &bound, &general, &mut best);
            }
        }
        self.acl
            .decision((best != u32::MAX).then_some(best as usize))
    }
}
