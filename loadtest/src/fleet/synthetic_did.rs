//! The fleet's synthetic DIDs: well-formed `did:plc`s derived from bytes,
//! for the accounts it hosts and the accounts its records point at.

use sha2::{Digest, Sha256};

/// A `did:plc` whose identifier is the hash of `bytes`.
pub fn did_from_bytes(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    format!("did:plc:{}", atrelay::wire::base32::encode(&h[..15]))
}
