//! CPU use while a scenario runs, from `/proc` (Linux; elsewhere nothing is measured): a
//! thread samples the broker's CPU time (`/proc/PID/stat`, every thread) and the machine's
//! busy time (`/proc/stat`) every [`PERIOD`]; [`cores_between`] turns two samples into cores
//! in use over a phase of the run, such as publishing.

use std::fs;
use std::time::Duration;

use super::sampling::Periodic;

/// Time between two samples.
const PERIOD: Duration = Duration::from_millis(50);

/// Linux's USER_HZ, the unit of the CPU times in `/proc` (100 on every architecture Linux
/// exposes to user space today).
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// CPU times at one instant, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// Since the sampler started.
    pub(crate) at: Duration,
    /// The broker's user + system time.
    pub(crate) broker: f64,
    /// The machine's busy time, every core (all but idle and I/O wait).
    pub(crate) machine: f64,
}

/// Cores in use over a phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cores {
    /// By the broker.
    pub(crate) broker: f64,
    /// By the whole machine (broker, load generator and anything else).
    pub(crate) machine: f64,
}

/// Samples until [`Sampler::finish`].
pub(crate) struct Sampler(Periodic<Sample>);

impl Sampler {
    /// Starts sampling process `pid` and the machine.
    pub(crate) fn start(pid: u32) -> Self {
        Self(Periodic::start(PERIOD, move |at| {
            let (broker, machine) = (process_seconds(pid)?, machine_seconds()?);
            Some(Sample {
                at,
                broker,
                machine,
            })
        }))
    }

    /// Stops sampling; the samples, oldest first.
    pub(crate) fn finish(self) -> Vec<Sample> {
        self.0.finish()
    }
}

/// The cores in use between `from` and `to` (since the sampler started), from the first
/// sample at or after `from` and the last at or before `to`; `None` when they are less than
/// a tenth of a second apart.
pub(crate) fn cores_between(samples: &[Sample], from: Duration, to: Duration) -> Option<Cores> {
    let first = samples.iter().find(|s| s.at >= from)?;
    let last = samples.iter().rev().find(|s| s.at <= to)?;
    let span = last.at.checked_sub(first.at)?.as_secs_f64();
    if span < 0.1 {
        return None;
    }
    Some(Cores {
        broker: (last.broker - first.broker) / span,
        machine: (last.machine - first.machine) / span,
    })
}

/// The CPU time process `pid` has used so far (user and system, every thread), in seconds.
pub(crate) fn process_seconds(pid: u32) -> Option<f64> {
    process_seconds_of(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime of a `/proc/PID/stat` line, in seconds.
fn process_seconds_of(stat: &str) -> Option<f64> {
    // The command name, in parentheses, may contain spaces: count fields after its end.
    // After it: state (field 3), ..., utime (14), stime (15).
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / CLOCK_TICKS_PER_S)
}

/// The machine's busy time so far, every core, in seconds.
fn machine_seconds() -> Option<f64> {
    machine_seconds_of(&fs::read_to_string("/proc/stat").ok()?)
}

/// The busy time of the `cpu` line of `/proc/stat`: user, nice, system, irq, softirq and
/// steal (not idle, not I/O wait; guest time is already in user).
fn machine_seconds_of(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0))
        .sum();
    Some(busy as f64 / CLOCK_TICKS_PER_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_from_proc() {
        let stat = "4242 (nano mq) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(process_seconds_of(stat), Some(3.25));
        assert_eq!(process_seconds_of("garbage"), None);
        let machine = "cpu  100 5 50 1000 300 1 2 3 0 0\ncpu0 50 2 25 500 150 0 1 1 0 0\n";
        assert_eq!(machine_seconds_of(machine), Some(1.61));
        assert_eq!(machine_seconds_of("intr 1 2 3"), None);
        assert!(process_seconds(std::process::id()).is_some());
    }

    #[test]
    fn cores_come_from_the_samples_inside_the_phase() {
        let sample = |ms, broker, machine| Sample {
            at: Duration::from_millis(ms),
            broker,
            machine,
        };
        let samples = [
            sample(0, 0.0, 0.0),
            sample(500, 0.25, 0.5),
            sample(1500, 1.75, 2.5),
            sample(2000, 1.8, 2.6),
        ];
        let cores = cores_between(
            &samples,
            Duration::from_millis(400),
            Duration::from_millis(1600),
        );
        assert_eq!(
            cores,
            Some(Cores {
                broker: 1.5,
                machine: 2.0
            })
        );
        let short = cores_between(
            &samples,
            Duration::from_millis(1400),
            Duration::from_millis(1600),
        );
        assert_eq!(short, None);
        assert_eq!(
            cores_between(&[], Duration::ZERO, Duration::from_secs(1)),
            None
        );
    }
}
