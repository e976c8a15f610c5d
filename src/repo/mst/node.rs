//! One MST node's encoding: `{e: [{k, p, t, v}…], l}` with prefix-compressed
//! keys and explicit nulls.

use super::key::{common_prefix_len, key_layer, MAX_KEY_LEN};
use super::MstError;
use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};
use crate::wire::cid::Cid;

/// A node's entry with its key decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Cid,
    /// Subtree of keys between this entry and the next (`t`).
    pub right: Option<Cid>,
}

/// A decoded node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Subtree of keys below the first entry (`l`).
    pub left: Option<Cid>,
    pub entries: Vec<Entry>,
}

impl Node {
    /// Decodes a node strictly: canonical CBOR, all four entry keys and `l`
    /// present (nulls explicit), keys within [`MAX_KEY_LEN`], strictly
    /// ascending, and prefix compression maximal (so re-encoding reproduces the
    /// bytes, and with them the CID).
    pub fn decode(bytes: &[u8]) -> Result<Node, MstError> {
        let mut d = Decoder::new(bytes);
        let node = Node::read(&mut d).map_err(MstError::Decode)?;
        d.finish().map_err(MstError::Decode)?;
        for w in node.entries.windows(2) {
            if w[0].key >= w[1].key {
                return Err(MstError::Malformed("node keys are not strictly ascending"));
            }
        }
        Ok(node)
    }

    fn read(d: &mut Decoder) -> Result<Node, DecodeError> {
        let mut entries = None;
        let mut left = None;
        let mut keys = KeyOrder::new();
        for _ in 0..d.map()? {
            match keys.next(d)? {
                "e" => {
                    let n = d.array()?;
                    let mut list: Vec<Entry> = Vec::with_capacity(n);
                    for _ in 0..n {
                        let prev = list.last().map_or(&[][..], |e| &e.key[..]);
                        let entry = read_entry(d, prev)?;
                        list.push(entry);
                    }
                    entries = Some(list);
                }
                "l" => left = Some(d.cid_or_null()?),
                _ => return Err(DecodeError::invalid("node", "unexpected key in MST node")),
            }
        }
        Ok(Node {
            left: left.ok_or(DecodeError::MissingField("l"))?,
            entries: entries.ok_or(DecodeError::MissingField("e"))?,
        })
    }

    /// Canonical encoding, prefix-compressing each key against the previous.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_parts(
            self.left.as_ref(),
            self.entries
                .iter()
                .map(|e| (&e.key[..], &e.value, e.right.as_ref())),
            out,
        );
    }

    /// The encoded bytes and their CID.
    pub fn to_block(&self) -> (Cid, Vec<u8>) {
        let mut bytes = Vec::with_capacity(64 + self.entries.len() * 80);
        self.encode(&mut bytes);
        (Cid::for_cbor(&bytes), bytes)
    }

    /// The node's layer, from its first key; `None` for a node without entries.
    /// Checks every key shares it.
    pub fn layer(&self) -> Result<Option<u8>, MstError> {
        let Some(first) = self.entries.first() else {
            return Ok(None);
        };
        let layer = key_layer(&first.key);
        for e in &self.entries[1..] {
            if key_layer(&e.key) != layer {
                return Err(MstError::Malformed("keys of different layers in one node"));
            }
        }
        Ok(Some(layer))
    }
}

/// Encodes a node from borrowed parts, so a tree can be re-encoded without
/// copying its keys into [`Node`]s.
pub(super) fn encode_parts<'k>(
    left: Option<&Cid>,
    entries: impl ExactSizeIterator<Item = (&'k [u8], &'k Cid, Option<&'k Cid>)>,
    out: &mut Vec<u8>,
) {
    let mut e = Encoder::new(out);
    e.map(2);
    e.text("e");
    e.array(entries.len());
    let mut prev: &[u8] = &[];
    for (key, value, right) in entries {
        let p = common_prefix_len(prev, key);
        e.map(4);
        e.text("k");
        e.bytes(&key[p..]);
        e.text("p");
        e.u64(p as u64);
        e.text("t");
        e.cid_or_null(right);
        e.text("v");
        e.cid(value);
        prev = key;
    }
    e.text("l");
    e.cid_or_null(left);
}

fn read_entry(d: &mut Decoder, prev: &[u8]) -> Result<Entry, DecodeError> {
    let mut suffix = None;
    let mut prefix = None;
    let mut right = None;
    let mut value = None;
    let mut keys = KeyOrder::new();
    for _ in 0..d.map()? {
        match keys.next(d)? {
            "k" => suffix = Some(d.bytes()?),
            "p" => prefix = Some(d.u64()?),
            "t" => right = Some(d.cid_or_null()?),
            "v" => value = Some(d.cid()?),
            _ => return Err(DecodeError::invalid("entry", "unexpected key in MST entry")),
        }
    }
    let suffix = suffix.ok_or(DecodeError::MissingField("k"))?;
    let p = prefix.ok_or(DecodeError::MissingField("p"))?;
    let right = right.ok_or(DecodeError::MissingField("t"))?;
    let value = value.ok_or(DecodeError::MissingField("v"))?;
    let p = usize::try_from(p)
        .ok()
        .filter(|&p| p <= prev.len())
        .ok_or_else(|| DecodeError::invalid("p", "prefix longer than the previous key"))?;
    if p + suffix.len() > MAX_KEY_LEN {
        return Err(DecodeError::invalid("k", "MST key too long"));
    }
    let mut key = Vec::with_capacity(p + suffix.len());
    key.extend_from_slice(&prev[..p]);
    key.extend_from_slice(suffix);
    if key.is_empty() {
        return Err(DecodeError::invalid("k", "empty MST key"));
    }
    if common_prefix_len(prev, &key) != p {
        return Err(DecodeError::invalid(
            "p",
            "prefix compression is not maximal",
        ));
    }
    Ok(Entry { key, value, right })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_node_encoding() {
        let (cid, bytes) = Node::default().to_block();
        assert_eq!(bytes, b"\xa2\x61e\x80\x61l\xf6");
        assert_eq!(Node::decode(&bytes).unwrap(), Node::default());
        // The empty repo's MST root, as every implementation computes it.
        assert_eq!(
            cid.to_string(),
            "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
        );
    }

    #[test]
    fn round_trip_with_prefixes() {
        let v = Cid::for_cbor(b"\xa0");
        let node = Node {
            left: Some(v),
            entries: vec![
                Entry {
                    key: b"app.bsky.feed.post/aaa".to_vec(),
                    value: v,
                    right: None,
                },
                Entry {
                    key: b"app.bsky.feed.post/abb".to_vec(),
                    value: v,
                    right: Some(v),
                },
            ],
        };
        let (_, bytes) = node.to_block();
        assert_eq!(Node::decode(&bytes).unwrap(), node);
    }

    #[test]
    fn rejects_non_maximal_prefix_and_disorder() {
        let v = Cid::for_cbor(b"\xa0");
        let mut bytes = Vec::new();
        let mut e = Encoder::new(&mut bytes);
        e.map(2);
        e.text("e");
        e.array(2);
        for (k, p) in [(&b"abc"[..], 0u64), (&b"abd"[..], 0)] {
            e.map(4);
            e.text("k");
            e.bytes(k);
            e.text("p");
            e.u64(p);
            e.text("t");
            e.null();
            e.text("v");
            e.cid(&v);
        }
        e.text("l");
        e.null();
        assert!(matches!(Node::decode(&bytes), Err(MstError::Decode(_))));
    }

    #[test]
    fn rejects_missing_nulls() {
        // {e: []} without l
        assert!(matches!(
            Node::decode(b"\xa1\x61e\x80"),
            Err(MstError::Decode(DecodeError::MissingField("l")))
        ));
    }
}
