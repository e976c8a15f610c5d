//! Why a DID could not be resolved, split by what the caller should do next.

/// The outcome of a failed DID resolution.
///
/// The variants separate "try again later" ([`ResolveError::Transient`], never
/// cached) from definitive answers ([`ResolveError::NotFound`],
/// [`ResolveError::Tombstoned`], [`ResolveError::Invalid`]), which the
/// [`Resolver`](super::Resolver) caches for its negative TTL so that a flood of
/// events for a dead or broken DID does not become a flood of HTTP requests.
///
/// `Clone` because one in-flight resolution's result is handed to every
/// concurrent caller (single-flight).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The directory or host could not answer now: timeout, connection error,
    /// HTTP 5xx or 429, or a broken response body. Retry later.
    #[error("transient identity resolution failure: {0}")]
    Transient(String),
    /// The directory or host does not know the DID (HTTP 404).
    #[error("DID not found")]
    NotFound,
    /// The DID was deactivated for good (HTTP 410; a PLC tombstone). Treat the
    /// account as deleted.
    #[error("DID is tombstoned")]
    Tombstoned,
    /// The DID or its document is unusable: bad DID syntax, unsupported method,
    /// document `id` mismatch, unparseable or oversized document, unexpected
    /// HTTP status.
    #[error("invalid DID or DID document: {0}")]
    Invalid(String),
}

impl ResolveError {
    /// Whether the failure may go away on its own, so the caller should retry
    /// later rather than treat the DID as broken. Only [`ResolveError::Transient`].
    pub fn is_transient(&self) -> bool {
        matches!(self, ResolveError::Transient(_))
    }

    /// A short, fixed label for metrics and logs (`transient`, `not_found`,
    /// `tombstoned`, `invalid`).
    pub fn label(&self) -> &'static str {
        match self {
            ResolveError::Transient(_) => "transient",
            ResolveError::NotFound => "not_found",
            ResolveError::Tombstoned => "tombstoned",
            ResolveError::Invalid(_) => "invalid",
        }
    }
}
