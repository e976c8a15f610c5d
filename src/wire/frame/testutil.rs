//! Shared fixtures for the frame unit tests: sample identifiers, and building
//! bodies as generic maps so tests can add, drop or retype single fields.

use std::borrow::Cow;

use crate::wire::cbor::{Encoder, Value};
use crate::wire::cid::Cid;
use crate::wire::frame::Event;

pub const DID: &str = "did:plc:sxtoas2sxjv6gh2bibdg3g4b";
pub const REV: &str = "3lhhxizu5wr2d";
pub const SINCE: &str = "3lhhxiz32k52v";
pub const TIME: &str = "2025-02-06T01:43:22.273Z";

/// `{t:"#commit", op:1}`, from the digest.
pub const COMMIT_HEADER: &[u8] = &[
    0xa2, 0x61, 0x74, 0x67, 0x23, 0x63, 0x6f, 0x6d, 0x6d, 0x69, 0x74, 0x62, 0x6f, 0x70, 0x01,
];

/// A body as editable entries.
pub type Entries = Vec<(String, Value<'static>)>;

/// A distinct CID per `n`.
pub fn cid(n: u8) -> Cid {
    Cid::for_cbor(&[n])
}

pub fn text(s: &str) -> Value<'static> {
    Value::Text(Cow::Owned(s.to_owned()))
}

/// Leaks test bytes so decoded values can be `'static`.
pub fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

/// The encoded frame of an event.
pub fn frame_of(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    event.encode(&mut out);
    out
}

/// A frame from a header written with `t` (if any) and `op`, and a body.
pub fn raw_frame(t: Option<&str>, op: i64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::wire::frame::Header { op, t }.encode(&mut Encoder::new(&mut out));
    out.extend_from_slice(body);
    out
}

pub fn value_of(entries: &Entries) -> Value<'static> {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Cow::Owned(k.clone()), v.clone()))
            .collect(),
    )
}

/// Canonical CBOR of a map (keys sorted by [`Value::encode`]).
pub fn build_map(entries: &Entries) -> Vec<u8> {
    value_of(entries).to_cbor()
}

/// The entries of an encoded map, in encoded order.
pub fn map_entries(bytes: &[u8]) -> Entries {
    match Value::decode(bytes).expect("a valid map").into_owned() {
        Value::Map(m) => m.into_iter().map(|(k, v)| (k.into_owned(), v)).collect(),
        other => panic!("not a map: {other:?}"),
    }
}

/// The entries of the `i`th op of a `#commit` body.
pub fn ops_entry(entries: &Entries, i: usize) -> Entries {
    let ops = entries
        .iter()
        .find(|(k, _)| k == "ops")
        .map(|(_, v)| v.clone());
    match ops {
        Some(Value::Array(items)) => match &items[i] {
            Value::Map(m) => m.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            other => panic!("op is not a map: {other:?}"),
        },
        other => panic!("no ops array: {other:?}"),
    }
}

/// Sets (or adds) a field.
pub fn set(entries: &mut Entries, key: &str, value: Value<'static>) {
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => entries.push((key.to_owned(), value)),
    }
}

/// Drops a field.
pub fn remove(entries: &mut Entries, key: &str) {
    entries.retain(|(k, _)| k != key);
}

/// `bytes` is accepted by the strict generic decoder (which enforces canonical
/// key order) and is exactly what the sorting encoder writes for it.
pub fn assert_canonical(bytes: &[u8]) {
    let v = Value::decode(bytes).expect("strict decode of our own encoding");
    assert_eq!(v.to_cbor(), bytes, "keys not in canonical order");
}
