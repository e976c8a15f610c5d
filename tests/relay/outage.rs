//! A transient identity outage holds events (never forwards them unverified,
//! never drops them) and delivers them once the directory answers again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use atrelay::node::Relay;
use atrelay::wire::frame::Event;

use crate::harness::Subscriber;
use crate::pipeline::Net;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plc_outage_holds_events_until_recovery() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let net = Net::start().await;
        let relay = Relay::start(&net.config()).await.unwrap();
        let mut sub = Subscriber::connect(relay.addr, None).await;
        net.plc.failing.store(true, Ordering::SeqCst);
        let mut alice = net.account();
        let mut sent = Vec::new();
        for i in 0..3 {
            let c = alice.post(&format!("during outage {i}"));
            net.pds.emit_commit(&c);
            sent.push(c.commit);
        }
        assert!(
            sub.next(Duration::from_secs(2)).await.is_none(),
            "nothing is forwarded while the identity cannot be checked"
        );
        assert!(
            net.plc.requests.load(Ordering::SeqCst) >= 2,
            "the relay kept retrying"
        );
        net.plc.failing.store(false, Ordering::SeqCst);
        let frames = sub.take(3).await;
        let got: Vec<_> = frames
            .iter()
            .map(|f| match Event::decode(f).unwrap() {
                Event::Commit(c) => c.commit,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, sent, "held events arrive in order after recovery");
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}
