//! Writing results to stdout without panicking.
//!
//! `println!` panics when stdout is closed early (`atrelay inspect x | head`);
//! a tool whose promise is "never a panic, whatever the input" writes through
//! here instead, treating a closed pipe as the reader having seen enough.

use std::io::{ErrorKind, Write};

use super::error::{CliError, CliResult};

/// Writes `text` and a newline to stdout. A broken pipe is not an error.
pub fn print(text: &str) -> CliResult {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(format!("writing to stdout: {e}"))),
    }
}

/// Pretty-prints a value as JSON on stdout. Typed views (rather than
/// `serde_json::Value`, whose maps are sorted by key) keep fields in the order
/// they are declared, so the output reads top-down: header before body.
pub fn print_json(value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(format!("rendering JSON output: {e}")))?;
    print(&text)
}

/// Writes a line to stderr (warnings, notes, errors). A failure to write is
/// ignored: there is nowhere left to report it.
pub fn eprint(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}
