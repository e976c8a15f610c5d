//! TID string syntax: 13 characters of base32-sortable, as the spec's regex
//! `^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$` states.
//!
//! This is the syntax check Lexicon's `tid` format and record keys of type `tid`
//! use. The spec regex lets the first character reach `j`, which would set the
//! 64th bit the spec says is always zero; [`crate::wire::tid::Tid::parse`] refuses
//! those (first character `c`–`j`) because a [`Tid`](crate::wire::tid::Tid) value
//! keeps that bit clear.

use super::error::{SyntaxError, SyntaxKind};

/// Length of every TID string.
pub const TID_LEN: usize = 13;

/// Whether `b` is in the base32-sortable alphabet `234567abcdefghijklmnopqrstuvwxyz`.
#[inline]
pub(crate) fn is_base32_sortable(b: u8) -> bool {
    matches!(b, b'2'..=b'7' | b'a'..=b'z')
}

/// Checks TID syntax (see the module documentation for the rule). Case-sensitive:
/// upper-case letters are not base32-sortable. The legacy dashed form
/// (`3jzf-cij-pj2z-2a`) is invalid.
pub fn validate_tid(s: &str) -> Result<(), SyntaxError> {
    let b = s.as_bytes();
    if b.len() != TID_LEN {
        return Err(SyntaxError::new(
            SyntaxKind::Tid,
            "must be exactly 13 characters",
        ));
    }
    if !b.iter().all(|&c| is_base32_sortable(c)) {
        return Err(SyntaxError::new(
            SyntaxKind::Tid,
            "may only contain the base32-sortable characters 234567a-z",
        ));
    }
    if b[0] > b'j' {
        return Err(SyntaxError::new(
            SyntaxKind::Tid,
            "first character must be one of 234567abcdefghij (top bit set)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for ok in ["3jzfcijpj2z2a", "2222222222222", "jzzzzzzzzzzzz"] {
            assert_eq!(validate_tid(ok), Ok(()), "{ok}");
        }
        for bad in [
            "3jzfcijpj2z2",
            "3jzfcijpj2z2aa",
            "3JZFCIJPJ2Z2A",
            "3jzfcijpj2z21",
            "kjzfcijpj2z2a",
        ] {
            assert!(validate_tid(bad).is_err(), "{bad}");
        }
    }
}
