//! Hostnames and domain suffixes as the control plane compares them.
//!
//! Allowlist entries, bans and trusted suffixes are domains: an entry
//! `example.com` covers `example.com` and every `*.example.com`, on any port.
//! An entry with a port (`127.0.0.1:2583`) covers exactly that host and port.
//! Comparison is on lower-case names, so `PDS.Example.com` cannot dodge a ban.

use crate::relay::crawler::host_part;
use crate::wire::syntax::validate_handle;

/// Lower-cases and checks an allowlist/ban entry: a DNS name (at least two
/// labels), `localhost`, or an IP address, optionally with a port; no scheme,
/// path or wildcard (a plain domain already covers its subdomains).
pub fn normalize_domain(raw: &str) -> Result<String, String> {
    let entry = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let entry = entry.strip_prefix("*.").unwrap_or(&entry).to_owned();
    if entry.is_empty()
        || entry.contains("://")
        || entry.contains('/')
        || entry.contains('@')
        || entry.contains('?')
    {
        return Err(format!("{raw:?}: expected a bare host or domain"));
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (entry.as_str(), None),
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(format!("{raw:?}: invalid port"));
    }
    let ok = host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok()
        || validate_handle(host).is_ok();
    if !ok {
        return Err(format!("{raw:?} is not a hostname or domain"));
    }
    Ok(entry)
}

/// Whether `entry` (normalized) covers `hostname` (`host[:port]`, lower-case).
pub fn covers(entry: &str, hostname: &str) -> bool {
    if entry == hostname {
        return true;
    }
    if entry.contains(':') && !entry.starts_with('[') && entry.parse::<std::net::IpAddr>().is_err()
    {
        // host:port entries match only exactly.
        return false;
    }
    let host = host_part(hostname);
    host == entry
        || (host.len() > entry.len()
            && host.ends_with(entry)
            && host.as_bytes()[host.len() - entry.len() - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_normalize() {
        assert_eq!(normalize_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize_domain("*.example.com").unwrap(), "example.com");
        assert_eq!(
            normalize_domain("127.0.0.1:2583").unwrap(),
            "127.0.0.1:2583"
        );
        for bad in [
            "",
            "https://x.com",
            "x.com/a",
            "nodot",
            "x.com:0",
            "a@b.com",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suffixes_cover_subdomains_on_label_boundaries() {
        assert!(covers("example.com", "example.com"));
        assert!(covers("example.com", "pds.example.com"));
        assert!(covers("example.com", "pds.example.com:8443"));
        assert!(!covers("example.com", "badexample.com"));
        assert!(!covers("pds.example.com", "example.com"));
        assert!(covers("127.0.0.1:2583", "127.0.0.1:2583"));
        assert!(!covers("127.0.0.1:2583", "127.0.0.1:2584"));
        assert!(covers("127.0.0.1", "127.0.0.1:2584"));
    }
}
