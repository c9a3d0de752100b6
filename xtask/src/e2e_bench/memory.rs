//! The broker's resident memory, measured from outside (Linux; elsewhere nothing is
//! measured): `VmRSS` of `/proc/PID/status`, read once ([`rss_kib`]) or every [`PERIOD`] by a
//! thread for a whole run ([`Sampler`]), whose [`Peak`] is the figure of the queued-backlog
//! scenarios. Sampling from outside catches what a figure taken by the load generator at the
//! end of a phase misses: a peak while the broker works through a burst.

use std::fs;
use std::time::Duration;

use super::sampling::Periodic;

/// Time between two samples.
pub(crate) const PERIOD: Duration = Duration::from_millis(100);

/// The highest resident memory among a run's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peak {
    /// `VmRSS`, KiB.
    pub(crate) kib: u64,
    /// When, since the sampler started.
    pub(crate) at: Duration,
    /// How many samples it is the highest of.
    pub(crate) samples: usize,
}

/// Samples until [`Sampler::finish`].
pub(crate) struct Sampler(Periodic<(Duration, u64)>);

impl Sampler {
    /// Starts sampling process `pid`.
    pub(crate) fn start(pid: u32) -> Self {
        Self(Periodic::start(PERIOD, move |at| Some((at, rss_kib(pid)?))))
    }

    /// Stops sampling; the peak, `None` without a sample.
    pub(crate) fn finish(self) -> Option<Peak> {
        peak(&self.0.finish())
    }
}

/// The highest of `samples` (time since the start, KiB), the first of equals.
pub(crate) fn peak(samples: &[(Duration, u64)]) -> Option<Peak> {
    let (at, kib) = samples
        .iter()
        .copied()
        .reduce(|best, s| if s.1 > best.1 { s } else { best })?;
    Some(Peak {
        kib,
        at,
        samples: samples.len(),
    })
}

/// Process `pid`'s resident memory now, KiB; `None` where `/proc` cannot tell (not Linux,
/// or the process is gone).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    vm_rss_kib(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The `VmRSS:` line of a `/proc/PID/status`, KiB (the kernel writes `VmRSS:\t  1234 kB`).
pub(crate) fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_memory_is_read_from_the_status_file() {
        let status = "Name:\tnanomq\nVmPeak:\t  900000 kB\nVmHWM:\t  500000 kB\n\
                      VmRSS:\t  408088 kB\nRssAnon:\t  400000 kB\n";
        assert_eq!(vm_rss_kib(status), Some(408_088));
        // A kernel thread has no VmRSS line; a line in other units is not guessed at.
        assert_eq!(vm_rss_kib("Name:\tkthreadd\nState:\tS (sleeping)\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\t  12 MB\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\t  x kB\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn the_peak_is_the_highest_sample_and_when_it_was() {
        let ms = Duration::from_millis;
        let samples = [(ms(0), 11_568), (ms(100), 107_288), (ms(200), 73_492)];
        let top = peak(&samples);
        assert_eq!(
            top,
            Some(Peak {
                kib: 107_288,
                at: ms(100),
                samples: 3
            })
        );
        let tie = peak(&[(ms(0), 5), (ms(100), 5)]);
        assert_eq!(tie.map(|p| p.at), Some(ms(0)));
        assert_eq!(peak(&[]), None);
    }
}
