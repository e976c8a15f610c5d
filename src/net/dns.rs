//! [`Dns`]: name resolution with the SSRF rule applied to the answers, for
//! every outbound connection the relay makes on a stranger's word: crawler
//! dials, `requestCrawl`'s probe, did:plc and did:web document fetches.
//!
//! Checking a name's addresses and then letting a library resolve it again
//! to connect leaves a window: DNS can answer differently the second time
//! (rebinding) and point the relay at its own network. So the answer that is
//! checked is the answer that is dialed: the crawler connects to the
//! addresses [`Dns::resolve`] returned, and the outbound HTTP client
//! ([`super::outbound`]) uses this resolver for every name it looks up.
//!
//! Private answers are refused unless the operator allowed private hosts
//! (development), or the name is one the operator configured (the PLC
//! directory's host: an operator may run one on a private address).
//!
//! Tests pin names to addresses ([`Dns::with_overrides`]): a public name
//! that resolves to loopback cannot otherwise be arranged on a test machine.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::metrics::{DNS_LOOKUPS, DNS_REFUSED};
use super::private::is_private_ip;

/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a name gave no address to dial.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name is, or resolves to, an address the SSRF rule refuses.
    /// Definitive: asking again gives the same answer.
    #[error("{host} resolves to {ip}, a local or private address; this relay does not connect to those (--allow-private-hosts is for development)")]
    Refused { host: String, ip: IpAddr },
    /// The lookup failed or timed out; it may work later.
    #[error("could not resolve {host}: {detail}")]
    Lookup { host: String, detail: String },
    /// The name exists but has no address.
    #[error("{host} has no addresses")]
    NoAddresses { host: String },
}

impl DnsError {
    /// Whether trying again later could give a different answer.
    pub fn is_transient(&self) -> bool {
        matches!(self, DnsError::Lookup { .. })
    }
}

/// Resolves host names with the SSRF rule. Cheap to clone (shared state).
#[derive(Clone, Debug, Default)]
pub struct Dns {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    allow_private: bool,
    /// Names exempt from the rule (lower-case, no port): the operator's own.
    trusted: HashSet<String>,
    overrides: HashMap<String, Vec<IpAddr>>,
    /// Lookups made (overrides included), for tests and diagnostics.
    lookups: AtomicU64,
}

impl Dns {
    /// The system resolver, refusing private answers.
    pub fn system() -> Dns {
        Dns::default()
    }

    /// The system resolver, except for these names (lower-case, no port).
    pub fn with_overrides(overrides: HashMap<String, Vec<IpAddr>>) -> Dns {
        Dns {
            inner: Arc::new(Inner {
                overrides,
                ..Inner::default()
            }),
        }
    }

    /// The same resolver (overrides kept), allowing private answers when
    /// `allow` (development and tests), and exempting `trusted` names (the
    /// operator's own services) from the rule.
    pub fn with_policy(&self, allow: bool, trusted: impl IntoIterator<Item = String>) -> Dns {
        Dns {
            inner: Arc::new(Inner {
                allow_private: allow,
                trusted: trusted
                    .into_iter()
                    .map(|t| t.to_ascii_lowercase())
                    .collect(),
                overrides: self.inner.overrides.clone(),
                lookups: AtomicU64::new(0),
            }),
        }
    }

    /// Lookups made so far (each [`Dns::resolve`] of a name, not literals).
    pub fn lookups(&self) -> u64 {
        self.inner.lookups.load(Ordering::Relaxed)
    }

    /// Refuses `ip` for `host` unless the rule lets it through.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), DnsError> {
        if is_private_ip(ip) && !self.inner.allow_private && !self.is_trusted(host) {
            return Err(DnsError::Refused {
                host: host.to_owned(),
                ip,
            });
        }
        Ok(())
    }

    fn is_trusted(&self, host: &str) -> bool {
        !self.inner.trusted.is_empty() && self.inner.trusted.contains(&host.to_ascii_lowercase())
    }

    /// The addresses of `host` (a DNS name or an IP literal without
    /// brackets) on `port`, every one checked by the rule.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
        let ips: Vec<IpAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
            vec![ip]
        } else {
            self.inner.lookups.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DNS_LOOKUPS).increment(1);
            if let Some(ips) = self.inner.overrides.get(&host.to_ascii_lowercase()) {
                ips.clone()
            } else {
                tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)))
                    .await
                    .map_err(|_| DnsError::Lookup {
                        host: host.to_owned(),
                        detail: "timed out".into(),
                    })?
                    .map_err(|e| DnsError::Lookup {
                        host: host.to_owned(),
                        detail: e.to_string(),
                    })?
                    .map(|a| a.ip())
                    .collect()
            }
        };
        if ips.is_empty() {
            return Err(DnsError::NoAddresses {
                host: host.to_owned(),
            });
        }
        for ip in &ips {
            if let Err(refused) = self.check(host, *ip) {
                metrics::counter!(DNS_REFUSED).increment(1);
                return Err(refused);
            }
        }
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }
}

/// The outbound HTTP client's resolver: the same rule for every name it
/// looks up (a literal IP in a URL is checked before the request, in
/// [`super::outbound`], since the client does not resolve those).
impl reqwest::dns::Resolve for Dns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.clone();
        Box::pin(async move {
            // The client puts the URL's port on each address itself.
            let addrs = dns.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(name: &str, ip: &str) -> Dns {
        Dns::with_overrides(HashMap::from([(
            name.to_owned(),
            vec![ip.parse().unwrap()],
        )]))
    }

    #[tokio::test]
    async fn answers_are_checked() {
        let dns = pinned("sneaky.example.com", "127.0.0.1");
        let e = dns.resolve("sneaky.example.com", 443).await.unwrap_err();
        assert!(matches!(e, DnsError::Refused { .. }), "{e}");
        assert!(!e.is_transient());
        assert!(e.to_string().contains("resolves to 127.0.0.1"), "{e}");
        let ok = dns
            .with_policy(true, [])
            .resolve("sneaky.example.com", 8443)
            .await
            .unwrap();
        assert_eq!(ok, ["127.0.0.1:8443".parse().unwrap()]);
        // Literals are checked too, without a lookup.
        assert!(dns.resolve("10.0.0.1", 80).await.is_err());
        assert!(dns.resolve("::7f00:1", 80).await.is_err());
        assert_eq!(dns.lookups(), 1);
        // The operator's own names are exempt.
        let trusted = pinned("plc.internal.example", "10.0.0.2")
            .with_policy(false, ["PLC.internal.example".to_owned()]);
        assert!(trusted.resolve("plc.internal.example", 2582).await.is_ok());
    }

    #[tokio::test]
    async fn ipv6_answers_with_embedded_ipv4() {
        let dns = pinned("v6.example.com", "::7f00:1");
        assert!(matches!(
            dns.resolve("v6.example.com", 80).await,
            Err(DnsError::Refused { .. })
        ));
    }
}
