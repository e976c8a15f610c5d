//! A minimal did:plc directory (digest §6.2, §6.3), for local networks, tests
//! and the PDS mode: it accepts signed operations, checks them as the
//! reference directory does, keeps every DID's log in its own RocksDB, and
//! serves DID documents, logs and the export over HTTP (`atrelay plc`).
//!
//! - [`op`]: operations — canonical DAG-CBOR, CID, DID derivation, signing
//!   and verification; [`op_json`] their strict JSON form; [`limits`] the
//!   size rules; [`signature`] the one accepted encoding of `sig`.
//! - [`chain`]: whether an op may extend a DID's log (prev, authority, the
//!   72-hour fork window, tombstones).
//! - [`state`]: a DID's current data and its rendered DID document.
//! - [`store`] and [`Directory`]: persistence and the operations on it.
//! - [`http_api`]: the HTTP API's routes ([`crate::node::PlcServer`] runs
//!   them on a bound listener).
//! - [`client`]: build and sign genesis, update and tombstone ops, and submit
//!   them ([`PlcClient`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use atrelay::crypto::{Curve, PrivateKey};
//! use atrelay::node::PlcServer;
//! use atrelay::plc::{genesis_op, PlcClient};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let plc = PlcServer::start(listener, std::path::Path::new("./data/plc")).await?;
//! let rotation = PrivateKey::generate(Curve::K256);
//! let genesis = genesis_op(
//!     &rotation.public_key().to_did_key(),
//!     "alice.test",
//!     "https://pds.test",
//!     &[rotation.public_key().to_did_key()],
//!     &rotation,
//! )?;
//! PlcClient::new(&plc.url()).submit(&genesis.did, &genesis.op).await?;
//! plc.stop().await;
//! # Ok(())
//! # }
//! ```

pub mod chain;
pub mod client;
pub mod directory;
pub mod error;
pub mod http_api;
pub mod limits;
pub mod logged_op;
pub mod op;
pub mod op_json;
pub mod signature;
pub mod state;
pub mod store;

pub use client::{genesis_op, tombstone_op, update_op, ClientError, Genesis, PlcClient};
pub use directory::{Directory, Resolution, MAX_EXPORT_COUNT, MAX_OPS_PER_DID};
pub use error::{ChainError, OpError, SignatureRejected, StoreError, SubmitError};
pub use logged_op::LoggedOp;
pub use op::{LegacyCreateOp, Operation, RegularOp, Service, SignedOperation, TombstoneOp};
pub use state::PlcData;
