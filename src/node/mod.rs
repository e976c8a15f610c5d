//! Composition: a whole relay started and stopped, its parts wired
//! together ([`Relay`]): the log, ring, resolver, verifier pool, sequencer,
//! crawlers, HTTP server and retention; or a mirror of another relay
//! ([`Mirror`]): the log, ring, upstream follower, its writer, the HTTP
//! server with the pass-through queries, and retention. It sits above every
//! part it wires (`relay`, `mirror`, `http`, `net`, `log`, ...), so none of
//! them needs the others' start-up.

mod mirror;
mod mirror_routes;
mod pds;
mod plc;
mod relay;
mod shared;

pub use mirror::{Mirror, MirrorStartOptions};
pub use pds::PdsServer;
pub use plc::PlcServer;
pub use relay::{Relay, StartOptions};
pub use shared::StartError;
