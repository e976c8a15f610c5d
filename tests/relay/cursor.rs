//! Subscriber cursors against the real log: replay equals live byte for byte,
//! and each cursor case behaves as the spec says.

use std::time::Duration;

use atrelay::node::Relay;
use atrelay::wire::frame::Event;

use crate::harness::Subscriber;
use crate::pipeline::Net;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_equals_live_and_cursor_cases() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut live = Subscriber::connect(relay.addr, None).await;
        let mut alice = net.account();
        for i in 0..6 {
            net.pds.emit_commit(&alice.post(&format!("post {i}")));
        }
        let live_frames = live.take(6).await;

        // cursor=0 replays everything, byte-identical to what live got.
        let mut from_zero = Subscriber::connect(relay.addr, Some(0)).await;
        assert_eq!(from_zero.take(6).await, live_frames);

        // cursor=N replays strictly after N, then continues live.
        let mut from_three = Subscriber::connect(relay.addr, Some(3)).await;
        assert_eq!(from_three.take(3).await, live_frames[3..].to_vec());
        net.pds.emit_commit(&alice.post("after"));
        let next = from_three.take(1).await;
        assert_eq!(
            next,
            live.take(1).await,
            "replaying subscriber joins live seamlessly"
        );
        assert_eq!(Event::decode(&next[0]).unwrap().seq(), Some(7));

        // A cursor beyond the head: FutureCursor error frame, then close.
        let mut future = Subscriber::connect(relay.addr, Some(1000)).await;
        let frame = future
            .next(Duration::from_secs(5))
            .await
            .expect("an error frame");
        match Event::decode(&frame).unwrap() {
            Event::Error(e) => assert_eq!(e.error, "FutureCursor"),
            other => panic!("expected FutureCursor, got {other:?}"),
        }
        assert!(
            future.next(Duration::from_secs(2)).await.is_none(),
            "closed after the error"
        );
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}
