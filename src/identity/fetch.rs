//! One bounded HTTP GET of a DID document, with the status codes mapped to
//! [`ResolveError`] (digest §6.2).
//!
//! | answer | result |
//! |---|---|
//! | 2xx with a JSON body ≤ the size cap | the parsed JSON |
//! | 404 | [`ResolveError::NotFound`] |
//! | 410 | [`ResolveError::Tombstoned`] |
//! | 408, 429, 5xx, timeout, connection or body error | [`ResolveError::Transient`] |
//! | any other status (3xx included: redirects are not followed), non-JSON or oversized body | [`ResolveError::Invalid`] |
//!
//! Redirects are refused, as the reference resolvers do: a DID document lives at
//! one well-known URL, and following redirects would let a host point the relay
//! at arbitrary (including internal) addresses.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::error::ResolveError;
use crate::net::{outbound, DnsError, Outbound};

/// Largest DID document body accepted, in bytes. Real documents are around 1 KiB;
/// the cap bounds the memory one hostile host can make the relay spend.
pub const MAX_DOCUMENT_BYTES: usize = 128 * 1024;

/// GETs `url` and parses the body as JSON, bounded by `timeout` (the whole
/// exchange, body included) and [`MAX_DOCUMENT_BYTES`].
pub async fn fetch_json(
    client: &Outbound,
    url: &str,
    timeout: Duration,
) -> Result<Value, ResolveError> {
    // The client has the same timeout; this outer one also covers a body that
    // trickles in, whatever the client's timeout semantics.
    match tokio::time::timeout(timeout, fetch_inner(client, url)).await {
        Ok(result) => result,
        Err(_) => Err(ResolveError::Transient("request timed out".into())),
    }
}

async fn fetch_inner(client: &Outbound, url: &str) -> Result<Value, ResolveError> {
    let mut response = client
        .get(url)
        .map_err(refused)?
        .header(
            reqwest::header::ACCEPT,
            "application/did+ld+json, application/json;q=0.9",
        )
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(status_error(status));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ResolveError::Invalid(format!("DID document is not JSON: {e}")))
}

fn too_large() -> ResolveError {
    ResolveError::Invalid(format!(
        "DID document larger than {MAX_DOCUMENT_BYTES} bytes"
    ))
}

/// Maps a non-2xx status to the error the caller acts on.
pub fn status_error(status: StatusCode) -> ResolveError {
    match status {
        StatusCode::NOT_FOUND => ResolveError::NotFound,
        StatusCode::GONE => ResolveError::Tombstoned,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
            ResolveError::Transient(format!("HTTP {}", status.as_u16()))
        }
        s if s.is_server_error() => ResolveError::Transient(format!("HTTP {}", s.as_u16())),
        s => ResolveError::Invalid(format!("unexpected HTTP status {}", s.as_u16())),
    }
}

/// A refused address: the document's host is, or resolves to, one the SSRF
/// rule does not let the relay dial.
fn refused(e: DnsError) -> ResolveError {
    ResolveError::Invalid(format!("DID document host refused: {e}"))
}

/// Everything that goes wrong below HTTP (DNS, connect, TLS, reset, timeout,
/// a broken body) may work next time, except an address the SSRF rule
/// refuses.
fn transport_error(e: reqwest::Error) -> ResolveError {
    if let Some(dns) = outbound::refusal(&e) {
        if !dns.is_transient() {
            return refused(dns.clone());
        }
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body failed"
    } else {
        "request failed"
    };
    ResolveError::Transient(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let s = |c: u16| status_error(StatusCode::from_u16(c).expect("status"));
        assert_eq!(s(404), ResolveError::NotFound);
        assert_eq!(s(410), ResolveError::Tombstoned);
        for c in [408, 429, 500, 502, 503, 504, 599] {
            assert!(s(c).is_transient(), "{c}");
        }
        for c in [301, 302, 307, 308, 400, 401, 403, 405, 418] {
            assert!(matches!(s(c), ResolveError::Invalid(_)), "{c}");
        }
    }
}
