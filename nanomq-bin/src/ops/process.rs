//! The process's own figures, as Prometheus's `process_*` metrics report them: resident and
//! virtual memory, CPU time, open and allowed file descriptors, start time. Read from
//! `/proc/self` (Linux), as the Go and Python client libraries do; nothing here needs more
//! than reading text files.

#![cfg_attr(
    not(feature = "http-api"),
    allow(
        dead_code,
        reason = "read for the Prometheus exposition, which only the admin HTTP API serves"
    )
)]

use std::fs;
use std::path::Path;

/// The kernel's unit for CPU times in `/proc` (USER_HZ): 100 on every architecture Linux
/// runs on, which is also what Prometheus's own procfs reader assumes.
const USER_HZ: f64 = 100.0;

/// What `/proc/self` says about the process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct ProcessStats {
    /// Resident memory, in bytes (`VmRSS`).
    pub(crate) resident_bytes: u64,
    /// Virtual memory, in bytes (`VmSize`).
    pub(crate) virtual_bytes: u64,
    /// CPU time in user and system mode, in seconds.
    pub(crate) cpu_seconds: f64,
    /// File descriptors open now.
    pub(crate) open_fds: u64,
    /// The soft limit on open file descriptors.
    pub(crate) max_fds: Option<u64>,
    /// When the process started, in seconds since 1970.
    pub(crate) start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// The figures of this process now; `None` where `/proc` cannot be read (not Linux, or
    /// no `/proc` mounted).
    pub(crate) fn read() -> Option<Self> {
        let root = Path::new("/proc");
        let status = fs::read_to_string(root.join("self/status")).ok()?;
        let stat = fs::read_to_string(root.join("self/stat")).ok()?;
        let times = StatTimes::parse(&stat)?;
        let boot_time = fs::read_to_string(root.join("stat"))
            .ok()
            .and_then(|text| boot_time(&text));
        let open_fds = fs::read_dir(root.join("self/fd")).ok()?.count() as u64;
        let max_fds = fs::read_to_string(root.join("self/limits"))
            .ok()
            .and_then(|text| max_open_files(&text));
        Some(Self {
            resident_bytes: status_kib(&status, "VmRSS:")? * 1024,
            virtual_bytes: status_kib(&status, "VmSize:").unwrap_or(0) * 1024,
            cpu_seconds: (times.utime + times.stime) as f64 / USER_HZ,
            // Counting the directory entries opened one more descriptor, to read it: it is
            // closed again, and the process does not hold it.
            open_fds: open_fds.saturating_sub(1),
            max_fds,
            start_time_seconds: boot_time.map(|boot| boot as f64 + times.start as f64 / USER_HZ),
        })
    }
}

/// The times in `/proc/self/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatTimes {
    utime: u64,
    stime: u64,
    /// Since boot.
    start: u64,
}

impl StatTimes {
    /// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses and may hold
    /// spaces and parentheses itself: the fields are counted from the last `)`.
    fn parse(stat: &str) -> Option<Self> {
        let (_, rest) = stat.rsplit_once(')')?;
        // `rest` starts at field 3 (the state); utime and stime are fields 14 and 15,
        // starttime field 22.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse().ok());
        Some(Self {
            utime: field(14)?,
            stime: field(15)?,
            start: field(22)?,
        })
    }
}

/// A `Key:   123 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The boot time (`btime`, seconds since 1970) in `/proc/stat`.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|rest| rest.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits` (`None` if unlimited).
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4325 (a (b) c) R 4323 4323 8076 0 -1 4194304 101 0 0 0 250 150 0 0 20 0 1 0 \
                    171612 3133440 390 18446744073709551615";
        assert_eq!(
            StatTimes::parse(stat),
            Some(StatTimes {
                utime: 250,
                stime: 150,
                start: 171_612
            })
        );
        assert_eq!(StatTimes::parse("4325 (cat) R 1 2"), None);
    }

    #[test]
    fn status_limits_and_boot_time_are_read() {
        let status = "Name:\tnanomq\nVmSize:\t    3892 kB\nVmRSS:\t    2184 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2184));
        assert_eq!(status_kib(status, "VmSize:"), Some(3892));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files("Max open files  unlimited  unlimited  files"),
            None
        );
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1796177290\n"),
            Some(1_796_177_290)
        );
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let stats = ProcessStats::read().expect("/proc/self is readable on Linux");
        assert!(stats.resident_bytes > 0);
        assert!(stats.virtual_bytes >= stats.resident_bytes);
        // Standard input, output and error at least.
        assert!(stats.open_fds >= 3, "{stats:?}");
        assert!(stats.max_fds.is_some_and(|max| max >= stats.open_fds));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = stats.start_time_seconds.unwrap();
        // Started before now (the clocks may differ by a second), and within the last hour.
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
    }
}
