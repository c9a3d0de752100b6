//! A session's subscriptions, as the session keeps them (the index keeps them for routing):
//! filter to options and subscription identifier.
//!
//! Allocated with the first subscription: an empty `HashMap` takes 48 bytes (its table
//! and its hasher's keys) in every session, and many clients (devices that only publish)
//! never subscribe.

use std::collections::HashMap;
use std::iter::Flatten;

use mqtt_codec::{SubscriptionId, SubscriptionOptions, TopicFilter};

/// What a subscription holds besides its filter.
pub(crate) type Subscribed = (SubscriptionOptions, Option<SubscriptionId>);

/// The subscriptions of one session.
// Boxed on purpose: the box (8 bytes) is what a session without subscriptions holds.
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
pub(crate) struct SessionFilters(Option<Box<HashMap<TopicFilter, Subscribed>>>);

impl SessionFilters {
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |map| map.len())
    }

    pub(crate) fn contains_key(&self, filter: &TopicFilter) -> bool {
        self.0.as_ref().is_some_and(|map| map.contains_key(filter))
    }

    /// Adds or replaces the subscription to `filter`; the one it replaced, if any.
    pub(crate) fn insert(
        &mut self,
        filter: TopicFilter,
        subscribed: Subscribed,
    ) -> Option<Subscribed> {
        self.0.get_or_insert_default().insert(filter, subscribed)
    }

    /// Removes the subscription to `filter`, and the map with the last one.
    pub(crate) fn remove(&mut self, filter: &TopicFilter) -> Option<Subscribed> {
        let map = self.0.as_mut()?;
        let removed = map.remove(filter);
        if map.is_empty() {
            self.0 = None;
        }
        removed
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &TopicFilter> {
        self.iter().map(|(filter, _)| filter)
    }

    pub(crate) fn iter(&self) -> Iter<'_> {
        self.0.as_deref().into_iter().flatten()
    }
}

/// The subscriptions of a session, in no particular order.
pub(crate) type Iter<'a> = Flatten<std::option::IntoIter<&'a HashMap<TopicFilter, Subscribed>>>;

impl<'a> IntoIterator for &'a SessionFilters {
    type Item = (&'a TopicFilter, &'a Subscribed);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_exists_only_while_there_are_subscriptions() {
        let mut filters = SessionFilters::default();
        let a = TopicFilter::new("a/#").unwrap();
        assert_eq!(filters.len(), 0);
        assert!(filters.remove(&a).is_none());
        assert!(
            filters
                .insert(a.clone(), (SubscriptionOptions::default(), None))
                .is_none()
        );
        assert!(filters.contains_key(&a));
        assert_eq!(filters.keys().collect::<Vec<_>>(), [&a]);
        assert!(filters.remove(&a).is_some());
        assert!(filters.0.is_none());
    }
}
