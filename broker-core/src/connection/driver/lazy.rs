//! What a connection holds only while it uses it: acknowledgements held for the store,
//! topic aliases, a re-authentication, the reason it is being closed for. Each is a box
//! allocated on first use, so that an idle connection pays a pointer for it in its task
//! rather than the collection or value itself.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU16;

use mqtt_codec::{Packet, TopicName};

use crate::auth::AuthExchange;

/// Acknowledgements held for the store, allocated while there are any: they wait only with
/// `sync = "always"`, and an empty `VecDeque` would take 32 bytes in every task.
// Boxed on purpose: the box (8 bytes) is what an idle connection holds, not the
// collection's header.
#[allow(clippy::box_collection)]
#[derive(Default)]
pub(super) struct HeldAcks(Option<Box<VecDeque<(u64, Packet)>>>);

impl HeldAcks {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(super) fn push_back(&mut self, held: (u64, Packet)) {
        self.0.get_or_insert_default().push_back(held);
    }

    pub(super) fn front(&self) -> Option<&(u64, Packet)> {
        self.0.as_ref().and_then(|held| held.front())
    }

    pub(super) fn pop_front(&mut self) -> Option<(u64, Packet)> {
        let held = self.0.as_mut()?;
        let first = held.pop_front();
        if held.is_empty() {
            self.0 = None;
        }
        first
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &(u64, Packet)> {
        self.0.iter().flat_map(|held| held.iter())
    }
}

/// A connection's topic aliases.
#[derive(Default)]
pub(super) struct Aliases {
    /// Those the client set up towards us.
    pub(super) inbound: HashMap<u16, TopicName>,
    /// Those we set up towards the client.
    pub(super) outbound: HashMap<TopicName, NonZeroU16>,
}

/// A re-authentication in progress and the reason the connection is being closed for:
/// boxed together, as one pointer in the task where the two took 32 bytes.
#[derive(Default)]
pub(super) struct Rare(Option<Box<RareState>>);

#[derive(Default)]
struct RareState {
    /// The exchange waiting for the client's next AUTH.
    reauth: Option<Box<dyn AuthExchange>>,
    /// Why the broker is closing the connection, for the DISCONNECT's Reason String.
    close_reason: Option<Box<str>>,
}

impl Rare {
    /// Whether neither a re-authentication nor a close reason is there.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(super) fn set_close_reason(&mut self, reason: Box<str>) {
        self.0.get_or_insert_default().close_reason = Some(reason);
    }

    pub(super) fn take_close_reason(&mut self) -> Option<Box<str>> {
        let reason = self.0.as_mut()?.close_reason.take();
        self.release();
        reason
    }

    pub(super) fn set_reauth(&mut self, exchange: Box<dyn AuthExchange>) {
        self.0.get_or_insert_default().reauth = Some(exchange);
    }

    pub(super) fn take_reauth(&mut self) -> Option<Box<dyn AuthExchange>> {
        let exchange = self.0.as_mut()?.reauth.take();
        self.release();
        exchange
    }

    /// Frees the box once it holds nothing.
    fn release(&mut self) {
        if self
            .0
            .as_ref()
            .is_some_and(|rare| rare.reauth.is_none() && rare.close_reason.is_none())
        {
            self.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rare_box_is_freed_once_empty() {
        let mut rare = Rare::default();
        assert!(rare.take_close_reason().is_none());
        rare.set_close_reason("bye".into());
        assert!(rare.0.is_some());
        assert_eq!(rare.take_close_reason().as_deref(), Some("bye"));
        assert!(rare.0.is_none());
    }
}
