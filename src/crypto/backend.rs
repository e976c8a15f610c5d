//! The signature backends, one function per (curve, library).
//!
//! [`PublicKey::verify`](super::PublicKey::verify) uses the fastest measured
//! backend per curve: libsecp256k1 for k256 ([`verify_k256_libsecp256k1`]) and ring
//! for p256 ([`verify_p256_ring`]). The RustCrypto functions exist **for
//! measurement and cross-checking only** (benches and tests); relay code should
//! call [`PublicKey`](super::PublicKey) instead.
//!
//! Every verify function here applies the atproto rules itself, whatever the
//! library would: the signature must be exactly 64 bytes (compact `r‖s`, so DER is
//! rejected) and low-S (checked before the expensive step, and reported as
//! [`SignatureError::HighS`]). The message is hashed with SHA-256 here (or by ring,
//! which hashes internally), so all functions take the message, not a digest.
//!
//! "Prepared" keys are the form each library verifies against directly; parsing a
//! compressed point costs a noticeable fraction of a verify, so they are built
//! once (the `prepare_*` functions) and reused.

use sha2::{Digest, Sha256};

use super::curve::Curve;
use super::error::{KeyError, SignatureError};
use super::low_s::{is_low_s, normalize};

/// Checks the atproto framing rules shared by every backend: exactly 64 bytes and
/// low-S. Returns the signature as an array.
#[inline]
fn compact_low_s(curve: Curve, sig: &[u8]) -> Result<&[u8; 64], SignatureError> {
    let sig: &[u8; 64] = sig
        .try_into()
        .map_err(|_| SignatureError::WrongLength(sig.len()))?;
    if !is_low_s(curve, sig) {
        return Err(SignatureError::HighS);
    }
    Ok(sig)
}

/// SHA-256 of `msg` as a fixed array.
#[inline]
fn sha256(msg: &[u8]) -> [u8; 32] {
    Sha256::digest(msg).into()
}

/// Rejects anything but a 33-byte SEC1 compressed point encoding (tag `02`/`03`);
/// the libraries would also take other encodings, which atproto keys never use.
fn compressed_array(curve: Curve, bytes: &[u8]) -> Result<&[u8; 33], KeyError> {
    let arr: &[u8; 33] = bytes.try_into().map_err(|_| KeyError::WrongLength {
        expected: 33,
        got: bytes.len(),
    })?;
    if arr[0] != 0x02 && arr[0] != 0x03 {
        return Err(KeyError::InvalidPoint(curve));
    }
    Ok(arr)
}

// ---------------------------------------------------------------- k256

/// Parses a compressed secp256k1 point into libsecp256k1's form (production path).
pub fn prepare_k256_libsecp256k1(compressed: &[u8]) -> Result<secp256k1::PublicKey, KeyError> {
    let arr = compressed_array(Curve::K256, compressed)?;
    secp256k1::PublicKey::from_slice(arr).map_err(|_| KeyError::InvalidPoint(Curve::K256))
}

/// Verifies with libsecp256k1 (the production k256 path, ~2–3× RustCrypto).
/// libsecp256k1 also rejects high-S itself; we check first to say so.
#[inline]
pub fn verify_k256_libsecp256k1(
    key: &secp256k1::PublicKey,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SignatureError> {
    let sig = compact_low_s(Curve::K256, sig)?;
    let sig =
        secp256k1::ecdsa::Signature::from_compact(sig).map_err(|_| SignatureError::Invalid)?;
    let msg = secp256k1::Message::from_digest(sha256(msg));
    secp256k1::SECP256K1
        .verify_ecdsa(&msg, &sig, key)
        .map_err(|_| SignatureError::Invalid)
}

/// Parses a compressed secp256k1 point into RustCrypto's form. For measurement.
pub fn prepare_k256_rustcrypto(compressed: &[u8]) -> Result<k256::ecdsa::VerifyingKey, KeyError> {
    let arr = compressed_array(Curve::K256, compressed)?;
    k256::ecdsa::VerifyingKey::from_sec1_bytes(arr).map_err(|_| KeyError::InvalidPoint(Curve::K256))
}

/// Verifies with RustCrypto `k256`. For measurement and cross-checking only.
pub fn verify_k256_rustcrypto(
    key: &k256::ecdsa::VerifyingKey,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SignatureError> {
    use k256::ecdsa::signature::Verifier;
    let sig = compact_low_s(Curve::K256, sig)?;
    let sig = k256::ecdsa::Signature::from_slice(sig).map_err(|_| SignatureError::Invalid)?;
    key.verify(msg, &sig).map_err(|_| SignatureError::Invalid)
}

// ---------------------------------------------------------------- p256

/// Decompresses a P-256 point once into the 65-byte uncompressed SEC1 form that
/// ring verifies against (production path). Validates that the point is on the curve.
pub fn prepare_p256_ring(compressed: &[u8]) -> Result<[u8; 65], KeyError> {
    let arr = compressed_array(Curve::P256, compressed)?;
    let key =
        p256::PublicKey::from_sec1_bytes(arr).map_err(|_| KeyError::InvalidPoint(Curve::P256))?;
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key, false);
    point
        .as_bytes()
        .try_into()
        .map_err(|_| KeyError::InvalidPoint(Curve::P256))
}

/// Verifies with ring (the production p256 path, ~5× RustCrypto). ring accepts
/// high-S, so the low-S check here is what enforces the atproto rule.
#[inline]
pub fn verify_p256_ring(
    uncompressed: &[u8; 65],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SignatureError> {
    let sig = compact_low_s(Curve::P256, sig)?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        &uncompressed[..],
    )
    .verify(msg, sig)
    .map_err(|_| SignatureError::Invalid)
}

/// Parses a compressed P-256 point into RustCrypto's form. For measurement.
pub fn prepare_p256_rustcrypto(compressed: &[u8]) -> Result<p256::ecdsa::VerifyingKey, KeyError> {
    let arr = compressed_array(Curve::P256, compressed)?;
    p256::ecdsa::VerifyingKey::from_sec1_bytes(arr).map_err(|_| KeyError::InvalidPoint(Curve::P256))
}

/// Verifies with RustCrypto `p256`. For measurement and cross-checking only.
/// The library accepts high-S; the low-S check here enforces the atproto rule.
pub fn verify_p256_rustcrypto(
    key: &p256::ecdsa::VerifyingKey,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SignatureError> {
    use p256::ecdsa::signature::Verifier;
    let sig = compact_low_s(Curve::P256, sig)?;
    let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|_| SignatureError::Invalid)?;
    key.verify(msg, &sig).map_err(|_| SignatureError::Invalid)
}

// ---------------------------------------------------------------- signing

/// Signs with RustCrypto `k256` (RFC 6979 deterministic nonce), low-S.
pub fn sign_k256_rustcrypto(key: &k256::ecdsa::SigningKey, msg: &[u8]) -> [u8; 64] {
    use k256::ecdsa::signature::Signer;
    let sig: k256::ecdsa::Signature = key.sign(msg);
    normalize(Curve::K256, sig.to_bytes().into())
}

/// Signs with libsecp256k1 (RFC 6979 deterministic nonce; always low-S). Gives the
/// same bytes as [`sign_k256_rustcrypto`]. For measurement.
pub fn sign_k256_libsecp256k1(key: &secp256k1::SecretKey, msg: &[u8]) -> [u8; 64] {
    let msg = secp256k1::Message::from_digest(sha256(msg));
    let sig = secp256k1::SECP256K1.sign_ecdsa(&msg, key);
    normalize(Curve::K256, sig.serialize_compact())
}

/// Signs with RustCrypto `p256` (RFC 6979 deterministic nonce), normalised to low-S
/// (the library does not normalise).
pub fn sign_p256_rustcrypto(key: &p256::ecdsa::SigningKey, msg: &[u8]) -> [u8; 64] {
    use p256::ecdsa::signature::Signer;
    let sig: p256::ecdsa::Signature = key.sign(msg);
    normalize(Curve::P256, sig.to_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::super::negate_s;
    use super::*;

    fn msg() -> Vec<u8> {
        (0..300u32).map(|i| (i * 13 + 1) as u8).collect()
    }

    #[test]
    fn k256_backends_agree_and_enforce_low_s() {
        let m = msg();
        for _ in 0..8 {
            let sk = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
            let secret = secp256k1::SecretKey::from_slice(&sk.to_bytes()).expect("secret");
            let compressed = sk.verifying_key().to_encoded_point(true);
            let lib = prepare_k256_libsecp256k1(compressed.as_bytes()).expect("lib key");
            let rc = prepare_k256_rustcrypto(compressed.as_bytes()).expect("rc key");

            let sig = sign_k256_rustcrypto(&sk, &m);
            assert_eq!(sig, sign_k256_libsecp256k1(&secret, &m), "both RFC 6979");
            assert_eq!(verify_k256_libsecp256k1(&lib, &m, &sig), Ok(()));
            assert_eq!(verify_k256_rustcrypto(&rc, &m, &sig), Ok(()));

            let high = negate_s(Curve::K256, &sig);
            assert_eq!(
                verify_k256_libsecp256k1(&lib, &m, &high),
                Err(SignatureError::HighS)
            );
            assert_eq!(
                verify_k256_rustcrypto(&rc, &m, &high),
                Err(SignatureError::HighS)
            );
            assert_eq!(
                verify_k256_libsecp256k1(&lib, b"other", &sig),
                Err(SignatureError::Invalid)
            );
            assert_eq!(
                verify_k256_rustcrypto(&rc, b"other", &sig),
                Err(SignatureError::Invalid)
            );
        }
    }

    #[test]
    fn p256_backends_agree_and_enforce_low_s() {
        let m = msg();
        for _ in 0..8 {
            let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
            let compressed = sk.verifying_key().to_encoded_point(true);
            let ring_key = prepare_p256_ring(compressed.as_bytes()).expect("ring key");
            let rc = prepare_p256_rustcrypto(compressed.as_bytes()).expect("rc key");
            assert_eq!(
                &ring_key[..],
                sk.verifying_key().to_encoded_point(false).as_bytes()
            );

            let sig = sign_p256_rustcrypto(&sk, &m);
            assert_eq!(verify_p256_ring(&ring_key, &m, &sig), Ok(()));
            assert_eq!(verify_p256_rustcrypto(&rc, &m, &sig), Ok(()));

            let high = negate_s(Curve::P256, &sig);
            assert_eq!(
                verify_p256_ring(&ring_key, &m, &high),
                Err(SignatureError::HighS)
            );
            assert_eq!(
                verify_p256_rustcrypto(&rc, &m, &high),
                Err(SignatureError::HighS)
            );
            assert_eq!(
                verify_p256_ring(&ring_key, b"other", &sig),
                Err(SignatureError::Invalid)
            );
            assert_eq!(
                verify_p256_rustcrypto(&rc, b"other", &sig),
                Err(SignatureError::Invalid)
            );
        }
    }

    /// Why the explicit check exists: the p256 libraries on their own accept the
    /// high-S twin, while both k256 libraries reject it.
    #[test]
    fn raw_libraries_on_high_s() {
        use p256::ecdsa::signature::Verifier;
        let m = msg();
        let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let high = negate_s(Curve::P256, &sign_p256_rustcrypto(&sk, &m));
        let uncompressed = sk.verifying_key().to_encoded_point(false);
        let raw_ring = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            uncompressed.as_bytes(),
        );
        assert!(raw_ring.verify(&m, &high).is_ok());
        let raw_sig = p256::ecdsa::Signature::from_slice(&high).expect("in range");
        assert!(sk.verifying_key().verify(&m, &raw_sig).is_ok());

        let sk = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let high = negate_s(Curve::K256, &sign_k256_rustcrypto(&sk, &m));
        let raw_sig = k256::ecdsa::Signature::from_slice(&high).expect("in range");
        assert!(
            k256::ecdsa::signature::Verifier::verify(sk.verifying_key(), &m, &raw_sig).is_err()
        );
        let pk =
            secp256k1::PublicKey::from_slice(sk.verifying_key().to_encoded_point(true).as_bytes())
                .expect("key");
        let raw_sig = secp256k1::ecdsa::Signature::from_compact(&high).expect("in range");
        let digest = secp256k1::Message::from_digest(sha256(&m));
        assert!(secp256k1::SECP256K1
            .verify_ecdsa(&digest, &raw_sig, &pk)
            .is_err());
    }

    #[test]
    fn prepare_rejects_non_compressed_encodings() {
        for bytes in [&[][..], &[2u8; 32][..], &[4u8; 65][..]] {
            assert!(prepare_k256_libsecp256k1(bytes).is_err());
            assert!(prepare_k256_rustcrypto(bytes).is_err());
            assert!(prepare_p256_ring(bytes).is_err());
            assert!(prepare_p256_rustcrypto(bytes).is_err());
        }
    }
}
