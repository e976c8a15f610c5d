//! No decoder panics, whatever the bytes: random input and valid input with
//! flipped bytes or cut short. Errors are fine; panics and hangs are not.

use std::collections::HashMap;

use atrelay::crypto::{Curve, PrivateKey};
use atrelay::repo::builder::{RecordWrite, RepoHead};
use atrelay::repo::commit::Commit;
use atrelay::repo::mst::{Mst, Node};
use atrelay::wire::car::{Car, CarLimits};
use atrelay::wire::cbor::Value;
use atrelay::wire::frame::Event;
use atrelay::wire::tid::TidClock;
use proptest::prelude::*;

/// Runs every decoder on `bytes`.
fn decode_everything(bytes: &[u8]) {
    let _ = Value::decode(bytes);
    let _ = Node::decode(bytes);
    let _ = Commit::decode(bytes);
    let _ = Event::decode(bytes);
    if let Ok(car) = Car::parse(bytes, CarLimits::FIREHOSE) {
        // A CAR that parses may still hold a hostile tree.
        if let Some(root) = car.roots().first() {
            if let Ok(mut tree) = Mst::load(*root, &car) {
                let _ = tree.load_all(&car);
                let _ = tree.root(&car);
            }
        }
    }
}

/// A real `#commit` frame and its diff CAR, to mutate.
fn samples() -> (Vec<u8>, Vec<u8>) {
    let key = PrivateKey::generate(Curve::K256);
    let clock = TidClock::new();
    let mut store = HashMap::new();
    let head = RepoHead::empty("did:plc:abcdefghijklmnopqrstuvwx", &mut store);
    let writes = (0..12)
        .map(|i| RecordWrite::Create {
            path: format!("app.bsky.feed.post/{}", clock.next()),
            record: vec![0xa1, 0x61, b'n', i as u8],
        })
        .collect();
    let built = head.commit(&store, writes, &key, clock.next()).unwrap();
    let s = built.frame_strings();
    let mut frame = Vec::new();
    Event::Commit(built.to_frame(&s, 7, "2026-11-24T12:00:00.000Z")).encode(&mut frame);
    (frame, built.car)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_valid_inputs(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (frame, car) = samples();
        for original in [frame, car] {
            let mut bytes = original.clone();
            for (i, b) in &flips {
                let at = i.index(bytes.len());
                bytes[at] ^= b | 1;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()));
            }
            decode_everything(&bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A mutated MST node whose CID is recomputed passes the hash check, so the
    /// tree code itself meets malformed nodes: every operation must return an
    /// error or a result, never panic.
    #[test]
    fn hostile_tree_nodes(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        which in any::<prop::sample::Index>(),
        probe in "[a-z.]{1,20}/[a-z2-7]{1,13}",
    ) {
        let keys: Vec<String> = (0..60).map(|i| format!("app.bsky.feed.post/{i:04}")).collect();
        let leaf = atrelay::wire::cid::Cid::for_cbor(b"\xa0");
        let mut tree = Mst::from_entries(keys.iter().map(|k| (k.as_bytes(), leaf))).unwrap();
        let (_, nodes) = tree.build(&atrelay::repo::mst::NoBlocks).unwrap();
        let mut blocks: HashMap<_, _> = nodes.iter().cloned().collect();
        let (_, victim) = &nodes[which.index(nodes.len())];
        let mut bytes = victim.clone();
        for (i, b) in &flips {
            let at = i.index(bytes.len());
            bytes[at] ^= b | 1;
        }
        let cid = atrelay::wire::cid::Cid::for_cbor(&bytes);
        blocks.insert(cid, bytes);
        if let Ok(mut t) = Mst::load(cid, &blocks) {
            let _ = t.get(probe.as_bytes(), &blocks);
            let _ = t.insert(probe.as_bytes(), leaf, &blocks);
            let _ = t.remove(keys[3].as_bytes(), &blocks);
            let _ = t.load_covering_proof(keys[30].as_bytes(), &blocks);
            let _ = t.root(&blocks);
            let _ = t.load_all(&blocks);
        }
    }
}
