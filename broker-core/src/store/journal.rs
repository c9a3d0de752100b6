//! The journal: changes waiting to be written, and the writer thread that writes them.
//!
//! Connections append changes under a short lock (no I/O on the publish path); the writer
//! takes everything appended so far as one batch, applies it in one transaction, and then
//! announces how far the store is durable. Each change gets a ticket (its position in the
//! journal); a connection that must not acknowledge before its changes are durable waits
//! until the announced position reaches its ticket. While a batch is being written the next
//! one fills up, so the cost of a commit is shared by everything that arrived meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::{Store, StoreOp, StoredMessage, SyncPolicy, to_wall_clock};
use crate::message::Message;

/// How long the writer waits before retrying a batch the store refused.
const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct Pending {
    ops: Vec<StoreOp>,
    /// How many changes were ever appended: the ticket of the last one.
    appended: u64,
    stopping: bool,
}

/// The journal shared by the broker and its writer thread.
#[derive(Debug)]
pub(crate) struct Journal {
    pending: Mutex<Pending>,
    appended_cond: Condvar,
    /// The ticket up to which every change is durable.
    durable: watch::Sender<u64>,
    sync: SyncPolicy,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The identifier the next stored message gets.
    next_message_id: AtomicU64,
}

impl Journal {
    /// Starts the writer thread over `store`; stored messages get identifiers from
    /// `first_message_id` on.
    pub(crate) fn start(
        store: Box<dyn Store>,
        sync: SyncPolicy,
        first_message_id: u64,
    ) -> std::io::Result<Arc<Self>> {
        let journal = Arc::new(Self {
            pending: Mutex::default(),
            appended_cond: Condvar::new(),
            durable: watch::Sender::new(0),
            sync,
            writer: Mutex::new(None),
            next_message_id: AtomicU64::new(first_message_id),
        });
        let writer = Arc::clone(&journal);
        let handle = std::thread::Builder::new()
            .name("nanomq-store".into())
            .spawn(move || writer.write_loop(store))?;
        *journal.writer.lock() = Some(handle);
        Ok(journal)
    }

    /// Appends a change; returns its ticket.
    pub(crate) fn record(&self, op: StoreOp) -> u64 {
        let mut pending = self.pending.lock();
        pending.ops.push(op);
        pending.appended += 1;
        let ticket = pending.appended;
        drop(pending);
        self.appended_cond.notify_one();
        ticket
    }

    /// The store identifier of `message`, given on first use: every delivery of one
    /// published message refers to one stored copy.
    pub(crate) fn message_id(&self, message: &Message) -> u64 {
        *message
            .store_id
            .get_or_init(|| self.next_message_id.fetch_add(1, Ordering::Relaxed))
    }

    /// `message` as the store records it.
    pub(crate) fn stored_message(&self, message: &Arc<Message>) -> StoredMessage {
        StoredMessage {
            id: self.message_id(message),
            message: Arc::clone(message),
            expires_at: message.expires_at.map(to_wall_clock),
        }
    }

    /// The ticket an acknowledgement must wait for after changes up to `ticket` were
    /// recorded: `ticket` under [`SyncPolicy::Always`], none (0) otherwise.
    pub(crate) fn ack_ticket(&self, ticket: u64) -> u64 {
        match self.sync {
            SyncPolicy::Always => ticket,
            SyncPolicy::Periodic(_) => 0,
        }
    }

    /// Watches how far the store is durable.
    pub(crate) fn durable(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Waits until everything recorded so far is durable, then stops the writer. The writer
    /// holds the journal, so it must be stopped: [`Journal::stop`] does it without waiting.
    pub(crate) async fn close(&self) {
        let last = self.pending.lock().appended;
        let mut durable = self.durable.subscribe();
        if tokio::time::timeout(Duration::from_secs(10), durable.wait_for(|d| *d >= last))
            .await
            .is_err()
        {
            tracing::error!("the session store did not finish writing within 10 s");
        }
        self.stop();
    }

    /// Stops the writer after it has written what is recorded (or failed to).
    pub(crate) fn stop(&self) {
        self.pending.lock().stopping = true;
        self.appended_cond.notify_one();
        let handle = self.writer.lock().take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("the session store writer panicked");
        }
    }

    fn write_loop(&self, mut store: Box<dyn Store>) {
        let mut batch: Vec<StoreOp> = Vec::new();
        loop {
            let started = Instant::now();
            let batch_end = {
                let mut pending = self.pending.lock();
                while pending.ops.is_empty() && batch.is_empty() && !pending.stopping {
                    self.appended_cond.wait(&mut pending);
                }
                if pending.ops.is_empty() && batch.is_empty() {
                    return;
                }
                if batch.is_empty() {
                    // Take the filled vector and leave the empty one: no copy, and both keep
                    // their capacity.
                    std::mem::swap(&mut batch, &mut pending.ops);
                } else {
                    // A failed batch is retried with what arrived since.
                    batch.append(&mut pending.ops);
                }
                pending.appended
            };
            match store.apply(&batch) {
                Ok(()) => {
                    batch.clear();
                    if batch.capacity() > 64 * 1024 {
                        batch = Vec::new();
                    }
                    self.durable.send_replace(batch_end);
                }
                Err(error) => {
                    if self.pending.lock().stopping {
                        tracing::error!(%error, lost = batch.len(), "writing the session store failed while stopping; these changes are lost");
                        return;
                    }
                    tracing::error!(%error, "writing the session store failed; retrying");
                    std::thread::sleep(RETRY_AFTER);
                    continue;
                }
            }
            if let SyncPolicy::Periodic(interval) = self.sync {
                let next = started + interval;
                let mut pending = self.pending.lock();
                while !pending.stopping {
                    let now = Instant::now();
                    if now >= next {
                        break;
                    }
                    self.appended_cond.wait_for(&mut pending, next - now);
                }
            }
        }
    }
}
