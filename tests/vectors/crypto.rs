//! `crypto/`: signature fixtures and the W3C did:key derivation vectors.

use atrelay::crypto::{Curve, PrivateKey, PublicKey, SignatureError};
use base64::Engine;

use crate::common::{interop, read_json};

fn str_field<'a>(entry: &'a serde_json::Value, name: &str) -> &'a str {
    entry[name]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {name} in {entry}"))
}

/// The fixtures use standard base64 without padding.
fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("base64 {s}: {e}"))
}

#[test]
fn signature_fixtures() {
    let fixtures = read_json(interop("crypto/signature-fixtures.json"));
    let fixtures = fixtures.as_array().expect("array of fixtures");
    assert_eq!(fixtures.len(), 6, "signature-fixtures.json entries");

    let (mut valid, mut high_s, mut der) = (0, 0, 0);
    for entry in fixtures {
        let comment = str_field(entry, "comment");
        let expect_valid = entry["validSignature"].as_bool().expect("validSignature");
        let msg = b64(str_field(entry, "messageBase64"));
        let sig = b64(str_field(entry, "signatureBase64"));
        let key = PublicKey::from_did_key(str_field(entry, "publicKeyDid"))
            .unwrap_or_else(|e| panic!("{comment}: key: {e}"));
        let curve = Curve::from_jwt_alg(str_field(entry, "algorithm")).expect("algorithm");
        assert_eq!(key.curve(), curve, "{comment}");
        assert_eq!(
            key.legacy_key_type(),
            str_field(entry, "didDocSuite"),
            "{comment}"
        );
        // The did:key re-encodes to itself.
        assert_eq!(
            key.to_did_key(),
            str_field(entry, "publicKeyDid"),
            "{comment}"
        );

        let result = key.verify(&msg, &sig);
        assert_eq!(result.is_ok(), expect_valid, "{comment}: {result:?}");

        let tags: Vec<&str> = entry["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        if expect_valid {
            valid += 1;
        } else if tags.contains(&"high-s") {
            high_s += 1;
            assert_eq!(result, Err(SignatureError::HighS), "{comment}");
        } else if tags.contains(&"der-encoded") {
            der += 1;
            assert_eq!(
                result,
                Err(SignatureError::WrongLength(sig.len())),
                "{comment}"
            );
        } else {
            panic!("{comment}: invalid fixture with unknown tags {tags:?}");
        }

        // `publicKeyMultibase` here is z + base58(compressed point), no multicodec:
        // neither Multikey nor the spec's legacy form. It must not parse as a
        // Multikey; the legacy parser's tolerance of compressed points (as in the
        // reference implementation) reads it as the same key.
        let multibase = str_field(entry, "publicKeyMultibase");
        assert!(PublicKey::from_multikey(multibase).is_err(), "{comment}");
        let legacy = PublicKey::from_legacy_multibase(str_field(entry, "didDocSuite"), multibase)
            .unwrap_or_else(|e| panic!("{comment}: legacy: {e}"));
        assert_eq!(legacy, key, "{comment}");
    }
    assert_eq!((valid, high_s, der), (2, 2, 2));
}

fn check_didkey_vector(curve: Curve, secret: &[u8], expected: &str) {
    let key = PrivateKey::from_bytes(curve, secret).unwrap_or_else(|e| panic!("{expected}: {e}"));
    assert_eq!(key.to_bytes(), secret, "{expected}");
    let public = key.public_key();
    assert_eq!(public.to_did_key(), expected);
    let parsed = PublicKey::from_did_key(expected).unwrap_or_else(|e| panic!("{expected}: {e}"));
    assert_eq!(parsed, public);
    assert_eq!(parsed.curve(), curve);
    assert_eq!(parsed.to_did_key(), expected);
    let sig = key.sign(expected.as_bytes());
    assert_eq!(parsed.verify(expected.as_bytes(), &sig), Ok(()));
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("hex {s}: {e}")))
        .collect()
}

#[test]
fn w3c_didkey_k256() {
    let vectors = read_json(interop("crypto/w3c_didkey_K256.json"));
    let vectors = vectors.as_array().expect("array");
    assert_eq!(vectors.len(), 5);
    for v in vectors {
        let secret = hex(str_field(v, "privateKeyBytesHex"));
        check_didkey_vector(Curve::K256, &secret, str_field(v, "publicDidKey"));
    }
}

#[test]
fn w3c_didkey_p256() {
    let vectors = read_json(interop("crypto/w3c_didkey_P256.json"));
    let vectors = vectors.as_array().expect("array");
    assert_eq!(vectors.len(), 1);
    for v in vectors {
        let secret = bs58::decode(str_field(v, "privateKeyBytesBase58"))
            .into_vec()
            .expect("base58");
        check_didkey_vector(Curve::P256, &secret, str_field(v, "publicDidKey"));
    }
}
