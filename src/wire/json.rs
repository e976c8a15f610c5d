//! The data model's JSON form: links as `{"$link": "<cid>"}`, bytes as
//! `{"$bytes": "<base64>"}`, and the rules records must follow (`$type` is a
//! non-empty string, blobs have their full shape, no floats).
//!
//! ```
//! use atrelay::wire::json::{record_from_json, value_to_json};
//! let json = serde_json::json!({"$type": "app.bsky.feed.like", "n": 3});
//! let value = record_from_json(&json).unwrap();
//! assert_eq!(value_to_json(&value), json);
//! ```

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::Value as Json;

use super::cbor::{canonical_key_cmp, Value};
use super::cid::Cid;

/// Largest integer JSON can carry exactly (and the data model's safe range).
const MAX_SAFE_INT: f64 = 9_007_199_254_740_991.0;

/// Standard base64; padding optional on input, never written.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why JSON is not valid data-model JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("at {path}: floating-point numbers are not allowed")]
    Float { path: String },
    #[error("at {path}: $link must be the only key and a valid CID string")]
    BadLink { path: String },
    #[error("at {path}: $bytes must be the only key and a base64 string")]
    BadBytes { path: String },
    #[error("at {path}: $type must be a non-empty string")]
    BadType { path: String },
    #[error("at {path}: blob must have ref (link), mimeType (string) and size (integer)")]
    BadBlob { path: String },
    #[error("a record must be a JSON object")]
    NotAnObject,
}

/// Converts a record (a JSON object) to a data-model value, enforcing the
/// data-model rules.
pub fn record_from_json(json: &Json) -> Result<Value<'static>, JsonError> {
    if !json.is_object() {
        return Err(JsonError::NotAnObject);
    }
    value_from_json(json)
}

/// Converts any data-model JSON value.
pub fn value_from_json(json: &Json) -> Result<Value<'static>, JsonError> {
    convert(json, &mut String::from("$"))
}

fn convert(json: &Json, path: &mut String) -> Result<Value<'static>, JsonError> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else {
                // An integral float ("123.0") is an integer written oddly; any
                // other number is a float, which the data model forbids.
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INT => Value::Int(f as i64),
                    _ => return Err(JsonError::Float { path: path.clone() }),
                }
            }
        }
        Json::String(s) => Value::Text(Cow::Owned(s.clone())),
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(convert(item, path)?);
                path.truncate(len);
            }
            Value::Array(out)
        }
        Json::Object(obj) => {
            if let Some(link) = obj.get("$link") {
                return match (link.as_str(), obj.len()) {
                    (Some(s), 1) => s
                        .parse::<Cid>()
                        .map(Value::Link)
                        .map_err(|_| JsonError::BadLink { path: path.clone() }),
                    _ => Err(JsonError::BadLink { path: path.clone() }),
                };
            }
            if let Some(bytes) = obj.get("$bytes") {
                return match (bytes.as_str(), obj.len()) {
                    (Some(s), 1) => B64
                        .decode(s)
                        .map(|b| Value::Bytes(Cow::Owned(b)))
                        .map_err(|_| JsonError::BadBytes { path: path.clone() }),
                    _ => Err(JsonError::BadBytes { path: path.clone() }),
                };
            }
            let mut entries = Vec::with_capacity(obj.len());
            for (k, v) in obj {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                entries.push((Cow::Owned(k.clone()), convert(v, path)?));
                path.truncate(len);
            }
            // Canonical order, so a value from JSON equals the same value decoded
            // from CBOR and encodes without re-sorting.
            entries.sort_by(|a, b| canonical_key_cmp(&a.0, &b.0));
            let map = Value::Map(entries);
            check_typed_object(&map, path)?;
            map
        }
    })
}

/// `$type`, where present, is a non-empty string; a `blob` has its full shape.
fn check_typed_object(map: &Value, path: &str) -> Result<(), JsonError> {
    let Some(ty) = map.get("$type") else {
        return Ok(());
    };
    match ty.as_str() {
        Some("blob") => {
            let ok = matches!(map.get("ref"), Some(Value::Link(_)))
                && matches!(map.get("mimeType"), Some(Value::Text(m)) if !m.is_empty())
                && matches!(map.get("size"), Some(Value::Int(n)) if *n >= 0);
            if ok {
                Ok(())
            } else {
                Err(JsonError::BadBlob {
                    path: path.to_owned(),
                })
            }
        }
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err(JsonError::BadType {
            path: path.to_owned(),
        }),
    }
}

/// Renders a data-model value as JSON (links and bytes in their `$` forms).
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Bytes(b) => serde_json::json!({ "$bytes": B64.encode(b) }),
        Value::Text(t) => Json::String(t.to_string()),
        Value::Link(c) => serde_json::json!({ "$link": c.to_string() }),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), value_to_json(v)))
                .collect(),
        ),
    }
}

/// Base64 (standard alphabet, unpadded) as the JSON form writes bytes.
pub fn encode_base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes base64 as the JSON form accepts it (padding optional).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integral_float_is_an_integer() {
        let v = value_from_json(&json!({"a": 123.0})).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Int(123)));
        assert!(matches!(
            value_from_json(&json!({"a": 1.5})),
            Err(JsonError::Float { .. })
        ));
    }

    #[test]
    fn bytes_padding_optional() {
        let a = value_from_json(&json!({"$bytes": "AQI="})).unwrap();
        let b = value_from_json(&json!({"$bytes": "AQI"})).unwrap();
        assert_eq!(a, b);
        assert_eq!(value_to_json(&a), json!({"$bytes": "AQI"}));
    }
}
