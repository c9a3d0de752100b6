//! A log-linear histogram of durations in nanoseconds, in the manner of HdrHistogram:
//! exact below 128 ns, then 64 buckets per power of two (at most 1.6 % error), a fixed 30 KB
//! whatever it counts. Histograms of several clients merge by adding counts.

/// Values below this are counted exactly.
const LINEAR: u64 = 128;
/// Buckets per power of two above [`LINEAR`].
const PER_OCTAVE: u64 = 64;
/// Enough buckets for any `u64`.
const BUCKETS: usize = (LINEAR + (64 - 7) * PER_OCTAVE) as usize;

/// Counts of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Histogram {
    /// Count per bucket.
    counts: Vec<u64>,
    /// Number of values.
    total: u64,
    /// Sum of values, for the mean.
    sum: u128,
    /// The largest value.
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

/// The bucket of `value`.
fn bucket(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let msb = 63 - u64::from(value.leading_zeros());
    // The top seven bits: 64..128.
    let mantissa = value >> (msb - 6);
    (LINEAR + (msb - 7) * PER_OCTAVE + (mantissa - PER_OCTAVE)) as usize
}

/// The smallest and largest value of bucket `index`.
fn bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < LINEAR {
        return (index, index);
    }
    let octave = (index - LINEAR) / PER_OCTAVE;
    let mantissa = (index - LINEAR) % PER_OCTAVE + PER_OCTAVE;
    let shift = octave + 1;
    let low = mantissa << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    /// Counts one value.
    pub(crate) fn record(&mut self, value: u64) {
        if let Some(count) = self.counts.get_mut(bucket(value)) {
            *count += 1;
        }
        self.total += 1;
        self.sum += u128::from(value);
        self.max = self.max.max(value);
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// How many values were counted.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// The largest value counted.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The mean, 0 if empty.
    pub(crate) fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            u64::try_from(self.sum / u128::from(self.total)).unwrap_or(u64::MAX)
        }
    }

    /// The value below which `quantile` (0 to 1) of the values lie: the middle of its
    /// bucket, never above the maximum. 0 if empty.
    pub(crate) fn quantile(&self, quantile: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bounds(index);
                return (low + (high - low) / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for value in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let index = bucket(value);
            assert!(index < BUCKETS, "{value}");
            assert!(index >= last, "{value}");
            last = index;
            let (low, high) = bounds(index);
            assert!(low <= value && value <= high, "{value}: {low}..={high}");
            assert!((high - low) as f64 <= low as f64 / 60.0 + 1.0, "{value}");
        }
    }

    #[test]
    fn quantiles_are_within_the_bucket_precision() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [
            (0.5, 5_000_000.0),
            (0.99, 9_900_000.0),
            (0.999, 9_990_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "{q}: {got} vs {want}");
        }
        assert_eq!(h.len(), 10_000);
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(h.mean(), 5_000_500);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn merging_adds_counts() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(10);
        b.record(1_000_000);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.quantile(0.5), 20);
    }
}
