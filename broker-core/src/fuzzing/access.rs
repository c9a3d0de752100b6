//! The access control of the fuzzing broker (with the AUTH hook: byte 0, bit 3): a user
//! table, ACL rules compiled by the real engine, and an authorizer whose answers wait (a
//! remote service, in virtual time), so that scripts reach every refusal and the path where
//! packets wait behind a pending answer.

use std::sync::Arc;
use std::time::Duration;

use crate::ConnParam;
use crate::acl::{Acl, AclAuthorizer, Permit, Rule, RuleAction, TopicSpec, Who};
use crate::auth::{
    AccessControl, AclCheck, AclResult, Action, Authenticator, AuthnDenial, AuthnResult,
    Authorizer, BoxFuture, ClientAuthorizer,
};

/// How long the waiting authorizer takes to answer.
const ANSWER_DELAY: Duration = Duration::from_millis(200);

/// Anonymous clients and `user`/`secret` get in; other users are refused.
pub(super) fn access() -> AccessControl {
    let filter = |s: &str| TopicSpec::parse(s).ok().into_iter().collect::<Vec<_>>();
    let rules = [
        Rule::new(Permit::Deny, RuleAction::Publish, Who::All, filter("b/#")),
        Rule::new(
            Permit::Deny,
            RuleAction::Subscribe,
            Who::All,
            filter("sensor/+"),
        ),
        Rule::new(
            Permit::Allow,
            RuleAction::PubSub,
            Who::AnyUsername,
            filter("${username}/#"),
        ),
    ];
    AccessControl::default()
        .authenticator(Arc::new(Users))
        .authorizer(Arc::new(AclAuthorizer::new(Acl::new(
            &rules,
            None,
            Permit::Allow,
        ))))
        .authorizer(Arc::new(Waiting))
}

struct Users;

impl Authenticator for Users {
    fn name(&self) -> &str {
        "fuzz-users"
    }

    fn authenticate<'a>(&'a self, client: &'a ConnParam) -> BoxFuture<'a, AuthnResult> {
        Box::pin(async move {
            match client.username.as_deref() {
                None => AuthnResult::Ignore,
                Some("user") if client.password().map(|p| &p[..]) == Some(&b"secret"[..]) => {
                    AuthnResult::Allow { superuser: false }
                }
                Some(_) => AuthnResult::Deny(AuthnDenial::BadCredentials),
            }
        })
    }
}

/// Answers about topics whose first level is `c` after [`ANSWER_DELAY`]: filters with `#`
/// are denied, the rest allowed.
struct Waiting;

impl Authorizer for Waiting {
    fn name(&self) -> &str {
        "fuzz-waiting"
    }

    fn for_client(&self, _client: &ConnParam) -> Box<dyn ClientAuthorizer> {
        Box::new(Waiting)
    }
}

impl ClientAuthorizer for Waiting {
    fn check(&self, action: Action, topic: &str) -> AclCheck {
        if action == Action::Receive || topic.split('/').next() != Some("c") {
            return AclCheck::Ready(AclResult::NoMatch);
        }
        let deny = topic.contains('#');
        AclCheck::Pending(Box::pin(async move {
            tokio::time::sleep(ANSWER_DELAY).await;
            if deny {
                AclResult::Deny
            } else {
                AclResult::Allow
            }
        }))
    }
}
