//! Counters of each bridge to an upstream broker: kept here, beside the broker's own
//! [`crate::MetricsSnapshot`], so that whatever shows metrics (the admin API, `$SYS`) finds
//! every bridge's in one place. The bridge itself lives in the binary and counts into its
//! [`BridgeCounters`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// The live counters of one bridge, shared with the bridge's task.
#[derive(Debug, Default)]
pub struct BridgeCounters {
    connected: AtomicBool,
    forwarded: AtomicU64,
    received: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

impl BridgeCounters {
    /// Whether the link to the upstream is up.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// A message went upstream and the upstream acknowledged it (QoS 0: once written).
    pub fn forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    /// A message came from upstream and the local broker took it.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// How many messages the bridge holds for the upstream now (taken from the local broker,
    /// not yet acknowledged upstream; the local session's own queue is not counted).
    pub fn set_queued(&self, queued: usize) {
        self.queued.store(queued as u64, Ordering::Relaxed);
    }

    /// A message the bridge could not forward: QoS 0 while the link was down, or refused by
    /// the upstream (too large, not authorized).
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection attempt after the first.
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as of now.
    pub fn snapshot(&self, name: &str) -> BridgeSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeSnapshot {
            name: name.to_owned(),
            connected: self.connected.load(Ordering::Relaxed),
            forwarded: get(&self.forwarded),
            received: get(&self.received),
            queued: get(&self.queued),
            dropped: get(&self.dropped),
            reconnects: get(&self.reconnects),
        }
    }
}

/// One bridge's counters, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeSnapshot {
    /// The bridge's name in the configuration.
    pub name: String,
    /// Whether its link to the upstream is up.
    pub connected: bool,
    /// Messages forwarded upstream and acknowledged there.
    pub forwarded: u64,
    /// Messages received from upstream and published locally.
    pub received: u64,
    /// Messages held for the upstream now.
    pub queued: u64,
    /// Messages that could not be forwarded.
    pub dropped: u64,
    /// Connection attempts after the first.
    pub reconnects: u64,
}

/// Every bridge's counters, by name.
#[derive(Debug, Default)]
pub(crate) struct BridgeRegistry {
    bridges: Mutex<BTreeMap<String, Arc<BridgeCounters>>>,
}

impl BridgeRegistry {
    /// The counters of the bridge `name`, made on first use: a bridge started again (a
    /// reload) keeps counting where it was.
    pub(crate) fn counters(&self, name: &str) -> Arc<BridgeCounters> {
        Arc::clone(self.bridges.lock().entry(name.to_owned()).or_default())
    }

    /// Every bridge's counters, in name order.
    pub(crate) fn snapshot(&self) -> Vec<BridgeSnapshot> {
        self.bridges
            .lock()
            .iter()
            .map(|(name, counters)| counters.snapshot(name))
            .collect()
    }
}
