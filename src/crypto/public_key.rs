//! A parsed public key, held in the form its verify backend uses directly.

use std::fmt;
use std::hash::{Hash, Hasher};

use super::backend;
use super::curve::Curve;
use super::error::{KeyError, SignatureError};
use super::multikey;

/// An atproto signing public key (k256 or p256), parsed and ready to verify.
///
/// Parsing (especially point decompression) costs a noticeable share of a
/// verify, so a `PublicKey` keeps the backend-ready form — a libsecp256k1 key for
/// k256, the uncompressed point for ring on p256 — and callers should cache it per
/// account rather than re-parse the did:key on every commit.
///
/// Equality and hashing are by curve and compressed point. The compressed
/// point is derived when asked for rather than stored: a relay caches a key
/// per account, millions of them, and 33 bytes each is worth saving.
#[derive(Clone)]
pub struct PublicKey {
    inner: Inner,
}

/// The backend-ready key.
#[derive(Clone)]
enum Inner {
    K256(secp256k1::PublicKey),
    P256([u8; 65]),
}

impl PublicKey {
    /// Parses a `did:key:z…` string (Multikey with the `did:key:` prefix).
    pub fn from_did_key(s: &str) -> Result<Self, KeyError> {
        let (curve, compressed) = multikey::decode_did_key(s)?;
        Self::from_compressed(curve, &compressed)
    }

    /// Parses a Multikey string, `z` + base58btc(multicodec ‖ compressed point),
    /// as found in a DID document's `publicKeyMultibase` with `type: "Multikey"`.
    /// The multicodec (`e7 01` secp256k1-pub, `80 24` p256-pub) selects the curve.
    pub fn from_multikey(s: &str) -> Result<Self, KeyError> {
        let (curve, compressed) = multikey::decode_multikey(s)?;
        Self::from_compressed(curve, &compressed)
    }

    /// Parses a legacy DID-document key: `key_type` is
    /// `EcdsaSecp256r1VerificationKey2019` or `EcdsaSecp256k1VerificationKey2019`
    /// and `s` is `z` + base58btc of the uncompressed point (no multicodec). A
    /// compressed point is also accepted, as the reference implementation does.
    pub fn from_legacy_multibase(key_type: &str, s: &str) -> Result<Self, KeyError> {
        let curve = multikey::legacy_curve(key_type)?;
        let point = multikey::decode_legacy(s)?;
        Self::from_sec1(curve, &point)
    }

    /// Builds a key from a 33-byte SEC1 compressed point (`02`/`03` ‖ x),
    /// checking that it lies on the curve.
    pub fn from_compressed(curve: Curve, bytes: &[u8]) -> Result<Self, KeyError> {
        let compressed: [u8; 33] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: 33,
            got: bytes.len(),
        })?;
        let inner = match curve {
            Curve::K256 => Inner::K256(backend::prepare_k256_libsecp256k1(&compressed)?),
            Curve::P256 => Inner::P256(backend::prepare_p256_ring(&compressed)?),
        };
        Ok(PublicKey { inner })
    }

    /// Wraps a libsecp256k1 key the crate derived itself (no re-parse).
    pub(crate) fn from_libsecp256k1(key: secp256k1::PublicKey) -> Self {
        PublicKey {
            inner: Inner::K256(key),
        }
    }

    /// Builds a key from a SEC1 point, compressed (33 bytes) or uncompressed
    /// (65 bytes, `04` ‖ x ‖ y), checking that it lies on the curve.
    pub(crate) fn from_sec1(curve: Curve, bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() == 33 {
            return Self::from_compressed(curve, bytes);
        }
        if bytes.len() != 65 {
            return Err(KeyError::WrongLength {
                expected: 65,
                got: bytes.len(),
            });
        }
        if bytes[0] != 0x04 {
            return Err(KeyError::InvalidPoint(curve));
        }
        match curve {
            Curve::K256 => {
                let key = secp256k1::PublicKey::from_slice(bytes)
                    .map_err(|_| KeyError::InvalidPoint(curve))?;
                Ok(PublicKey {
                    inner: Inner::K256(key),
                })
            }
            Curve::P256 => {
                // Checks the point is on the curve.
                p256::PublicKey::from_sec1_bytes(bytes)
                    .map_err(|_| KeyError::InvalidPoint(curve))?;
                let mut uncompressed = [0u8; 65];
                uncompressed.copy_from_slice(bytes);
                Ok(PublicKey {
                    inner: Inner::P256(uncompressed),
                })
            }
        }
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self.inner {
            Inner::K256(_) => Curve::K256,
            Inner::P256(_) => Curve::P256,
        }
    }

    /// The 33-byte SEC1 compressed point, the form inside Multikey and did:key.
    pub fn compressed(&self) -> [u8; 33] {
        match &self.inner {
            Inner::K256(key) => key.serialize(),
            Inner::P256(point) => {
                // `04 ‖ x ‖ y` → `02|03 ‖ x`, the prefix giving y's parity.
                let mut c = [0u8; 33];
                c[0] = 0x02 | (point[64] & 1);
                c[1..].copy_from_slice(&point[1..33]);
                c
            }
        }
    }

    /// The 65-byte SEC1 uncompressed point (`04` ‖ x ‖ y), the form inside the
    /// legacy DID-document encoding.
    pub fn uncompressed(&self) -> [u8; 65] {
        match &self.inner {
            Inner::K256(key) => key.serialize_uncompressed(),
            Inner::P256(point) => *point,
        }
    }

    /// The Multikey string (`zQ3s…` for k256, `zDnae…` for p256).
    pub fn to_multikey(&self) -> String {
        multikey::encode_multikey(self.curve(), &self.compressed())
    }

    /// The did:key string (`did:key:` + Multikey).
    pub fn to_did_key(&self) -> String {
        multikey::encode_did_key(self.curve(), &self.compressed())
    }

    /// The legacy DID-document `publicKeyMultibase` (`z` + base58btc of the
    /// uncompressed point), to pair with [`Self::legacy_key_type`].
    pub fn to_legacy_multibase(&self) -> String {
        multikey::encode_legacy(&self.uncompressed())
    }

    /// The legacy DID-document verification-method `type` for this key's curve.
    pub fn legacy_key_type(&self) -> &'static str {
        match self.curve() {
            Curve::K256 => multikey::LEGACY_K256_TYPE,
            Curve::P256 => multikey::LEGACY_P256_TYPE,
        }
    }

    /// Verifies an atproto signature over `msg` (the message itself: it is hashed
    /// with SHA-256 here).
    ///
    /// `sig` must be the 64-byte compact `r‖s` form (DER or any other length is
    /// [`SignatureError::WrongLength`]) with low S (else [`SignatureError::HighS`]).
    /// Uses libsecp256k1 for k256 and ring for p256, the fastest measured backends.
    #[inline]
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        match &self.inner {
            Inner::K256(key) => backend::verify_k256_libsecp256k1(key, msg, sig),
            Inner::P256(point) => backend::verify_p256_ring(point, msg, sig),
        }
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.curve() == other.curve() && self.compressed() == other.compressed()
    }
}

impl Eq for PublicKey {}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.curve().hash(state);
        self.compressed().hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey")
            .field(&self.to_did_key())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{negate_s, PrivateKey};
    use super::*;

    const CURVES: [Curve; 2] = [Curve::K256, Curve::P256];

    fn msg() -> Vec<u8> {
        (0..300u32).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn sign_verify_round_trip() {
        for curve in CURVES {
            let key = PrivateKey::generate(curve);
            let public = PublicKey::from_did_key(&key.public_key().to_did_key()).expect("parse");
            assert_eq!(public.curve(), curve);
            let m = msg();
            let sig = key.sign(&m);
            assert_eq!(public.verify(&m, &sig), Ok(()));
            assert_eq!(public.verify(b"", &key.sign(b"")), Ok(()));
        }
    }

    #[test]
    fn high_s_twin_rejected() {
        for curve in CURVES {
            let key = PrivateKey::generate(curve);
            let public = key.public_key();
            let m = msg();
            let sig = key.sign(&m);
            let high = negate_s(curve, &sig);
            assert_eq!(public.verify(&m, &high), Err(SignatureError::HighS));
        }
    }

    #[test]
    fn der_and_other_lengths_rejected() {
        let m = msg();
        let k = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let sig: k256::ecdsa::Signature = k256::ecdsa::signature::Signer::sign(&k, &m[..]);
        let der = sig.to_der();
        let public = PublicKey::from_compressed(
            Curve::K256,
            k.verifying_key().to_encoded_point(true).as_bytes(),
        )
        .expect("key");
        assert_eq!(public.verify(&m, &sig.to_bytes()), Ok(()));
        assert_eq!(
            public.verify(&m, der.as_bytes()),
            Err(SignatureError::WrongLength(der.as_bytes().len()))
        );

        let k = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&k, &m[..]);
        let sig = sig.normalize_s().unwrap_or(sig);
        let der = sig.to_der();
        let public = PublicKey::from_compressed(
            Curve::P256,
            k.verifying_key().to_encoded_point(true).as_bytes(),
        )
        .expect("key");
        assert_eq!(public.verify(&m, &sig.to_bytes()), Ok(()));
        assert_eq!(
            public.verify(&m, der.as_bytes()),
            Err(SignatureError::WrongLength(der.as_bytes().len()))
        );

        for len in [0, 1, 63, 65, 72, 128] {
            assert_eq!(
                public.verify(&m, &vec![1u8; len]),
                Err(SignatureError::WrongLength(len))
            );
        }
    }

    #[test]
    fn wrong_message_key_or_signature_rejected() {
        for curve in CURVES {
            let key = PrivateKey::generate(curve);
            let other = PrivateKey::generate(curve).public_key();
            let public = key.public_key();
            let m = msg();
            let sig = key.sign(&m);
            let mut m2 = m.clone();
            m2[150] ^= 1;
            assert_eq!(public.verify(&m2, &sig), Err(SignatureError::Invalid));
            assert_eq!(other.verify(&m, &sig), Err(SignatureError::Invalid));
            let mut bad = sig;
            bad[5] ^= 0x40;
            assert_eq!(public.verify(&m, &bad), Err(SignatureError::Invalid));
            // r = 0, s = 0, r = n: out of range, never valid.
            let mut zero_r = sig;
            zero_r[..32].fill(0);
            assert_eq!(public.verify(&m, &zero_r), Err(SignatureError::Invalid));
            let mut zero_s = sig;
            zero_s[32..].fill(0);
            assert_eq!(public.verify(&m, &zero_s), Err(SignatureError::Invalid));
            let mut r_n = sig;
            r_n[..32].copy_from_slice(curve.order());
            assert_eq!(public.verify(&m, &r_n), Err(SignatureError::Invalid));
            assert_eq!(public.verify(&m, &[0u8; 64]), Err(SignatureError::Invalid));
        }
    }

    #[test]
    fn key_text_round_trips() {
        for curve in CURVES {
            let public = PrivateKey::generate(curve).public_key();
            let did = public.to_did_key();
            let mk = public.to_multikey();
            assert_eq!(did, format!("did:key:{mk}"));
            match curve {
                Curve::K256 => assert!(mk.starts_with("zQ3s"), "{mk}"),
                Curve::P256 => assert!(mk.starts_with("zDnae"), "{mk}"),
            }
            let from_did = PublicKey::from_did_key(&did).expect("did");
            let from_mk = PublicKey::from_multikey(&mk).expect("multikey");
            let from_c = PublicKey::from_compressed(curve, &public.compressed()).expect("c");
            assert_eq!(from_did, public);
            assert_eq!(from_mk, public);
            assert_eq!(from_c, public);
            assert_eq!(from_did.to_did_key(), did);
            assert_eq!(from_did.uncompressed(), public.uncompressed());
            assert!(format!("{public:?}").contains(&did));
            // A did:key is not a Multikey and vice versa.
            assert_eq!(
                PublicKey::from_multikey(&did),
                Err(KeyError::UnsupportedMultibase)
            );
            assert_eq!(PublicKey::from_did_key(&mk), Err(KeyError::NotDidKey));
        }
    }

    #[test]
    fn equality_and_hash_by_curve_and_point() {
        use std::collections::HashSet;
        let a = PrivateKey::generate(Curve::K256).public_key();
        let b = PrivateKey::generate(Curve::P256).public_key();
        assert_ne!(a, b);
        let set: HashSet<PublicKey> = [a.clone(), b.clone(), a.clone()].into_iter().collect();
        assert_eq!(set.len(), 2);
        // Same 33 bytes on the other curve (if they are a point there) is a different key.
        if let Ok(b_as_k) = PublicKey::from_compressed(Curve::K256, &b.compressed()) {
            assert_ne!(b_as_k, b);
        }
    }

    fn did_key_of(prefix: [u8; 2], point: &[u8]) -> String {
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(point);
        format!("did:key:z{}", bs58::encode(bytes).into_string())
    }

    #[test]
    fn malformed_did_keys_are_errors() {
        let good = PrivateKey::generate(Curve::K256).public_key();
        let did = good.to_did_key();
        let body = &did["did:key:".len()..];
        assert_eq!(
            PublicKey::from_did_key(&format!("did:kee:{body}")),
            Err(KeyError::NotDidKey)
        );
        assert_eq!(
            PublicKey::from_did_key(&format!("DID:KEY:{body}")),
            Err(KeyError::NotDidKey)
        );
        assert_eq!(
            PublicKey::from_did_key(&format!("did:key:{}", &body[1..])),
            Err(KeyError::UnsupportedMultibase)
        );
        assert_eq!(
            PublicKey::from_did_key(&format!("did:key:z{}0", &body[1..])),
            Err(KeyError::BadBase58)
        );
        assert_eq!(
            PublicKey::from_did_key(&format!("did:key:z{}l", &body[1..])),
            Err(KeyError::BadBase58)
        );
        // Unknown multicodec: ed25519-pub, x25519-pub, and p384-pub (0x1201).
        for prefix in [[0xed, 0x01], [0xec, 0x01], [0x81, 0x24]] {
            assert_eq!(
                PublicKey::from_did_key(&did_key_of(prefix, &good.compressed())),
                Err(KeyError::UnknownMulticodec)
            );
        }
        // Wrong lengths, including the uncompressed point under a Multikey codec.
        for curve in [Curve::K256, Curve::P256] {
            let prefix = curve.multicodec_prefix();
            let c = good.compressed();
            for point in [
                &c[..32],
                &[c.as_slice(), &[0]].concat()[..],
                &good.uncompressed()[..],
            ] {
                assert_eq!(
                    PublicKey::from_did_key(&did_key_of(prefix, point)),
                    Err(KeyError::WrongLength {
                        expected: 33,
                        got: point.len()
                    })
                );
            }
        }
        // Not on the curve: x ≥ p, and a bad SEC1 tag.
        for curve in [Curve::K256, Curve::P256] {
            let prefix = curve.multicodec_prefix();
            let mut x_too_big = [0xffu8; 33];
            x_too_big[0] = 0x02;
            assert_eq!(
                PublicKey::from_did_key(&did_key_of(prefix, &x_too_big)),
                Err(KeyError::InvalidPoint(curve))
            );
            for tag in [0x00, 0x04, 0x05, 0x06] {
                let mut p = good.compressed();
                p[0] = tag;
                assert_eq!(
                    PublicKey::from_did_key(&did_key_of(prefix, &p)),
                    Err(KeyError::InvalidPoint(curve))
                );
            }
            // Small x with no square root for y² on this curve (about half of all x).
            let mut found = 0;
            for x in 1u8..=40 {
                let mut p = [0u8; 33];
                p[0] = 0x02;
                p[32] = x;
                match PublicKey::from_did_key(&did_key_of(prefix, &p)) {
                    Ok(k) => assert_eq!(k.compressed(), p),
                    Err(e) => {
                        assert_eq!(e, KeyError::InvalidPoint(curve));
                        found += 1;
                    }
                }
            }
            assert!(found > 0, "some small x must be off the curve");
        }
    }

    #[test]
    fn arbitrary_strings_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0Il";
        for _ in 0..2000 {
            let len = rng.gen_range(0..60);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
                .collect();
            let _ = PublicKey::from_did_key(&format!("did:key:z{s}"));
            let _ = PublicKey::from_multikey(&format!("z{s}"));
            let _ = PublicKey::from_legacy_multibase(LEGACY_TYPES[len % 2], &format!("z{s}"));
            // Valid codec prefix, random point bytes.
            let mut point = [0u8; 33];
            rng.fill(&mut point[..]);
            point[0] = 2 + (point[0] & 1);
            for curve in CURVES {
                let _ = PublicKey::from_did_key(&did_key_of(curve.multicodec_prefix(), &point));
            }
        }
    }

    const LEGACY_TYPES: [&str; 2] = [
        "EcdsaSecp256k1VerificationKey2019",
        "EcdsaSecp256r1VerificationKey2019",
    ];

    #[test]
    fn legacy_multibase_forms() {
        for curve in CURVES {
            let key = PrivateKey::generate(curve);
            let public = key.public_key();
            let ty = public.legacy_key_type();
            let legacy = public.to_legacy_multibase();
            // Independently: z + base58btc(uncompressed point), no multicodec.
            let uncompressed = public.uncompressed();
            assert_eq!(uncompressed[0], 0x04);
            assert_eq!(
                legacy,
                format!("z{}", bs58::encode(uncompressed).into_string())
            );
            let parsed = PublicKey::from_legacy_multibase(ty, &legacy).expect("legacy");
            assert_eq!(parsed, public);
            assert_eq!(parsed.uncompressed(), uncompressed);
            let m = msg();
            assert_eq!(parsed.verify(&m, &key.sign(&m)), Ok(()));
            // Compressed point without multicodec is tolerated (reference behaviour).
            let compressed = format!("z{}", bs58::encode(public.compressed()).into_string());
            assert_eq!(
                PublicKey::from_legacy_multibase(ty, &compressed),
                Ok(public.clone())
            );
            // Wrong type for the key: the other curve, or not a legacy type.
            let other = LEGACY_TYPES
                .iter()
                .find(|t| **t != ty)
                .copied()
                .unwrap_or("");
            assert!(PublicKey::from_legacy_multibase(other, &legacy).is_err());
            assert_eq!(
                PublicKey::from_legacy_multibase("Multikey", &legacy),
                Err(KeyError::UnknownKeyType("Multikey".into()))
            );
            // y altered: off the curve.
            let mut bad = uncompressed;
            bad[64] ^= 1;
            let bad = format!("z{}", bs58::encode(bad).into_string());
            assert_eq!(
                PublicKey::from_legacy_multibase(ty, &bad),
                Err(KeyError::InvalidPoint(curve))
            );
            // Wrong tag on a 65-byte point.
            let mut tagged = uncompressed;
            tagged[0] = 0x06;
            let tagged = format!("z{}", bs58::encode(tagged).into_string());
            assert_eq!(
                PublicKey::from_legacy_multibase(ty, &tagged),
                Err(KeyError::InvalidPoint(curve))
            );
            // Multikey string is not a legacy value (35 bytes).
            assert_eq!(
                PublicKey::from_legacy_multibase(ty, &public.to_multikey()),
                Err(KeyError::WrongLength {
                    expected: 65,
                    got: 35
                })
            );
        }
    }
}
