//! Text forms of public keys: Multikey (`z` + base58btc(multicodec ‖ compressed
//! point)), did:key (`did:key:` + Multikey), and the legacy DID-document forms
//! (`EcdsaSecp256r1VerificationKey2019` / `EcdsaSecp256k1VerificationKey2019`,
//! `publicKeyMultibase` = `z` + base58btc(point) with no multicodec).
//!
//! These functions only decode and encode bytes; turning the point into a usable
//! key is [`PublicKey`](super::PublicKey)'s job.

use super::curve::Curve;
use super::error::KeyError;

/// The did:key method prefix.
pub const DID_KEY_PREFIX: &str = "did:key:";

/// The verification-method `type` of current atproto DID documents.
pub const MULTIKEY_TYPE: &str = "Multikey";

/// Legacy verification-method `type` for a P-256 key (still seen in did:web documents).
pub const LEGACY_P256_TYPE: &str = "EcdsaSecp256r1VerificationKey2019";

/// Legacy verification-method `type` for a secp256k1 key (still seen in did:web documents).
pub const LEGACY_K256_TYPE: &str = "EcdsaSecp256k1VerificationKey2019";

/// Longest multibase string accepted before decoding. A legacy uncompressed key
/// (65 bytes) is about 89 base58 characters; anything much longer is not a key, and
/// base58 decoding is quadratic, so refuse it up front.
const MAX_MULTIBASE_CHARS: usize = 128;

/// Decodes `z` + base58btc, bounded in length.
fn decode_base58btc(s: &str) -> Result<Vec<u8>, KeyError> {
    if s.len() > MAX_MULTIBASE_CHARS {
        return Err(KeyError::TooLong { len: s.len() });
    }
    let body = s.strip_prefix('z').ok_or(KeyError::UnsupportedMultibase)?;
    bs58::decode(body)
        .into_vec()
        .map_err(|_| KeyError::BadBase58)
}

/// Splits a Multikey string into its curve and 33-byte compressed point
/// (the point is not yet checked to lie on the curve).
pub(crate) fn decode_multikey(s: &str) -> Result<(Curve, [u8; 33]), KeyError> {
    let bytes = decode_base58btc(s)?;
    let curve = match bytes.get(..2) {
        Some([0xe7, 0x01]) => Curve::K256,
        Some([0x80, 0x24]) => Curve::P256,
        _ => return Err(KeyError::UnknownMulticodec),
    };
    let point = &bytes[2..];
    let compressed: [u8; 33] = point.try_into().map_err(|_| KeyError::WrongLength {
        expected: 33,
        got: point.len(),
    })?;
    Ok((curve, compressed))
}

/// Splits a did:key string into its curve and compressed point.
pub(crate) fn decode_did_key(s: &str) -> Result<(Curve, [u8; 33]), KeyError> {
    let multikey = s.strip_prefix(DID_KEY_PREFIX).ok_or(KeyError::NotDidKey)?;
    decode_multikey(multikey)
}

/// The curve a legacy verification-method `type` names.
pub(crate) fn legacy_curve(key_type: &str) -> Result<Curve, KeyError> {
    match key_type {
        LEGACY_K256_TYPE => Ok(Curve::K256),
        LEGACY_P256_TYPE => Ok(Curve::P256),
        other => Err(KeyError::UnknownKeyType(other.to_owned())),
    }
}

/// Decodes a legacy `publicKeyMultibase`: the raw SEC1 point, no multicodec.
/// Returns the point bytes (65 uncompressed as the spec says, or 33 compressed,
/// which the reference implementation also accepts); the caller validates them.
pub(crate) fn decode_legacy(s: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = decode_base58btc(s)?;
    match bytes.len() {
        33 | 65 => Ok(bytes),
        got => Err(KeyError::WrongLength { expected: 65, got }),
    }
}

/// Encodes a compressed point as a Multikey string.
pub(crate) fn encode_multikey(curve: Curve, compressed: &[u8; 33]) -> String {
    let mut buf = [0u8; 35];
    buf[..2].copy_from_slice(&curve.multicodec_prefix());
    buf[2..].copy_from_slice(compressed);
    let mut out = String::with_capacity(50);
    out.push('z');
    out.push_str(&bs58::encode(buf).into_string());
    out
}

/// Encodes a compressed point as a did:key string.
pub(crate) fn encode_did_key(curve: Curve, compressed: &[u8; 33]) -> String {
    let mut out = String::with_capacity(58);
    out.push_str(DID_KEY_PREFIX);
    out.push_str(&encode_multikey(curve, compressed));
    out
}

/// Encodes a point in the legacy `publicKeyMultibase` form (`z` + base58btc of the
/// uncompressed point, no multicodec).
pub(crate) fn encode_legacy(uncompressed: &[u8; 65]) -> String {
    let mut out = String::with_capacity(92);
    out.push('z');
    out.push_str(&bs58::encode(uncompressed).into_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_encoded_keys() {
        let mut pt = [0u8; 33];
        pt[0] = 2;
        assert!(encode_multikey(Curve::P256, &pt).starts_with("zDnae"));
        assert!(encode_multikey(Curve::K256, &pt).starts_with("zQ3s"));
        pt[0] = 3;
        pt[1..].fill(0xff);
        assert!(encode_multikey(Curve::P256, &pt).starts_with("zDnae"));
        assert!(encode_multikey(Curve::K256, &pt).starts_with("zQ3s"));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode_did_key("did:web:zQ3s"), Err(KeyError::NotDidKey));
        assert_eq!(decode_did_key(""), Err(KeyError::NotDidKey));
        assert_eq!(
            decode_did_key("did:key:"),
            Err(KeyError::UnsupportedMultibase)
        );
        assert_eq!(
            decode_multikey("fe701"),
            Err(KeyError::UnsupportedMultibase)
        );
        assert_eq!(decode_multikey("z0OIl"), Err(KeyError::BadBase58));
        assert_eq!(decode_multikey("z"), Err(KeyError::UnknownMulticodec));
        let long = format!("z{}", "2".repeat(500));
        assert_eq!(decode_multikey(&long), Err(KeyError::TooLong { len: 501 }));
        // ed25519-pub (0xed 01) is a real multicodec, just not ours.
        let ed = format!("z{}", bs58::encode([0xed, 0x01, 1, 2, 3]).into_string());
        assert_eq!(decode_multikey(&ed), Err(KeyError::UnknownMulticodec));
        let short = format!("z{}", bs58::encode([0xe7, 0x01, 2, 3]).into_string());
        assert_eq!(
            decode_multikey(&short),
            Err(KeyError::WrongLength {
                expected: 33,
                got: 2
            })
        );
        assert!(legacy_curve("Multikey").is_err());
        assert_eq!(
            decode_legacy(&format!("z{}", bs58::encode([4u8; 40]).into_string())),
            Err(KeyError::WrongLength {
                expected: 65,
                got: 40
            })
        );
    }
}
