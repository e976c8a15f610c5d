//! NSID syntax: a reversed-domain authority plus a name, e.g. `app.bsky.feed.post`.
//!
//! The atproto rule is the regex
//! `^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+(\.[a-zA-Z][a-zA-Z0-9]{0,62})$`
//! with at most 317 characters in total:
//! - at least three dot-separated segments, each 1–63 characters;
//! - authority segments are letters, digits and hyphens, not starting or ending with a
//!   hyphen; the first may not start with a digit (later ones may, as in domains);
//! - the last segment (the name) is letters and digits only and starts with a letter.
//!
//! The authority is case-insensitive (normalized to lower case); the name is
//! case-sensitive. The reference implementations and the interop vectors do not cap
//! the authority separately at 253 characters, so neither does this.

use super::error::{SyntaxError, SyntaxKind};

/// Longest NSID accepted, in bytes: a 253-character domain, a dot and a 63-character name.
pub const MAX_NSID_LEN: usize = 253 + 1 + 63;

/// Longest segment, in bytes (a DNS label).
const MAX_SEGMENT_LEN: usize = 63;

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::Nsid, reason)
}

/// Checks NSID syntax (see the module documentation for the rule).
pub fn validate_nsid(s: &str) -> Result<(), SyntaxError> {
    let b = s.as_bytes();
    if b.len() > MAX_NSID_LEN {
        return Err(err("longer than 317 characters"));
    }
    if b.is_empty() {
        return Err(err("empty"));
    }
    let mut segments = 0usize;
    let mut seg_start = 0usize;
    let mut seg_has_hyphen = false;
    for i in 0..=b.len() {
        let c = b.get(i).copied();
        match c {
            Some(b'.') | None => {
                let seg = &b[seg_start..i];
                let (Some(&first), Some(&last)) = (seg.first(), seg.last()) else {
                    return Err(err("empty segment (leading, trailing or double dot)"));
                };
                if seg.len() > MAX_SEGMENT_LEN {
                    return Err(err("segment longer than 63 characters"));
                }
                segments += 1;
                if c.is_none() {
                    // the name segment
                    if segments < 3 {
                        return Err(err("needs at least three segments"));
                    }
                    if !first.is_ascii_alphabetic() {
                        return Err(err("name segment must start with a letter"));
                    }
                    if seg_has_hyphen {
                        return Err(err("name segment may only contain letters and digits"));
                    }
                } else {
                    if first == b'-' || last == b'-' {
                        return Err(err("segment starts or ends with a hyphen"));
                    }
                    if segments == 1 && first.is_ascii_digit() {
                        return Err(err("first segment starts with a digit"));
                    }
                }
                seg_start = i + 1;
                seg_has_hyphen = false;
            }
            Some(b'-') => seg_has_hyphen = true,
            Some(c) if c.is_ascii_alphanumeric() => {}
            Some(_) => {
                return Err(err(
                    "may only contain ASCII letters, digits, hyphens and dots",
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts() {
        for ok in [
            "app.bsky.feed.post",
            "com.example.fooBarV2",
            "a.0.c",
            "cn.8.lex.stuff",
            "one.two.three.four-and.FiVe",
        ] {
            assert_eq!(validate_nsid(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn reasons() {
        let cases = [
            ("", "empty"),
            ("com.example", "needs at least three segments"),
            (
                "com.example.fooBar.2",
                "name segment must start with a letter",
            ),
            (
                "a-0.b-1.c-o",
                "name segment may only contain letters and digits",
            ),
            ("com.example-.foo", "segment starts or ends with a hyphen"),
            ("0two.example.foo", "first segment starts with a digit"),
            (
                "one.two..three",
                "empty segment (leading, trailing or double dot)",
            ),
            ("a.b.", "empty segment (leading, trailing or double dot)"),
            (
                "com.atproto.feed.p_st",
                "may only contain ASCII letters, digits, hyphens and dots",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_nsid(input).map_err(|e| e.reason()),
                Err(reason),
                "{input}"
            );
        }
        let long_name = format!("com.example.{}", "o".repeat(64));
        assert!(validate_nsid(&long_name).is_err());
        let ok_name = format!("com.example.{}", "o".repeat(63));
        assert_eq!(validate_nsid(&ok_name), Ok(()));
    }
}
