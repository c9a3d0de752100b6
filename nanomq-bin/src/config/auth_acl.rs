//! `[[auth.acl]]`: authorization rules in NanoMQ's model, first match wins. Each rule says
//! `permit` (allow or deny), `action` (publish, subscribe or pubsub, the default), `topics`
//! (filters; `${username}` and `${clientid}` as whole levels; `eq #` or `@#` for the filter
//! `#` itself; absent: every topic) and whom it is for: exactly one of `username`,
//! `clientid`, `ipaddr` (an address or CIDR network), `all = true`, `and = [...]` or
//! `or = [...]` (lists of tables with `username`, `clientid` or `ipaddr`).

use broker_core::acl::{Permit, Rule, RuleAction, TopicSpec, Who};
use serde::Deserialize;

use super::Problems;

/// One `[[auth.acl]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[auth.acl]] rule table")]
pub(super) struct RawAclRule {
    permit: String,
    action: Option<String>,
    topics: Option<Vec<String>>,
    username: Option<String>,
    clientid: Option<String>,
    ipaddr: Option<String>,
    all: Option<bool>,
    and: Option<Vec<RawWho>>,
    or: Option<Vec<RawWho>>,
}

/// One client condition of an `and` or `or` list.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with username, clientid or ipaddr"
)]
pub(super) struct RawWho {
    username: Option<String>,
    clientid: Option<String>,
    ipaddr: Option<String>,
}

/// The rules; a problem (naming `auth.acl[N].key`) for each thing wrong with one.
pub(super) fn validate(raw: Vec<RawAclRule>, problems: &mut Problems) -> Vec<Rule> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, rule)| rule.validate(&format!("auth.acl[{i}]"), problems))
        .collect()
}

impl RawAclRule {
    fn validate(self, key: &str, problems: &mut Problems) -> Option<Rule> {
        let permit = match self.permit.parse::<Permit>() {
            Ok(permit) => Some(permit),
            Err(e) => {
                problems.add(&format!("{key}.permit"), e.to_string());
                None
            }
        };
        let action = match self.action.as_deref().map(str::parse::<RuleAction>) {
            None => Some(RuleAction::PubSub),
            Some(Ok(action)) => Some(action),
            Some(Err(e)) => {
                problems.add(&format!("{key}.action"), e.to_string());
                None
            }
        };
        let mut topics = Vec::new();
        for (j, topic) in self.topics.iter().flatten().enumerate() {
            match TopicSpec::parse(topic) {
                Ok(spec) => topics.push(spec),
                Err(e) => problems.add(&format!("{key}.topics[{j}]"), e.to_string()),
            }
        }
        let who = who(key, &self, problems);
        Some(Rule::new(permit?, action?, who?, topics))
    }
}

/// Whom the rule is for: exactly one of its client keys.
fn who(key: &str, rule: &RawAclRule, problems: &mut Problems) -> Option<Who> {
    let given = [
        rule.username.is_some(),
        rule.clientid.is_some(),
        rule.ipaddr.is_some(),
        rule.all.is_some(),
        rule.and.is_some(),
        rule.or.is_some(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given != 1 {
        problems.add(
            key,
            format!(
                "a rule names whom it is for with exactly one of username, clientid, ipaddr, \
                 all = true, and, or (this one has {given})"
            ),
        );
        return None;
    }
    if let Some(all) = rule.all {
        if !all {
            problems.add(
                &format!("{key}.all"),
                "only `all = true` means anything (leave it out otherwise)",
            );
            return None;
        }
        return Some(Who::All);
    }
    let list = |name: &str, items: &[RawWho], problems: &mut Problems| -> Option<Vec<Who>> {
        let mut out = Vec::new();
        for (j, item) in items.iter().enumerate() {
            let key = format!("{key}.{name}[{j}]");
            out.push(single(
                &key,
                &item.username,
                &item.clientid,
                &item.ipaddr,
                problems,
            )?);
        }
        Some(out)
    };
    if let Some(items) = &rule.and {
        return list("and", items, problems).map(Who::And);
    }
    if let Some(items) = &rule.or {
        return list("or", items, problems).map(Who::Or);
    }
    single(key, &rule.username, &rule.clientid, &rule.ipaddr, problems)
}

/// A `username`, `clientid` or `ipaddr` condition (exactly one).
fn single(
    key: &str,
    username: &Option<String>,
    clientid: &Option<String>,
    ipaddr: &Option<String>,
    problems: &mut Problems,
) -> Option<Who> {
    match (username, clientid, ipaddr) {
        (Some(name), None, None) => Some(Who::username(name)),
        (None, Some(id), None) => Some(Who::client_id(id)),
        (None, None, Some(net)) => match Who::ip_addr(net) {
            Ok(who) => Some(who),
            Err(e) => {
                problems.add(&format!("{key}.ipaddr"), e.to_string());
                None
            }
        },
        _ => {
            problems.add(key, "needs exactly one of username, clientid, ipaddr");
            None
        }
    }
}
