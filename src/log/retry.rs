//! Appending through transient failures: [`EventLog::append_retrying`].
//!
//! A writer that stops at the first failed append turns a resource shortage
//! (descriptors exhausted by a flood of connections, a full disk) into an
//! outage that needs an operator. Instead the writer retries the *identical*
//! batch, which is safe whatever the failed attempt left on disk (see
//! [`super::recovery`]), backing off from 10 ms to 1 s, for as long as the
//! failure is transient. Meanwhile it is loud: the gauge
//! `atrelay_log_writer_stalled` is 1, `atrelay_log_append_retries_total`
//! counts the failed attempts by cause, and an ERROR line says what ran out
//! and what to do, at once and then every [`LOG_EVERY`]. Everything upstream
//! of the writer waits (its channel is bounded), so nothing is published
//! before it is durable and nothing accepted is dropped.

use std::time::{Duration, Instant};

use super::batch::AppendBatch;
use super::error::LogError;
use super::event_log::EventLog;
use super::metrics::{APPEND_RETRIES, WRITER_STALLED};

/// The longest wait between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// The first wait.
const FIRST_WAIT: Duration = Duration::from_millis(10);
/// How often a stalled writer repeats its ERROR line.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl EventLog {
    /// [`append`](Self::append)s `batch`, retrying the same batch while the
    /// failure is transient ([`LogError::is_transient`]), until it succeeds
    /// or `give_up(stalled_for)` says to stop (then the last error is
    /// returned and the batch may or may not be in the log). A non-transient
    /// error (corruption, a gap, a bad argument) is returned at once.
    ///
    /// Costs nothing extra when the first attempt succeeds. Blocks the
    /// calling thread while it retries: call it from the writer thread, not
    /// an async task.
    pub fn append_retrying(
        &self,
        batch: &AppendBatch,
        give_up: impl Fn(Duration) -> bool,
    ) -> Result<(), LogError> {
        let err = match self.append(batch) {
            Ok(()) => return Ok(()),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) => e,
        };
        let mut stall = Stall::begin(err, self.last_seq());
        loop {
            if give_up(stall.started.elapsed()) {
                return Err(stall.give_up());
            }
            std::thread::sleep(stall.next_wait());
            match self.append(batch) {
                Ok(()) => {
                    stall.recovered();
                    return Ok(());
                }
                Err(e) if e.is_transient() => stall.failed(e),
                Err(e) => return Err(e),
            }
        }
    }
}

/// One stretch of failed attempts: the metrics and log lines about it.
/// Dropping it clears the stalled gauge, whatever way the stall ended.
struct Stall {
    started: Instant,
    retries: u64,
    wait: Duration,
    logged: Instant,
    last: LogError,
}

impl Stall {
    fn begin(err: LogError, last_seq: u64) -> Stall {
        metrics::gauge!(WRITER_STALLED).increment(1.0);
        metrics::counter!(APPEND_RETRIES, "cause" => err.cause()).increment(1);
        tracing::error!(
            error = %err,
            cause = err.cause(),
            last_seq,
            "event log append failed; retrying the same batch until it succeeds: no event is accepted meanwhile. {}",
            advice(&err)
        );
        Stall {
            started: Instant::now(),
            retries: 1,
            wait: FIRST_WAIT,
            logged: Instant::now(),
            last: err,
        }
    }

    fn next_wait(&mut self) -> Duration {
        let wait = self.wait;
        self.wait = (self.wait * 2).min(MAX_WAIT);
        wait
    }

    fn failed(&mut self, err: LogError) {
        self.retries += 1;
        metrics::counter!(APPEND_RETRIES, "cause" => err.cause()).increment(1);
        if self.logged.elapsed() >= LOG_EVERY {
            self.logged = Instant::now();
            tracing::error!(
                error = %err,
                cause = err.cause(),
                retries = self.retries,
                stalled_secs = self.started.elapsed().as_secs(),
                "event log writer still stalled. {}",
                advice(&err)
            );
        }
        self.last = err;
    }

    fn recovered(self) {
        tracing::warn!(
            retries = self.retries,
            stalled_ms = self.started.elapsed().as_millis() as u64,
            "event log writer recovered; appends continue"
        );
    }

    fn give_up(self) -> LogError {
        tracing::warn!(
            error = %self.last,
            retries = self.retries,
            stalled_ms = self.started.elapsed().as_millis() as u64,
            "event log writer gave up retrying"
        );
        self.last.clone()
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        metrics::gauge!(WRITER_STALLED).decrement(1.0);
    }
}

/// What the operator can do about a transient failure.
fn advice(err: &LogError) -> &'static str {
    match err.cause() {
        "descriptors" => "The process is out of file descriptors: raise its open-file limit (LimitNOFILE, ulimit -n) or find what holds them; writing resumes by itself once some are free.",
        "disk_full" => "The disk holding the data directory is full: free space there; writing resumes by itself.",
        "memory" => "The machine is out of memory; writing resumes by itself once some is free.",
        _ => "Check the disk holding the data directory (dmesg, SMART); writing resumes by itself if the failure clears.",
    }
}
