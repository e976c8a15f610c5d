//! The client side: build and sign the operations a PDS sends to a PLC
//! directory (register an account, change its handle, key or PDS, tombstone
//! it), and a small HTTP client to submit them.
//!
//! ```
//! use atrelay::crypto::{Curve, PrivateKey};
//! use atrelay::plc::{genesis_op, update_op};
//! let pds_rotation = PrivateKey::generate(Curve::K256);
//! let repo_key = PrivateKey::generate(Curve::K256);
//! let genesis = genesis_op(
//!     &repo_key.public_key().to_did_key(),
//!     "alice.test",
//!     "https://pds.test",
//!     &[pds_rotation.public_key().to_did_key()],
//!     &pds_rotation,
//! )
//! .unwrap();
//! assert!(genesis.did.starts_with("did:plc:"));
//! let renamed = update_op(&genesis.op, &pds_rotation, |op| op.set_handle("alice2.test")).unwrap();
//! assert_eq!(renamed.operation().prev(), Some(genesis.op.cid().to_string().as_str()));
//! ```

use std::time::Duration;

use serde_json::Value as Json;

use super::error::OpError;
use super::op::{Operation, RegularOp, SignedOperation, TombstoneOp};
use crate::crypto::PrivateKey;

/// A signed genesis operation and the DID it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// `did:plc:…`, derived from the signed operation.
    pub did: String,
    /// The operation to `POST /{did}`.
    pub op: SignedOperation,
}

impl Genesis {
    /// The JSON body to post.
    pub fn to_json(&self) -> Json {
        self.op.to_json()
    }
}

/// Builds and signs the genesis operation of an account: `signing_key` (a
/// did:key) as its `atproto` verification method, `at://handle`, the PDS at
/// `pds_endpoint`, and `rotation_keys` (did:keys, highest authority first).
/// `signer` must be one of the rotation keys: a genesis is checked against
/// its own keys. Fails on any limit the directory would refuse.
pub fn genesis_op(
    signing_key: &str,
    handle: &str,
    pds_endpoint: &str,
    rotation_keys: &[String],
    signer: &PrivateKey,
) -> Result<Genesis, OpError> {
    require_signer(rotation_keys, signer)?;
    let op = RegularOp::for_account(signing_key, handle, pds_endpoint, rotation_keys.to_vec());
    let op = Operation::Regular(op).sign(signer)?;
    Ok(Genesis {
        did: op.derive_did(),
        op,
    })
}

/// Builds and signs an update following `prev`: the state `prev` set, changed
/// by `change` (e.g. `|op| op.set_handle("new.handle")`), with `prev` set to
/// its CID. `signer` must be one of `prev`'s rotation keys.
///
/// To fork (recover from a lower-authority key's op within 72 h), pass the
/// op before the one to nullify as `prev` and sign with a higher-authority key.
pub fn update_op(
    prev: &SignedOperation,
    signer: &PrivateKey,
    change: impl FnOnce(&mut RegularOp),
) -> Result<SignedOperation, OpError> {
    let mut op = prev
        .operation()
        .normalized()
        .ok_or_else(|| OpError::Build("a tombstone has no successor".into()))?
        .into_owned();
    require_signer(&op.rotation_keys, signer)?;
    op.prev = Some(prev.cid().to_string());
    change(&mut op);
    Operation::Regular(op).sign(signer)
}

/// Builds and signs a tombstone following `prev`, signed by one of `prev`'s
/// rotation keys.
pub fn tombstone_op(
    prev: &SignedOperation,
    signer: &PrivateKey,
) -> Result<SignedOperation, OpError> {
    require_signer(&prev.operation().rotation_keys(), signer)?;
    Operation::Tombstone(TombstoneOp {
        prev: prev.cid().to_string(),
    })
    .sign(signer)
}

fn require_signer(rotation_keys: &[String], signer: &PrivateKey) -> Result<(), OpError> {
    let did_key = signer.public_key().to_did_key();
    if rotation_keys.contains(&did_key) {
        Ok(())
    } else {
        Err(OpError::Build(format!(
            "signer {did_key} is not one of the rotation keys"
        )))
    }
}

/// Why a [`PlcClient`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The directory could not be reached or the exchange broke off.
    #[error("PLC directory request failed: {0}")]
    Transport(String),
    /// The directory answered with an error status (400 with its message for
    /// a refused operation).
    #[error("PLC directory answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The `message` of the error body, or the start of the body.
        message: String,
    },
    /// The answer was not what the endpoint returns.
    #[error("unexpected PLC directory response: {0}")]
    BadResponse(String),
}

/// Largest response body a [`PlcClient`] reads.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A minimal HTTP client for a PLC directory (this crate's or
/// `https://plc.directory`).
#[derive(Debug, Clone)]
pub struct PlcClient {
    http: reqwest::Client,
    base: String,
}

impl PlcClient {
    /// A client for the directory at `base_url` (e.g. `http://127.0.0.1:2582`),
    /// with a 10-second limit per request and no redirects.
    pub fn new(base_url: &str) -> PlcClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        PlcClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// `POST /{did}`: submits a signed operation.
    pub async fn submit(&self, did: &str, op: &SignedOperation) -> Result<(), ClientError> {
        let response = self
            .http
            .post(format!("{}/{did}", self.base))
            .json(&op.to_json())
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        read_body(response).await.map(|_| ())
    }

    /// `GET /{did}/log/last`: the latest valid operation, `None` for an
    /// unknown DID.
    pub async fn last_op(&self, did: &str) -> Result<Option<SignedOperation>, ClientError> {
        let response = self
            .http
            .get(format!("{}/{did}/log/last", self.base))
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        match read_body(response).await {
            Ok(body) => SignedOperation::from_json_bytes(&body)
                .map(Some)
                .map_err(|e| ClientError::BadResponse(e.to_string())),
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The body of a 2xx answer, or the error it carries; bounded.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::BadResponse(format!(
                "body larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return Ok(body);
    }
    let message = serde_json::from_slice::<Json>(&body)
        .ok()
        .and_then(|j| j.get("message").and_then(Json::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    Err(ClientError::Status {
        status: status.as_u16(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Curve;

    #[test]
    fn builders_check_the_signer() {
        let a = PrivateKey::generate(Curve::K256);
        let b = PrivateKey::generate(Curve::K256);
        let keys = vec![a.public_key().to_did_key()];
        assert!(matches!(
            genesis_op(&keys[0], "h.test", "https://p.test", &keys, &b),
            Err(OpError::Build(_))
        ));
        let g = genesis_op(&keys[0], "h.test", "https://p.test", &keys, &a).unwrap();
        assert_eq!(g.did, g.op.derive_did());
        assert!(matches!(
            update_op(&g.op, &b, |_| {}),
            Err(OpError::Build(_))
        ));
        let u = update_op(&g.op, &a, |op| {
            op.set_handle("new.test");
            op.set_pds_endpoint("https://other.test");
        })
        .unwrap();
        let normal = u.operation().normalized().unwrap();
        assert_eq!(normal.also_known_as, ["at://new.test"]);
        assert_eq!(
            normal.services["atproto_pds"].endpoint,
            "https://other.test"
        );
        let t = tombstone_op(&u, &a).unwrap();
        assert!(matches!(update_op(&t, &a, |_| {}), Err(OpError::Build(_))));
    }
}
