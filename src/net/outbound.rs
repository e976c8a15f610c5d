//! [`Outbound`]: the HTTP client for every request the relay makes on a
//! stranger's word (PLC and did:web documents, `requestCrawl`'s
//! `describeServer` probe), with the SSRF rule on every address it dials.
//!
//! - Names are resolved by [`Dns`], so a name that resolves to a private
//!   address is refused before any connection, and the address checked is
//!   the address dialed.
//! - A URL whose host is an IP literal (which the client never resolves)
//!   is checked by [`Outbound::get`] before the request is built.
//! - Redirects are not followed: a redirect would let the far side point
//!   the relay anywhere, past the check.
//! - [`refusal`] tells a refused request from a transient failure, so the
//!   caller can treat it as definitive (a did:web on a private address is a
//!   broken identity, not a server that may come back).

use std::time::Duration;

use super::dns::{Dns, DnsError};

/// The outbound client. Cheap to clone (shared connection pool).
#[derive(Clone, Debug)]
pub struct Outbound {
    client: reqwest::Client,
    dns: Dns,
}

impl Outbound {
    /// A client resolving through `dns`, with `timeout` per request
    /// (connect included) and `purpose` in its user agent.
    pub fn new(dns: Dns, timeout: Duration, purpose: &str) -> Outbound {
        let built = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(dns.clone()))
            .user_agent(format!("atrelay/{} ({purpose})", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build();
        let client = match built {
            Ok(client) => client,
            Err(e) => {
                // Only fails when the TLS backend cannot initialise; every
                // request then fails the same way, which the caller reports.
                tracing::error!(error = %e, "building the outbound HTTP client failed");
                reqwest::Client::new()
            }
        };
        Outbound { client, dns }
    }

    /// A GET of `url`, refused at once when its host is a literal address
    /// the rule does not allow.
    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, DnsError> {
        self.request(reqwest::Method::GET, url)
    }

    /// A request of any method (a mirror passes queries and `requestCrawl`
    /// through to its upstream), under the same rule as [`Outbound::get`].
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, DnsError> {
        if let Ok(parsed) = reqwest::Url::parse(url) {
            // The parser normalizes literals (`127.1`, `0x7f.0.0.1`), and
            // writes IPv6 ones in brackets.
            let literal = parsed
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<std::net::IpAddr>().ok());
            if let Some(ip) = literal {
                self.dns.check(&ip.to_string(), ip)?;
            }
        }
        Ok(self.client.request(method, url))
    }
}

/// The refusal behind a failed request, if the SSRF rule caused it.
pub fn refusal(err: &reqwest::Error) -> Option<&DnsError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(dns) = e.downcast_ref::<DnsError>() {
            return Some(dns);
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[tokio::test]
    async fn private_names_and_literals_are_refused_before_connecting() {
        // Something listens on loopback, so a connection would succeed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dns = Dns::with_overrides(HashMap::from([(
            "internal.example.com".to_owned(),
            vec!["127.0.0.1".parse().unwrap()],
        )]));
        let out = Outbound::new(dns, Duration::from_secs(2), "test");
        let err = out
            .get(&format!("http://internal.example.com:{port}/x"))
            .unwrap()
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(refusal(&err), Some(DnsError::Refused { .. })),
            "{err:?}"
        );
        for literal in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "http://[::7f00:1]/".to_owned(),
        ] {
            assert!(
                matches!(out.get(&literal), Err(DnsError::Refused { .. })),
                "{literal}"
            );
        }
        // Nothing ever connected.
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "no connection reached the listener");
    }
}
