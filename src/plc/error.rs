//! Errors of the PLC directory, one enum per layer: the operation itself
//! ([`OpError`]), its place in the DID's log ([`ChainError`]), the database
//! ([`StoreError`]), and what a submission reports ([`SubmitError`]).
//!
//! Operations arrive from the network, so every refusal is a value whose
//! message is safe to send back: it names the rule that failed and quotes at
//! most a short prefix of what was sent.

/// Why no allowed rotation key verifies an operation's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRejected {
    /// A malleated signature: the same one with `s' = n - s` would verify.
    #[error("signature has high S (s > n/2), which atproto forbids")]
    HighS,
    /// The operation's prev allows no rotation key at all.
    #[error("no rotation key may sign this operation")]
    NoKeys,
    /// Signed by none of this many allowed keys.
    #[error("not signed by any of the {0} allowed rotation key(s)")]
    NoKeyMatches(usize),
}

/// Why an operation is malformed: its shape, a limit, or its signature encoding.
/// Checked without looking at any other operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// Not an object, an unknown `type`, a missing, unknown or mistyped field.
    #[error("invalid operation: {0}")]
    Shape(String),
    /// The signed operation's DAG-CBOR is over the server limit.
    #[error("operation too large: {size} bytes of DAG-CBOR (max {max})")]
    TooLarge {
        /// Encoded size of the signed operation.
        size: usize,
        /// The limit ([`MAX_OP_BYTES`](super::limits::MAX_OP_BYTES)).
        max: usize,
    },
    /// A count, length, duplicate or key-type rule (see [`super::limits`]).
    #[error("operation breaks a limit: {0}")]
    Limit(String),
    /// `sig` is not 64 bytes in unpadded, canonical base64url.
    #[error("invalid signature encoding: {0}")]
    SignatureEncoding(String),
    /// A signing request the caller got wrong (e.g. a signer that is not one of
    /// the rotation keys): raised by the client-side builders only.
    #[error("cannot build operation: {0}")]
    Build(String),
}

/// Why an operation, well-formed on its own, cannot extend the DID's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Genesis hashes to another DID than the one it was posted for.
    #[error("genesis operation hashes to {derived}, not {expected}")]
    DidMismatch {
        /// The DID in the request path.
        expected: String,
        /// The DID the operation derives.
        derived: String,
    },
    /// The first operation of a DID must be a `plc_operation` (or, in old
    /// logs, a legacy `create`) with `prev: null`.
    #[error(
        "the DID is not registered: its first operation must be a plc_operation with prev null"
    )]
    NotGenesis,
    /// A later operation without `prev`.
    #[error("operation has prev null but the DID already exists")]
    MissingPrev,
    /// `prev` names no currently valid operation of this DID (unknown,
    /// nullified, or not a CID of this log).
    #[error("prev {0} is not the CID of a valid operation in this DID's log")]
    UnknownPrev(String),
    /// `prev` is a tombstone: a tombstoned DID takes no further operations.
    #[error("the DID is tombstoned: no operation may follow a tombstone")]
    Tombstoned,
    /// No allowed rotation key verifies the signature.
    #[error("invalid signature: {0}")]
    Signature(SignatureRejected),
    /// A fork signed by a key of the same or lower authority than the signer
    /// of the first operation it would nullify.
    #[error("a fork must be signed by a rotation key of higher authority (lower index) than the one that signed the operation it nullifies")]
    NotHigherAuthority,
    /// A fork more than 72 hours after the first operation it would nullify.
    #[error("recovery window passed: the operation to nullify is {elapsed_secs} s old (max 72 h)")]
    LateRecovery {
        /// Age of the first nullified operation, in seconds.
        elapsed_secs: u64,
    },
    /// The stored log is inconsistent with the rules (should not happen: every
    /// stored operation was validated).
    #[error("stored log is inconsistent: {0}")]
    Inconsistent(String),
}

/// A database failure. Internal: reported as 500 without detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused an open, read or write.
    #[error("rocksdb: {0}")]
    RocksDb(String),
    /// A stored value does not decode.
    #[error("corrupt PLC store: {0}")]
    Corrupt(String),
    /// The database was written by an incompatible layout version.
    #[error("PLC store schema version {found}, expected {expected}")]
    SchemaVersion {
        /// Version found on disk.
        found: u32,
        /// Version this build writes.
        expected: u32,
    },
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> StoreError {
        StoreError::RocksDb(e.into_string())
    }
}

/// Why [`Directory::submit`](super::Directory::submit) refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The DID in the path is not a well-formed did:plc.
    #[error("invalid DID: {0}")]
    BadDid(String),
    /// The operation is malformed.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The operation does not fit the DID's log.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// New legacy `create` operations are refused (they exist only in old logs).
    #[error("legacy `create` operations are no longer accepted; submit a plc_operation")]
    LegacyCreate,
    /// The DID reached the per-DID operation cap.
    #[error("too many operations for this DID (max {0})")]
    TooManyOps(usize),
    /// The database failed; the operation may not have been stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// Whether the submitter is at fault (400) rather than the server (500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, SubmitError::Store(_))
    }
}

/// Caps attacker-controlled text quoted in an error message.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{:?}…", &s[..i]),
        None => format!("{s:?}"),
    }
}
