//! Session tokens for PDS mode: HS256 JWTs in the shape the reference PDS
//! issues (digest §8.4), so clients built for it work unchanged.
//!
//! - Access tokens: header `typ: "at+jwt"`, scope `com.atproto.access`, two
//!   hours.
//! - Refresh tokens: header `typ: "refresh+jwt"`, scope
//!   `com.atproto.refresh`, a random `jti` (so one can be revoked), 90 days.
//!
//! The two are told apart by `typ` *and* scope, and verification demands the
//! kind the endpoint expects: a refresh token is never accepted as an access
//! token or the other way round. Only `alg: HS256` is accepted (no `none`, no
//! algorithm chosen by the token), and the MAC is checked in constant time
//! before any claim is trusted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Which token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Refresh => "refresh+jwt",
        }
    }

    fn scope(self) -> &'static str {
        match self {
            TokenKind::Access => "com.atproto.access",
            TokenKind::Refresh => "com.atproto.refresh",
        }
    }

    fn lifetime_secs(self) -> u64 {
        match self {
            TokenKind::Access => 2 * 3600,
            TokenKind::Refresh => 90 * 24 * 3600,
        }
    }
}

/// A token's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub scope: String,
    /// The account's DID.
    pub sub: String,
    /// The PDS's own DID.
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Why a token was refused; the names are the lexicon's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("InvalidToken: {0}")]
    Invalid(&'static str),
    #[error("ExpiredToken")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

/// Issues and checks session tokens with one server secret.
pub struct SessionTokens {
    secret: Vec<u8>,
    service_did: String,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("service_did", &self.service_did)
            .finish_non_exhaustive()
    }
}

impl SessionTokens {
    /// Tokens signed with `secret` for the PDS `service_did`.
    pub fn new(secret: &[u8], service_did: &str) -> SessionTokens {
        SessionTokens {
            secret: secret.to_vec(),
            service_did: service_did.to_owned(),
        }
    }

    /// A new token of `kind` for `did`, issued at `now_secs`.
    pub fn issue(&self, kind: TokenKind, did: &str, now_secs: u64) -> (String, Claims) {
        let claims = Claims {
            scope: kind.scope().to_owned(),
            sub: did.to_owned(),
            aud: self.service_did.clone(),
            iat: now_secs,
            exp: now_secs + kind.lifetime_secs(),
            jti: (kind == TokenKind::Refresh)
                .then(|| URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())),
        };
        let header = Header {
            alg: "HS256".into(),
            typ: kind.typ().into(),
        };
        let mut token = String::new();
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default()));
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default()));
        let mac = self.mac(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(mac));
        (token, claims)
    }

    /// The claims of `token` if it is a valid, unexpired token of `kind`
    /// issued by this server.
    pub fn verify(
        &self,
        token: &str,
        kind: TokenKind,
        now_secs: u64,
    ) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid("not a JWT"));
        };
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Invalid("bad signature encoding"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(&token.as_bytes()[..h.len() + 1 + c.len()]);
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::Invalid("bad signature"))?;
        let header: Header = decode_part(h)?;
        if header.alg != "HS256" || header.typ != kind.typ() {
            return Err(TokenError::Invalid("wrong token type"));
        }
        let claims: Claims = decode_part(c)?;
        if claims.scope != kind.scope() || claims.aud != self.service_did {
            return Err(TokenError::Invalid("wrong scope or audience"));
        }
        if now_secs >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Invalid("bad encoding"))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid("bad JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DID: &str = "did:plc:abcdefghijklmnopqrstuvwx";
    const PDS: &str = "did:web:pds.test";

    #[test]
    fn access_and_refresh_round_trip_and_are_not_interchangeable() {
        let t = SessionTokens::new(b"secret", PDS);
        let (access, claims) = t.issue(TokenKind::Access, DID, 1_000);
        assert_eq!(t.verify(&access, TokenKind::Access, 1_001).unwrap(), claims);
        assert_eq!(claims.exp, 1_000 + 7_200);
        let (refresh, rc) = t.issue(TokenKind::Refresh, DID, 1_000);
        assert!(rc.jti.is_some());
        assert_eq!(t.verify(&refresh, TokenKind::Refresh, 1_001).unwrap(), rc);
        assert!(matches!(
            t.verify(&refresh, TokenKind::Access, 1_001),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            t.verify(&access, TokenKind::Refresh, 1_001),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn expiry_tampering_other_secrets_and_alg_none_are_refused() {
        let t = SessionTokens::new(b"secret", PDS);
        let (access, _) = t.issue(TokenKind::Access, DID, 1_000);
        assert_eq!(
            t.verify(&access, TokenKind::Access, 1_000 + 7_200),
            Err(TokenError::Expired)
        );
        let other = SessionTokens::new(b"other", PDS);
        assert!(other.verify(&access, TokenKind::Access, 1_001).is_err());
        let other_aud = SessionTokens::new(b"secret", "did:web:elsewhere.test");
        assert!(other_aud.verify(&access, TokenKind::Access, 1_001).is_err());
        // Swap in claims for another DID, keeping the signature.
        let parts: Vec<&str> = access.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                scope: "com.atproto.access".into(),
                sub: "did:plc:mallorymallorymallorymal".into(),
                aud: PDS.into(),
                iat: 1_000,
                exp: 9_999_999,
                jti: None,
            })
            .unwrap(),
        );
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(
            t.verify(&forged, TokenKind::Access, 1_001),
            Err(TokenError::Invalid("bad signature"))
        );
        // `alg: none` with no signature.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        let unsigned = format!("{none}.{}.", parts[1]);
        assert!(t.verify(&unsigned, TokenKind::Access, 1_001).is_err());
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(t.verify(junk, TokenKind::Access, 1_001).is_err(), "{junk}");
        }
    }
}
