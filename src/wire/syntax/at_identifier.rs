//! AT identifier syntax: the account part of an AT URI or an API parameter, which
//! may be either a DID or a handle.

use super::did::validate_did;
use super::error::{SyntaxError, SyntaxKind};
use super::handle::validate_handle;

/// Checks that `s` is a valid DID (if it starts with `did:`) or a valid handle
/// (otherwise). The two syntaxes cannot overlap: handles have no `:`. On failure the
/// error's [`within`](SyntaxError::within) says which of the two was attempted.
pub fn validate_at_identifier(s: &str) -> Result<(), SyntaxError> {
    let res = if s.starts_with("did:") {
        validate_did(s)
    } else {
        validate_handle(s)
    };
    res.map_err(|e| e.inside(SyntaxKind::AtIdentifier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches() {
        assert_eq!(validate_at_identifier("did:plc:abc"), Ok(()));
        assert_eq!(validate_at_identifier("alice.test"), Ok(()));
        let e = validate_at_identifier("did:method:").unwrap_err();
        assert_eq!(e.kind(), SyntaxKind::AtIdentifier);
        assert_eq!(e.within(), Some(SyntaxKind::Did));
        let e = validate_at_identifier("DID:method:val").unwrap_err();
        assert_eq!(e.within(), Some(SyntaxKind::Handle));
    }
}
