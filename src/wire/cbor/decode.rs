//! Strict, zero-copy DAG-CBOR reader.

use super::DecodeError;
use crate::wire::cid::Cid;

/// Bounds on untrusted input, beyond what the input length already bounds.
/// Defaults follow the data-validation guide's hardening values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of arrays and maps accepted by [`Decoder::skip`] and
    /// [`super::Value`] decoding.
    pub max_depth: usize,
    /// Most items in one array or map.
    pub max_container_len: u64,
    /// Longest map key, in bytes.
    pub max_key_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 32,
            max_container_len: 131_072,
            max_key_len: 8192,
        }
    }
}

/// The kind of the next item, for callers that branch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Unsigned,
    Negative,
    Bytes,
    Text,
    Array,
    Map,
    /// A tag; in valid input always 42, a CID link.
    Tag,
    /// false, true, null (or something invalid that reading will reject).
    Simple,
}

impl Kind {
    fn of(byte: u8) -> Kind {
        match byte >> 5 {
            0 => Kind::Unsigned,
            1 => Kind::Negative,
            2 => Kind::Bytes,
            3 => Kind::Text,
            4 => Kind::Array,
            5 => Kind::Map,
            6 => Kind::Tag,
            _ => Kind::Simple,
        }
    }

    fn name(byte: u8) -> &'static str {
        match byte {
            0xf4 | 0xf5 => "boolean",
            0xf6 => "null",
            0xf9..=0xfb => "float",
            _ => match Kind::of(byte) {
                Kind::Unsigned | Kind::Negative => "integer",
                Kind::Bytes => "bytes",
                Kind::Text => "text",
                Kind::Array => "array",
                Kind::Map => "map",
                Kind::Tag => "tag",
                Kind::Simple => "simple value",
            },
        }
    }
}

/// Reads DAG-CBOR items from a byte slice, returning borrowed strings and byte
/// strings. Every read validates canonical form; see the module docs.
#[derive(Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf` with default [`Limits`].
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder::with_limits(buf, Limits::default())
    }

    /// A decoder over `buf` with explicit limits.
    pub fn with_limits(buf: &'a [u8], limits: Limits) -> Decoder<'a> {
        Decoder {
            buf,
            pos: 0,
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Current byte offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread input.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Whether all input has been read.
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Requires that the whole input was consumed: one object per block, no
    /// trailing bytes.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    /// The kind of the next item, without consuming it.
    pub fn peek_kind(&self) -> Result<Kind, DecodeError> {
        self.buf
            .get(self.pos)
            .map(|&b| Kind::of(b))
            .ok_or(DecodeError::Eof(self.pos))
    }

    /// Whether the next item is `null` (not consumed).
    pub fn peek_is_null(&self) -> bool {
        self.buf.get(self.pos) == Some(&0xf6)
    }

    fn type_error(&self, at: usize, expected: &'static str) -> DecodeError {
        DecodeError::Type {
            at,
            expected,
            found: self.buf.get(at).map_or("end of input", |&b| Kind::name(b)),
        }
    }

    /// Reads a header of major type `major` and returns its argument, rejecting
    /// non-shortest forms, indefinite lengths and reserved values.
    #[inline]
    fn head(&mut self, major: u8, expected: &'static str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let &first = self.buf.get(at).ok_or(DecodeError::Eof(at))?;
        if first >> 5 != major {
            return Err(self.type_error(at, expected));
        }
        let info = first & 0x1f;
        let (arg, len) = match info {
            0..=23 => (u64::from(info), 1),
            24 => {
                let v = u64::from(*self.buf.get(at + 1).ok_or(DecodeError::Eof(at + 1))?);
                if v < 24 {
                    return Err(DecodeError::NonCanonicalInt(at));
                }
                (v, 2)
            }
            25 => {
                let v = u64::from(u16::from_be_bytes(self.fixed::<2>(at + 1)?));
                if v <= 0xff {
                    return Err(DecodeError::NonCanonicalInt(at));
                }
                (v, 3)
            }
            26 => {
                let v = u64::from(u32::from_be_bytes(self.fixed::<4>(at + 1)?));
                if v <= 0xffff {
                    return Err(DecodeError::NonCanonicalInt(at));
                }
                (v, 5)
            }
            27 => {
                let v = u64::from_be_bytes(self.fixed::<8>(at + 1)?);
                if v <= 0xffff_ffff {
                    return Err(DecodeError::NonCanonicalInt(at));
                }
                (v, 9)
            }
            31 => return Err(DecodeError::Indefinite(at)),
            _ => return Err(DecodeError::Reserved(at)),
        };
        self.pos = at + len;
        Ok(arg)
    }

    #[inline]
    fn fixed<const N: usize>(&self, at: usize) -> Result<[u8; N], DecodeError> {
        self.buf
            .get(at..at + N)
            .and_then(|s| s.try_into().ok())
            .ok_or(DecodeError::Eof(self.buf.len()))
    }

    #[inline]
    fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let avail = (self.buf.len() - self.pos) as u64;
        if len > avail {
            return Err(DecodeError::Eof(self.buf.len()));
        }
        let s = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(s)
    }

    /// An unsigned integer (major type 0).
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.head(0, "unsigned integer")
    }

    /// A signed integer within the i64 range (major types 0 and 1).
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let at = self.pos;
        match self.peek_kind()? {
            Kind::Unsigned => {
                let v = self.head(0, "integer")?;
                i64::try_from(v).map_err(|_| DecodeError::IntRange(at))
            }
            Kind::Negative => {
                let v = self.head(1, "integer")?;
                let v = i64::try_from(v).map_err(|_| DecodeError::IntRange(at))?;
                Ok(-1 - v)
            }
            _ => Err(self.type_error(at, "integer")),
        }
    }

    /// A boolean.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.buf.get(at) {
            Some(0xf4) => {
                self.pos += 1;
                Ok(false)
            }
            Some(0xf5) => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.simple_or_type_error(at, "boolean")),
        }
    }

    /// `null`.
    pub fn null(&mut self) -> Result<(), DecodeError> {
        let at = self.pos;
        if self.buf.get(at) == Some(&0xf6) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.simple_or_type_error(at, "null"))
        }
    }

    /// Consumes a `null` if one is next; reports whether it did.
    pub fn take_null(&mut self) -> bool {
        if self.peek_is_null() {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Names the real problem when a major-type-7 byte is not what we expected:
    /// a float or an unsupported simple value is an encoding error, not a type
    /// mismatch.
    fn simple_or_type_error(&self, at: usize, expected: &'static str) -> DecodeError {
        match self.buf.get(at) {
            Some(&b) if b >> 5 == 7 => match b & 0x1f {
                20..=22 => self.type_error(at, expected),
                25..=27 => DecodeError::Float(at),
                31 => DecodeError::Indefinite(at),
                24 => DecodeError::Simple {
                    at,
                    value: u64::from(self.buf.get(at + 1).copied().unwrap_or(0)),
                },
                28..=30 => DecodeError::Reserved(at),
                v => DecodeError::Simple {
                    at,
                    value: u64::from(v),
                },
            },
            Some(_) => self.type_error(at, expected),
            None => DecodeError::Eof(at),
        }
    }

    /// A byte string, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.head(2, "bytes")?;
        self.take(len)
    }

    /// A text string, borrowed from the input and checked to be UTF-8.
    pub fn text(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let len = self.head(3, "text")?;
        let raw = self.take(len)?;
        std::str::from_utf8(raw).map_err(|_| DecodeError::Utf8(at))
    }

    /// An array header; returns the item count. Counts beyond the remaining
    /// input (every item takes at least a byte) or the limit are rejected before
    /// anything is allocated for them.
    pub fn array(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.head(4, "array")?;
        self.check_len(at, len, 1)
    }

    /// A map header; returns the entry count (bounded like [`Decoder::array`]).
    /// Read keys through a [`KeyOrder`] to enforce canonical order.
    pub fn map(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.head(5, "map")?;
        self.check_len(at, len, 2)
    }

    fn check_len(&self, at: usize, len: u64, min_item: u64) -> Result<usize, DecodeError> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if len > self.limits.max_container_len {
            return Err(DecodeError::TooLarge { at, len });
        }
        if len.saturating_mul(min_item) > remaining {
            return Err(DecodeError::Eof(self.buf.len()));
        }
        Ok(len as usize)
    }

    /// A CID link: tag 42 around a byte string of `0x00` + binary CID.
    pub fn cid(&mut self) -> Result<Cid, DecodeError> {
        let at = self.pos;
        // Fast path for the blessed form: d8 2a 58 25 00 <36 bytes>.
        if let Some(b) = self.buf.get(at..at + 41) {
            if b[..5] == [0xd8, 0x2a, 0x58, 0x25, 0x00] {
                if let Ok(cid) = Cid::from_bytes(&b[5..]) {
                    self.pos = at + 41;
                    return Ok(cid);
                }
            }
        }
        let tag = self.head(6, "CID link")?;
        if tag != 42 {
            return Err(DecodeError::Tag { at, tag });
        }
        let inner_at = self.pos;
        let raw = self.bytes()?;
        match raw.split_first() {
            Some((0, cid)) => {
                Cid::from_bytes(cid).map_err(|err| DecodeError::Cid { at: inner_at, err })
            }
            _ => Err(DecodeError::CidPrefix(inner_at)),
        }
    }

    /// A CID link or `null`.
    pub fn cid_or_null(&mut self) -> Result<Option<Cid>, DecodeError> {
        if self.take_null() {
            Ok(None)
        } else {
            self.cid().map(Some)
        }
    }

    /// Skips one item of any type, validating it fully (canonical form, key
    /// order, UTF-8, CIDs, depth and size limits), so unknown fields cannot
    /// smuggle in invalid CBOR.
    pub fn skip(&mut self) -> Result<(), DecodeError> {
        self.skip_at_depth(0)
    }

    fn skip_at_depth(&mut self, depth: usize) -> Result<(), DecodeError> {
        let at = self.pos;
        match self.peek_kind()? {
            Kind::Unsigned | Kind::Negative => {
                self.i64()?;
            }
            Kind::Bytes => {
                self.bytes()?;
            }
            Kind::Text => {
                self.text()?;
            }
            Kind::Array => {
                if depth >= self.limits.max_depth {
                    return Err(DecodeError::TooDeep(self.limits.max_depth));
                }
                for _ in 0..self.array()? {
                    self.skip_at_depth(depth + 1)?;
                }
            }
            Kind::Map => {
                if depth >= self.limits.max_depth {
                    return Err(DecodeError::TooDeep(self.limits.max_depth));
                }
                let mut keys = KeyOrder::new();
                for _ in 0..self.map()? {
                    keys.next(self)?;
                    self.skip_at_depth(depth + 1)?;
                }
            }
            Kind::Tag => {
                self.cid()?;
            }
            Kind::Simple => match self.buf[at] {
                0xf4..=0xf6 => self.pos += 1,
                _ => return Err(self.simple_or_type_error(at, "value")),
            },
        }
        Ok(())
    }

    /// Returns the raw bytes of the next item after validating it like
    /// [`Decoder::skip`].
    pub fn raw_item(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        self.skip()?;
        Ok(&self.buf[start..self.pos])
    }
}

/// Enforces canonical map key order while reading a map's keys: each key must be
/// a text string sorting strictly after the previous one (shorter first, then
/// bytewise), which also rejects duplicates.
#[derive(Default)]
pub struct KeyOrder<'a> {
    prev: Option<&'a [u8]>,
}

impl<'a> KeyOrder<'a> {
    /// A fresh ordering check for one map.
    pub fn new() -> KeyOrder<'a> {
        KeyOrder { prev: None }
    }

    /// Reads the next key.
    #[inline]
    pub fn next(&mut self, dec: &mut Decoder<'a>) -> Result<&'a str, DecodeError> {
        let at = dec.pos;
        let key = dec.text().map_err(|e| match e {
            DecodeError::Type { at, found, .. } => DecodeError::Type {
                at,
                expected: "text map key",
                found,
            },
            e => e,
        })?;
        let k = key.as_bytes();
        if k.len() > dec.limits.max_key_len {
            return Err(DecodeError::KeyTooLong { at, len: k.len() });
        }
        if let Some(prev) = self.prev {
            if (prev.len(), prev) >= (k.len(), k) {
                return Err(DecodeError::KeyOrder(at));
            }
        }
        self.prev = Some(k);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_err(bytes: &[u8]) -> DecodeError {
        let mut d = Decoder::new(bytes);
        match d.skip().and_then(|_| d.finish()) {
            Err(e) => e,
            Ok(()) => panic!("accepted {bytes:02x?}"),
        }
    }

    #[test]
    fn accepts_canonical_items() {
        for bytes in [
            &[0x00][..],
            &[0x17],
            &[0x18, 0x18],
            &[0x19, 0x01, 0x00],
            &[0x20],
            &[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x40],
            &[0x61, b'a'],
            &[0x80],
            &[0xa0],
            &[0xa2, 0x61, b'b', 0x01, 0x62, b'a', b'a', 0x02],
            &[0xf4],
            &[0xf5],
            &[0xf6],
        ] {
            let mut d = Decoder::new(bytes);
            d.skip().unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
            d.finish().unwrap();
        }
    }

    #[test]
    fn rejects_non_shortest_ints_and_lengths() {
        assert_eq!(skip_err(&[0x18, 0x17]), DecodeError::NonCanonicalInt(0));
        assert_eq!(
            skip_err(&[0x19, 0x00, 0xff]),
            DecodeError::NonCanonicalInt(0)
        );
        assert_eq!(
            skip_err(&[0x1a, 0x00, 0x00, 0xff, 0xff]),
            DecodeError::NonCanonicalInt(0)
        );
        assert_eq!(
            skip_err(&[0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            DecodeError::NonCanonicalInt(0)
        );
        assert_eq!(
            skip_err(&[0x78, 0x01, b'a']),
            DecodeError::NonCanonicalInt(0)
        );
        assert_eq!(skip_err(&[0x98, 0x00]), DecodeError::NonCanonicalInt(0));
    }

    #[test]
    fn rejects_forbidden_items() {
        assert_eq!(skip_err(&[0x9f, 0xff]), DecodeError::Indefinite(0));
        assert_eq!(skip_err(&[0x5f, 0xff]), DecodeError::Indefinite(0));
        assert_eq!(skip_err(&[0xf9, 0x3c, 0x00]), DecodeError::Float(0));
        assert_eq!(
            skip_err(&[0xfb, 0, 0, 0, 0, 0, 0, 0, 0]),
            DecodeError::Float(0)
        );
        assert_eq!(skip_err(&[0xf7]), DecodeError::Simple { at: 0, value: 23 });
        assert_eq!(
            skip_err(&[0xf8, 0x20]),
            DecodeError::Simple { at: 0, value: 32 }
        );
        assert_eq!(skip_err(&[0xc1, 0x00]), DecodeError::Tag { at: 0, tag: 1 });
        assert_eq!(skip_err(&[0x1c]), DecodeError::Reserved(0));
        assert_eq!(
            skip_err(&[0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            DecodeError::IntRange(0)
        );
        assert_eq!(
            skip_err(&[0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            DecodeError::IntRange(0)
        );
        assert_eq!(skip_err(&[0x62, 0xff, 0xfe]), DecodeError::Utf8(0));
        assert_eq!(skip_err(&[0x00, 0x00]), DecodeError::Trailing(1));
    }

    #[test]
    fn rejects_bad_maps() {
        // keys out of order: "aa" before "b"
        assert_eq!(
            skip_err(&[0xa2, 0x62, b'a', b'a', 0x01, 0x61, b'b', 0x02]),
            DecodeError::KeyOrder(5)
        );
        // duplicate key
        assert_eq!(
            skip_err(&[0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02]),
            DecodeError::KeyOrder(4)
        );
        // integer key
        assert!(matches!(
            skip_err(&[0xa1, 0x01, 0x02]),
            DecodeError::Type {
                expected: "text map key",
                ..
            }
        ));
    }

    #[test]
    fn rejects_truncation_and_huge_lengths() {
        assert_eq!(skip_err(&[]), DecodeError::Eof(0));
        assert_eq!(skip_err(&[0x62, b'a']), DecodeError::Eof(2));
        assert_eq!(skip_err(&[0x19, 0x01]), DecodeError::Eof(2));
        // claims 2^32 items: refused before allocating or looping
        assert!(matches!(
            skip_err(&[0x9b, 0, 0, 0, 1, 0, 0, 0, 0]),
            DecodeError::TooLarge { .. }
        ));
        assert_eq!(skip_err(&[0x85, 0x01]), DecodeError::Eof(2));
        assert_eq!(
            skip_err(&[0x5a, 0xff, 0xff, 0xff, 0xff]),
            DecodeError::Eof(5)
        );
    }

    #[test]
    fn depth_limit() {
        let mut deep = vec![0x81; 33];
        deep.push(0x00);
        assert_eq!(skip_err(&deep), DecodeError::TooDeep(32));
        let mut ok = vec![0x81; 32];
        ok.push(0x00);
        let mut d = Decoder::new(&ok);
        d.skip().unwrap();
    }

    #[test]
    fn cid_links() {
        let cid = Cid::for_cbor(b"\xa0");
        let mut bytes = vec![0xd8, 0x2a, 0x58, 0x25, 0x00];
        bytes.extend_from_slice(cid.as_bytes());
        assert_eq!(Decoder::new(&bytes).cid().unwrap(), cid);
        // missing 0x00 prefix
        let mut bad = vec![0xd8, 0x2a, 0x58, 0x24];
        bad.extend_from_slice(cid.as_bytes());
        assert_eq!(Decoder::new(&bad).cid(), Err(DecodeError::CidPrefix(2)));
        // tag 42 around text
        assert!(matches!(
            Decoder::new(&[0xd8, 0x2a, 0x61, b'a']).cid(),
            Err(DecodeError::Type { .. })
        ));
        // non-shortest tag number
        assert_eq!(
            Decoder::new(&[0xd9, 0x00, 0x2a]).cid(),
            Err(DecodeError::NonCanonicalInt(0))
        );
    }
}
