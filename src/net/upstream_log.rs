//! Log lines about what an upstream sends, kept bounded: a host decides
//! how many `#info` frames, error frames and broken connections it produces,
//! so each becomes at most a few log lines a minute, each cut short, with
//! how many were left out. (The counters count every one.)

use std::time::{Duration, Instant};

/// A budget of log lines: `lines` per `window`, the rest counted.
#[derive(Debug)]
pub struct LogLimit {
    lines: u32,
    window: Duration,
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogLimit {
    /// `lines` lines per minute.
    pub fn per_minute(lines: u32) -> LogLimit {
        LogLimit {
            lines,
            window: Duration::from_secs(60),
            window_start: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were left
    /// out since the last one logged; `None` when this one is left out.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) < self.window => {}
            _ => {
                self.window_start = Some(now);
                self.used = 0;
            }
        }
        if self.used < self.lines {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), with an
/// ellipsis when cut, and control characters escaped: safe to put in a log
/// line whatever a stranger sent.
pub fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = text[..end].escape_debug().collect();
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_budgeted_and_the_rest_counted() {
        let mut limit = LogLimit::per_minute(3);
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), Some(0));
        for _ in 0..10_000 {
            assert_eq!(limit.allow(), None);
        }
        // A new window reports what was left out.
        limit.window_start = Some(Instant::now() - Duration::from_secs(61));
        assert_eq!(limit.allow(), Some(10_000));
        assert_eq!(limit.allow(), Some(0));
    }

    #[test]
    fn clipping() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip(&"x".repeat(1000), 4), "xxxx…");
        assert_eq!(clip("é日本", 4), "é…");
        assert_eq!(clip("a\nb\0", 10), "a\\nb\\0");
    }
}
