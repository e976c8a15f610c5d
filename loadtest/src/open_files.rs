//! The load generator's own open-file limit: every subscriber is a socket,
//! so a swarm of ten thousand needs ten thousand descriptors beside the
//! fleet's. Raised at start from the soft to the hard limit (the relay's
//! `fd_limit`, shared), and a run that cannot fit stops before it starts,
//! saying what to raise, instead of failing thousands of connects midway.

use atrelay::net::fd_limit::raise_to_hard_limit;

/// Descriptors the process needs besides the sockets counted by callers:
/// stdio, runtimes' epoll and wake-ups, listeners, `/proc` reads, the
/// HTTP clients' pools.
pub const BASE: u64 = 256;

/// Raises the soft limit to the hard limit, and checks `needed` (the
/// sockets `what` will open, before [`BASE`]) fits under it.
pub fn ensure(needed: u64, what: &str) -> Result<(), OpenFilesError> {
    let needed = needed + BASE;
    let raised = raise_to_hard_limit().map_err(|err| OpenFilesError::Raise {
        what: what.to_owned(),
        err,
    })?;
    if raised.after < needed {
        return Err(OpenFilesError::TooFew {
            what: what.to_owned(),
            needed,
            allowed: raised.after,
            hard: raised.hard,
        });
    }
    Ok(())
}

/// Why a run cannot open the descriptors it needs; says what to raise.
#[derive(Debug, thiserror::Error)]
pub enum OpenFilesError {
    #[error("could not raise the open-file limit (RLIMIT_NOFILE) for {what}: {err}")]
    Raise { what: String, err: std::io::Error },
    #[error(
        "{what} needs about {needed} open files, but this process may open at most {allowed} \
         (hard limit {hard}). Raise the hard limit, e.g. `ulimit -Hn {needed}` as root before \
         starting, LimitNOFILE={needed} in a systemd unit, or `nofile` in \
         /etc/security/limits.conf"
    )]
    TooFew {
        what: String,
        needed: u64,
        allowed: u64,
        hard: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_need_fits_and_an_absurd_one_says_what_to_raise() {
        ensure(10, "a test").unwrap();
        let err = ensure(u64::MAX / 2, "a huge swarm")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a huge swarm") && err.contains("hard limit"),
            "{err}"
        );
    }
}
