//! Blobs: bytes in files under `blobs/<did>/<cid>`, metadata ([`BlobMeta`])
//! in the `blobs` CF.
//!
//! Files rather than RocksDB values because blobs are large (up to the
//! upload limit, megabytes) and written once: in an LSM tree every
//! compaction would copy them again. A file is written to a temporary name,
//! fsynced, renamed into place and the directory fsynced, and only then is
//! the metadata written (synced): metadata never points at a partial or
//! missing file. A crash before the metadata write leaves an unreferenced
//! file that the next upload of the same blob overwrites.
//!
//! Path safety: a DID becomes a directory name and a CID a file name only
//! after validation: the DID must pass [`validate_did`](crate::wire::syntax::validate_did)
//! (no `/`, no NUL) and be exactly one normal path component; the CID is a
//! parsed [`Cid`] written in its base32/base58 display form (alphanumeric).
//! So no input can name a path outside `blobs/`. (A did:web over 255 bytes
//! cannot be a file name and cannot store blobs: [`StoreError::Invalid`].)

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};

use rocksdb::WriteBatch;

use super::schema::{cid_of_key, did_cid_key, did_prefix, prefix_end, CF_BLOBS};
use super::{check_did, PdsStore, StoreError};
use crate::clock::now_micros;
use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};
use crate::wire::cid::Cid;

/// What the store knows about a blob besides its bytes. Stored as a DAG-CBOR
/// map `{size, mimeType, createdMicros}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    /// The MIME type the uploader declared.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was first stored.
    pub created_micros: u64,
}

impl BlobMeta {
    /// Appends the DAG-CBOR encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out);
        enc.map(3);
        enc.text("size");
        enc.u64(self.size);
        enc.text("mimeType");
        enc.text(&self.mime);
        enc.text("createdMicros");
        enc.u64(self.created_micros);
    }

    /// Decodes a stored value; a malformed one is [`StoreError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<BlobMeta, StoreError> {
        decode_meta(bytes).map_err(|e| StoreError::corrupt("blob metadata", e))
    }
}

fn decode_meta(bytes: &[u8]) -> Result<BlobMeta, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let n = dec.map()?;
    let mut keys = KeyOrder::new();
    let (mut size, mut mime, mut created) = (None, None, None);
    for _ in 0..n {
        match keys.next(&mut dec)? {
            "size" => size = Some(dec.u64()?),
            "mimeType" => mime = Some(dec.text()?.to_owned()),
            "createdMicros" => created = Some(dec.u64()?),
            _ => dec.skip()?,
        }
    }
    dec.finish()?;
    Ok(BlobMeta {
        mime: mime.ok_or(DecodeError::MissingField("mimeType"))?,
        size: size.ok_or(DecodeError::MissingField("size"))?,
        created_micros: created.ok_or(DecodeError::MissingField("createdMicros"))?,
    })
}

/// Longest file name common filesystems accept.
const MAX_NAME_LEN: usize = 255;

/// Refuses anything but one plain path component: no separators, no `.` or
/// `..`, no hidden names (our temporary files start with `.`), not too long.
fn check_file_name(name: &str) -> Result<(), StoreError> {
    let mut parts = Path::new(name).components();
    let ok = matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(c)), None) if c == name
    ) && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= MAX_NAME_LEN;
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{name:?} cannot be used as a blob path component"
        )))
    }
}

impl PdsStore {
    /// The directory of `did`'s blobs, after validating the DID as a name.
    fn blob_dir(&self, did: &str) -> Result<PathBuf, StoreError> {
        check_did(did)?;
        check_file_name(did)?;
        Ok(self.inner.blobs_dir.join(did))
    }

    /// The file of one blob.
    fn blob_path(&self, did: &str, cid: &Cid) -> Result<PathBuf, StoreError> {
        let name = cid.to_string();
        check_file_name(&name)?;
        Ok(self.blob_dir(did)?.join(name))
    }

    /// Stores a blob for `did` and returns its metadata. Idempotent: a blob
    /// already stored keeps its file and metadata (the first upload's MIME
    /// type and time). The size limit is the caller's to enforce.
    ///
    /// [`StoreError::Invalid`] if `bytes` do not hash to `cid` or the DID
    /// cannot be a directory name; [`StoreError::NotFound`] if there is no
    /// such account.
    pub fn put_blob(
        &self,
        did: &str,
        cid: &Cid,
        mime: &str,
        bytes: &[u8],
    ) -> Result<BlobMeta, StoreError> {
        let path = self.blob_path(did, cid)?;
        if cid.matches(bytes) != Some(true) {
            return Err(StoreError::Invalid(format!(
                "blob bytes do not match CID {cid}"
            )));
        }
        let _gate = self.gate_shared();
        if !self.account_exists(did)? {
            return Err(StoreError::NotFound);
        }
        let key = did_cid_key(did, cid);
        if let Some(v) = self.get(CF_BLOBS, &key)? {
            return BlobMeta::decode(&v);
        }
        write_file_durably(&self.inner.blobs_dir, &path, bytes)?;
        let meta = BlobMeta {
            mime: mime.to_owned(),
            size: bytes.len() as u64,
            created_micros: now_micros(),
        };
        let mut value = Vec::with_capacity(64);
        meta.encode(&mut value);
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(CF_BLOBS)?, key, value);
        self.write(wb)?;
        Ok(meta)
    }

    /// A stored blob's metadata and bytes. `None` if unknown (or the DID is
    /// malformed); [`StoreError::Corrupt`] if the metadata exists but the
    /// file is missing or has the wrong size.
    pub fn blob(&self, did: &str, cid: &Cid) -> Result<Option<(BlobMeta, Vec<u8>)>, StoreError> {
        let Ok(path) = self.blob_path(did, cid) else {
            return Ok(None);
        };
        let Some(v) = self.get(CF_BLOBS, &did_cid_key(did, cid))? else {
            return Ok(None);
        };
        let meta = BlobMeta::decode(&v)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::Corrupt(format!(
                    "blob {cid} of {did} has metadata but no file"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        if bytes.len() as u64 != meta.size {
            return Err(StoreError::Corrupt(format!(
                "blob {cid} of {did}: file has {} bytes, metadata says {}",
                bytes.len(),
                meta.size
            )));
        }
        Ok(Some((meta, bytes)))
    }

    /// Up to `limit` of `did`'s blobs in binary-CID order, starting after
    /// `after` (exclusive): the pages of `listBlobs`.
    pub fn list_blobs(
        &self,
        did: &str,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<Vec<(Cid, BlobMeta)>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let prefix = did_prefix(did);
        let lower = match after {
            // The smallest key strictly above the cursor's is key ‖ 00.
            Some(cid) => {
                let mut k = did_cid_key(did, cid);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        self.scan(CF_BLOBS, &lower, &prefix_end(&prefix), false, |k, v| {
            out.push((cid_of_key(k, prefix.len())?, BlobMeta::decode(v)?));
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Deletes one blob (metadata first, then the file). Returns whether it
    /// existed. For when the last record referencing it goes away.
    pub fn delete_blob(&self, did: &str, cid: &Cid) -> Result<bool, StoreError> {
        let path = self.blob_path(did, cid)?;
        let key = did_cid_key(did, cid);
        if !self.exists(CF_BLOBS, &key)? {
            return Ok(false);
        }
        let mut wb = WriteBatch::default();
        wb.delete_cf(self.cf(CF_BLOBS)?, key);
        self.write(wb)?;
        match fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(true),
        }
    }

    /// Removes `did`'s blob directory (account deletion). A DID that cannot
    /// be a directory name never had one.
    pub(super) fn remove_blob_dir(&self, did: &str) -> Result<(), StoreError> {
        let Ok(dir) = self.blob_dir(did) else {
            return Ok(());
        };
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Writes `bytes` to `path` so that after return the file is complete and
/// durable under its final name: temp file, fsync, rename, fsync of the
/// directory (and of `root` when the directory is new).
fn write_file_durably(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Invalid("blob path has no directory".into()))?;
    if !dir.is_dir() {
        fs::create_dir_all(dir)?;
        File::open(root)?.sync_all()?;
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".tmp-{name}-{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{account, temp_store};
    use super::*;

    const DID: &str = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn meta_round_trips() {
        let meta = BlobMeta {
            mime: "image/png".into(),
            size: 1 << 20,
            created_micros: 1_700_000_000_000_000,
        };
        let mut buf = Vec::new();
        meta.encode(&mut buf);
        assert_eq!(BlobMeta::decode(&buf).unwrap(), meta);
        let mut dec = Decoder::new(&buf);
        dec.skip().unwrap();
        dec.finish().unwrap();
        assert!(BlobMeta::decode(&buf[1..]).is_err());
    }

    #[test]
    fn put_get_list_delete() {
        let (dir, store) = temp_store();
        store.create_account(&account(DID, "a.test", None)).unwrap();
        let mut cids = Vec::new();
        for i in 0..5u8 {
            let bytes = vec![i; 100 + i as usize];
            let cid = Cid::for_raw(&bytes);
            let meta = store.put_blob(DID, &cid, "image/jpeg", &bytes).unwrap();
            assert_eq!(meta.size, bytes.len() as u64);
            let (got_meta, got) = store.blob(DID, &cid).unwrap().unwrap();
            assert_eq!((got_meta, got), (meta, bytes));
            assert!(dir
                .path()
                .join("blobs")
                .join(DID)
                .join(cid.to_string())
                .is_file());
            cids.push(cid);
        }
        // Idempotent: the first upload's metadata stays.
        let again = store
            .put_blob(DID, &cids[0], "text/plain", &[0; 100])
            .unwrap();
        assert_eq!(again.mime, "image/jpeg");
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("blobs").join(DID))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 5);
        assert!(names.iter().all(|n| !n.starts_with('.')));

        cids.sort();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.list_blobs(DID, after.as_ref(), 2).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|(c, _)| *c);
            seen.extend(page.into_iter().map(|(c, _)| c));
        }
        assert_eq!(seen, cids);

        assert!(store.delete_blob(DID, &cids[0]).unwrap());
        assert!(!store.delete_blob(DID, &cids[0]).unwrap());
        assert_eq!(store.blob(DID, &cids[0]).unwrap(), None);
        assert_eq!(store.list_blobs(DID, None, 10).unwrap().len(), 4);
    }

    #[test]
    fn refuses_mismatched_bytes_and_unknown_accounts() {
        let (_dir, store) = temp_store();
        store.create_account(&account(DID, "a.test", None)).unwrap();
        let cid = Cid::for_raw(b"real");
        assert!(matches!(
            store.put_blob(DID, &cid, "text/plain", b"fake"),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.put_blob(
                "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb",
                &cid,
                "text/plain",
                b"real"
            ),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn metadata_without_file_is_corrupt() {
        let (dir, store) = temp_store();
        store.create_account(&account(DID, "a.test", None)).unwrap();
        let cid = Cid::for_raw(b"bytes");
        store.put_blob(DID, &cid, "text/plain", b"bytes").unwrap();
        fs::remove_file(dir.path().join("blobs").join(DID).join(cid.to_string())).unwrap();
        assert!(matches!(store.blob(DID, &cid), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn no_did_escapes_the_blobs_dir() {
        let (dir, store) = temp_store();
        let blobs = dir.path().join("blobs").canonicalize().unwrap();
        let bytes = b"payload";
        let cid = Cid::for_raw(bytes);

        // Valid DID syntax with dots and percent-escapes: stored, but as one
        // plain directory inside blobs/.
        for did in ["did:web:..%2F..", "did:web:..", "did:web:.%2e%2F.%2e%2Fetc"] {
            store
                .create_account(&account(did, &format!("h{}.test", did.len()), None))
                .unwrap();
            store.put_blob(did, &cid, "text/plain", bytes).unwrap();
            let file = blobs
                .join(did)
                .join(cid.to_string())
                .canonicalize()
                .unwrap();
            assert!(file.starts_with(&blobs), "{file:?}");
            assert_eq!(file.parent().unwrap().parent().unwrap(), blobs);
            assert!(store.blob(did, &cid).unwrap().is_some());
        }

        // Crafted strings that are not DIDs never reach the filesystem.
        let long = format!("did:web:{}", "a".repeat(300));
        for bad in [
            "../../etc",
            "did:web:../../x",
            "did:web:a/b",
            "did:web:a\\b",
            "did:plc:abc\0",
            "/abs/path",
            ".",
            "..",
            "",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    store.put_blob(bad, &cid, "text/plain", bytes),
                    Err(StoreError::Invalid(_))
                ),
                "{bad:?}"
            );
            assert_eq!(store.blob(bad, &cid).unwrap(), None, "{bad:?}");
            assert!(store.delete_blob(bad, &cid).is_err(), "{bad:?}");
        }
        // Nothing was created next to blobs/ or db/.
        let mut top: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["blobs", "db"]);
        assert!(check_file_name("did:web:a").is_ok());
        assert!(check_file_name(".hidden").is_err());
        assert!(check_file_name("a/").is_err());
    }
}
