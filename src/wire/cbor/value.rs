//! The atproto data model as a generic tree, borrowed from the input when
//! decoded from CBOR.

use std::borrow::Cow;

use super::{DecodeError, Decoder, Encoder, KeyOrder, Kind};
use crate::wire::cid::Cid;

/// A map: entries in canonical key order when decoded; [`Value::encode`] sorts
/// whatever order they were built in.
pub type Map<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

/// One data-model value. Floats do not exist in atproto, so there is no float.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Bytes(Cow<'a, [u8]>),
    Text(Cow<'a, str>),
    Link(Cid),
    Array(Vec<Value<'a>>),
    Map(Map<'a>),
}

impl<'a> Value<'a> {
    /// Decodes exactly one value occupying all of `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Value<'a>, DecodeError> {
        let mut d = Decoder::new(bytes);
        let v = Value::read(&mut d)?;
        d.finish()?;
        Ok(v)
    }

    /// Reads one value from a decoder.
    pub fn read(d: &mut Decoder<'a>) -> Result<Value<'a>, DecodeError> {
        Value::read_at_depth(d, 0)
    }

    fn read_at_depth(d: &mut Decoder<'a>, depth: usize) -> Result<Value<'a>, DecodeError> {
        let max_depth = d.limits().max_depth;
        Ok(match d.peek_kind()? {
            Kind::Unsigned | Kind::Negative => Value::Int(d.i64()?),
            Kind::Bytes => Value::Bytes(Cow::Borrowed(d.bytes()?)),
            Kind::Text => Value::Text(Cow::Borrowed(d.text()?)),
            Kind::Tag => Value::Link(d.cid()?),
            Kind::Array => {
                if depth >= max_depth {
                    return Err(DecodeError::TooDeep(max_depth));
                }
                let n = d.array()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(Value::read_at_depth(d, depth + 1)?);
                }
                Value::Array(items)
            }
            Kind::Map => {
                if depth >= max_depth {
                    return Err(DecodeError::TooDeep(max_depth));
                }
                let n = d.map()?;
                let mut keys = KeyOrder::new();
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = keys.next(d)?;
                    entries.push((Cow::Borrowed(k), Value::read_at_depth(d, depth + 1)?));
                }
                Value::Map(entries)
            }
            Kind::Simple => {
                if d.take_null() {
                    Value::Null
                } else {
                    Value::Bool(d.bool()?)
                }
            }
        })
    }

    /// Canonical DAG-CBOR bytes.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut Encoder::new(&mut out));
        out
    }

    /// The blessed CID of this value's canonical encoding.
    pub fn cid(&self) -> Cid {
        Cid::for_cbor(&self.to_cbor())
    }

    /// Writes canonical DAG-CBOR. Map keys are sorted shorter-first, then
    /// bytewise; duplicate keys are a programming error (debug-asserted).
    pub fn encode(&self, e: &mut Encoder) {
        match self {
            Value::Null => e.null(),
            Value::Bool(b) => e.bool(*b),
            Value::Int(i) => e.i64(*i),
            Value::Bytes(b) => e.bytes(b),
            Value::Text(t) => e.text(t),
            Value::Link(c) => e.cid(c),
            Value::Array(items) => {
                e.array(items.len());
                for v in items {
                    v.encode(e);
                }
            }
            Value::Map(entries) => {
                e.map(entries.len());
                let in_order = entries
                    .windows(2)
                    .all(|w| canonical_key_cmp(&w[0].0, &w[1].0).is_lt());
                if in_order {
                    // Decoded maps are canonical already: no sort, no allocation.
                    for (k, v) in entries {
                        e.text(k);
                        v.encode(e);
                    }
                    return;
                }
                let mut sorted: Vec<&(Cow<str>, Value)> = entries.iter().collect();
                sorted.sort_by(|a, b| canonical_key_cmp(&a.0, &b.0));
                debug_assert!(
                    sorted.windows(2).all(|w| w[0].0 != w[1].0),
                    "duplicate map key"
                );
                for (k, v) in sorted {
                    e.text(k);
                    v.encode(e);
                }
            }
        }
    }

    /// Looks up a key in a map value.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text, if this is a text value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// Detaches the value from the input it borrows from.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::Text(t) => Value::Text(Cow::Owned(t.into_owned())),
            Value::Link(c) => Value::Link(c),
            Value::Array(items) => Value::Array(items.into_iter().map(Value::into_owned).collect()),
            Value::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }
}

/// DAG-CBOR map key order: shorter keys first, then bytewise.
pub fn canonical_key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sorting() {
        let v = Value::Map(vec![
            ("zz".into(), Value::Int(-5)),
            (
                "a".into(),
                Value::Array(vec![Value::Null, Value::Bool(true)]),
            ),
            ("bb".into(), Value::Bytes(Cow::Borrowed(b"\x01\x02"))),
            ("c".into(), Value::Link(Cid::for_cbor(b"\xa0"))),
        ]);
        let bytes = v.to_cbor();
        // keys come out as a, c, bb, zz
        let back = Value::decode(&bytes).unwrap();
        let keys: Vec<&str> = match &back {
            Value::Map(e) => e.iter().map(|(k, _)| k.as_ref()).collect(),
            _ => unreachable!(),
        };
        assert_eq!(keys, ["a", "c", "bb", "zz"]);
        assert_eq!(back.to_cbor(), bytes);
        assert_eq!(back.get("zz"), Some(&Value::Int(-5)));
    }

    #[test]
    fn borrows_from_input() {
        let bytes = [0x63, b'a', b'b', b'c'];
        match Value::decode(&bytes).unwrap() {
            Value::Text(Cow::Borrowed(s)) => assert_eq!(s, "abc"),
            other => panic!("{other:?}"),
        }
    }
}
