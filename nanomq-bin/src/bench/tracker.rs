//! What one subscriber received from each publisher: which sequence numbers (a bit set, so a
//! duplicate is told from a late message exactly), how many were duplicates, how many came
//! after a later one (out of order), and how many were not benchmark messages at all.

use std::collections::HashMap;

/// The largest sequence number tracked; a stamp above it is counted as foreign.
const MAX_SEQ: u64 = 1 << 32;

/// What [`Tracker::record`] concluded about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First time, in order.
    New,
    /// First time, after a message with a higher sequence number.
    OutOfOrder,
    /// Already received.
    Duplicate,
    /// Not a message this run could have sent.
    Foreign,
}

/// One publisher's messages as one subscriber saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Flow {
    /// Bit `seq` is set once `seq` arrived.
    seen: Vec<u64>,
    /// The highest sequence number received.
    highest: Option<u64>,
    /// Distinct messages received.
    pub(crate) unique: u64,
    /// Messages received again.
    pub(crate) duplicates: u64,
    /// Messages received after a higher sequence number.
    pub(crate) out_of_order: u64,
}

impl Flow {
    /// Counts message `seq`.
    fn record(&mut self, seq: u64) -> Seen {
        let word = (seq / 64) as usize;
        let bit = 1u64 << (seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let Some(slot) = self.seen.get_mut(word) else {
            return Seen::Foreign;
        };
        if *slot & bit != 0 {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        *slot |= bit;
        self.unique += 1;
        match self.highest {
            Some(highest) if seq < highest => {
                self.out_of_order += 1;
                Seen::OutOfOrder
            }
            _ => {
                self.highest = Some(seq);
                Seen::New
            }
        }
    }

    /// Sequence numbers below `sent` that never arrived.
    pub(crate) fn missing(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.unique)
    }

    /// Gaps below the highest sequence number received: what is surely lost when the
    /// number sent is unknown.
    pub(crate) fn gaps(&self) -> u64 {
        self.highest
            .map_or(0, |h| (h + 1).saturating_sub(self.unique))
    }
}

/// Everything one subscriber received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tracker {
    /// Per publisher index.
    pub(crate) flows: HashMap<u32, Flow>,
    /// Messages without a benchmark stamp.
    pub(crate) foreign: u64,
}

impl Tracker {
    /// Counts message `seq` of `publisher`.
    pub(crate) fn record(&mut self, publisher: u32, seq: u64) -> Seen {
        if seq >= MAX_SEQ {
            self.foreign += 1;
            return Seen::Foreign;
        }
        self.flows.entry(publisher).or_default().record(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_reordering_are_told_apart() {
        let mut t = Tracker::default();
        assert_eq!(t.record(1, 0), Seen::New);
        assert_eq!(t.record(1, 2), Seen::New);
        assert_eq!(t.record(1, 1), Seen::OutOfOrder);
        assert_eq!(t.record(1, 2), Seen::Duplicate);
        assert_eq!(t.record(1, 200), Seen::New);
        assert_eq!(t.record(2, 0), Seen::New);
        let flow = &t.flows[&1];
        assert_eq!((flow.unique, flow.duplicates, flow.out_of_order), (4, 1, 1));
        assert_eq!(flow.missing(201), 197);
        assert_eq!(flow.gaps(), 197);
        assert_eq!(t.record(1, MAX_SEQ), Seen::Foreign);
        assert_eq!(t.foreign, 1);
    }
}
