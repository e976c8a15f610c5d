//! atrelay: an AT Protocol relay (firehose aggregator) built for throughput,
//! with a minimal PDS mode.
//!
//! The crate is layered; dependencies point downward only (design.md §5),
//! from the top:
//!
//! - [`node`]: composition. Starts and stops a relay ([`node::Relay`]), a
//!   mirror ([`node::Mirror`]), a PDS ([`node::PdsServer`]) and a PLC
//!   directory ([`node::PlcServer`]): wires each service to the HTTP server,
//!   its threads and tasks, and one [`lifecycle::Shutdown`]; and the
//!   Prometheus exporter ([`node::metrics_exporter`]), which describes every
//!   module's metric families. `devnet` and the CLI (`main.rs`) sit above it
//!   and call it.
//! - [`http`]: the XRPC kit (routing, errors, auth limits) and the relay's
//!   endpoints; [`pds`] (PDS mode, with its own XRPC surface) and [`mirror`]
//!   (the fan-out tier) use it.
//! - [`relay`]: crawlers, verifier decisions, the sequencer, hosts and
//!   account state; it imports no HTTP framework. [`relay`] and [`pds`]
//!   never use each other.
//! - [`control`] (operator policy), [`plc`] (a minimal PLC directory),
//!   [`identity`] (DID resolution and its cache), [`config`] (typed config).
//! - [`fanout`] (the broadcast ring and subscriber sessions), [`log`] (the
//!   RocksDB sequenced log), [`repo`] (MST, commits, diffs and their
//!   verification; uses `wire` and `crypto`).
//! - At the ground, knowing nothing of the rest: [`net`] (host names,
//!   private-address rules, DNS with the SSRF check, backoff, the one
//!   inbound HTTP server), [`clock`] (the one wall clock, `now_micros`),
//!   [`lifecycle`] (the graceful-stop signal and completion guard every
//!   long-lived part holds), [`metrics`] (a metric family: name, kind,
//!   unit, help; each module names its own in its `metrics.rs`), [`wire`] (the
//!   protocol's bytes: strict DAG-CBOR, CIDs, CAR files, frames, TIDs and
//!   identifier syntax) and [`crypto`] (did:key / Multikey keys, low-S
//!   ECDSA on k256 and p256).
//!
//! Beside the layers, [`upstream_sim`] is an emulated PDS host (a firehose
//! of given frames with cursor replay) for the relay's tests, its benches and
//! the load generator, which ships it; the relay never uses it.
//!
//! ```
//! use atrelay::wire::cid::Cid;
//! let cid = Cid::for_cbor(b"\xa0"); // the empty map
//! assert_eq!(cid.to_string(), "bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua");
//! ```

pub mod clock;
pub mod config;
pub mod control;
pub mod crypto;
pub mod devnet;
pub mod fanout;
pub mod http;
pub mod identity;
pub mod lifecycle;
pub mod log;
pub mod metrics;
pub mod mirror;
pub mod net;
pub mod node;
pub mod pds;
pub mod plc;
pub mod relay;
pub mod repo;
pub mod upstream_sim;
pub mod wire;
