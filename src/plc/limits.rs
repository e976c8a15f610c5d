//! The server-side limits on an operation (digest §6.3), the checks that
//! apply them, and the two ways an operation is made by hand, which apply
//! them too: signing ([`Operation::sign`]) and assembling a signature made
//! elsewhere ([`SignedOperation::from_parts`]). Parsing applies them in
//! [`super::op_json`].
//!
//! The numbers are the reference server's, which are what clients are written
//! against: where the spec is looser (7500 bytes) or tighter (5 rotation keys)
//! the server's value wins, so an op this directory accepts is one
//! `plc.directory` would accept too. Two rules are stricter than the reference
//! server and are ours: at least one rotation key (an op with none freezes the
//! DID forever, which no client means to do) and no duplicate rotation keys
//! (the reference accepts them in old logs; authority by index makes a
//! duplicate meaningless).

use std::collections::{BTreeMap, HashSet};

use super::error::{quote, OpError};
use super::op::{LegacyCreateOp, Operation, RegularOp, Service, SignedOperation};
use crate::crypto::{PrivateKey, PublicKey, DID_KEY_PREFIX};

/// Largest signed operation, in bytes of DAG-CBOR (the reference server's
/// value; the spec says 7500).
pub const MAX_OP_BYTES: usize = 4000;
/// Most `rotationKeys` (the reference server's value; the spec says 5).
pub const MAX_ROTATION_KEYS: usize = 10;
/// Most `alsoKnownAs` entries.
pub const MAX_ALSO_KNOWN_AS: usize = 10;
/// Longest `alsoKnownAs` entry: a 253-character handle plus `at://`.
pub const MAX_ALSO_KNOWN_AS_LEN: usize = 258;
/// Most `services` entries.
pub const MAX_SERVICES: usize = 10;
/// Most `verificationMethods` entries.
pub const MAX_VERIFICATION_METHODS: usize = 10;
/// Longest service or verification-method id.
pub const MAX_ID_LEN: usize = 32;
/// Longest service `type`.
pub const MAX_SERVICE_TYPE_LEN: usize = 256;
/// Longest service `endpoint`.
pub const MAX_SERVICE_ENDPOINT_LEN: usize = 512;
/// Longest verification-method key (a did:key string).
pub const MAX_VERIFICATION_KEY_LEN: usize = 256;
/// Longest bare handle in a legacy `create`.
pub const MAX_LEGACY_HANDLE_LEN: usize = 253;

impl Operation {
    /// Signs with `key` (which must be one of the rotation keys that will
    /// check it: the previous op's for an update, this op's own for a
    /// genesis). Fails if the result breaks a limit, so an op that signs is an
    /// op the directory will parse.
    pub fn sign(self, key: &PrivateKey) -> Result<SignedOperation, OpError> {
        let sig = key.sign(&self.unsigned_cbor());
        let signed = SignedOperation::unchecked(self, sig);
        signed.check()?;
        Ok(signed)
    }
}

impl SignedOperation {
    /// Assembles an operation and a signature made elsewhere (a remote signer,
    /// or a test building a malformed one). Runs the same checks as parsing,
    /// except that the signature is not verified (that needs the chain).
    pub fn from_parts(op: Operation, sig: [u8; 64]) -> Result<SignedOperation, OpError> {
        let signed = SignedOperation::unchecked(op, sig);
        signed.check()?;
        Ok(signed)
    }

    /// Limits and size: everything that can be checked on the op alone.
    pub(super) fn check(&self) -> Result<(), OpError> {
        match self.operation() {
            Operation::Regular(op) => check_regular(op)?,
            Operation::LegacyCreate(op) => check_legacy(op)?,
            Operation::Tombstone(_) => {}
        }
        let size = self.signed_cbor().len();
        if size > MAX_OP_BYTES {
            return Err(OpError::TooLarge {
                size,
                max: MAX_OP_BYTES,
            });
        }
        Ok(())
    }
}

/// Checks every count, length, duplicate and key-type rule of a regular op.
pub fn check_regular(op: &RegularOp) -> Result<(), OpError> {
    check_rotation_keys(&op.rotation_keys)?;
    check_verification_methods(&op.verification_methods)?;
    check_also_known_as(&op.also_known_as)?;
    check_services(&op.services)
}

/// Checks a legacy `create`: its two keys become rotation keys, so both must
/// be k256 or p256; the handle and service are bounded.
pub fn check_legacy(op: &LegacyCreateOp) -> Result<(), OpError> {
    rotation_key(&op.signing_key, "signingKey")?;
    rotation_key(&op.recovery_key, "recoveryKey")?;
    if op.handle.len() > MAX_LEGACY_HANDLE_LEN {
        return Err(limit(format!(
            "handle longer than {MAX_LEGACY_HANDLE_LEN} characters"
        )));
    }
    if op.service.len() > MAX_SERVICE_ENDPOINT_LEN {
        return Err(limit(format!(
            "service longer than {MAX_SERVICE_ENDPOINT_LEN} characters"
        )));
    }
    Ok(())
}

/// 1 to [`MAX_ROTATION_KEYS`] keys, all k256 or p256 did:keys, no duplicates.
fn check_rotation_keys(keys: &[String]) -> Result<(), OpError> {
    if keys.is_empty() {
        return Err(limit("rotationKeys must hold at least one key".into()));
    }
    if keys.len() > MAX_ROTATION_KEYS {
        return Err(limit(format!(
            "too many rotationKeys: {} (max {MAX_ROTATION_KEYS})",
            keys.len()
        )));
    }
    let mut seen = HashSet::new();
    for key in keys {
        rotation_key(key, "rotationKeys entry")?;
        if !seen.insert(key.as_str()) {
            return Err(limit(format!(
                "duplicate rotationKeys entry {}",
                quote(key)
            )));
        }
    }
    Ok(())
}

/// A rotation key signs operations, so it must be a key we can verify with:
/// a did:key on k256 or p256 whose point is on the curve.
fn rotation_key(key: &str, what: &str) -> Result<(), OpError> {
    PublicKey::from_did_key(key).map(|_| ()).map_err(|e| {
        limit(format!(
            "{what} {} is not a k256 or p256 did:key: {e}",
            quote(key)
        ))
    })
}

fn check_verification_methods(methods: &BTreeMap<String, String>) -> Result<(), OpError> {
    if methods.len() > MAX_VERIFICATION_METHODS {
        return Err(limit(format!(
            "too many verificationMethods: {} (max {MAX_VERIFICATION_METHODS})",
            methods.len()
        )));
    }
    for (id, key) in methods {
        check_id(id, "verificationMethods")?;
        if key.len() > MAX_VERIFICATION_KEY_LEN {
            return Err(limit(format!(
                "verificationMethods.{id} longer than {MAX_VERIFICATION_KEY_LEN} characters"
            )));
        }
        if !is_did_key_syntax(key) {
            return Err(limit(format!(
                "verificationMethods.{id} {} is not a did:key",
                quote(key)
            )));
        }
    }
    Ok(())
}

/// Whether `key` is a syntactically valid did:key: `did:key:z` + base58btc of
/// a multicodec-prefixed key. Verification methods may use any key type (the
/// directory never verifies with them), so the curve is not checked here.
pub(crate) fn is_did_key_syntax(key: &str) -> bool {
    let Some(body) = key
        .strip_prefix(DID_KEY_PREFIX)
        .and_then(|k| k.strip_prefix('z'))
    else {
        return false;
    };
    // Bounded above by MAX_VERIFICATION_KEY_LEN, so base58's quadratic decode is cheap.
    matches!(bs58::decode(body).into_vec(), Ok(bytes) if bytes.len() >= 3)
}

fn check_also_known_as(aka: &[String]) -> Result<(), OpError> {
    if aka.len() > MAX_ALSO_KNOWN_AS {
        return Err(limit(format!(
            "too many alsoKnownAs entries: {} (max {MAX_ALSO_KNOWN_AS})",
            aka.len()
        )));
    }
    let mut seen = HashSet::new();
    for entry in aka {
        if entry.len() > MAX_ALSO_KNOWN_AS_LEN {
            return Err(limit(format!(
                "alsoKnownAs entry longer than {MAX_ALSO_KNOWN_AS_LEN} characters"
            )));
        }
        if !seen.insert(entry.as_str()) {
            return Err(limit(format!(
                "duplicate alsoKnownAs entry {}",
                quote(entry)
            )));
        }
    }
    Ok(())
}

fn check_services(services: &BTreeMap<String, Service>) -> Result<(), OpError> {
    if services.len() > MAX_SERVICES {
        return Err(limit(format!(
            "too many services: {} (max {MAX_SERVICES})",
            services.len()
        )));
    }
    for (id, service) in services {
        check_id(id, "services")?;
        if service.service_type.len() > MAX_SERVICE_TYPE_LEN {
            return Err(limit(format!(
                "services.{id}.type longer than {MAX_SERVICE_TYPE_LEN} characters"
            )));
        }
        if service.endpoint.len() > MAX_SERVICE_ENDPOINT_LEN {
            return Err(limit(format!(
                "services.{id}.endpoint longer than {MAX_SERVICE_ENDPOINT_LEN} characters"
            )));
        }
    }
    Ok(())
}

/// A map id becomes a DID-document fragment (`#id`), so it is non-empty, at
/// most [`MAX_ID_LEN`] characters and carries no `#` of its own.
fn check_id(id: &str, map: &str) -> Result<(), OpError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.contains('#') {
        return Err(limit(format!(
            "{map} id {} must be 1-{MAX_ID_LEN} characters without '#'",
            quote(id)
        )));
    }
    Ok(())
}

fn limit(msg: String) -> OpError {
    OpError::Limit(msg)
}

#[cfg(test)]
mod tests {
    use super::super::error::OpError;
    use super::super::op::{Operation, RegularOp, Service, PDS_SERVICE_ID};
    use crate::crypto::{Curve, PrivateKey};

    fn key() -> PrivateKey {
        PrivateKey::generate(Curve::K256)
    }

    #[test]
    fn limits() {
        let rotation = key();
        let rot = rotation.public_key().to_did_key();
        let base = RegularOp::for_account(
            &key().public_key().to_did_key(),
            "limits.test",
            "https://pds.test",
            vec![rot.clone()],
        );
        let try_sign = |f: &dyn Fn(&mut RegularOp)| {
            let mut op = base.clone();
            f(&mut op);
            Operation::Regular(op).sign(&rotation)
        };
        assert!(try_sign(&|_| {}).is_ok());
        // Too many rotation keys (11 > 10).
        let many: Vec<String> = (0..11).map(|_| key().public_key().to_did_key()).collect();
        assert!(matches!(
            try_sign(&|op| op.rotation_keys = many.clone()),
            Err(OpError::Limit(_))
        ));
        // Ten is fine.
        assert!(try_sign(&|op| op.rotation_keys = many[..10].to_vec()).is_ok());
        // None at all.
        assert!(matches!(
            try_sign(&|op| op.rotation_keys.clear()),
            Err(OpError::Limit(_))
        ));
        // Duplicates.
        assert!(matches!(
            try_sign(&|op| op.rotation_keys = vec![rot.clone(), rot.clone()]),
            Err(OpError::Limit(_))
        ));
        // A rotation key of an unsupported type (ed25519 multicodec 0xed01).
        let mut ed = vec![0xed, 0x01];
        ed.extend([7u8; 32]);
        let ed25519 = format!("did:key:z{}", bs58::encode(ed).into_string());
        assert!(matches!(
            try_sign(&|op| op.rotation_keys = vec![ed25519.clone()]),
            Err(OpError::Limit(_))
        ));
        // ...which is fine as a verification method (any did:key).
        assert!(try_sign(&|op| {
            op.verification_methods
                .insert("other".into(), ed25519.clone());
        })
        .is_ok());
        assert!(matches!(
            try_sign(&|op| {
                op.verification_methods
                    .insert("bad".into(), "did:web:x".into());
            }),
            Err(OpError::Limit(_))
        ));
        // Too many and duplicate alsoKnownAs, too long entries.
        assert!(matches!(
            try_sign(&|op| op.also_known_as = (0..11).map(|i| format!("at://h{i}.test")).collect()),
            Err(OpError::Limit(_))
        ));
        assert!(matches!(
            try_sign(&|op| op.also_known_as = vec!["at://a.test".into(), "at://a.test".into()]),
            Err(OpError::Limit(_))
        ));
        assert!(matches!(
            try_sign(&|op| op.also_known_as = vec![format!("at://{}", "a".repeat(254))]),
            Err(OpError::Limit(_))
        ));
        // Service limits.
        assert!(matches!(
            try_sign(&|op| {
                for i in 0..10 {
                    op.services.insert(
                        format!("s{i}"),
                        Service {
                            service_type: "t".into(),
                            endpoint: "e".into(),
                        },
                    );
                }
            }),
            Err(OpError::Limit(_))
        ));
        assert!(matches!(
            try_sign(&|op| {
                op.services.get_mut(PDS_SERVICE_ID).unwrap().endpoint =
                    format!("https://{}", "a".repeat(510));
            }),
            Err(OpError::Limit(_))
        ));
        assert!(matches!(
            try_sign(&|op| {
                op.services.insert(
                    "x".repeat(33),
                    Service {
                        service_type: "t".into(),
                        endpoint: "e".into(),
                    },
                );
            }),
            Err(OpError::Limit(_))
        ));
        // Oversize: within every per-field limit, over 4000 bytes in total.
        let big = try_sign(&|op| {
            op.also_known_as = (0..10)
                .map(|i| format!("at://{i}{}", "a".repeat(250)))
                .collect();
            for i in 0..9 {
                op.services.insert(
                    format!("svc{i}"),
                    Service {
                        service_type: "t".repeat(200),
                        endpoint: "e".repeat(400),
                    },
                );
            }
        });
        assert!(
            matches!(big, Err(OpError::TooLarge { max: 4000, .. })),
            "{big:?}"
        );
    }
}
