//! The JSON form of PLC operations: strict parsing (what is posted and what
//! the store reads back) and rendering (what logs and exports serve).
//!
//! Strict means: an object with exactly the fields of its `type` (unknown
//! fields refused, every field required, `prev` explicit even when null),
//! each with its JSON type; `prev` the canonical base32 string of a dag-cbor
//! sha2-256 CIDv1; `sig` canonical base64url ([`super::signature`]); and the
//! limits of [`super::limits`]. The reference server instead drops unknown
//! fields before checking the signature; refusing them is stricter and never
//! accepts an op the reference would refuse.

use std::collections::BTreeMap;

use serde_json::{json, Map as JsonMap, Value as Json};

use super::error::{quote, OpError};
use super::op::{
    LegacyCreateOp, Operation, RegularOp, Service, SignedOperation, TombstoneOp,
    TYPE_LEGACY_CREATE, TYPE_REGULAR, TYPE_TOMBSTONE,
};
use super::signature::decode_signature;
use crate::wire::cid::{Cid, Codec};

impl SignedOperation {
    /// Parses a signed operation from its JSON form, strictly (see the module
    /// documentation), limits included. Does not verify the signature.
    pub fn from_json(json: &Json) -> Result<SignedOperation, OpError> {
        let signed = SignedOperation::parse_shape(json)?;
        signed.check()?;
        Ok(signed)
    }

    /// Parses an operation this directory stored itself: the shape is still
    /// checked (a corrupt record must not become an op), the limits are not —
    /// they held when it was accepted, and re-checking them would decompress
    /// every rotation key on every read of a log or export page.
    pub(crate) fn from_stored_json(json: &Json) -> Result<SignedOperation, OpError> {
        SignedOperation::parse_shape(json)
    }

    /// The shape and signature encoding, without limits.
    fn parse_shape(json: &Json) -> Result<SignedOperation, OpError> {
        let obj = json
            .as_object()
            .ok_or_else(|| shape("an operation is a JSON object"))?;
        let ty = obj
            .get("type")
            .ok_or_else(|| shape("missing field `type`"))?
            .as_str()
            .ok_or_else(|| shape("`type` is not a string"))?;
        let op = match ty {
            TYPE_REGULAR => {
                only_fields(
                    obj,
                    &[
                        "type",
                        "rotationKeys",
                        "verificationMethods",
                        "alsoKnownAs",
                        "services",
                        "prev",
                        "sig",
                    ],
                )?;
                Operation::Regular(RegularOp {
                    rotation_keys: string_array(obj, "rotationKeys")?,
                    verification_methods: string_map(obj, "verificationMethods")?,
                    also_known_as: string_array(obj, "alsoKnownAs")?,
                    services: services(obj)?,
                    prev: nullable_cid(obj)?,
                })
            }
            TYPE_TOMBSTONE => {
                only_fields(obj, &["type", "prev", "sig"])?;
                let prev = nullable_cid(obj)?.ok_or_else(|| shape("a tombstone needs a prev"))?;
                Operation::Tombstone(TombstoneOp { prev })
            }
            TYPE_LEGACY_CREATE => {
                only_fields(
                    obj,
                    &[
                        "type",
                        "signingKey",
                        "recoveryKey",
                        "handle",
                        "service",
                        "prev",
                        "sig",
                    ],
                )?;
                if nullable_cid(obj)?.is_some() {
                    return Err(shape("a legacy create must have prev null"));
                }
                Operation::LegacyCreate(LegacyCreateOp {
                    signing_key: string(obj, "signingKey")?,
                    recovery_key: string(obj, "recoveryKey")?,
                    handle: string(obj, "handle")?,
                    service: string(obj, "service")?,
                })
            }
            other => return Err(shape(&format!("unknown type {}", quote(other)))),
        };
        let sig = decode_signature(&string(obj, "sig")?)?;
        Ok(SignedOperation::unchecked(op, sig))
    }

    /// Parses a signed operation from JSON bytes (see [`Self::from_json`]).
    pub fn from_json_bytes(bytes: &[u8]) -> Result<SignedOperation, OpError> {
        let json: Json =
            serde_json::from_slice(bytes).map_err(|e| shape(&format!("body is not JSON: {e}")))?;
        SignedOperation::from_json(&json)
    }

    /// The JSON form, as posted and as served in logs.
    pub fn to_json(&self) -> Json {
        let mut m = operation_json(self.operation());
        m.insert("sig".into(), json!(self.signature_text()));
        Json::Object(m)
    }
}

/// The JSON form of an unsigned operation.
fn operation_json(op: &Operation) -> JsonMap<String, Json> {
    let mut m = JsonMap::new();
    m.insert("type".into(), json!(op.type_name()));
    match op {
        Operation::Regular(op) => {
            m.insert("rotationKeys".into(), json!(op.rotation_keys));
            m.insert("verificationMethods".into(), json!(op.verification_methods));
            m.insert("alsoKnownAs".into(), json!(op.also_known_as));
            let services: JsonMap<String, Json> = op
                .services
                .iter()
                .map(|(id, s)| {
                    (
                        id.clone(),
                        json!({"type": s.service_type, "endpoint": s.endpoint}),
                    )
                })
                .collect();
            m.insert("services".into(), Json::Object(services));
            m.insert("prev".into(), json!(op.prev));
        }
        Operation::Tombstone(op) => {
            m.insert("prev".into(), json!(op.prev));
        }
        Operation::LegacyCreate(op) => {
            m.insert("signingKey".into(), json!(op.signing_key));
            m.insert("recoveryKey".into(), json!(op.recovery_key));
            m.insert("handle".into(), json!(op.handle));
            m.insert("service".into(), json!(op.service));
            m.insert("prev".into(), Json::Null);
        }
    }
    m
}

/// Refuses any field outside `allowed` and requires all of them.
fn only_fields(obj: &JsonMap<String, Json>, allowed: &[&str]) -> Result<(), OpError> {
    if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(shape(&format!("unknown field {}", quote(unknown))));
    }
    if let Some(missing) = allowed.iter().find(|k| !obj.contains_key(**k)) {
        return Err(shape(&format!("missing field `{missing}`")));
    }
    Ok(())
}

fn string(obj: &JsonMap<String, Json>, key: &str) -> Result<String, OpError> {
    obj.get(key)
        .and_then(Json::as_str)
        .map(str::to_owned)
        .ok_or_else(|| shape(&format!("`{key}` must be a string")))
}

fn string_array(obj: &JsonMap<String, Json>, key: &str) -> Result<Vec<String>, OpError> {
    let items = obj
        .get(key)
        .and_then(Json::as_array)
        .ok_or_else(|| shape(&format!("`{key}` must be an array of strings")))?;
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| shape(&format!("`{key}` must be an array of strings")))
        })
        .collect()
}

fn string_map(obj: &JsonMap<String, Json>, key: &str) -> Result<BTreeMap<String, String>, OpError> {
    let map = obj
        .get(key)
        .and_then(Json::as_object)
        .ok_or_else(|| shape(&format!("`{key}` must be an object of strings")))?;
    map.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_owned()))
                .ok_or_else(|| shape(&format!("`{key}` must be an object of strings")))
        })
        .collect()
}

fn services(obj: &JsonMap<String, Json>) -> Result<BTreeMap<String, Service>, OpError> {
    let map = obj
        .get("services")
        .and_then(Json::as_object)
        .ok_or_else(|| shape("`services` must be an object"))?;
    let mut out = BTreeMap::new();
    for (id, entry) in map {
        let entry = entry
            .as_object()
            .ok_or_else(|| shape(&format!("services.{} must be an object", quote(id))))?;
        only_fields(entry, &["type", "endpoint"])?;
        out.insert(
            id.clone(),
            Service {
                service_type: string(entry, "type")?,
                endpoint: string(entry, "endpoint")?,
            },
        );
    }
    Ok(out)
}

/// `prev`: present, and either null or the canonical string of a dag-cbor
/// sha2-256 CIDv1 (the only kind an operation can have).
fn nullable_cid(obj: &JsonMap<String, Json>) -> Result<Option<String>, OpError> {
    match obj.get("prev") {
        None => Err(shape(
            "missing field `prev` (genesis needs an explicit null)",
        )),
        Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => {
            let cid: Cid = s
                .parse()
                .map_err(|_| shape(&format!("prev {} is not a CID", quote(s))))?;
            if !cid.is_blessed() || cid.codec() != Some(Codec::DagCbor) || cid.to_string() != *s {
                return Err(shape(&format!(
                    "prev {} is not a dag-cbor CIDv1 in base32",
                    quote(s)
                )));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(shape("`prev` must be a CID string or null")),
    }
}

fn shape(msg: &str) -> OpError {
    OpError::Shape(msg.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Curve, PrivateKey};

    fn genesis(rotation: &PrivateKey, handle: &str) -> SignedOperation {
        let signing = PrivateKey::generate(Curve::K256);
        Operation::Regular(RegularOp::for_account(
            &signing.public_key().to_did_key(),
            handle,
            "https://pds.example.com",
            vec![rotation.public_key().to_did_key()],
        ))
        .sign(rotation)
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let rotation = PrivateKey::generate(Curve::K256);
        let op = genesis(&rotation, "json.test");
        let back = SignedOperation::from_json(&op.to_json()).unwrap();
        assert_eq!(back, op);
        let bytes = op.to_json().to_string();
        assert_eq!(
            SignedOperation::from_json_bytes(bytes.as_bytes()).unwrap(),
            op
        );
    }

    #[test]
    fn strict_shape() {
        let rotation = PrivateKey::generate(Curve::K256);
        let good = genesis(&rotation, "shape.test").to_json();
        let with = |f: &dyn Fn(&mut Json)| {
            let mut j = good.clone();
            f(&mut j);
            SignedOperation::from_json(&j)
        };
        assert!(with(&|_| {}).is_ok());
        for bad in [
            with(&|j| {
                j["extra"] = json!(1);
            }),
            with(&|j| {
                j.as_object_mut().unwrap().remove("prev");
            }),
            with(&|j| {
                j["prev"] = json!("not-a-cid");
            }),
            with(&|j| {
                j["prev"] =
                    json!({"$link": "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm"});
            }),
            with(&|j| {
                // A raw-codec CID is not an operation's CID.
                j["prev"] = json!(Cid::for_raw(b"x").to_string());
            }),
            with(&|j| {
                j["type"] = json!("plc_whatever");
            }),
            with(&|j| {
                j["rotationKeys"] = json!("did:key:x");
            }),
            with(&|j| {
                j["services"]["atproto_pds"]["extra"] = json!("x");
            }),
            with(&|j| {
                j["alsoKnownAs"] = json!([1]);
            }),
            with(&|j| {
                j.as_object_mut().unwrap().remove("sig");
            }),
        ] {
            assert!(matches!(bad, Err(OpError::Shape(_))), "{bad:?}");
        }
        assert!(SignedOperation::from_json(&json!([])).is_err());
        assert!(SignedOperation::from_json_bytes(b"{").is_err());
    }
}
