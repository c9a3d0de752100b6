//! The registry: every session the broker keeps, found by its client identifier.
//!
//! A set of sessions that hash and compare by their own client identifier, not a map from
//! a copy of it: an entry is the session's pointer (8 bytes) where a map's took the key's
//! 32 as well, in every session's share of the table; and a key cannot name another
//! session than the one it finds.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use mqtt_codec::ClientId;

use crate::session::SessionShared;

/// A session in the registry, hashed and compared by its client identifier.
#[derive(Debug)]
struct Registered(Arc<SessionShared>);

impl Hash for Registered {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `ClientId` hashes: `Borrow` needs the two to agree.
        self.0.client_id.hash(state);
    }
}

impl PartialEq for Registered {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id == other.0.client_id
    }
}

impl Eq for Registered {}

impl Borrow<ClientId> for Registered {
    fn borrow(&self) -> &ClientId {
        &self.0.client_id
    }
}

/// The sessions, one per client identifier.
#[derive(Debug, Default)]
pub(crate) struct Registry(HashSet<Registered>);

impl Registry {
    /// The session of `client_id`.
    pub(crate) fn get(&self, client_id: &ClientId) -> Option<&Arc<SessionShared>> {
        self.0.get(client_id).map(|registered| &registered.0)
    }

    /// Whether a session of `client_id` is registered.
    pub(crate) fn contains_key(&self, client_id: &ClientId) -> bool {
        self.0.contains(client_id)
    }

    /// Registers `session` under its client identifier, in place of the one there was.
    pub(crate) fn insert(&mut self, session: Arc<SessionShared>) {
        self.0.replace(Registered(session));
    }

    /// Takes the session of `client_id` out, and gives the table's memory back once it is
    /// mostly empty (after a burst of clients has come and gone, the broker returns to its
    /// idle footprint).
    pub(crate) fn remove(&mut self, client_id: &ClientId) {
        self.0.remove(client_id);
        if self.0.capacity() > 64 && self.0.len() * 4 < self.0.capacity() {
            self.0.shrink_to(self.0.len() * 2);
        }
    }

    /// How many sessions there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every session, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<SessionShared>> {
        self.0.iter().map(|registered| &registered.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, key: u64) -> Arc<SessionShared> {
        Arc::new(SessionShared::new(ClientId::new(id).unwrap(), key))
    }

    #[test]
    fn a_session_is_found_by_its_client_id_and_replaced_by_the_next() {
        let mut registry = Registry::default();
        let first = session("a", 1);
        registry.insert(Arc::clone(&first));
        registry.insert(session("b", 2));
        let a = ClientId::new("a").unwrap();
        assert!(Arc::ptr_eq(registry.get(&a).unwrap(), &first));
        let second = session("a", 3);
        registry.insert(Arc::clone(&second));
        assert_eq!(registry.len(), 2);
        assert!(Arc::ptr_eq(registry.get(&a).unwrap(), &second));
        registry.remove(&a);
        assert!(!registry.contains_key(&a));
        assert_eq!(registry.values().count(), 1);
    }

    #[test]
    fn a_mostly_empty_table_gives_its_memory_back() {
        let mut registry = Registry::default();
        let ids: Vec<ClientId> = (0..1_000)
            .map(|n| ClientId::new(format!("c{n}")).unwrap())
            .collect();
        for (n, id) in ids.iter().enumerate() {
            registry.insert(Arc::new(SessionShared::new(id.clone(), n as u64)));
        }
        let full = registry.0.capacity();
        for id in &ids[10..] {
            registry.remove(id);
        }
        assert!(
            registry.0.capacity() < full / 4,
            "{}",
            registry.0.capacity()
        );
    }
}
