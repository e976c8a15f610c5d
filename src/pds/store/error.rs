//! [`StoreError`]: why a PDS store operation failed.

/// Why a [`PdsStore`](super::PdsStore) operation failed.
///
/// The first group is what XRPC handlers map to lexicon errors
/// (`HandleTaken` → `HandleNotAvailable`, `NotFound` → `RecordNotFound` /
/// `AccountNotFound`, ...); the second group is an internal failure
/// (`InternalServerError`) that the operator must look at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another account already has this handle (compared lower-case).
    #[error("handle is already taken")]
    HandleTaken,
    /// Another account already has this email (compared lower-case).
    #[error("email is already in use")]
    EmailTaken,
    /// An account with this DID already exists.
    #[error("an account with this DID already exists")]
    DidTaken,
    /// The account (or the thing asked for) does not exist.
    #[error("not found")]
    NotFound,
    /// The caller passed something the store refuses to write: a malformed
    /// DID, handle, NSID or record key, a blob whose bytes do not match its
    /// CID, a commit without its commit block. A bug in the caller or input
    /// that skipped validation; maps to `InvalidRequest`.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// [`apply_commit`](super::PdsStore::apply_commit) lost a race: the repo's
    /// head is not the one the commit was built on, or its rev does not move
    /// forward. Nothing was written; rebuild on the current head (or return
    /// `InvalidSwap` for a `swapCommit` mismatch).
    #[error("repo head changed: {0}")]
    HeadChanged(String),
    /// A stored value does not decode: disk corruption or a layout this build
    /// does not understand.
    #[error("corrupt PDS store: {0}")]
    Corrupt(String),
    /// RocksDB failed. The write's outcome is unknown only for the failing
    /// call; each write is one atomic batch, so the store is never half-updated.
    #[error("RocksDB: {0}")]
    Db(#[from] rocksdb::Error),
    /// Reading or writing a blob file (or its directory) failed.
    #[error("blob storage I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// A [`StoreError::Corrupt`] naming the value that failed to decode.
    pub(super) fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(format!("{what}: {err}"))
    }
}
