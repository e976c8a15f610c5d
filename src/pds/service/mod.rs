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
//!
//! The operations live in one file per concept, each an `impl Pds` block:
//! `sessions` (login, tokens, password hashing), `account_lifecycle`
//! (create, handle, status, delete), `commits` (record writes), `emit`
//! (the events) and `error` ([`PdsError`]). This file holds the type, its
//! opening and its accessors.

mod account_lifecycle;
mod commits;
mod emit;
mod error;
mod sessions;

pub use commits::{SwappedWrite, WriteOutcome};
pub use error::PdsError;
pub use sessions::Session;

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::watch;

use super::config::PdsConfig;
use super::events::EventSink;
use super::password::PasswordCost;
use super::session_token::SessionTokens;
use super::store::PdsStore;
use crate::crypto::{Curve, PrivateKey};
use crate::fanout::Ring;
use crate::log::{EventLog, LogOptions};
use crate::plc::PlcClient;
use crate::wire::tid::TidClock;

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
}
