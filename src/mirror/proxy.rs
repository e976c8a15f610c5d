//! [`Proxy`]: a mirror's sync queries and `requestCrawl`, passed through to
//! its upstream over HTTP. A mirror holds the upstream's events but none of
//! its state (accounts, hosts), so the upstream answers; its status code,
//! body and the headers a client acts on (`Content-Type`, `Location` of
//! `getRepo`'s redirect, `Retry-After`) come back unchanged.
//!
//! The outbound client applies the SSRF rule; the node exempts the
//! upstream's host, which the operator chose (as the PLC directory's), so
//! a loopback or private upstream works. Redirects are passed back to the
//! client, not followed. An upstream that does not answer gives 502
//! `UpstreamFailure` (504 `UpstreamTimeout` after `mirror.proxy_timeout_secs`).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::metrics;
use super::upstream::Upstream;
use crate::http::XrpcError;
use crate::net::Outbound;

/// Largest request body passed on (`requestCrawl` sends a hostname).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Response headers passed back to the client.
const PASSED_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::RETRY_AFTER,
    header::CACHE_CONTROL,
];

/// The pass-through client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Proxy {
    upstream: Upstream,
    outbound: Outbound,
}

impl Proxy {
    /// Passes requests to `upstream` with `outbound`.
    pub fn new(upstream: Upstream, outbound: Outbound) -> Proxy {
        Proxy { upstream, outbound }
    }

    /// Sends `method path_and_query` (with `body` and its content type) to
    /// the upstream and answers with what it answered.
    pub async fn pass(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: axum::body::Bytes,
    ) -> Response {
        let url = self.upstream.xrpc_url(path_and_query);
        let request = match self.outbound.request(method, &url) {
            Ok(request) => request,
            Err(e) => return failed(StatusCode::BAD_GATEWAY, "UpstreamFailure", e.to_string()),
        };
        let mut request = request.body(body);
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            request = request.header(header::CONTENT_TYPE, ct.clone());
        }
        if let Some(accept) = headers.get(header::ACCEPT) {
            request = request.header(header::ACCEPT, accept.clone());
        }
        let answer = match request.send().await {
            Ok(answer) => answer,
            Err(e) if e.is_timeout() => {
                return failed(
                    StatusCode::GATEWAY_TIMEOUT,
                    "UpstreamTimeout",
                    "the upstream relay did not answer in time".into(),
                )
            }
            Err(e) => {
                tracing::warn!(upstream = %self.upstream, error = %e, "pass-through request failed");
                return failed(
                    StatusCode::BAD_GATEWAY,
                    "UpstreamFailure",
                    "the upstream relay could not be reached".into(),
                );
            }
        };
        let status = answer.status();
        ::metrics::counter!(metrics::PROXIED, "status" => metrics::status_class(Some(status.as_u16())))
            .increment(1);
        let mut response = Response::builder().status(status.as_u16());
        for name in PASSED_HEADERS {
            if let Some(v) = answer.headers().get(&name) {
                response = response.header(name, v.as_bytes());
            }
        }
        // Streamed: a large answer (a repo, a blob) is not held in memory.
        let chunks = futures_util::stream::unfold(Some(answer), |answer| async move {
            let mut answer = answer?;
            match answer.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(answer))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        });
        response
            .body(Body::from_stream(chunks))
            .unwrap_or_else(|e| failed(StatusCode::BAD_GATEWAY, "UpstreamFailure", e.to_string()))
    }
}

/// A failed pass-through, counted.
fn failed(status: StatusCode, error: &'static str, message: String) -> Response {
    ::metrics::counter!(metrics::PROXIED, "status" => metrics::status_class(None)).increment(1);
    XrpcError::named(status, error, message).into_response()
}
