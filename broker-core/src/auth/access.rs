//! The access-control chain: the authenticators and authorizers the configuration names, in
//! its order, with the policies around them (`allow_anonymous`, `no_match`,
//! `deny_action`). The broker holds one [`AccessControl`] and swaps it whole on reload; a
//! connection holds a [`ClientAccess`] resolved from it at CONNECT and re-resolved when the
//! broker's has been swapped, so a check sees the old rules or the new ones, never half of
//! each.

use std::net::SocketAddr;
use std::sync::Arc;

use super::authn::{Authenticator, AuthnDenial, AuthnResult, BoxFuture};
use super::authz::{AclCheck, AclResult, Action, Authorizer, ClientAuthorizer};
use crate::ConnParam;

/// What happens to a PUBLISH or SUBSCRIBE the rules deny (NanoMQ's `deny_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenyAction {
    /// Refuse the one message or filter (MQTT 5: reason code 0x87; 3.1.1: a dropped
    /// message, SUBACK 0x80) and keep the connection.
    #[default]
    Ignore,
    /// Close the connection (MQTT 5: DISCONNECT 0x87).
    Disconnect,
}

/// Who may connect and what they may do: every source of credentials and rules, in order.
pub struct AccessControl {
    authenticators: Vec<Arc<dyn Authenticator>>,
    authorizers: Vec<Arc<dyn Authorizer>>,
    /// The per-client view of no authorizer at all, shared: an empty `Arc<[_]>` made per
    /// connection would still be an allocation in every connection.
    none: Arc<[Box<dyn ClientAuthorizer>]>,
    allow_anonymous: bool,
    /// Per-listener overrides of `allow_anonymous`, by the listener's bound address.
    listener_anonymous: Vec<(SocketAddr, bool)>,
    /// Whether an action no rule is about is allowed.
    no_match_allows: bool,
    deny_action: DenyAction,
}

impl Default for AccessControl {
    /// Anyone may connect and do anything: the broker without an access-control section.
    fn default() -> Self {
        Self {
            authenticators: Vec::new(),
            authorizers: Vec::new(),
            none: Arc::new([]),
            allow_anonymous: true,
            listener_anonymous: Vec::new(),
            no_match_allows: true,
            deny_action: DenyAction::Ignore,
        }
    }
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: Vec<&str>| v.join(", ");
        f.debug_struct("AccessControl")
            .field(
                "authenticators",
                &names(self.authenticators.iter().map(|a| a.name()).collect()),
            )
            .field(
                "authorizers",
                &names(self.authorizers.iter().map(|a| a.name()).collect()),
            )
            .field("allow_anonymous", &self.allow_anonymous)
            .field("listener_anonymous", &self.listener_anonymous)
            .field("no_match_allows", &self.no_match_allows)
            .field("deny_action", &self.deny_action)
            .finish()
    }
}

impl AccessControl {
    /// Asks `authenticator` after those added before it.
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticators.push(authenticator);
        self
    }

    /// Asks `authorizer` after those added before it.
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizers.push(authorizer);
        self
    }

    /// Whether a client with no credentials that no authenticator decided about may
    /// connect (default true).
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// `allow_anonymous` for the clients of the listener bound to `listener`.
    pub fn listener_allow_anonymous(mut self, listener: SocketAddr, allow: bool) -> Self {
        self.listener_anonymous
            .retain(|(addr, _)| *addr != listener);
        self.listener_anonymous.push((listener, allow));
        self
    }

    /// Whether an action no rule is about is allowed (default true). `$SYS` topics are
    /// never allowed by this alone once there are rules: a rule must name them.
    pub fn no_match_allows(mut self, allow: bool) -> Self {
        self.no_match_allows = allow;
        self
    }

    /// What a denial does to the connection (default [`DenyAction::Ignore`]).
    pub fn deny_action(mut self, action: DenyAction) -> Self {
        self.deny_action = action;
        self
    }

    /// Whether anonymous clients may connect on the listener bound to `listener` (the
    /// broker-wide setting where the listener has no override).
    pub fn anonymous_allowed(&self, listener: Option<SocketAddr>) -> bool {
        listener
            .and_then(|l| self.listener_anonymous.iter().find(|(addr, _)| *addr == l))
            .map_or(self.allow_anonymous, |(_, allow)| *allow)
    }

    /// Whether any authenticator is configured.
    pub fn has_authenticators(&self) -> bool {
        !self.authenticators.is_empty()
    }

    /// Decides whether `client` may connect: the first authenticator that allows or denies
    /// decides. When none does, a client that gave a user name is refused as unknown
    /// (if there are authenticators to know it), and one that did not is anonymous. A client
    /// whose user name is its verified certificate's identity is authenticated by the
    /// certificate.
    pub(crate) async fn authenticate(&self, client: &ConnParam) -> Result<Identity, AuthnDenial> {
        if client.transport.username_from_certificate() && client.username.is_some() {
            return Ok(Identity { superuser: false });
        }
        for authenticator in &self.authenticators {
            match authenticator.authenticate(client).await {
                AuthnResult::Allow { superuser } => return Ok(Identity { superuser }),
                AuthnResult::Deny(denial) => return Err(denial),
                AuthnResult::Ignore => {}
            }
        }
        if client.username.is_some() && self.has_authenticators() {
            return Err(AuthnDenial::BadCredentials);
        }
        if self.anonymous_allowed(client.transport.listener) {
            Ok(Identity { superuser: false })
        } else {
            Err(AuthnDenial::NotAuthorized)
        }
    }
}

/// What authentication established about a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Identity {
    pub(crate) superuser: bool,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A rule allowed it (or the client is a superuser).
    Allowed,
    /// No rule was about it and `no_match` allows.
    AllowedByDefault,
    /// A rule denied it.
    Denied,
    /// No rule was about it and `no_match` denies (or it is a `$SYS` topic no rule names).
    DeniedByDefault,
}

impl Decision {
    pub(crate) fn allowed(self) -> bool {
        matches!(self, Self::Allowed | Self::AllowedByDefault)
    }

    /// Whether a rule, rather than `no_match`, decided.
    pub(crate) fn by_rule(self) -> bool {
        matches!(self, Self::Allowed | Self::Denied)
    }
}

/// A decision now, or one that waits for a remote service.
pub(crate) enum Checked {
    Ready(Decision),
    Pending(BoxFuture<'static, Decision>),
}

/// One connection's authorization: the rules that apply to its client, resolved at CONNECT.
pub(crate) struct ClientAccess {
    /// The broker's access-control generation these were resolved from.
    pub(crate) generation: u64,
    superuser: bool,
    /// Empty (the broker's shared empty list) when the broker has no authorizer or the client
    /// is a superuser: every check is decided without asking anyone.
    authorizers: Arc<[Box<dyn ClientAuthorizer>]>,
    no_match_allows: bool,
    pub(crate) deny_action: DenyAction,
}

impl ClientAccess {
    /// `client`'s view of `access`.
    pub(crate) fn new(
        access: &AccessControl,
        generation: u64,
        client: &ConnParam,
        identity: Identity,
    ) -> Self {
        let authorizers = if identity.superuser || access.authorizers.is_empty() {
            Arc::clone(&access.none)
        } else {
            access
                .authorizers
                .iter()
                .map(|a| a.for_client(client))
                .collect()
        };
        Self {
            generation,
            superuser: identity.superuser,
            authorizers,
            no_match_allows: access.no_match_allows || access.authorizers.is_empty(),
            deny_action: access.deny_action,
        }
    }

    /// Whether every check passes without asking anyone: no authorizer, or a superuser.
    pub(crate) fn is_open(&self) -> bool {
        self.authorizers.is_empty() && self.no_match_allows
    }

    pub(crate) fn identity(&self) -> Identity {
        Identity {
            superuser: self.superuser,
        }
    }

    /// Whether the client may do `action` with `topic` (a shared subscription's filter is
    /// checked without its `$share/group/` prefix).
    pub(crate) fn check(&self, action: Action, topic: &str) -> Checked {
        if self.superuser {
            return Checked::Ready(Decision::Allowed);
        }
        let topic = match action {
            Action::Subscribe => shared_filter(topic),
            Action::Publish | Action::Receive => topic,
        };
        for (i, authorizer) in self.authorizers.iter().enumerate() {
            match authorizer.check(action, topic) {
                AclCheck::Ready(AclResult::NoMatch) => {}
                AclCheck::Ready(result) => return Checked::Ready(decided(result)),
                AclCheck::Pending(answer) => {
                    let rest = Arc::clone(&self.authorizers);
                    let no_match = self.default(topic);
                    let topic = topic.to_owned();
                    return Checked::Pending(Box::pin(async move {
                        match answer.await {
                            AclResult::NoMatch => {}
                            result => return decided(result),
                        }
                        for authorizer in rest.iter().skip(i + 1) {
                            let result = match authorizer.check(action, &topic) {
                                AclCheck::Ready(result) => result,
                                AclCheck::Pending(answer) => answer.await,
                            };
                            if result != AclResult::NoMatch {
                                return decided(result);
                            }
                        }
                        no_match
                    }));
                }
            }
        }
        Checked::Ready(self.default(topic))
    }

    /// Whether the client may receive a message published to `topic` (a retained message at
    /// SUBSCRIBE). Checked per message, so answered now: an authorizer that would have to
    /// wait counts as having no rule about it.
    pub(crate) fn check_receive(&self, topic: &str) -> Decision {
        if self.superuser {
            return Decision::Allowed;
        }
        for authorizer in self.authorizers.iter() {
            if let AclCheck::Ready(result @ (AclResult::Allow | AclResult::Deny)) =
                authorizer.check(Action::Receive, topic)
            {
                return decided(result);
            }
        }
        self.default(topic)
    }

    /// What `no_match` says about `topic`.
    fn default(&self, topic: &str) -> Decision {
        let system = topic.starts_with('$') && !self.authorizers.is_empty();
        if self.no_match_allows && !system {
            Decision::AllowedByDefault
        } else {
            Decision::DeniedByDefault
        }
    }
}

fn decided(result: AclResult) -> Decision {
    match result {
        AclResult::Allow => Decision::Allowed,
        AclResult::Deny | AclResult::NoMatch => Decision::Denied,
    }
}

/// The filter of a shared subscription (`$share/group/filter`), or `filter` itself.
fn shared_filter(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, filter)| filter)
}
