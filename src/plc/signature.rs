//! The `sig` of a PLC operation: 64-byte compact `r‖s`, low-S, in base64url
//! without padding (digest §6.3) — and the check against a list of rotation keys.
//!
//! Decoding is strict because a signature's text is part of the signed
//! operation's bytes, and so of its CID: if `…A` and `…A=` (or a variant with
//! non-zero trailing bits, or the standard alphabet) were all accepted, one
//! operation would have several CIDs and a chain could be forked by
//! re-encoding. Exactly one text form is valid for each signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::error::{OpError, SignatureRejected};
use crate::crypto::{PublicKey, SignatureError};

/// Length of the base64url text of a 64-byte signature.
const SIGNATURE_TEXT_LEN: usize = 86;

/// Decodes a `sig` field. Refuses padding, the standard alphabet (`+`, `/`),
/// whitespace and newlines, non-zero trailing bits, and any length but 64
/// bytes (which is how a DER-encoded signature fails).
pub fn decode_signature(text: &str) -> Result<[u8; 64], OpError> {
    if text.contains('=') {
        return Err(encoding("base64 padding ('=') is not allowed"));
    }
    // URL_SAFE_NO_PAD refuses padding, bytes outside the url alphabet and
    // non-zero trailing bits: one text per signature.
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| encoding(&format!("not unpadded base64url: {e}")))?;
    let sig: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
        encoding(&format!(
            "signature must be 64 bytes (compact r||s; DER is not accepted), got {}",
            bytes.len()
        ))
    })?;
    debug_assert_eq!(text.len(), SIGNATURE_TEXT_LEN);
    Ok(sig)
}

/// The only valid text form of a signature.
pub fn encode_signature(sig: &[u8; 64]) -> String {
    URL_SAFE_NO_PAD.encode(sig)
}

/// Verifies `sig` over `msg` with each of `keys` in order and returns the
/// index of the first one that verifies: the index is the signer's authority
/// (0 is the highest), which the fork rule compares.
///
/// Verification enforces low-S (crate::crypto). A key that does not parse is
/// skipped: stored rotation keys were all checked when accepted, so this only
/// matters for logs written elsewhere. On failure, the reason says whether the
/// signature was high-S, so a client can tell a malleated signature from a
/// wrong key.
pub fn verify_with_keys(
    keys: &[String],
    msg: &[u8],
    sig: &[u8; 64],
) -> Result<usize, SignatureRejected> {
    let mut high_s = false;
    for (index, key) in keys.iter().enumerate() {
        let Ok(public) = PublicKey::from_did_key(key) else {
            continue;
        };
        match public.verify(msg, sig) {
            Ok(()) => return Ok(index),
            Err(SignatureError::HighS) => high_s = true,
            Err(_) => {}
        }
    }
    Err(if high_s {
        SignatureRejected::HighS
    } else if keys.is_empty() {
        SignatureRejected::NoKeys
    } else {
        SignatureRejected::NoKeyMatches(keys.len())
    })
}

fn encoding(msg: &str) -> OpError {
    OpError::SignatureEncoding(msg.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{negate_s, Curve, PrivateKey};

    #[test]
    fn round_trip_and_strictness() {
        let key = PrivateKey::generate(Curve::K256);
        let sig = key.sign(b"msg");
        let text = encode_signature(&sig);
        assert_eq!(text.len(), SIGNATURE_TEXT_LEN);
        assert_eq!(decode_signature(&text).unwrap(), sig);

        // Padding, a newline, the wrong length (DER is 70-72 bytes).
        assert!(decode_signature(&format!("{text}==")).is_err());
        assert!(decode_signature(&format!("{}\n{}", &text[..40], &text[40..])).is_err());
        assert!(decode_signature(&URL_SAFE_NO_PAD.encode([1u8; 71])).is_err());
        assert!(decode_signature(&text[..85]).is_err());
        // Non-zero trailing bits: the last of 86 characters carries 2 bits of
        // data and 4 of padding (516 - 512); set a padding bit.
        let last = text.as_bytes()[85];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|&c| c == last).unwrap();
        assert_eq!(pos & 0b1111, 0, "canonical text has zero trailing bits");
        let mut bad = text.clone().into_bytes();
        bad[85] = alphabet[pos | 1];
        assert!(decode_signature(std::str::from_utf8(&bad).unwrap()).is_err());
    }

    #[test]
    fn verify_reports_signer_index_and_high_s() {
        let a = PrivateKey::generate(Curve::K256);
        let b = PrivateKey::generate(Curve::P256);
        let keys = vec![a.public_key().to_did_key(), b.public_key().to_did_key()];
        assert_eq!(verify_with_keys(&keys, b"m", &a.sign(b"m")), Ok(0));
        assert_eq!(verify_with_keys(&keys, b"m", &b.sign(b"m")), Ok(1));
        let high = negate_s(Curve::P256, &b.sign(b"m"));
        let err = verify_with_keys(&keys, b"m", &high).unwrap_err();
        assert!(err.to_string().contains("high S"), "{err}");
        let stranger = PrivateKey::generate(Curve::K256);
        assert!(verify_with_keys(&keys, b"m", &stranger.sign(b"m")).is_err());
        assert!(verify_with_keys(&[], b"m", &a.sign(b"m")).is_err());
    }
}
