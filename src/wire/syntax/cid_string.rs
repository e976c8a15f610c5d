//! CID string syntax, as Lexicon's `cid` format checks it: a cheap shape test for
//! pass-through values, not a decode.
//!
//! Rule (as in the reference Go implementation): 8–256 characters from
//! `A-Za-z0-9+=` (which covers the multibase alphabets in use), and not a legacy
//! CIDv0 (base58 `Qm…`), which atproto does not allow. To actually use a CID, parse
//! it with the CID module, which checks the multibase, version, codec and hash.

use super::error::{SyntaxError, SyntaxKind};

/// Shortest CID string accepted.
pub const MIN_CID_STRING_LEN: usize = 8;
/// Longest CID string accepted.
pub const MAX_CID_STRING_LEN: usize = 256;

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::Cid, reason)
}

/// Checks CID string syntax (see the module documentation for the rule).
pub fn validate_cid_string(s: &str) -> Result<(), SyntaxError> {
    let b = s.as_bytes();
    if b.len() < MIN_CID_STRING_LEN {
        return Err(err("shorter than 8 characters"));
    }
    if b.len() > MAX_CID_STRING_LEN {
        return Err(err("longer than 256 characters"));
    }
    if !b
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'=')
    {
        return Err(err("may only contain ASCII letters, digits, '+' and '='"));
    }
    // Every CIDv0 string is base58btc of 0x12 0x20 …, which always begins "Qm";
    // no multibase prefix is 'Q', so no CIDv1 string starts that way.
    if b.starts_with(b"Qm") {
        return Err(err("CIDv0 is not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(
            validate_cid_string("bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"),
            Ok(())
        );
        let cases = [
            ("noop", "shorter than 8 characters"),
            (
                "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR",
                "CIDv0 is not allowed",
            ),
            (
                "cid:bafyreigbtj4x7ip5",
                "may only contain ASCII letters, digits, '+' and '='",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_cid_string(input).map_err(|e| e.reason()),
                Err(reason)
            );
        }
        assert!(validate_cid_string(&"b".repeat(257)).is_err());
    }
}
