//! Event bodies in atproto JSON (the form indigo's test data and many tools
//! use: links as `{"$link"}`, `blocks` as `{"$bytes"}`) turned into binary
//! frames, so one decoder and one verifier serve both forms.
//!
//! The JSON carries no header, so the body's type comes from its `$type` when
//! present (`com.atproto.sync.subscribeRepos#commit` or `#commit`), else from
//! the fields only that type has.

use atrelay::wire::cbor::Encoder;
use atrelay::wire::frame::{Account, Commit, EventKind, Header, Identity, Info, Sync};
use atrelay::wire::json::value_from_json;
use serde_json::{Map, Value as Json};

use super::error::{CliError, CliResult};

/// Parses `text` as a JSON event body and encodes it as a frame: a header
/// naming the body's type, then the body, both canonical DAG-CBOR.
pub fn frame_from_json(text: &[u8]) -> CliResult<Vec<u8>> {
    let json: Json =
        serde_json::from_slice(text).map_err(|e| CliError::new(format!("not valid JSON: {e}")))?;
    let Json::Object(obj) = &json else {
        return Err(CliError::new(
            "the JSON is not an object: expected an event body such as a #commit",
        ));
    };
    let t = body_type(obj)?;
    let body =
        value_from_json(&json).map_err(|e| CliError::new(format!("not data-model JSON: {e}")))?;
    let mut frame = Vec::new();
    Header::message(t).encode(&mut Encoder::new(&mut frame));
    body.encode(&mut Encoder::new(&mut frame));
    Ok(frame)
}

/// The `#type` of a body, from `$type` or from its distinguishing fields.
fn body_type(obj: &Map<String, Json>) -> CliResult<&'static str> {
    if let Some(ty) = obj.get("$type") {
        let name = ty.as_str().unwrap_or_default();
        let fragment = name.rfind('#').map_or(name, |i| &name[i..]);
        return EventKind::of(1, Some(fragment)).type_name().ok_or_else(|| {
            CliError::new(format!(
                "$type {ty} is not a subscribeRepos event type \
                     (#commit, #sync, #identity, #account, #info)"
            ))
        });
    }
    let has = |k: &str| obj.contains_key(k);
    if has("commit") && has("ops") && has("repo") {
        Ok(Commit::TYPE)
    } else if has("blocks") && has("did") {
        Ok(Sync::TYPE)
    } else if has("active") && has("did") {
        Ok(Account::TYPE)
    } else if has("did") && has("seq") {
        Ok(Identity::TYPE)
    } else if has("name") && !has("seq") {
        Ok(Info::TYPE)
    } else {
        Err(CliError::new(
            "the JSON object is not a recognisable subscribeRepos body: a #commit has \
             repo, commit, ops and blocks; a #sync has did and blocks \
             (or set $type, e.g. \"com.atproto.sync.subscribeRepos#commit\")",
        ))
    }
}
