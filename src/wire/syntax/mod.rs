//! Syntax validators for atproto identifiers: DIDs, handles, NSIDs, record keys,
//! repo paths, AT URIs, TIDs, CID strings, language tags, URIs and datetimes.
//!
//! Each validator implements the rule the atproto specs give for one identifier
//! kind, checked against the official interop vectors
//! (`atproto-interop-tests/syntax/`). They run on untrusted input on the relay's hot
//! path, so they are hand-written byte loops: no regex engine, no allocation, no
//! panics. Every failure is a [`SyntaxError`] naming the kind and the rule broken.
//!
//! `validate_*` functions check syntax only. Where syntax and meaning differ, a
//! `parse_*` function adds the semantic checks: [`parse_datetime`] (calendar ranges,
//! returning Unix microseconds) and [`parse_language`] (no repeated variants or
//! extension singletons).

mod at_identifier;
mod at_uri;
mod cid_string;
mod datetime;
mod did;
mod error;
mod handle;
mod language;
mod nsid;
mod record_key;
mod repo_path;
mod tid;
mod uri;

pub use at_identifier::validate_at_identifier;
pub use at_uri::{parse_at_uri, validate_at_uri, AtUriParts, MAX_AT_URI_LEN};
pub use cid_string::{validate_cid_string, MAX_CID_STRING_LEN, MIN_CID_STRING_LEN};
pub use datetime::{format_datetime_micros, parse_datetime, validate_datetime, MAX_DATETIME_LEN};
pub use did::{validate_did, MAX_DID_LEN};
pub use error::{SyntaxError, SyntaxKind};
pub use handle::{
    is_disallowed_handle_tld, normalize_handle, validate_handle, DISALLOWED_TLDS, INVALID_HANDLE,
    MAX_HANDLE_LEN,
};
pub use language::{parse_language, validate_language};
pub use nsid::{validate_nsid, MAX_NSID_LEN};
pub use record_key::{validate_record_key, MAX_RECORD_KEY_LEN};
pub use repo_path::{validate_repo_path, MAX_REPO_PATH_LEN};
pub use tid::{validate_tid, TID_LEN};
pub use uri::{validate_uri, MAX_URI_LEN};

pub(crate) use tid::is_base32_sortable;
