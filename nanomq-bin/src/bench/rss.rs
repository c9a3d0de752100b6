//! Resident memory of a process, from `/proc/PID/status` (Linux).

/// `VmRSS` of process `pid` in KiB; `None` if it cannot be read (no such process, not
/// Linux).
pub(crate) fn read_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:` line of a status file, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tnanomq\nVmPeak:\t  9000 kB\nVmRSS:\t    5128 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(5128));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_this_process() {
        assert!(read_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
