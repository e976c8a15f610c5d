//! Composition, the top of the crate below the CLI: each node is started
//! and stopped here, its parts wired together, so none of the parts needs
//! the others' start-up and no service module wires the HTTP framework.
//!
//! - [`Relay`] (`relay.rs`): the log, ring, resolver, verifier pool,
//!   sequencer, crawlers, HTTP server and retention.
//! - [`Mirror`] (`mirror.rs`): a mirror of another relay: the log, ring,
//!   upstream follower, its writer, the HTTP server with the pass-through
//!   queries (`mirror_routes.rs`), and retention.
//! - [`PdsServer`] (`pds.rs`): PDS mode's XRPC routes over a
//!   [`crate::pds::service::Pds`], its firehose and the crawl notifier.
//! - [`PlcServer`] (`plc.rs`): a PLC directory's database and HTTP API.
//! - `shared.rs`: what they share: binding, opening the log, the log's
//!   writer thread, the server task, retention, and the stop that waits for
//!   every task.
//!
//! Every node owns one [`crate::lifecycle::Shutdown`]: its tasks hold a
//! stop signal and, if they hold the log, a guard; `stop` signals them and
//! waits until every guard is gone (up to [`STOP_GRACE`]), so the same data
//! directory can be opened again at once.

pub mod metrics_exporter;
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
pub use shared::{StartError, STOP_GRACE};
