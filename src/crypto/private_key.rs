//! Private keys: generation, import, and signing.

use std::fmt;

use rand::RngCore;

use super::backend;
use super::curve::Curve;
use super::error::KeyError;
use super::public_key::PublicKey;

/// An atproto signing private key (k256 or p256), used in PDS mode to sign
/// commits and tokens. Signatures are deterministic (RFC 6979) and low-S.
///
/// Signing backends are chosen by measurement (`benches/crypto.rs`):
/// libsecp256k1 for k256 (about 1.5× RustCrypto `k256`, and byte-identical
/// output), RustCrypto `p256` for p256 (ring's signer is randomised and needs a
/// PKCS#8 import, so deterministic RustCrypto is kept).
///
/// `Debug` shows only the curve and public key; the secret scalar is never
/// printed. Secret memory is erased on drop (RustCrypto zeroizes; the
/// libsecp256k1 key is overwritten on a best-effort basis).
#[derive(Clone)]
pub struct PrivateKey {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    K256(secp256k1::SecretKey),
    P256(p256::ecdsa::SigningKey),
}

impl PrivateKey {
    /// A new random key on `curve`, from the operating system's CSPRNG.
    pub fn generate(curve: Curve) -> Self {
        let mut rng = rand::rngs::OsRng;
        let inner = match curve {
            Curve::K256 => {
                // Rejection sampling: a random 32-byte string is a valid scalar
                // unless it is 0 or ≥ n (probability about 2^-128).
                let mut bytes = [0u8; 32];
                let key = loop {
                    rng.fill_bytes(&mut bytes);
                    if let Ok(key) = secp256k1::SecretKey::from_slice(&bytes) {
                        break key;
                    }
                };
                bytes.fill(0);
                Inner::K256(key)
            }
            Curve::P256 => Inner::P256(p256::ecdsa::SigningKey::random(&mut rng)),
        };
        PrivateKey { inner }
    }

    /// Imports a 32-byte big-endian secret scalar, which must be in `[1, n)`.
    pub fn from_bytes(curve: Curve, bytes: &[u8]) -> Result<Self, KeyError> {
        // Check the length ourselves: RustCrypto zero-pads shorter input.
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength {
            expected: 32,
            got: bytes.len(),
        })?;
        let inner = match curve {
            Curve::K256 => Inner::K256(
                secp256k1::SecretKey::from_slice(bytes)
                    .map_err(|_| KeyError::InvalidScalar(curve))?,
            ),
            Curve::P256 => Inner::P256(
                p256::ecdsa::SigningKey::from_bytes(bytes.into())
                    .map_err(|_| KeyError::InvalidScalar(curve))?,
            ),
        };
        Ok(PrivateKey { inner })
    }

    /// The 32-byte big-endian secret scalar (for storage; handle with care).
    pub fn to_bytes(&self) -> [u8; 32] {
        match &self.inner {
            Inner::K256(k) => k.secret_bytes(),
            Inner::P256(k) => k.to_bytes().into(),
        }
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self.inner {
            Inner::K256(_) => Curve::K256,
            Inner::P256(_) => Curve::P256,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match &self.inner {
            Inner::K256(k) => {
                PublicKey::from_libsecp256k1(secp256k1::PublicKey::from_secret_key_global(k))
            }
            Inner::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                match PublicKey::from_sec1(Curve::P256, point.as_bytes()) {
                    Ok(key) => key,
                    // A valid scalar's public point is a valid, non-identity point.
                    Err(e) => unreachable!("derived P-256 public key rejected: {e}"),
                }
            }
        }
    }

    /// Signs `msg`: SHA-256, ECDSA with an RFC 6979 nonce, `s` normalised to
    /// low-S, returned as the 64-byte compact `r‖s` atproto uses.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        match &self.inner {
            Inner::K256(k) => backend::sign_k256_libsecp256k1(k, msg),
            Inner::P256(k) => backend::sign_p256_rustcrypto(k, msg),
        }
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        if let Inner::K256(k) = &mut self.inner {
            k.non_secure_erase();
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("curve", &self.curve())
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::is_low_s;
    use super::*;

    const CURVES: [Curve; 2] = [Curve::K256, Curve::P256];

    #[test]
    fn bytes_round_trip_and_deterministic_signing() {
        for curve in CURVES {
            let key = PrivateKey::generate(curve);
            assert_eq!(key.curve(), curve);
            let again = PrivateKey::from_bytes(curve, &key.to_bytes()).expect("import");
            assert_eq!(again.to_bytes(), key.to_bytes());
            assert_eq!(again.public_key(), key.public_key());
            assert_eq!(again.sign(b"msg"), key.sign(b"msg"), "RFC 6979");
            assert_ne!(key.sign(b"msg"), key.sign(b"msh"));
            assert_ne!(PrivateKey::generate(curve).to_bytes(), key.to_bytes());
        }
    }

    #[test]
    fn signatures_are_always_low_s() {
        // Half of raw p256 signatures are high-S, so 64 messages exercise normalisation.
        for curve in CURVES {
            let key = PrivateKey::generate(curve);
            let public = key.public_key();
            for i in 0..64u32 {
                let m = i.to_be_bytes();
                let sig = key.sign(&m);
                assert!(is_low_s(curve, &sig), "{curve:?} message {i}");
                assert_eq!(public.verify(&m, &sig), Ok(()));
            }
        }
    }

    #[test]
    fn bad_scalars_rejected() {
        for curve in CURVES {
            for len in [0, 24, 31, 33, 64] {
                assert_eq!(
                    PrivateKey::from_bytes(curve, &vec![1u8; len]).err(),
                    Some(KeyError::WrongLength {
                        expected: 32,
                        got: len
                    })
                );
            }
            assert_eq!(
                PrivateKey::from_bytes(curve, &[0u8; 32]).err(),
                Some(KeyError::InvalidScalar(curve))
            );
            assert_eq!(
                PrivateKey::from_bytes(curve, curve.order()).err(),
                Some(KeyError::InvalidScalar(curve))
            );
            assert_eq!(
                PrivateKey::from_bytes(curve, &[0xff; 32]).err(),
                Some(KeyError::InvalidScalar(curve))
            );
            let mut n_minus_1 = *curve.order();
            n_minus_1[31] -= 1;
            assert!(PrivateKey::from_bytes(curve, &n_minus_1).is_ok());
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = PrivateKey::from_bytes(Curve::K256, &[0x42; 32]).expect("key");
        let dbg = format!("{key:?}");
        assert!(dbg.contains("did:key:zQ3s"), "{dbg}");
        assert!(!dbg.contains("42, 42") && !dbg.contains("4242"), "{dbg}");
    }
}
