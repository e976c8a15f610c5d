//! The `#commit` body: one signed repo change, with its CAR diff and op list.

use super::field::{self, required};
use super::{Body, FrameError};
use crate::wire::cbor::{DecodeError, Decoder, Encoder, KeyOrder};
use crate::wire::cid::Cid;

/// Most ops one `#commit` may list (lexicon `maxLength`; the reference relay's
/// `MaxCommitOps`; spec digest §1.3). The one definition: the decoder and
/// `repo::verify` both check against it.
pub const MAX_COMMIT_OPS: usize = 200;

/// Longest `#commit.blocks` (the CAR slice), in bytes (lexicon `maxLength`; the
/// reference relay's `MaxMessageBlocksBytes`; spec digest §1.3). The one
/// definition: the decoder and `repo::verify` both check against it.
pub const MAX_COMMIT_BLOCKS_LEN: usize = 2_000_000;

/// A `#commit` body. Strings and `blocks` borrow from the frame.
///
/// Decoding checks types, canonical key order, required fields, the limits
/// ([`MAX_COMMIT_OPS`], [`MAX_COMMIT_BLOCKS_LEN`]) and identifier syntax. It
/// does not check the commit's semantics (op shapes, `rebase`/`tooBig` being
/// false, `blocks` content): that is the verifier's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit<'a> {
    /// Stream sequence number.
    pub seq: i64,
    /// Deprecated; always `false` from current producers. Kept as sent so the
    /// verifier can apply its own policy (strict indigo rejects `true`).
    pub rebase: bool,
    /// Deprecated; producers send `false`. Kept as sent, like `rebase`.
    pub too_big: bool,
    /// The account DID (validated DID syntax).
    pub repo: &'a str,
    /// CID of the signed commit block, the CAR's first root.
    pub commit: Cid,
    /// The commit's revision (validated TID syntax).
    pub rev: &'a str,
    /// Revision of the commit this diff is against; `None` (written as `null`)
    /// for a repo's first commit. The field itself is required.
    pub since: Option<&'a str>,
    /// The CAR v1 slice, borrowed untouched: its bytes are hash-critical.
    pub blocks: &'a [u8],
    /// The record operations, in order.
    pub ops: Vec<RepoOp<'a>>,
    /// Deprecated blob CIDs; producers send `[]`. A `null` is read as empty
    /// because older events (and indigo's JSON test data) carry `blobs: null`.
    pub blobs: Vec<Cid>,
    /// MST root of the previous commit; optional in the lexicon but needed
    /// for inductive validation. Omitted from the encoding when `None`.
    pub prev_data: Option<Cid>,
    /// Informal broadcast time (validated datetime syntax).
    pub time: &'a str,
}

impl<'a> Commit<'a> {
    /// The header `t` of this body.
    pub const TYPE: &'static str = "#commit";
}

impl<'a> Body<'a> for Commit<'a> {
    /// Reads one `#commit` map from `d`. Unknown keys (such as the removed
    /// legacy `prev`) are skipped after validation.
    fn read(d: &mut Decoder<'a>) -> Result<Commit<'a>, FrameError> {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        let mut seq = None;
        let mut rebase = None;
        let mut too_big = None;
        let mut repo = None;
        let mut commit = None;
        let mut rev = None;
        let mut since = None;
        let mut blocks = None;
        let mut ops = None;
        let mut blobs = None;
        let mut prev_data = None;
        let mut time = None;
        for _ in 0..n {
            // Arms in canonical key order.
            match keys.next(d)? {
                "ops" => ops = Some(read_ops(d)?),
                "rev" => rev = Some(field::tid("rev", d.text()?)?),
                "seq" => seq = Some(d.i64()?),
                "repo" => repo = Some(field::did("repo", d.text()?)?),
                "time" => time = Some(field::datetime("time", d.text()?)?),
                "blobs" => blobs = Some(read_blobs(d)?),
                "since" => {
                    since = Some(match field::nullable_text(d)? {
                        Some(s) => Some(field::tid("since", s)?),
                        None => None,
                    })
                }
                "blocks" => {
                    let b = d.bytes()?;
                    if b.len() > MAX_COMMIT_BLOCKS_LEN {
                        return Err(FrameError::BlocksTooLarge {
                            event: Commit::TYPE,
                            len: b.len(),
                            max: MAX_COMMIT_BLOCKS_LEN,
                        });
                    }
                    blocks = Some(b);
                }
                "commit" => commit = Some(d.cid()?),
                "rebase" => rebase = Some(d.bool()?),
                "tooBig" => too_big = Some(d.bool()?),
                // Optional; `null` read as absent, as indigo does.
                "prevData" => prev_data = d.cid_or_null()?,
                _ => d.skip()?,
            }
        }
        Ok(Commit {
            seq: required(seq, "seq")?,
            rebase: required(rebase, "rebase")?,
            too_big: required(too_big, "tooBig")?,
            repo: required(repo, "repo")?,
            commit: required(commit, "commit")?,
            rev: required(rev, "rev")?,
            since: required(since, "since")?,
            blocks: required(blocks, "blocks")?,
            ops: required(ops, "ops")?,
            blobs: required(blobs, "blobs")?,
            prev_data,
            time: required(time, "time")?,
        })
    }

    /// Writes the body map in canonical key order: `ops, rev, seq, repo, time,
    /// blobs, since, blocks, commit, rebase, tooBig, prevData`. `since: None`
    /// is written as `null`; `prevData` is omitted when `None`.
    fn encode(&self, e: &mut Encoder) {
        e.map(11 + usize::from(self.prev_data.is_some()));
        e.text("ops");
        e.array(self.ops.len());
        for op in &self.ops {
            op.encode(e);
        }
        e.text("rev");
        e.text(self.rev);
        e.text("seq");
        e.i64(self.seq);
        e.text("repo");
        e.text(self.repo);
        e.text("time");
        e.text(self.time);
        e.text("blobs");
        e.array(self.blobs.len());
        for cid in &self.blobs {
            e.cid(cid);
        }
        e.text("since");
        match self.since {
            Some(s) => e.text(s),
            None => e.null(),
        }
        e.text("blocks");
        e.bytes(self.blocks);
        e.text("commit");
        e.cid(&self.commit);
        e.text("rebase");
        e.bool(self.rebase);
        e.text("tooBig");
        e.bool(self.too_big);
        if let Some(prev_data) = &self.prev_data {
            e.text("prevData");
            e.cid(prev_data);
        }
    }
}

/// `ops`: at most [`MAX_COMMIT_OPS`], checked before allocating.
fn read_ops<'a>(d: &mut Decoder<'a>) -> Result<Vec<RepoOp<'a>>, FrameError> {
    let n = d.array()?;
    if n > MAX_COMMIT_OPS {
        return Err(FrameError::TooManyOps {
            count: n,
            max: MAX_COMMIT_OPS,
        });
    }
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        ops.push(RepoOp::read(d)?);
    }
    Ok(ops)
}

/// `blobs`: an array of links, or `null` read as empty. Grown as CIDs are
/// read rather than preallocated from the claimed count, so a lying length
/// cannot make us allocate; current producers send `[]`, which allocates
/// nothing.
fn read_blobs(d: &mut Decoder<'_>) -> Result<Vec<Cid>, DecodeError> {
    let mut blobs = Vec::new();
    if d.take_null() {
        return Ok(blobs);
    }
    for _ in 0..d.array()? {
        blobs.push(d.cid()?);
    }
    Ok(blobs)
}

/// What a [`RepoOp`] does to its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A new record (`cid` set, no `prev`).
    Create,
    /// A replaced record (`cid` and `prev` set).
    Update,
    /// A removed record (`cid` null, `prev` set).
    Delete,
}

impl Action {
    /// The wire string: `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    /// Parses the wire string. The lexicon lists only these three "known
    /// values"; an op we cannot interpret cannot be verified, so anything else
    /// is rejected rather than ignored.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "create" => Some(Action::Create),
            "update" => Some(Action::Update),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// One `#repoOp`: a record created, updated or deleted by the commit.
///
/// Only types and syntax are checked here. The shape rules (create has no
/// `prev`; update and delete need `prev`; delete has a null `cid`) are the
/// verifier's: old events break them, and lenient modes tolerate that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepoOp<'a> {
    /// Create, update or delete.
    pub action: Action,
    /// `<collection NSID>/<record key>` (validated repo-path syntax).
    pub path: &'a str,
    /// The new record's CID; `None` (written as `null`) for deletes. Required.
    pub cid: Option<Cid>,
    /// The previous record's CID; optional. Omitted from the encoding when
    /// `None`.
    pub prev: Option<Cid>,
}

impl<'a> RepoOp<'a> {
    /// Reads one `#repoOp` map from `d`; unknown keys are skipped.
    pub fn read(d: &mut Decoder<'a>) -> Result<RepoOp<'a>, DecodeError> {
        let n = d.map()?;
        let mut keys = KeyOrder::new();
        let mut action = None;
        let mut path = None;
        let mut cid = None;
        let mut prev = None;
        for _ in 0..n {
            match keys.next(d)? {
                "cid" => cid = Some(d.cid_or_null()?),
                "path" => path = Some(field::repo_path("path", d.text()?)?),
                // Optional; `null` read as absent, as indigo does.
                "prev" => prev = d.cid_or_null()?,
                "action" => {
                    let s = d.text()?;
                    action = Some(Action::parse(s).ok_or_else(|| {
                        DecodeError::invalid(
                            "action",
                            format!("unknown op action {s:?}: expected create, update or delete"),
                        )
                    })?);
                }
                _ => d.skip()?,
            }
        }
        Ok(RepoOp {
            action: required(action, "action")?,
            path: required(path, "path")?,
            cid: required(cid, "cid")?,
            prev,
        })
    }

    /// Writes the op map in canonical key order: `cid, path, prev, action`.
    pub fn encode(&self, e: &mut Encoder) {
        e.map(3 + usize::from(self.prev.is_some()));
        e.text("cid");
        e.cid_or_null(self.cid.as_ref());
        e.text("path");
        e.text(self.path);
        if let Some(prev) = &self.prev {
            e.text("prev");
            e.cid(prev);
        }
        e.text("action");
        e.text(self.action.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cbor::Value;
    use crate::wire::frame::testutil::*;
    use crate::wire::frame::{Event, EventKind};

    fn sample() -> Commit<'static> {
        Commit {
            seq: 4_621_317_030,
            rebase: false,
            too_big: false,
            repo: DID,
            commit: cid(1),
            rev: REV,
            since: Some(SINCE),
            blocks: b"\x3a\xa2not really a car",
            ops: vec![
                RepoOp {
                    action: Action::Create,
                    path: "app.bsky.feed.post/3lgde2mwtlcr2",
                    cid: Some(cid(2)),
                    prev: None,
                },
                RepoOp {
                    action: Action::Update,
                    path: "app.bsky.actor.profile/self",
                    cid: Some(cid(3)),
                    prev: Some(cid(4)),
                },
                RepoOp {
                    action: Action::Delete,
                    path: "app.bsky.feed.like/3lgde2mwtlcr2",
                    cid: None,
                    prev: Some(cid(5)),
                },
            ],
            blobs: vec![],
            prev_data: Some(cid(6)),
            time: TIME,
        }
    }

    /// The sample as a generic map, to build variants of it.
    fn sample_map() -> Entries {
        let mut body = Vec::new();
        sample().encode(&mut crate::wire::cbor::Encoder::new(&mut body));
        map_entries(&body)
    }

    fn decode_map(entries: &Entries) -> Result<Commit<'static>, FrameError> {
        Commit::decode(leak(build_map(entries)))
    }

    #[test]
    fn round_trip() {
        for c in [
            sample(),
            Commit {
                since: None,
                prev_data: None,
                ops: vec![],
                blobs: vec![cid(7), cid(8)],
                rebase: true,
                too_big: true,
                ..sample()
            },
        ] {
            let frame = frame_of(&Event::Commit(c.clone()));
            assert_eq!(&frame[..15], COMMIT_HEADER);
            let ev = Event::decode(&frame).unwrap();
            assert_eq!(ev, Event::Commit(c));
            assert_eq!(frame_of(&ev), frame);
        }
    }

    #[test]
    fn key_order_is_canonical() {
        let mut body = Vec::new();
        sample().encode(&mut Encoder::new(&mut body));
        assert_canonical(&body);
        let keys: Vec<_> = map_entries(&body).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "ops", "rev", "seq", "repo", "time", "blobs", "since", "blocks", "commit",
                "rebase", "tooBig", "prevData"
            ]
        );
        let mut op = Vec::new();
        sample().ops[1].encode(&mut Encoder::new(&mut op));
        assert_canonical(&op);
    }

    #[test]
    fn borrows_from_input() {
        let frame = frame_of(&Event::Commit(sample()));
        let Event::Commit(c) = Event::decode(&frame).unwrap() else {
            panic!("not a commit");
        };
        let range = frame.as_ptr_range();
        assert!(range.contains(&c.repo.as_ptr()));
        assert!(range.contains(&c.blocks.as_ptr()));
        assert!(range.contains(&c.ops[0].path.as_ptr()));
    }

    #[test]
    fn since_null_vs_absent() {
        let mut m = sample_map();
        set(&mut m, "since", Value::Null);
        assert_eq!(decode_map(&m).unwrap().since, None);
        remove(&mut m, "since");
        assert_eq!(
            decode_map(&m),
            Err(FrameError::Body(DecodeError::MissingField("since")))
        );
    }

    #[test]
    fn blobs_null_is_empty_and_prev_data_optional() {
        let mut m = sample_map();
        set(&mut m, "blobs", Value::Null);
        set(&mut m, "prevData", Value::Null);
        let c = decode_map(&m).unwrap();
        assert!(c.blobs.is_empty());
        assert_eq!(c.prev_data, None);
        remove(&mut m, "prevData");
        assert_eq!(decode_map(&m).unwrap().prev_data, None);
    }

    #[test]
    fn every_required_field_is_required() {
        for key in [
            "ops", "rev", "seq", "repo", "time", "blobs", "since", "blocks", "commit", "rebase",
            "tooBig",
        ] {
            let mut m = sample_map();
            remove(&mut m, key);
            assert_eq!(
                decode_map(&m),
                Err(FrameError::Body(DecodeError::MissingField(key))),
                "{key}"
            );
        }
        for key in ["cid", "path", "action"] {
            let mut m = sample_map();
            let mut op = map_entries(&build_map(&ops_entry(&m, 0)));
            remove(&mut op, key);
            set(&mut m, "ops", Value::Array(vec![value_of(&op)]));
            assert_eq!(
                decode_map(&m),
                Err(FrameError::Body(DecodeError::MissingField(key))),
                "{key}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_skipped_but_validated() {
        let mut m = sample_map();
        // the removed legacy field, and a future one
        set(&mut m, "prev", Value::Null);
        set(&mut m, "zzzFuture", Value::Array(vec![Value::Int(1)]));
        let mut op = map_entries(&build_map(&ops_entry(&m, 0)));
        set(&mut op, "extra", Value::Bool(true));
        set(&mut m, "ops", Value::Array(vec![value_of(&op)]));
        let c = decode_map(&m).unwrap();
        assert_eq!(c.ops.len(), 1);
        assert_eq!(c.ops[0], sample().ops[0]);

        // an unknown field holding a float is still rejected
        let mut body = build_map(&sample_map());
        body[0] += 1; // one more entry
        body.extend_from_slice(b"\x69zzzFuture\xf9\x3c\x00");
        assert!(matches!(
            Commit::decode(&body),
            Err(FrameError::Body(DecodeError::Float(_)))
        ));
    }

    #[test]
    fn field_syntax_is_checked() {
        for (key, value) in [
            ("repo", "not-a-did"),
            ("rev", "not a tid"),
            ("since", "3lhhxizu5wr2"),
            ("time", "yesterday"),
        ] {
            let mut m = sample_map();
            set(&mut m, key, text(value));
            match decode_map(&m) {
                Err(FrameError::Body(DecodeError::InvalidField { field, .. })) => {
                    assert_eq!(field, key)
                }
                other => panic!("{key}: {other:?}"),
            }
        }
        let mut m = sample_map();
        let mut op = map_entries(&build_map(&ops_entry(&m, 0)));
        set(&mut op, "path", text("no-slash"));
        set(&mut m, "ops", Value::Array(vec![value_of(&op)]));
        assert!(matches!(
            decode_map(&m),
            Err(FrameError::Body(DecodeError::InvalidField {
                field: "path",
                ..
            }))
        ));
        set(&mut op, "path", text("app.bsky.feed.post/abc"));
        set(&mut op, "action", text("upsert"));
        set(&mut m, "ops", Value::Array(vec![value_of(&op)]));
        assert!(matches!(
            decode_map(&m),
            Err(FrameError::Body(DecodeError::InvalidField {
                field: "action",
                ..
            }))
        ));
    }

    #[test]
    fn wrong_types_are_rejected() {
        for (key, value) in [
            ("seq", text("1")),
            ("rebase", Value::Null),
            ("commit", Value::Null),
            ("blocks", text("car")),
            ("ops", Value::Null),
            ("repo", Value::Null),
        ] {
            let mut m = sample_map();
            set(&mut m, key, value);
            assert!(
                matches!(
                    decode_map(&m),
                    Err(FrameError::Body(DecodeError::Type { .. }))
                ),
                "{key}"
            );
        }
    }

    #[test]
    fn op_shapes_are_not_checked_here() {
        // create with prev, delete with cid: the verifier's business
        let mut c = sample();
        c.ops[0].prev = Some(cid(9));
        c.ops[2].cid = Some(cid(9));
        let frame = frame_of(&Event::Commit(c.clone()));
        assert_eq!(Event::decode(&frame).unwrap(), Event::Commit(c));
    }

    #[test]
    fn ops_limit() {
        let op = sample().ops[0];
        let mut c = sample();
        c.ops = vec![op; MAX_COMMIT_OPS];
        let frame = frame_of(&Event::Commit(c.clone()));
        assert_eq!(Event::decode(&frame).unwrap(), Event::Commit(c.clone()));
        c.ops.push(op);
        let frame = frame_of(&Event::Commit(c));
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::TooManyOps {
                count: 201,
                max: 200
            })
        );
    }

    #[test]
    fn blocks_limit() {
        let big = vec![0u8; MAX_COMMIT_BLOCKS_LEN + 1];
        let mut c = sample();
        c.blocks = &big[..MAX_COMMIT_BLOCKS_LEN];
        let frame = frame_of(&Event::Commit(c.clone()));
        assert_eq!(Event::decode(&frame).unwrap().kind(), EventKind::Commit);
        c.blocks = &big;
        let frame = frame_of(&Event::Commit(c));
        assert_eq!(
            Event::decode(&frame),
            Err(FrameError::BlocksTooLarge {
                event: "#commit",
                len: 2_000_001,
                max: 2_000_000
            })
        );
    }

    #[test]
    fn action_strings() {
        for a in [Action::Create, Action::Update, Action::Delete] {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("Create"), None);
    }
}
