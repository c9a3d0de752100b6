//! From rules to the compiled form: every source (TOML rules, then the `acl_file`) becomes
//! one ordered list of flat rules, and the list is split into groups by whom its rules are
//! for (one user name, one client id, or everyone), each group one trie. A client's checks
//! walk the groups that can apply to it, and take the smallest rule index any of them finds.

use std::collections::HashMap;

use super::matcher::{Entry, Group, PUBLISH, READ, SUBSCRIBE};
use super::rule::{Permit, Rule, RuleAction, TopicSpec, Who};
use super::{Principal, RuleRef};

/// One rule of the ordered list every source is flattened into.
#[derive(Debug, Clone)]
pub(crate) struct FlatRule {
    /// Where it came from, for the log.
    pub(crate) origin: RuleRef,
    pub(crate) allow: bool,
    /// `PUBLISH | SUBSCRIBE | READ`
    pub(crate) actions: u8,
    pub(crate) who: Applies,
    /// `None`: every topic.
    pub(crate) topics: Option<Vec<TopicSpec>>,
}

/// Whom a flat rule is for.
#[derive(Debug, Clone)]
pub(crate) enum Applies {
    Who(Who),
    /// Clients whose user name or client id contains `+` or `#` (Mosquitto refuses them
    /// everything its patterns would decide).
    UnsafeName,
}

impl Applies {
    pub(crate) fn applies(&self, principal: &Principal<'_>) -> bool {
        match self {
            Self::Who(who) => who.applies(principal),
            Self::UnsafeName => {
                principal.username.is_some_and(|u| u.contains(['+', '#']))
                    || principal.client_id.contains(['+', '#'])
            }
        }
    }
}

impl FlatRule {
    pub(crate) fn from_rule(index: usize, rule: &Rule) -> Self {
        let actions = match rule.action {
            RuleAction::Publish => PUBLISH,
            RuleAction::Subscribe => SUBSCRIBE | READ,
            RuleAction::PubSub => PUBLISH | SUBSCRIBE | READ,
        };
        Self {
            origin: RuleRef::Config { index },
            allow: rule.permit == Permit::Allow,
            actions,
            who: Applies::Who(rule.who.clone()),
            topics: (!rule.topics.is_empty()).then(|| rule.topics.clone()),
        }
    }
}

/// The compiled rules.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) rules: Vec<FlatRule>,
    pub(crate) groups: Vec<Group>,
    pub(crate) by_username: HashMap<Box<str>, usize>,
    pub(crate) by_client_id: HashMap<Box<str>, usize>,
    pub(crate) anonymous: Option<usize>,
    /// The group of rules for other kinds of "who" (everyone, networks, and/or, ...).
    pub(crate) general: usize,
    /// The rules of `general`, with whom they are for; empty if every one is for everyone.
    pub(crate) general_who: Vec<(u32, Applies)>,
    /// Whether some rule has a placeholder (so clients keep their names for checks).
    pub(crate) placeholders: bool,
}

/// The `#` filter: what an allow rule without topics matches.
fn hash() -> Option<TopicSpec> {
    TopicSpec::filter("#").ok()
}

impl Compiled {
    pub(crate) fn new(rules: Vec<FlatRule>) -> Self {
        let mut groups = vec![Group::default()];
        let general = 0;
        let mut by_username = HashMap::new();
        let mut by_client_id = HashMap::new();
        let mut anonymous = None;
        let mut general_who = Vec::new();
        let mut placeholders = false;
        let all_hash = hash();
        for (index, rule) in rules.iter().enumerate() {
            // More than 4 billion rules cannot be configured; the rest are never reached.
            let Ok(index) = u32::try_from(index) else {
                break;
            };
            let new_group = |groups: &mut Vec<Group>| {
                groups.push(Group::default());
                groups.len() - 1
            };
            let group = match &rule.who {
                Applies::Who(Who::Username(name)) => *by_username
                    .entry(name.as_str().into())
                    .or_insert_with(|| new_group(&mut groups)),
                Applies::Who(Who::ClientId(id)) => *by_client_id
                    .entry(id.as_str().into())
                    .or_insert_with(|| new_group(&mut groups)),
                Applies::Who(Who::Anonymous) => {
                    *anonymous.get_or_insert_with(|| new_group(&mut groups))
                }
                other => {
                    general_who.push((index, other.clone()));
                    general
                }
            };
            let Some(group) = groups.get_mut(group) else {
                continue;
            };
            let entry = Entry {
                rule: index,
                allow: rule.allow,
                actions: rule.actions,
            };
            match (&rule.topics, rule.allow) {
                (Some(topics), _) => {
                    for topic in topics {
                        placeholders |= topic.has_placeholder();
                        group.insert(topic, entry);
                    }
                }
                (None, false) => group.insert_any(entry),
                (None, true) => {
                    if let Some(hash) = &all_hash {
                        group.insert(hash, entry);
                    }
                }
            }
        }
        if general_who
            .iter()
            .all(|(_, who)| matches!(who, Applies::Who(Who::All)))
        {
            general_who.clear();
        }
        Self {
            rules,
            groups,
            by_username,
            by_client_id,
            anonymous,
            general,
            general_who,
            placeholders,
        }
    }
}
