//! Accounts: the [`AccountRecord`] value, its handle and email indexes, and
//! the account lifecycle (create, rename, status, delete, list).

use std::fmt;

use rocksdb::WriteBatch;

use super::schema::{
    did_cid_key, did_prefix, prefix_end, CF_ACCOUNTS, CF_BLOBS, CF_BLOCKS, CF_EMAILS, CF_HANDLES,
    CF_HEADS, CF_RECORDS,
};
use super::{check_did, PdsStore, StoreError};
use crate::crypto::{Curve, KeyError, PrivateKey};
use crate::repo::mst::empty_tree_node;
use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};
use crate::wire::frame::AccountStatus;
use crate::wire::syntax::{normalize_handle, validate_handle};

/// One hosted account, stored in the `accounts` CF as a DAG-CBOR map (keys
/// `did, email, handle, status, signingKey, passwordHash, createdMicros`;
/// absent optionals omitted; unknown keys skipped on read, so fields can be
/// added without a migration).
///
/// `Debug` redacts the password hash and the signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub did: String,
    /// Stored and indexed lower-case ([`create_account`](PdsStore::create_account)
    /// normalizes it).
    pub handle: String,
    /// Indexed lower-case, stored as given.
    pub email: Option<String>,
    /// PHC string from [`hash_password`](crate::pds::password::hash_password).
    pub password_hash: String,
    /// The repo signing key: a k256 secret scalar, big-endian.
    pub signing_key: [u8; 32],
    pub created_micros: u64,
    /// `None` = active; otherwise `deactivated` or `takendown` (the
    /// `#account` event's status names).
    pub status: Option<String>,
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("did", &self.did)
            .field("handle", &self.handle)
            .field("email", &self.email)
            .field("password_hash", &"<redacted>")
            .field("signing_key", &"<redacted>")
            .field("created_micros", &self.created_micros)
            .field("status", &self.status)
            .finish()
    }
}

impl AccountRecord {
    /// Whether the account is active (no status set).
    pub fn is_active(&self) -> bool {
        self.status.is_none()
    }

    /// The status, if it is one the lexicon knows.
    pub fn known_status(&self) -> Option<AccountStatus> {
        self.status.as_deref().and_then(AccountStatus::parse)
    }

    /// Whether an admin took the account down: its owner can neither log
    /// in nor reactivate it.
    pub fn is_taken_down(&self) -> bool {
        self.known_status() == Some(AccountStatus::Takendown)
    }

    /// The signing key as a usable k256 [`PrivateKey`].
    pub fn signing_key(&self) -> Result<PrivateKey, KeyError> {
        PrivateKey::from_bytes(Curve::K256, &self.signing_key)
    }

    /// Appends the DAG-CBOR encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let n = 5 + usize::from(self.email.is_some()) + usize::from(self.status.is_some());
        let mut enc = Encoder::new(out);
        enc.map(n);
        // Canonical key order: shorter first, then bytewise.
        enc.text("did");
        enc.text(&self.did);
        if let Some(email) = &self.email {
            enc.text("email");
            enc.text(email);
        }
        enc.text("handle");
        enc.text(&self.handle);
        if let Some(status) = &self.status {
            enc.text("status");
            enc.text(status);
        }
        enc.text("signingKey");
        enc.bytes(&self.signing_key);
        enc.text("passwordHash");
        enc.text(&self.password_hash);
        enc.text("createdMicros");
        enc.u64(self.created_micros);
    }

    /// Decodes a stored value; a malformed one is [`StoreError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<AccountRecord, StoreError> {
        decode_account(bytes).map_err(|e| StoreError::corrupt("account record", e))
    }

    fn to_value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(160);
        self.encode(&mut v);
        v
    }
}

fn decode_account(bytes: &[u8]) -> Result<AccountRecord, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let n = dec.map()?;
    let mut keys = KeyOrder::new();
    let (mut did, mut handle, mut hash, mut key, mut created) = (None, None, None, None, None);
    let (mut email, mut status) = (None, None);
    for _ in 0..n {
        match keys.next(&mut dec)? {
            "did" => did = Some(dec.text()?.to_owned()),
            "email" => email = Some(dec.text()?.to_owned()),
            "handle" => handle = Some(dec.text()?.to_owned()),
            "status" => status = Some(dec.text()?.to_owned()),
            "signingKey" => {
                let b = dec.bytes()?;
                key = Some(<[u8; 32]>::try_from(b).map_err(|_| {
                    DecodeError::invalid("signingKey", format!("{} bytes, expected 32", b.len()))
                })?);
            }
            "passwordHash" => hash = Some(dec.text()?.to_owned()),
            "createdMicros" => created = Some(dec.u64()?),
            _ => dec.skip()?,
        }
    }
    dec.finish()?;
    Ok(AccountRecord {
        did: did.ok_or(DecodeError::MissingField("did"))?,
        handle: handle.ok_or(DecodeError::MissingField("handle"))?,
        email,
        password_hash: hash.ok_or(DecodeError::MissingField("passwordHash"))?,
        signing_key: key.ok_or(DecodeError::MissingField("signingKey"))?,
        created_micros: created.ok_or(DecodeError::MissingField("createdMicros"))?,
        status,
    })
}

/// The `emails` key: emails compare case-insensitively (as the reference PDS
/// treats them), so `Alice@x` and `alice@x` are one address.
fn email_key(email: &str) -> String {
    email.to_lowercase()
}

fn check_handle(handle: &str) -> Result<String, StoreError> {
    validate_handle(handle).map_err(|e| StoreError::Invalid(format!("handle {handle:?}: {e}")))?;
    Ok(normalize_handle(handle))
}

impl PdsStore {
    /// Creates an account: its record, handle index, email index and the
    /// empty repo tree's root block, in one batch. The handle is stored
    /// lower-case. The repo has no head until the first
    /// [`apply_commit`](PdsStore::apply_commit); [`repo_head`](PdsStore::repo_head)
    /// returns the empty tree until then.
    ///
    /// Fails with [`StoreError::DidTaken`], [`StoreError::HandleTaken`] or
    /// [`StoreError::EmailTaken`] (checked in that order) without writing
    /// anything; the checks and the write happen under the exclusive account
    /// gate, so of two racing creations of one handle exactly one wins.
    /// [`StoreError::Invalid`] for a malformed DID or handle or an empty email.
    pub fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        check_did(&account.did)?;
        let handle = check_handle(&account.handle)?;
        if account
            .email
            .as_deref()
            .is_some_and(|e| e.trim().is_empty())
        {
            return Err(StoreError::Invalid("email is empty".into()));
        }
        let record = AccountRecord {
            handle: handle.clone(),
            ..account.clone()
        };
        let _gate = self.gate_exclusive();
        if self.account_exists(&record.did)? {
            return Err(StoreError::DidTaken);
        }
        if self.exists(CF_HANDLES, handle.as_bytes())? {
            return Err(StoreError::HandleTaken);
        }
        let email = record.email.as_deref().map(email_key);
        if let Some(email) = &email {
            if self.exists(CF_EMAILS, email.as_bytes())? {
                return Err(StoreError::EmailTaken);
            }
        }
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(CF_ACCOUNTS)?, &record.did, record.to_value());
        wb.put_cf(self.cf(CF_HANDLES)?, &handle, &record.did);
        if let Some(email) = &email {
            wb.put_cf(self.cf(CF_EMAILS)?, email, &record.did);
        }
        let (root, node) = empty_tree_node();
        wb.put_cf(self.cf(CF_BLOCKS)?, did_cid_key(&record.did, &root), node);
        self.write(wb)?;
        tracing::info!(did = %record.did, handle = %handle, "PDS account created");
        Ok(())
    }

    /// The account with `did`, if any.
    pub fn account(&self, did: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.get(CF_ACCOUNTS, did.as_bytes())?
            .map(|v| AccountRecord::decode(&v))
            .transpose()
    }

    /// The DID holding `handle` (compared case-insensitively), if any.
    pub fn did_for_handle(&self, handle: &str) -> Result<Option<String>, StoreError> {
        self.index_lookup(CF_HANDLES, &normalize_handle(handle))
    }

    /// The DID registered with `email` (compared case-insensitively), if any.
    pub fn did_for_email(&self, email: &str) -> Result<Option<String>, StoreError> {
        self.index_lookup(CF_EMAILS, &email_key(email))
    }

    fn index_lookup(&self, cf: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.get(cf, key.as_bytes())?
            .map(|v| String::from_utf8(v).map_err(|e| StoreError::corrupt(cf, e)))
            .transpose()
    }

    /// Changes the account's handle, moving the index entry in the same
    /// batch. Setting the handle it already has (in any case) is a no-op
    /// success; a handle held by another account is [`StoreError::HandleTaken`];
    /// no account is [`StoreError::NotFound`].
    pub fn set_handle(&self, did: &str, new_handle: &str) -> Result<(), StoreError> {
        let handle = check_handle(new_handle)?;
        let _gate = self.gate_exclusive();
        let mut account = self.account(did)?.ok_or(StoreError::NotFound)?;
        if account.handle == handle {
            return Ok(());
        }
        if self.exists(CF_HANDLES, handle.as_bytes())? {
            return Err(StoreError::HandleTaken);
        }
        let mut wb = WriteBatch::default();
        wb.delete_cf(self.cf(CF_HANDLES)?, &account.handle);
        wb.put_cf(self.cf(CF_HANDLES)?, &handle, did);
        account.handle = handle;
        wb.put_cf(self.cf(CF_ACCOUNTS)?, did, account.to_value());
        self.write(wb)
    }

    /// Sets (`Some`) or clears (`None`, active) the account's status.
    pub fn set_status(&self, did: &str, status: Option<&str>) -> Result<(), StoreError> {
        if status.is_some_and(str::is_empty) {
            return Err(StoreError::Invalid(
                "empty status (use None for active)".into(),
            ));
        }
        self.update_account(did, |a| a.status = status.map(str::to_owned))
    }

    /// Replaces the account's password hash (password reset or change).
    pub fn set_password_hash(&self, did: &str, password_hash: &str) -> Result<(), StoreError> {
        self.update_account(did, |a| a.password_hash = password_hash.to_owned())
    }

    /// Read-modify-write of an account's non-indexed fields under the gate.
    fn update_account(
        &self,
        did: &str,
        change: impl FnOnce(&mut AccountRecord),
    ) -> Result<(), StoreError> {
        let _gate = self.gate_exclusive();
        let mut account = self.account(did)?.ok_or(StoreError::NotFound)?;
        change(&mut account);
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(CF_ACCOUNTS)?, did, account.to_value());
        self.write(wb)
    }

    /// Deletes the account and everything it owns: handle and email index
    /// entries, repo head, blocks, records, blob metadata and refresh tokens
    /// in one batch, then the blob files. [`StoreError::NotFound`] if there is
    /// no such account.
    ///
    /// Blob files go after the batch is durable: a crash in between leaves
    /// orphaned files no key points to (harmless, and removed if the DID is
    /// ever deleted again), never metadata pointing at missing files.
    pub fn delete_account(&self, did: &str) -> Result<(), StoreError> {
        check_did(did)?;
        let _gate = self.gate_exclusive();
        let account = self.account(did)?.ok_or(StoreError::NotFound)?;
        let mut wb = WriteBatch::default();
        wb.delete_cf(self.cf(CF_ACCOUNTS)?, did);
        if self.did_for_handle(&account.handle)?.as_deref() == Some(did) {
            wb.delete_cf(self.cf(CF_HANDLES)?, &account.handle);
        }
        if let Some(email) = &account.email {
            if self.did_for_email(email)?.as_deref() == Some(did) {
                wb.delete_cf(self.cf(CF_EMAILS)?, email_key(email));
            }
        }
        wb.delete_cf(self.cf(CF_HEADS)?, did);
        let prefix = did_prefix(did);
        let end = prefix_end(&prefix);
        for cf in [CF_BLOCKS, CF_RECORDS, CF_BLOBS] {
            wb.delete_range_cf(self.cf(cf)?, &prefix, &end);
        }
        self.stage_refresh_deletes(did, &mut wb)?;
        self.write(wb)?;
        self.remove_blob_dir(did)?;
        tracing::info!(did, "PDS account deleted");
        Ok(())
    }

    /// Up to `limit` accounts in DID order, starting after `after` (exclusive).
    pub fn list_accounts(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let lower = after.map(|a| a.as_bytes()).unwrap_or(b"");
        // Every DID starts with "did:", so this bound is above all of them.
        self.scan(CF_ACCOUNTS, lower, b"did;", false, |k, v| {
            if Some(k) == after.map(str::as_bytes) {
                return Ok(true);
            }
            out.push(AccountRecord::decode(v)?);
            Ok(out.len() < limit)
        })?;
        Ok(out)
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
    fn record_round_trips_and_debug_redacts() {
        let mut a = account(ALICE, "alice.test", Some("a@x.test"));
        a.status = Some(AccountStatus::Takendown.as_str().into());
        for rec in [a, account(BOB, "bob.test", None)] {
            let bytes = rec.to_value();
            assert_eq!(AccountRecord::decode(&bytes).unwrap(), rec);
            // Canonical DAG-CBOR: the generic decoder re-checks key order.
            let mut dec = Decoder::new(&bytes);
            dec.skip().unwrap();
            dec.finish().unwrap();
            for cut in 0..bytes.len() {
                assert!(AccountRecord::decode(&bytes[..cut]).is_err());
            }
            let dbg = format!("{rec:?}");
            assert!(dbg.contains("<redacted>") && !dbg.contains("scrypt"));
        }
    }

    #[test]
    fn create_normalizes_and_indexes() {
        let (_dir, store) = temp_store();
        store
            .create_account(&account(ALICE, "Alice.Test", Some("Alice@X.test")))
            .unwrap();
        let got = store.account(ALICE).unwrap().unwrap();
        assert_eq!(got.handle, "alice.test");
        assert_eq!(got.email.as_deref(), Some("Alice@X.test"));
        assert!(got.is_active());
        assert_eq!(
            store.did_for_handle("ALICE.test").unwrap().as_deref(),
            Some(ALICE)
        );
        assert_eq!(
            store.did_for_email("alice@x.TEST").unwrap().as_deref(),
            Some(ALICE)
        );
        assert_eq!(store.did_for_handle("bob.test").unwrap(), None);
        assert_eq!(store.account(BOB).unwrap(), None);
    }

    #[test]
    fn uniqueness_errors_are_distinct_and_write_nothing() {
        let (_dir, store) = temp_store();
        store
            .create_account(&account(ALICE, "alice.test", Some("a@x.test")))
            .unwrap();
        let err = |r: Result<(), StoreError>| r.unwrap_err();
        assert!(matches!(
            err(store.create_account(&account(ALICE, "other.test", None))),
            StoreError::DidTaken
        ));
        assert!(matches!(
            err(store.create_account(&account(BOB, "ALICE.TEST", None))),
            StoreError::HandleTaken
        ));
        assert!(matches!(
            err(store.create_account(&account(BOB, "bob.test", Some("A@X.TEST")))),
            StoreError::EmailTaken
        ));
        assert_eq!(store.account(BOB).unwrap(), None);
        assert_eq!(store.did_for_handle("bob.test").unwrap(), None);
        assert!(matches!(
            err(store.create_account(&account("not-a-did", "c.test", None))),
            StoreError::Invalid(_)
        ));
        assert!(matches!(
            err(store.create_account(&account(BOB, "no spaces.test", None))),
            StoreError::Invalid(_)
        ));
    }

    #[test]
    fn racing_creations_of_one_handle_have_one_winner() {
        let (_dir, store) = temp_store();
        for round in 0..5 {
            let threads = 4;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let did = format!("did:plc:r{round}t{t}aaaaaaaaaaaaaaaaaaaa");
                        barrier.wait();
                        store.create_account(&account(&did, &format!("same{round}.test"), None))
                    })
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let wins = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "round {round}: {results:?}");
            assert!(results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(StoreError::HandleTaken))));
        }
        assert_eq!(store.list_accounts(None, 100).unwrap().len(), 5);
    }

    #[test]
    fn handle_change_moves_the_index() {
        let (_dir, store) = temp_store();
        store
            .create_account(&account(ALICE, "alice.test", None))
            .unwrap();
        store
            .create_account(&account(BOB, "bob.test", None))
            .unwrap();
        assert!(matches!(
            store.set_handle(ALICE, "Bob.Test"),
            Err(StoreError::HandleTaken)
        ));
        store.set_handle(ALICE, "ALICE.test").unwrap(); // its own handle: no-op
        store.set_handle(ALICE, "Alice2.Test").unwrap();
        assert_eq!(store.account(ALICE).unwrap().unwrap().handle, "alice2.test");
        assert_eq!(
            store.did_for_handle("alice2.test").unwrap().as_deref(),
            Some(ALICE)
        );
        assert_eq!(store.did_for_handle("alice.test").unwrap(), None);
        // The old handle is free again.
        store.set_handle(BOB, "alice.test").unwrap();
        assert!(matches!(
            store.set_handle("did:plc:cccccccccccccccccccccccc", "carol.test"),
            Err(StoreError::NotFound)
        ));
    }

    #[test]
    fn status_and_password_updates() {
        let (_dir, store) = temp_store();
        store
            .create_account(&account(ALICE, "alice.test", None))
            .unwrap();
        store
            .set_status(ALICE, Some(AccountStatus::Deactivated.as_str()))
            .unwrap();
        assert_eq!(
            store.account(ALICE).unwrap().unwrap().status.as_deref(),
            Some("deactivated")
        );
        store.set_status(ALICE, None).unwrap();
        assert!(store.account(ALICE).unwrap().unwrap().is_active());
        assert!(matches!(
            store.set_status(ALICE, Some("")),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.set_status(BOB, Some(AccountStatus::Takendown.as_str())),
            Err(StoreError::NotFound)
        ));
        store.set_password_hash(ALICE, "$scrypt$new").unwrap();
        assert_eq!(
            store.account(ALICE).unwrap().unwrap().password_hash,
            "$scrypt$new"
        );
    }

    #[test]
    fn list_accounts_pages_in_did_order() {
        let (_dir, store) = temp_store();
        let dids: Vec<String> = (0..7)
            .map(|i| format!("did:plc:{i}aaaaaaaaaaaaaaaaaaaaaaa"))
            .collect();
        for (i, did) in dids.iter().enumerate().rev() {
            store
                .create_account(&account(did, &format!("u{i}.test"), None))
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.list_accounts(after.as_deref(), 3).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|a| a.did.clone());
            seen.extend(page.into_iter().map(|a| a.did));
        }
        assert_eq!(seen, dids);
        assert!(store.list_accounts(None, 0).unwrap().is_empty());
    }

    #[test]
    fn signing_key_converts() {
        let key = PrivateKey::generate(Curve::K256);
        let mut rec = account(ALICE, "alice.test", None);
        rec.signing_key = key.to_bytes();
        assert_eq!(rec.signing_key().unwrap().public_key(), key.public_key());
        rec.signing_key = [0; 32];
        assert!(rec.signing_key().is_err());
    }
}
