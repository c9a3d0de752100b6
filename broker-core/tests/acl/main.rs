//! The authorization rules (`broker_core::Acl`) through their public API: each kind of
//! rule and its precedence, Mosquitto `acl_file` fixtures, client names with wildcard
//! characters, CIDR networks, and random rule sets on which the compiled tries must give
//! the very answer of the linear reference scan.
//!
//! - `rules`: the TOML rule model, kind by kind.
//! - `mosquitto`: `acl_file` fixtures.
//! - `random`: random rule sets, the tries against the reference scan.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use broker_core::acl::{
    Acl, Action, Decision, Permit, Principal, Rule, RuleAction, TopicSpec, Who,
};

pub(crate) fn rule(permit: Permit, action: RuleAction, who: Who, topics: &[&str]) -> Rule {
    Rule::new(
        permit,
        action,
        who,
        topics
            .iter()
            .map(|t| TopicSpec::parse(t).unwrap())
            .collect(),
    )
}

pub(crate) fn allow(action: RuleAction, topics: &[&str]) -> Rule {
    rule(Permit::Allow, action, Who::All, topics)
}

pub(crate) fn deny(action: RuleAction, topics: &[&str]) -> Rule {
    rule(Permit::Deny, action, Who::All, topics)
}

pub(crate) fn user<'a>(name: &'a str, id: &'a str) -> Principal<'a> {
    Principal {
        username: Some(name),
        client_id: id,
        addr: None,
    }
}

pub(crate) fn anon(id: &str) -> Principal<'_> {
    Principal {
        username: None,
        client_id: id,
        addr: None,
    }
}

/// The decision, after checking that the compiled form and the linear scan agree on it.
pub(crate) fn check(acl: &Acl, who: &Principal<'_>, action: Action, topic: &str) -> Decision {
    let fast = acl.for_client(who).check(action, topic);
    let slow = acl.check_linear(who, action, topic);
    assert_eq!(fast, slow, "{who:?} {action:?} {topic}");
    fast
}

pub(crate) fn allowed(acl: &Acl, who: &Principal<'_>, action: Action, topic: &str) -> bool {
    check(acl, who, action, topic).is_allowed()
}

mod mosquitto;
mod random;
mod rules;

/// The broker shares the rules between connection tasks and swaps them whole on reload.
#[test]
fn rules_are_shared_between_tasks() {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<Acl>();
    send_sync::<broker_core::acl::ClientAcl>();
    let acl = Acl::new(&[], None, Permit::Allow);
    let client = acl.for_client(&anon("c"));
    assert!(client.acl().ptr_eq(&acl));
    assert!(!Acl::new(&[], None, Permit::Allow).ptr_eq(&acl));
}
