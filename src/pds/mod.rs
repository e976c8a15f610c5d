//! PDS mode: hosts accounts and their signed repos, serves the sync
//! endpoints and its own firehose, and asks relays to crawl it.
//!
//! The service only: [`crate::node::PdsServer`] starts and stops it behind
//! the HTTP server. Built up over the PDS-mode issue; so far:
//! - [`service`]: the [`service::Pds`] itself: accounts, sessions and repo
//!   writes as operations, independent of HTTP.
//! - [`http`]: its XRPC routes, one file per namespace.
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
