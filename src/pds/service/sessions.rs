//! Logging in and out: sessions (access/refresh token pairs), the login
//! identifier's lookup, and the password hashing that login and account
//! creation share (bounded slots, a dummy hash for unknown accounts). Its
//! own file because it is the one part of [`Pds`] that deals in credentials.

use super::error::token_error_name;
use super::{Pds, PdsError};
use crate::clock::now_micros;
use crate::pds::password::{hash_password_with, verify_password, PasswordError};
use crate::pds::session_token::{Claims, TokenKind};
use crate::pds::store::AccountRecord;

/// The tokens a login returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub did: String,
    pub handle: String,
    pub access_jwt: String,
    pub refresh_jwt: String,
}

impl Pds {
    /// Logs in with a handle (or email) and password.
    pub async fn create_session(
        &self,
        identifier: &str,
        password: &str,
    ) -> Result<(Session, AccountRecord), PdsError> {
        let (_, did) = self.resolve_identifier(identifier)?;
        let account = match did {
            Some(did) => self.inner.store.account(&did)?,
            None => None,
        };
        // Verify against a dummy hash of the same cost when the account is
        // unknown, so the answer takes as long either way.
        let hash = match account.as_ref() {
            Some(a) => a.password_hash.clone(),
            None => self.dummy_hash().await,
        };
        let password = password.to_owned();
        let _slot = self.inner.hash_slots.acquire().await;
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        match account {
            Some(a) if ok => {
                if a.is_taken_down() {
                    return Err(PdsError::taken_down());
                }
                let session = self.issue_session(&a.did, &a.handle)?;
                Ok((session, a))
            }
            _ => Err(PdsError::Auth("invalid identifier or password".into())),
        }
    }

    /// What a login identifier (handle, email or DID, any case) names: the
    /// identifier normalised, and the account's DID if there is one.
    fn resolve_identifier(&self, identifier: &str) -> Result<(String, Option<String>), PdsError> {
        let id = identifier.trim().to_ascii_lowercase();
        let did = if id.starts_with("did:") {
            Some(id.clone())
        } else if id.contains('@') {
            self.inner.store.did_for_email(&id)?
        } else {
            self.inner.store.did_for_handle(&id)?
        };
        Ok((id, did))
    }

    /// The key failed logins to `identifier` are counted under: the
    /// account's DID when it names one (so its handle, email and DID share
    /// one budget), else the normalised identifier. A store lookup, no
    /// password work: call it before deciding whether to check a password.
    pub fn login_key(&self, identifier: &str) -> Result<String, PdsError> {
        let (id, did) = self.resolve_identifier(identifier)?;
        Ok(did.unwrap_or(id))
    }

    /// Trades a refresh token for a new pair (the old refresh token is
    /// revoked: rotation).
    pub fn refresh_session(&self, refresh_jwt: &str) -> Result<(Session, AccountRecord), PdsError> {
        let claims = self.refresh_claims(refresh_jwt)?;
        let jti = claims.jti.unwrap_or_default();
        if self.inner.store.take_refresh(&jti)?.is_none() {
            return Err(PdsError::Invalid(
                "InvalidToken",
                "refresh token revoked or already used".into(),
            ));
        }
        let account = self.account(&claims.sub)?;
        if account.is_taken_down() {
            return Err(PdsError::taken_down());
        }
        let session = self.issue_session(&account.did, &account.handle)?;
        Ok((session, account))
    }

    /// Revokes a refresh token (logout).
    pub fn delete_session(&self, refresh_jwt: &str) -> Result<(), PdsError> {
        let claims = self.refresh_claims(refresh_jwt)?;
        self.inner
            .store
            .revoke_refresh(&claims.jti.unwrap_or_default())?;
        Ok(())
    }

    /// A refresh token's claims, if it verifies now (signature, kind,
    /// expiry); whether it was revoked is the store's to say.
    fn refresh_claims(&self, refresh_jwt: &str) -> Result<Claims, PdsError> {
        let now = now_micros() / 1_000_000;
        self.inner
            .tokens
            .verify(refresh_jwt, TokenKind::Refresh, now)
            .map_err(|e| PdsError::Invalid(token_error_name(&e), e.to_string()))
    }

    /// The DID an access token speaks for.
    pub fn authenticate(&self, access_jwt: &str) -> Result<String, PdsError> {
        let now = now_micros() / 1_000_000;
        self.inner
            .tokens
            .verify(access_jwt, TokenKind::Access, now)
            .map(|c| c.sub)
            .map_err(|e| PdsError::Invalid(token_error_name(&e), e.to_string()))
    }

    /// The unknown-account hash, made once.
    async fn dummy_hash(&self) -> String {
        if let Some(h) = self.inner.dummy_hash.get() {
            return h.clone();
        }
        let made = self
            .hash(&format!("{:x}", rand::random::<u128>()))
            .await
            .unwrap_or_default();
        self.inner.dummy_hash.get_or_init(|| made).clone()
    }

    pub(super) async fn hash(&self, password: &str) -> Result<String, PdsError> {
        let password = password.to_owned();
        let cost = self.inner.password_cost;
        let _slot = self.inner.hash_slots.acquire().await;
        tokio::task::spawn_blocking(move || hash_password_with(&password, cost))
            .await
            .map_err(|e| PdsError::Internal(e.to_string()))?
            .map_err(|e| match e {
                PasswordError::Empty
                | PasswordError::TooLong
                | PasswordError::TooShort
                | PasswordError::Blank
                | PasswordError::ControlCharacter => {
                    PdsError::Invalid("InvalidPassword", e.to_string())
                }
                e => PdsError::Internal(e.to_string()),
            })
    }

    pub(super) fn issue_session(&self, did: &str, handle: &str) -> Result<Session, PdsError> {
        let now = now_micros() / 1_000_000;
        let (access_jwt, _) = self.inner.tokens.issue(TokenKind::Access, did, now);
        let (refresh_jwt, claims) = self.inner.tokens.issue(TokenKind::Refresh, did, now);
        self.inner
            .store
            .put_refresh(&claims.jti.unwrap_or_default(), did, claims.exp)?;
        Ok(Session {
            did: did.to_owned(),
            handle: handle.to_owned(),
            access_jwt,
            refresh_jwt,
        })
    }
}
