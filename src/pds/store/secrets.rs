//! Server secrets: named random values the PDS generates once and must keep
//! across restarts (the JWT HMAC key, the PLC rotation key). Regenerating
//! them on restart would log every user out, or lose control of every
//! did:plc the server created.

use rocksdb::WriteBatch;

use super::schema::CF_SECRETS;
use super::{lock, PdsStore, StoreError};

impl PdsStore {
    /// The secret called `name`; if there is none yet, `generate()` is
    /// called once, its value stored durably (WAL fsynced) and returned.
    /// Concurrent first calls agree on one value: creation is serialized.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = atrelay::pds::store::PdsStore::open(dir.path()).unwrap();
    /// let jwt_key = store.server_secret("jwt", || rand::random::<[u8; 32]>().to_vec()).unwrap();
    /// assert_eq!(store.server_secret("jwt", || unreachable!()).unwrap(), jwt_key);
    /// ```
    pub fn server_secret(
        &self,
        name: &str,
        generate: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        if name.is_empty() {
            return Err(StoreError::Invalid("secret name is empty".into()));
        }
        if let Some(v) = self.get(CF_SECRETS, name.as_bytes())? {
            return Ok(v);
        }
        let _secrets = lock(&self.inner.secrets_lock);
        // Re-check under the lock: another caller may have just created it.
        if let Some(v) = self.get(CF_SECRETS, name.as_bytes())? {
            return Ok(v);
        }
        let value = generate();
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(CF_SECRETS)?, name, &value);
        self.write(wb)?;
        tracing::info!(name, "server secret generated");
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::temp_store;
    use super::*;

    #[test]
    fn secrets_persist_across_reopen() {
        let (dir, store) = temp_store();
        let jwt = store.server_secret("jwt", || vec![1, 2, 3]).unwrap();
        let plc = store
            .server_secret("plc_rotation_key", || vec![9; 32])
            .unwrap();
        assert_eq!(jwt, [1, 2, 3]);
        drop(store);
        let store = PdsStore::open(dir.path()).unwrap();
        let mut called = false;
        let again = store
            .server_secret("jwt", || {
                called = true;
                vec![4]
            })
            .unwrap();
        assert_eq!(again, jwt);
        assert!(!called);
        assert_eq!(
            store.server_secret("plc_rotation_key", Vec::new).unwrap(),
            plc
        );
        assert!(matches!(
            store.server_secret("", Vec::new),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn concurrent_first_calls_agree() {
        let (_dir, store) = temp_store();
        let values: Vec<Vec<u8>> = (0..4u8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || store.server_secret("race", || vec![i; 8]).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(values.windows(2).all(|w| w[0] == w[1]));
    }
}
