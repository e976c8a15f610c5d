//! A DID's current PLC state (`GET /{did}/data`) and the DID document rendered
//! from it (`GET /{did}`, digest §6.2).
//!
//! The document is what every resolver reads, so it follows the shape the
//! reference directory serves: `Multikey` verification methods with absolute
//! ids (`did:plc:…#atproto`), relative service ids (`#atproto_pds`), and the
//! `@context` list extended with the suite of each key's curve. The relay's
//! own [`parse_document`](crate::identity::parse_document) reads it back
//! (tested below).

use std::collections::BTreeMap;

use serde_json::{json, Map as JsonMap, Value as Json};

use super::op::{Operation, Service};
use crate::crypto::{Curve, PublicKey, DID_KEY_PREFIX, MULTIKEY_TYPE};

/// The DID-core context every document starts with.
const DID_CONTEXT: &str = "https://www.w3.org/ns/did/v1";
/// The context that defines `Multikey`.
const MULTIKEY_CONTEXT: &str = "https://w3id.org/security/multikey/v1";
/// The suite context for a P-256 key.
const P256_CONTEXT: &str = "https://w3id.org/security/suites/ecdsa-2019/v1";
/// The suite context for a secp256k1 key.
const K256_CONTEXT: &str = "https://w3id.org/security/suites/secp256k1-2019/v1";

/// The state set by a DID's latest valid (non-tombstone) operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlcData {
    /// The DID.
    pub did: String,
    /// did:keys allowed to sign the next operation, highest authority first.
    pub rotation_keys: Vec<String>,
    /// Id → did:key.
    pub verification_methods: BTreeMap<String, String>,
    /// URIs, `at://handle` first by convention.
    pub also_known_as: Vec<String>,
    /// Id → service.
    pub services: BTreeMap<String, Service>,
}

impl PlcData {
    /// The state `op` sets for `did` (a legacy `create` normalized); `None`
    /// for a tombstone.
    pub fn from_operation(did: &str, op: &Operation) -> Option<PlcData> {
        let op = op.normalized()?;
        Some(PlcData {
            did: did.to_owned(),
            rotation_keys: op.rotation_keys.clone(),
            verification_methods: op.verification_methods.clone(),
            also_known_as: op.also_known_as.clone(),
            services: op.services.clone(),
        })
    }

    /// The `/data` JSON: `{did, rotationKeys, verificationMethods, alsoKnownAs, services}`.
    pub fn to_json(&self) -> Json {
        json!({
            "did": self.did,
            "rotationKeys": self.rotation_keys,
            "verificationMethods": self.verification_methods,
            "alsoKnownAs": self.also_known_as,
            "services": services_json(&self.services),
        })
    }

    /// The DID document.
    pub fn document(&self) -> Json {
        let mut context = vec![DID_CONTEXT, MULTIKEY_CONTEXT];
        let mut methods = Vec::with_capacity(self.verification_methods.len());
        for (id, did_key) in &self.verification_methods {
            // Verification methods may hold any did:key type; those we can
            // parse get their curve's suite context. The Multikey value is
            // the did:key without its prefix either way.
            if let Ok(key) = PublicKey::from_did_key(did_key) {
                let suite = match key.curve() {
                    Curve::P256 => P256_CONTEXT,
                    Curve::K256 => K256_CONTEXT,
                };
                if !context.contains(&suite) {
                    context.push(suite);
                }
            }
            let multibase = did_key.strip_prefix(DID_KEY_PREFIX).unwrap_or(did_key);
            methods.push(json!({
                "id": format!("{}#{id}", self.did),
                "type": MULTIKEY_TYPE,
                "controller": self.did,
                "publicKeyMultibase": multibase,
            }));
        }
        let services: Vec<Json> = self
            .services
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": format!("#{id}"),
                    "type": s.service_type,
                    "serviceEndpoint": s.endpoint,
                })
            })
            .collect();
        json!({
            "@context": context,
            "id": self.did,
            "alsoKnownAs": self.also_known_as,
            "verificationMethod": methods,
            "service": services,
        })
    }
}

fn services_json(services: &BTreeMap<String, Service>) -> Json {
    let map: JsonMap<String, Json> = services
        .iter()
        .map(|(id, s)| {
            (
                id.clone(),
                json!({"type": s.service_type, "endpoint": s.endpoint}),
            )
        })
        .collect();
    Json::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PrivateKey;
    use crate::identity::parse_document;
    use crate::plc::op::RegularOp;

    #[test]
    fn document_parses_with_the_relays_resolver() {
        for curve in [Curve::K256, Curve::P256] {
            let signing = PrivateKey::generate(curve);
            let rotation = PrivateKey::generate(Curve::K256);
            let op = Operation::Regular(RegularOp::for_account(
                &signing.public_key().to_did_key(),
                "Alice.Example.com",
                "https://pds.example.com:8443",
                vec![rotation.public_key().to_did_key()],
            ));
            let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
            let data = PlcData::from_operation(did, &op).unwrap();
            let doc = data.document();
            let identity = parse_document(did, &doc).unwrap();
            assert_eq!(identity.signing_key, Some(signing.public_key()));
            assert_eq!(identity.handle.as_deref(), Some("alice.example.com"));
            assert_eq!(
                identity.pds_endpoint.as_deref(),
                Some("https://pds.example.com:8443")
            );
            let ctx = doc["@context"].as_array().unwrap();
            assert_eq!(ctx[0], DID_CONTEXT);
            assert_eq!(ctx[1], MULTIKEY_CONTEXT);
            let suite = if curve == Curve::K256 {
                K256_CONTEXT
            } else {
                P256_CONTEXT
            };
            assert_eq!(ctx[2], suite);
            assert_eq!(doc["verificationMethod"][0]["id"], format!("{did}#atproto"));
            assert_eq!(doc["service"][0]["id"], "#atproto_pds");

            let data_json = data.to_json();
            assert_eq!(data_json["did"], did);
            assert_eq!(
                data_json["services"]["atproto_pds"]["endpoint"],
                "https://pds.example.com:8443"
            );
        }
    }

    #[test]
    fn tombstone_has_no_state() {
        let op = Operation::Tombstone(crate::plc::op::TombstoneOp {
            prev: "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm".into(),
        });
        assert_eq!(PlcData::from_operation("did:plc:x", &op), None);
    }
}
