//! What the end-to-end benches read from the OS: cores, process and
//! per-thread CPU time, load average.

use std::collections::HashMap;

/// Cores the benches may use (one thread per core for the ceilings).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// CPU seconds (user + system, all threads, living or exited) used by this
/// process so far; `/proc/self/stat` counts in clock ticks, 100 per second.
pub fn process_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// Per live thread: (name, nanoseconds on CPU), from `/proc/self/task`.
pub fn thread_cpu() -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let path = entry.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        out.insert(tid, (name.trim().to_owned(), ns));
    }
    out
}

/// CPU seconds per group between two [`thread_cpu`] snapshots, each thread
/// put in group `group_of(name)` (`< N`). Threads that exited in between are
/// not counted (the process total from [`process_cpu`] still has them).
pub fn cpu_by_group<const N: usize>(
    before: &HashMap<u32, (String, u64)>,
    after: &HashMap<u32, (String, u64)>,
    group_of: impl Fn(&str) -> usize,
) -> [f64; N] {
    let mut out = [0.0; N];
    for (tid, (name, ns)) in after {
        let start = before.get(tid).map_or(0, |(_, n)| *n);
        out[group_of(name).min(N - 1)] += ns.saturating_sub(start) as f64 / 1e9;
    }
    out
}

/// The 1, 5 and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Percentile `p` (0..=100) of sorted `v`, nearest rank; NaN when empty.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}
