//! Record key syntax: the second half of a repo path, naming one record in a
//! collection.
//!
//! The atproto rule: 1–512 characters from `A-Za-z0-9 . - _ : ~`, and not `.` or `..`
//! (which would be path traversal). Record keys are case-sensitive. Per-collection
//! key types (`tid`, `nsid`, `literal:…`, `any`) are Lexicon rules layered on top.

use super::error::{SyntaxError, SyntaxKind};

/// Longest record key accepted, in bytes.
pub const MAX_RECORD_KEY_LEN: usize = 512;

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::RecordKey, reason)
}

/// Whether `b` may appear in a record key.
#[inline]
fn is_record_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'~')
}

/// Checks record key syntax (see the module documentation for the rule).
pub fn validate_record_key(s: &str) -> Result<(), SyntaxError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(err("empty"));
    }
    if b.len() > MAX_RECORD_KEY_LEN {
        return Err(err("longer than 512 characters"));
    }
    if !b.iter().all(|&c| is_record_key_char(c)) {
        return Err(err("may only contain ASCII letters, digits and . - _ : ~"));
    }
    if b == b"." || b == b".." {
        return Err(err("must not be \".\" or \"..\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for ok in [
            "self",
            "3jzfcijpj2z2a",
            "literal:self",
            ":",
            "...",
            "~1.2-3_",
        ] {
            assert_eq!(validate_record_key(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "empty"),
            (".", "must not be \".\" or \"..\""),
            ("..", "must not be \".\" or \"..\""),
            (
                "alpha/beta",
                "may only contain ASCII letters, digits and . - _ : ~",
            ),
            (
                "dHJ1ZQ==",
                "may only contain ASCII letters, digits and . - _ : ~",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_record_key(input).map_err(|e| e.reason()),
                Err(reason),
                "{input}"
            );
        }
        assert_eq!(validate_record_key(&"o".repeat(512)), Ok(()));
        assert!(validate_record_key(&"o".repeat(513)).is_err());
    }
}
