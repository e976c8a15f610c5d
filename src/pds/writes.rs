//! Turning a client's record writes into repo writes: the checks PDS mode
//! makes before anything is signed.
//!
//! - `collection` is an NSID and `rkey` a record key (or, for a create
//!   without one, a fresh TID);
//! - the record is data-model JSON (no floats, well-formed `$link`,
//!   `$bytes` and blobs) with a top-level `$type` naming the collection's
//!   record type — a mismatch is refused rather than stored under a
//!   misleading path;
//! - the encoded record fits the relay-side limit
//!   ([`MAX_RECORD_BYTES`](crate::repo::verify::MAX_RECORD_BYTES)), so a
//!   relay never drops what this PDS emits.
//!
//! There is no lexicon validation beyond that (`validationStatus` is
//! `unknown`). Swaps and existence are checked against the stored record
//! index by the caller, who holds the repo's write lock.

use serde_json::Value as Json;

use crate::repo::builder::RecordWrite;
use crate::repo::verify::MAX_RECORD_BYTES;
use crate::wire::cid::Cid;
use crate::wire::json::record_from_json;
use crate::wire::syntax::{validate_nsid, validate_record_key};
use crate::wire::tid::TidClock;

/// What the client asked for, one write.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteRequest {
    Create {
        collection: String,
        rkey: Option<String>,
        record: Json,
    },
    /// `putRecord` (create or replace) and `applyWrites#update`.
    Put {
        collection: String,
        rkey: String,
        record: Json,
    },
    Delete {
        collection: String,
        rkey: String,
    },
}

/// A checked write, its record encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedWrite {
    pub collection: String,
    pub rkey: String,
    /// The record's CID and DAG-CBOR bytes (`None` for a delete).
    pub record: Option<(Cid, Vec<u8>)>,
    /// Whether the client asked to create (`true`), put or delete.
    pub create: bool,
}

/// Why a write was refused; the lexicon error names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidSwap(String),
    #[error("record not found: {0}")]
    RecordNotFound(String),
}

impl WriteError {
    /// The XRPC error name.
    pub fn name(&self) -> &'static str {
        match self {
            WriteError::InvalidRequest(_) => "InvalidRequest",
            WriteError::InvalidSwap(_) => "InvalidSwap",
            WriteError::RecordNotFound(_) => "RecordNotFound",
        }
    }
}

/// Checks one write and encodes its record; a create without a record key
/// gets the next TID from `tids`.
pub fn prepare(req: WriteRequest, tids: &TidClock) -> Result<PreparedWrite, WriteError> {
    let (collection, rkey, record, create) = match req {
        WriteRequest::Create {
            collection,
            rkey,
            record,
        } => {
            let rkey = rkey.unwrap_or_else(|| tids.next().to_string());
            (collection, rkey, Some(record), true)
        }
        WriteRequest::Put {
            collection,
            rkey,
            record,
        } => (collection, rkey, Some(record), false),
        WriteRequest::Delete { collection, rkey } => (collection, rkey, None, false),
    };
    validate_nsid(&collection)
        .map_err(|e| WriteError::InvalidRequest(format!("collection: {e}")))?;
    validate_record_key(&rkey).map_err(|e| WriteError::InvalidRequest(format!("rkey: {e}")))?;
    let record = match record {
        None => None,
        Some(json) => Some(encode_record(&collection, &json)?),
    };
    Ok(PreparedWrite {
        collection,
        rkey,
        record,
        create,
    })
}

/// Encodes a record after the data-model and `$type` checks.
fn encode_record(collection: &str, json: &Json) -> Result<(Cid, Vec<u8>), WriteError> {
    let value =
        record_from_json(json).map_err(|e| WriteError::InvalidRequest(format!("record: {e}")))?;
    match json.get("$type").and_then(Json::as_str) {
        None => {
            return Err(WriteError::InvalidRequest(
                "record: missing $type".to_owned(),
            ))
        }
        Some(t) if t != collection => {
            return Err(WriteError::InvalidRequest(format!(
                "record: $type {t:?} does not match collection {collection:?}"
            )))
        }
        Some(_) => {}
    }
    let bytes = value.to_cbor();
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(WriteError::InvalidRequest(format!(
            "record: {} bytes encoded, over the {MAX_RECORD_BYTES}-byte limit",
            bytes.len()
        )));
    }
    Ok((Cid::for_cbor(&bytes), bytes))
}

impl PreparedWrite {
    /// `collection/rkey`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.collection, self.rkey)
    }

    /// `at://did/collection/rkey`.
    pub fn uri(&self, did: &str) -> String {
        format!("at://{did}/{}/{}", self.collection, self.rkey)
    }

    /// The repo write, given whether the record exists now: a create of an
    /// existing record and a delete of a missing one are refused.
    pub fn to_repo_write(&self, existing: Option<Cid>) -> Result<RecordWrite, WriteError> {
        let path = self.path();
        match (&self.record, existing) {
            (Some(_), Some(_)) if self.create => Err(WriteError::InvalidRequest(format!(
                "record {path} already exists"
            ))),
            (Some((_, bytes)), None) => Ok(RecordWrite::Create {
                path,
                record: bytes.clone(),
            }),
            (Some((_, bytes)), Some(_)) => Ok(RecordWrite::Update {
                path,
                record: bytes.clone(),
            }),
            (None, Some(_)) => Ok(RecordWrite::Delete { path }),
            (None, None) => Err(WriteError::RecordNotFound(path)),
        }
    }
}

/// Checks `swapRecord`: `Some(None)` means "must not exist", `Some(Some(c))`
/// means "must currently be `c`".
pub fn check_swap_record(
    path: &str,
    expected: Option<Option<Cid>>,
    existing: Option<Cid>,
) -> Result<(), WriteError> {
    match expected {
        Some(want) if want != existing => Err(WriteError::InvalidSwap(format!(
            "record {path} is {}, not {}",
            existing.map_or("absent".to_owned(), |c| c.to_string()),
            want.map_or("absent".to_owned(), |c| c.to_string()),
        ))),
        _ => Ok(()),
    }
}

/// Checks `swapCommit` against the repo's current commit.
pub fn check_swap_commit(expected: Option<Cid>, current: Option<Cid>) -> Result<(), WriteError> {
    match expected {
        Some(want) if Some(want) != current => Err(WriteError::InvalidSwap(format!(
            "the repo's commit is {}, not {want}",
            current.map_or("none".to_owned(), |c| c.to_string())
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(collection: &str, rkey: Option<&str>, record: Json) -> WriteRequest {
        WriteRequest::Create {
            collection: collection.into(),
            rkey: rkey.map(str::to_owned),
            record,
        }
    }

    #[test]
    fn good_writes_are_encoded_and_keyed() {
        let tids = TidClock::new();
        let post = json!({"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-11-25T00:00:00Z"});
        let w = prepare(create("app.bsky.feed.post", None, post.clone()), &tids).unwrap();
        assert_eq!(w.rkey.len(), 13, "a TID rkey");
        let (cid, bytes) = w.record.clone().unwrap();
        assert_eq!(cid, Cid::for_cbor(&bytes));
        assert!(matches!(
            w.to_repo_write(None).unwrap(),
            RecordWrite::Create { .. }
        ));
        assert!(
            w.to_repo_write(Some(cid)).is_err(),
            "create over an existing record"
        );
        assert_eq!(
            w.uri("did:plc:abc"),
            format!("at://did:plc:abc/app.bsky.feed.post/{}", w.rkey)
        );
        let put = prepare(
            WriteRequest::Put {
                collection: "app.bsky.actor.profile".into(),
                rkey: "self".into(),
                record: json!({"$type": "app.bsky.actor.profile", "displayName": "A"}),
            },
            &tids,
        )
        .unwrap();
        assert!(matches!(
            put.to_repo_write(Some(cid)).unwrap(),
            RecordWrite::Update { .. }
        ));
        let del = prepare(
            WriteRequest::Delete {
                collection: "app.bsky.feed.post".into(),
                rkey: "3k2a".into(),
            },
            &tids,
        )
        .unwrap();
        assert_eq!(
            del.to_repo_write(None),
            Err(WriteError::RecordNotFound("app.bsky.feed.post/3k2a".into()))
        );
    }

    #[test]
    fn bad_writes_are_refused_with_invalid_request() {
        let tids = TidClock::new();
        let ok = json!({"$type": "app.bsky.feed.like"});
        let cases = [
            create("not an nsid", None, ok.clone()),
            create("app.bsky.feed.like", Some("bad/rkey"), ok.clone()),
            create("app.bsky.feed.like", Some(".."), ok.clone()),
            create("app.bsky.feed.like", None, json!({"no": "type"})),
            create(
                "app.bsky.feed.like",
                None,
                json!({"$type": "app.bsky.feed.post"}),
            ),
            create(
                "app.bsky.feed.like",
                None,
                json!({"$type": "app.bsky.feed.like", "f": 1.5}),
            ),
            create("app.bsky.feed.like", None, json!(["not", "an", "object"])),
            create(
                "app.bsky.feed.like",
                None,
                json!({"$type": "app.bsky.feed.like", "big": "x".repeat(MAX_RECORD_BYTES)}),
            ),
        ];
        for req in cases {
            let e = prepare(req.clone(), &tids).unwrap_err();
            assert_eq!(e.name(), "InvalidRequest", "{req:?}: {e}");
        }
    }

    #[test]
    fn swaps() {
        let a = Cid::for_cbor(b"\xa0");
        let b = Cid::for_cbor(b"\x80");
        assert!(check_swap_record("p", None, Some(a)).is_ok());
        assert!(check_swap_record("p", Some(Some(a)), Some(a)).is_ok());
        assert!(check_swap_record("p", Some(None), None).is_ok());
        assert_eq!(
            check_swap_record("p", Some(None), Some(a))
                .unwrap_err()
                .name(),
            "InvalidSwap"
        );
        assert!(check_swap_record("p", Some(Some(b)), Some(a)).is_err());
        assert!(check_swap_commit(Some(a), Some(a)).is_ok());
        assert!(check_swap_commit(Some(a), None).is_err());
        assert!(check_swap_commit(None, Some(b)).is_ok());
    }
}
