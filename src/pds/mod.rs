//! PDS mode: hosts accounts and their signed repos, serves the sync
//! endpoints and its own firehose, and asks relays to crawl it.
//!
//! Built up over the PDS-mode issue; so far:
//! - [`SessionTokens`] (`session_token.rs`): HS256 access/refresh JWTs.
//! - [`writes`]: checking and encoding a client's record writes.
//! - [`config`]: `config/pds.toml`, `ATRELAY_PDS_*`.

pub mod config;
mod session_token;
pub mod writes;

pub use session_token::{Claims, SessionTokens, TokenError, TokenKind};
