//! Refresh tokens: which refresh JWTs (by `jti`) are still live.
//!
//! A refresh JWT is valid only while its `jti` is stored here, so sessions can
//! be revoked (logout, password change, account deletion) although the JWT
//! itself stays cryptographically valid until it expires. `refreshSession`
//! [takes](PdsStore::take_refresh) the old `jti` and stores a new one:
//! rotation, so a stolen refresh token works at most once, and of two
//! concurrent refreshes with one token exactly one succeeds.
//!
//! The reference PDS keeps a rotated token usable for a short grace period
//! (clients that retry a lost response); this store does not, the caller can
//! add one if clients need it.

use rocksdb::WriteBatch;

use super::schema::{
    decode_text, did_prefix, prefix_end, refresh_index_key, CF_REFRESH_BY_DID, CF_REFRESH_TOKENS,
};
use super::{lock, PdsStore, StoreError};

/// Longest `jti` accepted (ours are short random strings).
const MAX_JTI_LEN: usize = 256;

fn encode_token(did: &str, exp_secs: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + did.len());
    v.extend_from_slice(&exp_secs.to_be_bytes());
    v.extend_from_slice(did.as_bytes());
    v
}

fn decode_token(value: &[u8]) -> Result<(String, u64), StoreError> {
    if value.len() < 8 {
        return Err(StoreError::Corrupt(format!(
            "refresh token value of {} bytes",
            value.len()
        )));
    }
    let (exp, did) = value.split_at(8);
    let mut arr = [0u8; 8];
    arr.copy_from_slice(exp);
    Ok((
        decode_text(did, "refresh token DID")?,
        u64::from_be_bytes(arr),
    ))
}

fn check_jti(jti: &str) -> Result<(), StoreError> {
    if jti.is_empty() || jti.len() > MAX_JTI_LEN || jti.contains('\0') {
        return Err(StoreError::Invalid(
            "refresh token id must be 1-256 bytes without NUL".into(),
        ));
    }
    Ok(())
}

impl PdsStore {
    /// Records a live refresh token for `did` expiring at `exp_secs` (Unix
    /// seconds). [`StoreError::NotFound`] if there is no such account.
    pub fn put_refresh(&self, jti: &str, did: &str, exp_secs: u64) -> Result<(), StoreError> {
        check_jti(jti)?;
        let _gate = self.gate_shared();
        if !self.account_exists(did)? {
            return Err(StoreError::NotFound);
        }
        let mut wb = WriteBatch::default();
        wb.put_cf(
            self.cf(CF_REFRESH_TOKENS)?,
            jti,
            encode_token(did, exp_secs),
        );
        wb.put_cf(
            self.cf(CF_REFRESH_BY_DID)?,
            refresh_index_key(did, jti),
            b"",
        );
        self.write(wb)
    }

    /// Removes a live refresh token and returns `(did, exp_secs)`, or `None`
    /// if it is not live (never issued, revoked, or already rotated). Whether
    /// it has expired is the caller's check (it has the clock).
    pub fn take_refresh(&self, jti: &str) -> Result<Option<(String, u64)>, StoreError> {
        if check_jti(jti).is_err() {
            return Ok(None);
        }
        let _tokens = lock(&self.inner.tokens_lock);
        let Some(value) = self.get(CF_REFRESH_TOKENS, jti.as_bytes())? else {
            return Ok(None);
        };
        let (did, exp) = decode_token(&value)?;
        let mut wb = WriteBatch::default();
        wb.delete_cf(self.cf(CF_REFRESH_TOKENS)?, jti);
        wb.delete_cf(self.cf(CF_REFRESH_BY_DID)?, refresh_index_key(&did, jti));
        self.write(wb)?;
        Ok(Some((did, exp)))
    }

    /// Revokes one refresh token (logout). Returns whether it was live.
    pub fn revoke_refresh(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.take_refresh(jti)?.is_some())
    }

    /// Revokes every refresh token of `did` (password change, takedown).
    /// Returns how many were live.
    pub fn revoke_all_refresh(&self, did: &str) -> Result<usize, StoreError> {
        let _tokens = lock(&self.inner.tokens_lock);
        let mut wb = WriteBatch::default();
        let n = self.stage_refresh_deletes(did, &mut wb)?;
        self.write(wb)?;
        Ok(n)
    }

    /// Deletes refresh tokens that expired before `now_secs` (housekeeping:
    /// a token nobody presents again would otherwise stay forever). Returns
    /// how many.
    pub fn purge_expired_refresh(&self, now_secs: u64) -> Result<usize, StoreError> {
        let _tokens = lock(&self.inner.tokens_lock);
        let mut expired = Vec::new();
        // jtis are UTF-8, which never contains the byte ff: [ "", ff ) is all of them.
        self.scan(CF_REFRESH_TOKENS, b"", b"\xff", false, |k, v| {
            let (did, exp) = decode_token(v)?;
            if exp < now_secs {
                expired.push((k.to_vec(), did));
            }
            Ok(true)
        })?;
        let mut wb = WriteBatch::default();
        for (jti, did) in &expired {
            wb.delete_cf(self.cf(CF_REFRESH_TOKENS)?, jti);
            let mut index = did_prefix(did);
            index.extend_from_slice(jti);
            wb.delete_cf(self.cf(CF_REFRESH_BY_DID)?, index);
        }
        self.write(wb)?;
        Ok(expired.len())
    }

    /// Adds the deletes of all of `did`'s refresh tokens (and their index
    /// entries) to `wb`; returns how many tokens.
    pub(super) fn stage_refresh_deletes(
        &self,
        did: &str,
        wb: &mut WriteBatch,
    ) -> Result<usize, StoreError> {
        let prefix = did_prefix(did);
        let (tokens, index) = (self.cf(CF_REFRESH_TOKENS)?, self.cf(CF_REFRESH_BY_DID)?);
        let mut n = 0;
        self.scan(
            CF_REFRESH_BY_DID,
            &prefix,
            &prefix_end(&prefix),
            false,
            |k, _| {
                wb.delete_cf(tokens, &k[prefix.len()..]);
                wb.delete_cf(index, k);
                n += 1;
                Ok(true)
            },
        )?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::super::test_support::{account, temp_store};
    use super::*;

    const ALICE: &str = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    const BOB: &str = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn rotation_takes_a_token_once() {
        let (_dir, store) = temp_store();
        store
            .create_account(&account(ALICE, "alice.test", None))
            .unwrap();
        store.put_refresh("jti-1", ALICE, 1000).unwrap();
        assert_eq!(
            store.take_refresh("jti-1").unwrap(),
            Some((ALICE.into(), 1000))
        );
        store.put_refresh("jti-2", ALICE, 2000).unwrap();
        assert_eq!(store.take_refresh("jti-1").unwrap(), None);
        assert!(store.revoke_refresh("jti-2").unwrap());
        assert!(!store.revoke_refresh("jti-2").unwrap());
        assert_eq!(store.take_refresh("").unwrap(), None);
        assert!(matches!(
            store.put_refresh("jti-3", BOB, 1),
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.put_refresh("", ALICE, 1),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn concurrent_refreshes_with_one_token_have_one_winner() {
        let (_dir, store) = temp_store();
        store
            .create_account(&account(ALICE, "alice.test", None))
            .unwrap();
        store.put_refresh("shared", ALICE, 1000).unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let wins: usize = (0..4)
            .map(|_| {
                let (store, barrier) = (store.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.take_refresh("shared").unwrap().is_some() as usize
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(wins, 1);
    }

    #[test]
    fn revoke_all_and_purge() {
        let (_dir, store) = temp_store();
        store
            .create_account(&account(ALICE, "alice.test", None))
            .unwrap();
        store
            .create_account(&account(BOB, "bob.test", None))
            .unwrap();
        for i in 0..3 {
            store.put_refresh(&format!("a{i}"), ALICE, 100 + i).unwrap();
        }
        store.put_refresh("b0", BOB, 50).unwrap();
        store.put_refresh("b1", BOB, 500).unwrap();
        assert_eq!(store.revoke_all_refresh(ALICE).unwrap(), 3);
        assert_eq!(store.revoke_all_refresh(ALICE).unwrap(), 0);
        assert_eq!(store.take_refresh("a1").unwrap(), None);
        assert_eq!(store.purge_expired_refresh(100).unwrap(), 1);
        assert_eq!(store.take_refresh("b0").unwrap(), None);
        assert_eq!(store.take_refresh("b1").unwrap(), Some((BOB.into(), 500)));
        // The index is clean too: nothing left to revoke.
        assert_eq!(store.revoke_all_refresh(BOB).unwrap(), 0);
    }

    #[test]
    fn token_values_decode_strictly() {
        assert_eq!(
            decode_token(&encode_token(ALICE, 7)).unwrap(),
            (ALICE.into(), 7)
        );
        assert!(decode_token(b"short").is_err());
        assert!(decode_token(b"\0\0\0\0\0\0\0\x01\xff").is_err());
    }
}
