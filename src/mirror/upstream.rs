//! [`Upstream`]: the relay a mirror follows, parsed once from the operator's
//! `mirror.upstream` (`wss://relay.example`), giving both its firehose URL
//! and its XRPC base URL.
//!
//! ```
//! use atrelay::mirror::Upstream;
//! let up = Upstream::parse("wss://relay.example").unwrap();
//! assert_eq!(up.subscribe_url(Some(42)), "wss://relay.example/xrpc/com.atproto.sync.subscribeRepos?cursor=42");
//! assert_eq!(up.xrpc_url("/xrpc/com.atproto.sync.listHosts?limit=2"), "https://relay.example/xrpc/com.atproto.sync.listHosts?limit=2");
//! let local = Upstream::parse("http://127.0.0.1:2470/").unwrap();
//! assert_eq!(local.subscribe_url(None), "ws://127.0.0.1:2470/xrpc/com.atproto.sync.subscribeRepos");
//! assert_eq!((local.host(), local.port()), ("127.0.0.1", 2470));
//! ```

/// Why `mirror.upstream` is not usable.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0:?} is not a URL: {1}")]
    NotAUrl(String, String),
    #[error("{0:?}: the scheme must be ws, wss, http or https")]
    Scheme(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?}: give the relay's origin only (no path, query or credentials)")]
    Extra(String),
}

/// A relay's origin: TLS or not, host (without IPv6 brackets) and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    secure: bool,
    host: String,
    port: u16,
    /// `host[:port]` as written in URLs (brackets kept, default port dropped).
    authority: String,
}

impl Upstream {
    /// Parses `ws://`, `wss://`, `http://` or `https://` plus host and
    /// optional port; `wss`/`https` mean TLS for both the firehose and the
    /// queries.
    pub fn parse(text: &str) -> Result<Upstream, UpstreamError> {
        let url = reqwest::Url::parse(text)
            .map_err(|e| UpstreamError::NotAUrl(text.to_owned(), e.to_string()))?;
        let secure = match url.scheme() {
            "wss" | "https" => true,
            "ws" | "http" => false,
            _ => return Err(UpstreamError::Scheme(text.to_owned())),
        };
        let Some(written) = url.host_str() else {
            return Err(UpstreamError::NoHost(text.to_owned()));
        };
        if !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(UpstreamError::Extra(text.to_owned()));
        }
        let default_port = if secure { 443 } else { 80 };
        let port = url.port().unwrap_or(default_port);
        let authority = match url.port() {
            Some(p) if p != default_port => format!("{written}:{p}"),
            _ => written.to_owned(),
        };
        Ok(Upstream {
            secure,
            host: written
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority,
        })
    }

    /// The host to resolve and dial (an IPv6 literal without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to dial.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The upstream's firehose, from strictly after `cursor` (or live).
    pub fn subscribe_url(&self, cursor: Option<u64>) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        let mut url = format!(
            "{scheme}://{}/xrpc/com.atproto.sync.subscribeRepos",
            self.authority
        );
        if let Some(c) = cursor {
            url.push_str(&format!("?cursor={c}"));
        }
        url
    }

    /// The upstream URL of `path_and_query` (starting with `/`).
    pub fn xrpc_url(&self, path_and_query: &str) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}{path_and_query}", self.authority)
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_origins_and_refuses_the_rest() {
        let v6 = Upstream::parse("ws://[::1]:9000").unwrap();
        assert_eq!(v6.host(), "::1");
        assert_eq!(
            v6.xrpc_url("/xrpc/_health"),
            "http://[::1]:9000/xrpc/_health"
        );
        assert_eq!(
            Upstream::parse("https://r.example:443")
                .unwrap()
                .to_string(),
            "wss://r.example"
        );
        for bad in [
            "relay.example",
            "ftp://relay.example",
            "wss://relay.example/some/path",
            "wss://relay.example/?x=1",
            "wss://user:pw@relay.example",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
