//! DID syntax: `did:<method>:<method-specific id>`.
//!
//! The atproto rule is the regex `^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$` plus a
//! 2048-character cap. It is a syntax check for any DID method: which methods
//! atproto supports (`plc`, `web`) is decided elsewhere. Percent escapes are not
//! decoded or checked beyond the character set, as in the reference
//! implementations.

use super::error::{SyntaxError, SyntaxKind};

/// Longest DID accepted, in bytes (the atproto limit; real DIDs are far shorter).
pub const MAX_DID_LEN: usize = 2048;

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::Did, reason)
}

/// Characters allowed in the method-specific identifier.
#[inline]
fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'%' | b'-')
}

/// Checks DID syntax: the `did:` prefix (lower case), a method of one or more
/// lower-case ASCII letters, then a non-empty identifier over `A-Za-z0-9._:%-` that
/// does not end in `:` or `%`; at most [`MAX_DID_LEN`] bytes. DIDs are
/// case-sensitive, so `DID:…` or an upper-case method is rejected, not normalized.
pub fn validate_did(s: &str) -> Result<(), SyntaxError> {
    let b = s.as_bytes();
    if b.len() > MAX_DID_LEN {
        return Err(err("longer than 2048 characters"));
    }
    let Some(rest) = b.strip_prefix(b"did:") else {
        return Err(err("must start with \"did:\""));
    };
    let method_len = rest
        .iter()
        .position(|&c| !c.is_ascii_lowercase())
        .unwrap_or(rest.len());
    if method_len == 0 {
        return Err(err("method is empty or not lower-case letters"));
    }
    let id = match rest.get(method_len) {
        Some(b':') => &rest[method_len + 1..],
        Some(_) => return Err(err("method must be lower-case letters followed by ':'")),
        None => return Err(err("missing ':' and identifier after the method")),
    };
    let Some(&last) = id.last() else {
        return Err(err("method-specific identifier is empty"));
    };
    if !id.iter().all(|&c| is_id_char(c)) {
        return Err(err(
            "identifier may only contain ASCII letters, digits and . _ : % -",
        ));
    }
    if matches!(last, b':' | b'%') {
        return Err(err("must not end with ':' or '%'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_atproto_dids() {
        for ok in [
            "did:plc:7iza6de2dwap2sbkpav7c6c6",
            "did:web:example.com",
            "did:web:localhost%3A1234",
            "did:m:v",
            "did:method::::val",
            "did:method:-:_:.:%ab",
        ] {
            assert_eq!(validate_did(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_reasons() {
        let cases = [
            ("did", "must start with \"did:\""),
            ("DID:method:val", "must start with \"did:\""),
            (
                "did:METHOD:val",
                "method is empty or not lower-case letters",
            ),
            (
                "did:m123:val",
                "method must be lower-case letters followed by ':'",
            ),
            ("did:method", "missing ':' and identifier after the method"),
            ("did:method:", "method-specific identifier is empty"),
            ("did:method:val:", "must not end with ':' or '%'"),
            ("did:method:val%", "must not end with ':' or '%'"),
            (
                "did:method:val/two",
                "identifier may only contain ASCII letters, digits and . _ : % -",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_did(input).map_err(|e| e.reason()),
                Err(reason),
                "{input}"
            );
        }
        let long = format!("did:plc:{}", "a".repeat(MAX_DID_LEN));
        assert!(validate_did(&long).is_err());
        let max = format!("did:plc:{}", "a".repeat(MAX_DID_LEN - 8));
        assert_eq!(validate_did(&max), Ok(()));
    }
}
