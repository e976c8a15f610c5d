//! Canonical CBOR writer.

use crate::wire::cid::Cid;

/// Appends canonical DAG-CBOR to a caller-owned buffer, so a hot loop can reuse
/// one allocation. Integers and lengths are always written in shortest form.
/// Map keys are written in the order the caller gives: typed encoders list their
/// keys in canonical order (shorter first, then bytewise); [`super::Value`]
/// sorts.
pub struct Encoder<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> Encoder<'b> {
    /// An encoder appending to `out`.
    pub fn new(out: &'b mut Vec<u8>) -> Encoder<'b> {
        Encoder { out }
    }

    /// Bytes written so far (including whatever `out` held before).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// A major type with its argument, shortest form.
    pub fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        if arg < 24 {
            self.out.push(m | arg as u8);
        } else if arg <= 0xff {
            self.out.extend_from_slice(&[m | 24, arg as u8]);
        } else if arg <= 0xffff {
            self.out.push(m | 25);
            self.out.extend_from_slice(&(arg as u16).to_be_bytes());
        } else if arg <= 0xffff_ffff {
            self.out.push(m | 26);
            self.out.extend_from_slice(&(arg as u32).to_be_bytes());
        } else {
            self.out.push(m | 27);
            self.out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    /// An unsigned integer.
    pub fn u64(&mut self, v: u64) {
        self.head(0, v);
    }

    /// A signed integer.
    pub fn i64(&mut self, v: i64) {
        if v >= 0 {
            self.head(0, v as u64);
        } else {
            self.head(1, (-1 - v) as u64);
        }
    }

    /// `true` / `false`.
    pub fn bool(&mut self, v: bool) {
        self.out.push(if v { 0xf5 } else { 0xf4 });
    }

    /// `null`.
    pub fn null(&mut self) {
        self.out.push(0xf6);
    }

    /// A byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.head(2, v.len() as u64);
        self.out.extend_from_slice(v);
    }

    /// A text string.
    pub fn text(&mut self, v: &str) {
        self.head(3, v.len() as u64);
        self.out.extend_from_slice(v.as_bytes());
    }

    /// An array header; the caller writes `len` items after it.
    pub fn array(&mut self, len: usize) {
        self.head(4, len as u64);
    }

    /// A map header; the caller writes `len` key/value pairs after it.
    pub fn map(&mut self, len: usize) {
        self.head(5, len as u64);
    }

    /// A CID link: tag 42 around `0x00` + the binary CID.
    pub fn cid(&mut self, cid: &Cid) {
        let b = cid.as_bytes();
        self.out.extend_from_slice(&[0xd8, 42]);
        self.head(2, b.len() as u64 + 1);
        self.out.push(0);
        self.out.extend_from_slice(b);
    }

    /// A CID link or `null`.
    pub fn cid_or_null(&mut self, cid: Option<&Cid>) {
        match cid {
            Some(c) => self.cid(c),
            None => self.null(),
        }
    }

    /// Pre-encoded CBOR, copied verbatim (the caller vouches it is canonical).
    pub fn raw(&mut self, v: &[u8]) {
        self.out.extend_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Encoder)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut Encoder::new(&mut v));
        v
    }

    #[test]
    fn shortest_form_boundaries() {
        assert_eq!(enc(|e| e.u64(23)), [0x17]);
        assert_eq!(enc(|e| e.u64(24)), [0x18, 24]);
        assert_eq!(enc(|e| e.u64(255)), [0x18, 255]);
        assert_eq!(enc(|e| e.u64(256)), [0x19, 1, 0]);
        assert_eq!(enc(|e| e.u64(65536)), [0x1a, 0, 1, 0, 0]);
        assert_eq!(enc(|e| e.u64(1 << 32)), [0x1b, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(enc(|e| e.i64(-1)), [0x20]);
        assert_eq!(enc(|e| e.i64(-25)), [0x38, 24]);
        assert_eq!(
            enc(|e| e.i64(i64::MIN)),
            [0x3b, 0x7f, 255, 255, 255, 255, 255, 255, 255]
        );
    }

    #[test]
    fn header_example_from_digest() {
        // {t:"#commit", op:1}
        let b = enc(|e| {
            e.map(2);
            e.text("t");
            e.text("#commit");
            e.text("op");
            e.u64(1);
        });
        assert_eq!(
            b,
            [
                0xa2, 0x61, 0x74, 0x67, 0x23, 0x63, 0x6f, 0x6d, 0x6d, 0x69, 0x74, 0x62, 0x6f, 0x70,
                0x01
            ]
        );
        // {op:-1}
        let b = enc(|e| {
            e.map(1);
            e.text("op");
            e.i64(-1);
        });
        assert_eq!(b, [0xa1, 0x62, 0x6f, 0x70, 0x20]);
    }
}
