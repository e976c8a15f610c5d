//! The on-disk layout of the PDS store: column families, key encodings and
//! the schema version.
//!
//! The store is a directory holding `db/` (one RocksDB database) and
//! `blobs/<did>/<cid>` (blob bytes, see [`blobs`](super::blobs)).
//!
//! | CF | key | value |
//! |---|---|---|
//! | `accounts` | DID | [`AccountRecord`](super::AccountRecord), DAG-CBOR map |
//! | `handles` | handle, lower-case | DID |
//! | `emails` | email, lower-case | DID |
//! | `heads` | DID | [`RepoHeadRecord`](super::RepoHeadRecord), DAG-CBOR map |
//! | `blocks` | DID ‖ `00` ‖ binary CID | block bytes (commits, MST nodes, records) |
//! | `records` | DID ‖ `00` ‖ collection ‖ `00` ‖ rkey | binary CID of the record |
//! | `blobs` | DID ‖ `00` ‖ binary CID | [`BlobMeta`](super::BlobMeta), DAG-CBOR map |
//! | `refresh_tokens` | jti | expiry, u64 BE seconds ‖ DID |
//! | `refresh_by_did` | DID ‖ `00` ‖ jti | empty (index for "revoke all of an account's sessions") |
//! | `secrets` | name (`jwt`, `plc_rotation_key`, ...) | secret bytes |
//! | `meta` | `schema_version` | u32 BE |
//!
//! Why this shape:
//! - **Everything an account owns sits under a `DID ‖ 00` prefix** (or is
//!   reachable from its account value), so deleting an account is a handful
//!   of range deletes in the same batch as the account itself, and a prefix
//!   scan lists a repo's blocks, records or blobs. `00` cannot occur in a DID,
//!   NSID, record key or jti (all are validated ASCII), so one DID's prefix is
//!   never a prefix of another's (`did:web:a` vs `did:web:ab`), and
//!   `DID ‖ 01` bounds the scan.
//! - **Blocks are keyed per DID**, not globally by CID: two repos holding the
//!   same record bytes store them twice, but deleting one repo never needs
//!   reference counts.
//! - **Records are indexed by collection then rkey**, so `listRecords` is one
//!   bounded scan in rkey order in either direction and `describeRepo`'s
//!   collection list is one seek per collection.
//! - **Values are DAG-CBOR** through the crate's strict codec where they are
//!   maps (as the relay's `log::AccountState` is): CIDs are native links,
//!   optional fields can be added later (decoders skip unknown keys), and no
//!   second serialization stack is needed. Fixed-shape values (refresh
//!   tokens, CIDs, secrets) are plain bytes.
//!
//! Old commits' blocks are never removed (no garbage collection yet): a
//! repo's `blocks` range is a superset of its current tree. Exports that must
//! be exact walk the tree from the head instead of dumping the range.

use super::error::StoreError;
use crate::wire::cid::Cid;

/// Account values by DID.
pub const CF_ACCOUNTS: &str = "accounts";
/// Handle index: lower-case handle → DID.
pub const CF_HANDLES: &str = "handles";
/// Email index: lower-case email → DID.
pub const CF_EMAILS: &str = "emails";
/// Repo heads by DID.
pub const CF_HEADS: &str = "heads";
/// Repo blocks, per DID.
pub const CF_BLOCKS: &str = "blocks";
/// Record index: path → record CID, per DID.
pub const CF_RECORDS: &str = "records";
/// Blob metadata, per DID (the bytes are files).
pub const CF_BLOBS: &str = "blobs";
/// Live refresh tokens by jti.
pub const CF_REFRESH_TOKENS: &str = "refresh_tokens";
/// Refresh token index by DID.
pub const CF_REFRESH_BY_DID: &str = "refresh_by_did";
/// Named server secrets.
pub const CF_SECRETS: &str = "secrets";
/// Store metadata (schema version).
pub const CF_META: &str = "meta";

/// Every column family, in the order they are opened.
pub const ALL_CFS: [&str; 11] = [
    CF_ACCOUNTS,
    CF_HANDLES,
    CF_EMAILS,
    CF_HEADS,
    CF_BLOCKS,
    CF_RECORDS,
    CF_BLOBS,
    CF_REFRESH_TOKENS,
    CF_REFRESH_BY_DID,
    CF_SECRETS,
    CF_META,
];

/// The layout version this build reads and writes; bump it on any
/// incompatible change to a key or value encoding.
pub const SCHEMA_VERSION: u32 = 1;
/// `meta` key of the schema version.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";

/// Separates a DID (and a collection) from what follows in a key.
const SEP: u8 = 0x00;

/// `DID ‖ 00`: the prefix of everything a DID owns in the per-DID CFs.
pub fn did_prefix(did: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(did.len() + 1 + 36);
    k.extend_from_slice(did.as_bytes());
    k.push(SEP);
    k
}

/// The exclusive upper bound of the keys starting with `prefix`, which must
/// end in the `00` separator: the same bytes ending in `01`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    debug_assert_eq!(prefix.last(), Some(&SEP));
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = SEP + 1;
    }
    end
}

/// `blocks` (and `blobs`) key: `DID ‖ 00 ‖ binary CID`.
pub fn did_cid_key(did: &str, cid: &Cid) -> Vec<u8> {
    let mut k = did_prefix(did);
    k.extend_from_slice(cid.as_bytes());
    k
}

/// The CID at the end of a `DID ‖ 00 ‖ CID` key whose prefix is `prefix_len` bytes.
pub fn cid_of_key(key: &[u8], prefix_len: usize) -> Result<Cid, StoreError> {
    key.get(prefix_len..)
        .ok_or_else(|| StoreError::Corrupt("key shorter than its DID prefix".into()))
        .and_then(|b| Cid::from_bytes(b).map_err(|e| StoreError::corrupt("CID in key", e)))
}

/// `records` prefix of one collection: `DID ‖ 00 ‖ collection ‖ 00`.
pub fn collection_prefix(did: &str, collection: &str) -> Vec<u8> {
    let mut k = did_prefix(did);
    k.extend_from_slice(collection.as_bytes());
    k.push(SEP);
    k
}

/// `records` key: `DID ‖ 00 ‖ collection ‖ 00 ‖ rkey`.
pub fn record_key(did: &str, collection: &str, rkey: &str) -> Vec<u8> {
    let mut k = collection_prefix(did, collection);
    k.extend_from_slice(rkey.as_bytes());
    k
}

/// `refresh_by_did` key: `DID ‖ 00 ‖ jti`.
pub fn refresh_index_key(did: &str, jti: &str) -> Vec<u8> {
    let mut k = did_prefix(did);
    k.extend_from_slice(jti.as_bytes());
    k
}

/// A `records` value: the record CID in binary form.
pub fn decode_cid_value(value: &[u8]) -> Result<Cid, StoreError> {
    Cid::from_bytes(value).map_err(|e| StoreError::corrupt("record CID", e))
}

/// Text stored as a value or key suffix (DIDs in the indexes, rkeys).
pub fn decode_text(bytes: &[u8], what: &str) -> Result<String, StoreError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| StoreError::corrupt(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dids_prefix_never_covers_another() {
        let a = did_prefix("did:web:a");
        let ab = did_prefix("did:web:ab");
        assert!(!ab.starts_with(&a));
        let end = prefix_end(&a);
        // Every key of `did:web:a` sorts inside [a, end); `did:web:ab`'s do not.
        let k = did_cid_key("did:web:a", &Cid::for_cbor(b"\xa0"));
        assert!(a.as_slice() <= k.as_slice() && k.as_slice() < end.as_slice());
        assert!(ab.as_slice() >= end.as_slice());
    }

    #[test]
    fn record_keys_sort_by_collection_then_rkey() {
        let did = "did:plc:abc";
        let k1 = record_key(did, "app.bsky.feed.like", "zzz");
        let k2 = record_key(did, "app.bsky.feed.post", "aaa");
        let k3 = record_key(did, "app.bsky.feed.post", "aab");
        assert!(k1 < k2 && k2 < k3);
        // A collection that extends another's name is outside its prefix range.
        let p = collection_prefix(did, "app.bsky.feed.post");
        let longer = record_key(did, "app.bsky.feed.postgate", "a");
        assert!(!longer.starts_with(&p));
        assert!(longer.as_slice() >= prefix_end(&p).as_slice());
    }

    #[test]
    fn cid_keys_round_trip() {
        let cid = Cid::for_raw(b"blob");
        let did = "did:plc:abc";
        let key = did_cid_key(did, &cid);
        assert_eq!(cid_of_key(&key, did_prefix(did).len()).unwrap(), cid);
        assert!(cid_of_key(&key[..key.len() - 1], did.len() + 1).is_err());
        assert!(cid_of_key(b"x", 5).is_err());
    }
}
