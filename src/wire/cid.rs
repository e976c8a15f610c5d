//! Content identifiers (CIDs): binary and string forms, computed from bytes.
//!
//! atproto "blesses" CIDv1 with codec dag-cbor (`0x71`, records, MST nodes,
//! commits) or raw (`0x55`, blobs) and a sha2-256 multihash. Commit and MST CIDs
//! must be blessed; record CIDs found in the wild must be carried through as they
//! are, so [`Cid`] holds any well-formed CIDv1 (or v0) up to [`MAX_CID_LEN`]
//! bytes inline, without a heap allocation, and is `Copy`.
//!
//! ```
//! use atrelay::wire::cid::{Cid, Codec};
//! let cid = Cid::for_cbor(b"\xa0");
//! assert!(cid.is_blessed());
//! assert_eq!(cid.codec(), Some(Codec::DagCbor));
//! let text = cid.to_string();
//! assert_eq!(text.parse::<Cid>().unwrap(), cid);
//! ```

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::base32;

/// Longest binary CID we hold. Blessed CIDs are 36 bytes; this leaves room for
/// 64-byte digests with multi-byte codec varints. Longer ones are rejected.
pub const MAX_CID_LEN: usize = 72;

/// Binary length of a blessed CID: `01 <codec> 12 20 <32-byte sha256>`.
pub const BLESSED_CID_LEN: usize = 36;

const SHA2_256: u64 = 0x12;

/// The content codecs atproto uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// `0x71`: records, MST nodes, commits, PLC operations.
    DagCbor,
    /// `0x55`: blobs.
    Raw,
}

impl Codec {
    fn code(self) -> u8 {
        match self {
            Codec::DagCbor => 0x71,
            Codec::Raw => 0x55,
        }
    }
}

/// Why bytes or text are not a CID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    #[error("CID is empty")]
    Empty,
    #[error("CID is truncated")]
    Truncated,
    #[error("CID longer than {MAX_CID_LEN} bytes")]
    TooLong,
    #[error("CID has a malformed varint")]
    BadVarint,
    #[error("CID version {0} is not supported")]
    UnsupportedVersion(u64),
    #[error("CID has trailing bytes")]
    TrailingBytes,
    #[error("CID string has an unsupported multibase prefix")]
    UnsupportedMultibase,
    #[error("CID string is not valid base32/base58")]
    BadEncoding,
}

/// A content identifier, stored inline.
#[derive(Clone, Copy)]
pub struct Cid {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

impl Cid {
    /// The blessed CID of DAG-CBOR bytes: CIDv1, dag-cbor, sha2-256.
    pub fn for_cbor(data: &[u8]) -> Cid {
        Cid::from_sha256(Codec::DagCbor, Sha256::digest(data).into())
    }

    /// The blessed CID of a blob: CIDv1, raw, sha2-256.
    pub fn for_raw(data: &[u8]) -> Cid {
        Cid::from_sha256(Codec::Raw, Sha256::digest(data).into())
    }

    /// A blessed CID from a precomputed sha2-256 digest.
    pub fn from_sha256(codec: Codec, digest: [u8; 32]) -> Cid {
        let mut bytes = [0u8; MAX_CID_LEN];
        bytes[..4].copy_from_slice(&[0x01, codec.code(), SHA2_256 as u8, 0x20]);
        bytes[4..BLESSED_CID_LEN].copy_from_slice(&digest);
        Cid {
            len: BLESSED_CID_LEN as u8,
            bytes,
        }
    }

    /// Parses a complete binary CID (the content of a tag-42 link after its
    /// `0x00` prefix). Trailing bytes are an error.
    pub fn from_bytes(data: &[u8]) -> Result<Cid, CidError> {
        let (cid, used) = Cid::read_prefix(data)?;
        if used != data.len() {
            return Err(CidError::TrailingBytes);
        }
        Ok(cid)
    }

    /// Parses a binary CID at the start of `data` and returns it with the number
    /// of bytes it took (CAR sections carry a CID followed by the block).
    pub fn read_prefix(data: &[u8]) -> Result<(Cid, usize), CidError> {
        // Fast path: the blessed form, which is nearly every CID on the wire.
        if data.len() >= BLESSED_CID_LEN
            && data[0] == 0x01
            && (data[1] == 0x71 || data[1] == 0x55)
            && data[2] == 0x12
            && data[3] == 0x20
        {
            let mut bytes = [0u8; MAX_CID_LEN];
            bytes[..BLESSED_CID_LEN].copy_from_slice(&data[..BLESSED_CID_LEN]);
            return Ok((
                Cid {
                    len: BLESSED_CID_LEN as u8,
                    bytes,
                },
                BLESSED_CID_LEN,
            ));
        }
        if data.is_empty() {
            return Err(CidError::Empty);
        }
        // CIDv0 is a bare sha2-256 multihash: 0x12 0x20 <32 bytes>.
        let end = if data.len() >= 2 && data[0] == 0x12 && data[1] == 0x20 {
            34
        } else {
            let mut pos = 0;
            let version = read_varint(data, &mut pos)?;
            if version != 1 {
                return Err(CidError::UnsupportedVersion(version));
            }
            let _codec = read_varint(data, &mut pos)?;
            let _hash = read_varint(data, &mut pos)?;
            let digest_len = read_varint(data, &mut pos)?;
            let digest_len = usize::try_from(digest_len).map_err(|_| CidError::TooLong)?;
            pos.checked_add(digest_len).ok_or(CidError::TooLong)?
        };
        if end > MAX_CID_LEN {
            return Err(CidError::TooLong);
        }
        if end > data.len() {
            return Err(CidError::Truncated);
        }
        let mut bytes = [0u8; MAX_CID_LEN];
        bytes[..end].copy_from_slice(&data[..end]);
        Ok((
            Cid {
                len: end as u8,
                bytes,
            },
            end,
        ))
    }

    /// The binary form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Whether this is CIDv1 + dag-cbor or raw + sha2-256, the only form commits
    /// and MST nodes may use.
    pub fn is_blessed(&self) -> bool {
        self.len as usize == BLESSED_CID_LEN
            && self.bytes[0] == 0x01
            && (self.bytes[1] == 0x71 || self.bytes[1] == 0x55)
            && self.bytes[2] == 0x12
            && self.bytes[3] == 0x20
    }

    /// The codec, when it is one atproto uses (and the CID is v1).
    pub fn codec(&self) -> Option<Codec> {
        if self.bytes[0] != 0x01 {
            return None;
        }
        match self.bytes[1] {
            0x71 => Some(Codec::DagCbor),
            0x55 => Some(Codec::Raw),
            _ => None,
        }
    }

    /// The sha2-256 digest, when the multihash is sha2-256.
    pub fn sha256_digest(&self) -> Option<&[u8; 32]> {
        let mh = self.multihash();
        if mh.len() == 34 && mh[0] == 0x12 && mh[1] == 0x20 {
            mh[2..].try_into().ok()
        } else {
            None
        }
    }

    /// The multihash part (hash code, length, digest).
    fn multihash(&self) -> &[u8] {
        let b = self.as_bytes();
        if b[0] == 0x12 {
            return b; // v0
        }
        let mut pos = 0;
        // Already validated on construction; the unwraps cannot fire, but stay
        // panic-free anyway.
        for _ in 0..2 {
            if read_varint(b, &mut pos).is_err() {
                return &[];
            }
        }
        &b[pos..]
    }

    /// Checks `data` against this CID's hash. `None` when the hash function is
    /// not one we implement (only sha2-256 is used by atproto).
    pub fn matches(&self, data: &[u8]) -> Option<bool> {
        let digest = self.sha256_digest()?;
        let computed: [u8; 32] = Sha256::digest(data).into();
        Some(&computed == digest)
    }

    /// Writes the multibase base32 string form (`b…`) into `out`.
    pub fn write_string(&self, out: &mut String) {
        if self.bytes[0] == 0x12 {
            out.push_str(&bs58::encode(self.as_bytes()).into_string());
            return;
        }
        out.push('b');
        base32::encode_into(self.as_bytes(), out);
    }
}

/// Reads an unsigned LEB128 varint in its minimal form, at most 9 bytes (the
/// multiformats limit).
fn read_varint(data: &[u8], pos: &mut usize) -> Result<u64, CidError> {
    let mut value: u64 = 0;
    for i in 0..9 {
        let byte = *data.get(*pos).ok_or(CidError::Truncated)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(CidError::BadVarint); // not minimal
            }
            return Ok(value);
        }
    }
    Err(CidError::BadVarint)
}

impl PartialEq for Cid {
    fn eq(&self, other: &Cid) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for Cid {}

impl std::hash::Hash for Cid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for Cid {
    fn partial_cmp(&self, other: &Cid) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cid {
    /// Orders by binary form; used to index CAR blocks.
    fn cmp(&self, other: &Cid) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        self.write_string(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = CidError;

    /// Parses `b…` (base32 CIDv1) and `Qm…` (base58btc CIDv0).
    fn from_str(s: &str) -> Result<Cid, CidError> {
        if let Some(rest) = s.strip_prefix('b') {
            let bytes = base32::decode(rest).ok_or(CidError::BadEncoding)?;
            let cid = Cid::from_bytes(&bytes)?;
            if cid.bytes[0] != 0x01 {
                return Err(CidError::UnsupportedVersion(0));
            }
            Ok(cid)
        } else if s.starts_with("Qm") && s.len() == 46 {
            let bytes = bs58::decode(s)
                .into_vec()
                .map_err(|_| CidError::BadEncoding)?;
            Cid::from_bytes(&bytes)
        } else if s.is_empty() {
            Err(CidError::Empty)
        } else {
            Err(CidError::UnsupportedMultibase)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_map_cid() {
        let cid = Cid::for_cbor(&[0xa0]);
        assert_eq!(
            cid.to_string(),
            "bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"
        );
        assert_eq!(cid.matches(&[0xa0]), Some(true));
        assert_eq!(cid.matches(&[0xa1]), Some(false));
    }

    #[test]
    fn string_round_trips() {
        for s in [
            "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a",
            "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity",
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        ] {
            let cid: Cid = s.parse().unwrap();
            assert_eq!(cid.to_string(), s);
            assert_eq!(Cid::from_bytes(cid.as_bytes()).unwrap(), cid);
        }
        let raw: Cid = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"
            .parse()
            .unwrap();
        assert_eq!(raw.codec(), Some(Codec::Raw));
        assert!(raw.is_blessed());
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!("".parse::<Cid>(), Err(CidError::Empty));
        assert_eq!("zabc".parse::<Cid>(), Err(CidError::UnsupportedMultibase));
        assert!("bafyrei".parse::<Cid>().is_err());
        assert!("bAFY".parse::<Cid>().is_err());
        assert_eq!(Cid::from_bytes(&[]), Err(CidError::Empty));
        assert_eq!(
            Cid::from_bytes(&[0x02, 0x71, 0x12, 0x20]),
            Err(CidError::UnsupportedVersion(2))
        );
        assert_eq!(
            Cid::from_bytes(&[0x01, 0x71, 0x12, 0x20, 1, 2]),
            Err(CidError::Truncated)
        );
        assert_eq!(
            Cid::from_bytes(&[0x01, 0x71, 0x12, 0x7f]),
            Err(CidError::TooLong)
        );
        assert_eq!(
            Cid::from_bytes(&[0x01, 0xf1, 0x00, 0x12, 0x00]),
            Err(CidError::BadVarint)
        );
        let mut long = Cid::for_cbor(b"x").as_bytes().to_vec();
        long.push(0);
        assert_eq!(Cid::from_bytes(&long), Err(CidError::TrailingBytes));
    }

    #[test]
    fn non_blessed_is_preserved() {
        // CIDv1, dag-pb (0x70), sha2-256: legal CID, not blessed, kept as-is.
        let mut b = vec![0x01, 0x70, 0x12, 0x20];
        b.extend_from_slice(&[7u8; 32]);
        let cid = Cid::from_bytes(&b).unwrap();
        assert!(!cid.is_blessed());
        assert_eq!(cid.codec(), None);
        assert_eq!(cid.as_bytes(), &b[..]);
        assert_eq!(cid.to_string().parse::<Cid>().unwrap(), cid);
    }
}
