//! PLC operations (digest §6.3): the model, the canonical DAG-CBOR that is
//! signed and hashed, the CID, DID derivation, signing and signature
//! verification.
//!
//! Three kinds exist:
//!
//! - `plc_operation` ([`RegularOp`]): the full state (rotation keys,
//!   verification methods, handles, services) plus `prev`;
//! - `plc_tombstone` ([`TombstoneOp`]): ends the DID;
//! - `create` ([`LegacyCreateOp`]): the original genesis format. Old DIDs were
//!   derived from it, so it parses and verifies; new ones are refused by the
//!   directory (see [`Directory::submit`](super::Directory::submit)).
//!
//! The JSON form, parsed strictly, is in [`super::op_json`]; the limits an op
//! must keep, and the two ways an op is made by hand that keep them
//! (`sign`, `from_parts`), are in [`super::limits`].
//!
//! ```
//! use atrelay::crypto::{Curve, PrivateKey};
//! use atrelay::plc::{Operation, RegularOp, SignedOperation};
//! let rotation = PrivateKey::generate(Curve::K256);
//! let signing = PrivateKey::generate(Curve::K256);
//! let op = RegularOp::for_account(
//!     &signing.public_key().to_did_key(),
//!     "alice.test",
//!     "https://pds.test",
//!     vec![rotation.public_key().to_did_key()],
//! );
//! let signed = Operation::Regular(op).sign(&rotation).unwrap();
//! let did = signed.derive_did();
//! assert!(did.starts_with("did:plc:") && did.len() == 32);
//! let parsed = SignedOperation::from_json(&signed.to_json()).unwrap();
//! assert_eq!(parsed.cid(), signed.cid());
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::error::SignatureRejected;
use super::signature::{encode_signature, verify_with_keys};
use crate::identity::PDS_SERVICE_TYPE;
use crate::wire::base32;
use crate::wire::cbor::Value;
use crate::wire::cid::Cid;

/// `type` of a regular operation.
pub const TYPE_REGULAR: &str = "plc_operation";
/// `type` of a tombstone.
pub const TYPE_TOMBSTONE: &str = "plc_tombstone";
/// `type` of a legacy genesis operation.
pub const TYPE_LEGACY_CREATE: &str = "create";
/// Service id of an account's PDS.
pub const PDS_SERVICE_ID: &str = "atproto_pds";
/// Verification-method id of an account's repo signing key.
pub const SIGNING_KEY_ID: &str = "atproto";

/// One entry of `services`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `type`, e.g. `AtprotoPersonalDataServer`.
    pub service_type: String,
    /// `endpoint`, e.g. `https://pds.example.com`.
    pub endpoint: String,
}

/// A `plc_operation`: the complete new state of the DID, and the op it follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegularOp {
    /// did:keys allowed to sign the next operation, highest authority first.
    pub rotation_keys: Vec<String>,
    /// Id (no `#`) → did:key, e.g. `atproto` → the repo signing key.
    pub verification_methods: BTreeMap<String, String>,
    /// URIs, e.g. `at://alice.example.com`.
    pub also_known_as: Vec<String>,
    /// Id (no `#`) → service, e.g. `atproto_pds` → the PDS.
    pub services: BTreeMap<String, Service>,
    /// CID string of the previous operation; `None` for genesis.
    pub prev: Option<String>,
}

/// A `plc_tombstone`: the DID is deactivated for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TombstoneOp {
    /// CID string of the operation it follows.
    pub prev: String,
}

/// A legacy `create` genesis operation (`prev` is always null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyCreateOp {
    /// did:key of the repo signing key (also the lower-authority rotation key).
    pub signing_key: String,
    /// did:key of the recovery key (the higher-authority rotation key).
    pub recovery_key: String,
    /// Bare handle, without `at://`.
    pub handle: String,
    /// PDS URL (or bare host, in the oldest ops).
    pub service: String,
}

/// An unsigned operation of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `plc_operation`.
    Regular(RegularOp),
    /// `plc_tombstone`.
    Tombstone(TombstoneOp),
    /// legacy `create`.
    LegacyCreate(LegacyCreateOp),
}

/// An operation with its signature: what is posted, stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOperation {
    op: Operation,
    sig: [u8; 64],
}

impl RegularOp {
    /// The operation a PDS registers for an account: `signing_key` as the
    /// `atproto` verification method, `at://handle`, the PDS `endpoint`, and
    /// the given rotation keys (highest authority first). `prev` is `None`
    /// (genesis); set it for an update.
    pub fn for_account(
        signing_key: &str,
        handle: &str,
        endpoint: &str,
        rotation_keys: Vec<String>,
    ) -> RegularOp {
        let mut op = RegularOp {
            rotation_keys,
            verification_methods: BTreeMap::new(),
            also_known_as: Vec::new(),
            services: BTreeMap::new(),
            prev: None,
        };
        op.set_signing_key(signing_key);
        op.set_handle(handle);
        op.set_pds_endpoint(endpoint);
        op
    }

    /// Makes `at://handle` the first `alsoKnownAs` entry (the one resolvers
    /// read), dropping any other `at://` entry; other URIs are kept.
    pub fn set_handle(&mut self, handle: &str) {
        self.also_known_as.retain(|aka| !aka.starts_with("at://"));
        self.also_known_as.insert(0, format!("at://{handle}"));
    }

    /// Sets the `atproto_pds` service to `endpoint`.
    pub fn set_pds_endpoint(&mut self, endpoint: &str) {
        self.services.insert(
            PDS_SERVICE_ID.to_owned(),
            Service {
                service_type: PDS_SERVICE_TYPE.to_owned(),
                endpoint: endpoint.to_owned(),
            },
        );
    }

    /// Sets the `atproto` verification method (the repo signing key).
    pub fn set_signing_key(&mut self, did_key: &str) {
        self.verification_methods
            .insert(SIGNING_KEY_ID.to_owned(), did_key.to_owned());
    }
}

impl Operation {
    /// The `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            Operation::Regular(_) => TYPE_REGULAR,
            Operation::Tombstone(_) => TYPE_TOMBSTONE,
            Operation::LegacyCreate(_) => TYPE_LEGACY_CREATE,
        }
    }

    /// The `prev` CID string; `None` for a genesis operation.
    pub fn prev(&self) -> Option<&str> {
        match self {
            Operation::Regular(op) => op.prev.as_deref(),
            Operation::Tombstone(op) => Some(&op.prev),
            Operation::LegacyCreate(_) => None,
        }
    }

    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Operation::Tombstone(_))
    }

    /// The state this operation sets, as a regular op: a legacy `create`
    /// becomes rotation keys `[recoveryKey, signingKey]`, `atproto` =
    /// signingKey, `at://handle` and an `atproto_pds` service whose endpoint
    /// gets `https://` if it had no scheme (as the reference normalizes it).
    /// `None` for a tombstone, which sets no state.
    pub fn normalized(&self) -> Option<Cow<'_, RegularOp>> {
        match self {
            Operation::Regular(op) => Some(Cow::Borrowed(op)),
            Operation::Tombstone(_) => None,
            Operation::LegacyCreate(op) => {
                let endpoint =
                    if op.service.starts_with("http://") || op.service.starts_with("https://") {
                        op.service.clone()
                    } else {
                        format!("https://{}", op.service)
                    };
                let handle = op.handle.strip_prefix("at://").unwrap_or(&op.handle);
                Some(Cow::Owned(RegularOp::for_account(
                    &op.signing_key,
                    handle,
                    &endpoint,
                    vec![op.recovery_key.clone(), op.signing_key.clone()],
                )))
            }
        }
    }

    /// The rotation keys that may sign the *next* operation (none after a tombstone).
    pub fn rotation_keys(&self) -> Vec<String> {
        self.normalized()
            .map(|op| op.rotation_keys.clone())
            .unwrap_or_default()
    }

    /// Canonical DAG-CBOR of the unsigned operation: the bytes that are signed.
    pub fn unsigned_cbor(&self) -> Vec<u8> {
        self.to_cbor_value(None).to_cbor()
    }

    /// The data-model value of this operation, with `sig` when given.
    fn to_cbor_value(&self, sig: Option<String>) -> Value<'_> {
        let text = |s: &str| Value::Text(Cow::Owned(s.to_owned()));
        let texts = |v: &[String]| Value::Array(v.iter().map(|s| text(s)).collect());
        let prev = |p: Option<&str>| p.map_or(Value::Null, text);
        let mut map: Vec<(Cow<'_, str>, Value<'_>)> =
            vec![(Cow::Borrowed("type"), text(self.type_name()))];
        match self {
            Operation::Regular(op) => {
                map.push((Cow::Borrowed("rotationKeys"), texts(&op.rotation_keys)));
                map.push((
                    Cow::Borrowed("verificationMethods"),
                    Value::Map(
                        op.verification_methods
                            .iter()
                            .map(|(id, key)| (Cow::Owned(id.clone()), text(key)))
                            .collect(),
                    ),
                ));
                map.push((Cow::Borrowed("alsoKnownAs"), texts(&op.also_known_as)));
                map.push((
                    Cow::Borrowed("services"),
                    Value::Map(
                        op.services
                            .iter()
                            .map(|(id, s)| {
                                let entry = Value::Map(vec![
                                    (Cow::Borrowed("type"), text(&s.service_type)),
                                    (Cow::Borrowed("endpoint"), text(&s.endpoint)),
                                ]);
                                (Cow::Owned(id.clone()), entry)
                            })
                            .collect(),
                    ),
                ));
                map.push((Cow::Borrowed("prev"), prev(op.prev.as_deref())));
            }
            Operation::Tombstone(op) => {
                map.push((Cow::Borrowed("prev"), text(&op.prev)));
            }
            Operation::LegacyCreate(op) => {
                map.push((Cow::Borrowed("signingKey"), text(&op.signing_key)));
                map.push((Cow::Borrowed("recoveryKey"), text(&op.recovery_key)));
                map.push((Cow::Borrowed("handle"), text(&op.handle)));
                map.push((Cow::Borrowed("service"), text(&op.service)));
                map.push((Cow::Borrowed("prev"), Value::Null));
            }
        }
        if let Some(sig) = sig {
            map.push((Cow::Borrowed("sig"), Value::Text(Cow::Owned(sig))));
        }
        // Value::encode sorts the keys canonically.
        Value::Map(map)
    }
}

impl SignedOperation {
    /// An operation and signature, unchecked: for the JSON parser, which
    /// runs the limits' check itself when the input is not the directory's
    /// own, and for the checked constructors in `limits.rs`.
    pub(super) fn unchecked(op: Operation, sig: [u8; 64]) -> SignedOperation {
        SignedOperation { op, sig }
    }

    /// The unsigned operation.
    pub fn operation(&self) -> &Operation {
        &self.op
    }

    /// The 64-byte compact signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.sig
    }

    /// The `sig` text (base64url, no padding).
    pub fn signature_text(&self) -> String {
        encode_signature(&self.sig)
    }

    /// Canonical DAG-CBOR of the unsigned operation (what the signature covers).
    pub fn unsigned_cbor(&self) -> Vec<u8> {
        self.op.unsigned_cbor()
    }

    /// Canonical DAG-CBOR of the signed operation (what is hashed and limited).
    pub fn signed_cbor(&self) -> Vec<u8> {
        self.op.to_cbor_value(Some(self.signature_text())).to_cbor()
    }

    /// The operation's CID: CIDv1, dag-cbor, sha2-256 of [`Self::signed_cbor`].
    /// The next operation names it as `prev`.
    pub fn cid(&self) -> Cid {
        Cid::for_cbor(&self.signed_cbor())
    }

    /// The DID this operation creates if it is a genesis: `did:plc:` + the
    /// first 24 characters of base32(sha256(signed DAG-CBOR)).
    pub fn derive_did(&self) -> String {
        let digest = Sha256::digest(self.signed_cbor());
        let mut id = base32::encode(&digest);
        id.truncate(24);
        format!("did:plc:{id}")
    }

    /// Verifies the signature with each of `keys` (did:key strings, highest
    /// authority first) and returns the index of the first that verifies.
    /// High-S signatures never verify. The error is a reason to show.
    pub fn verify(&self, keys: &[String]) -> Result<usize, SignatureRejected> {
        verify_with_keys(keys, &self.unsigned_cbor(), &self.sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{negate_s, Curve, PrivateKey};
    use crate::plc::OpError;
    use serde_json::json;

    fn key() -> PrivateKey {
        PrivateKey::generate(Curve::K256)
    }

    fn genesis(rotation: &PrivateKey, handle: &str) -> SignedOperation {
        let signing = key();
        Operation::Regular(RegularOp::for_account(
            &signing.public_key().to_did_key(),
            handle,
            "https://pds.example.com",
            vec![rotation.public_key().to_did_key()],
        ))
        .sign(rotation)
        .unwrap()
    }

    /// Real operations from plc.directory (public data): bsky.app's genesis
    /// and first update, and a legacy `create` genesis. Their DIDs and CIDs
    /// are what the live directory computed, so matching them proves the
    /// encoding, hashing and DID derivation are byte-exact.
    const BSKY_GENESIS: &str = r#"{
        "sig": "9NuYV7AqwHVTc0YuWzNV3CJafsSZWH7qCxHRUIP2xWlB-YexXC1OaYAnUayiCXLVzRQ8WBXIqF-SvZdNalwcjA",
        "prev": null, "type": "plc_operation",
        "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://bsky.social"}},
        "alsoKnownAs": ["at://bluesky-team.bsky.social"],
        "rotationKeys": ["did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
                         "did:key:zQ3shpKnbdPx3g3CmPf5cRVTPe1HtSwVn5ish3wSnDPQCbLJK"],
        "verificationMethods": {"atproto": "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"}}"#;
    const BSKY_UPDATE: &str = r#"{
        "sig": "1mEWzRtFOgeRXH-YCSPTxb990JOXxa__n8Qw6BOKl7Ndm6OFFmwYKiiMqMCpAbxpnGjF5abfIsKc7u3a77Cbnw",
        "prev": "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm", "type": "plc_operation",
        "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://bsky.social"}},
        "alsoKnownAs": ["at://bsky.app"],
        "rotationKeys": ["did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
                         "did:key:zQ3shpKnbdPx3g3CmPf5cRVTPe1HtSwVn5ish3wSnDPQCbLJK"],
        "verificationMethods": {"atproto": "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"}}"#;
    const LEGACY_CREATE: &str = r#"{
        "sig": "KuN3A61golVNSDU71wZKLP9lVuXk6YekJAz1lwDzrPsNTEWHBBW_8zSyV6pDxV4KiYXuAXlS1Ik47XkjQZ94mA",
        "prev": null, "type": "create", "handle": "jay.bsky.social", "service": "https://bsky.social",
        "signingKey": "did:key:zQ3shP5TBe1sQfSttXty15FAEHV1DZgcxRZNxvEWnPfLFwLxJ",
        "recoveryKey": "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg"}"#;

    fn parse(text: &str) -> SignedOperation {
        SignedOperation::from_json(&serde_json::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn real_operations_hash_and_verify_like_the_directory() {
        let genesis = parse(BSKY_GENESIS);
        assert_eq!(genesis.derive_did(), "did:plc:z72i7hdynmk6r22z27h6tvur");
        assert_eq!(
            genesis.cid().to_string(),
            "bafyreigp6shzy6dlcxuowwoxz7u5nemdrkad2my5zwzpwilcnhih7bw6zm"
        );
        let keys = genesis.operation().rotation_keys();
        assert!(genesis.verify(&keys).is_ok());
        let update = parse(BSKY_UPDATE);
        assert_eq!(
            update.cid().to_string(),
            "bafyreihmuvr3frdvd6vmdhucih277prdcfcezf67lasg5oekxoimnunjoq"
        );
        assert!(update.verify(&keys).is_ok());
        // The JSON form round-trips (key order aside).
        assert_eq!(parse(&update.to_json().to_string()), update);
    }

    #[test]
    fn legacy_create_parses_verifies_and_normalizes() {
        let op = parse(LEGACY_CREATE);
        assert_eq!(op.derive_did(), "did:plc:oky5czdrnfjpqslsw2a5iclo");
        assert_eq!(
            op.cid().to_string(),
            "bafyreidswhiwi4ljkl4es4vwqhkas3spmmktortqbp6lkrb5v7qqdfr3mm"
        );
        let keys = op.operation().rotation_keys();
        assert_eq!(
            keys,
            [
                "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
                "did:key:zQ3shP5TBe1sQfSttXty15FAEHV1DZgcxRZNxvEWnPfLFwLxJ"
            ]
        );
        assert!(op.verify(&keys).is_ok());
        let normal = op.operation().normalized().unwrap();
        assert_eq!(normal.also_known_as, ["at://jay.bsky.social"]);
        assert_eq!(
            normal.services[PDS_SERVICE_ID].endpoint,
            "https://bsky.social"
        );
        assert_eq!(
            normal.verification_methods[SIGNING_KEY_ID],
            "did:key:zQ3shP5TBe1sQfSttXty15FAEHV1DZgcxRZNxvEWnPfLFwLxJ"
        );
        // A fresh legacy create signs and verifies with our keys too.
        let recovery = key();
        let signing = key();
        let fresh = Operation::LegacyCreate(LegacyCreateOp {
            signing_key: signing.public_key().to_did_key(),
            recovery_key: recovery.public_key().to_did_key(),
            handle: "old.test".into(),
            service: "pds.test".into(),
        })
        .sign(&signing)
        .unwrap();
        let fresh = parse(&fresh.to_json().to_string());
        assert_eq!(fresh.verify(&fresh.operation().rotation_keys()), Ok(1));
        assert_eq!(
            fresh.operation().normalized().unwrap().services[PDS_SERVICE_ID].endpoint,
            "https://pds.test"
        );
    }

    #[test]
    fn encode_cid_and_did_round_trip() {
        let rotation = key();
        let op = genesis(&rotation, "alice.test");
        let json = op.to_json();
        let back = SignedOperation::from_json(&json).unwrap();
        assert_eq!(back, op);
        assert_eq!(back.signed_cbor(), op.signed_cbor());
        assert_eq!(back.cid(), Cid::for_cbor(&op.signed_cbor()));
        let did = op.derive_did();
        crate::identity::validate_plc_did(&did).unwrap();
        // The signed CBOR decodes as canonical DAG-CBOR with `sig` as a text
        // string and `prev` as an explicit null.
        let bytes = op.signed_cbor();
        let value = Value::decode(&bytes).unwrap();
        assert_eq!(value.get("prev"), Some(&Value::Null));
        assert!(matches!(value.get("sig"), Some(Value::Text(_))));
        // The unsigned bytes are the signed ones without `sig`.
        assert!(op.unsigned_cbor().len() < bytes.len());
        assert_eq!(op.verify(&[rotation.public_key().to_did_key()]), Ok(0));
    }

    #[test]
    fn signature_checks() {
        let rotation = key();
        let op = genesis(&rotation, "sig.test");
        let keys = vec![rotation.public_key().to_did_key()];
        assert_eq!(op.verify(&keys), Ok(0));

        // Signed by a key that is not a rotation key.
        let stranger = key();
        let forged = op.operation().clone().sign(&stranger).unwrap();
        assert!(forged.verify(&keys).is_err());

        // High S: the same signature with s' = n - s verifies mathematically,
        // but atproto forbids it.
        let high = negate_s(Curve::K256, op.signature());
        let malleated = SignedOperation::from_parts(op.operation().clone(), high).unwrap();
        let err = malleated.verify(&keys).unwrap_err();
        assert!(err.to_string().contains("high S"), "{err}");

        let mut json = op.to_json();
        let sig = op.signature_text();
        // DER encoding (a 0x30 SEQUENCE of two INTEGERs) is refused at parse.
        let der = der_encode(op.signature());
        json["sig"] = json!(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            der
        ));
        assert!(matches!(
            SignedOperation::from_json(&json),
            Err(OpError::SignatureEncoding(_))
        ));
        // Padding.
        json["sig"] = json!(format!("{sig}=="));
        assert!(matches!(
            SignedOperation::from_json(&json),
            Err(OpError::SignatureEncoding(_))
        ));
        // Standard alphabet instead of url: find a signature whose url form
        // has '-' or '_' (most do) and spell it with '+' and '/'.
        let mut n = 0;
        let (op2, text) = loop {
            let o = genesis(&rotation, &format!("h{n}.test"));
            let t = o.signature_text();
            if t.contains('-') || t.contains('_') {
                break (o, t);
            }
            n += 1;
        };
        let mut json2 = op2.to_json();
        json2["sig"] = json!(text.replace('-', "+").replace('_', "/"));
        assert!(matches!(
            SignedOperation::from_json(&json2),
            Err(OpError::SignatureEncoding(_))
        ));
    }

    /// DER form of a compact signature, for the negative test.
    fn der_encode(sig: &[u8; 64]) -> Vec<u8> {
        fn int(bytes: &[u8]) -> Vec<u8> {
            let mut b: Vec<u8> = bytes.iter().copied().skip_while(|&x| x == 0).collect();
            if b.first().is_some_and(|&x| x & 0x80 != 0) {
                b.insert(0, 0);
            }
            let mut out = vec![0x02, b.len() as u8];
            out.extend(b);
            out
        }
        let body = [int(&sig[..32]), int(&sig[32..])].concat();
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }
}
