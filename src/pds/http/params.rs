//! Reading XRPC inputs for the repo and sync handlers: query parameters and
//! JSON bodies, with every failure an XRPC `InvalidRequest` (400) rather than
//! axum's plain-text rejections, which XRPC clients cannot parse.
//!
//! Query parameters are kept as the list of pairs they arrived as, because
//! XRPC writes an array parameter by repeating it (`getBlocks?cids=a&cids=b`,
//! digest §9), which a map would collapse to one value.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::http::XrpcError;
use crate::wire::cid::Cid;
use crate::wire::syntax::validate_did;

/// A request's query parameters, in order, repeats kept.
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params, XrpcError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| XrpcError::invalid(format!("query string: {}", e.body_text())))?;
        Ok(Params(pairs))
    }
}

impl Params {
    /// The first value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (an array parameter).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required parameter.
    pub fn required(&self, name: &str) -> Result<&str, XrpcError> {
        self.get(name)
            .ok_or_else(|| XrpcError::invalid(format!("missing required parameter {name}")))
    }

    /// The `did` parameter of the sync queries, checked as a DID (they take
    /// no handles).
    pub fn did(&self) -> Result<&str, XrpcError> {
        let did = self.required("did")?;
        validate_did(did).map_err(|e| XrpcError::invalid(format!("did: {e}")))?;
        Ok(did)
    }

    /// A `limit`-style integer within `min..=max`, `default` when absent.
    pub fn int_in(
        &self,
        name: &str,
        min: usize,
        max: usize,
        default: usize,
    ) -> Result<usize, XrpcError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    XrpcError::invalid(format!("{name} must be an integer from {min} to {max}"))
                }),
        }
    }

    /// A boolean parameter (`true` / `false`, as XRPC writes them), `false`
    /// when absent.
    pub fn flag(&self, name: &str) -> Result<bool, XrpcError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(XrpcError::invalid(format!("{name} must be true or false"))),
        }
    }
}

/// Parses a JSON request body into `T`. The body is taken as bytes, not
/// through axum's `Json`, so a missing `Content-Type`, malformed JSON or a
/// missing field all answer as XRPC errors naming the problem.
pub fn json_input<T: DeserializeOwned>(body: &[u8]) -> Result<T, XrpcError> {
    serde_json::from_slice(body).map_err(|e| XrpcError::invalid(format!("input: {e}")))
}

/// A CID string from a parameter or body field.
pub fn parse_cid(field: &str, text: &str) -> Result<Cid, XrpcError> {
    text.parse::<Cid>()
        .map_err(|e| XrpcError::invalid(format!("{field}: {e}")))
}

/// An optional CID field (`swapCommit`, `swapRecord`).
pub fn parse_opt_cid(field: &str, text: Option<&str>) -> Result<Option<Cid>, XrpcError> {
    text.map(|t| parse_cid(field, t)).transpose()
}

/// For `#[serde(default, deserialize_with = "present")]` on an
/// `Option<Option<T>>`: an absent field stays `None` (through `default`),
/// an explicit `null` becomes `Some(None)`. `putRecord`'s `swapRecord` needs
/// the difference: `null` means "must not exist yet", absent means "no
/// check".
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Swap {
        #[serde(default, deserialize_with = "present")]
        swap: Option<Option<String>>,
    }

    #[test]
    fn absent_and_null_differ() {
        let absent: Swap = json_input(b"{}").unwrap();
        let null: Swap = json_input(br#"{"swap": null}"#).unwrap();
        let set: Swap = json_input(br#"{"swap": "x"}"#).unwrap();
        assert_eq!(absent.swap, None);
        assert_eq!(null.swap, Some(None));
        assert_eq!(set.swap, Some(Some("x".into())));
        assert_eq!(
            json_input::<Swap>(b"{").unwrap_err().error,
            "InvalidRequest"
        );
    }

    #[test]
    fn params_keep_repeats_and_check_ranges() {
        let p = Params(vec![
            ("cids".into(), "a".into()),
            ("limit".into(), "7".into()),
            ("cids".into(), "b".into()),
            ("reverse".into(), "yes".into()),
        ]);
        assert_eq!(p.all("cids").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.get("cids"), Some("a"));
        assert_eq!(p.int_in("limit", 1, 100, 50).unwrap(), 7);
        assert_eq!(p.int_in("absent", 1, 100, 50).unwrap(), 50);
        assert!(p.int_in("limit", 1, 5, 5).is_err());
        assert!(p.flag("reverse").is_err());
        assert!(!p.flag("absent").unwrap());
        assert!(p.required("did").is_err());
    }
}
