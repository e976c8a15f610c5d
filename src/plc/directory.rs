//! [`Directory`]: the PLC directory's logic over its store — accept an
//! operation, resolve a DID, read logs and the export.
//!
//! Synchronous on purpose: every call is a few RocksDB reads and at most one
//! fsynced write, so the HTTP layer runs it on the blocking pool, and tests
//! and tools call it directly without a runtime.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::chain::{self, Accepted};
use super::error::{StoreError, SubmitError};
use super::logged_op::LoggedOp;
use super::op::{Operation, SignedOperation};
use super::state::PlcData;
use super::store::Store;
use crate::identity::validate_plc_did;

/// Most operations one DID may have, valid and nullified together. The
/// reference server bounds a DID's log by rate limits (100 ops a week), which
/// this directory does not enforce (see [`super::chain`]); a hard cap keeps
/// every `/log/audit` response bounded instead. At 4000 bytes per op, a full
/// log is under 4 MB.
pub const MAX_OPS_PER_DID: usize = 1000;

/// Most lines one `/export` page returns.
pub const MAX_EXPORT_COUNT: usize = 1000;

/// A DID's status in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No operation was ever accepted for it.
    NotFound,
    /// Its latest valid operation is a tombstone.
    Tombstoned,
    /// Its current state.
    Active(PlcData),
}

/// The directory: a handle on its database, `Send + Sync` (share it in an `Arc`).
///
/// ```
/// use atrelay::crypto::{Curve, PrivateKey};
/// use atrelay::plc::{genesis_op, Directory, Resolution};
/// let dir = tempfile::tempdir().unwrap();
/// let directory = Directory::open(dir.path()).unwrap();
/// let rotation = PrivateKey::generate(Curve::K256);
/// let signing = PrivateKey::generate(Curve::K256);
/// let genesis = genesis_op(
///     &signing.public_key().to_did_key(),
///     "alice.test",
///     "https://pds.test",
///     &[rotation.public_key().to_did_key()],
///     &rotation,
/// )
/// .unwrap();
/// directory.submit(&genesis.did, &genesis.op, 1_700_000_000_000_000).unwrap();
/// assert!(matches!(directory.resolve(&genesis.did).unwrap(), Resolution::Active(_)));
/// ```
#[derive(Debug)]
pub struct Directory {
    store: Store,
    /// Held from reading a DID's log to writing the accepted op, so two
    /// submissions cannot both extend the same head, and seqs are assigned
    /// in commit order. A std mutex: it guards blocking RocksDB calls and is
    /// never held across an `.await`.
    writer: Mutex<WriterState>,
}

/// What only the writer touches.
#[derive(Debug)]
struct WriterState {
    /// Highest seq written (0 when empty).
    last_seq: u64,
    /// `createdAt` of that op: the next one is never earlier, so export
    /// order by seq is also order by time (and a time cursor can binary-search).
    last_created_at: u64,
}

impl Directory {
    /// Opens (creating if missing) the directory's database in `dir`.
    pub fn open(dir: &Path) -> Result<Directory, StoreError> {
        let store = Store::open(dir)?;
        let (last_seq, last_created_at) = match store.last()? {
            Some(op) => (op.seq, op.created_at_micros),
            None => (0, 0),
        };
        tracing::info!(path = %dir.display(), last_seq, "PLC directory opened");
        Ok(Directory {
            store,
            writer: Mutex::new(WriterState {
                last_seq,
                last_created_at,
            }),
        })
    }

    /// The writer lock. The state it guards is updated only after a
    /// successful write, so a lock poisoned by a panic elsewhere is still sound.
    fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest seq accepted so far (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.lock_writer().last_seq
    }

    /// Parses a posted body and [`submit`](Self::submit)s it.
    pub fn submit_json(
        &self,
        did: &str,
        body: &[u8],
        now_micros: u64,
    ) -> Result<LoggedOp, SubmitError> {
        check_did(did)?;
        let op = SignedOperation::from_json_bytes(body)?;
        self.submit(did, &op, now_micros)
    }

    /// Validates `op` against `did`'s log (see [`super::chain`]) at time
    /// `now_micros` and, if it is accepted, stores it with the next seq and
    /// marks the ops it forks away as nullified, in one durable write.
    /// Returns the op as recorded.
    ///
    /// New legacy `create` ops are refused, as the reference server does:
    /// they exist only at the start of old logs.
    pub fn submit(
        &self,
        did: &str,
        op: &SignedOperation,
        now_micros: u64,
    ) -> Result<LoggedOp, SubmitError> {
        check_did(did)?;
        if matches!(op.operation(), Operation::LegacyCreate(_)) {
            return Err(SubmitError::LegacyCreate);
        }
        let mut writer = self.lock_writer();
        let all = self.store.ops_for_did(did, MAX_OPS_PER_DID)?;
        if all.len() >= MAX_OPS_PER_DID {
            return Err(SubmitError::TooManyOps(MAX_OPS_PER_DID));
        }
        let history: Vec<LoggedOp> = all.into_iter().filter(|o| !o.nullified).collect();
        let Accepted { keep } = chain::validate_next(did, &history, op, now_micros)?;
        let whole_millis = now_micros - now_micros % 1_000;
        let logged = LoggedOp {
            seq: writer.last_seq + 1,
            did: did.to_owned(),
            operation: op.clone(),
            cid: op.cid(),
            created_at_micros: whole_millis.max(writer.last_created_at),
            nullified: false,
        };
        self.store.append(&logged, &history[keep..])?;
        writer.last_seq = logged.seq;
        writer.last_created_at = logged.created_at_micros;
        tracing::info!(
            did,
            seq = logged.seq,
            cid = %logged.cid,
            kind = op.operation().type_name(),
            nullified = history.len() - keep,
            "PLC operation accepted"
        );
        Ok(logged)
    }

    /// `did`'s status and current state.
    pub fn resolve(&self, did: &str) -> Result<Resolution, StoreError> {
        let log = self.log(did)?;
        Ok(match log.last() {
            None => Resolution::NotFound,
            Some(last) => match PlcData::from_operation(did, last.operation.operation()) {
                None => Resolution::Tombstoned,
                Some(data) => Resolution::Active(data),
            },
        })
    }

    /// `did`'s currently valid ops, oldest first (empty if unknown).
    pub fn log(&self, did: &str) -> Result<Vec<LoggedOp>, StoreError> {
        let mut ops = self.audit_log(did)?;
        ops.retain(|o| !o.nullified);
        Ok(ops)
    }

    /// Every op of `did`, nullified ones included, oldest first (empty if unknown).
    pub fn audit_log(&self, did: &str) -> Result<Vec<LoggedOp>, StoreError> {
        self.store.ops_for_did(did, MAX_OPS_PER_DID)
    }

    /// Up to `count` (capped at [`MAX_EXPORT_COUNT`]) ops with seq > `after`,
    /// in seq order: the sequenced export.
    pub fn export_after_seq(&self, after: u64, count: usize) -> Result<Vec<LoggedOp>, StoreError> {
        match after.checked_add(1) {
            Some(first) => self.store.read_from(first, count.min(MAX_EXPORT_COUNT)),
            None => Ok(Vec::new()),
        }
    }

    /// Up to `count` ops accepted strictly after `after_micros` (from the
    /// start when `None`), in time order: the legacy export. `createdAt`
    /// never decreases with seq, so the first seq is found by binary search.
    pub fn export_after_time(
        &self,
        after_micros: Option<i64>,
        count: usize,
    ) -> Result<Vec<LoggedOp>, StoreError> {
        let last = self.last_seq();
        let first = match after_micros {
            None => 1,
            Some(after) => {
                // The first seq in [1, last + 1) whose createdAt > after.
                let (mut lo, mut hi) = (1u64, last + 1);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    let at = self
                        .store
                        .get(mid)?
                        .ok_or_else(|| StoreError::Corrupt(format!("seq {mid} is missing")))?
                        .created_at_micros;
                    if i128::from(at) > i128::from(after) {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                lo
            }
        };
        self.store.read_from(first, count.min(MAX_EXPORT_COUNT))
    }
}

fn check_did(did: &str) -> Result<(), SubmitError> {
    validate_plc_did(did).map_err(|e| SubmitError::BadDid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Curve, PrivateKey};
    use crate::plc::client::{genesis_op, tombstone_op, update_op};
    use crate::plc::error::ChainError;

    const T0: u64 = 1_700_000_000_000_000;
    const HOUR: u64 = 3_600_000_000;

    #[test]
    fn accept_update_fork_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let recovery = PrivateKey::generate(Curve::K256);
        let pds = PrivateKey::generate(Curve::K256);
        let signing = PrivateKey::generate(Curve::K256);
        let rotation = vec![
            recovery.public_key().to_did_key(),
            pds.public_key().to_did_key(),
        ];
        let (did, cids) = {
            let directory = Directory::open(dir.path()).unwrap();
            let g = genesis_op(
                &signing.public_key().to_did_key(),
                "a.test",
                "https://pds.test",
                &rotation,
                &pds,
            )
            .unwrap();
            let g_logged = directory.submit(&g.did, &g.op, T0).unwrap();
            assert_eq!(g_logged.seq, 1);
            // The same genesis again: its prev (null) no longer fits.
            assert!(matches!(
                directory.submit(&g.did, &g.op, T0),
                Err(SubmitError::Chain(ChainError::MissingPrev))
            ));
            let u = update_op(&g.op, &pds, |op| op.set_handle("b.test")).unwrap();
            let u_logged = directory.submit(&g.did, &u, T0 + HOUR).unwrap();
            assert_eq!(u_logged.seq, 2);
            // The recovery key forks from genesis: the update is nullified.
            let fork = update_op(&g.op, &recovery, |op| op.set_handle("c.test")).unwrap();
            let f_logged = directory.submit(&g.did, &fork, T0 + 2 * HOUR).unwrap();
            assert_eq!(f_logged.seq, 3);
            let audit = directory.audit_log(&g.did).unwrap();
            assert_eq!(
                audit.iter().map(|o| o.nullified).collect::<Vec<_>>(),
                [false, true, false]
            );
            // An update chained on the nullified op is refused.
            let stale = update_op(&u, &pds, |op| op.set_handle("d.test")).unwrap();
            assert!(matches!(
                directory.submit(&g.did, &stale, T0 + 3 * HOUR),
                Err(SubmitError::Chain(ChainError::UnknownPrev(_)))
            ));
            (g.did, vec![g_logged.cid, u_logged.cid, f_logged.cid])
        };
        // Reopened: the same ops, flags and seqs.
        let directory = Directory::open(dir.path()).unwrap();
        assert_eq!(directory.last_seq(), 3);
        let audit = directory.audit_log(&did).unwrap();
        assert_eq!(audit.iter().map(|o| o.cid).collect::<Vec<_>>(), cids);
        assert_eq!(directory.log(&did).unwrap().len(), 2);
        let Resolution::Active(data) = directory.resolve(&did).unwrap() else {
            panic!("not active");
        };
        assert_eq!(data.also_known_as, ["at://c.test"]);
        // Export by seq and by time.
        let page = directory.export_after_seq(1, 10).unwrap();
        assert_eq!(page.iter().map(|o| o.seq).collect::<Vec<_>>(), [2, 3]);
        let by_time = directory
            .export_after_time(Some((T0 + HOUR) as i64), 10)
            .unwrap();
        assert_eq!(by_time.iter().map(|o| o.seq).collect::<Vec<_>>(), [3]);
        assert_eq!(directory.export_after_time(None, 2).unwrap().len(), 2);
        assert!(directory.export_after_seq(u64::MAX, 10).unwrap().is_empty());
    }

    #[test]
    fn tombstone_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let directory = Directory::open(dir.path()).unwrap();
        let rotation = PrivateKey::generate(Curve::P256);
        let g = genesis_op(
            &rotation.public_key().to_did_key(),
            "t.test",
            "https://pds.test",
            &[rotation.public_key().to_did_key()],
            &rotation,
        )
        .unwrap();
        assert_eq!(directory.resolve(&g.did).unwrap(), Resolution::NotFound);
        // Posted under the wrong DID.
        assert!(matches!(
            directory.submit("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", &g.op, T0),
            Err(SubmitError::Chain(ChainError::DidMismatch { .. }))
        ));
        assert!(matches!(
            directory.submit("did:web:example.com", &g.op, T0),
            Err(SubmitError::BadDid(_))
        ));
        directory.submit(&g.did, &g.op, T0).unwrap();
        let t = tombstone_op(&g.op, &rotation).unwrap();
        directory.submit(&g.did, &t, T0 + 1).unwrap();
        assert_eq!(directory.resolve(&g.did).unwrap(), Resolution::Tombstoned);
        let after = update_op(&g.op, &rotation, |op| op.set_handle("x.test")).unwrap();
        assert!(directory.submit(&g.did, &after, T0 + 2).is_err());
        // Legacy creates are refused on submit.
        let legacy = Operation::LegacyCreate(crate::plc::op::LegacyCreateOp {
            signing_key: rotation.public_key().to_did_key(),
            recovery_key: rotation.public_key().to_did_key(),
            handle: "l.test".into(),
            service: "https://pds.test".into(),
        })
        .sign(&rotation)
        .unwrap();
        assert_eq!(
            directory.submit(&legacy.derive_did(), &legacy, T0),
            Err(SubmitError::LegacyCreate)
        );
        // createdAt never goes backwards, even if the clock does.
        let g2 = genesis_op(
            &rotation.public_key().to_did_key(),
            "t2.test",
            "https://pds.test",
            &[rotation.public_key().to_did_key()],
            &rotation,
        )
        .unwrap();
        let logged = directory.submit(&g2.did, &g2.op, T0 - HOUR).unwrap();
        assert_eq!(logged.created_at_micros, T0);
    }
}
