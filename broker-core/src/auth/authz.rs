//! Authorization: what an authenticated client may do, checked at every PUBLISH, at every
//! SUBSCRIBE filter, for its will (at CONNECT and when it is published) and for each
//! retained message a subscription would deliver.
//!
//! An [`Authorizer`] is asked once per connection for a [`ClientAuthorizer`]: the rules
//! that apply to this client with its placeholders resolved, so a check on the publish path
//! is a lookup, not a scan of every rule. The per-connection form lives in the connection's
//! driver and goes with it.

use super::authn::BoxFuture;
use crate::ConnParam;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publish to a topic name (PUBLISH, and the will).
    Publish,
    /// Subscribe to a topic filter (a shared subscription is checked by its filter, without
    /// the `$share/group/` prefix).
    Subscribe,
    /// Receive a message published to a topic name (retained messages at SUBSCRIBE):
    /// Mosquitto's `read`.
    Receive,
}

impl Action {
    /// The action's name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Receive => "receive",
        }
    }
}

/// What one authorizer says about one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclResult {
    /// A rule allows it.
    Allow,
    /// A rule denies it.
    Deny,
    /// No rule of this authorizer is about it: the next one decides, and after the last,
    /// `no_match`.
    NoMatch,
}

/// An answer now, or one that needs waiting for (a remote service). A pending answer owns
/// what it needs (a clone of the client's `Arc`s, a copy of the topic): the connection keeps
/// it while it handles other packets.
pub enum AclCheck {
    /// The answer.
    Ready(AclResult),
    /// The answer, once the future completes.
    Pending(BoxFuture<'static, AclResult>),
}

impl std::fmt::Debug for AclCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            Self::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// A source of authorization rules.
pub trait Authorizer: Send + Sync + 'static {
    /// A short name for logs (`acl`, `acl_file`, `http`).
    fn name(&self) -> &str;

    /// The rules that apply to `client`, resolved for it.
    fn for_client(&self, client: &ConnParam) -> Box<dyn ClientAuthorizer>;
}

/// One client's view of an [`Authorizer`], held by its connection.
pub trait ClientAuthorizer: Send + Sync {
    /// Whether the client may do `action` with `topic` (a topic name, or for
    /// [`Action::Subscribe`] a filter). [`Action::Receive`] is checked for every retained
    /// message a subscription would deliver, so it must be answered at once: a pending
    /// answer to it counts as no rule about it.
    fn check(&self, action: Action, topic: &str) -> AclCheck;
}
