//! `mst/`: key layers, common prefixes, and trees built from the example keys.

use atrelay::repo::mst::{common_prefix_len, key_layer, Mst, NoBlocks};
use atrelay::wire::cid::Cid;

use crate::common::{interop, read_json, read_lines};

#[test]
fn key_heights() {
    let cases = read_json(interop("mst/key_heights.json"));
    let cases = cases.as_array().expect("array");
    assert!(cases.len() >= 9);
    for c in cases {
        let key = c["key"].as_str().unwrap();
        let height = c["height"].as_u64().unwrap();
        assert_eq!(u64::from(key_layer(key.as_bytes())), height, "key {key:?}");
    }
}

#[test]
fn common_prefixes() {
    let cases = read_json(interop("mst/common_prefix.json"));
    let cases = cases.as_array().expect("array");
    assert!(cases.len() >= 5);
    for c in cases {
        let (l, r) = (c["left"].as_str().unwrap(), c["right"].as_str().unwrap());
        let len = c["len"].as_u64().unwrap() as usize;
        assert_eq!(
            common_prefix_len(l.as_bytes(), r.as_bytes()),
            len,
            "{l:?} {r:?}"
        );
    }
}

/// Every example key sits at the layer its name promises (`A3/…` → 3), and a
/// tree of all of them rebuilds identically however it was assembled.
#[test]
fn example_keys_layers_and_tree() {
    let keys = read_lines(interop("mst/example_keys.txt"));
    assert!(keys.len() > 20);
    for k in &keys {
        let want: u8 = k[1..2].parse().unwrap();
        assert_eq!(key_layer(k.as_bytes()), want, "{k}");
    }
    let value: Cid = "bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454"
        .parse()
        .unwrap();
    let mut bulk = Mst::from_entries(keys.iter().map(|k| (k.as_bytes(), value))).unwrap();
    let bulk_root = bulk.root(&NoBlocks).unwrap();
    let mut incremental = Mst::new();
    for k in keys.iter().rev() {
        incremental.insert(k.as_bytes(), value, &NoBlocks).unwrap();
    }
    assert_eq!(incremental.root(&NoBlocks).unwrap(), bulk_root);
}
