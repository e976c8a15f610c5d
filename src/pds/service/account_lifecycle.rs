//! An account's life on this PDS: creation (a `did:plc` registered with the
//! directory, then `#identity`, `#account` and the initial commit), handle
//! changes, hosting status (deactivate / activate / takedown) and deletion.
//! Its own file because these are the operations that talk to the PLC
//! directory and emit `#identity` / `#account`, apart from sessions and
//! record writes.

use super::{Pds, PdsError, Session};
use crate::clock::now_micros;
use crate::crypto::{Curve, PrivateKey};
use crate::pds::password::check_new_password;
use crate::pds::store::{AccountRecord, StoreError};
use crate::plc::{genesis_op, update_op};
use crate::wire::frame::AccountStatus;
use crate::wire::syntax::validate_handle;

impl Pds {
    /// Creates an account: checks the handle, registers a `did:plc` with the
    /// PLC directory (the PDS's rotation key controls it), stores the
    /// account, and emits `#identity`, `#account` and the initial commit.
    pub async fn create_account(
        &self,
        handle: &str,
        email: Option<&str>,
        password: &str,
    ) -> Result<Session, PdsError> {
        let handle = self.check_new_handle(handle)?;
        if self.inner.store.did_for_handle(&handle)?.is_some() {
            return Err(StoreError::HandleTaken.into());
        }
        if let Some(email) = email {
            if !email.contains('@') || email.len() > 254 {
                return Err(PdsError::Invalid("InvalidRequest", "invalid email".into()));
            }
        }
        check_new_password(password)
            .map_err(|e| PdsError::Invalid("InvalidPassword", e.to_string()))?;
        let password_hash = self.hash(password).await?;
        let signing_key = PrivateKey::generate(Curve::K256);
        let rotation = self.inner.rotation_key.public_key().to_did_key();
        let genesis = genesis_op(
            &signing_key.public_key().to_did_key(),
            &handle,
            &self.inner.endpoint,
            &[rotation],
            &self.inner.rotation_key,
        )
        .map_err(|e| PdsError::Internal(format!("building the PLC operation: {e}")))?;
        self.inner
            .plc
            .submit(&genesis.did, &genesis.op)
            .await
            .map_err(|e| PdsError::Plc(e.to_string()))?;
        let did = genesis.did;
        let key_bytes: [u8; 32] = signing_key
            .to_bytes()
            .as_slice()
            .try_into()
            .map_err(|_| PdsError::Internal("k256 secret is not 32 bytes".into()))?;
        self.inner.store.create_account(&AccountRecord {
            did: did.clone(),
            handle: handle.clone(),
            email: email.map(str::to_owned),
            password_hash,
            signing_key: key_bytes,
            created_micros: now_micros(),
            status: None,
        })?;
        self.emit_identity(&did, Some(&handle))?;
        self.emit_account(&did, None)?;
        self.commit(&did, Vec::new(), None).await?;
        self.issue_session(&did, &handle)
    }

    /// A stored account.
    pub fn account(&self, did: &str) -> Result<AccountRecord, PdsError> {
        self.inner
            .store
            .account(did)?
            .ok_or_else(|| PdsError::AccountNotFound(did.to_owned()))
    }

    /// Changes an account's handle: a PLC update, then `#identity`.
    pub async fn update_handle(&self, did: &str, handle: &str) -> Result<(), PdsError> {
        let handle = self.check_new_handle(handle)?;
        let account = self.account(did)?;
        if account.handle == handle {
            return Ok(());
        }
        if self.inner.store.did_for_handle(&handle)?.is_some() {
            return Err(StoreError::HandleTaken.into());
        }
        let last = self
            .inner
            .plc
            .last_op(did)
            .await
            .map_err(|e| PdsError::Plc(e.to_string()))?
            .ok_or_else(|| PdsError::Plc(format!("{did} is unknown to the directory")))?;
        let op = update_op(&last, &self.inner.rotation_key, |op| op.set_handle(&handle))
            .map_err(|e| PdsError::Internal(format!("building the PLC operation: {e}")))?;
        self.inner
            .plc
            .submit(did, &op)
            .await
            .map_err(|e| PdsError::Plc(e.to_string()))?;
        self.inner.store.set_handle(did, &handle)?;
        self.emit_identity(did, Some(&handle))?;
        Ok(())
    }

    /// Sets the hosting status (`None` = active; `deactivated`,
    /// `takendown`) and emits `#account`; activation also emits an empty
    /// commit so consumers see the repo's current state.
    pub async fn set_status(
        &self,
        did: &str,
        status: Option<AccountStatus>,
    ) -> Result<(), PdsError> {
        let status = status.map(AccountStatus::as_str);
        let account = self.account(did)?;
        if account.status.as_deref() == status {
            return Ok(());
        }
        self.inner.store.set_status(did, status)?;
        self.emit_account(did, status)?;
        if status.is_none() {
            self.commit(did, Vec::new(), None).await?;
        }
        Ok(())
    }

    /// Deletes an account and its data, then emits `#account deleted`.
    pub fn delete_account(&self, did: &str) -> Result<(), PdsError> {
        self.account(did)?;
        self.inner.store.delete_account(did)?;
        self.emit_account(did, Some(AccountStatus::Deleted.as_str()))?;
        Ok(())
    }

    /// Lower-cases and checks a handle for a new account: valid syntax and
    /// under one of this PDS's user domains.
    fn check_new_handle(&self, handle: &str) -> Result<String, PdsError> {
        let handle = handle.trim().to_ascii_lowercase();
        validate_handle(&handle)
            .map_err(|e| PdsError::Invalid("InvalidHandle", format!("handle: {e}")))?;
        let domains = self.inner.cfg.user_domains();
        let ok = domains.iter().any(|d| {
            handle
                .strip_suffix(d.as_str())
                .is_some_and(|name| !name.is_empty() && !name.contains('.'))
        });
        if !ok {
            return Err(PdsError::Invalid(
                "UnsupportedDomain",
                format!(
                    "handles here are NAME{} (one label)",
                    domains.join(" or NAME")
                ),
            ));
        }
        Ok(handle)
    }
}
