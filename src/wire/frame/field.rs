//! Field-level checks shared by the body decoders: required fields, and
//! identifier syntax checks that name the offending field in the error.
//!
//! Errors allocate (the reason string); success never does.

use crate::wire::cbor::{DecodeError, Decoder};
use crate::wire::syntax::{
    validate_datetime, validate_did, validate_handle, validate_repo_path, validate_tid, SyntaxError,
};

/// A required field's value, or [`DecodeError::MissingField`] naming it.
#[inline]
pub(super) fn required<T>(value: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::MissingField(field))
}

#[cold]
fn invalid(field: &'static str, err: SyntaxError) -> DecodeError {
    DecodeError::invalid(field, err.to_string())
}

#[inline]
fn check<'a>(
    field: &'static str,
    s: &'a str,
    validate: fn(&str) -> Result<(), SyntaxError>,
) -> Result<&'a str, DecodeError> {
    match validate(s) {
        Ok(()) => Ok(s),
        Err(e) => Err(invalid(field, e)),
    }
}

/// `s` if it is DID syntax.
#[inline]
pub(super) fn did<'a>(field: &'static str, s: &'a str) -> Result<&'a str, DecodeError> {
    check(field, s, validate_did)
}

/// `s` if it is TID syntax.
#[inline]
pub(super) fn tid<'a>(field: &'static str, s: &'a str) -> Result<&'a str, DecodeError> {
    check(field, s, validate_tid)
}

/// `s` if it is atproto datetime syntax.
#[inline]
pub(super) fn datetime<'a>(field: &'static str, s: &'a str) -> Result<&'a str, DecodeError> {
    check(field, s, validate_datetime)
}

/// `s` if it is handle syntax (`handle.invalid` included).
#[inline]
pub(super) fn handle<'a>(field: &'static str, s: &'a str) -> Result<&'a str, DecodeError> {
    check(field, s, validate_handle)
}

/// `s` if it is a repo path (`<collection NSID>/<record key>`).
#[inline]
pub(super) fn repo_path<'a>(field: &'static str, s: &'a str) -> Result<&'a str, DecodeError> {
    check(field, s, validate_repo_path)
}

/// A text field that may be `null`: `Ok(None)` for `null`.
///
/// Used for `#commit.since` (required but nullable) and for optional strings,
/// where `null` is read as "absent" because the reference relay's decoder
/// (indigo's cbor-gen pointer fields) accepts it that way.
#[inline]
pub(super) fn nullable_text<'a>(d: &mut Decoder<'a>) -> Result<Option<&'a str>, DecodeError> {
    if d.take_null() {
        Ok(None)
    } else {
        d.text().map(Some)
    }
}
