//! Identity: DID documents, did:plc and did:web resolution, and the cache the
//! relay's verifiers read each account's signing key and PDS host from.
//!
//! - [`parse_document`] turns a DID document (JSON) into an [`Identity`]: the
//!   `#atproto` signing key (Multikey or legacy form, both curves), the
//!   `#atproto_pds` endpoint and its host, and the claimed handle (digest §6.1).
//! - [`Resolver`] fetches documents — did:plc from the PLC directory
//!   (`{plc_url}/{did}`), did:web from `https://<host>/.well-known/did.json` — and
//!   caches them with a TTL, a bounded size and one in-flight fetch per DID.
//! - [`ResolveError`] says whether a failure is worth retrying
//!   ([`ResolveError::is_transient`]).
//!
//! Handles are reported as claimed by the document, not verified.
//!
//! Metrics are `atrelay_identity_*`, named and described in [`metrics`].
//!
//! ```no_run
//! # async fn example() -> Result<(), atrelay::identity::ResolveError> {
//! use atrelay::identity::{Resolver, ResolverConfig};
//! let resolver = Resolver::new(ResolverConfig::default());
//! let identity = resolver.resolve("did:plc:ewvi7nxzyoun6zhxrhs64oiz").await?;
//! if let (Some(key), Some(host)) = (&identity.signing_key, &identity.pds_host) {
//!     println!("{} signs with {key:?}, hosted on {host}", identity.did);
//! }
//! # Ok(())
//! # }
//! ```

mod cache;
mod document;
mod error;
mod fetch;
mod intern;
pub mod metrics;
mod plc;
mod resolver;
mod web;

pub use document::{
    account_document, normalize_pds_endpoint, parse_document, Identity, PDS_SERVICE_TYPE,
};
pub use error::ResolveError;
pub use fetch::MAX_DOCUMENT_BYTES;
pub use plc::{plc_document_url, validate_plc_did, DEFAULT_PLC_URL};
pub use resolver::{Resolver, ResolverConfig, MAX_RESOLVABLE_DID_LEN};
pub use web::did_web_url;
