//! atrelay: an AT Protocol relay (firehose aggregator) built for throughput,
//! with a minimal PDS mode.
//!
//! The crate is layered; dependencies point downward only:
//!
//! - [`wire`]: the protocol's bytes — strict DAG-CBOR (DRISL), CIDs, CAR files,
//!   event-stream frames, TIDs and identifier syntax. Knows nothing else.
//! - [`crypto`]: did:key / Multikey keys, low-S ECDSA sign and verify on k256 and p256.
//! - [`repo`]: the repository — MST, signed commits, diffs with inversion proofs,
//!   and the verification of a `#commit` against them. Uses `wire` and `crypto`.
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

pub mod config;
pub mod control;
pub mod crypto;
pub mod devnet;
pub mod fanout;
pub mod http;
pub mod identity;
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
