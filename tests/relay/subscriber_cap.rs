//! The subscriber cap (`fanout.max_subscribers`) through the real binary:
//! one subscriber past the cap gets a plain HTTP 503 naming the reason and
//! when to retry, the relay stays healthy, the admitted subscribers keep
//! receiving events, and a place freed by a subscriber that leaves is
//! taken by the next one.

use std::time::Duration;

use crate::binary::{call, RelayProcess};
use crate::harness::Subscriber;
use crate::pipeline::Net;

const CAP: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_subscriber_gets_503_and_the_others_keep_streaming() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let cap = CAP.to_string();
        let relay =
            RelayProcess::spawn(&net, true, &[("ATRELAY_FANOUT_MAX_SUBSCRIBERS", &cap)]).await;
        let mut admitted = Vec::new();
        for _ in 0..CAP {
            admitted.push(Subscriber::connect(relay.addr, None).await);
        }

        // One more: refused before the upgrade, with the reason.
        let url = format!("ws://{}/xrpc/com.atproto.sync.subscribeRepos", relay.addr);
        let refused = tokio_tungstenite::connect_async(&url).await;
        let Err(tokio_tungstenite::tungstenite::Error::Http(res)) = refused else {
            panic!("the subscriber past the cap was not refused with an HTTP error: {refused:?}");
        };
        assert_eq!(res.status(), 503);
        assert_eq!(
            res.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"30"[..])
        );
        let body: serde_json::Value =
            serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
        assert_eq!(body["error"], "TooManySubscribers");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("at most {CAP} subscribers")),
            "{message}"
        );

        // The relay is healthy and the admitted subscribers stream.
        assert_eq!(
            call(&relay, false, "/xrpc/_health", None).await.status(),
            200
        );
        let mut alice = net.account();
        for i in 0..5 {
            net.pds.emit_commit(&alice.post(&format!("post {i}")));
        }
        for sub in &mut admitted {
            assert_eq!(sub.take(5).await.len(), 5);
        }
        let s = relay
            .scrape_until(|s| s.value("atrelay_fanout_subscribers_refused_total", &[]) >= 1.0)
            .await;
        assert_eq!(
            s.value("atrelay_fanout_subscribers_refused_total", &[]),
            1.0
        );

        // One leaves: its place is free again (the session notices the
        // close and ends, which can take a moment).
        drop(admitted.pop());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut next = loop {
            match tokio_tungstenite::connect_async(&url).await {
                Ok((ws, _)) => break ws,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("the freed place was not given to a new subscriber: {e}"),
            }
        };
        net.pds.emit_commit(&alice.post("after"));
        use futures_util::StreamExt;
        let frame = tokio::time::timeout(Duration::from_secs(10), next.next())
            .await
            .expect("the new subscriber gets events");
        assert!(matches!(
            frame,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(_)))
        ));
    })
    .await
    .expect("test timed out");
}
