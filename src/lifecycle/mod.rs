//! Graceful stop, the one way every long-lived part of the crate ends: a
//! named "stop now" signal that tasks hold and await ([`StopSignal`]), and
//! a completion guard ([`TaskGuard`]) so "every task is gone" is a channel
//! closing, not a counter ([`Shutdown`], [`TaskGroup`]).
//!
//! A module of its own at the ground, beside `net` and `wire`: it imports
//! nothing of the crate (only tokio), so the relay's threads, the fan-out
//! sessions, the HTTP server and the composition in `node` can all hold it
//! without an import running back up. It is not part of `net`: stopping is
//! not about the network (the sequencer thread and the mirror's writer
//! hold a signal too).

mod shutdown;

pub use shutdown::{Shutdown, StillRunning, StopSignal, TaskGroup, TaskGuard};
