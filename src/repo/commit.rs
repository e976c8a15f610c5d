//! The signed commit object (repo format v3): `{did, rev, sig, data, prev,
//! version}`.
//!
//! The signature covers the canonical encoding of the commit without its `sig`
//! key. Verification takes those bytes straight from the received block (the
//! block minus the `sig` entry) instead of re-encoding decoded fields, so it is
//! exact even for a commit carrying fields this code does not know, and costs
//! one copy.
//!
//! ```
//! use atrelay::crypto::{Curve, PrivateKey};
//! use atrelay::repo::commit::Commit;
//! use atrelay::wire::cid::Cid;
//!
//! let key = PrivateKey::generate(Curve::K256);
//! let data = Cid::for_cbor(b"\xa0");
//! let signed = Commit::sign("did:plc:abc", "3kabcdefghijk", data, None, &key);
//! let commit = Commit::decode(&signed.bytes).unwrap();
//! commit.verify_signature(&key.public_key()).unwrap();
//! assert_eq!(commit.data, data);
//! ```

use std::ops::Range;

use crate::crypto::{PrivateKey, PublicKey, SignatureError};
use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};
use crate::wire::cid::Cid;
use crate::wire::syntax::{validate_did, validate_tid, SyntaxError};

/// The repo format version this code reads and writes.
pub const COMMIT_VERSION: i64 = 3;

/// Why a commit block is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("commit does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("commit version {0} is not supported (expected 3)")]
    Version(i64),
    #[error("commit signature must be 64 bytes, got {0}")]
    SigLength(usize),
    #[error("commit did: {0}")]
    Did(SyntaxError),
    #[error("commit rev: {0}")]
    Rev(SyntaxError),
    #[error("commit signature does not verify: {0}")]
    Signature(#[from] SignatureError),
}

/// A decoded commit, borrowing from its block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit<'a> {
    pub did: &'a str,
    pub rev: &'a str,
    pub sig: &'a [u8],
    /// Root of the repo's MST after this commit.
    pub data: Cid,
    /// Always `null` in v3 (the key must still be present).
    pub prev: Option<Cid>,
    pub version: i64,
    /// The whole block.
    raw: &'a [u8],
    /// Byte range of the `sig` key and value within `raw`.
    sig_entry: Range<usize>,
    /// Number of entries in the top-level map.
    entries: usize,
}

/// A freshly signed commit: its block bytes and CID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCommit {
    pub cid: Cid,
    pub bytes: Vec<u8>,
}

impl<'a> Commit<'a> {
    /// Decodes a commit block strictly (canonical DAG-CBOR; `did`, `rev`,
    /// `sig`, `data`, `prev` and `version` all present; unknown fields kept
    /// under the signature but otherwise ignored). Checks version 3, a 64-byte
    /// signature, DID and TID syntax. Does not check the signature: see
    /// [`Commit::verify_signature`].
    pub fn decode(block: &'a [u8]) -> Result<Commit<'a>, CommitError> {
        let mut d = Decoder::new(block);
        let (mut did, mut rev, mut sig, mut data, mut prev, mut version) =
            (None, None, None, None, None, None);
        let mut sig_entry = 0..0;
        let entries = d.map()?;
        let mut keys = KeyOrder::new();
        for _ in 0..entries {
            let key_at = d.position();
            match keys.next(&mut d)? {
                "did" => did = Some(d.text()?),
                "rev" => rev = Some(d.text()?),
                "sig" => {
                    sig = Some(d.bytes()?);
                    sig_entry = key_at..d.position();
                }
                "data" => data = Some(d.cid()?),
                "prev" => prev = Some(d.cid_or_null()?),
                "version" => version = Some(d.i64()?),
                _ => d.skip()?,
            }
        }
        d.finish()?;
        let commit = Commit {
            did: did.ok_or(DecodeError::MissingField("did"))?,
            rev: rev.ok_or(DecodeError::MissingField("rev"))?,
            sig: sig.ok_or(DecodeError::MissingField("sig"))?,
            data: data.ok_or(DecodeError::MissingField("data"))?,
            prev: prev.ok_or(DecodeError::MissingField("prev"))?,
            version: version.ok_or(DecodeError::MissingField("version"))?,
            raw: block,
            sig_entry,
            entries,
        };
        if commit.version != COMMIT_VERSION {
            return Err(CommitError::Version(commit.version));
        }
        if commit.sig.len() != 64 {
            return Err(CommitError::SigLength(commit.sig.len()));
        }
        validate_did(commit.did).map_err(CommitError::Did)?;
        validate_tid(commit.rev).map_err(CommitError::Rev)?;
        Ok(commit)
    }

    /// The bytes the signature covers: the block with its `sig` entry removed.
    pub fn unsigned_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len());
        Encoder::new(&mut out).map(self.entries - 1);
        let header_len = map_header_len(self.entries);
        out.extend_from_slice(&self.raw[header_len..self.sig_entry.start]);
        out.extend_from_slice(&self.raw[self.sig_entry.end..]);
        out
    }

    /// Verifies the signature with the account's current signing key.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), CommitError> {
        key.verify(&self.unsigned_bytes(), self.sig)?;
        Ok(())
    }

    /// The block this commit was decoded from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Canonical encoding of the known fields (a commit with no unknown fields
    /// re-encodes to its original bytes).
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_commit(
            self.did,
            self.rev,
            Some(self.sig),
            &self.data,
            self.prev.as_ref(),
            out,
        );
    }

    /// Builds, signs (low-S, over the unsigned encoding) and encodes a commit.
    pub fn sign(
        did: &str,
        rev: &str,
        data: Cid,
        prev: Option<Cid>,
        key: &PrivateKey,
    ) -> SignedCommit {
        let mut unsigned = Vec::with_capacity(160);
        encode_commit(did, rev, None, &data, prev.as_ref(), &mut unsigned);
        let sig = key.sign(&unsigned);
        let mut bytes = Vec::with_capacity(unsigned.len() + 70);
        encode_commit(did, rev, Some(&sig), &data, prev.as_ref(), &mut bytes);
        SignedCommit {
            cid: Cid::for_cbor(&bytes),
            bytes,
        }
    }
}

/// Canonical key order: did, rev, sig, data, prev, version.
fn encode_commit(
    did: &str,
    rev: &str,
    sig: Option<&[u8]>,
    data: &Cid,
    prev: Option<&Cid>,
    out: &mut Vec<u8>,
) {
    let mut e = Encoder::new(out);
    e.map(if sig.is_some() { 6 } else { 5 });
    e.text("did");
    e.text(did);
    e.text("rev");
    e.text(rev);
    if let Some(sig) = sig {
        e.text("sig");
        e.bytes(sig);
    }
    e.text("data");
    e.cid(data);
    e.text("prev");
    e.cid_or_null(prev);
    e.text("version");
    e.i64(COMMIT_VERSION);
}

fn map_header_len(entries: usize) -> usize {
    match entries {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Curve;

    #[test]
    fn sign_decode_verify_both_curves() {
        for curve in [Curve::K256, Curve::P256] {
            let key = PrivateKey::generate(curve);
            let data = Cid::for_cbor(b"\xa0");
            let signed = Commit::sign("did:plc:abc", "3kabcdefghijk", data, None, &key);
            assert_eq!(signed.cid, Cid::for_cbor(&signed.bytes));
            let c = Commit::decode(&signed.bytes).unwrap();
            c.verify_signature(&key.public_key()).unwrap();
            let mut re = Vec::new();
            c.encode(&mut re);
            assert_eq!(re, signed.bytes);
            // Someone else's key fails.
            let other = PrivateKey::generate(curve).public_key();
            assert!(matches!(
                c.verify_signature(&other),
                Err(CommitError::Signature(_))
            ));
        }
    }

    #[test]
    fn starts_like_the_digest_example() {
        let key = PrivateKey::generate(Curve::K256);
        let signed = Commit::sign(
            "did:plc:abcdefghijklmnopqrstuvwx",
            "3lhhvfanmos22",
            Cid::for_cbor(b"\xa0"),
            None,
            &key,
        );
        let b = &signed.bytes;
        assert_eq!(&b[..5], b"\xa6\x63did");
        assert!(b.ends_with(b"\x64prev\xf6\x67version\x03"));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let key = PrivateKey::generate(Curve::K256);
        let signed = Commit::sign(
            "did:plc:abc",
            "3kabcdefghijk",
            Cid::for_cbor(b"\xa0"),
            None,
            &key,
        );
        let mut bytes = signed.bytes.clone();
        // flip a bit inside the rev string
        let pos = bytes
            .windows(13)
            .position(|w| w == b"3kabcdefghijk")
            .unwrap();
        bytes[pos + 12] = b'l';
        let c = Commit::decode(&bytes).unwrap();
        assert!(c.verify_signature(&key.public_key()).is_err());
    }

    #[test]
    fn rejects_bad_shapes() {
        let key = PrivateKey::generate(Curve::K256);
        let data = Cid::for_cbor(b"\xa0");
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        e.map(5);
        e.text("did");
        e.text("did:plc:abc");
        e.text("rev");
        e.text("3kabcdefghijk");
        e.text("sig");
        e.bytes(&key.sign(b"x"));
        e.text("data");
        e.cid(&data);
        e.text("version");
        e.i64(3);
        assert_eq!(
            Commit::decode(&out),
            Err(CommitError::Decode(DecodeError::MissingField("prev")))
        );
        let signed = Commit::sign("not a did", "3kabcdefghijk", data, None, &key);
        assert!(matches!(
            Commit::decode(&signed.bytes),
            Err(CommitError::Did(_))
        ));
        let signed = Commit::sign("did:plc:abc", "nope", data, None, &key);
        assert!(matches!(
            Commit::decode(&signed.bytes),
            Err(CommitError::Rev(_))
        ));
    }
}
