//! Composition: a whole relay started and stopped, its parts wired
//! together ([`Relay`]): the log, ring, resolver, verifier pool, sequencer,
//! crawlers, HTTP server and retention. It sits above every part it wires
//! (`relay`, `http`, `net`, `log`, ...), so none of them needs the others'
//! start-up.

mod relay;

pub use relay::{Relay, StartError, StartOptions};
