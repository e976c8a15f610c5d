//! Name resolution for upstream hosts, with the SSRF guard applied to the
//! addresses actually dialed.
//!
//! Checking a hostname's addresses and then letting a library resolve it
//! again to connect leaves a window: DNS can answer differently the second
//! time (rebinding) and point the relay at its own network. So the relay
//! resolves once, refuses private addresses (unless private hosts are
//! allowed), and connects to the checked address itself — for the
//! `describeServer` probe and for every crawler dial.
//!
//! Tests can pin names to addresses ([`Dns::with_overrides`]): a public name
//! that resolves to loopback cannot otherwise be arranged on a test machine.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::crawler::{host_part, is_private_ip};

/// Resolves upstream hostnames. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Dns {
    overrides: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl Dns {
    /// The system resolver.
    pub fn system() -> Dns {
        Dns::default()
    }

    /// The system resolver, except for these names (lower-case, no port).
    pub fn with_overrides(overrides: HashMap<String, Vec<IpAddr>>) -> Dns {
        Dns {
            overrides: Arc::new(overrides),
        }
    }

    /// The addresses of `hostname` (`host[:port]`; `default_port` when none),
    /// every one of them checked against the SSRF guard unless
    /// `allow_private`. The error says what was refused, for the operator's
    /// log or the requester's answer.
    pub async fn resolve_checked(
        &self,
        hostname: &str,
        default_port: u16,
        allow_private: bool,
    ) -> Result<Vec<SocketAddr>, String> {
        let host = host_part(hostname);
        let port = match hostname.strip_prefix('[') {
            Some(rest) => rest.split_once("]:").map(|(_, p)| p),
            None => hostname
                .rsplit_once(':')
                .filter(|(h, _)| !h.contains(':'))
                .map(|(_, p)| p),
        }
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(default_port);
        let addrs: Vec<SocketAddr> = if let Some(ips) = self.overrides.get(host) {
            ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else {
            tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host((host, port)),
            )
            .await
            .map_err(|_| format!("resolving {host} timed out"))?
            .map_err(|e| format!("could not resolve {host}: {e}"))?
            .collect()
        };
        if addrs.is_empty() {
            return Err(format!("{host} has no addresses"));
        }
        if !allow_private {
            if let Some(bad) = addrs.iter().find(|a| is_private_ip(a.ip())) {
                return Err(format!(
                    "{host} resolves to {}, a local or private address; this relay does not crawl those",
                    bad.ip()
                ));
            }
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overrides_ports_and_the_guard() {
        let dns = Dns::with_overrides(HashMap::from([(
            "sneaky.example.com".to_owned(),
            vec!["127.0.0.1".parse().unwrap()],
        )]));
        let e = dns
            .resolve_checked("sneaky.example.com", 443, false)
            .await
            .unwrap_err();
        assert!(e.contains("resolves to 127.0.0.1"), "{e}");
        let ok = dns
            .resolve_checked("sneaky.example.com:8443", 443, true)
            .await
            .unwrap();
        assert_eq!(ok, ["127.0.0.1:8443".parse().unwrap()]);
        let v6 = dns.resolve_checked("[::1]:2583", 443, true).await.unwrap();
        assert_eq!(v6, ["[::1]:2583".parse().unwrap()]);
        assert!(dns.resolve_checked("[::1]:2583", 443, false).await.is_err());
        let lit = dns
            .resolve_checked("10.0.0.1", 80, false)
            .await
            .unwrap_err();
        assert!(lit.contains("10.0.0.1"), "{lit}");
    }
}
