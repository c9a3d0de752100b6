//! The answers of the service, kept for a while (`cache_ttl`) so a client that reconnects or
//! publishes to the same topic again is not another round trip. Entries are keyed by a
//! 128-bit keyed hash of what the request carries (user name, client id, the password and
//! whatever else the request's placeholders use; for ACL, the action and the topic): the
//! cache holds no password, nor anything a reader of memory could turn back into one
//! without the process's random keys. Bounded in entries: the oldest go first. Split in
//! [`SHARDS`] locks by key, so connections checking at once on many cores rarely wait for
//! each other.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many independently locked parts a cache has.
const SHARDS: usize = 16;

/// What a cache entry is found by.
pub(crate) type Key = [u64; 2];

/// Makes [`Key`]s: two SipHash instances with independent random keys.
#[derive(Debug)]
pub(crate) struct Keyer {
    a: RandomState,
    b: RandomState,
}

impl Keyer {
    pub(crate) fn new() -> Self {
        Self {
            a: RandomState::new(),
            b: RandomState::new(),
        }
    }

    /// The key of what `feed` writes.
    pub(crate) fn key(&self, feed: impl Fn(&mut dyn Hasher)) -> Key {
        let mut a = self.a.build_hasher();
        let mut b = self.b.build_hasher();
        feed(&mut a);
        feed(&mut b);
        [a.finish(), b.finish()]
    }
}

/// A bounded map whose entries expire `ttl` after they were put in.
#[derive(Debug)]
pub(crate) struct TtlCache<V> {
    ttl: Duration,
    /// Per shard.
    max_entries: usize,
    shards: Box<[Mutex<Inner<V>>]>,
}

#[derive(Debug)]
struct Inner<V> {
    entries: HashMap<Key, (V, Instant)>,
    /// Keys in the order they were put in, with their expiry: as every entry lives `ttl`,
    /// this is also the order they expire in. A key put in again is here twice; the older
    /// one is recognised by its expiry and skipped.
    order: VecDeque<(Key, Instant)>,
}

impl<V: Copy> TtlCache<V> {
    /// A cache of at most `max_entries` entries, each kept `ttl`; a zero `ttl` or
    /// `max_entries` keeps nothing.
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        let shards = if max_entries < SHARDS { 1 } else { SHARDS };
        Self {
            ttl,
            max_entries: max_entries / shards,
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Inner {
                        entries: HashMap::new(),
                        order: VecDeque::new(),
                    })
                })
                .collect(),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0
    }

    /// The shard of `key` (`new` makes at least one; none would keep nothing).
    fn shard(&self, key: &Key) -> Option<std::sync::MutexGuard<'_, Inner<V>>> {
        // The key is a random hash already: its low bits pick a shard evenly.
        let count = u64::try_from(self.shards.len()).ok()?.max(1);
        let index = usize::try_from(key[0] % count).ok()?;
        let shard = self.shards.get(index)?;
        Some(shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The value kept for `key`, if it has not expired at `now`.
    pub(crate) fn get(&self, key: &Key, now: Instant) -> Option<V> {
        if !self.enabled() {
            return None;
        }
        let inner = self.shard(key)?;
        inner
            .entries
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| *value)
    }

    /// Keeps `value` for `key` from `now` on.
    pub(crate) fn insert(&self, key: Key, value: V, now: Instant) {
        if !self.enabled() {
            return;
        }
        let expires = now + self.ttl;
        let Some(mut inner) = self.shard(&key) else {
            return;
        };
        inner.purge(now, self.max_entries);
        inner.entries.insert(key, (value, expires));
        inner.order.push_back((key, expires));
    }

    /// How many entries are kept (expired ones not yet purged included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }
}

impl<V> Inner<V> {
    /// Drops the expired entries, and the oldest until there is room for one more.
    fn purge(&mut self, now: Instant, max_entries: usize) {
        while let Some(&(key, expires)) = self.order.front() {
            let full = self.entries.len() >= max_entries;
            if expires > now && !full {
                break;
            }
            self.order.pop_front();
            if self
                .entries
                .get(&key)
                .is_some_and(|(_, current)| *current == expires)
            {
                self.entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn key(n: u64) -> Key {
        [n, n]
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TtlCache::new(TTL, 10);
        let start = Instant::now();
        cache.insert(key(1), 'a', start);
        assert_eq!(cache.get(&key(1), start + TTL / 2), Some('a'));
        assert_eq!(cache.get(&key(1), start + TTL), None);
        assert_eq!(cache.get(&key(2), start), None);
    }

    #[test]
    fn the_oldest_go_when_full() {
        let cache = TtlCache::new(TTL, 3);
        let start = Instant::now();
        for n in 0..10u64 {
            cache.insert(key(n), n, start + Duration::from_millis(n));
            assert!(cache.len() <= 3);
        }
        let now = start + Duration::from_millis(10);
        assert_eq!(cache.get(&key(6), now), None);
        assert_eq!(
            (7..10).map(|n| cache.get(&key(n), now)).collect::<Vec<_>>(),
            [Some(7), Some(8), Some(9)]
        );
    }

    #[test]
    fn a_key_put_in_again_keeps_its_new_value_and_expiry() {
        let cache = TtlCache::new(TTL, 10);
        let start = Instant::now();
        cache.insert(key(1), 'a', start);
        cache.insert(key(1), 'b', start + TTL / 2);
        // The first insertion's record expires: it must not take the second one with it.
        let later = start + TTL + Duration::from_secs(1);
        cache.insert(key(2), 'c', later);
        assert_eq!(cache.get(&key(1), later), Some('b'));
        assert_eq!(cache.get(&key(2), later), Some('c'));
        let inner = cache.shards[0].lock().unwrap();
        assert_eq!(inner.order.len(), 2, "the stale record is purged");
    }

    #[test]
    fn a_large_cache_is_sharded_and_stays_bounded() {
        let cache = TtlCache::new(TTL, 160);
        assert_eq!(cache.shards.len(), SHARDS);
        let keyer = Keyer::new();
        let now = Instant::now();
        for n in 0..10_000u64 {
            cache.insert(keyer.key(|h| h.write_u64(n)), n, now);
        }
        assert!(cache.len() <= 160, "{} entries", cache.len());
        let last = keyer.key(|h| h.write_u64(9_999));
        assert_eq!(cache.get(&last, now), Some(9_999));
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = TtlCache::new(Duration::ZERO, 10);
        let now = Instant::now();
        cache.insert(key(1), 1, now);
        assert_eq!(cache.get(&key(1), now), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn keys_differ_by_what_was_fed() {
        let keyer = Keyer::new();
        let a = keyer.key(|h| h.write(b"alice"));
        assert_eq!(a, keyer.key(|h| h.write(b"alice")));
        assert_ne!(a, keyer.key(|h| h.write(b"alicf")));
        assert_ne!(a[0], a[1], "the two halves come from independent keys");
    }
}
