//! Record contents shaped like the network's: `app.bsky.*` records with the
//! fields, facets and embeds real clients write, at the sizes the firehose
//! carries (a like is ~200 bytes on the wire; a long post with an external
//! embed or a profile with a long description reaches several KB).

use atrelay::wire::cbor::Value;
use atrelay::wire::cid::Cid;
use atrelay::wire::json::value_from_json;
use rand::Rng;
use serde_json::{json, Value as Json};

/// Words posts are made of (so text compresses and tokenises like text).
const WORDS: &[&str] = &[
    "the", "relay", "firehose", "today", "network", "post", "atproto", "bluesky", "feed", "photo",
    "morning", "coffee", "release", "rust", "reading", "thread", "new", "great", "thanks",
    "weekend", "music", "link", "open", "source", "garden", "city", "train", "weather", "book",
    "🦋", "✨", "café", "naïve",
];

fn text(rng: &mut impl Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    s
}

/// Encodes a JSON-shaped record as DAG-CBOR.
fn cbor(record: &Json) -> Vec<u8> {
    value_from_json(record)
        .expect("generated records are valid data-model JSON")
        .to_cbor()
}

/// A post: short text mostly, some with a link facet, a few long ones with an
/// external embed (the multi-KB tail).
pub fn post(rng: &mut impl Rng, created_at: &str) -> Vec<u8> {
    let roll = rng.gen_range(0..100);
    let len = if roll < 70 {
        rng.gen_range(20..200)
    } else if roll < 95 {
        rng.gen_range(200..300)
    } else {
        rng.gen_range(300..3_000)
    };
    let mut body = text(rng, len);
    let mut record = json!({
        "$type": "app.bsky.feed.post",
        "createdAt": created_at,
        "langs": ["en"],
    });
    if rng.gen_bool(0.25) {
        let url = format!("https://example.com/{}", rng.gen::<u32>());
        let start = body.len() + 1;
        body.push(' ');
        body.push_str(&url);
        record["facets"] = json!([{
            "index": {"byteStart": start, "byteEnd": body.len()},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
        }]);
    }
    if roll >= 95 {
        let description_len = rng.gen_range(1_000..7_000);
        record["embed"] = json!({
            "$type": "app.bsky.embed.external",
            "external": {
                "uri": "https://example.com/article",
                "title": text(rng, 60),
                "description": text(rng, description_len),
            },
        });
    }
    record["text"] = Json::String(body);
    cbor(&record)
}

/// A strong reference to some post on the network (another account's, not
/// necessarily on this fleet: likes cross hosts).
fn subject(rng: &mut impl Rng) -> Json {
    let did_hash: [u8; 16] = rng.gen();
    let did = super::synthetic_did::did_from_bytes(&did_hash);
    let rkey = atrelay::wire::tid::Tid::from_u64(rng.gen_range(1u64 << 60..1u64 << 62))
        .map(|t| t.to_string())
        .unwrap_or_else(|| "3kabcdefghij2".into());
    let cid = Cid::for_cbor(&rng.gen::<[u8; 8]>());
    json!({
        "uri": format!("at://{did}/app.bsky.feed.post/{rkey}"),
        "cid": cid.to_string(),
    })
}

pub fn like(rng: &mut impl Rng, created_at: &str) -> Vec<u8> {
    cbor(&json!({
        "$type": "app.bsky.feed.like",
        "createdAt": created_at,
        "subject": subject(rng),
    }))
}

pub fn repost(rng: &mut impl Rng, created_at: &str) -> Vec<u8> {
    cbor(&json!({
        "$type": "app.bsky.feed.repost",
        "createdAt": created_at,
        "subject": subject(rng),
    }))
}

pub fn follow(rng: &mut impl Rng, created_at: &str) -> Vec<u8> {
    let did_hash: [u8; 16] = rng.gen();
    cbor(&json!({
        "$type": "app.bsky.graph.follow",
        "createdAt": created_at,
        "subject": super::synthetic_did::did_from_bytes(&did_hash),
    }))
}

pub fn profile(rng: &mut impl Rng, created_at: &str) -> Vec<u8> {
    let description_len = rng.gen_range(0..2_000);
    cbor(&json!({
        "$type": "app.bsky.actor.profile",
        "createdAt": created_at,
        "displayName": text(rng, 20),
        "description": text(rng, description_len),
    }))
}

/// A record over the relay's per-record limit (1,000,000 bytes): the
/// adversarial "oversize" event.
pub fn oversize(created_at: &str) -> Vec<u8> {
    Value::Map(vec![
        ("$type".into(), Value::Text("app.bsky.feed.post".into())),
        (
            "createdAt".into(),
            Value::Text(created_at.to_owned().into()),
        ),
        ("text".into(), Value::Text("x".repeat(1_100_000).into())),
    ])
    .to_cbor()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn records_decode_and_span_the_sizes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t = "2026-11-25T00:00:00.000Z";
        let mut sizes = Vec::new();
        for _ in 0..400 {
            for r in [
                post(&mut rng, t),
                like(&mut rng, t),
                repost(&mut rng, t),
                follow(&mut rng, t),
                profile(&mut rng, t),
            ] {
                Value::decode(&r).expect("canonical DAG-CBOR");
                sizes.push(r.len());
            }
        }
        assert!(
            *sizes.iter().min().unwrap() < 250,
            "{:?}",
            sizes.iter().min()
        );
        assert!(
            *sizes.iter().max().unwrap() > 5_000,
            "{:?}",
            sizes.iter().max()
        );
        assert!(oversize(t).len() > 1_000_000);
    }
}
