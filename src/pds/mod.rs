//! PDS mode: hosts accounts and their signed repos, serves the sync
//! endpoints and its own firehose, and asks relays to crawl it.
//!
//! Built up over the PDS-mode issue; so far:
//! - [`SessionTokens`] (`session_token.rs`): HS256 access/refresh JWTs.

mod session_token;

pub use session_token::{Claims, SessionTokens, TokenError, TokenKind};
