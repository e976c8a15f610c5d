//! PDS mode's core: accounts and repo writes as operations, independent of
//! HTTP. The XRPC handlers are thin wrappers over [`Pds`]; `devnet` and the
//! load generator can drive it in process.
//!
//! Every change that the network sees is one event, emitted after the change
//! is durable, in the lifecycle order of digest §2.9:
//! - create: `#identity`, `#account` (active), then the initial empty
//!   `#commit` (`since` null);
//! - writes: one signed `#commit` per call, with a diff CAR that carries the
//!   inversion proof;
//! - handle change: `#identity`;
//! - deactivate / activate / takedown / delete: `#account` (activation is
//!   followed by an empty `#commit`, as the digest recommends).
//!
//! A repo's writes are serialized by a per-DID lock held from reading the
//! head to storing the commit, so swaps (`swapCommit`, `swapRecord`) are
//! checked against exactly the state the commit builds on.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::watch;

use super::config::PdsConfig;
use super::events::EventSink;
use super::password::{
    check_new_password, hash_password_with, verify_password, PasswordCost, PasswordError,
};
use super::session_token::{SessionTokens, TokenKind};
use super::store::{AccountRecord, CommitWrite, PdsStore, StoreError};
use super::writes::{check_swap_commit, check_swap_record, prepare, WriteError, WriteRequest};
use crate::clock::now_micros;
use crate::crypto::{Curve, PrivateKey};
use crate::fanout::Ring;
use crate::log::{EventLog, LogError, LogOptions};
use crate::plc::{genesis_op, update_op, PlcClient};
use crate::repo::builder::{BuiltCommit, RecordWrite};
use crate::wire::cid::Cid;
use crate::wire::frame::{Account, AccountStatus, Event, Identity};
use crate::wire::syntax::{format_datetime_micros, validate_handle};
use crate::wire::tid::TidClock;

/// Why an operation failed. Each maps to an XRPC error name and status.
#[derive(Debug, thiserror::Error)]
pub enum PdsError {
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("{0}")]
    Write(#[from] WriteError),
    #[error("authentication: {0}")]
    Auth(String),
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error("account is {0}")]
    AccountInactive(String),
    #[error("PLC directory: {0}")]
    Plc(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("event log: {0}")]
    Log(#[from] LogError),
    #[error("internal: {0}")]
    Internal(String),
}

impl PdsError {
    /// `AccountTakedown`: what a taken-down account's owner hears when
    /// logging in, refreshing a session or (re)activating the account.
    pub fn taken_down() -> PdsError {
        PdsError::Invalid("AccountTakedown", "this account has been taken down".into())
    }

    /// The XRPC error name.
    pub fn name(&self) -> &'static str {
        match self {
            PdsError::Invalid(name, _) => name,
            PdsError::Write(w) => w.name(),
            PdsError::Auth(_) => "AuthenticationRequired",
            PdsError::AccountNotFound(_) => "RepoNotFound",
            PdsError::AccountInactive(status) => AccountStatus::parse(status)
                .and_then(AccountStatus::repo_error)
                .unwrap_or("RepoDeactivated"),
            PdsError::Plc(_) => "UpstreamFailure",
            PdsError::Store(StoreError::HandleTaken) => "HandleNotAvailable",
            PdsError::Store(StoreError::EmailTaken) => "InvalidRequest",
            PdsError::Store(StoreError::Invalid(_)) => "InvalidRequest",
            PdsError::Store(StoreError::HeadChanged(_)) => "InvalidSwap",
            PdsError::Store(_) | PdsError::Log(_) | PdsError::Internal(_) => "InternalServerError",
        }
    }
}

/// The tokens a login returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub did: String,
    pub handle: String,
    pub access_jwt: String,
    pub refresh_jwt: String,
}

/// The outcome of one write call: the new commit and each write's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    pub commit: Cid,
    pub rev: String,
    /// Per write: `(uri, record cid)`; `None` for deletes.
    pub results: Vec<Option<(String, Cid)>>,
}

/// A write with its optional `swapRecord` (`Some(None)`: must not exist).
#[derive(Clone, Debug, PartialEq)]
pub struct SwappedWrite {
    pub write: WriteRequest,
    pub swap_record: Option<Option<Cid>>,
}

impl From<WriteRequest> for SwappedWrite {
    fn from(write: WriteRequest) -> SwappedWrite {
        SwappedWrite {
            write,
            swap_record: None,
        }
    }
}

/// PDS mode's state. Cheap to clone.
#[derive(Clone)]
pub struct Pds {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: PdsConfig,
    store: PdsStore,
    log: EventLog,
    ring: Ring,
    events: EventSink,
    tokens: SessionTokens,
    plc: PlcClient,
    rotation_key: PrivateKey,
    service_did: String,
    endpoint: String,
    tids: TidClock,
    repo_locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    password_cost: PasswordCost,
    /// Password hashing takes ~0.45 s and 128 MiB at the standard cost: at
    /// most two run at once, which also slows down guessing.
    hash_slots: tokio::sync::Semaphore,
    /// A hash (at the configured cost) to verify against when the account
    /// is unknown, so a login takes as long whether the account exists or
    /// not.
    dummy_hash: std::sync::OnceLock<String>,
    last_seq: watch::Sender<u64>,
}

impl Pds {
    /// Opens (or creates) the PDS's databases under `cfg.server.data_dir`.
    /// `password_cost` is [`PasswordCost::STANDARD`] outside tests and
    /// throwaway networks.
    pub fn open(cfg: &PdsConfig, password_cost: PasswordCost) -> Result<Pds, PdsError> {
        let dir = &cfg.server.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| PdsError::Internal(e.to_string()))?;
        let store = PdsStore::open(&dir.join("store"))?;
        let log = EventLog::open(&dir.join("log"), LogOptions::default())?;
        let ring = Ring::new(1 << 14, log.last_seq());
        let events = EventSink::new(log.clone(), ring.clone());
        let jwt = store.server_secret("jwt", || rand::random::<[u8; 32]>().to_vec())?;
        let rotation = store.server_secret("plc_rotation_key", || {
            PrivateKey::generate(Curve::K256).to_bytes().to_vec()
        })?;
        let rotation_key = PrivateKey::from_bytes(Curve::K256, &rotation)
            .map_err(|e| PdsError::Internal(format!("stored rotation key: {e}")))?;
        let hostname = cfg.hostname();
        let host = crate::net::host_part(&hostname).to_owned();
        let scheme = if crate::net::HostName::parse(&hostname).is_ok_and(|h| h.is_local()) {
            "http"
        } else {
            "https"
        };
        // did:web encodes a port as `%3A` (digest §6.1), so two PDSes on
        // one host have distinct DIDs.
        let service_did = match hostname.strip_prefix(&host) {
            Some(port) if port.starts_with(':') => format!("did:web:{host}%3A{}", &port[1..]),
            _ => format!("did:web:{host}"),
        };
        let last_seq = watch::Sender::new(log.last_seq());
        Ok(Pds {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                store,
                tokens: SessionTokens::new(&jwt, &service_did),
                plc: PlcClient::new(&cfg.identity.plc_url),
                log,
                ring,
                events,
                rotation_key,
                service_did,
                endpoint: format!("{scheme}://{hostname}"),
                tids: TidClock::new(),
                repo_locks: DashMap::new(),
                password_cost,
                hash_slots: tokio::sync::Semaphore::new(2),
                dummy_hash: std::sync::OnceLock::new(),
                last_seq,
            }),
        })
    }

    /// The configuration it runs under.
    pub fn config(&self) -> &PdsConfig {
        &self.inner.cfg
    }

    /// The store (for the read-only XRPC queries).
    pub fn store(&self) -> &PdsStore {
        &self.inner.store
    }

    /// The event log (the firehose's backfill).
    pub fn log(&self) -> &EventLog {
        &self.inner.log
    }

    /// The broadcast ring live subscribers read.
    pub fn ring(&self) -> &Ring {
        &self.inner.ring
    }

    /// The session token issuer.
    pub fn tokens(&self) -> &SessionTokens {
        &self.inner.tokens
    }

    /// `did:web:<host>`.
    pub fn service_did(&self) -> &str {
        &self.inner.service_did
    }

    /// The URL accounts' DID documents name (`https://host[:port]`).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The last seq emitted, as a watch (the crawl notifier waits on it).
    pub fn last_seq(&self) -> watch::Receiver<u64> {
        self.inner.last_seq.subscribe()
    }

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
        let now = now_micros() / 1_000_000;
        let claims = self
            .inner
            .tokens
            .verify(refresh_jwt, TokenKind::Refresh, now)
            .map_err(|e| PdsError::Invalid(token_error_name(&e), e.to_string()))?;
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
        let now = now_micros() / 1_000_000;
        let claims = self
            .inner
            .tokens
            .verify(refresh_jwt, TokenKind::Refresh, now)
            .map_err(|e| PdsError::Invalid(token_error_name(&e), e.to_string()))?;
        self.inner
            .store
            .revoke_refresh(&claims.jti.unwrap_or_default())?;
        Ok(())
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

    /// A stored account.
    pub fn account(&self, did: &str) -> Result<AccountRecord, PdsError> {
        self.inner
            .store
            .account(did)?
            .ok_or_else(|| PdsError::AccountNotFound(did.to_owned()))
    }

    /// Applies `writes` to `did`'s repo as one signed commit (an empty list
    /// makes an empty commit) and emits it.
    pub async fn write(
        &self,
        did: &str,
        writes: Vec<SwappedWrite>,
        swap_commit: Option<Cid>,
    ) -> Result<WriteOutcome, PdsError> {
        if writes.len() > self.inner.cfg.limits.max_writes {
            return Err(PdsError::Invalid(
                "InvalidRequest",
                format!(
                    "at most {} writes per call",
                    self.inner.cfg.limits.max_writes
                ),
            ));
        }
        let account = self.account(did)?;
        if let Some(status) = account.status {
            return Err(PdsError::AccountInactive(status));
        }
        self.commit(did, writes, swap_commit).await
    }

    /// Builds, stores and emits one commit under the repo's lock.
    async fn commit(
        &self,
        did: &str,
        writes: Vec<SwappedWrite>,
        swap_commit: Option<Cid>,
    ) -> Result<WriteOutcome, PdsError> {
        let prepared = writes
            .into_iter()
            .map(|w| Ok((prepare(w.write, &self.inner.tids)?, w.swap_record)))
            .collect::<Result<Vec<_>, WriteError>>()?;
        let lock = self
            .inner
            .repo_locks
            .entry(did.to_owned())
            .or_default()
            .clone();
        let _held = lock.lock().await;
        // Store reads, the signature, the synced write and the log append
        // block: off the async runtime, still under the repo's lock.
        let this = self.clone();
        let did = did.to_owned();
        tokio::task::spawn_blocking(move || this.commit_locked(&did, prepared, swap_commit))
            .await
            .map_err(|e| PdsError::Internal(format!("commit task: {e}")))?
    }

    /// The part of [`Pds::commit`] that runs with the repo's lock held.
    fn commit_locked(
        &self,
        did: &str,
        prepared: Vec<(super::writes::PreparedWrite, Option<Option<Cid>>)>,
        swap_commit: Option<Cid>,
    ) -> Result<WriteOutcome, PdsError> {
        let store = &self.inner.store;
        let head = store.repo_head(did)?;
        check_swap_commit(swap_commit, head.commit)?;
        let mut repo_writes: Vec<RecordWrite> = Vec::with_capacity(prepared.len());
        let mut seen = std::collections::HashSet::new();
        let mut results = Vec::with_capacity(prepared.len());
        for (w, swap) in &prepared {
            let path = w.path();
            if !seen.insert(path.clone()) {
                return Err(WriteError::InvalidRequest(format!("{path} is written twice")).into());
            }
            let existing = store.record_cid(did, &w.collection, &w.rkey)?;
            check_swap_record(&path, *swap, existing)?;
            repo_writes.push(w.to_repo_write(existing)?);
            results.push(w.record.as_ref().map(|(cid, _)| (w.uri(did), *cid)));
        }
        let key = self
            .account(did)?
            .signing_key()
            .map_err(|e| PdsError::Internal(format!("stored signing key: {e}")))?;
        let blocks = store.repo_blocks(did);
        let built = head
            .commit(&blocks, repo_writes, &key, self.inner.tids.next())
            .map_err(|e| PdsError::Internal(format!("building the commit: {e}")))?;
        store.apply_commit_on(did, head.commit, CommitWrite::from_built(&built)?)?;
        self.emit_commit(&built)?;
        Ok(WriteOutcome {
            commit: built.commit,
            rev: built.rev.to_string(),
            results,
        })
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

    async fn hash(&self, password: &str) -> Result<String, PdsError> {
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

    fn issue_session(&self, did: &str, handle: &str) -> Result<Session, PdsError> {
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

    fn emit(&self, event: Event<'_>) -> Result<u64, PdsError> {
        let seq = self.inner.events.emit(event, now_micros())?;
        self.inner.last_seq.send_replace(seq);
        Ok(seq)
    }

    fn emit_identity(&self, did: &str, handle: Option<&str>) -> Result<u64, PdsError> {
        let time = format_datetime_micros(now_micros());
        self.emit(Event::Identity(Identity {
            seq: 0,
            did,
            time: &time,
            handle,
        }))
    }

    fn emit_account(&self, did: &str, status: Option<&str>) -> Result<u64, PdsError> {
        let time = format_datetime_micros(now_micros());
        self.emit(Event::Account(Account {
            seq: 0,
            did,
            time: &time,
            active: status.is_none(),
            status,
        }))
    }

    fn emit_commit(&self, built: &BuiltCommit) -> Result<u64, PdsError> {
        let time = format_datetime_micros(now_micros());
        let strings = built.frame_strings();
        self.emit(Event::Commit(built.to_frame(&strings, 0, &time)))
    }
}

fn token_error_name(e: &super::session_token::TokenError) -> &'static str {
    match e {
        super::session_token::TokenError::Expired => "ExpiredToken",
        super::session_token::TokenError::Invalid(_) => "InvalidToken",
    }
}
