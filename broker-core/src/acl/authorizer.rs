//! The rules as the broker's [`Authorizer`]: each connection gets its [`ClientAcl`], resolved
//! once at CONNECT, and every check is answered at once (the rules are in memory). The answer
//! about the last topic a client published to is kept: the rules of an `Acl` never change
//! (a reload builds a new one, and new per-client views), and a publisher mostly publishes to
//! the same topic again.

use parking_lot::Mutex;

use super::{Acl, ClientAcl, Principal};
use crate::ConnParam;
use crate::auth::{AclCheck, AclResult, Action, Authorizer, ClientAuthorizer};

/// Authorizes by an [`Acl`] (TOML rules and an `acl_file`).
#[derive(Debug, Clone)]
pub struct AclAuthorizer(Acl);

impl AclAuthorizer {
    /// Authorizes by `acl`. Where no rule decides, the access-control chain's `no_match`
    /// does (the `Acl`'s own is not consulted).
    pub fn new(acl: Acl) -> Self {
        Self(acl)
    }
}

impl Authorizer for AclAuthorizer {
    fn name(&self) -> &str {
        "acl"
    }

    fn for_client(&self, client: &ConnParam) -> Box<dyn ClientAuthorizer> {
        Box::new(ClientRules {
            acl: self.0.for_client(&Principal::from_conn_param(client)),
            last_publish: Mutex::new(None),
        })
    }
}

/// One client's rules.
struct ClientRules {
    acl: ClientAcl,
    /// The last topic published to (its buffer reused), and the answer about it.
    last_publish: Mutex<Option<(String, AclResult)>>,
}

impl ClientRules {
    fn decide(&self, action: Action, topic: &str) -> AclResult {
        let decision = self.acl.check(action, topic);
        if decision.is_no_match() {
            AclResult::NoMatch
        } else if decision.is_allowed() {
            AclResult::Allow
        } else {
            AclResult::Deny
        }
    }
}

impl ClientAuthorizer for ClientRules {
    fn check(&self, action: Action, topic: &str) -> AclCheck {
        if action != Action::Publish {
            return AclCheck::Ready(self.decide(action, topic));
        }
        let mut last = self.last_publish.lock();
        if let Some((known, result)) = last.as_ref()
            && known == topic
        {
            return AclCheck::Ready(*result);
        }
        let result = self.decide(action, topic);
        match last.as_mut() {
            Some((known, answer)) => {
                known.clear();
                known.push_str(topic);
                *answer = result;
            }
            None => *last = Some((topic.to_owned(), result)),
        }
        AclCheck::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mqtt_codec::{ClientId, Connect, ProtocolVersion};

    use super::*;
    use crate::acl::{Permit, Rule, RuleAction, TopicSpec, Who};
    use crate::{TransportInfo, TransportKind};

    fn answer(rules: &dyn ClientAuthorizer, action: Action, topic: &str) -> AclResult {
        match rules.check(action, topic) {
            AclCheck::Ready(result) => result,
            AclCheck::Pending(_) => panic!("the rules answer at once"),
        }
    }

    #[test]
    fn the_kept_answer_is_only_ever_the_answer_about_its_own_topic() {
        let deny = Rule::new(
            Permit::Deny,
            RuleAction::Publish,
            Who::All,
            vec![TopicSpec::parse("secret").unwrap()],
        );
        let allow = Rule::new(
            Permit::Allow,
            RuleAction::PubSub,
            Who::All,
            vec![TopicSpec::parse("open/#").unwrap()],
        );
        let acl = Acl::new(&[deny, allow], None, Permit::Deny);
        let id = ClientId::new("c").unwrap();
        let connect = Connect::new(ProtocolVersion::V5, id.clone());
        let transport = TransportInfo::new(TransportKind::Memory, None);
        let param = ConnParam::new(connect, id, transport, None, None);
        let rules = AclAuthorizer::new(acl).for_client(&param);
        for _ in 0..3 {
            assert_eq!(answer(&*rules, Action::Publish, "secret"), AclResult::Deny);
            assert_eq!(answer(&*rules, Action::Publish, "secret"), AclResult::Deny);
            assert_eq!(answer(&*rules, Action::Publish, "open/a"), AclResult::Allow);
            assert_eq!(
                answer(&*rules, Action::Publish, "other"),
                AclResult::NoMatch
            );
            // Another action about the same topic is not answered from the publish answer.
            assert_eq!(
                answer(&*rules, Action::Subscribe, "other"),
                AclResult::NoMatch
            );
            assert_eq!(
                answer(&*rules, Action::Subscribe, "secret"),
                AclResult::NoMatch
            );
            assert_eq!(
                answer(&*rules, Action::Publish, "secre"),
                AclResult::NoMatch
            );
        }
    }
}
