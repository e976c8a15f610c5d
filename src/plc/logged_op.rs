//! An operation as the directory recorded it: with the global sequence number,
//! the time it was accepted, its CID, and whether a later fork nullified it.
//! The JSON forms of the audit log and the export are rendered here.

use serde_json::{json, Value as Json};

use super::op::SignedOperation;
use crate::wire::cid::Cid;
use crate::wire::syntax::format_datetime_micros;

/// One accepted operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedOp {
    /// Global, gap-free sequence number (1, 2, …) across all DIDs: the
    /// `/export` cursor.
    pub seq: u64,
    /// The DID the operation belongs to.
    pub did: String,
    /// The operation as submitted.
    pub operation: SignedOperation,
    /// Its CID (of the signed DAG-CBOR), kept so a log is not re-hashed on read.
    pub cid: Cid,
    /// When the directory accepted it, in Unix microseconds, whole
    /// milliseconds (so the rendered `createdAt` is exact and usable as a
    /// cursor) and never decreasing from one seq to the next.
    pub created_at_micros: u64,
    /// Whether a fork by a higher-authority key replaced it.
    pub nullified: bool,
}

impl LoggedOp {
    /// `createdAt` as an RFC 3339 string with milliseconds.
    pub fn created_at(&self) -> String {
        format_datetime_micros(self.created_at_micros)
    }

    /// An entry of `/log/audit` (and of the legacy export):
    /// `{did, operation, cid, nullified, createdAt}`.
    pub fn to_audit_json(&self) -> Json {
        json!({
            "did": self.did,
            "operation": self.operation.to_json(),
            "cid": self.cid.to_string(),
            "nullified": self.nullified,
            "createdAt": self.created_at(),
        })
    }

    /// A line of the sequenced `/export`:
    /// `{type: "sequenced_op", operation, did, cid, createdAt, seq}`.
    pub fn to_export_json(&self) -> Json {
        json!({
            "type": "sequenced_op",
            "operation": self.operation.to_json(),
            "did": self.did,
            "cid": self.cid.to_string(),
            "createdAt": self.created_at(),
            "seq": self.seq,
        })
    }
}
