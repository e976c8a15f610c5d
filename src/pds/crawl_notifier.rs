//! Asking relays to crawl this PDS (`com.atproto.sync.requestCrawl`).
//!
//! A relay learns of a PDS only when asked, so the PDS asks each configured
//! relay as soon as it has something to crawl (its first event) and then
//! periodically, which also re-announces it to a relay that restarted or
//! marked it offline. Failures are logged and retried at the next round:
//! a relay being down never affects the PDS.

use std::time::Duration;

use tokio::sync::watch;

use crate::lifecycle::StopSignal;

/// Why a relay did not take a crawl request.
#[derive(Debug, thiserror::Error)]
pub enum CrawlRequestError {
    /// The relay answered with an error status (and the start of its body).
    #[error("HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    /// The request did not get an answer.
    #[error(transparent)]
    Unreachable(reqwest::Error),
}

/// Sends `requestCrawl` for `hostname` to every relay in `crawlers`.
#[derive(Clone, Debug)]
pub struct CrawlNotifier {
    crawlers: Vec<String>,
    hostname: String,
    interval: Duration,
    http: reqwest::Client,
}

impl CrawlNotifier {
    /// A notifier for this PDS's public `hostname` (`host[:port]`).
    pub fn new(crawlers: Vec<String>, hostname: String, interval: Duration) -> CrawlNotifier {
        CrawlNotifier {
            crawlers: crawlers
                .into_iter()
                .map(|c| c.trim_end_matches('/').to_owned())
                .collect(),
            hostname,
            interval,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    /// Asks every relay once; the outcome per relay.
    pub async fn request_all(&self) -> Vec<(String, Result<(), CrawlRequestError>)> {
        let body = serde_json::json!({ "hostname": self.hostname });
        let mut out = Vec::with_capacity(self.crawlers.len());
        for relay in &self.crawlers {
            let url = format!("{relay}/xrpc/com.atproto.sync.requestCrawl");
            let result = match self.http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    Err(CrawlRequestError::Refused {
                        status,
                        body: text.chars().take(200).collect(),
                    })
                }
                Err(e) => Err(CrawlRequestError::Unreachable(e)),
            };
            match &result {
                Ok(()) => tracing::info!(%relay, hostname = %self.hostname, "requested a crawl"),
                Err(e) => {
                    tracing::warn!(%relay, error = %e, "requestCrawl failed; retrying next round")
                }
            }
            out.push((relay.clone(), result));
        }
        out
    }

    /// Runs until `stop` turns true: waits until `last_seq` shows a first
    /// event, then asks every relay, then again every interval.
    pub async fn run(self, mut last_seq: watch::Receiver<u64>, mut stop: StopSignal) {
        if self.crawlers.is_empty() {
            return;
        }
        tokio::select! {
            _ = last_seq.wait_for(|s| *s > 0) => {}
            _ = stop.stopping() => return,
        }
        loop {
            self.request_all().await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.stopping() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn asks_after_the_first_event_then_periodically() {
        let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let app = {
            let seen = seen.clone();
            axum::Router::new().route(
                "/xrpc/com.atproto.sync.requestCrawl",
                axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(body);
                        "{}"
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        // A second relay that is down: it must not stop the first.
        let dead = "http://127.0.0.1:1".to_owned();

        let notifier = CrawlNotifier::new(
            vec![dead, relay],
            "pds.test:2583".into(),
            Duration::from_millis(100),
        );
        let (seq_tx, seq_rx) = watch::channel(0u64);
        let shutdown = crate::lifecycle::Shutdown::new();
        let task = tokio::spawn(notifier.run(seq_rx, shutdown.signal()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(seen.lock().unwrap().is_empty(), "nothing to crawl yet");
        seq_tx.send(1).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while seen.lock().unwrap().len() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("asked twice");
        assert_eq!(
            seen.lock().unwrap()[0],
            serde_json::json!({"hostname": "pds.test:2583"})
        );
        // It must not end on its own, only when told.
        assert!(!task.is_finished(), "the notifier runs until stopped");
        shutdown.begin();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .unwrap();
    }
}
