//! CPU time of this process's threads by name, from `/proc/self/task`.
//!
//! Why: the fleet and the swarm share the load generator's process, and
//! the question a run answers is how much of the machine each takes next
//! to the relay. The swarm's threads are named `swarm-N`
//! (`swarm::THREAD_PREFIX`), so their CPU is the sum over those threads,
//! and the fleet's (with the rest of the process) is the process's total
//! minus it. A thread that has exited drops out of `/proc/self/task`; the
//! swarm's threads live as long as the swarm.

/// Linux reports process and thread CPU in clock ticks of 1/100 s on every
/// architecture the relay targets (`getconf CLK_TCK`).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) of the threads whose name starts with
/// `prefix`.
pub fn threads_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ticks: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| named_ticks(&stat, prefix))
        .sum();
    ticks as f64 / TICKS_PER_SECOND
}

/// utime + stime of one `stat` line if its thread's name starts with
/// `prefix`.
fn named_ticks(stat: &str, prefix: &str) -> Option<u64> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    if !stat.get(open + 1..close)?.starts_with(prefix) {
        return None;
    }
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let mut fields = stat.get(close + 2..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_threads_are_summed() {
        let line = "4242 (swarm-0) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(named_ticks(line, "swarm-"), Some(300));
        assert_eq!(named_ticks(line, "loadtest-fleet"), None);
        let odd = "4243 (a) b) (c) R 1 2 3 4 5 6 7 8 9 10 7 8 0 0";
        assert_eq!(named_ticks(odd, "a) b"), Some(15));
    }

    #[test]
    fn a_busy_named_thread_shows_up() {
        let t = std::thread::Builder::new()
            .name("cpu-probe-test".into())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed() < std::time::Duration::from_millis(150) {
                    x = x.wrapping_mul(31).wrapping_add(1);
                }
                let seen = threads_cpu_seconds("cpu-probe-test");
                std::hint::black_box(x);
                seen
            })
            .unwrap();
        let seen = t.join().unwrap();
        assert!(seen > 0.0, "{seen}");
        assert_eq!(threads_cpu_seconds("no-such-thread-name"), 0.0);
    }
}
