//! Resident set size of this process, from `/proc/self/status` (Linux).

/// The current VmRSS in bytes, or `None` where `/proc/self/status` cannot be read.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    // "VmRSS:\t   12345 kB"
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
