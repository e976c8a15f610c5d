//! The one error type shared by every identifier validator.
//!
//! Validators run on untrusted network input on the relay's hot path, so the error
//! is a small `Copy`-sized value built from static strings: rejecting input never
//! allocates.

use std::fmt;

/// Which kind of identifier a [`SyntaxError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyntaxKind {
    /// A DID (`did:<method>:<id>`).
    Did,
    /// A handle (a DNS name).
    Handle,
    /// A namespaced identifier (Lexicon / collection name).
    Nsid,
    /// A record key.
    RecordKey,
    /// An `at://` URI.
    AtUri,
    /// A DID or a handle.
    AtIdentifier,
    /// A timestamp identifier in base32-sortable form.
    Tid,
    /// A CID in string (multibase) form.
    Cid,
    /// A BCP 47 language tag.
    Language,
    /// A generic URI.
    Uri,
    /// An RFC 3339 / ISO 8601 datetime.
    Datetime,
    /// An MST key: `<collection>/<record key>`.
    RepoPath,
}

impl SyntaxKind {
    /// The name used in messages ("invalid NSID: …").
    pub fn name(self) -> &'static str {
        match self {
            SyntaxKind::Did => "DID",
            SyntaxKind::Handle => "handle",
            SyntaxKind::Nsid => "NSID",
            SyntaxKind::RecordKey => "record key",
            SyntaxKind::AtUri => "AT URI",
            SyntaxKind::AtIdentifier => "AT identifier",
            SyntaxKind::Tid => "TID",
            SyntaxKind::Cid => "CID",
            SyntaxKind::Language => "language tag",
            SyntaxKind::Uri => "URI",
            SyntaxKind::Datetime => "datetime",
            SyntaxKind::RepoPath => "repo path",
        }
    }
}

impl fmt::Display for SyntaxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Formats the optional "which component failed" prefix of a [`SyntaxError`].
struct Within(Option<SyntaxKind>);

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(part) => write!(f, "its {part} is invalid: "),
            None => Ok(()),
        }
    }
}

/// Why a string is not a syntactically (or, for the `parse_*` functions,
/// semantically) valid identifier of some kind.
///
/// The message names the kind and the rule broken, e.g.
/// `invalid NSID: name segment starts with a digit`. When a composite identifier
/// (an AT URI, a repo path, an AT identifier) fails because one of its components
/// does, [`within`](Self::within) names that component:
/// `invalid AT URI: its NSID is invalid: name segment contains a hyphen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {}{reason}", Within(*.within))]
pub struct SyntaxError {
    kind: SyntaxKind,
    within: Option<SyntaxKind>,
    reason: &'static str,
}

impl SyntaxError {
    /// An error about `kind` breaking the rule described by `reason`.
    pub(crate) const fn new(kind: SyntaxKind, reason: &'static str) -> Self {
        SyntaxError {
            kind,
            within: None,
            reason,
        }
    }

    /// Re-labels a component's error as an error of the composite `kind`, keeping
    /// the component's kind and reason.
    pub(crate) fn inside(self, kind: SyntaxKind) -> Self {
        SyntaxError {
            kind,
            within: Some(self.within.unwrap_or(self.kind)),
            reason: self.reason,
        }
    }

    /// The kind of identifier that was being validated.
    pub fn kind(&self) -> SyntaxKind {
        self.kind
    }

    /// For a composite identifier, the component that failed (e.g. the NSID inside
    /// an AT URI); `None` when the identifier itself broke a rule.
    pub fn within(&self) -> Option<SyntaxKind> {
        self.within
    }

    /// The rule that was broken, in words.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_kind_and_reason() {
        let e = SyntaxError::new(SyntaxKind::Nsid, "name segment starts with a digit");
        assert_eq!(
            e.to_string(),
            "invalid NSID: name segment starts with a digit"
        );
        let outer = e.inside(SyntaxKind::AtUri);
        assert_eq!(outer.kind(), SyntaxKind::AtUri);
        assert_eq!(outer.within(), Some(SyntaxKind::Nsid));
        assert_eq!(
            outer.to_string(),
            "invalid AT URI: its NSID is invalid: name segment starts with a digit"
        );
        // nesting keeps the innermost component
        let twice = SyntaxError::new(SyntaxKind::Did, "x")
            .inside(SyntaxKind::AtIdentifier)
            .inside(SyntaxKind::AtUri);
        assert_eq!(twice.within(), Some(SyntaxKind::Did));
    }
}
