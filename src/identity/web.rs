//! did:web: from the DID to the URL of its `/.well-known/did.json`.
//!
//! atproto allows only the host-only form (`did:web:<host>`, no path segments;
//! digest §6.1), with the handle rules for the host (at least two labels, a TLD
//! that starts with a letter and is not a reserved one). A port, written `%3A`, is
//! only for development, so it is accepted only for `localhost` and `127.0.0.1`.
//!
//! Policy decision: loopback hosts (`localhost`, `127.0.0.1`, with or without a
//! port) are resolved only when `allow_private` is set, and then over plain
//! `http://`. Without it they are [`ResolveError::Invalid`], so that a remote
//! account cannot make a production relay send requests to its own loopback
//! interface. Every other host is fetched over `https://` on the default port.

use super::error::ResolveError;
use crate::wire::syntax::{is_disallowed_handle_tld, validate_handle};

/// The method prefix of did:web DIDs.
pub const WEB_PREFIX: &str = "did:web:";

/// Loopback hosts accepted (with `allow_private`) for development and tests.
const LOOPBACK_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// The URL of `did`'s DID document: `https://<host>/.well-known/did.json`, or
/// `http://<loopback>[:port]/.well-known/did.json` when `allow_private` is set.
/// Fails with [`ResolveError::Invalid`] for paths, stray percent escapes, ports on
/// public hosts, invalid or reserved hostnames, and loopback without
/// `allow_private`.
pub fn did_web_url(did: &str, allow_private: bool) -> Result<String, ResolveError> {
    let id = did
        .strip_prefix(WEB_PREFIX)
        .ok_or_else(|| ResolveError::Invalid("not a did:web".into()))?;
    if id.contains(':') {
        return Err(ResolveError::Invalid(
            "did:web with a path is not supported by atproto".into(),
        ));
    }
    // The only escape allowed is the port separator.
    let (host, port) = match split_port(id) {
        Some((host, port)) => (host, Some(port)),
        None => (id, None),
    };
    if host.contains('%') {
        return Err(ResolveError::Invalid(
            "did:web may only percent-encode the port separator (%3A)".into(),
        ));
    }
    let host = host.to_ascii_lowercase();
    if LOOPBACK_HOSTS.contains(&host.as_str()) {
        if !allow_private {
            return Err(ResolveError::Invalid(
                "did:web on a loopback host is only resolved in development (allow_private)".into(),
            ));
        }
        return Ok(match port {
            Some(port) => format!("http://{host}:{}/.well-known/did.json", parse_port(port)?),
            None => format!("http://{host}/.well-known/did.json"),
        });
    }
    if port.is_some() {
        return Err(ResolveError::Invalid(
            "did:web ports are only allowed for localhost".into(),
        ));
    }
    if validate_handle(&host).is_err() {
        return Err(ResolveError::Invalid(
            "did:web host is not a valid hostname".into(),
        ));
    }
    if is_disallowed_handle_tld(&host) {
        return Err(ResolveError::Invalid(
            "did:web host has a reserved TLD".into(),
        ));
    }
    Ok(format!("https://{host}/.well-known/did.json"))
}

/// Splits `host%3Aport` (either case of the escape) at the first escape.
fn split_port(id: &str) -> Option<(&str, &str)> {
    let i = id.find("%3A").or_else(|| id.find("%3a"))?;
    Some((&id[..i], &id[i + 3..]))
}

/// A decimal port in 1..=65535 with no sign, spaces or leading zeros.
fn parse_port(port: &str) -> Result<u16, ResolveError> {
    let bad = || ResolveError::Invalid("did:web port is not a number in 1..=65535".into());
    if port.is_empty() || port.len() > 5 || port.starts_with('0') {
        return Err(bad());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_hosts() {
        assert_eq!(
            did_web_url("did:web:example.com", false).as_deref(),
            Ok("https://example.com/.well-known/did.json")
        );
        assert_eq!(
            did_web_url("did:web:PDS.Example.com", true).as_deref(),
            Ok("https://pds.example.com/.well-known/did.json")
        );
        for bad in [
            "did:web:example.com:user:alice",
            "did:web:example.com%3A8443",
            "did:web:example.com%2Fpath",
            "did:web:exa%6Dple.com",
            "did:web:com",
            "did:web:1.2.3.4",
            "did:web:10.0.0.1%3A80",
            "did:web:example.local",
            "did:web:foo.localhost",
            "did:web:-bad.com",
            "did:web:",
            "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
        ] {
            assert!(
                matches!(did_web_url(bad, true), Err(ResolveError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn loopback_needs_allow_private() {
        assert_eq!(
            did_web_url("did:web:127.0.0.1%3A2583", true).as_deref(),
            Ok("http://127.0.0.1:2583/.well-known/did.json")
        );
        assert_eq!(
            did_web_url("did:web:localhost%3a8080", true).as_deref(),
            Ok("http://localhost:8080/.well-known/did.json")
        );
        assert_eq!(
            did_web_url("did:web:localhost", true).as_deref(),
            Ok("http://localhost/.well-known/did.json")
        );
        for did in [
            "did:web:127.0.0.1%3A2583",
            "did:web:localhost%3A2583",
            "did:web:localhost",
        ] {
            assert!(matches!(
                did_web_url(did, false),
                Err(ResolveError::Invalid(_))
            ));
        }
        for bad in [
            "did:web:localhost%3A",
            "did:web:localhost%3A0",
            "did:web:localhost%3A080",
            "did:web:localhost%3A65536",
            "did:web:localhost%3A99999999",
            "did:web:localhost%3A+80",
            "did:web:localhost%3A80%3A81",
            "did:web:127.0.0.2%3A80",
        ] {
            assert!(
                matches!(did_web_url(bad, true), Err(ResolveError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
