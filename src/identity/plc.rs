//! did:plc: identifier checks and the PLC directory's document URL.
//!
//! A did:plc identifier is `did:plc:` followed by 24 characters of lower-case
//! base32 (`a-z2-7`): the truncated hash of the genesis operation (digest §6.3).
//! Anything else can never exist in a directory, so it is refused before any
//! request is made. The document is `GET {directory}/{did}`; the directory
//! answers 404 for an unknown DID and 410 for a tombstoned one (digest §6.2).

use super::error::ResolveError;

/// The method prefix of PLC DIDs.
pub const PLC_PREFIX: &str = "did:plc:";

/// Length of the method-specific part of a did:plc (base32 of a truncated hash).
pub const PLC_ID_LEN: usize = 24;

/// The public PLC directory, the default for [`ResolverConfig`](super::ResolverConfig).
pub const DEFAULT_PLC_URL: &str = "https://plc.directory";

/// Checks that `did` is a well-formed did:plc (`did:plc:` + 24 × `[a-z2-7]`).
pub fn validate_plc_did(did: &str) -> Result<(), ResolveError> {
    let id = did
        .strip_prefix(PLC_PREFIX)
        .ok_or_else(|| ResolveError::Invalid("not a did:plc".into()))?;
    if id.len() != PLC_ID_LEN {
        return Err(ResolveError::Invalid(format!(
            "did:plc identifier must be {PLC_ID_LEN} characters"
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    {
        return Err(ResolveError::Invalid(
            "did:plc identifier must be lower-case base32 (a-z, 2-7)".into(),
        ));
    }
    Ok(())
}

/// The URL of `did`'s document in the directory at `plc_url` (a trailing `/` on
/// `plc_url` is ignored). Checks the DID first.
pub fn plc_document_url(plc_url: &str, did: &str) -> Result<String, ResolveError> {
    validate_plc_did(did)?;
    Ok(format!("{}/{did}", plc_url.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plc_ids() {
        let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
        assert_eq!(validate_plc_did(did), Ok(()));
        assert_eq!(
            plc_document_url("https://plc.directory/", did).as_deref(),
            Ok("https://plc.directory/did:plc:ewvi7nxzyoun6zhxrhs64oiz")
        );
        assert_eq!(
            plc_document_url("http://127.0.0.1:9", did).as_deref(),
            Ok("http://127.0.0.1:9/did:plc:ewvi7nxzyoun6zhxrhs64oiz")
        );
        for bad in [
            "did:plc:",
            "did:plc:ewvi7nxzyoun6zhxrhs64oi",
            "did:plc:ewvi7nxzyoun6zhxrhs64oizz",
            "did:plc:EWVI7NXZYOUN6ZHXRHS64OIZ",
            "did:plc:ewvi7nxzyoun6zhxrhs64oi1",
            "did:plc:ewvi7nxzyoun6zhxrhs64oi8",
            "did:plc:ewvi7nxzyoun6zhxrhs64o/z",
            "did:web:example.com",
            "did:plc:ewvi7nxzyoun6zhxrhs64oi%",
        ] {
            assert!(
                matches!(validate_plc_did(bad), Err(ResolveError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
