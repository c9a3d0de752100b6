//! A thread that takes a sample every period until it is told to stop: what the CPU and
//! memory samplers ([`super::cpu`], [`super::memory`]) have in common.

use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Samples until [`Periodic::finish`].
pub(crate) struct Periodic<T> {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Vec<T>>,
}

impl<T: Send + 'static> Periodic<T> {
    /// Calls `sample` with the time since the start at once and then every `period`,
    /// keeping what it gives (`None`: nothing to keep this time).
    pub(crate) fn start(
        period: Duration,
        mut sample: impl FnMut(Duration) -> Option<T> + Send + 'static,
    ) -> Self {
        let (stop, stopped) = mpsc::channel();
        let thread = thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            loop {
                samples.extend(sample(started.elapsed()));
                match stopped.recv_timeout(period) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            samples
        });
        Self { stop, thread }
    }

    /// Stops sampling; the samples, oldest first.
    pub(crate) fn finish(self) -> Vec<T> {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_in_order_until_finished_and_none_is_skipped() {
        let mut n = 0u32;
        let sampler = Periodic::start(Duration::from_millis(1), move |at| {
            n += 1;
            (n % 2 == 1).then_some((n, at))
        });
        thread::sleep(Duration::from_millis(30));
        let samples = sampler.finish();
        assert!(samples.len() >= 2, "{samples:?}");
        assert!(samples.iter().all(|(n, _)| n % 2 == 1));
        assert!(
            samples
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
    }
}
