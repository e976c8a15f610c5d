//! The process's open-file limit and the share of it inbound connections
//! may use.
//!
//! ```
//! use atrelay::net::fd_limit::{connection_budget, Reserve};
//! // 1,024 descriptors, one RocksDB holding up to 288 of them: 368 connections.
//! assert_eq!(connection_budget(1024, Reserve { databases: 288 }), 368);
//! ```
//!
//! Why: every socket, RocksDB table file and WAL costs a descriptor, and a
//! process out of descriptors fails wherever it next opens one — for the
//! relay that was the event log's append, which stopped the relay. So the
//! long-running subcommands raise the soft limit to the hard limit at start
//! ([`raise_to_hard_limit`]), and each HTTP server caps its connections at
//! what is left once the rest of the process has its share
//! ([`connection_budget`]): a flood of connections is then refused or
//! evicted at the cap instead of starving the log.

use std::io;

/// Descriptors the process needs whatever it serves: stdio, the runtime's
/// epoll and wake-up descriptors, signal pipes, the listeners, `/proc`
/// reads, the data directory's lock.
pub const PROCESS_FDS: u64 = 64;

/// Connections the metrics endpoint accepts (a scraper or two, and an
/// operator's curl); part of every reserve, since the endpoint shares the
/// process.
pub const METRICS_CONNECTIONS: usize = 16;

/// Connections refused with a 503 that may be open at once while their
/// answer drains (beyond that, a refused connection is closed at once).
pub const REFUSING_CONNECTIONS: usize = 32;

/// The fewest connections a server is given, however low the limit.
pub const MIN_CONNECTIONS: usize = 32;

/// What else in the process holds descriptors besides the inbound
/// connections of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserve {
    /// Database files: RocksDB's open tables (its `max_open_files`), WALs,
    /// manifests and info logs, for every database the process opens.
    pub databases: u64,
}

/// Descriptors kept for outbound sockets: one per crawled host, plus the
/// HTTP clients' pools (PLC, did:web, `describeServer`, crawl requests).
/// A quarter of the limit, at least 128: hosts come and go at run time, so
/// the share grows with the limit rather than with a count known at start.
pub fn outbound_reserve(limit: u64) -> u64 {
    (limit / 4).max(128)
}

/// How many inbound connections one server may hold under an open-file
/// `limit`: the limit minus [`PROCESS_FDS`], the `reserve`'s databases,
/// [`outbound_reserve`], the metrics endpoint's and the refusals' share;
/// at least [`MIN_CONNECTIONS`].
pub fn connection_budget(limit: u64, reserve: Reserve) -> usize {
    let kept = PROCESS_FDS
        + reserve.databases
        + outbound_reserve(limit)
        + (METRICS_CONNECTIONS + REFUSING_CONNECTIONS) as u64;
    usize::try_from(limit.saturating_sub(kept))
        .unwrap_or(usize::MAX)
        .max(MIN_CONNECTIONS)
}

/// The soft limit before and after [`raise_to_hard_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    pub before: u64,
    pub after: u64,
    pub hard: u64,
}

/// The current soft `RLIMIT_NOFILE`.
pub fn soft_limit() -> io::Result<u64> {
    get().map(|(soft, _)| soft)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (to `fs.nr_open` when
/// the hard limit is unlimited, which the kernel refuses as a soft value).
/// Returns both values; `before == after` when there was nothing to raise.
pub fn raise_to_hard_limit() -> io::Result<Raised> {
    let (before, hard) = get()?;
    let target = if hard == libc::RLIM_INFINITY {
        nr_open().unwrap_or(before).max(before)
    } else {
        hard
    };
    if target > before {
        let lim = libc::rlimit {
            rlim_cur: target,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we pass; no memory is shared.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Raised {
        before,
        after: get()?.0,
        hard,
    })
}

/// Raises the limit and says so in one INFO line (a WARN line if it could
/// not): what the long-running subcommands call first.
pub fn raise_and_log() {
    match raise_to_hard_limit() {
        Ok(Raised {
            before,
            after,
            hard,
        }) if after > before => tracing::info!(
            before,
            after,
            hard,
            "raised the open-file limit (RLIMIT_NOFILE) to the hard limit"
        ),
        Ok(Raised { before, hard, .. }) => tracing::info!(
            limit = before,
            hard,
            "open-file limit (RLIMIT_NOFILE) already at the hard limit; raise the hard limit (e.g. systemd LimitNOFILE) to serve more connections"
        ),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit (RLIMIT_NOFILE)"),
    }
}

fn get() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// The kernel's ceiling for `RLIMIT_NOFILE` (Linux `fs.nr_open`).
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_room_for_the_rest_of_the_process() {
        let one_db = Reserve { databases: 288 };
        // 1024 - 64 - 288 - 256 - 16 - 32
        assert_eq!(connection_budget(1024, one_db), 368);
        assert_eq!(
            connection_budget(20_000, one_db),
            20_000 - 64 - 288 - 5_000 - 48
        );
        assert_eq!(connection_budget(100, one_db), MIN_CONNECTIONS);
    }

    #[test]
    fn raising_is_idempotent() {
        let first = raise_to_hard_limit().unwrap();
        assert!(first.after >= first.before);
        let again = raise_to_hard_limit().unwrap();
        assert_eq!(again.before, again.after, "nothing left to raise");
        assert_eq!(soft_limit().unwrap(), again.after);
    }
}
