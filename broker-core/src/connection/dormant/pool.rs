//! The pool of dormant connections: one thread with an epoll of its own, waiting on the
//! sockets of the connections that went dormant, and handing each back to the runtime (a
//! task of its own again) when its client sends something or closes, when its session is
//! woken (a delivery, a takeover, a kick, a shutdown), or when its deadline comes (keep
//! alive, a retry).
//!
//! A dormant connection costs its box here, a slot and a deadline; no task, timer or tokio
//! registration.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use parking_lot::Mutex;
use tokio::runtime::Handle;

use super::Dormant;
use crate::session::Alarm;

/// The token of the pool's own wake-up (new arrivals, woken sessions, stop).
const INBOX: Token = Token(usize::MAX);

/// Readiness events taken per poll.
const EVENTS: usize = 256;

/// The pool, started by the first connection to go dormant.
#[derive(Default)]
pub(crate) struct DormantPool(OnceLock<Option<Pool>>);

impl DormantPool {
    /// The pool, started on first use; `None` if it could not start (logged once), and
    /// connections then stay awake.
    fn pool(&self) -> Option<&Pool> {
        self.0.get_or_init(Pool::start).as_ref()
    }

    /// Whether connections may go dormant.
    pub(crate) fn available(&self) -> bool {
        self.pool().is_some()
    }

    /// Takes `dormant` in; it is woken as soon as anything happens to it, or at `deadline`.
    pub(crate) fn admit(&self, dormant: Box<Dormant>, deadline: Option<tokio::time::Instant>) {
        match self.pool() {
            Some(pool) => pool
                .shared
                .send(|inbox| inbox.arriving.push((dormant, deadline))),
            // Not reached: a connection goes dormant only once `available` said yes.
            None => {
                tokio::spawn(super::awaken(dormant, Reason::Refused));
            }
        }
    }

    /// Ends the pool's thread (the broker is gone, and with it every dormant connection,
    /// each of which held it).
    pub(crate) fn stop(&self) {
        if let Some(Some(pool)) = self.0.get() {
            pool.shared.send(|inbox| inbox.stop = true);
        }
    }
}

/// Why a dormant connection is handed back to the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Its socket is readable (bytes, or the end of the stream).
    Readable,
    /// Its session was woken.
    Session,
    /// Its deadline came.
    Deadline,
    /// The pool could not wait on it: it stays awake from now on.
    Refused,
}

struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    fn start() -> Option<Self> {
        let started = Handle::try_current()
            .map_err(std::io::Error::other)
            .and_then(|runtime| {
                let poll = mio::Poll::new()?;
                let waker = mio::Waker::new(poll.registry(), INBOX)?;
                let shared = Arc::new(Shared {
                    waker,
                    inbox: Mutex::default(),
                });
                let thread_shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("nanomq-dormant".into())
                    .spawn(move || run(poll, &thread_shared, &runtime))?;
                Ok(Self { shared })
            });
        match started {
            Ok(pool) => Some(pool),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the dormant-connection poller: quiet connections keep their tasks");
                None
            }
        }
    }
}

/// What the connections' side and the pool's thread share.
struct Shared {
    waker: mio::Waker,
    inbox: Mutex<Inbox>,
}

/// What the pool's thread has to look at on its next wake-up.
#[derive(Default)]
struct Inbox {
    /// Each with its deadline (beside the box, which it would take into the next size
    /// class, and needed only until the deadline is in the heap).
    arriving: Vec<(Box<Dormant>, Option<tokio::time::Instant>)>,
    /// The places of connections whose session's alarm rang.
    woken: Vec<u32>,
    stop: bool,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.arriving.is_empty() && self.woken.is_empty() && !self.stop
    }
}

impl Shared {
    /// Puts something in the inbox, waking the thread if it was empty (a burst of wake-ups,
    /// such as one message to many dormant subscribers, costs one write to the eventfd).
    fn send(&self, put: impl FnOnce(&mut Inbox)) {
        let was_empty = {
            let mut inbox = self.inbox.lock();
            let was_empty = inbox.is_empty();
            put(&mut inbox);
            was_empty
        };
        if was_empty && let Err(e) = self.waker.wake() {
            tracing::error!(error = %e, "cannot wake the dormant-connection poller");
        }
    }
}

/// A dormant connection's place: its slot, and the slot's generation when it came (a
/// session's alarm or a deadline that outlived its connection's stay finds another
/// generation there, and is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    slot: u32,
    generation: u32,
}

impl Alarm for Shared {
    fn ring(&self, place: u32) {
        self.send(|inbox| inbox.woken.push(place));
    }
}

#[derive(Default)]
struct Slot {
    generation: u32,
    dormant: Option<Box<Dormant>>,
}

/// The dormant connections, by slot, and their deadlines.
#[derive(Default)]
struct Dormitory {
    slots: Vec<Slot>,
    free: Vec<u32>,
    occupied: usize,
    /// Deadlines, soonest first; those of connections that have left stay until they come
    /// up or the heap is rebuilt (see [`Dormitory::tidy`]).
    deadlines: BinaryHeap<Reverse<(Instant, Key)>>,
}

impl Dormitory {
    /// Takes `dormant` in: its socket in the poll, its session's alarm set, its deadline
    /// kept. Woken at once if its session was notified meanwhile.
    fn admit(
        &mut self,
        dormant: Box<Dormant>,
        deadline: Option<tokio::time::Instant>,
        registry: &mio::Registry,
        shared: &Arc<Shared>,
        runtime: &Handle,
    ) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => match u32::try_from(self.slots.len()) {
                Ok(slot) => {
                    self.slots.push(Slot::default());
                    slot
                }
                Err(_) => return super::wake_on(runtime, dormant, Reason::Refused),
            },
        };
        let Some(place) = self.slots.get_mut(slot as usize) else {
            return super::wake_on(runtime, dormant, Reason::Refused);
        };
        let key = Key {
            slot,
            generation: place.generation,
        };
        let fd = dormant.fd.as_raw_fd();
        if let Err(e) =
            registry.register(&mut SourceFd(&fd), Token(slot as usize), Interest::READABLE)
        {
            tracing::debug!(error = %e, "cannot wait on a dormant connection's socket");
            self.free.push(slot);
            return super::wake_on(runtime, dormant, Reason::Refused);
        }
        // Sets the alarm, or finds the notification that came after the driver let go.
        let alarm: Arc<dyn Alarm> = Arc::clone(shared) as _;
        let notified = dormant.attach_guard.session().wake.arm(alarm, slot);
        if let Some(deadline) = deadline {
            self.deadlines.push(Reverse((deadline.into_std(), key)));
        }
        let metrics = &dormant.live.broker().metrics;
        metrics.connections_dormant.fetch_add(1, Ordering::Relaxed);
        place.dormant = Some(dormant);
        self.occupied += 1;
        if notified {
            self.wake(key, registry, runtime, Reason::Session);
        }
    }

    /// Hands the connection at `key` back to the runtime, if it is still there.
    fn wake(&mut self, key: Key, registry: &mio::Registry, runtime: &Handle, reason: Reason) {
        let Some(place) = self.slots.get_mut(key.slot as usize) else {
            return;
        };
        if place.generation != key.generation {
            return;
        }
        let Some(dormant) = place.dormant.take() else {
            return;
        };
        place.generation = place.generation.wrapping_add(1);
        self.free.push(key.slot);
        self.occupied -= 1;
        dormant
            .live
            .broker()
            .metrics
            .connections_dormant
            .fetch_sub(1, Ordering::Relaxed);
        let fd = dormant.fd.as_raw_fd();
        if let Err(e) = registry.deregister(&mut SourceFd(&fd)) {
            tracing::debug!(error = %e, "cannot stop waiting on a dormant connection's socket");
        }
        // The notification, if that is what woke it, stays for the driver to see.
        dormant.attach_guard.session().wake.forget_waker();
        super::wake_on(runtime, dormant, reason);
    }

    /// Hands the connection at `place` back to the runtime if its session has a
    /// notification (the alarm may have rung for one that has left since).
    fn ring(&mut self, place: u32, registry: &mio::Registry, runtime: &Handle) {
        let notified = self.slots.get(place as usize).is_some_and(|slot| {
            slot.dormant
                .as_ref()
                .is_some_and(|dormant| dormant.attach_guard.session().wake.is_notified())
        });
        if notified && let Some(key) = self.key_of(Token(place as usize)) {
            self.wake(key, registry, runtime, Reason::Session);
        }
    }

    /// The connection whose socket has the poll's `token`.
    fn key_of(&self, token: Token) -> Option<Key> {
        let slot = u32::try_from(token.0).ok()?;
        let place = self.slots.get(token.0)?;
        place.dormant.as_ref().map(|_| Key {
            slot,
            generation: place.generation,
        })
    }

    /// Wakes the connections whose deadline is `now` or past; how long until the next.
    fn wake_due(&mut self, registry: &mio::Registry, runtime: &Handle) -> Option<Duration> {
        let now = Instant::now();
        while let Some(Reverse((at, key))) = self.deadlines.peek().copied() {
            if at > now {
                return Some(at - now);
            }
            self.deadlines.pop();
            self.wake(key, registry, runtime, Reason::Deadline);
        }
        None
    }

    /// Drops the deadlines of connections that have left once they outnumber those
    /// present: a connection that wakes often would otherwise leave one per stay, each
    /// kept until its (keep-alive long) time.
    fn tidy(&mut self) {
        if self.deadlines.len() > 2 * self.occupied + 64 {
            let slots = &self.slots;
            self.deadlines.retain(|Reverse((_, key))| {
                slots.get(key.slot as usize).is_some_and(|place| {
                    place.generation == key.generation && place.dormant.is_some()
                })
            });
        }
    }
}

/// The pool's thread: waits, then wakes what is due, until told to stop.
fn run(mut poll: mio::Poll, shared: &Arc<Shared>, runtime: &Handle) {
    let mut events = Events::with_capacity(EVENTS);
    let mut dormitory = Dormitory::default();
    let mut timeout = None;
    loop {
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "the dormant-connection poller failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let registry = poll.registry();
        for event in &events {
            if event.token() != INBOX
                && let Some(key) = dormitory.key_of(event.token())
            {
                dormitory.wake(key, registry, runtime, Reason::Readable);
            }
        }
        let inbox = std::mem::take(&mut *shared.inbox.lock());
        if inbox.stop {
            return;
        }
        for place in inbox.woken {
            dormitory.ring(place, registry, runtime);
        }
        for (dormant, deadline) in inbox.arriving {
            dormitory.admit(dormant, deadline, registry, shared, runtime);
        }
        timeout = dormitory.wake_due(registry, runtime);
        dormitory.tidy();
    }
}
