//! Errors for key parsing and signature verification.
//!
//! Keys and signatures arrive from the network, so every failure is a value that
//! names what was wrong rather than a panic.

use super::curve::Curve;

/// Why a public or private key could not be parsed or imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A did:key string did not start with `did:key:`.
    #[error("not a did:key (expected the prefix `did:key:`)")]
    NotDidKey,
    /// A multibase string did not use base58btc (prefix `z`); atproto uses no other.
    #[error("unsupported multibase encoding (expected base58btc, prefix `z`)")]
    UnsupportedMultibase,
    /// The encoded string is far longer than any key; refused before decoding
    /// (base58 decoding is quadratic, so unbounded input is a cost to bound).
    #[error("encoded key is too long ({len} characters)")]
    TooLong {
        /// Length of the rejected input in characters.
        len: usize,
    },
    /// The base58btc payload contained a character outside the alphabet.
    #[error("invalid base58btc encoding")]
    BadBase58,
    /// The multicodec prefix is neither secp256k1-pub (`e7 01`) nor p256-pub (`80 24`).
    #[error("unknown or unsupported multicodec prefix")]
    UnknownMulticodec,
    /// The decoded key material has the wrong number of bytes.
    #[error("wrong key length: expected {expected} bytes, got {got}")]
    WrongLength {
        /// Length the encoding requires.
        expected: usize,
        /// Length that was found.
        got: usize,
    },
    /// The bytes do not encode a point on the curve (bad SEC1 tag, x not on the
    /// curve, or coordinates out of range).
    #[error("invalid {0:?} public key: not a valid point on the curve")]
    InvalidPoint(Curve),
    /// A private key scalar was zero or not below the curve order.
    #[error("invalid {0:?} private key: scalar out of range")]
    InvalidScalar(Curve),
    /// A DID-document verification method type that is not Multikey or one of the
    /// two legacy atproto types.
    #[error("unsupported verification method type `{0}`")]
    UnknownKeyType(String),
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not 64 bytes: atproto signatures are compact `r‖s`; DER and anything else
    /// is invalid.
    #[error("signature must be 64 bytes (compact r||s), got {0}")]
    WrongLength(usize),
    /// `s` is above n/2. The high-S twin of a valid signature is malleable and
    /// atproto requires low-S on both curves.
    #[error("signature has high S (s > n/2), which atproto forbids")]
    HighS,
    /// `r` or `s` out of range, or the signature does not match key and message.
    #[error("signature does not verify")]
    Invalid,
}
