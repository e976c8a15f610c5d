//! Why a byte string is not acceptable DAG-CBOR (or not the expected shape).

use crate::wire::cid::CidError;

/// A decoding failure. Positions are byte offsets into the decoder's input, so a
/// logged error points at the offending byte.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unexpected end of input at byte {0}")]
    Eof(usize),
    #[error("integer or length not in shortest form at byte {0}")]
    NonCanonicalInt(usize),
    #[error("indefinite-length item at byte {0}")]
    Indefinite(usize),
    #[error("floating-point number at byte {0}: atproto forbids floats")]
    Float(usize),
    #[error("simple value {value} at byte {at}: only false, true and null are allowed")]
    Simple { at: usize, value: u64 },
    #[error("tag {tag} at byte {at}: only tag 42 (CID link) is allowed")]
    Tag { at: usize, tag: u64 },
    #[error("reserved header byte at byte {0}")]
    Reserved(usize),
    #[error("expected {expected}, found {found} at byte {at}")]
    Type {
        at: usize,
        expected: &'static str,
        found: &'static str,
    },
    #[error("integer out of the signed 64-bit range at byte {0}")]
    IntRange(usize),
    #[error("invalid UTF-8 in text string at byte {0}")]
    Utf8(usize),
    #[error("map key out of canonical order or duplicated at byte {0}")]
    KeyOrder(usize),
    #[error("map key of {len} bytes at byte {at} exceeds the limit")]
    KeyTooLong { at: usize, len: usize },
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("container of {len} items at byte {at} exceeds the limit")]
    TooLarge { at: usize, len: u64 },
    #[error("invalid CID link at byte {at}: {err}")]
    Cid { at: usize, err: CidError },
    #[error("CID link at byte {0} lacks the 0x00 multibase prefix")]
    CidPrefix(usize),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

impl DecodeError {
    /// Shorthand for [`DecodeError::InvalidField`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> DecodeError {
        DecodeError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}
