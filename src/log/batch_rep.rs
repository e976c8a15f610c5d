//! Building a RocksDB WriteBatch in one reused buffer.
//!
//! `WriteBatch::put_cf` appends each entry to the batch's C++ string, which
//! grows by doubling: a group commit of 1,000 frames of 2.4 KB copies every
//! byte about twice and reallocates a dozen times (fresh pages for the large
//! ones), and the value first has to be assembled in a scratch buffer (the
//! time prefix, then the frame). That was a sixth of the sequencer's time.
//! Here the entries are written straight into a buffer the writer keeps, in
//! the batch's serialized form, and handed over with
//! `WriteBatch::from_data` (one copy, exactly sized).
//!
//! The serialized form is RocksDB's WAL record format, stable across
//! versions: a 12-byte header (sequence, 8 bytes, filled in by the write;
//! entry count, 4 bytes little-endian), then per entry a tag, the column
//! family id as a varint (absent for the default family), and the key and
//! value each as a varint length and bytes. This module does not hard-code
//! tags or ids: [`CfCodes`] learns each family's entry prefix from a batch
//! RocksDB itself serialized, checks that the rest is laid out as above, and
//! the caller falls back to `put_cf` if anything differs.

use rocksdb::{ColumnFamily, WriteBatch};

/// Bytes before the first entry: sequence (8) and count (4).
const HEADER_LEN: usize = 12;

/// Most buffer capacity kept between batches (a full group commit of
/// typical frames is about 2.5 MB).
pub(crate) const KEPT_CAPACITY: usize = 16 << 20;

/// One column family's entry prefixes (tag and family id), as RocksDB writes
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CfCodes {
    put: Vec<u8>,
    delete: Vec<u8>,
}

impl CfCodes {
    /// Learns `cf`'s prefixes from sample batches; `None` if RocksDB's
    /// serialization is not the layout this module writes.
    pub(crate) fn learn(cf: &ColumnFamily) -> Option<CfCodes> {
        let sample = |key: &[u8], value: Option<&[u8]>| {
            let mut wb = WriteBatch::default();
            match value {
                Some(v) => wb.put_cf(cf, key, v),
                None => wb.delete_cf(cf, key),
            }
            (wb.len() == 1).then(|| wb.data().to_vec())
        };
        // A put of an empty key and value: header, prefix, 0, 0.
        let empty = sample(b"", Some(b""))?;
        if empty.len() < HEADER_LEN + 3 || empty[empty.len() - 2..] != [0, 0] {
            return None;
        }
        let put = empty[HEADER_LEN..empty.len() - 2].to_vec();
        let deleted = sample(b"", None)?;
        if deleted.len() < HEADER_LEN + 2 || deleted[deleted.len() - 1] != 0 {
            return None;
        }
        let delete = deleted[HEADER_LEN..deleted.len() - 1].to_vec();
        let codes = CfCodes { put, delete };
        // The layout holds for real lengths too (a multi-byte varint included).
        let long = vec![7u8; 300];
        let mut mine = BatchRep::default();
        mine.put(&codes, b"key", &[&long[..1], &long[1..]]);
        let put_ok = sample(b"key", Some(&long)).as_deref() == Some(mine.bytes());
        let mut mine = BatchRep::default();
        mine.delete(&codes, b"key");
        let delete_ok = sample(b"key", None).as_deref() == Some(mine.bytes());
        (put_ok && delete_ok).then_some(codes)
    }
}

/// A WriteBatch being built in serialized form. Reuse one across batches
/// ([`BatchRep::clear`]) so its buffer stops growing.
#[derive(Debug, Default)]
pub(crate) struct BatchRep {
    buf: Vec<u8>,
    count: u32,
}

impl BatchRep {
    /// Empties the batch, keeping the buffer (up to [`KEPT_CAPACITY`]: an
    /// outsized batch does not pin its memory).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.buf.shrink_to(KEPT_CAPACITY);
        self.count = 0;
    }

    fn start(&mut self) {
        if self.buf.is_empty() {
            self.buf.resize(HEADER_LEN, 0);
        }
    }

    /// Adds a put whose value is the concatenation of `value_parts`.
    pub(crate) fn put(&mut self, cf: &CfCodes, key: &[u8], value_parts: &[&[u8]]) {
        self.start();
        let value_len: usize = value_parts.iter().map(|p| p.len()).sum();
        self.buf.reserve(cf.put.len() + 10 + key.len() + value_len);
        self.buf.extend_from_slice(&cf.put);
        varint32(&mut self.buf, key.len());
        self.buf.extend_from_slice(key);
        varint32(&mut self.buf, value_len);
        for part in value_parts {
            self.buf.extend_from_slice(part);
        }
        self.count += 1;
    }

    /// Adds a delete.
    pub(crate) fn delete(&mut self, cf: &CfCodes, key: &[u8]) {
        self.start();
        self.buf.extend_from_slice(&cf.delete);
        varint32(&mut self.buf, key.len());
        self.buf.extend_from_slice(key);
        self.count += 1;
    }

    /// Entries added.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u32 {
        self.count
    }

    /// The serialized batch (the header's count filled in).
    pub(crate) fn bytes(&mut self) -> &[u8] {
        self.start();
        self.buf[8..HEADER_LEN].copy_from_slice(&self.count.to_le_bytes());
        &self.buf
    }

    /// The batch as a RocksDB `WriteBatch` (one copy of the buffer).
    pub(crate) fn take_write_batch(&mut self) -> WriteBatch {
        WriteBatch::from_data(self.bytes())
    }
}

/// Appends `n` as a LEB128 varint. Keys and values here are far below 4 GiB
/// (a frame is at most 5 MB).
fn varint32(out: &mut Vec<u8>, n: usize) {
    let mut n = n as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocksdb::{ColumnFamilyDescriptor, Options, DB};

    #[test]
    fn builds_the_batch_rocksdb_builds() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = DB::open_cf_descriptors(
            &opts,
            dir.path(),
            ["a", "b", "c"].map(|n| ColumnFamilyDescriptor::new(n, Options::default())),
        )
        .unwrap();
        let cfs = ["a", "b", "c"].map(|n| db.cf_handle(n).unwrap());
        let codes = cfs.map(|cf| CfCodes::learn(cf).expect("the layout is understood"));
        assert_ne!(codes[0], codes[1], "each family has its own id");

        let big = vec![0xabu8; 70_000];
        let mut theirs = WriteBatch::default();
        let mut mine = BatchRep::default();
        for round in 0..2 {
            mine.clear();
            theirs.clear();
            for (i, (cf, code)) in cfs.iter().zip(&codes).enumerate() {
                let key = [i as u8; 8];
                theirs.put_cf(*cf, key, [&key[..], &big[..100 * (i + round)]].concat());
                mine.put(code, &key, &[&key, &big[..100 * (i + round)]]);
                theirs.delete_cf(*cf, b"gone");
                mine.delete(code, b"gone");
            }
            theirs.put_cf(cfs[2], b"big", &big);
            mine.put(&codes[2], b"big", &[&big]);
            assert_eq!(mine.len() as usize, theirs.len());
            assert_eq!(mine.bytes(), theirs.data(), "round {round}");
        }
        // And RocksDB writes it.
        db.write(mine.take_write_batch()).unwrap();
        assert_eq!(db.get_cf(cfs[2], b"big").unwrap().unwrap(), big);
        assert_eq!(db.get_cf(cfs[1], [1u8; 8]).unwrap().unwrap().len(), 8 + 200);
        assert!(db.get_cf(cfs[0], b"gone").unwrap().is_none());
    }
}
