//! Keys and signatures as atproto uses them: k256 and p256 ECDSA over SHA-256,
//! 64-byte compact `r‖s` signatures with low-S required, keys as did:key / Multikey.
//!
//! - [`Curve`]: the two curves and their constants.
//! - [`PublicKey`]: parse did:key / Multikey / legacy DID-document keys, and
//!   verify. Verification is the relay's throughput ceiling, so it runs on the
//!   fastest measured backend per curve (libsecp256k1 for k256, ring for p256) and
//!   a parsed key keeps the backend-ready form; cache it per account.
//! - [`PrivateKey`]: generate, import, and sign (deterministic, low-S).
//! - [`is_low_s`] / [`negate_s`]: the low-S rule.
//! - [`backend`]: each library's verify and sign, exposed for benches and tests.
//!
//! ```
//! use atrelay::crypto::{Curve, PrivateKey, PublicKey};
//! let key = PrivateKey::generate(Curve::K256);
//! let sig = key.sign(b"hello");
//! let public = PublicKey::from_did_key(&key.public_key().to_did_key()).unwrap();
//! assert!(public.verify(b"hello", &sig).is_ok());
//! assert!(public.verify(b"hullo", &sig).is_err());
//! ```

pub mod backend;
mod curve;
mod error;
mod low_s;
mod multikey;
mod private_key;
mod public_key;

pub use curve::Curve;
pub use error::{KeyError, SignatureError};
pub use low_s::{is_low_s, negate_s};
pub use multikey::{DID_KEY_PREFIX, LEGACY_K256_TYPE, LEGACY_P256_TYPE, MULTIKEY_TYPE};
pub use private_key::PrivateKey;
pub use public_key::PublicKey;
