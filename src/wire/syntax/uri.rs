//! Generic URI syntax, as Lexicon's `uri` format checks it: a permissive shape test
//! for pass-through values, not a URI parser.
//!
//! Rule: at most 8 KiB; an RFC 3986 scheme (a letter, then letters, digits, `+`, `-`,
//! `.`), a `:`, then at least one more character, every character being printable
//! non-space ASCII. (The reference Go implementation limits schemes to lower-case
//! letters, `.` and `-`; RFC 3986 allows more and nothing in atproto needs the
//! narrower set.)

use super::error::{SyntaxError, SyntaxKind};

/// Longest URI accepted, in bytes.
pub const MAX_URI_LEN: usize = 8192;

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::Uri, reason)
}

/// Checks URI syntax (see the module documentation for the rule).
pub fn validate_uri(s: &str) -> Result<(), SyntaxError> {
    let b = s.as_bytes();
    if b.len() > MAX_URI_LEN {
        return Err(err("longer than 8192 characters"));
    }
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() => {}
        Some(_) => return Err(err("scheme must start with a letter")),
        None => return Err(err("empty")),
    }
    let Some(colon) = b.iter().position(|&c| c == b':') else {
        return Err(err("missing ':' after the scheme"));
    };
    if !b[..colon]
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return Err(err(
            "scheme may only contain letters, digits, '+', '-' and '.'",
        ));
    }
    let rest = &b[colon + 1..];
    if rest.is_empty() {
        return Err(err("nothing after the scheme"));
    }
    if !rest.iter().all(|c| c.is_ascii_graphic()) {
        return Err(err("may only contain printable ASCII without spaces"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for ok in [
            "https://example.com/path?q=1#f",
            "at://did:plc:abc/app.bsky.feed.post/x",
            "did:key:zQ3sh",
            "microsoft.windows.camera:thing",
            "git+ssh://host/repo",
        ] {
            assert_eq!(validate_uri(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "empty"),
            ("example.com", "missing ':' after the scheme"),
            ("http:", "nothing after the scheme"),
            ("://x", "scheme must start with a letter"),
            ("-http://x", "scheme must start with a letter"),
            (
                "a b:c",
                "scheme may only contain letters, digits, '+', '-' and '.'",
            ),
            (
                "https://x/a b",
                "may only contain printable ASCII without spaces",
            ),
            (
                "https://x/é",
                "may only contain printable ASCII without spaces",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_uri(input).map_err(|e| e.reason()),
                Err(reason),
                "{input}"
            );
        }
    }
}
