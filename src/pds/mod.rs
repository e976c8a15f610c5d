//! PDS mode: hosts accounts and their signed repos, serves the sync
//! endpoints and its own firehose, and asks relays to crawl it.
//!
//! Built up over the PDS-mode issue; so far:
//! - [`SessionTokens`] (`session_token.rs`): HS256 access/refresh JWTs.
//! - [`writes`]: checking and encoding a client's record writes.
//! - [`config`]: `config/pds.toml`, `ATRELAY_PDS_*`.
//! - [`events`]: the firehose source (sequence, persist, publish).
//! - [`crawl_notifier`]: asking relays to crawl this PDS.
//! - [`store`]: accounts, repo blocks and heads, records, blobs, refresh
//!   tokens and server secrets (RocksDB + blob files); [`password`]: scrypt.

pub mod config;
pub mod crawl_notifier;
pub mod events;
pub mod http;
pub mod password;
pub mod service;
mod session_token;
pub mod store;
pub mod writes;

pub use session_token::{Claims, SessionTokens, TokenError, TokenKind};
