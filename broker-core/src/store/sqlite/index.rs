//! The writer's map of the stored deliveries: for each session, which segment entries hold
//! its deliveries; for each segment, which entries are done; which deliveries have a row in
//! `delivery_states`. Built from the file once (when it is loaded, or before the first
//! batch), then kept up to date by the writer, so that no change needs a query to find
//! what it is about. After a failed batch it is thrown away and built again, so it never
//! has to be rolled back.

use std::collections::{HashMap, HashSet};

use super::columns::IdBuild;
use super::segment::{Finished, Placed, bit, set_bit};

/// The segment id of a run in the segment the current batch is building (stored segments
/// have rowids from 1).
const BUILDING: i64 = 0;

/// A session's deliveries with consecutive sequence numbers `first .. first + len`, at
/// consecutive entries of one segment from `base`. In the segment being built, `base` is
/// the builder's run number instead.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: u64,
    len: u32,
    segment: i64,
    base: u32,
}

/// A session's deliveries with consecutive sequence numbers at consecutive entries of a
/// stored segment, from entry `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredRun {
    pub(super) segment: i64,
    pub(super) first: u64,
    pub(super) len: u32,
    pub(super) base: u32,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Entry `entry` of stored segment `segment`.
    Stored { segment: i64, entry: u32 },
    /// In the segment being built.
    Building(Placed),
}

#[derive(Debug)]
struct Segment {
    /// Entries not done.
    live: u32,
    done: Vec<u8>,
    /// The sessions with runs in it.
    sessions: Vec<u64>,
    /// Its done bitmap changed in the current batch.
    touched: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Each session's runs, in sequence-number order, never overlapping.
    runs: HashMap<u64, Vec<Run>, IdBuild>,
    segments: HashMap<i64, Segment, IdBuild>,
    /// Deliveries whose state is in `delivery_states`.
    states: HashSet<(u64, u64), IdBuild>,
    /// Segments whose done bitmap changed in the current batch.
    touched: Vec<i64>,
    next_segment: i64,
}

/// What a batch must write for a segment whose deliveries moved on.
#[derive(Debug)]
pub(super) enum Touched<'a> {
    /// Some are done: the new bitmap.
    Done(&'a [u8]),
    /// All are done: the segment goes.
    Empty,
}

impl Index {
    /// An empty index; new segments get ids above `max_segment`.
    pub(super) fn new(max_segment: i64) -> Self {
        Self {
            next_segment: max_segment.max(BUILDING) + 1,
            ..Self::default()
        }
    }

    /// Where `session`'s delivery `seq` is, if it is stored (done or not).
    pub(super) fn locate(&self, session: u64, seq: u64) -> Option<Place> {
        let runs = self.runs.get(&session)?;
        let after = runs.partition_point(|r| r.first <= seq);
        let run = runs.get(after.checked_sub(1)?)?;
        let offset = u32::try_from(seq - run.first)
            .ok()
            .filter(|&o| o < run.len)?;
        Some(if run.segment == BUILDING {
            Place::Building(Placed {
                run: run.base,
                offset,
            })
        } else {
            Place::Stored {
                segment: run.segment,
                entry: run.base + offset,
            }
        })
    }

    /// `session`'s stored runs that hold sequence numbers from `from_seq` on, in order.
    pub(super) fn stored_runs_from(&self, session: u64, from_seq: u64) -> Vec<StoredRun> {
        let Some(runs) = self.runs.get(&session) else {
            return Vec::new();
        };
        let start = runs.partition_point(|r| r.first + u64::from(r.len) <= from_seq);
        runs.get(start..)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.segment != BUILDING)
            .map(|r| StoredRun {
                segment: r.segment,
                first: r.first,
                len: r.len,
                base: r.base,
            })
            .collect()
    }

    /// Whether `session`'s delivery `seq` has a `delivery_states` row (it is in flight).
    pub(super) fn has_state(&self, session: u64, seq: u64) -> bool {
        self.states.contains(&(session, seq))
    }

    /// Whether a stored entry is done (a missing segment's are).
    pub(super) fn is_done(&self, segment: i64, entry: u32) -> bool {
        self.segments
            .get(&segment)
            .is_none_or(|s| bit(&s.done, entry))
    }

    /// A stored delivery ended.
    pub(super) fn mark_done(&mut self, segment: i64, entry: u32) {
        let Some(s) = self.segments.get_mut(&segment) else {
            return;
        };
        if bit(&s.done, entry) {
            return;
        }
        set_bit(&mut s.done, entry);
        s.live = s.live.saturating_sub(1);
        if !s.touched {
            s.touched = true;
            self.touched.push(segment);
        }
    }

    /// `session`'s delivery `seq` was put in the segment being built, at `placed`.
    pub(super) fn add_building(&mut self, session: u64, seq: u64, placed: Placed) {
        let runs = self.runs.entry(session).or_default();
        if placed.offset > 0
            && let Some(run) = runs
                .iter_mut()
                .rev()
                .find(|r| r.segment == BUILDING && r.base == placed.run)
        {
            run.len += 1;
            return;
        }
        insert_run(
            runs,
            Run {
                first: seq,
                len: 1,
                segment: BUILDING,
                base: placed.run,
            },
        );
    }

    /// The id the next stored segment gets.
    pub(super) fn next_segment_id(&mut self) -> i64 {
        let id = self.next_segment;
        self.next_segment += 1;
        id
    }

    /// The segment being built was stored as `id`: its runs point there now.
    pub(super) fn sealed(&mut self, id: i64, segment: &Finished) {
        for sealed in &segment.runs {
            if let Some(run) = self.runs.get_mut(&sealed.session).and_then(|runs| {
                runs.iter_mut()
                    .rev()
                    .find(|r| r.segment == BUILDING && r.base == sealed.run)
            }) {
                run.segment = id;
                run.base = sealed.base;
            }
        }
        let sessions = segment.runs.iter().map(|r| r.session).collect();
        let touched = segment.live < segment.entries;
        self.insert_segment(id, segment.live, segment.done.clone(), sessions, touched);
    }

    /// A stored segment, as read from the file, with its runs `(session, first, len, base)`.
    pub(super) fn add_stored(
        &mut self,
        id: i64,
        live: u32,
        done: Vec<u8>,
        runs: &[(u64, u64, u32, u32)],
        touched: bool,
    ) {
        for &(session, first, len, base) in runs {
            // Segments are read in id order, so this is nearly always a push.
            insert_run(
                self.runs.entry(session).or_default(),
                Run {
                    first,
                    len,
                    segment: id,
                    base,
                },
            );
        }
        let sessions = runs.iter().map(|&(session, ..)| session).collect();
        self.insert_segment(id, live, done, sessions, touched);
        self.next_segment = self.next_segment.max(id + 1);
    }

    /// Records segment `id`, whose runs belong to `sessions` (in any order, repeated).
    fn insert_segment(
        &mut self,
        id: i64,
        live: u32,
        done: Vec<u8>,
        mut sessions: Vec<u64>,
        touched: bool,
    ) {
        sessions.sort_unstable();
        sessions.dedup();
        self.segments.insert(
            id,
            Segment {
                live,
                done,
                sessions,
                touched,
            },
        );
        if touched {
            self.touched.push(id);
        }
    }

    /// `session` ended: forgets its runs and marks their stored entries done. Returns the
    /// builder's numbers of its runs in the segment being built, for the caller to drop.
    pub(super) fn end_session(&mut self, session: u64) -> Vec<u32> {
        let mut building = Vec::new();
        for run in self.runs.remove(&session).unwrap_or_default() {
            if run.segment == BUILDING {
                building.push(run.base);
                continue;
            }
            for entry in run.base..run.base.saturating_add(run.len) {
                self.mark_done(run.segment, entry);
            }
        }
        building
    }

    /// Notes that `session`'s delivery `seq` has a `delivery_states` row.
    pub(super) fn add_state(&mut self, session: u64, seq: u64) {
        self.states.insert((session, seq));
    }

    /// Forgets the `delivery_states` row of a delivery; whether there was one.
    pub(super) fn remove_state(&mut self, session: u64, seq: u64) -> bool {
        self.states.remove(&(session, seq))
    }

    /// Forgets the `delivery_states` rows of `session`; whether there were any.
    pub(super) fn remove_states_of(&mut self, session: u64) -> bool {
        let before = self.states.len();
        self.states.retain(|&(s, _)| s != session);
        self.states.len() != before
    }

    /// The segments whose deliveries moved on in this batch, and what to write for each.
    /// An empty one is forgotten with its runs: the caller deletes its rows.
    pub(super) fn take_touched(&mut self) -> Vec<(i64, Touched<'_>)> {
        let ids = std::mem::take(&mut self.touched);
        for &id in &ids {
            let Some(segment) = self.segments.get_mut(&id) else {
                continue;
            };
            segment.touched = false;
            if segment.live > 0 {
                continue;
            }
            let sessions = std::mem::take(&mut segment.sessions);
            self.segments.remove(&id);
            for session in sessions {
                if let Some(runs) = self.runs.get_mut(&session) {
                    runs.retain(|r| r.segment != id);
                    if runs.is_empty() {
                        self.runs.remove(&session);
                    }
                }
            }
        }
        ids.into_iter()
            .map(|id| match self.segments.get(&id) {
                Some(s) => (id, Touched::Done(&s.done)),
                None => (id, Touched::Empty),
            })
            .collect()
    }
}

/// Puts `run` in `runs` in sequence-number order (it overlaps none of them).
fn insert_run(runs: &mut Vec<Run>, run: Run) {
    if runs.last().is_none_or(|last| last.first < run.first) {
        runs.push(run);
    } else {
        let at = runs.partition_point(|r| r.first < run.first);
        runs.insert(at, run);
    }
}
