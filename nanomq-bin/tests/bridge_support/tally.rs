//! [`Tally`]: what a subscriber's record of numbered messages says against the numbers
//! expected (missing, duplicated, out of order), for the bridge tests' assertions and
//! reports.

use std::collections::HashSet;

/// A record against the numbers expected.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    /// Messages received (with duplicates).
    pub(crate) received: usize,
    /// Distinct expected numbers received.
    pub(crate) unique: usize,
    /// Arrivals of a number already received.
    pub(crate) duplicates: usize,
    /// The numbers that arrived more than once (in order of their second arrival).
    pub(crate) duplicated: Vec<u32>,
    /// Expected numbers that never arrived.
    pub(crate) missing: Vec<u32>,
    /// Numbers that arrived that were not expected.
    pub(crate) unexpected: usize,
    /// First arrivals smaller than the first arrival before them.
    pub(crate) out_of_order: usize,
}

impl Tally {
    /// `numbers` (arrival order) against `expected`.
    pub(crate) fn of(numbers: &[u32], expected: impl IntoIterator<Item = u32>) -> Self {
        let expected: HashSet<u32> = expected.into_iter().collect();
        let mut seen = HashSet::new();
        let mut duplicated = Vec::new();
        let mut unexpected = 0;
        let mut out_of_order = 0;
        let mut last_first: Option<u32> = None;
        for &n in numbers {
            if !seen.insert(n) {
                duplicated.push(n);
                continue;
            }
            if !expected.contains(&n) {
                unexpected += 1;
            }
            if last_first.is_some_and(|last| n < last) {
                out_of_order += 1;
            }
            last_first = Some(n);
        }
        let mut missing: Vec<u32> = expected.difference(&seen).copied().collect();
        missing.sort_unstable();
        Self {
            received: numbers.len(),
            unique: expected.intersection(&seen).count(),
            duplicates: duplicated.len(),
            duplicated,
            missing,
            unexpected,
            out_of_order,
        }
    }

    /// The numbers that duplicated, for a message: the first few.
    pub(crate) fn duplicated_sample(&self) -> Vec<u32> {
        self.duplicated.iter().take(40).copied().collect()
    }

    /// The missing numbers, for a message: the first few.
    pub(crate) fn missing_sample(&self) -> Vec<u32> {
        self.missing.iter().take(40).copied().collect()
    }
}
