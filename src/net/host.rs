//! [`HostName`]: the one spelling of an upstream host.
//!
//! A host reaches the relay by `requestCrawl`, the admin API, the config's
//! crawl list and allowlist, and the `#atproto_pds` endpoint of every DID
//! document; the relay compares those spellings to decide which host an
//! account belongs to (digest §2.6), keys its per-host state and budgets by
//! them, and bans by them. Two spellings of one host must therefore be one
//! key, or a host registered again as `127.0.0.1:042181` or `PDS.Example.com.`
//! gets a second crawler, a second budget and its events judged as coming
//! from the wrong host. Every entry point parses through [`HostName::parse`]
//! (or [`HostName::from_url`] for endpoints), which refuses what is not a
//! host and returns the canonical form:
//!
//! - DNS names lower-cased, one trailing dot dropped, checked against the
//!   handle syntax (at least two labels); `localhost` allowed;
//! - IPv4 literals in dotted-quad form only; IPv6 literals compressed and
//!   written in brackets; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
//!   the IPv4 address it maps;
//! - a port written as a plain decimal (no sign; leading zeros are read and
//!   dropped, so `:042181` is `:42181`), dropped
//!   when it is the port the relay would dial anyway: 443 (`wss`/`https`)
//!   for public names, 80 (`ws`/`http`) for this machine's or a private
//!   network's literals, which are only ever dialed in the clear.
//!
//! ```
//! use atrelay::net::HostName;
//! let h = HostName::parse("PDS.Example.com.:443").unwrap();
//! assert_eq!(h.as_str(), "pds.example.com");
//! assert_eq!(HostName::parse("[::1]:2583").unwrap().as_str(), "[::1]:2583");
//! assert_eq!(HostName::parse("[::ffff:127.0.0.1]:80").unwrap().as_str(), "127.0.0.1");
//! assert_eq!(HostName::parse("127.0.0.1:042181").unwrap().as_str(), "127.0.0.1:42181");
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use super::private::is_private_ip;
use crate::wire::syntax::validate_handle;

/// Why a string is not a host name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostNameError {
    #[error("empty host name")]
    Empty,
    #[error("{0:?}: expected a bare host[:port], without scheme, path, user or query")]
    NotBare(String),
    #[error("{0:?} is not a DNS name (at least two labels), localhost, or an IP address")]
    BadHost(String),
    #[error("{0:?}: the port must be a decimal number from 1 to 65535")]
    BadPort(String),
}

/// The host part of a [`HostName`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Host {
    /// A DNS name (or `localhost`), lower-case, without a trailing dot.
    Domain(Arc<str>),
    /// An IP literal (an IPv4-mapped IPv6 address is stored as its IPv4).
    Ip(IpAddr),
}

/// A host and optional port in canonical form (see the module docs).
/// Compare and hash by [`HostName::as_str`]; cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HostName {
    canonical: Arc<str>,
    host: Host,
    /// The port, only when it is not the default one for this host.
    port: Option<u16>,
}

impl HostName {
    /// Parses `host[:port]`, `[v6]:port` or a bare IPv6 address, as an
    /// operator or a `requestCrawl` caller writes it.
    pub fn parse(raw: &str) -> Result<HostName, HostNameError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(HostNameError::Empty);
        }
        if s.bytes()
            .any(|b| matches!(b, b'/' | b'\\' | b'@' | b'?' | b'#' | b'%') || !b.is_ascii_graphic())
        {
            return Err(HostNameError::NotBare(raw.to_owned()));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest
                .split_once(']')
                .ok_or_else(|| HostNameError::BadHost(raw.to_owned()))?;
            let ip: Ipv6Addr = v6
                .parse()
                .map_err(|_| HostNameError::BadHost(raw.to_owned()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| HostNameError::BadHost(raw.to_owned()))?,
                ),
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 address: no port can follow without brackets.
            let ip: Ipv6Addr = s
                .parse()
                .map_err(|_| HostNameError::BadHost(raw.to_owned()))?;
            (Host::Ip(IpAddr::V6(ip)), None)
        } else {
            let (name, port) = match s.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (s, None),
            };
            (
                parse_host(name).ok_or_else(|| HostNameError::BadHost(raw.to_owned()))?,
                port,
            )
        };
        let port = port
            .map(|p| parse_port(p).ok_or_else(|| HostNameError::BadPort(raw.to_owned())))
            .transpose()?;
        Ok(HostName::new(host, port))
    }

    /// The host of an `http(s)://host[:port]` URL: the host of a DID
    /// document's PDS endpoint. The port is the URL's explicit one, or none
    /// when it is the default of the URL's scheme.
    pub fn from_url(url: &reqwest::Url) -> Option<HostName> {
        let h = url.host_str()?;
        let host = match h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(v6) => Host::Ip(IpAddr::V6(v6.parse().ok()?)),
            None => parse_host(h)?,
        };
        Some(HostName::new(host, url.port()))
    }

    fn new(host: Host, port: Option<u16>) -> HostName {
        let host = match host {
            Host::Ip(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Host::Ip(IpAddr::V4(v4)),
                None => Host::Ip(IpAddr::V6(v6)),
            },
            other => other,
        };
        let port = port.filter(|&p| p != dial_port(&host));
        let canonical = match port {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        HostName {
            canonical: canonical.into(),
            host,
            port,
        }
    }

    /// The canonical spelling: what hosts are stored, compared and logged as.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The canonical spelling, shared.
    pub fn as_arc(&self) -> Arc<str> {
        self.canonical.clone()
    }

    /// The host as a resolver takes it: a DNS name, or an IP address
    /// without brackets.
    pub fn host_str(&self) -> String {
        match &self.host {
            Host::Domain(d) => d.to_string(),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// The port as written, when it is not the default one.
    pub fn explicit_port(&self) -> Option<u16> {
        self.port
    }

    /// The port to dial: the explicit one, else 80 for this machine's and
    /// private networks' literals and 443 for everything else.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| dial_port(&self.host))
    }

    /// Whether the name itself says it is this machine or a private network:
    /// `localhost`, `*.localhost`, or an address [`is_private_ip`] refuses.
    /// (A DNS name can still resolve to one; the resolver checks that.)
    pub fn is_local(&self) -> bool {
        is_local(&self.host)
    }

    /// `scheme://host[:port]` with `secure` choosing `https`/`wss` over
    /// `http`/`ws` (`ws` selects the websocket schemes).
    pub fn origin(&self, secure: bool, ws: bool) -> String {
        let scheme = match (ws, secure) {
            (true, true) => "wss",
            (true, false) => "ws",
            (false, true) => "https",
            (false, false) => "http",
        };
        // An explicit default-for-the-scheme port is harmless; an implicit
        // one must be written when the scheme's default differs from ours.
        let host = &self.host;
        let scheme_default = if secure { 443 } else { 80 };
        match self.port() {
            p if p == scheme_default => format!("{scheme}://{host}"),
            p => format!("{scheme}://{host}:{p}"),
        }
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostName({})", self.canonical)
    }
}

/// Serialized as its canonical spelling (admin API answers, logs).
impl serde::Serialize for HostName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical)
    }
}

/// The host of `hostname[:port]`, `[v6]:port` or a bare IPv6 address, as
/// written (no canonicalization): for matching names already canonical.
pub fn host_part(hostname: &str) -> &str {
    if let Some(rest) = hostname.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match hostname.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hostname,
    }
}

/// A DNS name, `localhost` or an IPv4 literal (IPv6 needs brackets or the
/// bare form, handled by the caller).
fn parse_host(name: &str) -> Option<Host> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    if name == "localhost" || validate_handle(&name).is_ok() {
        return Some(Host::Domain(name.into()));
    }
    None
}

/// Decimal digits only (leading zeros read as the number they spell, as URL
/// parsers do, and then never written), 1..=65535.
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&p| p > 0)
}

/// The port the relay dials when none is written: 80 (in the clear) for
/// this machine's and private networks' literals, 443 for the rest.
fn dial_port(host: &Host) -> u16 {
    if is_local(host) {
        80
    } else {
        443
    }
}

/// As in a URL: IPv6 in brackets.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
        }
    }
}

fn is_local(host: &Host) -> bool {
    match host {
        Host::Domain(d) => &**d == "localhost" || d.ends_with(".localhost"),
        Host::Ip(ip) => is_private_ip(*ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        HostName::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .as_str()
            .to_owned()
    }

    #[test]
    fn one_spelling_per_host() {
        for (raw, want) in [
            ("pds.example.com", "pds.example.com"),
            ("PDS.Example.COM.", "pds.example.com"),
            ("  pds.example.com  ", "pds.example.com"),
            ("pds.example.com:443", "pds.example.com"),
            ("pds.example.com:8443", "pds.example.com:8443"),
            ("pds.example.com:80", "pds.example.com:80"),
            ("127.0.0.1:2583", "127.0.0.1:2583"),
            ("127.0.0.1:80", "127.0.0.1"),
            ("127.0.0.1.", "127.0.0.1"),
            ("127.0.0.1:443", "127.0.0.1:443"),
            ("localhost:2583", "localhost:2583"),
            ("LOCALHOST:80", "localhost"),
            ("::1", "[::1]"),
            ("[::1]:2583", "[::1]:2583"),
            ("[0:0:0:0:0:0:0:1]:2583", "[::1]:2583"),
            ("[::FFFF:127.0.0.1]:2583", "127.0.0.1:2583"),
            ("[::ffff:7f00:1]:80", "127.0.0.1"),
            ("8.8.8.8:443", "8.8.8.8"),
            ("[2606:4700::1111]:443", "[2606:4700::1111]"),
        ] {
            assert_eq!(canon(raw), want, "{raw}");
        }
    }

    #[test]
    fn aliases_fold_into_one_spelling() {
        // The spellings hostile testing registered as new hosts.
        for alias in [
            "127.0.0.1:042181",
            "127.0.0.1:0042181",
            "127.0.0.1.:42181",
            "[::ffff:127.0.0.1]:42181",
        ] {
            assert_eq!(canon(alias), "127.0.0.1:42181", "{alias}");
        }
        assert_eq!(canon("pds.example.com:0443"), "pds.example.com");
        for bad in [
            "127.0.0.1:+2583",
            "127.0.0.1:-1",
            "127.0.0.1:00000000042181",
        ] {
            assert!(
                matches!(HostName::parse(bad), Err(HostNameError::BadPort(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn not_hosts() {
        for bad in [
            "",
            "https://pds.example.com",
            "pds.example.com/x",
            "a@b.com",
            "nodot",
            "pds.example.com:0",
            "pds.example.com:99999",
            "pds.example.com:",
            "[::1]",
            "[nope]:80",
            "[::1]x",
            "fe80::1%eth0",
            "pds example.com",
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "pds.example.com:80:80",
            "*.example.com",
        ] {
            let r = HostName::parse(bad);
            // "[::1]" without a port is a valid bracketed literal.
            if bad == "[::1]" {
                assert_eq!(r.unwrap().as_str(), "[::1]");
                continue;
            }
            assert!(r.is_err(), "{bad}: {r:?}");
        }
    }

    #[test]
    fn endpoints_and_urls() {
        for (url, want) in [
            ("https://PDS.example.com", "pds.example.com"),
            ("https://pds.example.com:443", "pds.example.com"),
            ("http://pds.example.com:443", "pds.example.com"),
            ("http://127.0.0.1:2583", "127.0.0.1:2583"),
            ("http://[::1]:2583", "[::1]:2583"),
            ("http://[::ffff:127.0.0.1]:2583", "127.0.0.1:2583"),
        ] {
            let host = HostName::from_url(&reqwest::Url::parse(url).unwrap());
            assert_eq!(host.map(|h| h.to_string()).as_deref(), Some(want), "{url}");
        }

        let h = HostName::parse("[::1]:2583").unwrap();
        assert_eq!(h.origin(false, true), "ws://[::1]:2583");
        assert_eq!(h.host_str(), "::1");
        let h = HostName::parse("pds.example.com").unwrap();
        assert_eq!(h.origin(true, true), "wss://pds.example.com");
        assert_eq!(h.port(), 443);
        let h = HostName::parse("127.0.0.1").unwrap();
        assert_eq!(h.origin(false, false), "http://127.0.0.1");
        assert_eq!(h.origin(true, false), "https://127.0.0.1:80");
        assert!(h.is_local());
    }

    #[test]
    fn host_parts() {
        assert_eq!(host_part("pds.example.com:8443"), "pds.example.com");
        assert_eq!(host_part("[::1]:2583"), "::1");
        assert_eq!(host_part("::1"), "::1");
    }
}
