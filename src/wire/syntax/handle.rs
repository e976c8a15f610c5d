//! Handle syntax: a DNS hostname used as a human-readable account name.
//!
//! The atproto rule is the regex
//! `^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`
//! with at most 253 characters: at least two labels of 1–63 ASCII letters, digits and
//! hyphens, no label starting or ending with a hyphen, and a TLD that starts with a
//! letter (so IPv4 addresses are never handles). Punycode (`xn--`) is accepted as is.
//! Handles are case-insensitive; compare them after [`normalize_handle`].

use super::error::{SyntaxError, SyntaxKind};

/// Longest handle accepted, in bytes (the DNS name limit).
pub const MAX_HANDLE_LEN: usize = 253;

/// Longest DNS label, in bytes.
const MAX_LABEL_LEN: usize = 63;

/// The sentinel handle a service shows for an account whose handle does not verify.
/// It is syntactically valid but under a disallowed TLD, so no one can own it.
pub const INVALID_HANDLE: &str = "handle.invalid";

/// TLDs reserved by IANA or special-use registries that no account may use
/// (`.test` is left out: it is allowed for development).
pub const DISALLOWED_TLDS: [&str; 8] = [
    "alt",
    "arpa",
    "example",
    "internal",
    "invalid",
    "local",
    "localhost",
    "onion",
];

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::Handle, reason)
}

/// Checks handle syntax (see the module documentation for the rule). Accepts any
/// case; it does not check the TLD against [`DISALLOWED_TLDS`], which is a
/// registration and resolution policy, not syntax (see
/// [`is_disallowed_handle_tld`]).
pub fn validate_handle(s: &str) -> Result<(), SyntaxError> {
    let b = s.as_bytes();
    if b.len() > MAX_HANDLE_LEN {
        return Err(err("longer than 253 characters"));
    }
    if b.is_empty() {
        return Err(err("empty"));
    }
    let mut labels = 0usize;
    let mut label_start = 0usize;
    // One pass; a label ends at each '.' and at the end of input.
    for i in 0..=b.len() {
        let c = b.get(i).copied();
        match c {
            Some(b'.') | None => {
                let label = &b[label_start..i];
                let (Some(&first), Some(&last)) = (label.first(), label.last()) else {
                    return Err(err("empty label (leading, trailing or double dot)"));
                };
                if label.len() > MAX_LABEL_LEN {
                    return Err(err("label longer than 63 characters"));
                }
                if first == b'-' || last == b'-' {
                    return Err(err("label starts or ends with a hyphen"));
                }
                labels += 1;
                if c.is_none() {
                    if labels < 2 {
                        return Err(err("needs at least two labels"));
                    }
                    if !first.is_ascii_alphabetic() {
                        return Err(err("top-level domain must start with a letter"));
                    }
                }
                label_start = i + 1;
            }
            Some(c) if c.is_ascii_alphanumeric() || c == b'-' => {}
            Some(_) => {
                return Err(err(
                    "may only contain ASCII letters, digits, hyphens and dots",
                ))
            }
        }
    }
    Ok(())
}

/// The canonical form of a handle: ASCII lower case. Handles compare equal when
/// their normalized forms are equal; store and emit the normalized form.
pub fn normalize_handle(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Whether the handle's top-level domain is one that can never be a real account:
/// `.alt .arpa .example .internal .invalid .local .localhost .onion` (compared
/// case-insensitively). Such handles pass [`validate_handle`] but must not be
/// registered or trusted as resolved; [`INVALID_HANDLE`] is the sentinel for "no
/// verified handle" and is itself under a disallowed TLD. A string without a dot has
/// no TLD and returns `false`.
pub fn is_disallowed_handle_tld(handle: &str) -> bool {
    match handle.rsplit_once('.') {
        Some((_, tld)) => DISALLOWED_TLDS.iter().any(|d| d.eq_ignore_ascii_case(tld)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let cases = [
            ("", "empty"),
            ("john", "needs at least two labels"),
            (
                "john..test",
                "empty label (leading, trailing or double dot)",
            ),
            (
                "john.test.",
                "empty label (leading, trailing or double dot)",
            ),
            ("john.0", "top-level domain must start with a letter"),
            ("-john.test", "label starts or ends with a hyphen"),
            (
                "jo_hn.test",
                "may only contain ASCII letters, digits, hyphens and dots",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_handle(input).map_err(|e| e.reason()),
                Err(reason),
                "{input}"
            );
        }
        assert_eq!(validate_handle("XX.LCS.MIT.EDU"), Ok(()));
        assert_eq!(validate_handle(INVALID_HANDLE), Ok(()));
    }

    #[test]
    fn label_and_total_limits() {
        let label63 = format!("a.{}.test", "o".repeat(63));
        assert_eq!(validate_handle(&label63), Ok(()));
        let label64 = format!("a.{}.test", "o".repeat(64));
        assert!(validate_handle(&label64).is_err());
        // 63 + 63 + 63 + 61 + 3 dots = 253
        let max = [
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(61),
        ]
        .join(".");
        assert_eq!(max.len(), 253);
        assert_eq!(validate_handle(&max), Ok(()));
        assert!(validate_handle(&format!("a{max}")).is_err());
    }

    #[test]
    fn normalization_and_tlds() {
        assert_eq!(normalize_handle("Alice.Bsky.Social"), "alice.bsky.social");
        assert!(is_disallowed_handle_tld(INVALID_HANDLE));
        assert!(is_disallowed_handle_tld("laptop.LOCAL"));
        assert!(is_disallowed_handle_tld("x.onion"));
        assert!(!is_disallowed_handle_tld("alice.test"));
        assert!(!is_disallowed_handle_tld("notlocal.com"));
        assert!(!is_disallowed_handle_tld("local"));
        assert!(!is_disallowed_handle_tld("alice.locals"));
    }
}
