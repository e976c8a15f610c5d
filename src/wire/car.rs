//! CAR v1: the container of repo exports and firehose diffs.
//!
//! Layout: `varint(len) | {roots: [CID…], version: 1}` then sections of
//! `varint(len) | CID | block`. The reader verifies every block's hash against its
//! CID (a diff whose bytes do not match their names is forged or corrupt),
//! accepts any block order, duplicates and unreferenced blocks, and bounds the
//! work an input can cause.
//!
//! ```
//! use atrelay::wire::car::{Car, CarLimits, CarWriter};
//! use atrelay::wire::cid::Cid;
//! let block = b"\xa0";
//! let cid = Cid::for_cbor(block);
//! let mut w = CarWriter::new(&[cid]);
//! w.push(&cid, block);
//! let bytes = w.finish();
//! let car = Car::parse(&bytes, CarLimits::FIREHOSE).unwrap();
//! assert_eq!(car.root(), Some(&cid));
//! assert_eq!(car.get(&cid), Some(&block[..]));
//! ```

use super::cbor::{DecodeError, Decoder, Encoder, KeyOrder};
use super::cid::{Cid, CidError};
use super::frame::MAX_COMMIT_BLOCKS_LEN;

/// Bounds on a CAR read from the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarLimits {
    /// Most blocks (sections) accepted.
    pub max_blocks: usize,
    /// Largest single block, in bytes.
    pub max_block_len: usize,
}

impl CarLimits {
    /// For `#commit` / `#sync` diffs: the whole CAR is at most
    /// [`MAX_COMMIT_BLOCKS_LEN`] bytes (lexicon), so no block is longer;
    /// 10,000 blocks is far above any honest 200-op diff and caps the
    /// hashing a hostile frame can demand.
    pub const FIREHOSE: CarLimits = CarLimits {
        max_blocks: 10_000,
        max_block_len: MAX_COMMIT_BLOCKS_LEN,
    };
    /// For whole-repo exports (`getRepo`, imports): large but finite.
    pub const REPO: CarLimits = CarLimits {
        max_blocks: 20_000_000,
        max_block_len: 2_000_000,
    };
}

/// Why bytes are not an acceptable CAR.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CarError {
    #[error("CAR truncated at byte {0}")]
    Truncated(usize),
    #[error("CAR has a malformed varint at byte {0}")]
    BadVarint(usize),
    #[error("CAR header: {0}")]
    Header(DecodeError),
    #[error("CAR version {0} is not supported (only 1)")]
    Version(i64),
    #[error("CAR section at byte {at}: {err}")]
    Cid { at: usize, err: CidError },
    #[error("CAR block {cid} at byte {at} does not match its hash")]
    HashMismatch { at: usize, cid: Cid },
    #[error("CAR block {cid} uses a hash function we cannot check")]
    UnsupportedHash { cid: Cid },
    #[error("CAR has more than {0} blocks")]
    TooManyBlocks(usize),
    #[error("CAR block of {len} bytes at byte {at} exceeds the limit")]
    BlockTooLarge { at: usize, len: usize },
}

/// One block: its CID and its bytes, borrowed from the CAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    pub cid: Cid,
    pub data: &'a [u8],
}

/// A parsed, hash-verified CAR whose blocks borrow from the input.
#[derive(Clone, Debug)]
pub struct Car<'a> {
    roots: Vec<Cid>,
    /// Sorted by CID, duplicates removed, for binary-search lookup.
    blocks: Vec<Block<'a>>,
}

impl<'a> Car<'a> {
    /// Parses and verifies a whole CAR.
    pub fn parse(bytes: &'a [u8], limits: CarLimits) -> Result<Car<'a>, CarError> {
        let mut pos = 0;
        let header_len = read_varint(bytes, &mut pos)?;
        let header = take(bytes, &mut pos, header_len)?;
        let roots = parse_header(header)?;

        let mut blocks = Vec::new();
        while pos < bytes.len() {
            let section_at = pos;
            if blocks.len() >= limits.max_blocks {
                return Err(CarError::TooManyBlocks(limits.max_blocks));
            }
            let len = read_varint(bytes, &mut pos)?;
            let section = take(bytes, &mut pos, len)?;
            let (cid, used) = Cid::read_prefix(section).map_err(|err| CarError::Cid {
                at: section_at,
                err,
            })?;
            let data = &section[used..];
            if data.len() > limits.max_block_len {
                return Err(CarError::BlockTooLarge {
                    at: section_at,
                    len: data.len(),
                });
            }
            match cid.matches(data) {
                Some(true) => {}
                Some(false) => {
                    return Err(CarError::HashMismatch {
                        at: section_at,
                        cid,
                    })
                }
                None => return Err(CarError::UnsupportedHash { cid }),
            }
            blocks.push(Block { cid, data });
        }
        blocks.sort_unstable_by_key(|b| b.cid);
        // Same CID means same bytes (hashes were checked), so dropping
        // duplicates loses nothing.
        blocks.dedup_by(|a, b| a.cid == b.cid);
        Ok(Car { roots, blocks })
    }

    /// The header's roots.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The first root: for a commit diff, the commit.
    pub fn root(&self) -> Option<&Cid> {
        self.roots.first()
    }

    /// The block named `cid`, if present.
    pub fn get(&self, cid: &Cid) -> Option<&'a [u8]> {
        self.blocks
            .binary_search_by(|b| b.cid.cmp(cid))
            .ok()
            .map(|i| self.blocks[i].data)
    }

    /// Distinct blocks, in CID order.
    pub fn blocks(&self) -> &[Block<'a>] {
        &self.blocks
    }

    /// Number of distinct blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the CAR has no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

fn parse_header(header: &[u8]) -> Result<Vec<Cid>, CarError> {
    let mut d = Decoder::new(header);
    let mut roots = None;
    let mut version = None;
    let read = |d: &mut Decoder, roots: &mut Option<Vec<Cid>>, version: &mut Option<i64>| {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        for _ in 0..n {
            match keys.next(d)? {
                "roots" => {
                    let count = d.array()?;
                    let mut r = Vec::with_capacity(count);
                    for _ in 0..count {
                        r.push(d.cid()?);
                    }
                    *roots = Some(r);
                }
                "version" => *version = Some(d.i64()?),
                _ => d.skip()?,
            }
        }
        d.finish()
    };
    read(&mut d, &mut roots, &mut version).map_err(CarError::Header)?;
    match version {
        Some(1) => {}
        Some(v) => return Err(CarError::Version(v)),
        None => return Err(CarError::Header(DecodeError::MissingField("version"))),
    }
    roots.ok_or(CarError::Header(DecodeError::MissingField("roots")))
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<usize, CarError> {
    let start = *pos;
    let mut value: u64 = 0;
    for i in 0..9 {
        let byte = *bytes.get(*pos).ok_or(CarError::Truncated(*pos))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(CarError::BadVarint(start));
            }
            return usize::try_from(value).map_err(|_| CarError::BadVarint(start));
        }
    }
    Err(CarError::BadVarint(start))
}

fn take<'a>(bytes: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], CarError> {
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or(CarError::Truncated(bytes.len()))?;
    let s = &bytes[*pos..end];
    *pos = end;
    Ok(s)
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Builds a CAR in memory.
pub struct CarWriter {
    out: Vec<u8>,
}

impl CarWriter {
    /// Starts a CAR with the given roots.
    pub fn new(roots: &[Cid]) -> CarWriter {
        let mut header = Vec::with_capacity(16 + roots.len() * 41);
        let mut e = Encoder::new(&mut header);
        e.map(2);
        e.text("roots");
        e.array(roots.len());
        for r in roots {
            e.cid(r);
        }
        e.text("version");
        e.u64(1);
        let mut out = Vec::with_capacity(header.len() + 4096);
        write_varint(&mut out, header.len() as u64);
        out.extend_from_slice(&header);
        CarWriter { out }
    }

    /// Appends a block. The caller is responsible for `cid` naming `data`.
    pub fn push(&mut self, cid: &Cid, data: &[u8]) {
        let c = cid.as_bytes();
        write_varint(&mut self.out, (c.len() + data.len()) as u64);
        self.out.extend_from_slice(c);
        self.out.extend_from_slice(data);
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing has been written (never true: the header is written at once).
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The finished CAR.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Cid, Cid) {
        let a = Cid::for_cbor(b"\xa0");
        let b = Cid::for_cbor(b"\x80");
        let mut w = CarWriter::new(&[a]);
        w.push(&b, b"\x80");
        w.push(&a, b"\xa0");
        w.push(&b, b"\x80"); // duplicate
        (w.finish(), a, b)
    }

    #[test]
    fn round_trip_any_order_with_duplicates() {
        let (bytes, a, b) = sample();
        let car = Car::parse(&bytes, CarLimits::FIREHOSE).unwrap();
        assert_eq!(car.roots(), &[a]);
        assert_eq!(car.len(), 2);
        assert_eq!(car.get(&a), Some(&b"\xa0"[..]));
        assert_eq!(car.get(&b), Some(&b"\x80"[..]));
        assert_eq!(car.get(&Cid::for_cbor(b"\xf6")), None);
    }

    #[test]
    fn header_bytes_match_digest_layout() {
        let a = Cid::for_cbor(b"\xa0");
        let bytes = CarWriter::new(&[a]).finish();
        // 3a a2 65 "roots" 81 d8 2a 58 25 00 01 71 12 20 ...
        assert_eq!(bytes[0], 0x3a);
        assert_eq!(&bytes[1..8], b"\xa2\x65roots");
        assert_eq!(&bytes[8..14], &[0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00]);
        assert_eq!(&bytes[bytes.len() - 9..], b"\x67version\x01");
    }

    #[test]
    fn rejects_tampered_block() {
        let (mut bytes, _, _) = sample();
        let last = bytes.len() - 1;
        bytes[last] = 0x81;
        assert!(matches!(
            Car::parse(&bytes, CarLimits::FIREHOSE),
            Err(CarError::HashMismatch { .. })
        ));
    }

    #[test]
    fn rejects_truncation_everywhere() {
        let (bytes, _, _) = sample();
        for cut in 0..bytes.len() {
            // A cut exactly at a section boundary is a valid shorter CAR.
            if let Ok(car) = Car::parse(&bytes[..cut], CarLimits::FIREHOSE) {
                assert!(car.len() <= 2);
            }
        }
        assert!(Car::parse(&bytes[..bytes.len() - 1], CarLimits::FIREHOSE).is_err());
    }

    #[test]
    fn enforces_limits() {
        let (bytes, _, _) = sample();
        let tight = CarLimits {
            max_blocks: 2,
            max_block_len: 10,
        };
        assert_eq!(
            Car::parse(&bytes, tight).unwrap_err(),
            CarError::TooManyBlocks(2)
        );
        let tiny = CarLimits {
            max_blocks: 10,
            max_block_len: 0,
        };
        assert!(matches!(
            Car::parse(&bytes, tiny),
            Err(CarError::BlockTooLarge { .. })
        ));
    }

    #[test]
    fn rejects_bad_headers() {
        // version 2
        let mut h = Vec::new();
        let mut e = Encoder::new(&mut h);
        e.map(2);
        e.text("roots");
        e.array(0);
        e.text("version");
        e.u64(2);
        let mut car = vec![h.len() as u8];
        car.extend_from_slice(&h);
        assert_eq!(
            Car::parse(&car, CarLimits::FIREHOSE).unwrap_err(),
            CarError::Version(2)
        );
        // header claims more bytes than exist
        assert!(matches!(
            Car::parse(&[0x7f, 0xa0], CarLimits::FIREHOSE),
            Err(CarError::Truncated(_))
        ));
        // non-minimal varint
        assert!(matches!(
            Car::parse(&[0x80, 0x00], CarLimits::FIREHOSE),
            Err(CarError::BadVarint(0))
        ));
    }
}
