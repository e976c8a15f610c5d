//! The devnet's live status line on stderr: operations written, the relay's
//! head seq, firehose subscribers.
//!
//! On a terminal the line is rewritten in place (`\r`) as often as it is
//! updated; otherwise (a pipe, a CI log) a full line is written only every
//! [`PIPE_EVERY`], so logs stay readable. stderr, not stdout: stdout carries
//! the URLs and the summary, which scripts parse.

use std::io::Write;
use std::time::{Duration, Instant};

/// How often a line is written when stderr is not a terminal.
pub const PIPE_EVERY: Duration = Duration::from_secs(5);

/// What the line shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Traffic operations done.
    pub written: u64,
    /// Traffic operations that failed.
    pub errors: u64,
    /// The relay's newest published seq.
    pub relay_head: u64,
    /// Relay firehose subscribers (`None`: unknown).
    pub subscribers: Option<u64>,
    /// Time since traffic started.
    pub elapsed: Duration,
}

impl Snapshot {
    /// `12.0s  written 240 (20.0/s)  relay head 251  subscribers 1`.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.written as f64 / secs
        } else {
            0.0
        };
        let subscribers = self
            .subscribers
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        let mut line = format!(
            "{secs:.1}s  written {} ({rate:.1}/s)  relay head {}  subscribers {subscribers}",
            self.written, self.relay_head
        );
        if self.errors > 0 {
            line.push_str(&format!("  errors {}", self.errors));
        }
        line
    }
}

/// The line's writer.
pub struct LiveLine<W: Write> {
    out: W,
    terminal: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl LiveLine<std::io::Stderr> {
    /// On stderr, rewriting in place when it is a terminal.
    pub fn stderr() -> LiveLine<std::io::Stderr> {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        LiveLine::new(std::io::stderr(), terminal)
    }
}

impl<W: Write> LiveLine<W> {
    /// On `out`; `terminal` chooses in-place rewriting.
    pub fn new(out: W, terminal: bool) -> LiveLine<W> {
        LiveLine {
            out,
            terminal,
            last: None,
            drawn: false,
        }
    }

    /// Shows `snap` (on a pipe, only if [`PIPE_EVERY`] has passed).
    pub fn update(&mut self, snap: &Snapshot) {
        let line = snap.render();
        if self.terminal {
            // `\x1b[K` clears what a longer previous line left behind.
            let _ = write!(self.out, "\r{line}\x1b[K");
            self.drawn = true;
        } else if !matches!(self.last, Some(t) if t.elapsed() < PIPE_EVERY) {
            let _ = writeln!(self.out, "{line}");
            self.last = Some(Instant::now());
        }
        let _ = self.out.flush();
    }

    /// Ends the in-place line so what follows starts on its own line.
    pub fn finish(&mut self) {
        if self.terminal && self.drawn {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_lines_are_throttled_and_terminal_lines_rewrite() {
        let snap = Snapshot {
            written: 10,
            errors: 0,
            relay_head: 12,
            subscribers: Some(1),
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(
            snap.render(),
            "2.0s  written 10 (5.0/s)  relay head 12  subscribers 1"
        );
        let mut pipe = LiveLine::new(Vec::new(), false);
        pipe.update(&snap);
        pipe.update(&snap);
        pipe.finish();
        assert_eq!(String::from_utf8(pipe.out).unwrap().lines().count(), 1);
        let mut tty = LiveLine::new(Vec::new(), true);
        tty.update(&snap);
        tty.update(&snap);
        tty.finish();
        let out = String::from_utf8(tty.out).unwrap();
        assert_eq!(out.matches('\r').count(), 2);
        assert!(out.ends_with('\n'));
    }
}
