//! AT URI syntax, in the restricted form Lexicon's `at-uri` format uses:
//! `at://<DID or handle>[/<collection NSID>[/<record key>]]`.
//!
//! No query, no fragment, no empty segments, no trailing slash, no more than two
//! path segments, and at most 8 KiB. Each component must pass its own validator, so
//! percent-escapes are effectively rejected in the path (neither NSIDs nor record
//! keys allow `%`). The general AT URI grammar allows more (queries, JSON-pointer
//! fragments), but nothing atproto exchanges today uses it.

use super::at_identifier::validate_at_identifier;
use super::error::{SyntaxError, SyntaxKind};
use super::nsid::validate_nsid;
use super::record_key::validate_record_key;

/// Longest AT URI accepted, in bytes.
pub const MAX_AT_URI_LEN: usize = 8192;

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::AtUri, reason)
}

/// The components of a valid AT URI, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtUriParts<'a> {
    /// The account: a DID or a handle, exactly as written (not normalized).
    pub authority: &'a str,
    /// The collection NSID, if the URI has a path.
    pub collection: Option<&'a str>,
    /// The record key, if the URI names a record (only present with a collection).
    pub rkey: Option<&'a str>,
}

/// Validates an AT URI and splits it into its components (see the module
/// documentation for the rule).
pub fn parse_at_uri(s: &str) -> Result<AtUriParts<'_>, SyntaxError> {
    if s.len() > MAX_AT_URI_LEN {
        return Err(err("longer than 8192 characters"));
    }
    let Some(rest) = s.strip_prefix("at://") else {
        return Err(err("must start with \"at://\""));
    };
    if rest.bytes().any(|b| b == b'?' || b == b'#') {
        return Err(err("query and fragment parts are not allowed"));
    }
    let mut segments = rest.split('/');
    // `split` always yields at least one item; an absent one reads as empty.
    let authority = segments.next().unwrap_or("");
    let collection = segments.next();
    let rkey = segments.next();
    if segments.next().is_some() {
        return Err(err("more than two path segments"));
    }
    if authority.is_empty() {
        return Err(err("authority is empty"));
    }
    validate_at_identifier(authority).map_err(|e| e.inside(SyntaxKind::AtUri))?;
    if let Some(c) = collection {
        if c.is_empty() {
            return Err(err("empty path segment or trailing slash"));
        }
        validate_nsid(c).map_err(|e| e.inside(SyntaxKind::AtUri))?;
    }
    if let Some(k) = rkey {
        if k.is_empty() {
            return Err(err("empty path segment or trailing slash"));
        }
        validate_record_key(k).map_err(|e| e.inside(SyntaxKind::AtUri))?;
    }
    Ok(AtUriParts {
        authority,
        collection,
        rkey,
    })
}

/// Checks AT URI syntax (see the module documentation for the rule).
pub fn validate_at_uri(s: &str) -> Result<(), SyntaxError> {
    parse_at_uri(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        let p = parse_at_uri("at://did:plc:asdf123/app.bsky.feed.post/3jzfcijpj2z2a").unwrap();
        assert_eq!(
            p,
            AtUriParts {
                authority: "did:plc:asdf123",
                collection: Some("app.bsky.feed.post"),
                rkey: Some("3jzfcijpj2z2a"),
            }
        );
        let p = parse_at_uri("at://alice.test").unwrap();
        assert_eq!((p.collection, p.rkey), (None, None));
    }

    #[test]
    fn reasons() {
        let cases = [
            ("AT://did:plc:a", "must start with \"at://\""),
            (
                "at://did:plc:a#/frag",
                "query and fragment parts are not allowed",
            ),
            ("at://did:plc:a/", "empty path segment or trailing slash"),
            (
                "at://did:plc:a/a.b.c/",
                "empty path segment or trailing slash",
            ),
            ("at://did:plc:a/a.b.c/k/x", "more than two path segments"),
            ("at:///a.b.c", "authority is empty"),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_at_uri(input).map_err(|e| e.reason()),
                Err(reason),
                "{input}"
            );
        }
        let e = validate_at_uri("at://did:plc:a/com.example.foo_bar").unwrap_err();
        assert_eq!(
            (e.kind(), e.within()),
            (SyntaxKind::AtUri, Some(SyntaxKind::Nsid))
        );
        let e = validate_at_uri("at://did:plc:a/a.b.c/..").unwrap_err();
        assert_eq!(e.within(), Some(SyntaxKind::RecordKey));
        let e = validate_at_uri("at://name").unwrap_err();
        assert_eq!(e.within(), Some(SyntaxKind::Handle));
    }
}
