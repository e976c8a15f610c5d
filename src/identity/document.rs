//! DID document parsing: from the JSON a directory or host serves to the
//! [`Identity`] the relay needs (signing key, PDS endpoint, claimed handle).
//!
//! The rules follow the atproto identity spec (digest §6.1):
//!
//! - the document's `id` must equal the resolved DID;
//! - handle = the first syntactically valid `at://<handle>` in `alsoKnownAs`,
//!   lower-cased, *not* verified (bidirectional handle checks are someone else's job);
//! - signing key = the first `verificationMethod` whose `id` is `#atproto` or
//!   `<did>#atproto` and whose `type` is `Multikey` or one of the two legacy
//!   `EcdsaSecp256…VerificationKey2019` types;
//! - PDS = the first `service` whose `id` is `#atproto_pds` or `<did>#atproto_pds`
//!   with `type: "AtprotoPersonalDataServer"`.
//!
//! A document whose structure is wrong (not an object, `id` missing or different,
//! the known arrays not arrays of the expected shape) is
//! [`ResolveError::Invalid`]. A well-formed document whose key or PDS entry is
//! missing or unusable (bad key bytes, wrong controller, bad endpoint URL) is
//! returned with that field `None`: the caller decides what a broken account means.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::ResolveError;
use crate::crypto::{PublicKey, LEGACY_K256_TYPE, LEGACY_P256_TYPE, MULTIKEY_TYPE};
use crate::wire::syntax::{normalize_handle, validate_handle};

/// Fragment naming the atproto signing key in `verificationMethod`.
const KEY_FRAGMENT: &str = "#atproto";
/// Fragment naming the PDS entry in `service`.
const PDS_FRAGMENT: &str = "#atproto_pds";
/// The `type` a PDS service entry must have.
pub const PDS_SERVICE_TYPE: &str = "AtprotoPersonalDataServer";
/// Longest `serviceEndpoint` considered (the PLC server caps endpoints at 512).
const MAX_ENDPOINT_LEN: usize = 512;

/// The document an atproto account has: its handle, its signing key as a
/// Multikey, and its PDS. What a PLC directory serves for a `did:plc`, built
/// in one place for the PDS's `describeRepo`, the load generator's directory
/// and the tests' directories.
///
/// ```
/// use atrelay::crypto::{Curve, PrivateKey};
/// use atrelay::identity::{account_document, parse_document};
/// let key = PrivateKey::generate(Curve::K256).public_key();
/// let did = "did:plc:abcdefghijklmnopqrstuvwx";
/// let doc = account_document(did, "alice.test", &key, "https://pds.example.com");
/// let identity = parse_document(did, &doc).unwrap();
/// assert_eq!(identity.handle.as_deref(), Some("alice.test"));
/// assert_eq!(identity.pds_endpoint.as_deref(), Some("https://pds.example.com"));
/// assert_eq!(identity.signing_key, Some(key));
/// ```
pub fn account_document(did: &str, handle: &str, key: &PublicKey, pds_endpoint: &str) -> Value {
    serde_json::json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
        ],
        "id": did,
        "alsoKnownAs": [format!("at://{handle}")],
        "verificationMethod": [{
            "id": format!("{did}{KEY_FRAGMENT}"),
            "type": MULTIKEY_TYPE,
            "controller": did,
            "publicKeyMultibase": key.to_multikey(),
        }],
        "service": [{
            "id": PDS_FRAGMENT,
            "type": PDS_SERVICE_TYPE,
            "serviceEndpoint": pds_endpoint,
        }],
    })
}

/// What the relay needs to know about an account, taken from its DID document.
///
/// Resolved once and shared (`Arc<Identity>`) by every verifier that checks the
/// account's commits, so the parsed [`PublicKey`] is kept ready to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The DID this document was resolved for (equal to the document's `id`).
    /// Shared with the resolver's cache key.
    pub did: Arc<str>,
    /// The first valid `at://` handle in `alsoKnownAs`, lower-cased. Unverified:
    /// the document alone does not prove the handle points back at the DID.
    pub handle: Option<String>,
    /// The current `#atproto` signing key, or `None` if the document has no
    /// usable one (the account cannot have valid commits).
    pub signing_key: Option<PublicKey>,
    /// The `#atproto_pds` endpoint normalized to `scheme://host[:port]` with no
    /// trailing slash, e.g. `https://pds.example.com` or `http://127.0.0.1:2583`.
    /// Shared between the identities on one PDS (see the resolver).
    pub pds_endpoint: Option<Arc<str>>,
    /// The endpoint's `hostname[:port]`, lower-case, the port kept only when it is
    /// not the scheme's default. This is the value the host-matching rule
    /// (digest §2.6) compares with an upstream connection's host.
    pub pds_host: Option<Arc<str>>,
}

/// Parses the DID document `doc` served for `did` into an [`Identity`].
///
/// Fails with [`ResolveError::Invalid`] when the document is malformed or its `id`
/// is not `did`; succeeds with `None` fields when the key, PDS or handle is
/// absent or unusable (see the module documentation for the exact rules).
pub fn parse_document(did: &str, doc: &Value) -> Result<Identity, ResolveError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("document is not a JSON object"))?;
    match obj.get("id") {
        Some(Value::String(id)) if id == did => {}
        Some(Value::String(id)) => {
            return Err(invalid(format!(
                "document id {:?} does not match the DID",
                truncate(id)
            )))
        }
        Some(_) => return Err(invalid("document id is not a string")),
        None => return Err(invalid("document has no id")),
    }
    let handle = parse_handle(obj)?;
    let signing_key = parse_signing_key(did, obj)?;
    let (pds_endpoint, pds_host) = match parse_pds(did, obj)? {
        Some((endpoint, host)) => (Some(endpoint.into()), Some(host.into())),
        None => (None, None),
    };
    Ok(Identity {
        did: did.into(),
        handle,
        signing_key,
        pds_endpoint,
        pds_host,
    })
}

fn invalid(msg: impl Into<String>) -> ResolveError {
    ResolveError::Invalid(msg.into())
}

/// Caps attacker-controlled text quoted in error messages.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// An optional array field: absent or `null` is empty; anything but an array is
/// a malformed document.
fn optional_array<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], ResolveError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(format!("{key} is not an array"))),
    }
}

/// Whether `id` names `fragment` in this document: relative (`#atproto`) or
/// absolute (`did:…#atproto`) for this DID only.
fn id_matches(did: &str, id: &str, fragment: &str) -> bool {
    id == fragment
        || (id.len() == did.len() + fragment.len() && id.starts_with(did) && id.ends_with(fragment))
}

/// The entry's string field, or `Invalid` if it is absent or not a string
/// (`id` and `type` are required on every entry).
fn required_str<'a>(
    entry: &'a Map<String, Value>,
    key: &str,
    list: &str,
) -> Result<&'a str, ResolveError> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{list} entry without a string {key}")))
}

fn parse_handle(obj: &Map<String, Value>) -> Result<Option<String>, ResolveError> {
    let mut found = None;
    for aka in optional_array(obj, "alsoKnownAs")? {
        let aka = aka
            .as_str()
            .ok_or_else(|| invalid("alsoKnownAs entry is not a string"))?;
        if found.is_some() {
            continue;
        }
        if let Some(handle) = aka.strip_prefix("at://") {
            if validate_handle(handle).is_ok() {
                found = Some(normalize_handle(handle));
            }
        }
    }
    Ok(found)
}

fn parse_signing_key(
    did: &str,
    obj: &Map<String, Value>,
) -> Result<Option<PublicKey>, ResolveError> {
    let mut chosen: Option<&Map<String, Value>> = None;
    for method in optional_array(obj, "verificationMethod")? {
        let method = method
            .as_object()
            .ok_or_else(|| invalid("verificationMethod entry is not an object"))?;
        let id = required_str(method, "id", "verificationMethod")?;
        let ty = required_str(method, "type", "verificationMethod")?;
        let supported = ty == MULTIKEY_TYPE || ty == LEGACY_P256_TYPE || ty == LEGACY_K256_TYPE;
        if chosen.is_none() && supported && id_matches(did, id, KEY_FRAGMENT) {
            chosen = Some(method);
        }
    }
    let Some(method) = chosen else {
        return Ok(None);
    };
    // The controller should be the DID itself; a key controlled by someone else
    // is not this account's signing key. An absent controller is tolerated.
    match method.get("controller") {
        None => {}
        Some(Value::String(c)) if c == did => {}
        Some(_) => {
            tracing::debug!(did, "#atproto key has a foreign or malformed controller");
            return Ok(None);
        }
    }
    let Some(multibase) = method.get("publicKeyMultibase").and_then(Value::as_str) else {
        return Ok(None);
    };
    let ty = method
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let parsed = if ty == MULTIKEY_TYPE {
        PublicKey::from_multikey(multibase)
    } else {
        PublicKey::from_legacy_multibase(ty, multibase)
    };
    match parsed {
        Ok(key) => Ok(Some(key)),
        Err(e) => {
            tracing::debug!(did, error = %e, "#atproto key does not parse");
            Ok(None)
        }
    }
}

fn parse_pds(
    did: &str,
    obj: &Map<String, Value>,
) -> Result<Option<(String, String)>, ResolveError> {
    let mut chosen: Option<&Value> = None;
    for service in optional_array(obj, "service")? {
        let service = service
            .as_object()
            .ok_or_else(|| invalid("service entry is not an object"))?;
        let id = required_str(service, "id", "service")?;
        let ty = required_str(service, "type", "service")?;
        if chosen.is_none() && ty == PDS_SERVICE_TYPE && id_matches(did, id, PDS_FRAGMENT) {
            chosen = Some(
                service
                    .get("serviceEndpoint")
                    .ok_or_else(|| invalid("service entry without serviceEndpoint"))?,
            );
        }
    }
    // A non-string endpoint (the DID spec allows maps and sets) is not an atproto
    // PDS URL; neither is a malformed one. Both leave the PDS unknown.
    let Some(endpoint) = chosen.and_then(Value::as_str) else {
        return Ok(None);
    };
    let parsed = normalize_pds_endpoint(endpoint);
    if parsed.is_none() {
        tracing::debug!(
            did,
            endpoint = truncate(endpoint),
            "unusable #atproto_pds endpoint"
        );
    }
    Ok(parsed)
}

/// Checks and normalizes a PDS `serviceEndpoint`: it must be an `http` or `https`
/// URL with a host, no userinfo, no query or fragment, and no path (a lone
/// trailing `/` is allowed). Returns `(endpoint, host)` where `endpoint` is
/// `scheme://host[:port]` (the port kept only when it is not the scheme default)
/// and `host` is the host's canonical spelling ([`crate::net::HostName`]: the
/// port kept only when it is not the one the relay dials); `None` if the URL
/// is unusable.
///
/// Public so that other parts of the relay (host matching, crawl requests) can
/// normalize a hostname or URL the same way the DID document's endpoint is.
pub fn normalize_pds_endpoint(endpoint: &str) -> Option<(String, String)> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return None;
    }
    let url = reqwest::Url::parse(endpoint).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    // The parser turns an empty path into "/" for http(s), so "/" is "no path".
    if url.path() != "/" {
        return None;
    }
    // The host in the one spelling the relay keys hosts by (see
    // `net::HostName`): it must equal the name the host was crawled under.
    let host = crate::net::HostName::from_url(&url)?;
    let origin = match url.port() {
        Some(port) => format!("{}://{}:{port}", url.scheme(), url.host_str()?),
        None => format!("{}://{}", url.scheme(), url.host_str()?),
    };
    Some((origin, host.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

    #[test]
    fn endpoint_normalization() {
        let ok = |s: &str| normalize_pds_endpoint(s).expect(s);
        assert_eq!(
            ok("https://PDS.Example.com"),
            ("https://pds.example.com".into(), "pds.example.com".into())
        );
        assert_eq!(
            ok("https://pds.example.com/"),
            ("https://pds.example.com".into(), "pds.example.com".into())
        );
        assert_eq!(
            ok("https://pds.example.com:443"),
            ("https://pds.example.com".into(), "pds.example.com".into())
        );
        assert_eq!(
            ok("http://pds.example.com:80/"),
            ("http://pds.example.com".into(), "pds.example.com".into())
        );
        assert_eq!(
            ok("https://pds.example.com:8443"),
            (
                "https://pds.example.com:8443".into(),
                "pds.example.com:8443".into()
            )
        );
        assert_eq!(
            ok("http://127.0.0.1:2583"),
            ("http://127.0.0.1:2583".into(), "127.0.0.1:2583".into())
        );
        for bad in [
            "",
            "pds.example.com",
            "ftp://pds.example.com",
            "wss://pds.example.com",
            "https://pds.example.com/xrpc",
            "https://pds.example.com//",
            "https://user@pds.example.com",
            "https://user:pw@pds.example.com",
            "https://pds.example.com?x=1",
            "https://pds.example.com/?",
            "https://pds.example.com#frag",
            "https://",
            "https://exa mple.com",
            "did:web:example.com",
        ] {
            assert_eq!(normalize_pds_endpoint(bad), None, "{bad:?}");
        }
        let long = format!("https://{}.com", "a".repeat(600));
        assert_eq!(normalize_pds_endpoint(&long), None);
    }

    #[test]
    fn id_matching_is_exact() {
        assert!(id_matches(DID, "#atproto", KEY_FRAGMENT));
        assert!(id_matches(DID, &format!("{DID}#atproto"), KEY_FRAGMENT));
        assert!(!id_matches(DID, "did:plc:other#atproto", KEY_FRAGMENT));
        assert!(!id_matches(DID, "#atproto_pds", KEY_FRAGMENT));
        assert!(!id_matches(DID, "x#atproto", KEY_FRAGMENT));
        assert!(!id_matches(DID, &format!("{DID}x#atproto"), KEY_FRAGMENT));
        assert!(id_matches(DID, "#atproto_pds", PDS_FRAGMENT));
        assert!(!id_matches(DID, "#atproto", PDS_FRAGMENT));
    }

    #[test]
    fn handle_is_first_valid_at_uri() {
        let doc = json!({
            "id": DID,
            "alsoKnownAs": ["https://x.example", "at://not a handle", "at://Alice.Example.COM", "at://bob.test"],
        });
        let id = parse_document(DID, &doc).expect("doc");
        assert_eq!(id.handle.as_deref(), Some("alice.example.com"));
        assert_eq!(id.signing_key, None);
        assert_eq!(id.pds_endpoint, None);
        assert_eq!(id.pds_host, None);
    }

    #[test]
    fn malformed_shapes_are_invalid() {
        for doc in [
            json!([]),
            json!("x"),
            json!({}),
            json!({"id": 5}),
            json!({"id": "did:plc:someoneelse"}),
            json!({"id": DID, "alsoKnownAs": "at://a.com"}),
            json!({"id": DID, "alsoKnownAs": [1]}),
            json!({"id": DID, "verificationMethod": {}}),
            json!({"id": DID, "verificationMethod": [1]}),
            json!({"id": DID, "verificationMethod": [{"type": "Multikey"}]}),
            json!({"id": DID, "verificationMethod": [{"id": "#atproto"}]}),
            json!({"id": DID, "service": [{"id": "#atproto_pds"}]}),
            json!({"id": DID, "service": [{"id": "#atproto_pds", "type": PDS_SERVICE_TYPE}]}),
            json!({"id": DID, "service": "x"}),
        ] {
            assert!(
                matches!(parse_document(DID, &doc), Err(ResolveError::Invalid(_))),
                "{doc}"
            );
        }
        // Null arrays count as absent.
        let doc =
            json!({"id": DID, "alsoKnownAs": null, "verificationMethod": null, "service": null});
        assert!(parse_document(DID, &doc).is_ok());
    }

    #[test]
    fn non_string_endpoint_is_no_pds() {
        let doc = json!({"id": DID, "service": [{
            "id": "#atproto_pds", "type": PDS_SERVICE_TYPE,
            "serviceEndpoint": {"origins": ["https://pds.example.com"]}
        }]});
        let id = parse_document(DID, &doc).expect("doc");
        assert_eq!(id.pds_endpoint, None);
    }
}
