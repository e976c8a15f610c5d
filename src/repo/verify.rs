//! Verification of `#commit` and `#sync` events against the account's key:
//! the stateless part of digest §2.2 / §2.3.
//!
//! Always checked: size limits; the CAR (every block's hash, `roots[0]` is the
//! commit and equals `commit`); the commit object (v3, 64-byte sig, DID and TID
//! syntax); `repo`/`did` and `rev` agree with the commit; the rev is not in the
//! future beyond the clock-drift allowance; the signature; `rebase` and
//! `tooBig` are false; op shapes and duplicate paths; each created or updated
//! record's block is present and within the record size limit; and, when
//! `prevData` is present, MST inversion lands exactly on it.
//!
//! Only in strict mode (the default): ops must be invertible (updates and
//! deletes carry `prev`); lenient mode skips inversion for such legacy commits.
//!
//! Not checked here (the relay checks them against its stored state): that
//! `rev` is newer than the stored rev, that `since` / `prevData` continue the
//! stored chain, that the account is active, and host matching. A commit
//! without `prevData` is verified except for inversion; whether that is
//! acceptable (first commit of an unknown account) is also the relay's call.

// `VerifyError` names the CIDs involved (73 bytes each, inline) so a dropped
// event's log line is precise; the success value carries as many CIDs, so boxing
// the errors would not make the `Result` smaller.
#![allow(clippy::result_large_err)]

use super::commit::{Commit, CommitError};
use super::invert::{check_op_shape, invert, is_invertible, InvertError};
use crate::clock::now_micros;
use crate::crypto::PublicKey;
use crate::wire::car::{Car, CarError, CarLimits};
use crate::wire::cid::Cid;
use crate::wire::frame::{self, Action, MAX_COMMIT_BLOCKS_LEN, MAX_COMMIT_OPS};
use crate::wire::tid::Tid;

/// Largest record block (sync spec).
pub const MAX_RECORD_BYTES: usize = 1_000_000;
/// How far a rev's timestamp may run ahead of our clock (the reference relay's
/// allowance), in microseconds.
pub const MAX_CLOCK_DRIFT_MICROS: u64 = 5 * 60 * 1_000_000;

/// Verification policy knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept pre-Sync-1.1 commits whose updates/deletes lack `prev`, without
    /// inversion (digest §11.10).
    pub lenient: bool,
    /// Current time, Unix microseconds (a parameter so tests are exact).
    pub now_micros: u64,
}

impl VerifyOptions {
    /// Strict verification at the current system time.
    pub fn strict_now() -> VerifyOptions {
        VerifyOptions {
            lenient: false,
            now_micros: now_micros(),
        }
    }
}

/// What a verified commit establishes about the repo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedCommit {
    pub commit: Cid,
    pub rev: Tid,
    /// MST root after the commit.
    pub data: Cid,
    /// Whether inversion ran (and so `prevData` is proven).
    pub inverted: bool,
}

/// Why an event failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("blocks is {0} bytes, over the limit")]
    BlocksTooLarge(usize),
    #[error("{0} ops, over the limit of {MAX_COMMIT_OPS}")]
    TooManyOps(usize),
    #[error("blocks is empty")]
    EmptyBlocks,
    #[error("{0}")]
    Car(#[from] CarError),
    #[error("the CAR has no root")]
    NoRoot,
    #[error("the CAR's root {root} is not the event's commit {commit}")]
    RootMismatch { root: Cid, commit: Cid },
    #[error("the commit block {0} is not in the CAR")]
    CommitMissing(Cid),
    #[error("{0}")]
    Commit(#[from] CommitError),
    #[error("event repo {event} differs from commit did {commit}")]
    DidMismatch { event: String, commit: String },
    #[error("event rev {event} differs from commit rev {commit}")]
    RevMismatch { event: String, commit: String },
    #[error("rev {0} is not a valid TID")]
    BadRev(String),
    #[error("rev {0} is too far in the future")]
    FutureRev(String),
    #[error("rebase is set (deprecated, must be false)")]
    Rebase,
    #[error("tooBig is set (deprecated, must be false)")]
    TooBig,
    #[error("ops lack prev and cannot be inverted (legacy commit; accepted only in lenient mode)")]
    NotInvertible,
    #[error("record block {cid} for {path} is missing from the diff")]
    RecordMissing { path: String, cid: Cid },
    #[error("record {path} is {len} bytes, over the limit")]
    RecordTooLarge { path: String, len: usize },
    #[error("{0}")]
    Invert(#[from] InvertError),
    #[error("inversion gives {computed}, but prevData is {announced}")]
    PrevDataMismatch { computed: Cid, announced: Cid },
}

/// Verifies a `#commit` against the account's current signing key.
pub fn verify_commit(
    ev: &frame::Commit,
    key: &PublicKey,
    opts: &VerifyOptions,
) -> Result<VerifiedCommit, VerifyError> {
    if ev.blocks.len() > MAX_COMMIT_BLOCKS_LEN {
        return Err(VerifyError::BlocksTooLarge(ev.blocks.len()));
    }
    if ev.ops.len() > MAX_COMMIT_OPS {
        return Err(VerifyError::TooManyOps(ev.ops.len()));
    }
    if ev.blocks.is_empty() {
        return Err(VerifyError::EmptyBlocks);
    }
    if ev.rebase {
        return Err(VerifyError::Rebase);
    }
    if ev.too_big {
        return Err(VerifyError::TooBig);
    }
    let car = Car::parse(ev.blocks, CarLimits::FIREHOSE)?;
    let commit = open_commit(&car, Some(ev.commit))?;
    check_identity(ev.repo, ev.rev, &commit)?;
    let rev = check_rev(commit.rev, opts)?;

    for op in &ev.ops {
        check_op_shape(op).or_else(|e| {
            // Lenient mode tolerates legacy ops that lack only `prev`.
            let legacy = opts.lenient && op.action != Action::Create && op.prev.is_none();
            if legacy {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        if let Some(cid) = op.cid {
            let block = car.get(&cid).ok_or_else(|| VerifyError::RecordMissing {
                path: op.path.to_owned(),
                cid,
            })?;
            if block.len() > MAX_RECORD_BYTES {
                return Err(VerifyError::RecordTooLarge {
                    path: op.path.to_owned(),
                    len: block.len(),
                });
            }
        }
    }

    let invertible = is_invertible(&ev.ops);
    if !invertible && !opts.lenient {
        return Err(VerifyError::NotInvertible);
    }
    let inverted = match ev.prev_data {
        Some(announced) if invertible => {
            let computed = invert(commit.data, &ev.ops, &car)?;
            if computed != announced {
                return Err(VerifyError::PrevDataMismatch {
                    computed,
                    announced,
                });
            }
            true
        }
        _ => false,
    };

    // Last: the most expensive check, after everything cheap has passed.
    commit.verify_signature(key)?;
    Ok(VerifiedCommit {
        commit: ev.commit,
        rev,
        data: commit.data,
        inverted,
    })
}

/// Verifies a `#sync` (a CAR holding only the signed commit) against the
/// account's current signing key.
pub fn verify_sync(
    ev: &frame::Sync,
    key: &PublicKey,
    opts: &VerifyOptions,
) -> Result<VerifiedCommit, VerifyError> {
    if ev.blocks.is_empty() {
        return Err(VerifyError::EmptyBlocks);
    }
    let car = Car::parse(ev.blocks, CarLimits::FIREHOSE)?;
    let commit = open_commit(&car, None)?;
    check_identity(ev.did, ev.rev, &commit)?;
    let rev = check_rev(commit.rev, opts)?;
    commit.verify_signature(key)?;
    let cid = car.root().copied().ok_or(VerifyError::NoRoot)?;
    Ok(VerifiedCommit {
        commit: cid,
        rev,
        data: commit.data,
        inverted: false,
    })
}

/// Finds and decodes the commit named by `roots[0]` (which must equal
/// `expected` when given).
fn open_commit<'a>(car: &Car<'a>, expected: Option<Cid>) -> Result<Commit<'a>, VerifyError> {
    let root = *car.root().ok_or(VerifyError::NoRoot)?;
    if let Some(commit) = expected {
        if root != commit {
            return Err(VerifyError::RootMismatch { root, commit });
        }
    }
    let block = car.get(&root).ok_or(VerifyError::CommitMissing(root))?;
    Ok(Commit::decode(block)?)
}

fn check_identity(did: &str, rev: &str, commit: &Commit) -> Result<(), VerifyError> {
    if did != commit.did {
        return Err(VerifyError::DidMismatch {
            event: did.to_owned(),
            commit: commit.did.to_owned(),
        });
    }
    if rev != commit.rev {
        return Err(VerifyError::RevMismatch {
            event: rev.to_owned(),
            commit: commit.rev.to_owned(),
        });
    }
    Ok(())
}

fn check_rev(rev: &str, opts: &VerifyOptions) -> Result<Tid, VerifyError> {
    let tid = Tid::parse(rev).map_err(|_| VerifyError::BadRev(rev.to_owned()))?;
    if tid.timestamp_micros() > opts.now_micros.saturating_add(MAX_CLOCK_DRIFT_MICROS) {
        return Err(VerifyError::FutureRev(rev.to_owned()));
    }
    Ok(tid)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::crypto::{Curve, PrivateKey};
    use crate::repo::builder::{BuiltCommit, RecordWrite, RepoHead};
    use crate::wire::car::CarWriter;
    use crate::wire::tid::TidClock;

    const DID: &str = "did:plc:abcdefghijklmnopqrstuvwx";
    const TIME: &str = "2026-11-24T12:00:00.000Z";

    fn record(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = crate::wire::cbor::Encoder::new(&mut out);
        e.map(2);
        e.text("text");
        e.text(text);
        e.text("$type");
        e.text("app.bsky.feed.post");
        out
    }

    /// A repo with 40 posts, then a commit that creates, updates and deletes.
    fn mixed_commit(curve: Curve) -> (PrivateKey, BuiltCommit) {
        let key = PrivateKey::generate(curve);
        let clock = TidClock::new();
        let mut store = HashMap::new();
        let mut head = RepoHead::empty(DID, &mut store);
        let writes = (0..40)
            .map(|i| RecordWrite::Create {
                path: format!("app.bsky.feed.post/{}", clock.next()),
                record: record(&format!("post {i}")),
            })
            .collect::<Vec<_>>();
        let paths: Vec<String> = writes
            .iter()
            .map(|w| match w {
                RecordWrite::Create { path, .. } => path.clone(),
                _ => unreachable!(),
            })
            .collect();
        let first = head.commit(&store, writes, &key, clock.next()).unwrap();
        first.store_into(&mut store);
        head = first.head.clone();
        let second = head
            .commit(
                &store,
                vec![
                    RecordWrite::Create {
                        path: format!("app.bsky.feed.like/{}", clock.next()),
                        record: record("like"),
                    },
                    RecordWrite::Update {
                        path: paths[7].clone(),
                        record: record("edited"),
                    },
                    RecordWrite::Delete {
                        path: paths[23].clone(),
                    },
                ],
                &key,
                clock.next(),
            )
            .unwrap();
        (key, second)
    }

    fn opts() -> VerifyOptions {
        VerifyOptions::strict_now()
    }

    /// Rebuilds the diff CAR keeping only the blocks `keep` accepts.
    fn filtered_car(built: &BuiltCommit, keep: impl Fn(&Cid) -> bool) -> Vec<u8> {
        let car = Car::parse(&built.car, CarLimits::FIREHOSE).unwrap();
        let mut w = CarWriter::new(car.roots());
        for b in car.blocks() {
            if keep(&b.cid) {
                w.push(&b.cid, b.data);
            }
        }
        w.finish()
    }

    #[test]
    fn valid_commits_verify_on_both_curves() {
        for curve in [Curve::K256, Curve::P256] {
            let (key, built) = mixed_commit(curve);
            let s = built.frame_strings();
            let ev = built.to_frame(&s, 1, TIME);
            let v = verify_commit(&ev, &key.public_key(), &opts()).unwrap();
            assert!(v.inverted);
            assert_eq!(v.data, built.data);
            assert_eq!(v.rev, built.rev);
            assert_eq!(v.commit, built.commit);
        }
    }

    #[test]
    fn wrong_key_fails_on_the_signature() {
        let (_, built) = mixed_commit(Curve::K256);
        let s = built.frame_strings();
        let ev = built.to_frame(&s, 1, TIME);
        let other = PrivateKey::generate(Curve::K256).public_key();
        assert!(matches!(
            verify_commit(&ev, &other, &opts()),
            Err(VerifyError::Commit(CommitError::Signature(_)))
        ));
    }

    #[test]
    fn event_fields_must_match_the_commit() {
        let (key, built) = mixed_commit(Curve::K256);
        let pk = key.public_key();
        let s = built.frame_strings();

        let mut ev = built.to_frame(&s, 1, TIME);
        ev.repo = "did:plc:zzzzzzzzzzzzzzzzzzzzzzzz";
        assert!(matches!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::DidMismatch { .. })
        ));

        let mut ev = built.to_frame(&s, 1, TIME);
        ev.rev = "3kzzzzzzzzzzz";
        assert!(matches!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::RevMismatch { .. })
        ));

        let mut ev = built.to_frame(&s, 1, TIME);
        ev.commit = Cid::for_cbor(b"\xa0");
        assert!(matches!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::RootMismatch { .. })
        ));

        let mut ev = built.to_frame(&s, 1, TIME);
        ev.rebase = true;
        assert_eq!(verify_commit(&ev, &pk, &opts()), Err(VerifyError::Rebase));

        let mut ev = built.to_frame(&s, 1, TIME);
        ev.too_big = true;
        assert_eq!(verify_commit(&ev, &pk, &opts()), Err(VerifyError::TooBig));

        let mut ev = built.to_frame(&s, 1, TIME);
        ev.blocks = &[];
        assert_eq!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::EmptyBlocks)
        );
    }

    #[test]
    fn future_rev_is_rejected() {
        let (key, built) = mixed_commit(Curve::K256);
        let s = built.frame_strings();
        let ev = built.to_frame(&s, 1, TIME);
        let past = VerifyOptions {
            lenient: false,
            now_micros: built.rev.timestamp_micros() - MAX_CLOCK_DRIFT_MICROS - 1,
        };
        assert!(matches!(
            verify_commit(&ev, &key.public_key(), &past),
            Err(VerifyError::FutureRev(_))
        ));
        let edge = VerifyOptions {
            now_micros: past.now_micros + 1,
            ..past
        };
        verify_commit(&ev, &key.public_key(), &edge).unwrap();
    }

    #[test]
    fn broken_chain_or_proof_is_rejected() {
        let (key, built) = mixed_commit(Curve::K256);
        let pk = key.public_key();
        let s = built.frame_strings();

        let mut ev = built.to_frame(&s, 1, TIME);
        ev.prev_data = Some(built.data);
        assert!(matches!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::PrevDataMismatch { .. })
        ));

        // Without the new MST root the diff cannot be inverted.
        let car = filtered_car(&built, |c| *c != built.data);
        let mut ev = built.to_frame(&s, 1, TIME);
        ev.blocks = &car;
        assert!(matches!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::Invert(InvertError::Mst(
                crate::repo::mst::MstError::MissingBlock(_)
            )))
        ));

        // A tampered record block fails its hash check.
        let mut tampered = built.car.clone();
        let at = tampered.windows(6).rposition(|w| w == b"edited").unwrap();
        tampered[at] = b'E';
        let mut ev = built.to_frame(&s, 1, TIME);
        ev.blocks = &tampered;
        assert!(matches!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::Car(CarError::HashMismatch { .. }))
        ));
    }

    #[test]
    fn record_blocks_must_be_present() {
        let (key, built) = mixed_commit(Curve::K256);
        let created = built
            .ops
            .iter()
            .find(|o| o.action == Action::Create)
            .unwrap();
        let record = created.cid.unwrap();
        let car = filtered_car(&built, |c| *c != record);
        let s = built.frame_strings();
        let mut ev = built.to_frame(&s, 1, TIME);
        ev.blocks = &car;
        assert!(matches!(
            verify_commit(&ev, &key.public_key(), &opts()),
            Err(VerifyError::RecordMissing { .. })
        ));
    }

    #[test]
    fn op_shape_and_tampered_ops() {
        let (key, built) = mixed_commit(Curve::K256);
        let pk = key.public_key();
        let s = built.frame_strings();

        // A create claiming a different record CID disagrees with the tree.
        let mut ev = built.to_frame(&s, 1, TIME);
        let i = ev
            .ops
            .iter()
            .position(|o| o.action == Action::Create)
            .unwrap();
        let other = built
            .ops
            .iter()
            .find(|o| o.action == Action::Update)
            .unwrap()
            .cid;
        ev.ops[i].cid = other;
        assert!(matches!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::Invert(InvertError::Mismatch(_)))
        ));

        // A create carrying prev is malformed.
        let mut ev = built.to_frame(&s, 1, TIME);
        ev.ops[i].prev = Some(built.data);
        assert!(matches!(
            verify_commit(&ev, &pk, &opts()),
            Err(VerifyError::Invert(InvertError::OpShape { .. }))
        ));

        // A legacy update without prev: rejected strictly, accepted leniently
        // without inversion.
        let mut ev = built.to_frame(&s, 1, TIME);
        let u = ev
            .ops
            .iter()
            .position(|o| o.action == Action::Update)
            .unwrap();
        ev.ops[u].prev = None;
        assert!(verify_commit(&ev, &pk, &opts()).is_err());
        let lenient = VerifyOptions {
            lenient: true,
            ..opts()
        };
        let v = verify_commit(&ev, &pk, &lenient).unwrap();
        assert!(!v.inverted);
    }

    #[test]
    fn first_commit_without_prev_data_skips_inversion() {
        let (key, built) = mixed_commit(Curve::K256);
        let s = built.frame_strings();
        let mut ev = built.to_frame(&s, 1, TIME);
        ev.prev_data = None;
        let v = verify_commit(&ev, &key.public_key(), &opts()).unwrap();
        assert!(!v.inverted);
    }

    #[test]
    fn sync_events() {
        let (key, built) = mixed_commit(Curve::K256);
        let car = Car::parse(&built.car, CarLimits::FIREHOSE).unwrap();
        let mut w = CarWriter::new(&[built.commit]);
        w.push(&built.commit, car.get(&built.commit).unwrap());
        let blocks = w.finish();
        let rev = built.rev.to_string();
        let ev = frame::Sync {
            seq: 5,
            did: DID,
            blocks: &blocks,
            rev: &rev,
            time: TIME,
        };
        let v = verify_sync(&ev, &key.public_key(), &opts()).unwrap();
        assert_eq!(v.data, built.data);
        assert_eq!(v.commit, built.commit);
        let other = PrivateKey::generate(Curve::P256).public_key();
        assert!(verify_sync(&ev, &other, &opts()).is_err());
        let wrong_did = frame::Sync {
            did: "did:plc:zzzzzzzzzzzzzzzzzzzzzzzz",
            ..ev
        };
        assert!(matches!(
            verify_sync(&wrong_did, &key.public_key(), &opts()),
            Err(VerifyError::DidMismatch { .. })
        ));
    }
}
