//! The one error type of the command line: a message that already carries its
//! context ("inspect foo.bin: frame body: … at byte 12"), printed once on stderr
//! by `main`, which then exits with status 1.
//!
//! The library's errors are precise but say nothing of *which* file or *which*
//! part of a frame they came from; commands wrap them with
//! [`CliError::context`] as they go, so the final line reads outermost first.

use std::fmt;

/// A command failure, ready to be shown to the user.
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> CliError {
        CliError(message.into())
    }

    /// Prefixes the message with where it happened: `"{what}: {message}"`.
    pub fn context(self, what: impl fmt::Display) -> CliError {
        CliError(format!("{what}: {}", self.0))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result type of every command.
pub type CliResult<T = ()> = Result<T, CliError>;
