//! The journal: changes waiting to be written, and the writer thread that writes them.
//!
//! Connections append changes under a short lock (no I/O on the publish path); the writer
//! takes everything appended so far as one batch, applies it in one transaction, and then
//! announces how far the store is durable. Each change gets a ticket (its position in the
//! journal); a connection that must not acknowledge before its changes are durable waits
//! until the announced position reaches its ticket. While a batch is being written the next
//! one fills up, so the cost of a commit is shared by everything that arrived meanwhile.
//!
//! The writer also reads a session's queued deliveries back ([`Journal::read_queued`]),
//! between batches, from what the store holds and from the changes it is about to write:
//! a read never waits for the store to catch up with a backlog, only for the batch being
//! written when it was asked for.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::{
    DeliveryState, Store, StoreError, StoreOp, StoredDelivery, StoredMessage, SyncPolicy,
    to_wall_clock,
};
use crate::message::Message;
use crate::metrics::{Histogram, StoreMetrics};

/// Under `sync = "periodic"`, how many changes may wait for the writer before publishers'
/// acknowledgements wait for it too (a few hundred bytes each: tens of MB at most). Far
/// above what one flush interval holds at full speed (about 60,000 on the benchmark).
const BACKLOG_LIMIT: u64 = 250_000;

/// How long the writer waits before retrying a batch the store refused.
const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct Pending {
    ops: Vec<StoreOp>,
    /// How many changes were ever appended: the ticket of the last one.
    appended: u64,
    /// Reads asked for.
    reads: Vec<QueueRead>,
    stopping: bool,
    /// The writer waits for changes: the next one must wake it. Not while it writes, nor
    /// while it sleeps out a flush interval (a wake per change would only make it check
    /// the clock and sleep again, taking this lock from the publishers each time).
    writer_idle: bool,
}

/// A read of a session's queued deliveries (see [`Store::read_queued`]), answered on the
/// writer thread.
pub(crate) struct QueueRead {
    pub(crate) session: u64,
    pub(crate) from_seq: u64,
    pub(crate) limit: usize,
    /// Called with what the store gave (on the writer thread: it must not block).
    pub(crate) reply: Box<dyn FnOnce(Result<Vec<StoredDelivery>, StoreError>) + Send>,
}

impl std::fmt::Debug for QueueRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueRead")
            .field("session", &self.session)
            .field("from_seq", &self.from_seq)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The journal shared by the broker and its writer thread.
#[derive(Debug)]
pub(crate) struct Journal {
    pending: Mutex<Pending>,
    appended_cond: Condvar,
    /// The ticket up to which every change is durable, for those who wait for it.
    durable: watch::Sender<u64>,
    /// The same, for those who only look: read on every acknowledgement, where the watch's
    /// lock would be taken by every connection in turn.
    durable_now: AtomicU64,
    sync: SyncPolicy,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The identifier the next stored message gets.
    next_message_id: AtomicU64,
    /// How many of a persistent session's queued messages stay in memory.
    window: usize,
    /// What the writer has done, for the metrics.
    counters: WriterCounters,
}

/// The writer's counters (written by the writer thread alone).
#[derive(Debug, Default)]
struct WriterCounters {
    batches: AtomicU64,
    changes: AtomicU64,
    last_batch: AtomicU64,
    write_errors: AtomicU64,
    commit: Histogram,
}

impl Journal {
    /// Starts the writer thread over `store`; stored messages get identifiers from
    /// `first_message_id` on; persistent sessions keep `window` queued messages in memory.
    pub(crate) fn start(
        store: Box<dyn Store>,
        sync: SyncPolicy,
        first_message_id: u64,
        window: usize,
    ) -> std::io::Result<Arc<Self>> {
        let journal = Arc::new(Self {
            pending: Mutex::default(),
            appended_cond: Condvar::new(),
            durable: watch::Sender::new(0),
            durable_now: AtomicU64::new(0),
            sync,
            writer: Mutex::new(None),
            next_message_id: AtomicU64::new(first_message_id),
            window: window.max(1),
            counters: WriterCounters::default(),
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
        let wake = std::mem::take(&mut pending.writer_idle);
        drop(pending);
        if wake {
            self.appended_cond.notify_one();
        }
        ticket
    }

    /// How many of a persistent session's queued messages stay in memory (at least 1).
    pub(crate) fn window(&self) -> usize {
        self.window
    }

    /// Asks the writer to read queued deliveries back; the answer includes every change
    /// recorded before (written or not).
    pub(crate) fn read_queued(&self, read: QueueRead) {
        let mut pending = self.pending.lock();
        pending.reads.push(read);
        // Wakes the writer also from a flush interval's sleep: a client waits for this.
        pending.writer_idle = false;
        drop(pending);
        self.appended_cond.notify_one();
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
    /// recorded: `ticket` under [`SyncPolicy::Always`]; none (0) under
    /// [`SyncPolicy::Periodic`], unless the writer is more than [`BACKLOG_LIMIT`] changes
    /// behind: then publishers wait as under `Always`, which bounds the journal's memory
    /// when the disk cannot keep up.
    pub(crate) fn ack_ticket(&self, ticket: u64) -> u64 {
        match self.sync {
            SyncPolicy::Always => ticket,
            SyncPolicy::Periodic(_) => {
                let behind = ticket.saturating_sub(self.durable_now());
                if behind > BACKLOG_LIMIT { ticket } else { 0 }
            }
        }
    }

    /// The ticket up to which every change is durable now.
    pub(crate) fn durable_now(&self) -> u64 {
        self.durable_now.load(Ordering::Acquire)
    }

    /// What the writer has done, and how far it is behind.
    pub(crate) fn metrics(&self) -> StoreMetrics {
        let appended = self.pending.lock().appended;
        let c = &self.counters;
        StoreMetrics {
            pending: appended.saturating_sub(self.durable_now()),
            batches: c.batches.load(Ordering::Relaxed),
            changes: c.changes.load(Ordering::Relaxed),
            last_batch: c.last_batch.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            commit: c.commit.snapshot(),
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
        let mut reads: Vec<QueueRead> = Vec::new();
        loop {
            let started = Instant::now();
            let batch_end = {
                let mut pending = self.pending.lock();
                while pending.ops.is_empty()
                    && pending.reads.is_empty()
                    && batch.is_empty()
                    && !pending.stopping
                {
                    pending.writer_idle = true;
                    self.appended_cond.wait(&mut pending);
                }
                pending.writer_idle = false;
                if pending.ops.is_empty() && pending.reads.is_empty() && batch.is_empty() {
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
                reads.append(&mut pending.reads);
                pending.appended
            };
            if !reads.is_empty() {
                answer(store.as_mut(), &batch, &mut reads);
            }
            let taken = batch.len();
            coalesce(&mut batch);
            let writing = Instant::now();
            let applied = store.apply(&batch);
            self.counters.commit.record(writing.elapsed());
            match applied {
                Ok(()) => {
                    let c = &self.counters;
                    if taken > 0 {
                        c.batches.fetch_add(1, Ordering::Relaxed);
                        c.changes.fetch_add(taken as u64, Ordering::Relaxed);
                        c.last_batch.store(taken as u64, Ordering::Relaxed);
                    }
                    batch.clear();
                    // This vector goes back to the publishers at the next swap. At a steady
                    // rate it keeps the room one batch needs (growing it again each time
                    // would copy and fault in megabytes per batch on the publish path);
                    // after a burst it gives most of it back.
                    if batch.capacity() > 64 * 1024 && batch.capacity() / 4 > taken {
                        batch.shrink_to(taken * 2);
                    }
                    self.durable_now.store(batch_end, Ordering::Release);
                    self.durable.send_replace(batch_end);
                }
                Err(error) => {
                    self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
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
                while !pending.stopping && pending.reads.is_empty() {
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

/// Answers `reads` (and empties it) from what `store` holds and what `batch`, the changes
/// not written yet, adds: the deliveries a session queued into the store alone are in
/// `batch` until it is written, behind those already in the store, in seq order. Nothing in
/// `batch` changes a delivery a read can find other than queuing it: those are in the store
/// alone, so not sent yet; a session's end drops what came before it.
fn answer(store: &mut dyn Store, batch: &[StoreOp], reads: &mut Vec<QueueRead>) {
    let mut answers: Vec<Result<Vec<StoredDelivery>, StoreError>> = Vec::with_capacity(reads.len());
    // The reads the store did not fill, by session.
    let mut short: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, read) in reads.iter().enumerate() {
        let answer = store.read_queued(read.session, read.from_seq, read.limit);
        if matches!(&answer, Ok(found) if found.len() < read.limit) {
            short.entry(read.session).or_default().push(i);
        }
        answers.push(answer);
    }
    if !short.is_empty() {
        for op in batch {
            let (session, delivery) = match op {
                StoreOp::Queued { session, delivery } => (*session, Some(delivery)),
                StoreOp::SessionEnded { key } => (*key, None),
                _ => continue,
            };
            for &i in short.get(&session).into_iter().flatten() {
                let (Some(read), Some(Ok(found))) = (reads.get(i), answers.get_mut(i)) else {
                    continue;
                };
                match delivery {
                    None => found.clear(),
                    Some(d)
                        if d.state == DeliveryState::Queued
                            && d.seq >= read.from_seq
                            && found.len() < read.limit
                            && found.last().is_none_or(|last| last.seq < d.seq) =>
                    {
                        found.push(d.clone());
                    }
                    Some(_) => {}
                }
            }
        }
    }
    for (read, answer) in reads.drain(..).zip(answers) {
        (read.reply)(answer);
    }
}

/// Drops the changes of deliveries that begin and end within `batch` (queued, sent and
/// acknowledged while the previous batch was being written): the store would write them
/// only to delete them. For a persistent subscriber that is online and keeps up, that is
/// nearly every message. Also drops the progress of deliveries that end within `batch`
/// (sent and acknowledged): their end is all the store needs to know.
fn coalesce(batch: &mut Vec<StoreOp>) {
    let completed: HashSet<(u64, u64)> = batch
        .iter()
        .filter_map(|op| match op {
            StoreOp::Completed { session, seq, .. } => Some((*session, *seq)),
            _ => None,
        })
        .collect();
    if completed.is_empty() {
        return;
    }
    let transient: HashSet<(u64, u64)> = batch
        .iter()
        .filter_map(|op| match op {
            StoreOp::Queued { session, delivery } => Some((*session, delivery.seq)),
            _ => None,
        })
        .filter(|key| completed.contains(key))
        .collect();
    batch.retain(|op| match op {
        StoreOp::Queued { session, delivery } => !transient.contains(&(*session, delivery.seq)),
        StoreOp::Progressed { session, seq, .. } => !completed.contains(&(*session, *seq)),
        StoreOp::Completed { session, seq, .. } => !transient.contains(&(*session, *seq)),
        _ => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeliveryState, StoredDelivery};
    use mqtt_codec::{PacketId, QoS, TopicName};

    fn queued(session: u64, seq: u64) -> StoreOp {
        let message = Message::new(
            TopicName::new("t").unwrap_or_else(|_| unreachable!()),
            bytes::Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            false,
            None,
        );
        StoreOp::Queued {
            session,
            delivery: StoredDelivery {
                seq,
                message: StoredMessage {
                    id: seq,
                    message: Arc::new(message),
                    expires_at: None,
                },
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: Vec::new(),
                state: DeliveryState::Queued,
            },
        }
    }

    fn progressed(session: u64, seq: u64) -> StoreOp {
        StoreOp::Progressed {
            session,
            seq,
            state: DeliveryState::AwaitingPubAck(
                PacketId::new(1).unwrap_or_else(|| unreachable!()),
            ),
        }
    }

    fn completed(session: u64, seq: u64) -> StoreOp {
        StoreOp::Completed {
            session,
            seq,
            message: seq,
        }
    }

    fn keys(batch: &[StoreOp]) -> Vec<(char, u64, u64)> {
        batch
            .iter()
            .map(|op| match op {
                StoreOp::Queued { session, delivery } => ('q', *session, delivery.seq),
                StoreOp::Progressed { session, seq, .. } => ('p', *session, *seq),
                StoreOp::Completed { session, seq, .. } => ('c', *session, *seq),
                _ => ('?', 0, 0),
            })
            .collect()
    }

    /// A store whose writes wait until the test lets them through.
    struct Stuck(Arc<(parking_lot::Mutex<bool>, Condvar)>);

    impl Store for Stuck {
        fn load(&mut self, _: usize) -> Result<crate::store::Snapshot, crate::store::StoreError> {
            Ok(crate::store::Snapshot::default())
        }

        fn read_queued(
            &mut self,
            _: u64,
            _: u64,
            _: usize,
        ) -> Result<Vec<StoredDelivery>, crate::store::StoreError> {
            Ok(Vec::new())
        }

        fn apply(&mut self, _: &[StoreOp]) -> Result<(), crate::store::StoreError> {
            let (open, cond) = &*self.0;
            let mut open = open.lock();
            while !*open {
                cond.wait(&mut open);
            }
            Ok(())
        }
    }

    #[test]
    fn periodic_acknowledgements_wait_only_when_the_writer_is_far_behind() {
        let gate = Arc::new((parking_lot::Mutex::new(false), Condvar::new()));
        let policy = SyncPolicy::Periodic(Duration::from_millis(1));
        let journal = Journal::start(Box::new(Stuck(Arc::clone(&gate))), policy, 1, 1000)
            .unwrap_or_else(|_| unreachable!());
        let mut ticket = 0;
        for seq in 0..=BACKLOG_LIMIT {
            ticket = journal.record(completed(1, seq));
        }
        assert_eq!(journal.ack_ticket(BACKLOG_LIMIT), 0, "within the limit");
        assert_eq!(journal.ack_ticket(ticket), ticket, "beyond it");
        *gate.0.lock() = true;
        gate.1.notify_all();
        journal.stop();
        assert_eq!(*journal.durable.borrow(), ticket);
        assert_eq!(journal.ack_ticket(ticket + 1), 0);
    }

    #[test]
    fn deliveries_that_begin_and_end_in_one_batch_are_not_written() {
        let mut batch = vec![
            // Queued in an earlier batch, sent and completed in this one: only the end
            // matters.
            progressed(1, 1),
            completed(1, 1),
            // Queued, sent and acknowledged within this batch: nothing to write.
            queued(1, 2),
            progressed(1, 2),
            completed(1, 2),
            // Same sequence number, another session: still queued.
            queued(2, 2),
            progressed(2, 2),
            // Queued only.
            queued(1, 3),
        ];
        coalesce(&mut batch);
        assert_eq!(
            keys(&batch),
            [('c', 1, 1), ('q', 2, 2), ('p', 2, 2), ('q', 1, 3)]
        );
    }

    fn session(key: u64) -> StoreOp {
        StoreOp::Session {
            key,
            client_id: mqtt_codec::ClientId::new(format!("c{key}"))
                .unwrap_or_else(|_| unreachable!()),
            expiry: crate::SessionExpiry::Never,
            disconnected_at: None,
        }
    }

    /// Reads `(session, from_seq, limit)` through [`answer`]; the seqs each one got.
    fn read(
        store: &mut dyn Store,
        batch: &[StoreOp],
        asked: &[(u64, u64, usize)],
    ) -> Vec<Vec<u64>> {
        let got = Arc::new(Mutex::new(vec![Vec::new(); asked.len()]));
        let mut reads: Vec<QueueRead> = asked
            .iter()
            .enumerate()
            .map(|(i, &(session, from_seq, limit))| {
                let got = Arc::clone(&got);
                QueueRead {
                    session,
                    from_seq,
                    limit,
                    reply: Box::new(move |answer| {
                        let seqs = answer.unwrap_or_default().iter().map(|d| d.seq).collect();
                        if let Some(slot) = got.lock().get_mut(i) {
                            *slot = seqs;
                        }
                    }),
                }
            })
            .collect();
        answer(store, batch, &mut reads);
        assert!(reads.is_empty());
        got.lock().clone()
    }

    #[test]
    fn reads_see_the_store_and_the_changes_not_written_yet() {
        let mut store = crate::store::MemoryStore::new();
        store
            .apply(&[
                session(1),
                session(3),
                queued(1, 1),
                queued(1, 2),
                queued(1, 3),
                queued(3, 1),
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        let batch = [
            queued(1, 4),
            queued(2, 4),
            queued(1, 5),
            queued(3, 2),
            StoreOp::SessionEnded { key: 3 },
            session(4),
            queued(4, 1),
        ];
        let got = read(
            &mut store,
            &batch,
            &[
                (1, 2, 10),
                (1, 1, 2),
                (1, 3, 2),
                (3, 1, 10),
                (4, 1, 10),
                (2, 9, 10),
            ],
        );
        assert_eq!(
            got,
            [
                vec![2, 3, 4, 5],
                vec![1, 2],
                vec![3, 4],
                vec![],
                vec![1],
                vec![]
            ]
        );
    }
}
