//! Whether a new operation may extend a DID's log, and which operations it
//! nullifies (digest §6.3, "server-side rules").
//!
//! [`validate_next`] is the whole contract:
//!
//! - **Always checked:** a genesis (empty log) is a `plc_operation` (or legacy
//!   `create`) with `prev: null`, signed by one of its *own* rotation keys,
//!   whose hash derives exactly the DID it was posted for. A later op names
//!   in `prev` the CID of a currently valid (non-nullified) op that is not a
//!   tombstone, and is signed by one of that op's rotation keys.
//! - **Forks:** if `prev` is not the latest valid op, the ops after it are
//!   nullified, which is allowed only when the new op is signed by a rotation
//!   key of strictly higher authority (lower index in `prev`'s rotation keys)
//!   than the key that signed the first op to be nullified, and no more than
//!   72 hours after that op was accepted (exactly 72 h is still in time).
//! - **Not checked here:** the op's own shape and limits (done when it was
//!   parsed, [`SignedOperation::from_json`]), and per-DID rate limits. The
//!   reference server allows 10 ops per hour, 30 per day and 100 per week per
//!   DID; this directory serves local networks and tests, where those limits
//!   only get in the way, so it does not enforce them. What it does bound is
//!   the total number of ops per DID
//!   ([`MAX_OPS_PER_DID`](super::directory::MAX_OPS_PER_DID)), so a log
//!   always fits in one response.
//!
//! A tombstone ends the DID: nothing may follow it. Like the reference
//! directory, a higher-authority key may still nullify a tombstone within 72
//! hours by forking from the op before it (recovery from a stolen
//! lower-authority key); a tombstone signed by the highest-authority key is
//! final.
//!
//! Time is a parameter (`now_micros`), never read here, so the 72-hour rule is
//! tested without waiting.

use super::error::ChainError;
use super::logged_op::LoggedOp;
use super::op::SignedOperation;
use crate::wire::cid::Cid;

/// How long after an op a higher-authority key may still nullify it.
pub const RECOVERY_WINDOW_MICROS: u64 = 72 * 3600 * 1_000_000;

/// What accepting an op does to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// How many of the valid ops stay valid: `history[keep..]` become nullified
    /// (`keep == history.len()` when nothing is).
    pub keep: usize,
}

/// Checks `proposed` against `history`, the DID's currently valid
/// (non-nullified) ops, oldest first, at time `now_micros`. See the module
/// documentation for the rules.
pub fn validate_next(
    did: &str,
    history: &[LoggedOp],
    proposed: &SignedOperation,
    now_micros: u64,
) -> Result<Accepted, ChainError> {
    let op = proposed.operation();
    if history.is_empty() {
        if op.is_tombstone() || op.prev().is_some() {
            return Err(ChainError::NotGenesis);
        }
        proposed
            .verify(&op.rotation_keys())
            .map_err(ChainError::Signature)?;
        let derived = proposed.derive_did();
        if derived != did {
            return Err(ChainError::DidMismatch {
                expected: did.to_owned(),
                derived,
            });
        }
        return Ok(Accepted { keep: 0 });
    }

    let prev_text = op.prev().ok_or(ChainError::MissingPrev)?;
    let prev: Cid = prev_text
        .parse()
        .map_err(|_| ChainError::UnknownPrev(prev_text.to_owned()))?;
    let index = history
        .iter()
        .position(|entry| entry.cid == prev)
        .ok_or_else(|| ChainError::UnknownPrev(prev_text.to_owned()))?;
    let base = &history[index];
    if base.operation.operation().is_tombstone() {
        return Err(ChainError::Tombstoned);
    }
    let keys = base.operation.operation().rotation_keys();

    let Some(first_nullified) = history.get(index + 1) else {
        proposed.verify(&keys).map_err(ChainError::Signature)?;
        return Ok(Accepted {
            keep: history.len(),
        });
    };

    // A fork: only a key above the one that signed the op being displaced.
    let disputed_signer = first_nullified.operation.verify(&keys).map_err(|e| {
        ChainError::Inconsistent(format!(
            "op {} does not verify against its prev's keys: {e}",
            first_nullified.cid
        ))
    })?;
    if proposed.verify(&keys[..disputed_signer]).is_err() {
        return Err(match proposed.verify(&keys) {
            Ok(_) => ChainError::NotHigherAuthority,
            Err(reason) => ChainError::Signature(reason),
        });
    }
    let elapsed = now_micros.saturating_sub(first_nullified.created_at_micros);
    if elapsed > RECOVERY_WINDOW_MICROS {
        return Err(ChainError::LateRecovery {
            elapsed_secs: elapsed / 1_000_000,
        });
    }
    Ok(Accepted { keep: index + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Curve, PrivateKey};
    use crate::plc::op::{Operation, RegularOp, TombstoneOp};

    const HOUR: u64 = 3600 * 1_000_000;
    const T0: u64 = 1_700_000_000_000_000;

    struct Keys {
        high: PrivateKey,
        mid: PrivateKey,
        low: PrivateKey,
    }

    impl Keys {
        fn new() -> Keys {
            Keys {
                high: PrivateKey::generate(Curve::K256),
                mid: PrivateKey::generate(Curve::P256),
                low: PrivateKey::generate(Curve::K256),
            }
        }
        fn rotation(&self) -> Vec<String> {
            [&self.high, &self.mid, &self.low]
                .iter()
                .map(|k| k.public_key().to_did_key())
                .collect()
        }
    }

    fn regular(keys: &Keys, handle: &str, prev: Option<&LoggedOp>) -> Operation {
        let mut op = RegularOp::for_account(
            &keys.low.public_key().to_did_key(),
            handle,
            "https://pds.test",
            keys.rotation(),
        );
        op.prev = prev.map(|p| p.cid.to_string());
        Operation::Regular(op)
    }

    fn logged(did: &str, seq: u64, op: SignedOperation, at: u64) -> LoggedOp {
        LoggedOp {
            seq,
            did: did.to_owned(),
            cid: op.cid(),
            operation: op,
            created_at_micros: at,
            nullified: false,
        }
    }

    /// A DID with genesis (signed by `low`) and one update (signed by `low`).
    fn two_op_log(keys: &Keys) -> (String, Vec<LoggedOp>) {
        let genesis = regular(keys, "a.test", None).sign(&keys.low).unwrap();
        let did = genesis.derive_did();
        assert_eq!(
            validate_next(&did, &[], &genesis, T0),
            Ok(Accepted { keep: 0 })
        );
        let g = logged(&did, 1, genesis, T0);
        let update = regular(keys, "b.test", Some(&g)).sign(&keys.low).unwrap();
        assert_eq!(
            validate_next(&did, std::slice::from_ref(&g), &update, T0 + HOUR),
            Ok(Accepted { keep: 1 })
        );
        let u = logged(&did, 2, update, T0 + HOUR);
        (did, vec![g, u])
    }

    #[test]
    fn genesis_rules() {
        let keys = Keys::new();
        let genesis = regular(&keys, "a.test", None).sign(&keys.mid).unwrap();
        let did = genesis.derive_did();
        assert!(validate_next(&did, &[], &genesis, T0).is_ok());
        // Posted under another DID.
        assert!(matches!(
            validate_next("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", &[], &genesis, T0),
            Err(ChainError::DidMismatch { .. })
        ));
        // Signed by a key that is not one of its own rotation keys.
        let stranger = PrivateKey::generate(Curve::K256);
        let forged = regular(&keys, "a.test", None).sign(&stranger).unwrap();
        assert!(matches!(
            validate_next(&forged.derive_did(), &[], &forged, T0),
            Err(ChainError::Signature(_))
        ));
        // A first op with a prev, or a tombstone, is not a genesis.
        let g = logged(&did, 1, genesis, T0);
        let orphan = regular(&keys, "a.test", Some(&g)).sign(&keys.mid).unwrap();
        assert_eq!(
            validate_next(&did, &[], &orphan, T0),
            Err(ChainError::NotGenesis)
        );
    }

    #[test]
    fn wrong_prev_and_wrong_signer() {
        let keys = Keys::new();
        let (did, log) = two_op_log(&keys);
        // prev = a CID that is not in the log.
        let stray = regular(&keys, "stray.test", None).sign(&keys.low).unwrap();
        let stray = logged(&did, 9, stray, T0);
        let op = regular(&keys, "c.test", Some(&stray))
            .sign(&keys.low)
            .unwrap();
        assert!(matches!(
            validate_next(&did, &log, &op, T0 + 2 * HOUR),
            Err(ChainError::UnknownPrev(_))
        ));
        // prev null on an existing DID.
        let op = regular(&keys, "c.test", None).sign(&keys.low).unwrap();
        assert_eq!(
            validate_next(&did, &log, &op, T0 + 2 * HOUR),
            Err(ChainError::MissingPrev)
        );
        // Right prev, signed by a stranger.
        let stranger = PrivateKey::generate(Curve::K256);
        let op = regular(&keys, "c.test", Some(&log[1]))
            .sign(&stranger)
            .unwrap();
        assert!(matches!(
            validate_next(&did, &log, &op, T0 + 2 * HOUR),
            Err(ChainError::Signature(_))
        ));
    }

    #[test]
    fn fork_by_higher_authority_within_72h_nullifies() {
        let keys = Keys::new();
        let (did, log) = two_op_log(&keys);
        // `low` signed the update; `high` forks from genesis.
        let fork = regular(&keys, "recovered.test", Some(&log[0]))
            .sign(&keys.high)
            .unwrap();
        assert_eq!(
            validate_next(&did, &log, &fork, T0 + HOUR + HOUR),
            Ok(Accepted { keep: 1 })
        );
        // Exactly 72 h after the nullified op is still in time.
        assert_eq!(
            validate_next(&did, &log, &fork, T0 + HOUR + 72 * HOUR),
            Ok(Accepted { keep: 1 })
        );
        // `mid` is also above `low`.
        let fork_mid = regular(&keys, "recovered.test", Some(&log[0]))
            .sign(&keys.mid)
            .unwrap();
        assert!(validate_next(&did, &log, &fork_mid, T0 + 2 * HOUR).is_ok());
    }

    #[test]
    fn fork_by_same_or_lower_authority_is_refused() {
        let keys = Keys::new();
        // Genesis by low, update by mid.
        let genesis = regular(&keys, "a.test", None).sign(&keys.low).unwrap();
        let did = genesis.derive_did();
        let g = logged(&did, 1, genesis, T0);
        let update = regular(&keys, "b.test", Some(&g)).sign(&keys.mid).unwrap();
        let log = vec![g.clone(), logged(&did, 2, update, T0)];
        for signer in [&keys.mid, &keys.low] {
            let fork = regular(&keys, "x.test", Some(&g)).sign(signer).unwrap();
            assert_eq!(
                validate_next(&did, &log, &fork, T0 + HOUR),
                Err(ChainError::NotHigherAuthority)
            );
        }
        let fork = regular(&keys, "x.test", Some(&g)).sign(&keys.high).unwrap();
        assert!(validate_next(&did, &log, &fork, T0 + HOUR).is_ok());
    }

    #[test]
    fn fork_after_72h_is_refused() {
        let keys = Keys::new();
        let (did, log) = two_op_log(&keys);
        let fork = regular(&keys, "late.test", Some(&log[0]))
            .sign(&keys.high)
            .unwrap();
        let late = T0 + HOUR + 72 * HOUR + 1_000;
        assert!(matches!(
            validate_next(&did, &log, &fork, late),
            Err(ChainError::LateRecovery { .. })
        ));
    }

    #[test]
    fn tombstone_then_nothing() {
        let keys = Keys::new();
        let (did, mut log) = two_op_log(&keys);
        let tomb = Operation::Tombstone(TombstoneOp {
            prev: log[1].cid.to_string(),
        })
        .sign(&keys.high)
        .unwrap();
        assert_eq!(
            validate_next(&did, &log, &tomb, T0 + 2 * HOUR),
            Ok(Accepted { keep: 2 })
        );
        log.push(logged(&did, 3, tomb, T0 + 2 * HOUR));
        // Nothing may follow the tombstone, whoever signs.
        for signer in [&keys.high, &keys.mid, &keys.low] {
            let op = regular(&keys, "again.test", Some(&log[2]))
                .sign(signer)
                .unwrap();
            assert_eq!(
                validate_next(&did, &log, &op, T0 + 3 * HOUR),
                Err(ChainError::Tombstoned)
            );
        }
        // Signed by the highest key, it cannot be forked around either.
        for signer in [&keys.high, &keys.mid, &keys.low] {
            let op = regular(&keys, "again.test", Some(&log[1]))
                .sign(signer)
                .unwrap();
            assert!(validate_next(&did, &log, &op, T0 + 3 * HOUR).is_err());
        }
    }

    #[test]
    fn tombstone_by_lower_key_can_be_recovered_within_72h() {
        let keys = Keys::new();
        let (did, mut log) = two_op_log(&keys);
        let tomb = Operation::Tombstone(TombstoneOp {
            prev: log[1].cid.to_string(),
        })
        .sign(&keys.low)
        .unwrap();
        log.push(logged(&did, 3, tomb, T0 + 2 * HOUR));
        let recover = regular(&keys, "back.test", Some(&log[1]))
            .sign(&keys.high)
            .unwrap();
        assert_eq!(
            validate_next(&did, &log, &recover, T0 + 3 * HOUR),
            Ok(Accepted { keep: 2 })
        );
    }
}
