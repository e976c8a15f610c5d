//! Hostnames and domain suffixes as the operator's lists name them (the
//! allowlist, bans, trusted suffixes, PDS mode's handle domains).
//!
//! Allowlist entries, bans and trusted suffixes are domains: an entry
//! `example.com` covers `example.com` and every `*.example.com`, on any port.
//! An entry with a port (`127.0.0.1:2583`) covers exactly that host and port.
//! Comparison is on lower-case names, so `PDS.Example.com` cannot dodge a ban.

use super::host::{host_part, HostName, HostNameError};

/// Lower-cases and checks an allowlist/ban entry: a DNS name (at least two
/// labels), `localhost`, or an IP address, optionally with a port; no scheme,
/// path or wildcard (a plain domain already covers its subdomains). Parsed
/// as a [`HostName`], so an entry names a host exactly as requestCrawl and
/// the admin API do: an entry with a (non-default) port is that host's
/// canonical spelling, one without is the bare host, matched as a suffix.
pub fn normalize_domain(raw: &str) -> Result<String, HostNameError> {
    let trimmed = raw.trim();
    let entry = trimmed.strip_prefix("*.").unwrap_or(trimmed);
    let host = HostName::parse(entry)?;
    Ok(match host.explicit_port() {
        Some(_) => host.as_str().to_owned(),
        None => host.host_str(),
    })
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
